"""The SSRF rules for webhook URLs, as tables: no lookup and no connection is ever made here (addresses are
judged as text, and `check` gets a resolver that answers from a dict)."""

from __future__ import annotations

import asyncio

import pytest

from server.webhooks.addresses import Destination, Refused, check, networks, parse, why_refused

REFUSED = [
    ("10.0.0.1", "a private address"),
    ("172.16.0.1", "a private address"),
    ("172.31.255.254", "a private address"),
    ("192.168.1.1", "a private address"),
    ("100.64.0.1", "a carrier-grade NAT (CGNAT) address"),
    ("169.254.169.254", "a cloud metadata address"),
    ("169.254.170.2", "a cloud metadata address"),
    ("100.100.100.200", "a cloud metadata address"),
    ("192.0.0.192", "a cloud metadata address"),
    ("fd00:ec2::254", "a cloud metadata address"),
    ("169.254.1.1", "a link-local address"),
    ("127.0.0.1", "a loopback address"),
    ("127.255.0.9", "a loopback address"),
    ("0.0.0.0", "an unspecified address"),
    ("224.0.0.1", "a multicast address"),
    ("239.255.255.250", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "a reserved address"),
    ("192.0.2.10", "a documentation address"),
    ("198.18.0.1", "a benchmarking address"),
    ("::1", "a loopback address"),
    ("::", "an unspecified address"),
    ("fd00::1", "a private (unique local) address"),
    ("fc00::1", "a private (unique local) address"),
    ("fe80::1", "a link-local address"),
    ("fe80::1%eth0", "a link-local address"),
    ("fec0::1", "a site-local address"),
    ("ff02::1", "a multicast address"),
    ("::ffff:127.0.0.1", "a loopback address"),  # IPv4-mapped: judged as the IPv4 address it is
    ("::ffff:10.0.0.1", "a private address"),
    ("::ffff:169.254.169.254", "a cloud metadata address"),
    ("64:ff9b::7f00:1", "a loopback address"),  # NAT64 of 127.0.0.1
    ("::127.0.0.1", "a reserved address"),  # IPv4-compatible (deprecated)
    ("2001:db8::1", "a documentation address"),
    ("2002:7f00:1::1", "a 6to4 tunnel address"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "a reserved (IETF protocol) address"),  # Teredo
    ("not-an-ip", "not an IP address"),
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_internal_addresses_are_refused_with_the_reason(address: str, why: str) -> None:
    assert why_refused(address) == why


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert why_refused(address) is None


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("::ffff:127.0.0.1", True),  # the same address in IPv6 clothing
        ("::1", False),  # loopback too, but not in the IPv4 range allowed
        ("10.0.0.1", False),
        ("169.254.169.254", False),
    ],
)
def test_the_allowlist_lets_exactly_its_networks_through(address: str, allowed: bool) -> None:
    assert (why_refused(address, networks(["127.0.0.0/8"])) is None) is allowed


@pytest.mark.parametrize(
    ("url", "allow_http", "message"),
    [
        ("http://example.com/hooks", False, "must use https (http:// only with [webhooks] allow_http = true)"),
        ("ftp://example.com/hooks", True, "must use https"),
        ("https://user:pw@example.com/", False, "must not carry a user name or password"),
        ("https:///path", False, "names no host"),
        ("https://example.com:99999/", False, "is not a valid URL"),
        ("https://exa mple.com/", False, "without spaces"),
        ("https://example.com/" + "a" * 2100, False, "at most 2048 characters"),
        (12, False, "must be a URL"),
        ("", False, "must be a URL"),
    ],
)
def test_malformed_or_plain_http_urls_are_refused(url: object, allow_http: bool, message: str) -> None:
    with pytest.raises(Refused, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        parse(url, allow_http)


def test_a_url_keeps_its_host_for_the_header_and_names_the_checked_address_for_the_connection() -> None:
    plain = parse("https://billing.example.com/hooks?x=1#frag", False)
    assert (plain.host, plain.port, plain.target, plain.host_header) == (
        "billing.example.com",
        443,
        "/hooks?x=1",
        "billing.example.com",
    )
    assert plain.url_for("93.184.216.34") == "https://93.184.216.34:443/hooks?x=1"
    assert plain.url_for("2606:4700::1") == "https://[2606:4700::1]:443/hooks?x=1"
    v6 = parse("http://[::1]:8080", True)
    assert (v6.host, v6.host_header, v6.target) == ("::1", "[::1]:8080", "/")


def _resolver(answers: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    return resolve


def _check(url: str, answers: dict[str, list[str]], allow: tuple[str, ...] = ()) -> Destination:
    return asyncio.run(check(url, allow_http=True, allow=networks(allow), resolver=_resolver(answers)))


def test_every_address_a_name_resolves_to_must_be_public() -> None:
    found = _check("https://hooks.example/x", {"hooks.example": ["93.184.216.34", "2606:4700::1"]})
    assert found.addresses == ("93.184.216.34", "2606:4700::1")
    with pytest.raises(Refused, match=r"hooks.example resolves to 10.0.0.7, a private address; webhooks go only"):
        _check("https://hooks.example/x", {"hooks.example": ["93.184.216.34", "10.0.0.7"]})


def test_localhost_is_refused_while_the_allowlist_is_empty_and_needs_every_address_allowed() -> None:
    both = {"localhost": ["127.0.0.1", "::1"]}
    with pytest.raises(Refused, match=r"localhost resolves to 127\.0\.0\.1, a loopback address"):
        _check("http://localhost:8080/", both)
    with pytest.raises(Refused, match=r"localhost resolves to ::1, a loopback address"):
        _check("http://localhost:8080/", both, ("127.0.0.0/8",))
    assert _check("http://localhost:8080/", {"localhost": ["127.0.0.1"]}, ("127.0.0.0/8",)).addresses == ("127.0.0.1",)


def test_an_ip_literal_is_named_itself_and_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(Refused, match=r"^169.254.169.254, a cloud metadata address"):
        _check("https://169.254.169.254/latest/meta-data", {"169.254.169.254": ["169.254.169.254"]})
    with pytest.raises(Refused, match=r"nowhere\.example does not resolve"):
        _check("https://nowhere.example/", {})
