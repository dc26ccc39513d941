"""BrowserPool: isolation between leases, cleanup on every exit path, and crash recovery."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from safety_sites import LOCAL_ONLY, Site

from relayq.workers.browser.pool import BrowserPool, chromium_process_group

pytestmark = pytest.mark.browser


async def test_lease_page_has_the_requested_viewport(pool: BrowserPool) -> None:
    async with pool.lease(viewport=(1024, 768)) as lease:
        assert lease.page.viewport_size == {"width": 1024, "height": 768}
        size = await lease.page.evaluate("[innerWidth, innerHeight, devicePixelRatio]")
        assert size == [1024, 768, 1]


async def test_leases_do_not_share_cookies_or_local_storage(
    pool: BrowserPool, site_a: Site
) -> None:
    async with pool.lease(policy=LOCAL_ONLY) as first, pool.lease(policy=LOCAL_ONLY) as second:
        assert first.context is not second.context
        await first.page.goto(site_a.url())
        await first.page.evaluate("document.cookie = 'job=first'; localStorage.k = 'first'")
        assert await first.page.evaluate("document.cookie") == "job=first"
        await second.page.goto(site_a.url())
        assert await second.page.evaluate("document.cookie") == ""
        assert await second.page.evaluate("localStorage.getItem('k')") is None


async def test_leased_context_is_closed_and_replaced(pool: BrowserPool) -> None:
    served = pool.leases_served
    async with pool.lease() as lease:
        pass
    assert lease.page.is_closed()
    assert pool.leases_served == served + 1
    await pool.settle()
    assert pool.contexts_live == pool.warm_count == pool.size


async def test_cancelled_lease_closes_its_context(pool: BrowserPool) -> None:
    entered = asyncio.Event()
    leases = []

    async def job() -> None:
        async with pool.lease() as lease:
            leases.append(lease)
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(job())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [lease] = leases
    assert lease.page.is_closed()
    await pool.settle()
    assert pool.contexts_live == pool.size
    assert pool.browser is not None and lease.context not in pool.browser.contexts
    assert sum(len(context.pages) for context in pool.browser.contexts) == pool.size


async def test_aclose_leaves_no_chromium_process(site_a: Site) -> None:
    async with BrowserPool(size=1) as pool:
        async with pool.lease(policy=LOCAL_ONLY) as lease:
            await lease.page.goto(site_a.url())
        pids = pool.browser_pids()
        group = pool.browser_pid
        assert group is not None and group in pids and len(pids) > 1
    assert pool.contexts_live == 0
    assert not chromium_process_group(group)
    assert not [pid for pid in pids if _alive(pid)]


async def test_aclose_kills_a_browser_that_does_not_answer() -> None:
    pool = BrowserPool(size=1, close_timeout=1.0)
    await pool.start()
    group = pool.browser_pid
    assert group is not None
    os.kill(group, signal.SIGSTOP)
    try:
        await asyncio.wait_for(pool.aclose(), 10)
    finally:
        if chromium_process_group(group):
            os.killpg(group, signal.SIGKILL)
    assert not chromium_process_group(group)


async def test_crashed_browser_is_relaunched(site_a: Site) -> None:
    async with BrowserPool(size=1) as pool:
        crashed = pool.browser_pid
        assert crashed is not None and pool.browser is not None
        disconnected = asyncio.Event()
        pool.browser.once("disconnected", lambda _: disconnected.set())
        os.kill(crashed, signal.SIGKILL)
        await disconnected.wait()
        async with pool.lease(policy=LOCAL_ONLY) as lease:
            response = await lease.page.goto(site_a.url("/page?after-crash"))
            assert response is not None and response.status == 200
        assert pool.relaunches == 1
        assert pool.browser_pid not in (None, crashed)
        assert not chromium_process_group(crashed)
    assert not pool.browser_pids()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
