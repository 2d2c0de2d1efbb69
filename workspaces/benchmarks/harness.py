"""Real Nexus server processes on loopback, for the benchmarks and the integration tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
HARNESS_SECRET = "loopback-harness-jwt-secret-not-for-production"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "nexus.settings",
            "JWT_SECRET": HARNESS_SECRET,
            "SECRET_KEY": "loopback-harness-secret-key-not-for-production",
            "LOG_LEVEL": "warn",
            "MIN_INSTANCES": "1",
            "HEARTBEAT_SECONDS": "20",
            "PYTHONUNBUFFERED": "1",
            # The loopback servers speak plain HTTP, so a Secure cookie would never come back.
            "COOKIES_SECURE": "false",
            # Load tests and benchmarks drive one workspace far past its production quotas;
            # the quota tests set their own.
            "WORKSPACE_MAX_CONCURRENT": "1000",
            "WORKSPACE_EXECUTIONS_PER_MINUTE": "10000000",
            "WORKSPACE_SANDBOX_MS_PER_MINUTE": "100000000",
            "WORKSPACE_HTTP_CALLS_PER_MINUTE": "10000000",
        }
    )
    env.update(overrides)
    return env


def manage(
    *args: str, env: dict[str, str], check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, text=True, capture_output=True,
        timeout=timeout, check=check,
    )


@dataclass
class Database:
    """A scratch database for server processes: a SQLite file, or a fresh PostgreSQL database."""

    url: str
    cleanup: list[str] = field(default_factory=list)


@contextlib.contextmanager
def scratch_database(tmp_path: Path) -> Iterator[Database]:
    main_url = os.environ.get("DATABASE_URL", "")
    if main_url.startswith("postgres"):
        import psycopg

        name = f"nexus_it_{uuid.uuid4().hex[:10]}"
        admin = main_url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield Database(main_url.rsplit("/", 1)[0] + "/" + name)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        yield Database(f"sqlite:///{tmp_path / 'nexus-it.sqlite3'}")


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    env: dict[str, str]
    log_path: Path
    metrics_port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Where Prometheus scrapes: the process's metrics port (the public port answers 404)."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def start_server(env: dict[str, str], log_dir: Path, port: int | None = None, wait_s: float = 60) -> Server:
    port = port or free_port()
    metrics_port = free_port()
    log_path = log_dir / f"server-{port}.log"
    handle = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "nexus_serve", "--host", "127.0.0.1", "--port", str(port), "--single-port"],
        cwd=ROOT, env={**env, "METRICS_PORT": str(metrics_port)}, stdout=handle, stderr=subprocess.STDOUT, text=True,
    )
    server = Server(process, port, env, log_path, metrics_port)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/health/live", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"server did not answer within {wait_s} s:\n{server.log()}")


PROVISION_SCRIPT = """
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.tokens import AccessToken
from workspaces.models import Membership, Role, Workspace
user, created = get_user_model().objects.get_or_create(username={username!r})
if created:
    user.set_password({password!r}); user.save()
workspace, _ = Workspace.objects.get_or_create(slug={workspace!r}, defaults={{"name": {workspace!r}}})
workspace.max_panels = {max_panels!r}; workspace.save()
Membership.objects.update_or_create(user=user, workspace=workspace, defaults={{"role": {role!r}}})
token = AccessToken.for_user(user)
for key, value in {claims!r}.items():
    token[key] = value
print("TOKEN=" + str(token))
"""


def provision(
    env: dict[str, str], username: str = "bench", workspace: str = "bench", password: str = "bench-password",  # noqa: S107 - loopback test user only
    max_panels: int | None = None, role: str = "owner", claims: dict[str, object] | None = None,
    migrate: bool = True,
) -> str:
    """Migrate the database, make a user owning a workspace, and return an access token for it."""
    if migrate:
        manage("migrate", "--noinput", env=env)
    script = PROVISION_SCRIPT.format(
        username=username, password=password, workspace=workspace, max_panels=max_panels, role=role,
        claims=claims or {},
    )
    done = manage("shell", "-c", script, env=env)
    for line in done.stdout.splitlines():
        if line.startswith("TOKEN="):
            return line.removeprefix("TOKEN=")
    raise RuntimeError(f"provisioning printed no token:\n{done.stdout}\n{done.stderr}")


def unique_prefix() -> str:
    """A Redis key prefix of its own, so that servers of different runs never hear each other."""
    return f"nexus-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """The configured Redis, or a private redis-server on a free loopback port when there is none."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)
