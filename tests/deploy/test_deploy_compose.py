"""docker-compose.yml: valid against the Compose specification, two replicas, shared data."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from deploy_support import COMPOSE, SECRET_ENV_VARS, SERVER_UID

REPLICAS = {"nexus-1": ("3000:3000", "3001"), "nexus-2": ("3002:3000", "3003")}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def compose_schema() -> dict[str, Any]:
    """The Compose specification's JSON schema, as vendored by check-jsonschema (offline)."""
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema: dict[str, Any] = json.loads(schema_file.read_text(encoding="utf-8"))
    return schema


def test_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(compose_schema())
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_schema_check_can_fail(compose: dict[str, Any]) -> None:
    broken = {**compose, "services": {**compose["services"], "redis": {"image": "redis:7", "ports": 6379}}}
    assert list(jsonschema.Draft202012Validator(compose_schema()).iter_errors(broken))


def test_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"migrate", "nexus-1", "nexus-2", "postgres", "redis"}
    assert compose["services"]["postgres"]["image"].startswith("postgres:15")
    assert compose["services"]["redis"]["image"].startswith("redis:7")
    for name in ("postgres", "redis"):
        assert "ports" not in compose["services"][name], "data services stay internal"
        assert compose["services"][name]["healthcheck"]["test"]


@pytest.mark.parametrize("name", sorted(REPLICAS))
def test_replicas(name: str, compose: dict[str, Any]) -> None:
    service = compose["services"][name]
    http, ws_host_port = REPLICAS[name]
    assert service["ports"] == [http, f"{ws_host_port}:3001"]
    # Local builds take the base image's tag; release builds the Dockerfile's pinned digest.
    assert service["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile", "target": "runtime",
                                "args": {"PYTHON_IMAGE": "python:3.11-slim-bookworm"}}
    assert service["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                     "redis": {"condition": "service_healthy"},
                                     "migrate": {"condition": "service_completed_successfully"}}
    assert "/health'" in service["healthcheck"]["test"][-1]
    assert service["user"] == f"{SERVER_UID}:{SERVER_UID}"
    assert service["read_only"] is True
    assert any(entry.startswith("/tmp:") for entry in service["tmpfs"])
    assert service["cap_drop"] == ["ALL"]
    assert service["stop_signal"] == "SIGTERM"
    assert int(service["stop_grace_period"].rstrip("s")) > 25


def test_replicas_share_database_and_channel_layer(compose: dict[str, Any]) -> None:
    environments = [compose["services"][name]["environment"] for name in ("migrate", *REPLICAS)]
    assert all(env == environments[0] for env in environments)
    env = environments[0]
    assert SECRET_ENV_VARS <= env.keys()
    database = urlsplit(env["DATABASE_URL"])
    assert (database.scheme, database.hostname, database.port, database.path) == (
        "postgres", "postgres", 5432, "/nexus")
    postgres_env = compose["services"]["postgres"]["environment"]
    assert database.password == postgres_env["POSTGRES_PASSWORD"]
    assert urlsplit(env["REDIS_URL"]).hostname == "redis"


def test_migrate_is_a_one_shot_before_the_replicas(compose: dict[str, Any]) -> None:
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "ports" not in migrate
