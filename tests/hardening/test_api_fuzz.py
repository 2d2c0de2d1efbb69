"""Schemathesis against the schema the server itself serves at /api/v1/schema/.

Every operation gets a bounded number of generated requests, half of them aimed at real
resources (workspace ``acme``, panels ``counter`` and ``todo``, tool ``increment``, member
``alice``) so that the fuzzer gets past the 404s, half with generated path parameters; both
with schema-conforming and with schema-violating data. For every answer:

- no 5xx;
- the status code, content type and body conform to the schema;
- every 4xx body is ``{"error": {"code", "message", "details"?}}``.

Requests are authenticated as the owner of ``acme`` (the kernel routes with a token whose
``workspace_id`` is ``acme``). Destructive operations are followed by a repair of the fixture
world so later examples still reach real resources.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from tests.hardening.support import bump, hardening_settings, record, start_nexus
from tests.integration.conftest import Live, example
from tests.support.servers import Database

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 30
REAL_PARAMETERS = {"slug": "acme", "panel_id": "counter", "tool": "increment", "username": "alice"}
ERROR_KEYS = {"code", "message", "details"}


def _operations() -> list[tuple[str, str]]:
    """Operations of the schema, generated in-process at collection time (no server needed)."""
    from drf_spectacular.generators import SchemaGenerator

    document = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )


OPERATIONS = _operations()


class FuzzTarget:
    def __init__(self, live: Live) -> None:
        self.live = live
        self.schema = schemathesis.openapi.from_url(f"{live.server.url}/api/v1/schema/?format=json")
        self.served = httpx.get(f"{live.server.url}/api/v1/schema/?format=json", timeout=30).json()

    def token_for(self, path: str) -> str:
        return self.live.tokens["alice_kernel" if path.startswith("/panels") else "alice"]

    def repair(self) -> None:
        """Put back what a destructive example removed: the workspace and the two panels.

        The panel limit needs no repair: it is a staff setting the API only shows.
        """
        api = self.live.api
        if api("GET", "/api/v1/workspaces/acme/").status_code == 404:
            assert api("POST", "/api/v1/workspaces/", json={"slug": "acme", "name": "Acme"}).status_code == 201
        existing = api("GET", "/api/v1/workspaces/acme/panels/").json().get("panels", [])
        ids = {panel["id"] for panel in existing}
        for panel_id in ("counter", "todo"):
            if panel_id not in ids:
                self.live.create(panel_id, example(panel_id))


@pytest.fixture(scope="module")
def target(module_database: tuple[Path, Database]) -> Iterator[FuzzTarget]:
    tmp, database = module_database
    live = start_nexus(tmp, database.url, BODY_LIMIT="64kb")
    try:
        live.create("counter", example("counter"))
        live.create("todo", example("todo"))
        yield FuzzTarget(live)
    finally:
        live.server.terminate()


def error_body_problems(response: Any) -> list[str]:
    if not 400 <= response.status_code < 500:
        return []
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        return [f"{response.status_code} body is not JSON: {response.content[:200]!r}"]
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return [f"{response.status_code} body has no error object: {body!r:.300}"]
    problems = []
    if not isinstance(error.get("code"), str) or not error["code"].isupper():
        problems.append(f"error.code is not an upper-case code: {error.get('code')!r}")
    if not isinstance(error.get("message"), str) or not error["message"]:
        problems.append(f"error.message is missing: {error!r:.300}")
    if set(error) - ERROR_KEYS:
        problems.append(f"unexpected keys in error: {sorted(set(error) - ERROR_KEYS)}")
    if set(body) != {"error"}:
        problems.append(f"unexpected top-level keys: {sorted(body)}")
    return problems


def strategies_for(operation: Any, path: str) -> Any:
    names = [parameter.name for parameter in operation.path_parameters]
    real = {name: REAL_PARAMETERS[name] for name in names if name in REAL_PARAMETERS} or None
    choices = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
    if real:
        choices += [
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=real),
        ]
    return st.one_of(choices)


def test_served_schema_lists_every_operation(target: FuzzTarget) -> None:
    served = sorted(
        (path, method.upper()) for path, item in target.served["paths"].items() for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )
    assert served == OPERATIONS


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_operation_survives_fuzzing(target: FuzzTarget, path: str, method: str) -> None:
    operation = target.schema[path][method]
    headers = {"Authorization": f"Bearer {target.token_for(path)}"}
    destructive = method in {"DELETE", "PATCH"}
    statuses: dict[int, int] = {}

    @hardening_settings(EXAMPLES_PER_OPERATION, suppress_health_check=list(HealthCheck))
    @given(case=strategies_for(operation, path))
    def fuzz(case: Any) -> None:
        response = case.call(base_url=target.live.server.url, headers=headers, timeout=60)
        bump("api_fuzz", "requests")
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        try:
            assert response.status_code < 500, (
                f"{response.status_code} for {case.method} {case.formatted_path}: {response.text[:500]}"
            )
            assert not error_body_problems(response), error_body_problems(response)
            case.validate_response(
                response,
                checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
            )
        finally:
            if destructive and response.status_code < 300:
                target.repair()

    fuzz()
    record("api_fuzz", **{f"{method} {path}": dict(sorted(statuses.items()))})
    assert sum(statuses.values()) >= 3, "too few inputs reached the server"
    assert target.live.server.process.poll() is None, "the server died"


# ---------------------------------------------------------------- hostile NXML through the API

SAMPLE_NAMES = ("counter", "todo", "monitor")
NXML_FRAGMENTS = st.sampled_from([
    "<", ">", "/>", "&", "&amp;", "&#0;", "&#x110000;", "\"", "'", "{", "}", "{$state.", "$scope.x", "<![CDATA[", "]]>",
    "<!--", "-->", "<!DOCTYPE x [<!ENTITY a \"aaaa\">]>", "&a;", "<Tool name=\"t\">", "</Tool>", "<Handler>",
    "</Handler>", "while(true){}", "$state.__proto__.x = 1;", "\u0000", "\ud800", "\U0001f600", "\n", " " * 40,
    "<Iterate items=\"{$state.todos}\" as=\"t\">", "</Iterate>", 'trigger="nope"', 'type="object" default="{"',
])


@st.composite
def hostile_sources(draw: st.DrawFn) -> str:
    text = example(draw(st.sampled_from(SAMPLE_NAMES)))
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        position = draw(st.integers(min_value=0, max_value=len(text)))
        if draw(st.booleans()):
            text = text[:position] + draw(NXML_FRAGMENTS | st.text(max_size=6)) + text[position:]
        else:
            text = text[:position] + text[position + draw(st.integers(min_value=1, max_value=30)):]
    return text


def send_json(live: Live, path: str, body: Any) -> httpx.Response:
    """POST a JSON body as the client wrote it (escaped, so lone surrogates travel too)."""
    return httpx.post(f"{live.server.url}{path}", content=json.dumps(body).encode(), timeout=60,
                      headers={**live.headers(), "Content-Type": "application/json"})


def test_hostile_nxml_through_validate_and_create(target: FuzzTarget) -> None:
    target.repair()
    live = target.live
    outcomes: dict[str, int] = {}

    @hardening_settings(EXAMPLES_PER_OPERATION, suppress_health_check=list(HealthCheck))
    @given(source=hostile_sources())
    def post(source: str) -> None:
        checked = send_json(live, "/api/v1/workspaces/acme/panels/validate/", {"source": source})
        created = send_json(live, "/api/v1/workspaces/acme/panels/", {"source": source})
        bump("api_fuzz", "requests", 2)
        for response in (checked, created):
            assert response.status_code < 500, response.text[:500]
            assert not error_body_problems(response), error_body_problems(response)
        if checked.status_code != 200:
            assert created.status_code == checked.status_code, (checked.text[:300], created.text[:300])
            return
        body = checked.json()
        assert set(body) == {"valid", "errors"}
        for error in body["errors"]:
            assert error["line"] >= 1 and error["column"] >= 1, error
        if created.status_code == 201:
            assert body["valid"], "created a panel from NXML that validate refused"
            assert live.api("DELETE", f"/api/v1/workspaces/acme/panels/{created.json()['panelId']}/").status_code == 204
        else:
            assert created.status_code in (400, 413), created.text[:300]
            if created.status_code == 400:
                assert not body["valid"], "validate accepted NXML that create refused"
        key = f"{created.status_code}"
        outcomes[key] = outcomes.get(key, 0) + 1

    post()
    record("api_fuzz", hostile_nxml_creates=dict(sorted(outcomes.items())))


# ---------------------------------------------------------------- text the database may not like

TEXT_PANEL = """<NexusPanel id="text" title="Text">
  <Data><State name="s" type="string" default="" /></Data>
  <Logic>
    <Tool name="put"><Arg name="text" type="string" required="true" />
      <Handler>$state.s = $args.text; return $state.s.length;</Handler>
    </Tool>
  </Logic>
  <View><Input bind="$state.s" /></View>
</NexusPanel>"""
AWKWARD_TEXT = st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "\U0010ffff", "\u2028", "\ufeff"]) | st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from(["\x00", "\ud800"]), max_size=20)


def text_panel(target: FuzzTarget) -> Live:
    target.repair()  # earlier fuzzing may have lowered the workspace's panel limit
    live = target.live
    if live.api("GET", "/api/v1/workspaces/acme/panels/text/").status_code == 404:
        live.create("text", TEXT_PANEL)
    return live


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "x\udfffy"], ids=["NUL", "lone high surrogate",
                                                                        "lone low surrogate"])
def test_known_awkward_text_round_trips(target: FuzzTarget, text: str) -> None:
    live = text_panel(target)
    response = send_json(live, "/api/v1/workspaces/acme/panels/text/tools/put/", {"args": {"text": text}})
    state = live.api("GET", "/api/v1/workspaces/acme/panels/text/state/")
    assert response.status_code < 500, (f"{response.status_code} for {text!r}: {response.text[:200]}; "
                                        f"reading the state afterwards: {state.status_code}")
    assert state.status_code == 200, f"the panel's state became unreadable: {state.status_code} {state.text[:200]}"
    if response.status_code == 200 and response.json()["status"] == "success":
        assert state.json()["state"]["s"] == text
    else:
        assert response.status_code == 400 and not error_body_problems(response), response.text[:300]


def test_awkward_text_is_stored_or_refused_never_a_server_error(target: FuzzTarget) -> None:
    """NUL characters and lone surrogates reach the state through a tool argument."""
    live = text_panel(target)
    outcomes: dict[str, int] = {}

    @hardening_settings(EXAMPLES_PER_OPERATION, suppress_health_check=list(HealthCheck))
    @given(text=AWKWARD_TEXT)
    def put(text: str) -> None:
        response = send_json(live, "/api/v1/workspaces/acme/panels/text/tools/put/", {"args": {"text": text}})
        bump("api_fuzz", "requests")
        outcomes[str(response.status_code)] = outcomes.get(str(response.status_code), 0) + 1
        assert response.status_code < 500, f"{response.status_code} for {text!r}: {response.text[:300]}"
        if response.status_code == 200 and response.json()["status"] == "success":
            stored = live.api("GET", "/api/v1/workspaces/acme/panels/text/state/").json()["state"]["s"]
            assert stored == text, (text, stored)
        else:
            assert not error_body_problems(response)

    put()
    record("api_fuzz", awkward_text=dict(sorted(outcomes.items())))
