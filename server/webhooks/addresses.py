"""Where a webhook may be sent: the URL rules and the address check that keeps deliveries off internal
networks (SSRF).

A URL must use https (http only with `[webhooks] allow_http = true`), name a host and carry no
credentials. Its host is resolved and *every* address it resolves to must be public: not private,
loopback, link-local, CGNAT, multicast, reserved, unspecified, documentation, benchmarking or a cloud
metadata address, in IPv4 and IPv6; an IPv4 address carried inside IPv6 (IPv4-mapped, NAT64) is judged
as the IPv4 address it is. An address inside `[webhooks] allow_networks` passes anyway.

The check runs at registration and again before each delivery, and the connection goes to the
addresses it returns (`Destination.addresses`), never to a second lookup of the name, so a DNS answer
that changes after the check (rebinding) cannot redirect a delivery. Failure is `Refused`, whose
message is one sentence naming the URL, the address and why (the 400 answer, or the attempt record).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2048
HINT = "webhooks go only to public addresses unless [webhooks] allow_networks includes it"

# The most specific rows first: the first network containing an address names why it is refused.
_BLOCKED: list[tuple[str, str]] = [
    ("169.254.169.254/32", "a cloud metadata address"),  # AWS, GCP, Azure, DigitalOcean, OpenStack
    ("169.254.170.2/32", "a cloud metadata address"),  # AWS ECS task metadata
    ("100.100.100.200/32", "a cloud metadata address"),  # Alibaba Cloud
    ("192.0.0.192/32", "a cloud metadata address"),  # Oracle Cloud
    ("fd00:ec2::254/128", "a cloud metadata address"),  # AWS over IPv6
    ("0.0.0.0/8", "an unspecified address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a carrier-grade NAT (CGNAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "a reserved (IETF protocol) address"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a reserved (6to4 relay) address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("::/8", "a reserved address"),  # IPv4-compatible and other legacy forms (IPv4-mapped is judged as IPv4)
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001::/23", "a reserved (IETF protocol) address"),  # Teredo included
    ("2001:db8::/32", "a documentation address"),
    ("2002::/16", "a 6to4 tunnel address"),
    ("fc00::/7", "a private (unique local) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
]
BLOCKED: list[tuple[Network, str]] = [(ipaddress.ip_network(cidr), why) for cidr, why in _BLOCKED]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class Refused(Exception):
    """A URL or an address a webhook may not go to; the message says which and why."""


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::a.b.c.d)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def why_refused(text: str, allow: Sequence[Network] = ()) -> str | None:
    """Why a webhook may not go to this address (a phrase such as 'a loopback address'), or None.

    Pure: no lookup, no connection. An address inside `allow` passes; an IPv4 address carried in IPv6 is
    judged (and allowed) as that IPv4 address."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id (fe80::1%eth0)
    except ValueError:
        return "not an IP address"
    judged: Address = embedded_ipv4(address) or address
    if any(judged in net or address in net for net in allow):  # an address is never in a network of the other family
        return None
    for network, why in BLOCKED:
        if judged in network:
            return why
    if not judged.is_global:
        return "a non-public address"
    return None


@dataclass(frozen=True, slots=True)
class Destination:
    """A checked URL: where to connect (the addresses that passed) and what to say (Host header, TLS SNI)."""

    url: str
    scheme: str
    host: str  # the name, or an IP literal without brackets
    port: int
    target: str  # path and query, as sent on the request line
    addresses: tuple[str, ...] = ()

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def url_for(self, address: str) -> str:
        """The URL naming the checked address itself, so the connection goes nowhere else."""
        literal = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{literal}:{self.port}{self.target}"


def parse(url: object, allow_http: bool) -> Destination:
    """The URL's parts, or Refused for a malformed URL, a scheme not allowed or credentials in it."""
    if not isinstance(url, str) or not url:
        raise Refused("'url' must be a URL such as https://example.com/hooks")
    if len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in url):
        raise Refused(f"'url' must be a URL of at most {MAX_URL_LENGTH} characters, without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        raise Refused(f"{url} is not a valid URL") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        hint = "" if allow_http else " (http:// only with [webhooks] allow_http = true)"
        raise Refused(f"{url} must use https{hint}")
    if not host:
        raise Refused(f"{url} names no host")
    if parts.username is not None or parts.password is not None:
        raise Refused(f"{url} must not carry a user name or password")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = 443 if parts.scheme == "https" else 80
    return Destination(url=url, scheme=parts.scheme, host=host, port=port or default, target=target)


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host (an IP literal resolves to itself, no lookup)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check(
    url: object,
    *,
    allow_http: bool,
    allow: Sequence[Network],
    resolver: Resolver = system_resolver,
    timeout_s: float = 5.0,
) -> Destination:
    """The URL parsed and its host resolved, every address checked; Refused says why not."""
    destination = parse(url, allow_http)
    try:
        async with asyncio.timeout(timeout_s):
            found = await resolver(destination.host, destination.port)
    except (OSError, TimeoutError, UnicodeError):
        raise Refused(f"{destination.host} does not resolve") from None
    if not found:
        raise Refused(f"{destination.host} does not resolve")
    for address in found:
        why = why_refused(address, allow)
        if why is not None:
            shown = address if address == destination.host else f"{destination.host} resolves to {address}"
            raise Refused(f"{shown}, {why}; {HINT}")
    return Destination(
        destination.url,
        destination.scheme,
        destination.host,
        destination.port,
        destination.target,
        tuple(found),
    )


def networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)
