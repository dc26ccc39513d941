"""A real terminal for CLI tests: the command runs on a pseudo-terminal of a given size, and its
output is interpreted by pyte (a VT100 emulator) into the screen a person would see."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Sequence

import pyte


class Terminal:
    def __init__(
        self, argv: Sequence[str], env: dict[str, str], *, columns: int, lines: int
    ) -> None:
        self.screen = pyte.Screen(columns, lines)
        self._stream = pyte.ByteStream(self.screen)
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        self.process = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**env, "TERM": "xterm"},
            start_new_session=True,
        )
        os.close(slave)
        self._master = master
        self.raw = b""

    def rows(self) -> list[str]:
        return [row.rstrip() for row in self.screen.display]

    def read_until(self, done: Callable[[list[str]], bool], timeout: float = 60.0) -> list[str]:
        """Feeds output to the screen until `done(rows)` or the command exits; returns rows."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(self._master, 65536)
                except OSError:  # the command exited and closed the terminal
                    chunk = b""
                if chunk:
                    self.raw += chunk
                    self._stream.feed(chunk)
                    if done(self.rows()):
                        return self.rows()
                    continue
            if self.process.poll() is not None:
                return self.rows()
        raise AssertionError("timed out; the screen shows:\n" + "\n".join(self.rows()))

    def wait(self, timeout: float = 60.0) -> int:
        self.read_until(lambda rows: False, timeout)
        return self.process.wait(timeout=5)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        os.close(self._master)
