"""The guard's URL and address rules, without a browser."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from pydantic import ValidationError

from relayq.workers.browser.policy import (
    NetworkPolicy,
    address_block_reason,
    check_url,
    parse_ip_literal,
)

DEFAULT = NetworkPolicy()
PRIVATE_OK = NetworkPolicy(allow_private_network=True)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("2852039166", "169.254.169.254"),
        ("0xA9FEA9FE", "169.254.169.254"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ("[::1]", "::1"),
        ("0x", "0.0.0.0"),
    ],
)
def test_ip_literals_are_recognised_in_every_browser_notation(host: str, address: str) -> None:
    assert parse_ip_literal(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["example.com", "1.2.3.09", "0x1g", "1.2.3.4.5", "12_7.0.0.1"])
def test_names_that_are_not_ip_literals_are_left_to_dns(host: str) -> None:
    assert parse_ip_literal(host) is None


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fd12:3456::1", "unique-local"),
        ("::ffff:10.0.0.1", "embeds 10.0.0.1"),
        ("64:ff9b::a00:1", "embeds 10.0.0.1"),
    ],
)
def test_private_addresses_are_blocked_unless_private_network_is_allowed(
    address: str, kind: str
) -> None:
    ip = ipaddress.ip_address(address)
    reason = address_block_reason(ip, allow_private_network=False)
    assert reason is not None and kind in reason
    assert address_block_reason(ip, allow_private_network=True) is None


@pytest.mark.parametrize(
    "address",
    [
        *("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "::ffff:169.254.169.254"),
        *("0.0.0.0", "::", "224.0.0.1", "255.255.255.255", "240.0.0.1"),
    ],
)
def test_metadata_and_unroutable_addresses_are_always_blocked(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert address_block_reason(ip, allow_private_network=True) is not None


def test_public_addresses_are_allowed() -> None:
    for address in ("93.184.215.14", "2606:4700::1111"):
        ip = ipaddress.ip_address(address)
        assert address_block_reason(ip, allow_private_network=False) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "scheme file is not allowed"),
        ("data:text/html,<b>x</b>", "scheme data is not allowed"),
        ("javascript:alert(1)", "scheme javascript is not allowed"),
        ("blob:http://127.0.0.1/x", "scheme blob is not allowed"),
        ("chrome://settings", "scheme chrome is not allowed"),
        ("ftp://example.com/", "scheme ftp is not allowed"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local/metadata"),
        ("http://2852039166/", "169.254.169.254 is a link-local/metadata"),
        ("http://0xa9fea9fe/", "169.254.169.254 is a link-local/metadata"),
        ("http://[::ffff:169.254.169.254]/", "embeds 169.254.169.254"),
        ("http://metadata.google.internal/", "metadata.google.internal is a cloud metadata host"),
        ("http://2130706433:8080/", "127.0.0.1 is a loopback address"),
        ("http://localhost:8080/", "localhost is a loopback name"),
        ("http://app.localhost/", "app.localhost is a loopback name"),
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
    ],
)
async def test_check_url_refuses_with_a_reason(url: str, reason: str) -> None:
    got = await check_url(url, DEFAULT)
    assert got is not None and reason in got


async def test_metadata_is_refused_even_when_private_network_is_allowed() -> None:
    reason = await check_url("http://169.254.169.254/", PRIVATE_OK)
    assert reason == "169.254.169.254 is a link-local/metadata address"


async def test_a_hostname_resolving_to_loopback_is_refused_after_dns() -> None:
    name = _name_resolving_to_loopback()
    reason = await check_url(f"http://{name}:8080/", DEFAULT)
    assert reason is not None and f"{name} resolves to" in reason and "loopback" in reason
    assert await check_url(f"http://{name}:8080/", PRIVATE_OK) is None


async def test_allowed_domains_admit_the_domain_and_its_subdomains_only() -> None:
    policy = NetworkPolicy(allowed_domains=["Example.COM.", "*.test.org"])
    assert policy.allowed_domains == ["example.com", "test.org"]
    assert policy.allows_domain("example.com") and policy.allows_domain("a.b.example.com")
    assert not policy.allows_domain("notexample.com")
    assert not policy.allows_domain("example.com.evil.net")
    reason = await check_url("http://example.org/", policy)
    assert reason == "example.org is not in allowed domains ['example.com', 'test.org']"


@pytest.mark.parametrize("entry", ["https://example.com", "example.com/path", "example.com:80", ""])
def test_allowed_domains_entries_must_be_host_names(entry: str) -> None:
    with pytest.raises(ValidationError):
        NetworkPolicy(allowed_domains=[entry])


def _name_resolving_to_loopback() -> str:
    for name in (socket.gethostname(), "localhost.localdomain", "ip6-localhost"):
        if name == "localhost" or name.endswith(".localhost"):
            continue
        try:
            infos = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
        except OSError:
            continue
        if all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos):
            return name
    pytest.skip("no host name other than localhost resolves to loopback here")
