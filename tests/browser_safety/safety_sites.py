"""Helpers for the browser-safety tests: local HTTP sites and a violation queue.

Both sites listen on 127.0.0.1; site B is addressed as ``localhost`` so that an allow-list of
``["127.0.0.1"]`` admits A and refuses B without any traffic leaving the machine.

Paths: ``/page`` (HTML with a download link), ``/redirect?to=URL`` (302), ``/download``
(an attachment), ``/sw.js`` (a service worker script). Every request path is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from relayq.workers.browser.policy import NetworkPolicy, Violation

DOWNLOAD_PAYLOAD = b"relayq-download-payload-7f3a"
LOCAL_ONLY = NetworkPolicy(allowed_domains=["127.0.0.1"], allow_private_network=True)


@dataclass
class Site:
    host: str
    port: int
    paths: list[str] = field(default_factory=list)

    def url(self, path: str = "/page") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def redirect_to(self, target: str) -> str:
        return self.url(f"/redirect?to={quote(target, safe='')}")


class SiteHandler(BaseHTTPRequestHandler):
    server: SiteServer

    def do_GET(self) -> None:
        self.server.site.paths.append(self.path)
        url = urlsplit(self.path)
        if url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", parse_qs(url.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path == "/download":
            self._send(DOWNLOAD_PAYLOAD, "application/octet-stream", attachment=True)
        elif url.path == "/sw.js":
            self._send(b"self.addEventListener('fetch', () => {});", "text/javascript")
        else:
            html = f"<title>{self.path}</title><a id=download href=/download>get</a>"
            self._send(html.encode(), "text/html")

    def _send(self, body: bytes, content_type: str, *, attachment: bool = False) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if attachment:
            self.send_header("Content-Disposition", 'attachment; filename="payload.bin"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class SiteServer(ThreadingHTTPServer):
    daemon_threads = True
    site: Site


class Violations:
    """An ``on_violation`` sink whose next violation can be awaited."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Violation] = asyncio.Queue()

    @property
    def callback(self) -> Callable[[Violation], None]:
        return self._queue.put_nowait

    async def next(self, layer: str | None = None) -> Violation:
        """The next violation (caught by ``layer``, if given)."""
        async with asyncio.timeout(10):
            while True:
                violation = await self._queue.get()
                if layer is None or violation.layer == layer:
                    return violation
