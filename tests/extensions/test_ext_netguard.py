"""Address classification and host matching used by nexus.http."""

from __future__ import annotations

import ipaddress

import pytest

from runtime.extensions.netguard import (
    DestinationLookupFailed,
    DestinationPolicy,
    DestinationRefused,
    address_problem,
    host_matches,
    normalize_host,
    parse_domain_patterns,
    parse_exact_hosts,
)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "loopback address"),
        ("127.255.0.9", "loopback address"),
        ("::1", "loopback address"),
        ("10.1.2.3", "private address"),
        ("172.16.0.1", "private address"),
        ("192.168.0.1", "private address"),
        ("169.254.10.10", "link-local address"),
        ("fe80::1", "link-local address"),
        ("169.254.169.254", "cloud metadata address"),
        ("169.254.170.2", "cloud metadata address"),
        ("fd00:ec2::254", "cloud metadata address"),
        ("100.100.100.200", "cloud metadata address"),
        ("fd12:3456::1", "unique-local address"),
        ("0.0.0.0", "unspecified address"),
        ("::", "unspecified address"),
        ("224.0.0.251", "multicast address"),
        ("ff02::1", "multicast address"),
        ("240.0.0.1", "reserved address"),
        ("255.255.255.255", "reserved address"),
        ("100.64.1.1", "shared (carrier-grade NAT) address"),
        ("192.0.2.5", "non-public address"),
        ("::ffff:127.0.0.1", "loopback address"),
        ("::ffff:169.254.169.254", "cloud metadata address"),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::a00:1", "private address"),
        ("2002:7f00:1::", "loopback address"),
    ],
)
def test_address_problem(address, problem):
    assert address_problem(ipaddress.ip_address(address)) == problem


@pytest.mark.parametrize(
    ("host", "patterns", "expected"),
    [
        ("api.example.com", ("api.example.com",), True),
        ("x.api.example.com", ("api.example.com",), False),
        ("a.example.org", ("*.example.org",), True),
        ("a.b.example.org", ("*.example.org",), True),
        ("example.org", ("*.example.org",), False),
        ("badexample.org", ("*.example.org",), False),
        ("example.org.evil.test", ("*.example.org", "example.org"), False),
    ],
)
def test_host_matches(host, patterns, expected):
    assert host_matches(host, patterns) is expected


def test_hosts_are_normalized():
    assert normalize_host("API.Example.COM.") == "api.example.com"
    assert normalize_host("[0:0::1]") == "::1"
    assert normalize_host("bücher.de") == "xn--bcher-kva.de"
    assert parse_domain_patterns(" a.com ,*.B.org,, ", "X") == ("a.com", "*.b.org")
    assert parse_domain_patterns("a.com,*", "X") == ()
    assert parse_exact_hosts(["LocalHost", "127.0.0.1"], "X") == frozenset({"localhost", "127.0.0.1"})


@pytest.mark.parametrize("value", ["a.*.com", "*b.com", "*.", "."])
def test_bad_domain_patterns(value):
    with pytest.raises(ValueError, match="X"):
        parse_domain_patterns(value, "X")


@pytest.mark.parametrize("value", ["*.internal", "10.0.0.0/8"])
def test_private_hosts_must_be_exact(value):
    with pytest.raises(ValueError, match="exact host"):
        parse_exact_hosts(value, "X")


async def test_policy_checks_every_answer():
    async def resolver(host: str, port: int) -> list[str]:
        return {"good.test": ["8.8.8.8", "2606:4700:4700::1111"], "bad.test": ["8.8.8.8", "10.0.0.1"]}[host]

    policy = DestinationPolicy(resolver=resolver)
    assert await policy.resolve("good.test", 443) == ["8.8.8.8", "2606:4700:4700::1111"]
    with pytest.raises(DestinationRefused) as info:
        await policy.resolve("bad.test", 443)
    assert info.value.reason == "resolves to a private address; to allow it, add bad.test to HTTP_ALLOWED_PRIVATE_HOSTS"


async def test_policy_rejects_garbage_from_the_resolver_and_empty_answers():
    async def resolver(host: str, port: int) -> list[str]:
        return {"junk.test": ["not-an-ip"], "empty.test": []}[host]

    policy = DestinationPolicy(resolver=resolver)
    with pytest.raises(DestinationRefused, match="not an IP address"):
        await policy.resolve("junk.test", 80)
    with pytest.raises(DestinationLookupFailed):
        await policy.resolve("empty.test", 80)


async def test_literal_addresses_skip_the_resolver():
    async def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("must not be called for literals")

    policy = DestinationPolicy(resolver=resolver, private_hosts=frozenset({"10.0.0.5"}))
    assert await policy.resolve("10.0.0.5", 80) == ["10.0.0.5"]
    assert await policy.resolve("8.8.4.4", 80) == ["8.8.4.4"]
