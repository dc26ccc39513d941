"""The egress filter: a loopback SOCKS5 proxy per browser context that applies the job's
network policy to every connection Chromium opens, after DNS, redirect hops included (why it is
needed: relayq.workers.browser.guard)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import struct
from collections import Counter

from playwright.async_api import ProxySettings

from relayq.workers.browser.policy import (
    NO_POLICY,
    IPAddress,
    NetworkPolicy,
    Violation,
    ViolationCallback,
    vet_host,
)

__all__ = ["EgressFilter"]

log = logging.getLogger(__name__)

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
            reason: str | None = NO_POLICY
            addresses: list[IPAddress] = []
        else:
            reason, addresses = await vet_host(host, port, policy)
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
