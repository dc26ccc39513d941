"""A job's network policy and the checks that need no browser: which URLs and addresses a
computer-use job's browser may reach (the rules are listed in relayq.workers.browser.guard)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = [
    "NetworkPolicy",
    "Violation",
    "ViolationCallback",
    "address_block_reason",
    "check_url",
    "parse_ip_literal",
]

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


NETWORK_SCHEMES = frozenset({"http", "https", "ws", "wss"})
_SUBFRAME_LOCAL_SCHEMES = frozenset({"data", "blob"})
_ABOUT_ALLOWED = frozenset({"about:blank", "about:srcdoc"})
NO_POLICY = "no network policy installed"

_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, ...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer
    )
)
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_IPV4_PART = re.compile(r"(0[xX][0-9a-fA-F]*|[0-9]+)")


class NetworkPolicy(BaseModel):
    """Where a job's browser may go. The default allows any public host."""

    model_config = ConfigDict(frozen=True)

    allowed_domains: list[str] = []
    allow_private_network: bool = False

    @field_validator("allowed_domains")
    @classmethod
    def _normalise(cls, domains: list[str]) -> list[str]:
        names = [normalise_host(d.strip().removeprefix("*.").lstrip(".")) for d in domains]
        for name, given in zip(names, domains, strict=True):
            bad = (
                not name
                or any(c in name for c in "/ @?#")
                or (":" in name and not name.startswith("["))
            )
            if bad:
                raise ValueError(f"allowed_domains entry {given!r} is not a host name")
        return names

    def allows_domain(self, host: str) -> bool:
        if not self.allowed_domains:
            return True
        if parse_ip_literal(host) is not None:
            return host in self.allowed_domains
        return any(host == d or host.endswith("." + d) for d in self.allowed_domains)


@dataclass(frozen=True)
class Violation:
    """A request or navigation the guard refused. ``layer`` says which check caught it."""

    url: str
    reason: str
    layer: Literal["route", "navigation", "network", "check"] = "route"


ViolationCallback = Callable[[Violation], None]


def normalise_host(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    if host.startswith("["):
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """WHATWG IPv4 parsing: 1-4 dot-separated parts, each decimal, 0x-hex or 0-octal."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.fullmatch(p) for p in parts):
        return None
    numbers = []
    for part in parts:
        if part[:2].lower() == "0x":
            numbers.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part[0] == "0":
            if not set(part) <= set("01234567"):
                return None
            numbers.append(int(part, 8))
        else:
            numbers.append(int(part))
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        return None
    value = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a URL host denotes if it is an IP literal in any notation browsers accept."""
    host = host.strip().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        try:
            return ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    return _parse_ipv4(host)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64) or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_block_reason(ip: IPAddress, *, allow_private_network: bool) -> str | None:
    """Why connecting to ``ip`` is not allowed, or None if it is."""
    if ip in _METADATA_ADDRESSES:
        kind = "link-local/metadata" if ip.is_link_local else "cloud metadata"
        return f"{ip} is a {kind} address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = address_block_reason(inner, allow_private_network=allow_private_network)
            return f"{ip} embeds {reason}" if reason else None
    if ip.is_unspecified:
        return f"{ip} is an unspecified address"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.is_reserved and not ip.is_loopback:
        return f"{ip} is a reserved address"
    private_kind = _private_kind(ip)
    if private_kind is not None:
        return None if allow_private_network else f"{ip} is a {private_kind} address"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


def _private_kind(ip: IPAddress) -> str | None:
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local/metadata"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "carrier-grade NAT (100.64/10)"
    if isinstance(ip, ipaddress.IPv6Address) and ip in _UNIQUE_LOCAL:
        return "unique-local"
    if ip.is_private:
        return "private"
    return None


def host_block_reason(host: str, policy: NetworkPolicy) -> str | None:
    """Checks that need no DNS: metadata names, IP literals, allow-list, loopback names."""
    if not host:
        return "URL has no host"
    if host in _METADATA_HOSTS:
        return f"{host} is a cloud metadata host"
    ip = parse_ip_literal(host)
    if ip is not None:
        reason = address_block_reason(ip, allow_private_network=policy.allow_private_network)
        if reason is not None:
            return reason
    if not policy.allows_domain(host):
        return f"{host} is not in allowed domains {policy.allowed_domains}"
    if not policy.allow_private_network and (host == "localhost" or host.endswith(".localhost")):
        return f"{host} is a loopback name"
    return None


async def _resolve(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses


async def vet_host(
    host: str, port: int, policy: NetworkPolicy
) -> tuple[str | None, list[IPAddress]]:
    """Full check of ``host``: (reason it is blocked or None, the addresses it may use)."""
    host = normalise_host(host)
    reason = host_block_reason(host, policy)
    if reason is not None:
        return reason, []
    literal = parse_ip_literal(host)
    if literal is not None:
        return None, [literal]
    try:
        addresses = await _resolve(host, port)
    except OSError as exc:
        return f"{host} does not resolve ({exc})", []
    for ip in addresses:
        reason = address_block_reason(ip, allow_private_network=policy.allow_private_network)
        if reason is not None:
            return f"{host} resolves to {reason}", []
    if not addresses:
        return f"{host} does not resolve", []
    return None, addresses


def scheme_block_reason(url: str, *, subframe: bool = False) -> tuple[str | None, str]:
    """(reason, host) for the URL's scheme; host is '' for schemes without a network host."""
    if url in _ABOUT_ALLOWED:
        return None, ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "URL cannot be parsed", ""
    scheme = parts.scheme.lower()
    if scheme in NETWORK_SCHEMES:
        if parts.netloc.rsplit("@", 1)[-1].startswith("["):
            host = "[" + host + "]"
        return None, host
    if subframe and scheme in _SUBFRAME_LOCAL_SCHEMES:
        return None, ""
    return f"scheme {scheme or '(none)'} is not allowed", ""


async def check_url(url: str, policy: NetworkPolicy) -> str | None:
    """Why the browser may not open ``url`` under ``policy`` (resolving its host), or None."""
    reason, host = scheme_block_reason(url)
    if reason is not None or not host:
        return reason
    port = urlsplit(url).port or (443 if url.lower().startswith(("https", "wss")) else 80)
    reason, _ = await vet_host(host, port, policy)
    return reason
