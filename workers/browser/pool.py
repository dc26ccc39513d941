"""One Chromium per worker, and a fresh guarded context per job, leased from a warm pool.

``size`` contexts are created ahead of time at ``warm_viewport`` (downloads off, service
workers blocked, behind their own :class:`~relayq.workers.browser.egress.EgressFilter`, guard
installed with no policy, so they can reach nothing). ``lease()`` takes one, resizes its page
if the job's display differs, swaps in the job's :class:`NetworkPolicy` (no browser round
trip), and closes the context when the block exits, however it exits; a replacement is warmed
in the background. A context is never handed out twice.

If Chromium has died, the next lease (or the ``disconnected`` event) launches a new one.
``aclose()`` gives Playwright ``close_timeout`` seconds, then SIGKILLs Chromium's process group
(Playwright starts Chromium as a group leader, so renderers orphaned by a crash are in it too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from relayq.llm.page_actions import launch_chromium
from relayq.workers.browser.egress import EgressFilter
from relayq.workers.browser.guard import GUARD_LAUNCH_ARGS, Guard, install_guard
from relayq.workers.browser.policy import NetworkPolicy, ViolationCallback

__all__ = ["BrowserPool", "Lease", "chromium_process_group"]

log = logging.getLogger(__name__)

WARM_VIEWPORT = (1280, 720)
_MARKER_ARG = "--relayq-browser-pool="
_KILL_POLLS = 100  # x 20 ms

Launcher = Callable[[Playwright, list[str]], Awaitable[Browser]]


async def _default_launcher(playwright: Playwright, extra_args: list[str]) -> Browser:
    return await launch_chromium(playwright, extra_args=extra_args)


@dataclass(frozen=True)
class Lease:
    """A job's browser: its own context and page, guarded by ``guard``."""

    context: BrowserContext
    page: Page
    guard: Guard
    viewport: tuple[int, int]


@dataclass
class _Slot:
    context: BrowserContext
    page: Page
    egress: EgressFilter
    guard: Guard
    generation: int
    viewport: tuple[int, int]


class BrowserPool:
    """``async with BrowserPool(size=2) as pool: async with pool.lease(...) as lease: ...``"""

    def __init__(
        self,
        size: int = 2,
        *,
        warm_viewport: tuple[int, int] = WARM_VIEWPORT,
        launcher: Launcher = _default_launcher,
        close_timeout: float = 5.0,
    ) -> None:
        if size < 0:
            raise ValueError("size must be >= 0")
        self.size = size
        self.warm_viewport = warm_viewport
        self.close_timeout = close_timeout
        self.leases_served = 0
        self.relaunches = 0
        self.contexts_live = 0
        self._launcher = launcher
        self._marker = f"{_MARKER_ARG}{uuid.uuid4().hex}"
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._browser_lock = asyncio.Lock()
        self._generation = 0
        self._group: int | None = None
        self._old_groups: list[int] = []
        self._warm: deque[_Slot] = deque()
        self._warming = 0
        self._warm_tasks: set[asyncio.Task[None]] = set()
        self._close_tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self) -> BrowserPool:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Launch Chromium and warm ``size`` contexts (returns once they are ready)."""
        try:
            self._playwright = await async_playwright().start()
            await self._ensure_browser()
            for _ in range(self.size):
                self._spawn_warm()
            await self.settle()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Close every context and Chromium; kill Chromium's processes if that does not finish."""
        self._closed = True
        for task in self._warm_tasks:
            task.cancel()
        await asyncio.gather(*self._warm_tasks, return_exceptions=True)
        while self._warm:
            self._track_close(self._discard(self._warm.popleft()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*self._close_tasks, return_exceptions=True), self.close_timeout
            )
        browser, self._browser = self._browser, None
        if browser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(browser.close(), self.close_timeout)
        playwright, self._playwright = self._playwright, None
        if playwright is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(playwright.stop(), self.close_timeout)
        groups = [*self._old_groups, *([self._group] if self._group else [])]
        self._group, self._old_groups = None, []
        await asyncio.gather(*(_kill_group(g) for g in groups))
        for task in self._close_tasks:
            task.cancel()
        await asyncio.gather(*self._close_tasks, return_exceptions=True)

    async def settle(self) -> None:
        """Wait until background warming has finished (the warm pool is full or failed)."""
        while self._warm_tasks:
            await asyncio.gather(*self._warm_tasks, return_exceptions=True)

    # -- observation ---------------------------------------------------------

    @property
    def browser(self) -> Browser | None:
        return self._browser

    @property
    def warm_count(self) -> int:
        return len(self._warm)

    @property
    def browser_pid(self) -> int | None:
        """PID of the current Chromium browser process (Linux), None if not running."""
        return self._group

    def browser_pids(self) -> set[int]:
        """Every live process of every Chromium this pool launched (Linux ``/proc``)."""
        groups = [*self._old_groups, *([self._group] if self._group else [])]
        return set().union(*(chromium_process_group(g) for g in groups)) if groups else set()

    # -- leasing -------------------------------------------------------------

    @asynccontextmanager
    async def lease(
        self,
        viewport: tuple[int, int] | None = None,
        policy: NetworkPolicy | None = None,
        *,
        on_violation: ViolationCallback | None = None,
    ) -> AsyncIterator[Lease]:
        """A fresh context + page for one job, closed when the block exits.

        ``viewport`` defaults to ``warm_viewport``; any other size costs a resize.
        """
        if self._closed:
            raise RuntimeError("BrowserPool is closed")
        viewport = viewport or self.warm_viewport
        slot = await self._prepare(viewport, policy or NetworkPolicy(), on_violation)
        self.leases_served += 1
        try:
            yield Lease(slot.context, slot.page, slot.guard, viewport)
        finally:
            closing = self._track_close(self._discard(slot))
            # Shielded: a second cancellation must not leave the context open.
            await asyncio.shield(closing)

    async def _prepare(
        self,
        viewport: tuple[int, int],
        policy: NetworkPolicy,
        on_violation: ViolationCallback | None,
    ) -> _Slot:
        for attempt in range(2):
            slot = await self._take(viewport)
            self._spawn_warm()
            try:
                if slot.viewport != viewport:
                    width, height = viewport
                    await slot.page.set_viewport_size({"width": width, "height": height})
                    slot.viewport = viewport
                slot.guard.apply(policy, on_violation)
                return slot
            except BaseException as exc:
                await asyncio.shield(self._track_close(self._discard(slot)))
                browser_died = self._browser is None or not self._browser.is_connected()
                if attempt or not isinstance(exc, PlaywrightError) or not browser_died:
                    raise
                log.warning("browser died while preparing a lease; relaunching")
        raise AssertionError("unreachable")

    async def _take(self, viewport: tuple[int, int]) -> _Slot:
        await self._ensure_browser()
        while self._warm:
            slot = self._warm.popleft()
            if slot.generation == self._generation and not slot.page.is_closed():
                return slot
            self._track_close(self._discard(slot))
        return await self._new_slot(viewport)

    # -- contexts ------------------------------------------------------------

    async def _new_slot(self, viewport: tuple[int, int]) -> _Slot:
        browser = await self._ensure_browser()
        generation = self._generation
        egress = await EgressFilter.start()
        context: BrowserContext | None = None
        try:
            width, height = viewport
            context = await browser.new_context(
                proxy=egress.proxy,
                viewport={"width": width, "height": height},
                device_scale_factor=1,
                accept_downloads=False,
                service_workers="block",
            )
            self.contexts_live += 1
            guard = await install_guard(context, None, egress=egress)
            page = await context.new_page()
        except BaseException:
            if context is not None:
                self.contexts_live -= 1
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(context.close(), self.close_timeout)
            await egress.aclose()
            raise
        return _Slot(context, page, egress, guard, generation, viewport)

    async def _discard(self, slot: _Slot) -> None:
        try:
            await slot.guard.aclose()
            await asyncio.wait_for(slot.context.close(), self.close_timeout)
        except Exception as exc:
            log.debug("closing a browser context failed: %r", exc)
        finally:
            self.contexts_live -= 1
            await slot.egress.aclose()

    def _spawn_warm(self) -> None:
        if self._closed or len(self._warm) + self._warming >= self.size:
            return
        self._warming += 1
        task = asyncio.get_running_loop().create_task(self._warm_one())
        self._warm_tasks.add(task)
        task.add_done_callback(self._warm_tasks.discard)

    async def _warm_one(self) -> None:
        try:
            slot = await self._new_slot(self.warm_viewport)
        except Exception as exc:
            log.warning("warming a browser context failed: %r", exc)
            return
        finally:
            self._warming -= 1
        if self._closed:
            self._track_close(self._discard(slot))
        else:
            self._warm.append(slot)

    def _track_close(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._close_tasks.add(task)
        task.add_done_callback(self._close_tasks.discard)
        return task

    # -- the browser ---------------------------------------------------------

    async def _ensure_browser(self) -> Browser:
        async with self._browser_lock:
            if self._closed or self._playwright is None:
                raise RuntimeError("BrowserPool is closed")
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if self._browser is not None:
                self.relaunches += 1
                log.warning("Chromium is gone; relaunching (relaunch #%d)", self.relaunches)
                if self._group is not None:
                    self._old_groups.append(self._group)
                    await _kill_group(self._group)
            browser = await self._launcher(self._playwright, [*GUARD_LAUNCH_ARGS, self._marker])
            self._browser = browser
            self._generation += 1
            self._group = _find_process_with_arg(self._marker)
            browser.on("disconnected", self._on_disconnected)
            return browser

    def _on_disconnected(self, browser: Browser) -> None:
        if self._closed or browser is not self._browser:
            return
        stale = [s for s in self._warm if s.generation == self._generation]
        for slot in stale:
            self._warm.remove(slot)
            self._track_close(self._discard(slot))
        for _ in range(self.size):
            self._spawn_warm()


# ---------------------------------------------------------------- processes (Linux /proc)


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, pgid) of a live, non-zombie process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[2])


def _pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _find_process_with_arg(arg: str) -> int | None:
    needle = arg.encode()
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if needle in f.read().split(b"\0"):
                    return pid
        except OSError:
            continue
    return None


def chromium_process_group(pgid: int) -> set[int]:
    """Live processes in process group ``pgid`` (Chromium's browser PID is its group's id)."""
    found = set()
    for pid in _pids():
        stat = _proc_stat(pid)
        if stat is not None and stat[1] == pgid:
            found.add(pid)
    return found


async def _kill_group(pgid: int) -> None:
    """SIGKILL a Chromium process group and wait (bounded) until it is gone."""
    if not chromium_process_group(pgid):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    # Not our child, so there is no exit event to await: poll, bounded.
    for _ in range(_KILL_POLLS):
        if not chromium_process_group(pgid):
            return
        await asyncio.sleep(0.02)
