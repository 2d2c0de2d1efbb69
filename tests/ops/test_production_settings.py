"""Production settings: refused secrets, the database pool, secure cookies, key rotation, /metrics, logs."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from django.conf import settings
from django.db import OperationalError
from django.test import Client, override_settings
from rest_framework_simplejwt import state
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from nexus.capacity import MIB, cgroup_memory_limit, memory_budget
from nexus.config import ConfigError, load_config
from tests.support.servers import ROOT, base_env, manage
from workspaces.api.signing import RotatingTokenBackend, key_id

GOOD = {"JWT_SECRET": "a-real-jwt-key-0123456789", "SECRET_KEY": "a-real-django-key-0123456789"}
SECRET_YAML = ROOT / "deploy" / "k8s" / "base" / "secret.yaml"


def placeholder(name: str) -> str:
    """The value deploy/k8s/base/secret.yaml ships for one key."""
    for line in SECRET_YAML.read_text().splitlines():
        key, _, value = line.strip().partition(":")
        if key == name:
            return value.strip().strip('"')
    raise AssertionError(f"{name} is not in {SECRET_YAML}")


# ---------------------------------------------------------------- secrets refused without DEBUG


@pytest.mark.parametrize("name", ["JWT_SECRET", "SECRET_KEY", "DATABASE_URL"])
def test_the_shipped_placeholder_secrets_are_refused_without_debug(name: str) -> None:
    environ = {**GOOD, name: placeholder(name)}
    with pytest.raises(ConfigError, match=f"{name} hold"):
        load_config(environ)
    assert load_config({**environ, "DEBUG": "true"}).DEBUG  # a development setup may use them


def test_the_make_run_development_secrets_are_refused_without_debug() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "dev-only-secret-key" in makefile and "dev-only-jwt-secret" in makefile
    environ = {"JWT_SECRET": "dev-only-jwt-secret-change-me-please", "SECRET_KEY": "dev-only-secret-key-change-me"}
    with pytest.raises(ConfigError, match="JWT_SECRET, SECRET_KEY hold"):
        load_config(environ)
    with pytest.raises(ConfigError, match="JWT_SECRET_PREVIOUS hold"):
        load_config({**GOOD, "JWT_SECRET_PREVIOUS": "old-real-key,dev-only-jwt-secret"})


def test_the_pool_minimum_cannot_exceed_its_maximum() -> None:
    with pytest.raises(ConfigError, match=r"DB_POOL_MIN_SIZE=5 is invalid: must be <= DB_POOL_MAX_SIZE \(4\)"):
        load_config({**GOOD, "DB_POOL_MIN_SIZE": "5", "DB_POOL_MAX_SIZE": "4"})


def test_nexus_check_deploy_fails_on_debug_and_development_secrets() -> None:
    env = base_env(DEBUG="true", JWT_SECRET="dev-only-jwt-secret-change-me-please",
                   SECRET_KEY="dev-only-secret-key-change-me")
    done = manage("nexus_check", "--deploy", env=env, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = [line for line in done.stdout.splitlines() if "production" in line]
    assert line.startswith("fail") and "DEBUG=true" in line and "JWT_SECRET, SECRET_KEY" in line, line
    refused = manage("nexus_check", "--deploy", env={**env, "DEBUG": "false"}, check=False)
    assert refused.returncode == 2 and "refused when DEBUG=false" in refused.stderr, refused.stderr


def test_django_deploy_check_finds_the_cookies_secure() -> None:
    done = manage("check", "--deploy", env=base_env(DEBUG="false", COOKIES_SECURE="true"), check=False)
    assert "W012" not in done.stdout + done.stderr and "W016" not in done.stdout + done.stderr
    assert settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE  # the tests run with DEBUG off


# ---------------------------------------------------------------- database connections


def test_postgresql_uses_a_bounded_pool_and_sqlite_keeps_its_connections() -> None:
    from nexus.settings import _database

    database = _database("postgres://nexus@db.internal:5432/nexus")
    assert database["CONN_MAX_AGE"] == 0
    pool = database["OPTIONS"]["pool"]
    assert (pool["min_size"], pool["max_size"], pool["timeout"]) == (2, 10, 2)
    assert database["OPTIONS"]["application_name"] == "nexus"
    # The service's worker threads outlive requests: reopening SQLite per segment doubled a trigger.
    assert _database("sqlite:///tmp/x.sqlite3")["CONN_MAX_AGE"] == 60


def test_a_503_from_the_database_logs_why(caplog: pytest.LogCaptureFixture) -> None:
    from workspaces.api.errors import exception_handler

    with caplog.at_level(logging.WARNING):
        response = exception_handler(OperationalError("connection to server at 127.0.0.1 refused"), {})
    assert response is not None and response.status_code == 503
    assert any("connection to server at 127.0.0.1 refused" in record.getMessage() for record in caplog.records)


# ---------------------------------------------------------------- JWT rotation


@pytest.fixture
def rotated() -> Iterator[str]:
    """The process's keys after a rotation: a new current key, the test key as the previous one."""
    old_key = settings.SIMPLE_JWT["SIGNING_KEY"]
    installed = state.token_backend
    state.token_backend = RotatingTokenBackend("HS256", "the-new-key-after-rotation-0123456789abcdef", [old_key])
    try:
        yield old_key
    finally:
        state.token_backend = installed


def test_tokens_name_their_key_and_verify() -> None:
    token = str(AccessToken())
    assert jwt.get_unverified_header(token)["kid"] == key_id(settings.SIMPLE_JWT["SIGNING_KEY"])
    assert AccessToken(token)["token_type"] == "access"


@pytest.mark.django_db
def test_a_token_signed_with_the_previous_key_still_works_after_rotation(make_user, token_for) -> None:  # type: ignore[no-untyped-def]
    token = token_for(make_user("rotating"))  # signed before the rotation, with the key that becomes previous
    client = Client()
    assert client.get("/api/v1/workspaces/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    installed = state.token_backend
    state.token_backend = RotatingTokenBackend("HS256", "the-new-key-after-rotation-0123456789abcdef", [settings.SIMPLE_JWT["SIGNING_KEY"]])
    try:
        after = client.get("/api/v1/workspaces/", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert after.status_code == 200, after.content
        assert jwt.get_unverified_header(str(AccessToken()))["kid"] == key_id("the-new-key-after-rotation-0123456789abcdef")
        state.token_backend = RotatingTokenBackend("HS256", "the-new-key-after-rotation-0123456789abcdef")  # previous key dropped
        dropped = client.get("/api/v1/workspaces/", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert dropped.status_code == 401
    finally:
        state.token_backend = installed


def test_tokens_without_a_key_id_are_tried_against_every_key(rotated: str) -> None:
    legacy = jwt.encode({"token_type": "access", "exp": 4102444800, "jti": "j", "sub": "u"}, rotated, "HS256")
    assert "kid" not in jwt.get_unverified_header(legacy)
    assert AccessToken(legacy)["sub"] == "u"


def test_a_token_of_an_unknown_key_is_refused(rotated: str) -> None:
    forged = RotatingTokenBackend("HS256", "a-key-nobody-configured-0123456789abcdef").encode(
        {"token_type": "access", "exp": 4102444800, "jti": "j", "sub": "u"}
    )
    with pytest.raises(TokenError):
        AccessToken(forged)


def test_an_expired_token_of_the_previous_key_is_expired_not_invalid(rotated: str) -> None:
    expired = RotatingTokenBackend("HS256", rotated).encode({"token_type": "access", "exp": 1, "jti": "j"})
    with pytest.raises(TokenError, match="expired"):
        AccessToken(expired)


def test_previous_django_keys_become_fallbacks() -> None:
    done = manage("shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY_FALLBACKS)",
                  env=base_env(SECRET_KEY_PREVIOUS="old-one, older-one"))
    assert done.stdout.strip().splitlines()[-1] == "['old-one', 'older-one']"


# ---------------------------------------------------------------- /metrics


def with_nexus(**changes: object) -> override_settings:
    return override_settings(NEXUS=dataclasses.replace(settings.NEXUS, **changes))


def test_metrics_are_not_served_anonymously_on_the_public_port() -> None:
    client = Client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", SERVER_PORT="3000").json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.django_db
def test_metrics_are_served_on_the_metrics_port() -> None:
    response = Client().get("/metrics", SERVER_PORT=str(settings.NEXUS.METRICS_PORT))
    assert response.status_code == 200 and b"nexus_handler_executions_total" in response.content
    with with_nexus(METRICS_PORT=0):
        assert Client().get("/metrics", SERVER_PORT="0").status_code == 404


@pytest.mark.django_db
def test_metrics_need_the_token_on_the_public_port() -> None:
    client = Client()
    with with_nexus(METRICS_TOKEN="scrape-token-123"):
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-123").status_code == 200
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
        assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404  # no token configured


# ---------------------------------------------------------------- logs


def test_probes_log_at_debug_and_other_requests_at_info(caplog: pytest.LogCaptureFixture) -> None:
    client = Client()
    with caplog.at_level(logging.DEBUG, logger="nexus.request"):
        client.get("/health/live")
        client.get("/api/v1/nothing-here/")
    levels = {record.path: record.levelno for record in caplog.records if record.name == "nexus.request"}  # type: ignore[attr-defined]
    assert levels["/health/live"] == logging.DEBUG
    assert levels["/api/v1/nothing-here/"] == logging.INFO


# ---------------------------------------------------------------- memory budget


def test_memory_budget_reads_the_cgroup_limit(tmp_path: Path) -> None:
    limit = tmp_path / "memory.max"
    limit.write_text("367001600\n")
    assert cgroup_memory_limit(str(limit)) == 350 * MIB
    limit.write_text("max\n")
    assert cgroup_memory_limit(str(limit)) is None
    assert cgroup_memory_limit(str(tmp_path / "missing")) is None


def test_memory_budget_names_the_settings_when_the_pool_cannot_fit(tmp_path: Path) -> None:
    limit = tmp_path / "memory.max"
    limit.write_text(str(350 * MIB))
    budget = memory_budget(10, 32, 90 * MIB, str(limit))
    assert not budget.fits
    assert budget.describe() == (
        f"MAX_INSTANCES=10 x MEMORY_LIMIT_MB=32 + 90 MiB base = 410 MiB exceeds the container's memory limit of "
        f"350 MiB ({limit}): lower MAX_INSTANCES or MEMORY_LIMIT_MB, or raise the limit"
    )
    assert memory_budget(5, 32, 90 * MIB, str(limit)).fits


@pytest.mark.slow
def test_the_server_refuses_to_start_when_the_pool_cannot_fit(tmp_path: Path) -> None:
    limit = tmp_path / "memory.max"
    limit.write_text(str(300 * MIB))
    env = base_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", CGROUP_MEMORY_MAX=str(limit),
                   MAX_INSTANCES="10", MEMORY_LIMIT_MB="32", CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([*manage_command(), "nexus_serve", "--port", "1"], cwd=ROOT,
                          env={**env, "METRICS_PORT": "0"}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    [line] = [line for line in done.stderr.splitlines() if "MAX_INSTANCES" in line]
    assert "MAX_INSTANCES=10 x MEMORY_LIMIT_MB=32" in line and "exceeds the container's memory limit of 300 MiB" in line
    limit.write_text(str(4096 * MIB))
    checked = manage("nexus_check", "--startup", env=env, check=False)
    assert any(line.startswith("ok") and "fits the container limit of 4096 MiB" in line
               for line in checked.stdout.splitlines()), checked.stdout


def manage_command() -> list[str]:
    import sys

    return [sys.executable, "manage.py"]


# ---------------------------------------------------------------- make run


def make_run_environment(**environ: str) -> dict[str, str]:
    """The environment `make run` gives the server, evaluated by the shell as make would run it."""
    import os

    plan = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    serve = next(line for line in reversed(plan.splitlines()) if "nexus_serve" in line)
    assignments = serve.split(" .venv/bin/python", 1)[0]
    shell = {"PATH": os.environ["PATH"], **environ}
    printed = subprocess.run(["sh", "-c", f"{assignments} env"], env=shell, capture_output=True, text=True,
                             check=True).stdout
    return dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)


def test_make_run_binds_loopback_unless_host_is_set() -> None:
    assert make_run_environment()["HOST"] == "127.0.0.1"
    assert make_run_environment(HOST="0.0.0.0")["HOST"] == "0.0.0.0"
    allowed = make_run_environment()["HTTP_ALLOWED_PRIVATE_HOSTS"].split(",")
    assert {"127.0.0.1", "localhost"} <= set(allowed)


# ---------------------------------------------------------------- Sentry


def test_errors_go_to_sentry_only_when_a_dsn_is_set() -> None:
    import gzip
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[bytes] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    collector = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    script = "import sentry_sdk; sentry_sdk.capture_message('nexus-sentry-probe'); sentry_sdk.flush(10)"
    try:
        manage("shell", "-c", script, env=base_env())
        assert received == []
        dsn = f"http://publickey@127.0.0.1:{collector.server_address[1]}/1"
        manage("shell", "-c", script, env=base_env(SENTRY_DSN=dsn))
    finally:
        collector.shutdown()
    assert any(b"nexus-sentry-probe" in body for body in received), received
    assert any(b'"release":"nexus@' in body.replace(b" ", b"") for body in received)
