"""nexus.http against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from typing import Any

import pytest

from runtime.extensions import Denial, ExtensionDenied, ExtensionError, ExtensionRegistry
from runtime.extensions.http import USER_AGENT, HttpExtension


async def call(
    ext: HttpExtension,
    method: str,
    *args: Any,
    config: dict[str, Any] | None = None,
    registry: ExtensionRegistry | None = None,
) -> Any:
    registry = registry or ExtensionRegistry([ext])
    return await registry.call("nexus.http", method, list(args), config or {})


# -- bodies and statuses -------------------------------------------------------------------


async def test_get_json_body_is_parsed(server, make_http):
    res = await call(make_http(), "get", f"{server.base}/json")
    assert res["status"] == 200
    assert res["data"] == {"ok": True, "items": [1, 2, 3]}
    assert res["headers"]["content-type"] == "application/json"
    assert set(res) == {"status", "headers", "data"}


async def test_text_bodies_are_decoded_with_their_charset(server, make_http):
    ext = make_http()
    assert (await call(ext, "get", f"{server.base}/text"))["data"] == "hello, wörld"
    assert (await call(ext, "get", f"{server.base}/latin1"))["data"] == "café"


async def test_invalid_json_falls_back_to_text_and_plus_json_is_parsed(server, make_http):
    ext = make_http()
    assert (await call(ext, "get", f"{server.base}/badjson"))["data"] == "{not json"
    problem = await call(ext, "get", f"{server.base}/problem")
    assert problem["status"] == 422 and problem["data"] == {"title": "bad"}


@pytest.mark.parametrize("code", [400, 404, 500, 503])
async def test_error_statuses_are_returned_not_raised(server, make_http, code):
    res = await call(make_http(), "get", f"{server.base}/status/{code}")
    assert res["status"] == code
    assert res["data"] == {"code": code}


async def test_user_agent_names_the_product(server, make_http):
    res = await call(make_http(), "get", f"{server.base}/echo")
    assert USER_AGENT.startswith("Nexus/")
    assert res["data"]["headers"]["user-agent"] == USER_AGENT


# -- methods, bodies and options ----------------------------------------------------------


async def test_post_put_patch_delete_send_their_method_and_body(server, make_http):
    ext = make_http()
    posted = await call(ext, "post", f"{server.base}/echo", {"a": 1, "b": "é"})
    assert posted["data"]["method"] == "POST"
    assert posted["data"]["body"] == '{"a":1,"b":"é"}'
    assert posted["data"]["headers"]["content-type"] == "application/json"
    put = await call(ext, "put", f"{server.base}/echo", "plain text")
    assert put["data"]["method"] == "PUT" and put["data"]["body"] == "plain text"
    assert put["data"]["headers"]["content-type"].startswith("text/plain")
    patched = await call(ext, "patch", f"{server.base}/echo", [1, 2])
    assert patched["data"]["method"] == "PATCH" and patched["data"]["body"] == "[1,2]"
    deleted = await call(ext, "delete", f"{server.base}/echo")
    assert deleted["data"]["method"] == "DELETE" and deleted["data"]["body"] == ""


async def test_request_with_options(server, make_http):
    res = await call(
        make_http(),
        "request",
        {
            "url": f"{server.base}/echo?keep=1",
            "method": "put",
            "headers": {"X-Trace": "abc", "X-Count": 3},
            "params": {"q": "a b", "n": 2, "flag": True, "many": ["x", "y"], "skip": None},
            "json": {"k": [True, None]},
        },
    )
    seen = res["data"]
    assert seen["method"] == "PUT"
    assert seen["headers"]["x-trace"] == "abc" and seen["headers"]["x-count"] == "3"
    assert seen["query"] == {"keep": ["1"], "q": ["a b"], "n": ["2"], "flag": ["true"], "many": ["x", "y"]}
    assert seen["body"] == '{"k":[true,null]}'


async def test_options_body_string_and_explicit_content_type(server, make_http):
    res = await call(
        make_http(),
        "post",
        f"{server.base}/echo",
        None,
        {"body": "a=1&b=2", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
    )
    assert res["data"]["body"] == "a=1&b=2"
    assert res["data"]["headers"]["content-type"] == "application/x-www-form-urlencoded"


async def test_head_request_ignores_the_announced_length(server, make_http):
    res = await call(
        make_http(max_body_bytes=100), "request", {"url": f"{server.base}/big?bytes=5000", "method": "HEAD"}
    )
    assert res["status"] == 200 and res["data"] == ""


@pytest.mark.parametrize(
    ("method", "args", "message"),
    [
        ("get", [], "url must be a non-empty string"),
        ("get", [42], "url must be a non-empty string"),
        ("get", ["/x", {}, "extra"], "takes at most 2 arguments"),
        ("get", ["http://127.0.0.1/", "opts"], "options must be an object"),
        ("get", ["http://127.0.0.1/", {"retries": 3}], "unknown option(s) retries"),
        ("get", ["http://127.0.0.1/", {"headers": ["x"]}], "headers must be an object"),
        ("get", ["http://127.0.0.1/", {"headers": {"Host": "evil"}}], "header 'Host' is set by the host"),
        ("get", ["http://127.0.0.1/", {"headers": {"User-Agent": "x"}}], "is set by the host"),
        ("get", ["http://127.0.0.1/", {"headers": {"X-A": "a\r\nX-B: b"}}], "single-line string"),
        ("get", ["http://127.0.0.1/", {"headers": {"bad name": "x"}}], "not a valid header name"),
        ("get", ["http://127.0.0.1/", {"params": {"a": {"b": 1}}}], "param 'a' must be"),
        ("get", ["http://127.0.0.1/", {"timeout": 0}], "timeout must be a positive number"),
        ("get", ["http://127.0.0.1/", {"timeout": "fast"}], "timeout must be a positive number"),
        ("post", ["http://127.0.0.1/", {"a": 1}, {"json": {"b": 2}}], "give the body once"),
        ("post", ["http://127.0.0.1/", None, {"body": {"a": 1}}], "options.body must be a string"),
        ("request", [], "options must be an object"),
        ("request", [{"url": "http://127.0.0.1/", "method": "TRACE"}], "method must be one of"),
        ("request", [{"method": "GET"}], "url must be a non-empty string"),
    ],
)
async def test_bad_arguments_are_clear_errors(make_http, method, args, message):
    with pytest.raises(ExtensionError) as info:
        await call(make_http(), method, *args)
    assert message in str(info.value)
    assert not isinstance(info.value, ExtensionDenied)


async def test_request_body_over_the_cap_is_refused(server, make_http):
    with pytest.raises(ExtensionError, match=re.escape("Request body exceeds 10 bytes")):
        await call(make_http(max_body_bytes=10), "post", f"{server.base}/echo", "x" * 11)
    assert server.requests == []


# -- size cap, timeouts, concurrency -------------------------------------------------------


async def test_oversized_response_body_is_an_error(server, make_http):
    ext = make_http(max_body_bytes=1000)
    with pytest.raises(ExtensionError, match=re.escape("Response body exceeds 1000 bytes")):
        await call(ext, "get", f"{server.base}/big?bytes=1001")
    with pytest.raises(ExtensionError, match=re.escape("Response body exceeds 1000 bytes")):
        await call(ext, "get", f"{server.base}/big?bytes=50000&length=0")
    res = await call(ext, "get", f"{server.base}/big?bytes=1000&length=0")
    assert res["data"] == "x" * 1000


async def test_default_body_cap_is_one_mebibyte(server, make_http):
    ext = make_http()
    with pytest.raises(ExtensionError, match=re.escape("Response body exceeds 1048576 bytes")):
        await call(ext, "get", f"{server.base}/big?bytes={(1 << 20) + 1}&length=0")
    assert len((await call(ext, "get", f"{server.base}/big?bytes={1 << 20}"))["data"]) == 1 << 20


async def test_timeout_option_bounds_the_call(server, make_http):
    started = time.monotonic()
    with pytest.raises(ExtensionError, match=re.escape("HTTP request timed out after 200 ms")):
        await call(make_http(), "get", f"{server.base}/slow?ms=3000", {"timeout": 200})
    assert time.monotonic() - started < 2


async def test_global_timeout_caps_the_option(server, make_http):
    started = time.monotonic()
    with pytest.raises(ExtensionError, match=re.escape("timed out after 300 ms")):
        await call(make_http(timeout_ms=300), "get", f"{server.base}/slow?ms=3000", {"timeout": 60000})
    assert time.monotonic() - started < 2


async def test_concurrency_cap_holds_calls_back(server, make_http):
    ext = make_http(max_concurrent=2)
    started = time.monotonic()
    results = await asyncio.wait_for(
        asyncio.gather(*(call(ext, "get", f"{server.base}/inflight") for _ in range(6))), timeout=10
    )
    assert [r["status"] for r in results] == [200] * 6
    assert server.max_in_flight == 2
    assert time.monotonic() - started >= 0.55  # three waves of 0.2 s


async def test_without_a_tight_cap_the_calls_overlap(server, make_http):
    ext = make_http(max_concurrent=10)
    await asyncio.wait_for(asyncio.gather(*(call(ext, "get", f"{server.base}/inflight") for _ in range(6))), 10)
    assert server.max_in_flight > 2


# -- destinations ------------------------------------------------------------------------


async def test_loopback_without_allowance_is_refused(server, make_http):
    refusal = "HTTP request to 127.0.0.1 refused: loopback address; to allow it, add 127.0.0.1 to HTTP_ALLOWED_PRIVATE_HOSTS"
    with pytest.raises(ExtensionDenied, match=f"^{re.escape(refusal)}$"):
        await call(make_http(allowed_private_hosts=""), "get", f"{server.base}/json")
    assert server.requests == []


async def test_localhost_resolving_to_loopback_is_refused(server, make_http, lookups):
    ext = make_http()  # only the literal 127.0.0.1 is allowed
    with pytest.raises(
        ExtensionDenied, match=re.escape("HTTP request to localhost refused: resolves to a loopback address; "
                                         "to allow it, add localhost to HTTP_ALLOWED_PRIVATE_HOSTS")
    ):
        await call(ext, "get", f"http://localhost:{server.port}/json")
    assert lookups == ["localhost"]  # refused after resolving, not by name
    assert server.requests == []


async def test_localhost_allowed_by_name_connects(server, make_http):
    ext = make_http(allowed_private_hosts="localhost,127.0.0.1")
    res = await call(ext, "get", f"http://localhost:{server.port}/echo")
    assert res["status"] == 200
    assert res["data"]["headers"]["host"] == f"localhost:{server.port}"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/", "10.0.0.1 refused: private address"),
        ("http://192.168.1.1:8080/", "192.168.1.1 refused: private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 refused: cloud metadata address"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254 refused: cloud metadata address"),
        ("http://169.254.1.1/", "169.254.1.1 refused: link-local address"),
        ("http://0.0.0.0/", "0.0.0.0 refused: unspecified address"),
        ("http://[::1]/", "::1 refused: loopback address"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1 refused: loopback address"),
        ("http://[fc00::1]/", "fc00::1 refused: unique-local address"),
        ("http://224.0.0.1/", "224.0.0.1 refused: multicast address"),
        ("http://100.64.0.1/", "100.64.0.1 refused: shared (carrier-grade NAT) address"),
        ("http://240.0.0.1/", "240.0.0.1 refused: reserved address"),
    ],
)
async def test_non_public_literals_are_refused(make_http, url, reason):
    with pytest.raises(ExtensionDenied) as info:
        await call(make_http(), "get", url)
    host = reason.split(" ", 1)[0]
    allowance = "" if "metadata" in reason else f"; to allow it, add {host} to HTTP_ALLOWED_PRIVATE_HOSTS"
    assert str(info.value) == f"HTTP request to {reason}{allowance}"


async def test_name_resolving_to_private_address_is_refused_before_connecting(server, make_http):
    ext = make_http(fake_dns={"rebind.test": ["127.0.0.1"], "mixed.test": ["93.184.216.34", "10.1.2.3"]})
    with pytest.raises(ExtensionDenied, match=re.escape("rebind.test refused: resolves to a loopback address")):
        await call(ext, "get", f"http://rebind.test:{server.port}/json")
    with pytest.raises(ExtensionDenied, match=re.escape("mixed.test refused: resolves to a private address")):
        await call(ext, "get", "http://mixed.test/")
    assert server.requests == []


async def test_connection_is_pinned_to_the_checked_address(server, make_http):
    answers: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        answers.append(host)
        return ["127.0.0.1"]

    ext = HttpExtension(allowed_private_hosts="service.test", resolver=resolver)
    res = await call(ext, "get", f"http://service.test:{server.port}/echo")
    assert res["status"] == 200
    assert res["data"]["headers"]["host"] == f"service.test:{server.port}"
    assert answers == ["service.test"]


async def test_metadata_stays_refused_even_for_allowed_private_hosts(make_http):
    ext = make_http(allowed_private_hosts="meta.test,169.254.169.254", fake_dns={"meta.test": ["169.254.169.254"]})
    with pytest.raises(ExtensionDenied, match=re.escape("meta.test refused: resolves to a cloud metadata address")):
        await call(ext, "get", "http://meta.test/")
    with pytest.raises(ExtensionDenied, match=re.escape("cloud metadata address")):
        await call(ext, "get", "http://169.254.169.254/")


async def test_unresolvable_host_is_an_error(make_http):
    ext = make_http(fake_dns={"gone.test": []})
    with pytest.raises(
        ExtensionError,
        match=re.escape("HTTP request to gone.test failed: the host name could not be resolved"),
    ):
        await call(ext, "get", "http://gone.test/")


async def test_connection_refused_is_an_error(make_http):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        ExtensionError,
        match=re.escape(f"HTTP request to http://127.0.0.1:{port}/x failed: could not connect"),
    ):
        await call(make_http(), "get", f"http://127.0.0.1:{port}/x?secret=1")


async def test_allow_list_refuses_other_hosts_without_resolving(server, make_http, lookups):
    ext = make_http(allowed_domains="api.example.com, *.example.org")
    res = await call(ext, "get", f"{server.base}/json")  # private allowance admits 127.0.0.1
    assert res["status"] == 200
    for host in ("evil.test", "example.org", "api.example.com.evil.test"):
        with pytest.raises(
            ExtensionDenied,
            match=re.escape(f"HTTP request to {host} refused: host is not in the allowed domains"),
        ):
            await call(ext, "get", f"http://{host}/")
    assert lookups == []


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/file", "file:///etc/passwd", "javascript:alert(1)", "gopher://127.0.0.1:70/"]
)
async def test_only_http_and_https_schemes(make_http, url):
    with pytest.raises(ExtensionDenied, match=re.escape("only http and https URLs are allowed")):
        await call(make_http(), "get", url)


async def test_proxy_environment_is_ignored(server, make_http, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    res = await call(make_http(), "get", f"{server.base}/json")
    assert res["status"] == 200


# -- redirects -----------------------------------------------------------------------------


async def test_redirects_are_followed(server, make_http):
    res = await call(make_http(), "get", f"{server.base}/redirect?to=/json")
    assert res["status"] == 200 and res["data"]["ok"] is True


async def test_redirect_methods_follow_the_status(server, make_http):
    ext = make_http()
    see_other = await call(ext, "post", f"{server.base}/redirect?code=303&to=/echo", {"a": 1})
    assert see_other["data"]["method"] == "GET" and see_other["data"]["body"] == ""
    temporary = await call(ext, "post", f"{server.base}/redirect?code=307&to=/echo", {"a": 1})
    assert temporary["data"]["method"] == "POST" and temporary["data"]["body"] == '{"a":1}'


@pytest.mark.parametrize(
    ("target", "allowed_domains", "message"),
    [
        ("http://127.0.0.2:{port}/json", "", "HTTP redirect to 127.0.0.2 refused: loopback address"),
        (
            "http://localhost:{port}/json",
            "",
            "HTTP redirect to localhost refused: resolves to a loopback address",
        ),
        ("http://[::1]:{port}/json", "", "HTTP redirect to ::1 refused: loopback address"),
        (
            "http://elsewhere.test/",
            "*.allowed.test",
            "HTTP redirect to elsewhere.test refused: host is not in the allowed domains",
        ),
        ("file:///etc/passwd", "", "HTTP redirect to file://"),
    ],
)
async def test_redirect_to_a_forbidden_target_is_refused(server, make_http, target, allowed_domains, message):
    denials: list[Denial] = []
    ext = make_http(allowed_domains=allowed_domains)
    registry = ExtensionRegistry([ext], on_denied=denials.append)
    location = target.format(port=server.port)
    with pytest.raises(ExtensionDenied) as info:
        await call(ext, "get", f"{server.base}/redirect?to={location}", registry=registry)
    assert str(info.value).startswith(message)
    assert [r["path"] for r in server.requests] == ["/redirect"]
    assert len(denials) == 1 and denials[0].reason == str(info.value)
    assert denials[0].extension == "nexus.http" and denials[0].method == "get"


async def test_redirect_loops_stop(server, make_http):
    with pytest.raises(ExtensionError, match=re.escape("HTTP request stopped after 3 redirects")):
        await call(make_http(max_redirects=3), "get", f"{server.base}/loop")
    assert len(server.requests) == 4


# -- baseURL -------------------------------------------------------------------------------


@pytest.mark.parametrize("base_suffix", ["/api", "/api/"])
@pytest.mark.parametrize("relative", ["/echo?x=1", "echo?x=1"])
async def test_relative_urls_join_the_base_url(server, make_http, base_suffix, relative):
    res = await call(make_http(), "get", relative, config={"baseURL": server.base + base_suffix})
    assert res["data"]["path"] == "/api/echo"
    assert res["data"]["query"] == {"x": ["1"]}


async def test_absolute_urls_ignore_the_base_url(server, make_http):
    res = await call(make_http(), "get", f"{server.base}/echo", config={"baseURL": "http://10.9.9.9/api"})
    assert res["data"]["path"] == "/echo"


async def test_monitor_style_health_call(server, make_http):
    res = await call(make_http(), "get", "/health", config={"baseURL": server.base})
    assert res["status"] == 404  # the test server has no /health: a status, not an error


async def test_url_without_host_is_an_error(make_http):
    with pytest.raises(ExtensionError, match=re.escape("the URL has no host")):
        await call(make_http(), "get", "http:///path")


async def test_relative_url_without_base_url_is_an_error(make_http):
    with pytest.raises(ExtensionError, match=re.escape("needs a baseURL")):
        await call(make_http(), "get", "/health")


@pytest.mark.parametrize("base", ["ftp://127.0.0.1/", "not a url", "/relative", 42])
async def test_invalid_base_url_is_an_error(make_http, base):
    with pytest.raises(ExtensionError, match=re.escape("Invalid baseURL")):
        await call(make_http(), "get", "/health", config={"baseURL": base})


# -- lifecycle and event loops -------------------------------------------------------------


async def test_started_extension_reuses_its_client(server, make_http):
    ext = make_http()
    await ext.start()
    try:
        for _ in range(3):
            assert (await call(ext, "get", f"{server.base}/json"))["status"] == 200
    finally:
        await ext.stop()
        await ext.stop()
    assert (await call(ext, "get", f"{server.base}/json"))["status"] == 200  # after stop: short-lived client


def test_calls_from_separate_event_loops(server, make_http):
    ext = make_http(max_concurrent=1)
    for _ in range(2):
        res = asyncio.run(asyncio.wait_for(call(ext, "get", f"{server.base}/json"), 10))
        assert res["status"] == 200


# -- settings ------------------------------------------------------------------------------


def test_from_settings_reads_the_http_keys():
    ext = HttpExtension.from_settings(
        {
            "HTTP_MAX_CONCURRENT": "3",
            "HTTP_TIMEOUT": 1500,
            "HTTP_ALLOWED_DOMAINS": "API.Example.com, *.example.org",
            "HTTP_ALLOWED_PRIVATE_HOSTS": ["db.internal"],
            "HTTP_MAX_BODY_BYTES": "2048",
            "HTTP_MAX_REDIRECTS": "0",
        }
    )
    assert (ext.max_concurrent, ext.timeout_ms, ext.max_body_bytes, ext.max_redirects) == (3, 1500, 2048, 0)
    assert ext.policy.allowed_domains == ("api.example.com", "*.example.org")
    assert ext.policy.private_hosts == frozenset({"db.internal"})


def test_from_settings_defaults():
    ext = HttpExtension.from_settings({})
    assert (ext.max_concurrent, ext.timeout_ms, ext.max_body_bytes, ext.max_redirects) == (
        10,
        30000,
        1 << 20,
        5,
    )
    assert ext.policy.allowed_domains == () and ext.policy.private_hosts == frozenset()


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"HTTP_MAX_CONCURRENT": "0"}, "HTTP_MAX_CONCURRENT"),
        ({"HTTP_TIMEOUT": "soon"}, "HTTP_TIMEOUT"),
        ({"HTTP_TIMEOUT": True}, "HTTP_TIMEOUT"),
        ({"HTTP_MAX_BODY_BYTES": -1}, "HTTP_MAX_BODY_BYTES"),
        ({"HTTP_ALLOWED_DOMAINS": "*bad*.com"}, "HTTP_ALLOWED_DOMAINS"),
        ({"HTTP_ALLOWED_DOMAINS": 5}, "HTTP_ALLOWED_DOMAINS"),
        ({"HTTP_ALLOWED_PRIVATE_HOSTS": "*.internal"}, "HTTP_ALLOWED_PRIVATE_HOSTS"),
    ],
)
def test_invalid_settings_name_the_key(values, key):
    with pytest.raises(ValueError, match=key):
        HttpExtension.from_settings(values)
