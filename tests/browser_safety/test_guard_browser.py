"""The guard in a real Chromium: what a leased page can and cannot reach."""

from __future__ import annotations

import contextlib
import socket
import tempfile
from pathlib import Path

import pytest
from playwright.async_api import Error as PlaywrightError
from safety_sites import DOWNLOAD_PAYLOAD, LOCAL_ONLY, Site, Violations

from relayq.workers.browser.policy import NetworkPolicy
from relayq.workers.browser.pool import BrowserPool

pytestmark = pytest.mark.browser

PRIVATE_OK = NetworkPolicy(allow_private_network=True)


async def test_allowed_page_loads_when_private_network_is_allowed(
    pool: BrowserPool, site_a: Site
) -> None:
    async with pool.lease(policy=PRIVATE_OK) as lease:
        response = await lease.page.goto(site_a.url("/page?hello"))
        assert response is not None and response.status == 200
        assert await lease.page.title() == "/page?hello"
        assert lease.guard.violations == []
        assert lease.guard.egress is not None
        assert lease.guard.egress.destinations[f"127.0.0.1:{site_a.port}"] >= 1


async def test_file_url_is_blocked(pool: BrowserPool) -> None:
    async with pool.lease(policy=PRIVATE_OK) as lease:
        with pytest.raises(PlaywrightError, match="ERR_BLOCKED_BY_CLIENT"):
            await lease.page.goto("file:///etc/hostname")
        [violation] = lease.guard.violations
        assert violation.url == "file:///etc/hostname"
        assert violation.reason == "blocked: scheme file is not allowed"
        refused = await lease.guard.check_url("file:///etc/passwd")
        assert refused is not None and refused.reason == "blocked: scheme file is not allowed"


async def test_data_url_navigation_is_blocked_and_the_page_is_blanked(
    pool: BrowserPool, violations: Violations
) -> None:
    async with pool.lease(policy=PRIVATE_OK, on_violation=violations.callback) as lease:
        with contextlib.suppress(PlaywrightError):
            await lease.page.goto("data:text/html,<h1>phish</h1>")
        violation = await violations.next()
        assert violation.url.startswith("data:text/html")
        assert violation.reason == "blocked: scheme data is not allowed"
        await lease.page.wait_for_url("about:blank")


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/latest/meta-data/",
        "http://0xA9FEA9FE/latest/meta-data/",
        "http://0251.0376.0251.0376/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
    ],
)
async def test_metadata_address_is_blocked_in_any_notation(pool: BrowserPool, url: str) -> None:
    async with pool.lease(policy=PRIVATE_OK) as lease:
        with pytest.raises(PlaywrightError, match="ERR_BLOCKED_BY_CLIENT"):
            await lease.page.goto(url)
        # Chromium preconnects to a navigation's host: the egress filter refuses that one.
        assert {v.layer for v in lease.guard.violations} <= {"route", "network"}
        assert len([v for v in lease.guard.violations if v.layer == "route"]) == 1
        for v in lease.guard.violations:
            assert "169.254.169.254 is a link-local/metadata address" in v.reason
        assert lease.guard.egress is not None and not lease.guard.egress.destinations


async def test_localhost_is_blocked_without_private_network(
    pool: BrowserPool, site_b: Site
) -> None:
    async with pool.lease() as lease:
        with pytest.raises(PlaywrightError, match="ERR_BLOCKED_BY_CLIENT"):
            await lease.page.goto(site_b.url("/page?loopback-name"))
        assert lease.guard.violations[0].reason == "blocked: localhost is a loopback name"
    assert "/page?loopback-name" not in site_b.paths


async def test_hostname_resolving_to_loopback_is_blocked_by_the_egress_filter(
    pool: BrowserPool, site_a: Site
) -> None:
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, site_a.port)}
    except OSError:
        addresses = set()
    if not addresses or not all(a.startswith("127.") for a in addresses):
        pytest.skip(f"{name} does not resolve to loopback here")
    async with pool.lease() as lease:
        with pytest.raises(PlaywrightError):
            await lease.page.goto(f"http://{name}:{site_a.port}/page?rebind")
        violation = lease.guard.violations[0]
        assert violation.layer == "network"
        assert violation.reason.startswith(f"blocked: {name} resolves to 127.")
        assert "loopback" in violation.reason
    assert "/page?rebind" not in site_a.paths


async def test_redirect_to_metadata_address_is_blocked_before_connecting(
    pool: BrowserPool, site_a: Site
) -> None:
    async with pool.lease(policy=PRIVATE_OK) as lease:
        with pytest.raises(PlaywrightError):
            await lease.page.goto(site_a.redirect_to("http://169.254.169.254/latest/meta-data/"))
        violation = lease.guard.violations[0]
        assert violation.layer == "network"
        assert violation.url == "169.254.169.254:80"
        assert violation.reason == "blocked: 169.254.169.254 is a link-local/metadata address"
        assert lease.guard.egress is not None
        assert set(lease.guard.egress.destinations) == {f"127.0.0.1:{site_a.port}"}


async def test_redirect_to_private_address_outside_allowed_domains_is_blocked(
    pool: BrowserPool, site_a: Site
) -> None:
    async with pool.lease(policy=LOCAL_ONLY) as lease:
        with pytest.raises(PlaywrightError):
            await lease.page.goto(site_a.redirect_to("http://10.0.0.1/admin"))
        violation = lease.guard.violations[0]
        assert violation.url == "10.0.0.1:80"
        assert violation.reason == "blocked: 10.0.0.1 is not in allowed domains ['127.0.0.1']"
        assert lease.guard.egress is not None
        assert set(lease.guard.egress.destinations) == {f"127.0.0.1:{site_a.port}"}


async def test_direct_navigation_outside_allowed_domains_is_blocked(
    pool: BrowserPool, site_b: Site
) -> None:
    async with pool.lease(policy=LOCAL_ONLY) as lease:
        with pytest.raises(PlaywrightError, match="ERR_BLOCKED_BY_CLIENT"):
            await lease.page.goto(site_b.url("/page?direct"))
        [violation] = [v for v in lease.guard.violations if v.layer == "route"]
        assert violation.url == site_b.url("/page?direct")
        assert violation.reason == "blocked: localhost is not in allowed domains ['127.0.0.1']"
    assert "/page?direct" not in site_b.paths


async def test_redirect_outside_allowed_domains_is_blocked(
    pool: BrowserPool, site_a: Site, site_b: Site
) -> None:
    async with pool.lease(policy=LOCAL_ONLY) as lease:
        with pytest.raises(PlaywrightError):
            await lease.page.goto(site_a.redirect_to(site_b.url("/page?via-redirect")))
        violation = lease.guard.violations[0]
        assert violation.url == f"localhost:{site_b.port}"
        assert violation.reason == "blocked: localhost is not in allowed domains ['127.0.0.1']"
    assert "/page?via-redirect" not in site_b.paths


async def test_page_initiated_navigation_outside_allowed_domains_is_blocked(
    pool: BrowserPool, site_a: Site, site_b: Site, violations: Violations
) -> None:
    async with pool.lease(policy=LOCAL_ONLY, on_violation=violations.callback) as lease:
        await lease.page.goto(site_a.url())
        await lease.page.evaluate("url => { window.location.href = url }", site_b.url("/page?js"))
        violation = await violations.next(layer="route")
        assert violation.url == site_b.url("/page?js")
        assert "not in allowed domains" in violation.reason
    assert "/page?js" not in site_b.paths


async def test_popup_outside_allowed_domains_is_blocked_and_closed_with_the_lease(
    pool: BrowserPool, site_a: Site, site_b: Site, violations: Violations
) -> None:
    async with pool.lease(policy=LOCAL_ONLY, on_violation=violations.callback) as lease:
        await lease.page.goto(site_a.url())
        async with lease.page.expect_popup() as popup_info:
            await lease.page.evaluate("url => { window.open(url) }", site_b.url("/page?popup"))
        popup = await popup_info.value
        violation = await violations.next(layer="route")
        assert violation.url == site_b.url("/page?popup")
        assert "not in allowed domains" in violation.reason
        assert popup.context is lease.context
    assert popup.is_closed()
    assert "/page?popup" not in site_b.paths


async def test_downloads_do_not_reach_disk(pool: BrowserPool, site_a: Site) -> None:
    async with pool.lease(policy=PRIVATE_OK) as lease:
        await lease.page.goto(site_a.url())
        async with lease.page.expect_download() as download_info:
            await lease.page.click("#download")
        download = await download_info.value
        assert await download.failure() is not None
        with pytest.raises(PlaywrightError, match="accept_downloads"):
            await download.path()
        assert not _files_containing(DOWNLOAD_PAYLOAD, Path(tempfile.gettempdir()))


async def test_service_worker_registration_fails(pool: BrowserPool, site_a: Site) -> None:
    async with pool.lease(policy=PRIVATE_OK) as lease:
        await lease.page.goto(site_a.url())
        outcome = await lease.page.evaluate(
            "navigator.serviceWorker.register('/sw.js')"
            ".then(() => 'registered', e => e.name + ': ' + e.message)"
        )
        assert outcome == "SecurityError: service workers are disabled in this browser"
        assert await lease.page.evaluate("navigator.serviceWorker.getRegistrations()") == []
        assert lease.context.service_workers == []
    assert "/sw.js" not in site_a.paths


async def test_websocket_outside_allowed_domains_is_refused_by_the_egress_filter(
    pool: BrowserPool, site_a: Site, site_b: Site, violations: Violations
) -> None:
    async with pool.lease(policy=LOCAL_ONLY, on_violation=violations.callback) as lease:
        await lease.page.goto(site_a.url())
        await lease.page.evaluate(
            "url => { new WebSocket(url) }", f"ws://localhost:{site_b.port}/ws"
        )
        violation = await violations.next(layer="network")
        assert violation.url == f"localhost:{site_b.port}"
        assert "not in allowed domains" in violation.reason
    assert "/ws" not in site_b.paths


def _files_containing(payload: bytes, root: Path) -> list[Path]:
    found = []
    for directory in root.glob("playwright-artifacts-*"):
        for path in directory.rglob("*"):
            with contextlib.suppress(OSError):
                if path.is_file() and payload in path.read_bytes():
                    found.append(path)
    return found
