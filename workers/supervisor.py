"""`relayq worker --processes N`: N worker processes kept running by one supervisor process.

One worker process saturates one core (its event loop parses every stream), so a machine with
more cores runs one worker per core. The supervisor starts each child with the command the
caller gives for its slot and the supervisor's environment, and prints its own ready line once
every child has printed one.

- A child that exits while the supervisor runs (crash, SIGKILL, out of memory) is started again
  after a backoff that doubles with each quick death in a row (`RESTART_DELAY_S` up to
  `RESTART_DELAY_CAP_S`); a child that lived `HEALTHY_S` starts the count over. Its jobs come
  back through their leases, as any dead worker's do.
- SIGTERM or SIGINT goes to every child, which hands its running jobs back (reason `shutdown`);
  the supervisor waits for them for the shutdown grace plus a margin, SIGKILLs any left, and
  exits. A second signal is forwarded too (a worker then stops without waiting).
- In burst mode a child that exits with status 0 has emptied its queues and is not restarted.
- Children die with the supervisor (Linux `PR_SET_PDEATHSIG`, as SIGTERM), so a SIGKILLed
  supervisor leaves no worker behind.

It imports nothing but the standard library: the workers' own imports happen in the children.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

RESTART_DELAY_S = 0.5
RESTART_DELAY_CAP_S = 30.0
HEALTHY_S = 60.0
STOP_MARGIN_S = 10.0
READY_WORD = "ready"
_PR_SET_PDEATHSIG = 1


def cores() -> int:
    """The cores this process may run on (a container's cpuset, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def restart_delay(previous: float, lived_s: float) -> float:
    """How long to wait before starting a child again, given the last wait and how long the
    child that just exited ran."""
    if lived_s >= HEALTHY_S or previous <= 0:
        return RESTART_DELAY_S
    return min(previous * 2, RESTART_DELAY_CAP_S)


@dataclass
class _Slot:
    index: int
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    finished: bool = False


class Supervisor:
    def __init__(
        self,
        command_for: Callable[[int], Sequence[str]],
        processes: int,
        *,
        stop_grace_s: float,
        burst: bool = False,
        env: dict[str, str] | None = None,
        on_ready: Callable[[list[int]], None] | None = None,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self._command_for = command_for
        self._slots = [_Slot(i) for i in range(processes)]
        self._stop_wait_s = stop_grace_s + STOP_MARGIN_S
        self._burst = burst
        self._env = env
        self._on_ready = on_ready
        self._stopping = asyncio.Event()
        self._ready: set[int] = set()
        self._announced = False

    @property
    def pids(self) -> list[int]:
        """The live children's process ids, by slot."""
        return [s.process.pid for s in self._slots if s.process and s.process.returncode is None]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Forward `sig` to every child; the supervisor ends once they have."""
        self._stopping.set()
        for slot in self._slots:
            if slot.process is not None and slot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(sig)

    async def run(self) -> int:
        """Runs the children until a signal (or, in burst mode, until every child is done)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig)
        try:
            slots = [asyncio.create_task(self._keep_running(s)) for s in self._slots]
            done = asyncio.create_task(asyncio.wait(slots))
            stopping = asyncio.create_task(self._stopping.wait())
            await asyncio.wait([done, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not done.done():
                await self._wait_for_children(slots)
            stopping.cancel()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        return 0

    async def _wait_for_children(self, slots: list[asyncio.Task[None]]) -> None:
        _, late = await asyncio.wait(slots, timeout=self._stop_wait_s)
        for slot in self._slots:
            if slot.process is not None and slot.process.returncode is None:
                logger.warning(
                    "worker process %d did not stop within %.0f s; killing it",
                    slot.process.pid,
                    self._stop_wait_s,
                )
                with contextlib.suppress(ProcessLookupError):
                    slot.process.kill()
        if late:
            await asyncio.wait(late)

    async def _keep_running(self, slot: _Slot) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.0
        while not self._stopping.is_set():
            started = loop.time()
            process = slot.process = await self._spawn(slot.index)
            code = await self._follow(slot, process)
            if self._stopping.is_set():
                return
            if self._burst and code == 0:
                slot.finished = True
                return
            delay = restart_delay(delay, loop.time() - started)
            slot.restarts += 1
            logger.warning(
                "worker process %d (slot %d) exited with %s; starting another in %.1f s",
                process.pid,
                slot.index,
                _describe(code),
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        command = list(self._command_for(index))
        return await asyncio.create_subprocess_exec(
            *command,
            stdout=asyncio.subprocess.PIPE,
            env=self._env,
            process_group=0,  # a Ctrl-C reaches the supervisor only, which forwards it once
            preexec_fn=_die_with_parent(os.getpid()),
        )

    async def _follow(self, slot: _Slot, process: asyncio.subprocess.Process) -> int:
        """Passes the child's stdout through, notes its ready line, and returns its exit code."""
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if READY_WORD in line and slot.index not in self._ready:
                self._ready.add(slot.index)
                self._announce_when_all_ready()
                if slot.restarts:
                    logger.warning("worker process %d (slot %d) is ready", process.pid, slot.index)
                continue
            print(line, flush=True)
        return await process.wait()

    def _announce_when_all_ready(self) -> None:
        if self._announced or len(self._ready) < len(self._slots):
            return
        self._announced = True
        if self._on_ready is not None:
            self._on_ready(self.pids)


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"status {code}"


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when the supervisor dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died before the hook ran
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


async def supervise(
    command_for: Callable[[int], Sequence[str]],
    processes: int,
    *,
    stop_grace_s: float,
    burst: bool = False,
    env: dict[str, str] | None = None,
    on_ready: Callable[[list[int]], None] | None = None,
) -> int:
    supervisor = Supervisor(
        command_for, processes, stop_grace_s=stop_grace_s, burst=burst, env=env, on_ready=on_ready
    )
    return await supervisor.run()
