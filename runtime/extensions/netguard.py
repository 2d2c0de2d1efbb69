"""Outbound destination checks for extensions that reach the network.

`DestinationPolicy` decides which host names a handler may reach and which resolved
addresses are acceptable. `GuardedNetworkBackend` plugs that policy into httpcore: it
resolves the name itself, checks every address, and opens the TCP connection to one of the
checked addresses. TLS still runs against the original host name (httpcore takes SNI and
certificate checks from the URL), so nothing depends on a second DNS answer.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpcore
import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

# Instance metadata services hand out cloud credentials; they stay unreachable even for
# hosts on the private allowance.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)

METADATA_PROBLEM = "cloud metadata address"
# The setting that fills DestinationPolicy.private_hosts; named in refusals so they say how to allow a host.
PRIVATE_HOSTS_SETTING = "HTTP_ALLOWED_PRIVATE_HOSTS"

_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class DestinationRefused(Exception):
    """The policy forbids this destination."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


class DestinationLookupFailed(Exception):
    """The host name could not be resolved."""

    def __init__(self, host: str, detail: str = "") -> None:
        super().__init__(f"{host}: {detail}" if detail else host)
        self.host = host
        self.detail = detail


def address_problem(address: IPAddress) -> str | None:
    """Why `address` is not a public destination, or None when it is one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _own_problem(address.ipv4_mapped)
    for embedded in _embedded_ipv4(address):
        problem = _own_problem(embedded)
        if problem:
            return problem
    return _own_problem(address)


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _own_problem(address: IPAddress) -> str | None:
    checks: tuple[tuple[bool, str], ...] = (
        (address in METADATA_ADDRESSES, METADATA_PROBLEM),
        (address.is_unspecified, "unspecified address"),
        (address.is_loopback, "loopback address"),
        (address.is_link_local, "link-local address"),
        (address.is_multicast, "multicast address"),
        (address.version == 6 and address in _UNIQUE_LOCAL, "unique-local address"),
        (address.is_reserved, "reserved address"),
        (any(address in net for net in _RFC1918 if address.version == 4), "private address"),
        (address.version == 4 and address in _SHARED_SPACE, "shared (carrier-grade NAT) address"),
        (not address.is_global, "non-public address"),
    )
    return next((reason for failed, reason in checks if failed), None)


def parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def normalize_host(host: str) -> str:
    """Lower-case ASCII form of a host name or IP literal, for comparisons."""
    text = host.strip().strip(".").lower()
    address = parse_ip(text)
    if address is not None:
        return str(address)
    if text.isascii():
        return text
    try:
        return idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"invalid host name {host!r}: {exc}") from exc


def split_list(value: str | Iterable[str] | None) -> list[str]:
    """Entries of a comma separated setting (or of an already split list), blanks dropped."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


def parse_domain_patterns(value: str | Iterable[str] | None, setting: str) -> tuple[str, ...]:
    """Allow-list entries: `host`, `*.domain` (any subdomain) or `*` (any host)."""
    patterns: list[str] = []
    for entry in split_list(value):
        if entry == "*":
            return ()
        wildcard = entry.startswith("*.")
        name = entry[2:] if wildcard else entry
        if "*" in name or not name.strip("."):
            raise ValueError(f"{setting}: {entry!r} is not a host name or a '*.domain' pattern")
        try:
            normalized = normalize_host(name)
        except ValueError as exc:
            raise ValueError(f"{setting}: {exc}") from None
        patterns.append(f"*.{normalized}" if wildcard else normalized)
    return tuple(patterns)


def parse_exact_hosts(value: str | Iterable[str] | None, setting: str) -> frozenset[str]:
    hosts: set[str] = set()
    for entry in split_list(value):
        if "*" in entry or "/" in entry:
            raise ValueError(f"{setting}: {entry!r} must be an exact host name or IP address")
        try:
            hosts.add(normalize_host(entry))
        except ValueError as exc:
            raise ValueError(f"{setting}: {exc}") from None
    return frozenset(hosts)


def host_matches(host: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


async def system_resolver(host: str, port: int) -> list[str]:
    """Addresses of `host` from the operating system's resolver, in its order, deduplicated."""
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationLookupFailed(host, str(exc)) from exc
    addresses: list[str] = []
    for *_, sockaddr in infos:
        text = str(sockaddr[0])
        if text not in addresses:
            addresses.append(text)
    return addresses


@dataclass(frozen=True)
class DestinationPolicy:
    """Which hosts may be reached, and which of them may resolve to non-public addresses.

    `allowed_domains`: empty means any host; otherwise exact names and `*.domain` patterns.
    `private_hosts`: exact names or IP literals that may resolve to non-public addresses;
    listing a host here also puts it on the allow-list. Metadata addresses are never allowed.
    """

    allowed_domains: tuple[str, ...] = ()
    private_hosts: frozenset[str] = frozenset()
    resolver: Resolver = field(default=system_resolver, compare=False)

    def check_host(self, host: str) -> str:
        """Normalized `host` if the allow-list admits it; raises DestinationRefused otherwise."""
        try:
            name = normalize_host(host)
        except ValueError as exc:
            raise DestinationRefused(host, str(exc)) from None
        if not name:
            raise DestinationRefused(host, "no host name")
        if name in self.private_hosts or not self.allowed_domains:
            return name
        if not host_matches(name, self.allowed_domains):
            raise DestinationRefused(name, "host is not in the allowed domains")
        return name

    async def resolve(self, host: str, port: int) -> list[str]:
        """Checked addresses for `host`; refuses if any answer is forbidden."""
        name = self.check_host(host)
        literal = parse_ip(name)
        addresses = [name] if literal is not None else list(await self.resolver(name, port))
        if not addresses:
            raise DestinationLookupFailed(name, "no addresses")
        for text in addresses:
            self._check_address(name, text, is_literal=literal is not None)
        return addresses

    def _check_address(self, name: str, text: str, *, is_literal: bool) -> None:
        address = parse_ip(text.split("%", 1)[0])
        if address is None:
            raise DestinationRefused(name, f"resolver returned {text!r}, which is not an IP address")
        problem = address_problem(address)
        if problem is None:
            return
        if name in self.private_hosts and problem != METADATA_PROBLEM:
            return
        reason = problem if is_literal else f"resolves to a {problem}"
        if problem != METADATA_PROBLEM:
            reason += f"; to allow it, add {name} to {PRIVATE_HOSTS_SETTING}"
        raise DestinationRefused(name, reason)


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore backend that connects only to addresses the policy has checked."""

    def __init__(self, policy: DestinationPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._policy.resolve(host, port)
        *fallbacks, last = addresses
        for address in fallbacks:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue
        return await self._inner.connect_tcp(last, port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused(path, "unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
