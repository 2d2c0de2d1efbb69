"""manage.py nexus_panel, nexus_token and nexus_demo."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from rest_framework_simplejwt.tokens import AccessToken

from tests.api.conftest import COUNTER, SAMPLES
from workspaces.models import Membership, Panel, PanelStatus
from workspaces.services.panels import update_source

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "nxml"
LOCATED = re.compile(r"^(?P<file>.+\.nxml):(?P<line>\d+):(?P<col>\d+): (?P<code>[A-Z_]+) .+$")


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def fails(*args: str) -> tuple[CommandError, str]:
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(*args, stdout=out, stderr=io.StringIO())
    return caught.value, out.getvalue()


@pytest.fixture
def lab(transactional_db: None, make_workspace: Any) -> Any:
    return make_workspace("lab")


@pytest.fixture
def counter_file(tmp_path: Path) -> Path:
    path = tmp_path / "counter.nxml"
    path.write_text(COUNTER, encoding="utf-8")
    return path


# ---------------------------------------------------------------- nexus_panel validate


def test_validate_good_files() -> None:
    out, _ = run("nexus_panel", "validate", *(str(SAMPLES / f"{n}.nxml") for n in ("counter", "monitor", "todo")))
    assert out.count(": ok") == 3


def test_validate_prints_located_errors_and_exits_1() -> None:
    path = str(CORPUS / "five_errors_at_once.nxml")
    error, out = fails("nexus_panel", "validate", str(SAMPLES / "counter.nxml"), path)
    assert error.returncode == 1
    lines = [line for line in out.splitlines() if not line.endswith(": ok")]
    assert len(lines) >= 5
    for line in lines:
        match = LOCATED.match(line)
        assert match and match["file"] == path and int(match["line"]) >= 1 and int(match["col"]) >= 1, line


def test_validate_missing_file() -> None:
    error, _ = fails("nexus_panel", "validate", "/nonexistent/panel.nxml")
    assert "no such file" in str(error)


# ---------------------------------------------------------------- nexus_panel import / export


def test_import_runs_mount(lab: Any, counter_file: Path) -> None:
    out, _ = run("nexus_panel", "import", str(counter_file), "--workspace", "lab", "--id", "c1")
    assert "imported lab/c1 (Counter), status running" in out
    assert Panel.objects.get(workspace=lab, panel_id="c1").state == {"count": 0, "double": 0}


def test_import_takes_the_nxml_id_then_generates_one(lab: Any, counter_file: Path) -> None:
    run("nexus_panel", "import", str(counter_file), "--workspace", "lab")
    run("nexus_panel", "import", str(counter_file), "--workspace", "lab")
    ids = sorted(Panel.objects.filter(workspace=lab).values_list("panel_id", flat=True))
    assert ids[0] == "counter" and ids[1].startswith("counter-")


def test_import_refusals(lab: Any, counter_file: Path, tmp_path: Path) -> None:
    bad = CORPUS / "dangling_trigger.nxml"
    error, out = fails("nexus_panel", "import", str(bad), "--workspace", "lab", "--id", "x")
    assert error.returncode == 1 and LOCATED.match(out.splitlines()[0])
    assert not Panel.objects.exists()
    error, _ = fails("nexus_panel", "import", str(counter_file), "--workspace", "nowhere")
    assert "workspace 'nowhere' does not exist" in str(error)
    run("nexus_panel", "import", str(counter_file), "--workspace", "lab", "--id", "c1")
    error, _ = fails("nexus_panel", "import", str(counter_file), "--workspace", "lab", "--id", "c1")
    assert "PANEL_EXISTS" in str(error)
    binary = tmp_path / "binary.nxml"
    binary.write_bytes(b"\xff\xfe\x00")
    assert "not UTF-8" in str(fails("nexus_panel", "import", str(binary), "--workspace", "lab")[0])


def test_import_replace(lab: Any, counter_file: Path) -> None:
    run("nexus_panel", "import", str(counter_file), "--workspace", "lab", "--id", "c1")
    counter_file.write_text(COUNTER.replace('title="Counter"', 'title="Tally"'), encoding="utf-8")
    out, _ = run("nexus_panel", "import", str(counter_file), "--workspace", "lab", "--id", "c1", "--replace")
    assert "replaced" in out
    assert Panel.objects.get(panel_id="c1").title == "Tally"
    newest = Panel.objects.get(panel_id="c1").revisions.first()
    assert newest is not None and newest.number == 2 and newest.message == f"Imported from {counter_file}"


def test_export_to_stdout_and_file(lab: Any, counter_file: Path, tmp_path: Path) -> None:
    run("nexus_panel", "import", str(counter_file), "--workspace", "lab", "--id", "c1")
    out, _ = run("nexus_panel", "export", "--workspace", "lab", "c1")
    assert out == COUNTER if COUNTER.endswith("\n") else out == COUNTER + "\n"
    target = tmp_path / "out.nxml"
    run("nexus_panel", "export", "--workspace", "lab", "c1", "-o", str(target))
    assert target.read_text(encoding="utf-8") == COUNTER
    error, _ = fails("nexus_panel", "export", "--workspace", "lab", "missing")
    assert "does not exist" in str(error)


def test_help_texts() -> None:
    for name in ("nexus_panel", "nexus_token", "nexus_demo"):
        text = load_command_class("workspaces", name).create_parser("manage.py", name).format_help()
        assert len(text) > 200, name
    panel_help = load_command_class("workspaces", "nexus_panel").create_parser("manage.py", "nexus_panel")
    assert "FILE:LINE:COL: CODE message" in panel_help.format_help()


# ---------------------------------------------------------------- nexus_token


def test_token_plain(make_user: Any) -> None:
    make_user("tess")
    out, _ = run("nexus_token", "tess")
    token = AccessToken(out.strip())
    assert token["sub"] == "tess"
    assert "workspace_id" not in token.payload and "permissions" not in token.payload


def test_token_with_claims_and_ttl(make_user: Any, make_workspace: Any) -> None:
    user = make_user("tess")
    make_workspace("lab", {user: "editor"})
    out, _ = run("nexus_token", "tess", "--workspace", "lab", "--permissions", "panel:read,panel:execute",
                 "--ttl", "2h")
    token = AccessToken(out.strip())
    assert token["workspace_id"] == "lab"
    assert token["permissions"] == ["panel:execute", "panel:read"]
    assert timedelta(seconds=token["exp"] - token["iat"]) == timedelta(hours=2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ghost"], "no user named 'ghost'"),
        (["tess", "--permissions", "panel:read,root"], "unknown permission(s) root"),
        (["tess", "--ttl", "forever"], "--ttl forever"),
        (["tess", "--workspace", "elsewhere"], "not a member"),
        (["tess", "--workspace", "missing"], "does not exist"),
    ],
)
def test_token_refusals(make_user: Any, make_workspace: Any, args: list[str], message: str) -> None:
    make_user("tess")
    make_workspace("elsewhere")
    error, _ = fails("nexus_token", *args)
    assert message in str(error)


# ---------------------------------------------------------------- nexus_demo


def test_demo_is_complete_and_idempotent(transactional_db: None, monkeypatch: Any, settings: Any) -> None:
    monkeypatch.delenv("NEXUS_DEMO_PASSWORD", raising=False)
    port = settings.NEXUS.HTTP_PORT
    out, _ = run("nexus_demo")
    assert f"http://127.0.0.1:{port}/accounts/login/" in out
    assert "Username: demo" in out and "Password: demo-password" in out
    hint = "HTTP_ALLOWED_PRIVATE_HOSTS=127.0.0.1" in out
    assert hint == ("127.0.0.1" not in settings.NEXUS.HTTP_ALLOWED_PRIVATE_HOSTS)
    token = AccessToken(re.search(r"Token:\s+(\S+)", out)[1])  # type: ignore[index]
    assert (token["sub"], token["workspace_id"]) == ("demo", "demo")
    user = authenticate(username="demo", password="demo-password")
    assert user is not None
    assert Membership.objects.get(user=user, workspace__slug="demo").role == "owner"
    panels = {p.panel_id: p for p in Panel.objects.filter(workspace__slug="demo")}
    assert set(panels) == {"counter", "monitor", "todo"}
    assert all(p.status == PanelStatus.RUNNING for p in panels.values())
    assert panels["monitor"].extension_config == {"http": {"baseURL": f"http://127.0.0.1:{port}"}}
    assert panels["todo"].title == "Tasks"

    again, _ = run("nexus_demo")
    assert again.count("exists, left as it is (status running)") == 3
    assert {p.panel_id: p.pk for p in Panel.objects.filter(workspace__slug="demo")} == {
        k: p.pk for k, p in panels.items()
    }


def test_demo_run_again_leaves_what_exists(transactional_db: None, monkeypatch: Any) -> None:
    monkeypatch.delenv("NEXUS_DEMO_PASSWORD", raising=False)
    run("nexus_demo")
    user = get_user_model().objects.get(username="demo")
    user.set_password("changed-by-the-user")
    user.save()
    edited = COUNTER.replace('title="Counter"', 'title="My counter"')
    counter = Panel.objects.select_related("workspace").get(panel_id="counter")
    async_to_sync(update_source)(counter, edited)
    Panel.objects.get(panel_id="todo").delete()

    monkeypatch.setenv("NEXUS_DEMO_PASSWORD", "another-one")
    out, _ = run("nexus_demo", "--base-url", "http://127.0.0.1:3999")
    assert "panel todo: created" in out and "panel counter: exists, left as it is" in out
    assert "its extensions are" in out  # the monitor still points at the first base URL
    assert "Password: unchanged" in out and "another-one" not in out
    assert authenticate(username="demo", password="changed-by-the-user") is not None
    assert Panel.objects.get(panel_id="counter").source == edited

    out, _ = run("nexus_demo", "--reset-password")
    assert "Password: another-one" in out
    assert authenticate(username="demo", password="another-one") is not None


def test_demo_help_says_what_a_second_run_does() -> None:
    help_text = load_command_class("workspaces", "nexus_demo").help
    assert "creates only what is missing" in help_text and "keeps its password" in help_text


def test_demo_password_from_environment(transactional_db: None, monkeypatch: Any) -> None:
    monkeypatch.setenv("NEXUS_DEMO_PASSWORD", "s3cret-from-env")
    out, _ = run("nexus_demo")
    assert "Password: s3cret-from-env" in out
    assert authenticate(username="demo", password="s3cret-from-env") is not None
