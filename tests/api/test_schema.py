"""The OpenAPI schema describes every route truthfully; the docs page needs no CDN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

EXPECTED_OPERATIONS = {
    ("/api/v1/auth/token/", "post"): {"200", "400", "401"},
    ("/api/v1/auth/token/refresh/", "post"): {"200", "400", "401"},
    ("/api/v1/workspaces/", "get"): {"200", "401"},
    ("/api/v1/workspaces/", "post"): {"201", "400", "401", "403"},
    ("/api/v1/workspaces/{slug}/", "get"): {"200", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/", "patch"): {"200", "400", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/", "delete"): {"204", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/members/", "get"): {"200", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/members/", "post"): {"201", "400", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/members/{username}/", "get"): {"200", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/members/{username}/", "patch"): {"200", "400", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/members/{username}/", "delete"): {"204", "400", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/panels/", "get"): {"200", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/panels/", "post"): {"201", "400", "401", "403", "404", "409", "413", "429", "503"},
    ("/api/v1/workspaces/{slug}/panels/validate/", "post"): {"200", "400", "401", "403", "404", "413"},
    ("/api/v1/workspaces/{slug}/panels/{panel_id}/", "get"): {"200", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/panels/{panel_id}/", "delete"): {"204", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/panels/{panel_id}/", "patch"): {
        "200", "400", "401", "403", "404", "409", "413", "503"},
    ("/api/v1/workspaces/{slug}/panels/{panel_id}/revisions/", "get"): {"200", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/panels/{panel_id}/revisions/{number}/", "get"): {"200", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/panels/{panel_id}/revisions/{number}/restore/", "post"): {
        "200", "400", "401", "403", "404", "503"},
    ("/api/v1/workspaces/{slug}/panels/{panel_id}/state/", "get"): {"200", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/panels/{panel_id}/activity/", "get"): {"200", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/panels/{panel_id}/schedules/{name}/pause/", "post"): {"200", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/panels/{panel_id}/schedules/{name}/resume/", "post"): {"200", "401", "403", "404"},
    ("/api/v1/workspaces/{slug}/panels/{panel_id}/schedules/{name}/run/", "post"): {
        "200", "400", "401", "403", "404", "409", "503"},
    ("/api/v1/workspaces/{slug}/panels/{panel_id}/start/", "post"): {"200", "401", "403", "404", "503"},
    ("/api/v1/workspaces/{slug}/panels/{panel_id}/stop/", "post"): {"200", "401", "403", "404", "503"},
    ("/api/v1/workspaces/{slug}/panels/{panel_id}/tools/{tool}/", "post"): {
        "200", "400", "401", "403", "404", "413", "503"},
    ("/panels", "get"): {"200", "401", "403", "404"},
    ("/panels", "post"): {"201", "400", "401", "403", "404", "409", "413", "429", "503"},
    ("/panels/{panel_id}", "get"): {"200", "401", "403", "404"},
    ("/panels/{panel_id}", "delete"): {"204", "401", "403", "404"},
    ("/panels/{panel_id}/state", "get"): {"200", "401", "403", "404"},
    ("/panels/{panel_id}/trigger/{tool}", "post"): {"200", "400", "401", "403", "404", "413", "503"},
    ("/panels/from-nxml", "post"): {"201", "400", "401", "403", "404", "413", "429", "503"},
    ("/auth/token", "post"): {"200", "400", "401"},
    ("/auth/me", "get"): {"200", "401"},
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    response = Client().get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    return dict(response.json())


def test_every_route_is_described_with_its_responses(schema: dict[str, Any]) -> None:
    described = {
        (path, method): set(operation["responses"])
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "patch", "put", "delete"}
    }
    # Every operation may also be throttled (429 THROTTLED).
    assert described == {operation: codes | {"429"} for operation, codes in EXPECTED_OPERATIONS.items()}


def test_errors_have_the_error_body(schema: dict[str, Any]) -> None:
    operation = schema["paths"]["/api/v1/workspaces/{slug}/panels/"]["post"]
    for status in ("400", "409", "413", "429"):
        content = operation["responses"][status]["content"]["application/json"]["schema"]
        assert content == {"$ref": "#/components/schemas/Error"}
    assert "INVALID_NXML" in operation["responses"]["400"]["description"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("PanelCreateRequest")


def test_bearer_security_scheme(schema: dict[str, Any]) -> None:
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    panels = schema["paths"]["/api/v1/workspaces/{slug}/panels/"]["get"]
    assert {"bearerAuth": []} in panels["security"]
    token = schema["paths"]["/api/v1/auth/token/"]["post"]
    assert token.get("security", []) in ([], [{}])


def test_token_request_documents_the_claims(schema: dict[str, Any]) -> None:
    request = schema["components"]["schemas"]["TokenRequestRequest"]
    assert {"username", "password", "workspace_id", "permissions"} <= set(request["properties"])
    assert set(request["required"]) == {"username", "password"}


def test_schema_is_valid_openapi_without_warnings(tmp_path: Path) -> None:
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").stat().st_size > 1000


def test_docs_use_local_assets() -> None:
    response = Client().get("/api/v1/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn" not in page.lower() and "unpkg" not in page.lower()
    asset = Client().get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200
