"""Mint an access token for a user, optionally narrowed to a workspace and permissions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from nexus.config import _parse_duration
from workspaces.access import ALL_PERMISSIONS
from workspaces.services.tokens import TokenRequestError, mint_access


def parse_ttl(raw: str) -> timedelta:
    try:
        return timedelta(seconds=_parse_duration(raw))
    except ValueError as exc:
        raise CommandError(f"--ttl {raw}: {exc}") from None


class Command(BaseCommand):
    help = (
        "Print a signed JWT access token for USER. The token carries the claims sub (the "
        "username) and exp; --workspace and --permissions add claims that narrow what it may do."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", metavar="USER", help="An existing user.")
        parser.add_argument("--workspace", "-w", metavar="SLUG",
                            help="Limit the token to this workspace (the user must be a member).")
        parser.add_argument("--permissions", "-p", metavar="A,B",
                            help=f"Comma-separated subset of: {', '.join(sorted(ALL_PERMISSIONS))}.")
        parser.add_argument("--ttl", metavar="DURATION",
                            help="Lifetime such as 900, 30s, 15m, 1h or 7d (default: JWT_ACCESS_TTL).")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user named '{options['username']}'")
        if not user.is_active:
            raise CommandError(f"user '{user.get_username()}' is inactive")
        ttl = parse_ttl(options["ttl"]) if options.get("ttl") else None
        try:
            token = mint_access(user, options.get("workspace"), options.get("permissions"), ttl)
        except TokenRequestError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(token)
