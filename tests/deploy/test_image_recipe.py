"""The runtime image's recipe, carried out without a Docker engine.

The module fixture builds what deploy/Dockerfile's runtime stage holds, step by step as
the builder stage does it: requirements from pyproject.toml, wheels, a fresh virtualenv
installed from those wheels only, the application tree copied like the builder copies
it, static files collected, bytecode compiled, and code and virtualenv made read-only.
The tests then run the image's entrypoint with the Dockerfile's ENV as an unprivileged
user, with the root filesystem remounted read-only in a private mount namespace so that
only /tmp is writable (when the test runs as root; otherwise as the current user).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from deploy_support import DEPLOY, DOCKERFILE, ENTRYPOINT, REPO, env_values, parse_dockerfile

pytestmark = pytest.mark.slow

UNPRIVILEGED_UID = 65534
APP_PARTS = ["manage.py", "nexus", "workspaces", "runtime"]
OPTIONAL_APP_PARTS = ["templates"]
HEALTH_WAIT_S = 180.0
# Make / read-only except /tmp, then drop to the unprivileged user and run the command.
READ_ONLY_ROOT = 'mount --bind /tmp /tmp && mount -o remount,bind,ro / && exec "$@"'
SECRETS = {"SECRET_KEY": "recipe-test-secret-key-" + "k" * 32, "JWT_SECRET": "recipe-test-jwt-" + "j" * 32}


@dataclass
class Isolation:
    """How the image's user and read-only root are imitated on this machine."""

    uid: int
    read_only_root: bool
    notes: list[str] = field(default_factory=list)

    def wrap(self, command: list[str]) -> list[str]:
        wrapped = command
        if self.uid != os.geteuid():
            wrapped = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", "--", *wrapped]
        if self.read_only_root:
            wrapped = ["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY_ROOT, "sh", *wrapped]
        return wrapped


@dataclass
class Recipe:
    root: Path
    venv: Path
    app: Path
    entrypoint: Path
    image_env: dict[str, str]
    isolation: Isolation

    def run_dir(self, name: str) -> Path:
        """A fresh writable directory for one container run (its /tmp, HOME and cache)."""
        directory = self.root / "run" / name
        directory.mkdir(parents=True)
        os.chown(directory, self.isolation.uid, self.isolation.uid)
        directory.chmod(0o700)
        return directory

    def container_env(self, run_dir: Path, **overrides: str) -> dict[str, str]:
        env = dict(self.image_env)
        env.update({
            "HOME": str(run_dir),
            "TMPDIR": str(run_dir),
            "XDG_CACHE_HOME": str(run_dir / ".cache"),
            "CACHE_DIR": str(run_dir / "nexus-cache"),
            "DATABASE_URL": f"sqlite:///{run_dir / 'db.sqlite3'}",
            "HOST": "127.0.0.1",
            **SECRETS,
        })
        env.update(overrides)
        return env


def run(command: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def must(command: list[str], timeout: float = 300, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    completed = run(command, timeout, **kwargs)
    output = (completed.stdout + completed.stderr)[-6000:]
    assert completed.returncode == 0, f"{' '.join(map(str, command))} failed ({completed.returncode}):\n{output}"
    return completed


def choose_isolation() -> Isolation:
    if os.geteuid() != 0:
        return Isolation(os.geteuid(), False, [
            "not running as root: the server runs as the current user and the root filesystem stays writable "
            "(the code copy is still read-only)"])
    if shutil.which("setpriv") is None:
        return Isolation(0, False, ["setpriv is missing: cannot drop to an unprivileged user"])
    probe = run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                 READ_ONLY_ROOT.replace('exec "$@"', "! touch /.nexus-ro-probe 2>/dev/null")], 30)
    if probe.returncode != 0:
        return Isolation(UNPRIVILEGED_UID, False, [
            f"cannot remount / read-only in a mount namespace ({probe.stderr.strip()[:200]}); "
            "only the uid and the read-only code copy are imitated"])
    return Isolation(UNPRIVILEGED_UID, True)


def base_interpreter(isolation: Isolation) -> str:
    """A Python 3.11 with venv that the unprivileged user can execute (as python:3.11-slim has)."""
    candidates = ["/usr/local/bin/python3.11", "/usr/bin/python3.11", getattr(sys, "_base_executable", "")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            probe = run(isolation.wrap([candidate, "-c", "import sys, venv, ensurepip; "
                                        "assert sys.version_info[:2] == (3, 11)"]), 60)
            if probe.returncode == 0:
                return candidate
    pytest.fail(f"no Python 3.11 with venv usable by uid {isolation.uid} among {candidates}")


def image_environment(venv: Path) -> dict[str, str]:
    """The ENV of the Dockerfile's base stage, with its paths mapped into this machine."""
    stages = {stage.name: stage for stage in parse_dockerfile(DOCKERFILE.read_text())}
    env = env_values(stages["base"])
    env["PATH"] = env["PATH"].replace("/opt/venv", str(venv)).replace("$PATH", "/usr/bin:/bin")
    env["VIRTUAL_ENV"] = str(venv)
    return env


def make_read_only(top: Path) -> None:
    for directory, _, files in os.walk(top):
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & ~0o222)
        Path(directory).chmod(Path(directory).stat().st_mode & ~0o222)


def make_writable(top: Path) -> None:
    for directory, _, files in os.walk(top):
        Path(directory).chmod(Path(directory).stat().st_mode | 0o700)
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o600)


def missing_app_parts() -> list[str]:
    return [part for part in APP_PARTS if not (REPO / part).exists()]


@pytest.fixture(scope="module")
def recipe() -> Iterator[Recipe]:
    missing = missing_app_parts()
    assert not missing, f"the application is incomplete, the image cannot be built: {missing}"
    isolation = choose_isolation()
    for note in isolation.notes:
        warnings.warn(f"image recipe: {note}", stacklevel=1)
    root = Path(tempfile.mkdtemp(prefix="nexus-recipe-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield build(root, isolation)
    finally:
        make_writable(root)
        shutil.rmtree(root, ignore_errors=True)


def build(root: Path, isolation: Isolation) -> Recipe:
    # builder stage: requirements, wheels, virtualenv from the wheels only
    requirements = root / "requirements.txt"
    requirements.write_text(must([sys.executable, str(DEPLOY / "pyproject_requirements.py"),
                                  str(REPO / "pyproject.toml")]).stdout)
    venv = root / "venv"
    must([base_interpreter(isolation), "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    wheels = root / "wheels"
    must([python, "-m", "pip", "wheel", "--disable-pip-version-check", "--wheel-dir", str(wheels),
          "-r", str(requirements)], timeout=1200)
    must([python, "-m", "pip", "install", "--disable-pip-version-check", "--no-cache-dir", "--no-index",
          "--find-links", str(wheels), "-r", str(requirements)], timeout=900)
    # builder stage: the application tree, static files, bytecode
    app = root / "app"
    app.mkdir()
    for part in APP_PARTS + [p for p in OPTIONAL_APP_PARTS if (REPO / p).exists()]:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, app / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, app / part)
    build_tmp = root / "build-tmp"
    build_tmp.mkdir()
    build_env = {**image_environment(venv), "HOME": str(build_tmp), "CACHE_DIR": str(build_tmp / "cache"),
                 "DATABASE_URL": f"sqlite:///{build_tmp / 'collectstatic.sqlite3'}", **SECRETS}
    must([python, "manage.py", "collectstatic", "--noinput"], cwd=app, env=build_env)
    must([python, "-m", "compileall", "-q", str(app)])
    shutil.rmtree(build_tmp)
    shutil.rmtree(wheels)  # not part of the runtime stage
    # runtime stage: entrypoint, read-only code and environment
    entrypoint = root / "bin" / "nexus-entrypoint"
    entrypoint.parent.mkdir()
    shutil.copy2(ENTRYPOINT, entrypoint)
    entrypoint.chmod(0o555)
    make_read_only(app)
    make_read_only(venv)
    (root / "run").mkdir(mode=0o755)
    return Recipe(root, venv, app, entrypoint, image_environment(venv), isolation)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for_health(url: str, process: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + HEALTH_WAIT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode} before answering:\n{log.read_text()[-6000:]}")
        try:
            status, body = get(url)
        except OSError as error:
            last = str(error)
        else:
            if status == 200:
                parsed: dict[str, Any] = json.loads(body)
                return parsed
            last = f"{status} {body[:300]!r}"
        time.sleep(0.5)
    pytest.fail(f"/health did not answer 200 within {HEALTH_WAIT_S:.0f} s (last: {last}):\n{log.read_text()[-6000:]}")


def files_under(top: Path) -> set[str]:
    return {str(Path(directory, name)) for directory, _, names in os.walk(top) for name in names}


def test_runtime_venv_has_working_binary_wheels(recipe: Recipe) -> None:
    probe = must([str(recipe.venv / "bin" / "python"), "-c",
                  "import psycopg, wasmtime, daphne; print(psycopg.pq.__impl__)"])
    assert probe.stdout.strip() == "binary"


def test_server_starts_from_the_recipe_answers_health_and_stops_on_sigterm(recipe: Recipe) -> None:
    run_dir = recipe.run_dir("serve")
    http_port, ws_port, metrics_port = free_ports(3)
    env = recipe.container_env(run_dir, HTTP_PORT=str(http_port), WS_PORT=str(ws_port), METRICS_PORT=str(metrics_port))
    wrap = recipe.isolation.wrap
    must(wrap([str(recipe.entrypoint), "migrate"]), timeout=300, cwd=recipe.app, env=env)
    app_files = files_under(recipe.app)
    log = run_dir.parent / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(wrap([str(recipe.entrypoint)]), cwd=recipe.app, env=env, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        health = wait_for_health(f"http://127.0.0.1:{http_port}/health", process, log)
        assert health["status"] == "healthy", health
        assert get(f"http://127.0.0.1:{http_port}/health/live")[0] == 200
        assert get(f"http://127.0.0.1:{ws_port}/health/live")[0] == 200, "WS_PORT serves too"
        status = Path(f"/proc/{process.pid}/status").read_text()
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1:] == [str(recipe.isolation.uid)] * 4, uid_line
        assert b"nexus_serve" in Path(f"/proc/{process.pid}/cmdline").read_bytes(), "exec chain broken"

        stages = {stage.name: stage for stage in parse_dockerfile(DOCKERFILE.read_text())}
        healthcheck = json.loads(stages["runtime"].last("HEALTHCHECK").partition(" CMD ")[2])
        probe = run(wrap(healthcheck), 30, cwd=recipe.app, env=env)
        assert probe.returncode == 0, probe.stderr

        process.send_signal(signal.SIGTERM)
        grace = int(env["SHUTDOWN_GRACE_SECONDS"])
        returncode = process.wait(timeout=grace + 20)
        assert returncode == 0, log.read_text()[-6000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    assert files_under(recipe.app) == app_files, "the server wrote into its code directory"
    assert (run_dir / "nexus-cache").is_dir(), "CACHE_DIR is where the module cache goes"


def test_entrypoint_refuses_to_serve_an_unmigrated_database(recipe: Recipe) -> None:
    run_dir = recipe.run_dir("unmigrated")
    http_port, ws_port, metrics_port = free_ports(3)
    env = recipe.container_env(run_dir, HTTP_PORT=str(http_port), WS_PORT=str(ws_port), METRICS_PORT=str(metrics_port))
    completed = run(recipe.isolation.wrap([str(recipe.entrypoint)]), 300, cwd=recipe.app, env=env)
    assert completed.returncode != 0
    output = completed.stdout + completed.stderr
    assert "migration" in output and "start-up checks failed" in output, output[-3000:]
