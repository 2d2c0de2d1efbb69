"""Import, export and validate NXML panels from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workspaces.models import Panel, Workspace
from workspaces.services import panels as panel_service
from workspaces.services.errors import ErrorCode
from workspaces.services.panels import ServiceError


def read_source(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise CommandError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise CommandError(f"{path}: {exc.strerror or exc}") from None


def located(path: str, errors: list[dict[str, Any]]) -> list[str]:
    """One compiler-style line per error: FILE:LINE:COL: CODE message."""
    return [f"{path}:{e.get('line')}:{e.get('column')}: {e.get('code')} {e.get('message')}" for e in errors]


class Command(BaseCommand):
    help = (
        "Manage panels as NXML files.\n\n"
        "  import FILE --workspace W [--id ID] [--replace]   create a panel from FILE (runs mount)\n"
        "  export --workspace W ID [-o FILE]                 write a panel's NXML to FILE or stdout\n"
        "  validate FILE [FILE ...]                          check files; errors print as\n"
        "                                                    FILE:LINE:COL: CODE message, exit 1 on any"
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        from argparse import RawDescriptionHelpFormatter

        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = RawDescriptionHelpFormatter
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{import,export,validate}")

        importer = actions.add_parser("import", help="Create a panel from an NXML file (runs its mount handler).")
        importer.add_argument("file", help="Path of the NXML file.")
        importer.add_argument("--workspace", "-w", required=True, help="Slug of an existing workspace.")
        importer.add_argument("--id", dest="panel_id", help="Panel id (default: generated from the NXML id).")
        importer.add_argument("--replace", action="store_true",
                              help="With --id: replace the NXML of that panel if it exists.")

        exporter = actions.add_parser("export", help="Write a panel's NXML source.")
        exporter.add_argument("panel_id", metavar="ID", help="Panel id.")
        exporter.add_argument("--workspace", "-w", required=True, help="Workspace slug.")
        exporter.add_argument("-o", "--output", help="Write to this file instead of stdout.")

        validator = actions.add_parser("validate", help="Check NXML files without storing anything.")
        validator.add_argument("files", nargs="+", metavar="FILE", help="NXML files to check.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "import":
            self.import_panel(options["file"], options["workspace"], options.get("panel_id"), options["replace"])
        elif action == "export":
            self.export_panel(options["workspace"], options["panel_id"], options.get("output"))
        else:
            self.validate_files(options["files"])

    def import_panel(self, path: str, slug: str, panel_id: str | None, replace: bool) -> None:
        source = read_source(path)
        workspace = Workspace.objects.filter(slug=slug).first()
        if workspace is None:
            raise CommandError(f"workspace '{slug}' does not exist")
        if replace and panel_id:
            existing = Panel.objects.filter(workspace=workspace, panel_id=panel_id).first()
            if existing is not None:
                self._replace(path, existing, source)
                return
        try:
            panel, outcome = async_to_sync(panel_service.create_panel)(
                workspace, source, panel_id=panel_id, actor="manage.py"
            )
        except ServiceError as exc:
            raise self._refusal(path, exc) from None
        self.stdout.write(f"imported {workspace.slug}/{panel.panel_id} ({panel.title}), status {panel.status}")
        if outcome is not None and outcome.status == "error":
            error = outcome.error or {}
            self.stderr.write(f"warning: mount failed: {error.get('code')} {error.get('message')}")

    def _replace(self, path: str, panel: Panel, source: str) -> None:
        try:
            async_to_sync(panel_service.update_source)(panel, source, actor="manage.py",
                                                       message=f"Imported from {path}")
        except ServiceError as exc:
            raise self._refusal(path, exc) from None
        self.stdout.write(f"replaced the NXML of {panel}")

    def _refusal(self, path: str, exc: ServiceError) -> CommandError:
        if exc.code == ErrorCode.INVALID_NXML:
            for line in located(path, exc.details["errors"]):
                self.stdout.write(line)
            return CommandError(f"{path}: {len(exc.details['errors'])} NXML error(s); nothing imported", returncode=1)
        return CommandError(f"{exc.code}: {exc.message}")

    def export_panel(self, slug: str, panel_id: str, output: str | None) -> None:
        try:
            panel = panel_service.get_panel(slug, panel_id)
        except ServiceError:
            raise CommandError(f"panel '{slug}/{panel_id}' does not exist") from None
        if output:
            try:
                Path(output).write_text(panel.source, encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"{output}: {exc.strerror or exc}") from None
            self.stderr.write(f"wrote {panel} to {output}")
        else:
            self.stdout.write(panel.source, ending="" if panel.source.endswith("\n") else "\n")

    def validate_files(self, paths: list[str]) -> None:
        failed = 0
        for path in paths:
            errors = panel_service.validate_source(read_source(path))
            if errors:
                failed += 1
                for line in located(path, errors):
                    self.stdout.write(line)
            else:
                self.stdout.write(f"{path}: ok")
        if failed:
            raise CommandError(f"{failed} of {len(paths)} file(s) have NXML errors", returncode=1)
