"""Security: forged tokens, sessions and CSRF, CORS, headers, cross-workspace probes, audit of denials.

A live server (CORS_ORIGINS set to one origin) for everything that crosses HTTP or a
WebSocket; the audit records are checked in-process through the panel service, where a
forged sandbox answer can also be fed to the service's own re-check.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.hardening.support import GREEDY_PANEL, PASSWORD, pair_panel, record, start_nexus
from tests.integration.conftest import Live, example, receive_until
from tests.support.servers import HARNESS_SECRET, Database

pytestmark = pytest.mark.slow

ALLOWED_ORIGIN = "https://app.example.test"
EVIL_ORIGIN = "https://evil.example.test"
STATE_PATH = "/api/v1/workspaces/acme/panels/secret/state/"


@pytest.fixture(scope="module")
def live(module_database: tuple[Path, Database]) -> Iterator[Live]:
    tmp, database = module_database
    nexus = start_nexus(tmp, database.url, CORS_ORIGINS=ALLOWED_ORIGIN)
    try:
        nexus.create("secret", pair_panel("secret"))
        nexus.create("counter", example("counter"), workspace="other", user="bob")
        yield nexus
    finally:
        nexus.server.terminate()


def get(live: Live, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    return httpx.get(f"{live.server.url}{path}", headers=headers or {}, timeout=30, **kwargs)


def error_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


async def ws_close_code(url: str, headers: dict[str, str] | None = None) -> int | str:
    """The close code the server answers a connection with, 'CONNECTED', or the refused handshake."""
    try:
        socket = await websockets.connect(url, additional_headers=headers or {}, open_timeout=20)
    except InvalidStatus as refused:
        return f"HTTP {refused.response.status_code}"
    try:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
        return "CONNECTED" if frame.get("type") == "CONNECTED" else f"frame {frame}"
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else "no close frame"
    finally:
        await socket.close()


def ws_code(live: Live, path: str, token: str | None = None, headers: dict[str, str] | None = None) -> int | str:
    url = f"{live.server.ws_url}{path}" + (f"?token={token}" if token is not None else "")
    return asyncio.run(ws_close_code(url, headers))


# ---------------------------------------------------------------- JWT tampering


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


def hs512(claims: dict[str, Any]) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT finds the harness key short for SHA-512; irrelevant here
        return jwt.encode(claims, HARNESS_SECRET, algorithm="HS512")


def forged_tokens(live: Live) -> dict[str, str]:
    real = live.tokens["alice"]
    claims = claims_of(real)
    header, payload, signature = real.split(".")
    edited = dict(claims, sub="bob")
    now = int(time.time())
    none_header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return {
        "alg none": f"{none_header}.{payload}.",
        "alg none, no dot": f"{none_header}.{payload}",
        "wrong key": jwt.encode(claims, "not-the-server-secret-but-long-enough-for-hs256", algorithm="HS256"),
        "HS512 with the right key": hs512(claims),
        "expired": jwt.encode(dict(claims, exp=now - 60, iat=now - 3600), HARNESS_SECRET, algorithm="HS256"),
        "payload edited, old signature": f"{header}.{b64(json.dumps(edited).encode())}.{signature}",
        "signature stripped": f"{header}.{payload}.",
        "refresh token as access": live.tokens["alice_refresh"],
        "unknown user": jwt.encode(dict(claims, sub="mallory"), HARNESS_SECRET, algorithm="HS256"),
        "no exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, HARNESS_SECRET, algorithm="HS256"),
        "garbage": "not.a.jwt",
    }


def test_forged_tokens_are_refused_over_rest_and_websocket(live: Live) -> None:
    forged = forged_tokens(live)
    outcomes: dict[str, tuple[int, str | None, int | str]] = {}
    for name, token in forged.items():
        response = get(live, STATE_PATH, {"Authorization": f"Bearer {token}"})
        websocket = ws_code(live, "/ws/workspaces/acme/panels/secret/", token)
        outcomes[name] = (response.status_code, error_code(response), websocket)
    record("security", forged_tokens=len(forged))
    assert all(outcome == (401, "UNAUTHENTICATED", 4401) for outcome in outcomes.values()), outcomes


def test_other_schemes_and_headers_are_not_credentials(live: Live) -> None:
    for header in ("Basic YWxpY2U6aGFyZGVuaW5nLXBhc3N3b3Jk", "Bearer", "Token " + live.tokens["alice"],
                   "bearer  " + "x" * 5000):
        response = get(live, STATE_PATH, {"Authorization": header})
        assert (response.status_code, error_code(response)) == (401, "UNAUTHENTICATED"), header[:30]
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")


def test_workspace_claims_narrow_and_never_widen(live: Live) -> None:
    other_claim = live.tokens["alice_other_ws"]
    response = get(live, STATE_PATH, {"Authorization": f"Bearer {other_claim}"})
    assert (response.status_code, error_code(response)) == (403, "FORBIDDEN")
    assert ws_code(live, "/ws/workspaces/acme/panels/secret/", other_claim) == 4403
    listing = get(live, "/api/v1/workspaces/", {"Authorization": f"Bearer {other_claim}"})
    assert listing.status_code == 200 and listing.json() == []
    # A correctly signed token naming a workspace the user is not in gets nothing either.
    claims = dict(claims_of(live.tokens["bob"]), workspace_id="acme")
    bob_in_acme = jwt.encode(claims, HARNESS_SECRET, algorithm="HS256")
    response = get(live, STATE_PATH, {"Authorization": f"Bearer {bob_in_acme}"})
    assert (response.status_code, error_code(response)) == (404, "NOT_FOUND")
    kernel = get(live, "/panels/secret/state", {"Authorization": f"Bearer {bob_in_acme}"})
    assert (kernel.status_code, error_code(kernel)) == (404, "NOT_FOUND")
    assert ws_code(live, "/panels/secret/ws", bob_in_acme) == 4404
    # And the token endpoint will not mint one.
    minted = httpx.post(f"{live.server.url}/api/v1/auth/token/", timeout=30,
                        json={"username": "bob", "password": PASSWORD, "workspace_id": "acme"})
    assert minted.status_code == 400 and error_code(minted) == "INVALID_REQUEST", minted.text
    read_only = live.tokens["alice_read_only"]
    trigger = httpx.post(f"{live.server.url}/api/v1/workspaces/acme/panels/secret/tools/bump/", json={},
                         headers={"Authorization": f"Bearer {read_only}"}, timeout=30)
    assert (trigger.status_code, error_code(trigger)) == (403, "FORBIDDEN")


# ---------------------------------------------------------------- another workspace's panels by id


PROBES = [
    ("GET", "/api/v1/workspaces/acme/"),
    ("GET", "/api/v1/workspaces/acme/members/"),
    ("GET", "/api/v1/workspaces/acme/members/alice/"),
    ("GET", "/api/v1/workspaces/acme/panels/"),
    ("GET", "/api/v1/workspaces/acme/panels/{id}/"),
    ("GET", "/api/v1/workspaces/acme/panels/{id}/state/"),
    ("POST", "/api/v1/workspaces/acme/panels/{id}/tools/bump/"),
    ("DELETE", "/api/v1/workspaces/acme/panels/{id}/"),
    ("POST", "/api/v1/workspaces/acme/panels/validate/"),
    ("PATCH", "/api/v1/workspaces/acme/"),
    ("DELETE", "/api/v1/workspaces/acme/"),
    ("POST", "/api/v1/workspaces/acme/members/"),
]


def probe(live: Live, user: str, method: str, path: str) -> tuple[int, str | None, str]:
    body = {"source": "<x/>", "username": user, "role": "owner", "name": "x"} if method in ("POST", "PATCH") else None
    response = live.api(method, path, user, json=body)
    return response.status_code, error_code(response), response.text


def test_a_stranger_probing_panels_by_id_learns_nothing(live: Live) -> None:
    before = live.api("GET", STATE_PATH).json()
    answers = []
    for method, template in PROBES:
        existing = probe(live, "bob", method, template.format(id="secret"))
        missing = probe(live, "bob", method, template.format(id="no-such-panel"))
        no_workspace = probe(live, "bob", method, template.replace("/acme/", "/no-such-space/").format(id="x"))
        answers.append((method, template, existing[:2]))
        assert existing[:2] == (404, "NOT_FOUND"), (method, template, existing)
        assert existing[2] == missing[2], "an existing panel answers differently from a missing one"
        assert existing[2].replace("acme", "X") == no_workspace[2].replace("no-such-space", "X"), (
            "a workspace one is not in answers differently from one that does not exist")
        assert "secret" not in existing[2]
    after = live.api("GET", STATE_PATH).json()
    assert after == before, "a stranger's probe changed the panel"
    record("security", cross_workspace_probes=len(PROBES) * 3)


def test_a_stranger_cannot_watch_another_workspace_over_websocket(live: Live) -> None:
    codes = {
        "existing panel": ws_code(live, "/ws/workspaces/acme/panels/secret/", live.tokens["bob"]),
        "missing panel": ws_code(live, "/ws/workspaces/acme/panels/nope/", live.tokens["bob"]),
        "missing workspace": ws_code(live, "/ws/workspaces/no-such-space/panels/secret/", live.tokens["bob"]),
        "kernel path": ws_code(live, "/panels/secret/ws", live.tokens["bob"]),
        "kernel path, own workspace claim": ws_code(live, "/panels/secret/ws", live.tokens["bob_kernel"]),
    }
    assert set(codes.values()) == {4404}, codes
    # The same id in one's own workspace is one's own panel, not the other one.
    assert ws_code(live, "/panels/counter/ws", live.tokens["bob_kernel"]) == "CONNECTED"


def test_a_viewer_may_watch_but_not_change(live: Live) -> None:
    async def attempt() -> list[str]:
        socket = await websockets.connect(live.ws_url("secret", "carol"), open_timeout=20)
        json.loads(await socket.recv())
        codes = []
        for frame in ({"type": "TRIGGER", "tool": "bump", "args": {}, "requestId": "v1"},
                      {"type": "SET", "key": "a", "value": 5, "requestId": "v2"}):
            await socket.send(json.dumps(frame))
            codes.append((await receive_until(socket, "ERROR"))["code"])
        await socket.close()
        return codes

    before = live.api("GET", STATE_PATH).json()["stateVersion"]
    assert asyncio.run(attempt()) == ["FORBIDDEN", "FORBIDDEN"]
    for method, path in (("POST", "/api/v1/workspaces/acme/panels/secret/tools/bump/"),
                         ("DELETE", "/api/v1/workspaces/acme/panels/secret/")):
        response = live.api(method, path, "carol", json={} if method == "POST" else None)
        assert (response.status_code, error_code(response)) == (403, "FORBIDDEN"), (method, response.text)
    assert live.api("GET", STATE_PATH).json()["stateVersion"] == before


# ---------------------------------------------------------------- sessions and CSRF


def login(live: Live, client: httpx.Client, username: str = "alice") -> None:
    client.get("/accounts/login/")
    response = client.post("/accounts/login/", data={
        "username": username, "password": PASSWORD, "csrfmiddlewaretoken": client.cookies["csrftoken"]})
    assert response.status_code == 302, response.text[:300]
    assert "sessionid" in client.cookies


def test_login_needs_the_csrf_token(live: Live) -> None:
    with httpx.Client(base_url=live.server.url, timeout=30) as client:
        client.get("/accounts/login/")
        refused = client.post("/accounts/login/", data={"username": "alice", "password": PASSWORD})
        assert refused.status_code == 403
        assert "sessionid" not in client.cookies


def test_session_cookies_are_http_only_and_same_site(live: Live) -> None:
    with httpx.Client(base_url=live.server.url, timeout=30) as client:
        client.get("/accounts/login/")
        response = client.post("/accounts/login/", data={
            "username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": client.cookies["csrftoken"]})
        cookies = response.headers.get_list("set-cookie")
    session = next(cookie for cookie in cookies if cookie.startswith("sessionid="))
    assert "HttpOnly" in session and "SameSite=Lax" in session, session


def test_session_writes_need_the_csrf_token_and_a_matching_origin(live: Live) -> None:
    path = "/api/v1/workspaces/acme/panels/secret/tools/bump/"
    with httpx.Client(base_url=live.server.url, timeout=30) as client:
        login(live, client)
        assert client.get("/api/v1/workspaces/").status_code == 200
        missing = client.post(path, json={})
        assert (missing.status_code, error_code(missing)) == (403, "FORBIDDEN"), missing.text
        token = client.cookies["csrftoken"]
        forged_origin = client.post(path, json={}, headers={"X-CSRFToken": token, "Origin": EVIL_ORIGIN})
        assert forged_origin.status_code == 403, forged_origin.text
        wrong_token = client.post(path, json={}, headers={"X-CSRFToken": "x" * 32})
        assert wrong_token.status_code == 403
        accepted = client.post(path, json={}, headers={"X-CSRFToken": token, "Origin": live.server.url})
        assert accepted.status_code == 200 and accepted.json()["status"] == "success", accepted.text
    # A bearer token is not ambient authority: no CSRF token needed.
    assert live.api("POST", path, json={}).status_code == 200


def test_browser_pages_need_a_session_and_membership(live: Live) -> None:
    anonymous = get(live, "/workspaces/acme/panels/secret/")
    assert anonymous.status_code == 302 and anonymous.headers["location"].startswith("/accounts/login/")
    with httpx.Client(base_url=live.server.url, timeout=30) as client:
        login(live, client, "bob")
        for path in ("/workspaces/acme/", "/workspaces/acme/panels/secret/", "/workspaces/acme/panels/secret/state/"):
            response = client.get(path)
            assert response.status_code == 404, (path, response.status_code)
            assert "secret" not in response.text.lower() or "no such" in response.text.lower()
        assert client.get("/workspaces/other/panels/counter/").status_code == 200
        assert client.get("/accounts/logout/").status_code == 405, "logging out must not be a GET"


def test_session_websocket_needs_the_same_origin(live: Live) -> None:
    with httpx.Client(base_url=live.server.url, timeout=30) as client:
        login(live, client)
        cookie = {"Cookie": f"sessionid={client.cookies['sessionid']}"}
    path = "/ws/workspaces/acme/panels/secret/"
    assert ws_code(live, path, None, {**cookie, "Origin": live.server.url}) == "CONNECTED"
    assert ws_code(live, path, None, {**cookie, "Origin": EVIL_ORIGIN}) == 4401
    assert ws_code(live, path, None, {**cookie, "Origin": "null"}) in (4401, "HTTP 400", "HTTP 403")


# ---------------------------------------------------------------- CORS and headers


def test_cors_answers_only_the_configured_origin(live: Live) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    allowed = httpx.options(f"{live.server.url}/api/v1/workspaces/", timeout=30,
                            headers={"Origin": ALLOWED_ORIGIN, **preflight})
    assert allowed.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN
    assert "POST" in allowed.headers.get("access-control-allow-methods", "")
    assert "authorization" in allowed.headers.get("access-control-allow-headers", "").lower()
    refused = httpx.options(f"{live.server.url}/api/v1/workspaces/", timeout=30,
                            headers={"Origin": EVIL_ORIGIN, **preflight})
    assert "access-control-allow-origin" not in refused.headers
    simple = get(live, STATE_PATH, {"Origin": ALLOWED_ORIGIN, **live.headers()})
    assert simple.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN
    assert "origin" in simple.headers.get("vary", "").lower()
    assert simple.headers.get("access-control-allow-credentials") != "true", "cookies must not travel cross-origin"
    assert "x-request-id" in simple.headers.get("access-control-expose-headers", "").lower()
    foreign = get(live, STATE_PATH, {"Origin": EVIL_ORIGIN, **live.headers()})
    assert "access-control-allow-origin" not in foreign.headers


HEADER_PATHS = [
    ("/api/v1/workspaces/", True),
    (STATE_PATH, False),  # 401: no credentials
    ("/api/v1/no-such-route/", True),
    ("/accounts/login/", False),
    ("/workspaces/", False),  # redirect to the login page
    ("/health", False),
    ("/health/live", False),
    ("/api/v1/docs/", True),
]


@pytest.mark.parametrize(("path", "authenticated"), HEADER_PATHS)
def test_security_headers_everywhere(live: Live, path: str, authenticated: bool) -> None:
    response = get(live, path, live.headers() if authenticated else {})
    assert response.headers.get("x-content-type-options") == "nosniff", (path, response.status_code)
    assert response.headers.get("x-frame-options") == "DENY", (path, response.status_code)
    assert response.headers.get("referrer-policy") == "same-origin", (path, response.status_code)


def test_static_scripts_are_not_sniffed(live: Live) -> None:
    response = get(live, "/static/workspaces/panel.js")
    assert response.status_code == 200
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert "javascript" in response.headers.get("content-type", "")


# ---------------------------------------------------------------- audit of capability denials


DENIALS = ["writeSecret", "pushItem", "emitEvent", "moveView", "callOut", "dynamicWrite"]


@pytest.fixture
def greedy(transactional_db: None) -> Any:
    from asgiref.sync import async_to_sync
    from django.contrib.auth import get_user_model

    from workspaces.models import Membership, Workspace
    from workspaces.services import panels as service

    user = get_user_model().objects.create_user(username="eve", password=PASSWORD)
    workspace = Workspace.objects.create(slug="audit", name="Audit")
    Membership.objects.create(user=user, workspace=workspace, role="owner")
    _panel, outcome = async_to_sync(service.create_panel)(workspace, GREEDY_PANEL, panel_id="greedy")
    assert outcome is None or outcome.status == "success"
    return workspace


def test_every_capability_denial_is_audited(greedy: Any) -> None:
    from asgiref.sync import async_to_sync

    from workspaces.models import AuditRecord
    from workspaces.services import panels as service

    for tool in DENIALS:
        panel = service.get_panel(greedy, "greedy")
        before_state, before_count = dict(panel.state), AuditRecord.objects.count()
        outcome = async_to_sync(service.run_tool)(panel, tool, {}, actor="eve")
        assert outcome.status == "error" and outcome.error["code"] == "PERMISSION_DENIED", (tool, outcome.body())
        assert outcome.return_value != "escaped"
        assert service.get_panel(greedy, "greedy").state == before_state, f"{tool} changed the state"
        records = list(AuditRecord.objects.order_by("-pk")[: AuditRecord.objects.count() - before_count])
        assert len(records) == 1, (tool, [str(r) for r in records])
        audit = records[0]
        assert (audit.workspace, audit.panel, audit.handler, audit.user, audit.outcome) == (
            "audit", "greedy", tool, "eve", "denied"), vars(audit)
        assert audit.reason
    record("security", audited_denials=len(DENIALS))


def test_the_service_rechecks_what_a_compromised_sandbox_reports(greedy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even if guest and host checks were bypassed, the apply step refuses, writes nothing and audits."""
    from asgiref.sync import async_to_sync

    from runtime import ExecutionResult
    from workspaces.models import AuditRecord
    from workspaces.services import panels as service
    from workspaces.services.sandbox import get_runtime

    forged = [
        ExecutionResult(status="success", return_value="escaped",
                        state_mutations=[{"key": "secret", "value": 42, "operation": "set"}]),
        ExecutionResult(status="success", return_value="escaped", events=[{"name": "leak", "payload": 1}]),
        ExecutionResult(status="success", return_value="escaped",
                        view_commands=[{"type": "focus", "componentId": "secretBox", "args": {}}]),
    ]
    runtime = get_runtime()
    for result in forged:
        monkeypatch.setattr(runtime, "execute", lambda *args, _result=result, **kwargs: _result)
        panel = service.get_panel(greedy, "greedy")
        before_state, before_count = dict(panel.state), AuditRecord.objects.count()
        outcome = async_to_sync(service.run_tool)(panel, "writeSecret", {}, actor="eve")
        assert outcome.status == "error" and outcome.error["code"] == "PERMISSION_DENIED", outcome.body()
        stored = service.get_panel(greedy, "greedy")
        assert stored.state == before_state and stored.state["secret"] == 0
        assert AuditRecord.objects.count() == before_count + 1
