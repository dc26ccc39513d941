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
import logging
from dataclasses import dataclass, field

from playwright.async_api import BrowserContext, Frame, Page, Route
from playwright.async_api import Error as PlaywrightError

from relayq.workers.browser.egress import EgressFilter
from relayq.workers.browser.policy import (
    NO_POLICY,
    NetworkPolicy,
    Violation,
    ViolationCallback,
    check_url,
    host_block_reason,
    normalise_host,
    scheme_block_reason,
)

__all__ = ["GUARD_LAUNCH_ARGS", "Guard", "install_guard"]

log = logging.getLogger(__name__)

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

_ERROR_PAGE = "chrome-error://chromewebdata/"  # Chromium's page for a failed (e.g. blocked) load
# service_workers="block" makes register() a silent no-op; make it fail like a refused one.
_REJECT_SERVICE_WORKERS_JS = """
if (self.ServiceWorkerContainer) {
  ServiceWorkerContainer.prototype.register = () => Promise.reject(
    new DOMException("service workers are disabled in this browser", "SecurityError"));
}
"""


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
        reason = NO_POLICY if self.policy is None else await check_url(url, self.policy)
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
        reason, host = scheme_block_reason(url)
        if reason is None and policy is None:
            reason = NO_POLICY
        elif reason is None and policy is not None and host:
            reason = host_block_reason(normalise_host(host), policy)
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
        reason, _ = scheme_block_reason(frame.url, subframe=subframe)
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
    answers are not checked. ``relayq.workers.browser.pool`` does all of this. ``policy=None``
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
