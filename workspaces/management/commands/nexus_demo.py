"""Set up a demo: user, workspace and the three sample panels. Running it again adds only what is missing."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from workspaces.models import Panel, Role, Workspace
from workspaces.services import panels as panel_service
from workspaces.services import workspaces as workspace_service
from workspaces.services.panels import ServiceError
from workspaces.services.tokens import mint_access

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "panels"
DEMO_USER = "demo"
DEMO_WORKSPACE = "demo"
DEFAULT_PASSWORD = "demo-password"
PASSWORD_ENV = "NEXUS_DEMO_PASSWORD"


@dataclass(frozen=True)
class DemoPanel:
    panel_id: str
    filename: str
    needs_http: bool = False

    def extension_config(self, base_url: str) -> dict[str, Any]:
        return {"http": {"baseURL": base_url}} if self.needs_http else {}


DEMO_PANELS = (
    DemoPanel("counter", "counter.nxml"),
    DemoPanel("monitor", "monitor.nxml", needs_http=True),
    DemoPanel("todo", "todo.nxml"),
)


def is_private_host(host: str) -> bool:
    """Hosts the http extension refuses unless listed in HTTP_ALLOWED_PRIVATE_HOSTS."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


def default_base_url() -> str:
    return f"http://127.0.0.1:{settings.NEXUS.HTTP_PORT}"


class Command(BaseCommand):
    help = (
        f"Create (or bring up to date) the demo: user '{DEMO_USER}' (password from ${PASSWORD_ENV}, "
        f"default '{DEFAULT_PASSWORD}'), workspace '{DEMO_WORKSPACE}' owned by it, and the sample "
        "panels counter, monitor and todo. The monitor's http extension points at this server. "
        "Prints the login URL, the credentials and a fresh access token. Running it again creates "
        "only what is missing: an existing user keeps its password (unless --reset-password), "
        "existing panels keep their NXML, state and extension settings."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", metavar="URL",
                            help="Where this server is reached (default: http://127.0.0.1:HTTP_PORT).")
        parser.add_argument("--reset-password", action="store_true",
                            help=f"Set the demo user's password again (from ${PASSWORD_ENV}, default "
                                 f"'{DEFAULT_PASSWORD}') even if the user exists.")

    def handle(self, *args: Any, **options: Any) -> None:
        base_url = (options.get("base_url") or default_base_url()).rstrip("/")
        password = os.environ.get(PASSWORD_ENV) or DEFAULT_PASSWORD
        user, workspace, password_set = self.ensure_owner(password, reset=bool(options.get("reset_password")))
        for demo in DEMO_PANELS:
            self.stdout.write(f"panel {demo.panel_id}: {self.ensure_panel(workspace, demo, base_url)}")
        token = mint_access(user, workspace.slug)
        self.stdout.write(self.style.SUCCESS("Nexus demo is ready."))
        self.stdout.write(f"  Login:    {base_url}/accounts/login/?next=/workspaces/{workspace.slug}/")
        self.stdout.write(f"  Username: {DEMO_USER}")
        if password_set:
            self.stdout.write(f"  Password: {password}")
        else:
            self.stdout.write("  Password: unchanged (the user existed; --reset-password sets it again)")
        self.stdout.write(f"  Token:    {token}")
        host = urlsplit(base_url).hostname or ""
        if is_private_host(host) and host not in settings.NEXUS.HTTP_ALLOWED_PRIVATE_HOSTS:
            self.stdout.write(f"  Note:     the monitor reaches {host} only with HTTP_ALLOWED_PRIVATE_HOSTS={host}")

    @transaction.atomic
    def ensure_owner(self, password: str, reset: bool) -> tuple[Any, Workspace, bool]:
        """The demo user, workspace and membership; True when the password was set now."""
        user, created = get_user_model().objects.get_or_create(username=DEMO_USER)
        if created or reset:
            user.set_password(password)
            user.save()
        workspace = Workspace.objects.filter(slug=DEMO_WORKSPACE).first()
        if workspace is None:
            workspace = workspace_service.create_workspace(DEMO_WORKSPACE, "Demo")
        if workspace.panel_limit < len(DEMO_PANELS):
            workspace = workspace_service.update_workspace(workspace, max_panels=len(DEMO_PANELS))
        workspace_service.ensure_member(workspace, user, Role.OWNER)
        return user, workspace, created or reset

    def ensure_panel(self, workspace: Workspace, demo: DemoPanel, base_url: str) -> str:
        source = (FIXTURES / demo.filename).read_text(encoding="utf-8")
        config = demo.extension_config(base_url)
        panel = Panel.objects.select_related("workspace").filter(workspace=workspace, panel_id=demo.panel_id).first()
        if panel is not None:
            note = f"exists, left as it is (status {panel.status})"
            if panel.extension_config != config:
                note += f"; its extensions are {json.dumps(panel.extension_config)}, delete the panel to renew them"
            return note
        try:
            created, outcome = async_to_sync(panel_service.create_panel)(
                workspace, source, panel_id=demo.panel_id, extension_config=config, actor="nexus_demo"
            )
        except ServiceError as exc:
            raise CommandError(f"panel {demo.panel_id}: {exc.code} {exc.message}") from None
        failed = outcome is not None and outcome.status == "error"
        return f"created, status {created.status}" + (" (mount failed)" if failed else "")
