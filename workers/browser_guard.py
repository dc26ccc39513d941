"""Network policy for one browser context: which URLs a computer-use job's browser may reach.

Three layers, each closing a hole the one above leaves open:

1. ``context.route("**/*")`` checks the URL of every request Chromium lets Playwright intercept
   (navigations, subresources, XHR/fetch, popups, ``file:``): scheme, allow-list, cloud metadata
   names and literal IPs in any notation (``2130706433``, ``0x7f.1``, ``0177.0.0.1``,
   ``[::ffff:127.0.0.1]``). Blocked requests are aborted with ``blockedbyclient``.
2. Playwright does not call route handlers for redirect hops (microsoft/playwright#2617, #12527),
   and fulfilling a 3xx fetched with ``route.fetch(max_redirects=0)`` does not help: Chromium
   follows it without routing the next hop. So every context gets its own :class:`EgressFilter`,
   a loopback SOCKS5 proxy (``proxy=egress.proxy``; Playwright adds ``<-loopback>`` so loopback
   traffic is proxied too). Chromium hands it the host *name*; the filter applies the policy,
   resolves the name itself (``getaddrinfo``, every address must pass) and connects to exactly
   the address it checked. This covers redirect hops, WebSockets, requests Playwright does not
   route (service-worker scripts), Chromium's speculative preconnects (so one blocked
   navigation is often reported twice: ``network`` for the preconnect, ``route`` for the
   request), and DNS rebinding (there is no second resolution to rebind). It sees only
   ``host:port``, so its violations carry ``host:port`` rather than a URL.
3. Navigations that never reach the network (``data:``, ``blob:``, ``chrome:``, ``javascript:``)
   are caught on ``framenavigated``: the frame is recorded and sent to ``about:blank``.
   Callers should still run :meth:`Guard.check_url` before ``page.goto`` so a bad start URL
   fails before anything renders.

Policy: only ``http``/``https`` (and ``ws``/``wss``, which the egress filter checks by host);
``about:blank``/``about:srcdoc`` are allowed; sub-frames may also hold ``data:``/``blob:``
documents (page-made content, no network). ``allowed_domains`` entries match the domain and
its subdomains; an empty list means any public host. Loopback, RFC 1918, CGNAT, link-local
and unique-local addresses (also IPv4 embedded in IPv6: mapped, 6to4, Teredo, NAT64) need
``allow_private_network``; unspecified, multicast, broadcast, reserved addresses and cloud
metadata endpoints are always blocked. Ports are not restricted.

Launch Chromium with :data:`GUARD_LAUNCH_ARGS`: they stop WebRTC UDP (not proxied), refuse
local DNS, and point everything outside a guarded context at a dead proxy.

Not covered: a ``data:``/``blob:`` main-frame document is visible until the ``about:blank``
navigation lands (run :meth:`Guard.check_url` before ``goto``); service workers are stopped by
overriding ``register()`` in every document (``service_workers="block"`` plus our init
script), which page script running before it could in principle get around, though their
traffic still goes through the egress filter; what an allowed host does on our behalf (an
open redirect is checked, an allowed host that proxies or fetches for us is not).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from playwright.async_api import BrowserContext, Frame, Page, ProxySettings, Route
from playwright.async_api import Error as PlaywrightError
from pydantic import BaseModel, ConfigDict, field_validator

__all__ = [
    "GUARD_LAUNCH_ARGS",
    "EgressFilter",
    "Guard",
    "NetworkPolicy",
    "Violation",
    "ViolationCallback",
    "address_block_reason",
    "check_url",
    "install_guard",
    "parse_ip_literal",
]

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

GUARD_LAUNCH_ARGS: tuple[str, ...] = (
    # Contexts get their own proxy; anything outside them (the default context) hits a dead one.
    "--proxy-server=socks5://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    # Chromium must never resolve names itself: the egress filter does it.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--disable-quic",
)
"""Chromium switches that make the guard fail closed; add them to any launch."""

NETWORK_SCHEMES = frozenset({"http", "https", "ws", "wss"})
_SUBFRAME_LOCAL_SCHEMES = frozenset({"data", "blob"})
_ABOUT_ALLOWED = frozenset({"about:blank", "about:srcdoc"})
_NO_POLICY = "no network policy installed"
_ERROR_PAGE = "chrome-error://chromewebdata/"  # Chromium's page for a failed (e.g. blocked) load

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
# service_workers="block" makes register() a silent no-op; make it fail like a refused one.
_REJECT_SERVICE_WORKERS_JS = """
if (self.ServiceWorkerContainer) {
  ServiceWorkerContainer.prototype.register = () => Promise.reject(
    new DOMException("service workers are disabled in this browser", "SecurityError"));
}
"""
_IPV4_PART = re.compile(r"(0[xX][0-9a-fA-F]*|[0-9]+)")


class NetworkPolicy(BaseModel):
    """Where a job's browser may go. The default allows any public host."""

    model_config = ConfigDict(frozen=True)

    allowed_domains: list[str] = []
    allow_private_network: bool = False

    @field_validator("allowed_domains")
    @classmethod
    def _normalise(cls, domains: list[str]) -> list[str]:
        names = [_normalise_host(d.strip().removeprefix("*.").lstrip(".")) for d in domains]
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


# ---------------------------------------------------------------- pure checks


def _normalise_host(host: str) -> str:
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


def _host_block_reason(host: str, policy: NetworkPolicy) -> str | None:
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


async def _vet_host(
    host: str, port: int, policy: NetworkPolicy
) -> tuple[str | None, list[IPAddress]]:
    """Full check of ``host``: (reason it is blocked or None, the addresses it may use)."""
    host = _normalise_host(host)
    reason = _host_block_reason(host, policy)
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


def _scheme_block_reason(url: str, *, subframe: bool = False) -> tuple[str | None, str]:
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
    reason, host = _scheme_block_reason(url)
    if reason is not None or not host:
        return reason
    port = urlsplit(url).port or (443 if url.lower().startswith(("https", "wss")) else 80)
    reason, _ = await _vet_host(host, port, policy)
    return reason


# ---------------------------------------------------------------- egress filter (SOCKS5)

_SOCKS_OK, _SOCKS_NOT_ALLOWED, _SOCKS_UNREACHABLE, _SOCKS_BAD_COMMAND = 0, 2, 4, 7
_HANDSHAKE_TIMEOUT = 10.0
_CONNECT_TIMEOUT = 15.0


class EgressFilter:
    """A loopback SOCKS5 proxy that applies a :class:`NetworkPolicy` to every connection.

    Start it before creating the context (``new_context(proxy=egress.proxy)``); until a policy
    is set every connection is refused. ``destinations`` counts the connections it opened,
    by ``address:port``.
    """

    def __init__(self) -> None:
        self.policy: NetworkPolicy | None = None
        self.destinations: Counter[str] = Counter()
        self.on_violation: ViolationCallback | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @classmethod
    async def start(cls) -> EgressFilter:
        egress = cls()
        egress._server = await asyncio.start_server(egress._accept, "127.0.0.1", 0)
        egress.port = egress._server.sockets[0].getsockname()[1]
        return egress

    @property
    def proxy(self) -> ProxySettings:
        return {"server": f"socks5://127.0.0.1:{self.port}"}

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # closing the context cancels connections mid-handshake: that is no error
        with contextlib.suppress(asyncio.CancelledError):
            await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            target = await asyncio.wait_for(self._handshake(reader, writer), _HANDSHAKE_TIMEOUT)
            if target is None:
                return
            host, port = target
            upstream_reader, upstream = await self._connect(host, port, writer)
            if upstream is None or upstream_reader is None:
                return
            await asyncio.gather(_pipe(reader, upstream), _pipe(upstream_reader, writer))
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            for w in (writer, upstream):
                if w is not None:
                    w.close()

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, int] | None:
        version, n_methods = await reader.readexactly(2)
        await reader.readexactly(n_methods)
        if version != 5:
            return None
        writer.write(b"\x05\x00")
        _, command, _, address_type = await reader.readexactly(4)
        if address_type == 1:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
        elif address_type == 3:
            (length,) = await reader.readexactly(1)
            host = (await reader.readexactly(length)).decode("ascii", "replace")
        elif address_type == 4:
            host = "[" + str(ipaddress.IPv6Address(await reader.readexactly(16))) + "]"
        else:
            return None
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        if command != 1:
            await _reply(writer, _SOCKS_BAD_COMMAND)
            return None
        return host, port

    async def _connect(
        self, host: str, port: int, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader | None, asyncio.StreamWriter | None]:
        policy = self.policy
        if policy is None:
            reason: str | None = _NO_POLICY
            addresses: list[IPAddress] = []
        else:
            reason, addresses = await _vet_host(host, port, policy)
        if reason is not None:
            self._report(Violation(f"{host}:{port}", f"blocked: {reason}", "network"))
            await _reply(writer, _SOCKS_NOT_ALLOWED)
            return None, None
        for ip in addresses:
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection(str(ip), port), _CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError):
                continue
            self.destinations[f"{ip}:{port}"] += 1
            await _reply(writer, _SOCKS_OK)
            return r, w
        await _reply(writer, _SOCKS_UNREACHABLE)
        return None, None

    def _report(self, violation: Violation) -> None:
        if self.on_violation is not None:
            self.on_violation(violation)
        else:
            log.warning("browser guard: %s (%s)", violation.reason, violation.url)


async def _reply(writer: asyncio.StreamWriter, code: int) -> None:
    writer.write(bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0]))
    await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


# ---------------------------------------------------------------- the guard


@dataclass(eq=False)
class Guard:
    """The policy installed on one context, and every violation it has seen.

    ``policy=None`` refuses everything; :meth:`apply` swaps the policy without a round trip to
    the browser, which is how a warm context is handed to a job.
    """

    context: BrowserContext
    policy: NetworkPolicy | None
    egress: EgressFilter | None = None
    on_violation: ViolationCallback | None = None
    violations: list[Violation] = field(default_factory=list, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    def apply(self, policy: NetworkPolicy, on_violation: ViolationCallback | None = None) -> None:
        """Enforce ``policy`` from now on, reporting to ``on_violation``; forget old violations."""
        self.policy = policy
        self.on_violation = on_violation
        self.violations = []
        if self.egress is not None:
            self.egress.policy = policy

    async def check_url(self, url: str) -> Violation | None:
        """Check a URL before ``page.goto``; a refused URL is recorded and returned."""
        reason = _NO_POLICY if self.policy is None else await check_url(url, self.policy)
        if reason is None:
            return None
        violation = Violation(url, f"blocked: {reason}", "check")
        self.record(violation)
        return violation

    def record(self, violation: Violation) -> None:
        self.violations.append(violation)
        log.warning("browser guard: %s (%s)", violation.reason, violation.url)
        if self.on_violation is not None:
            try:
                self.on_violation(violation)
            except Exception:
                log.exception("browser guard: on_violation callback failed")

    async def aclose(self) -> None:
        """Stop the navigation watchers (the context's own close drops its routes)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _route(self, route: Route) -> None:
        url = route.request.url
        policy = self.policy
        reason, host = _scheme_block_reason(url)
        if reason is None and policy is None:
            reason = _NO_POLICY
        elif reason is None and policy is not None and host:
            reason = _host_block_reason(_normalise_host(host), policy)
        with contextlib.suppress(PlaywrightError):  # the context closed meanwhile
            if reason is None:
                await route.fallback()
                return
            self.record(Violation(url, f"blocked: {reason}", "route"))
            await route.abort("blockedbyclient")

    def _watch(self, page: Page) -> None:
        page.on("framenavigated", self._on_navigated)

    def _on_navigated(self, frame: Frame) -> None:
        if not frame.url or frame.url == _ERROR_PAGE:
            return
        subframe = frame.parent_frame is not None
        reason, _ = _scheme_block_reason(frame.url, subframe=subframe)
        if reason is None:
            return
        self.record(Violation(frame.url, f"blocked: {reason}", "navigation"))
        task = asyncio.get_running_loop().create_task(_blank(frame))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _blank(frame: Frame) -> None:
    with contextlib.suppress(PlaywrightError):
        await frame.goto("about:blank")


async def install_guard(
    context: BrowserContext,
    policy: NetworkPolicy | None,
    *,
    egress: EgressFilter | None = None,
    on_violation: ViolationCallback | None = None,
) -> Guard:
    """Enforce ``policy`` on ``context``: route every request, watch every page's navigations.

    Create the context with ``proxy=egress.proxy, accept_downloads=False,
    service_workers="block"`` and pass that ``egress`` here; without it redirect hops and DNS
    answers are not checked. ``relayq.workers.browser_pool`` does all of this. ``policy=None``
    refuses everything until :meth:`Guard.apply`.
    """
    guard = Guard(context, policy, egress, on_violation)
    if egress is None:
        log.warning("browser guard installed without an egress filter: redirects are unchecked")
    else:
        egress.policy = policy
        egress.on_violation = guard.record
    await context.add_init_script(_REJECT_SERVICE_WORKERS_JS)
    await context.route("**/*", guard._route)
    context.on("page", guard._watch)
    for page in context.pages:
        guard._watch(page)
    return guard
