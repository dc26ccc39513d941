"""Browser-test fixtures: one Chromium and one HTTP server per session, a fresh page per test.

The server serves tests/browser/pages/*.html; `/slow?ms=N` answers after N ms, and
`/slow?ms=N&file=x.html` serves that page after N ms.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser, Page, async_playwright

from relayq.llm.computer_tool import ComputerTool
from relayq.llm.page_actions import PageActions, launch_chromium

PAGES = Path(__file__).parent / "pages"
WIDTH, HEIGHT = 1280, 720


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(PAGES), **kwargs)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/slow":
            super().do_GET()
            return
        query = parse_qs(url.query)
        time.sleep(int(query.get("ms", ["0"])[0]) / 1000)
        if "file" in query:
            self.path = "/" + query["file"][0]
            super().do_GET()
            return
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(
        viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=1
    )
    try:
        yield await context.new_page()
    finally:
        await context.close()


@pytest.fixture
async def actions(page: Page) -> AsyncIterator[PageActions]:
    actions = PageActions(page=page)
    try:
        yield actions
    finally:
        await actions.aclose()


@pytest.fixture
def tool(actions: PageActions) -> ComputerTool:
    return ComputerTool(actions=actions, width=WIDTH, height=HEIGHT, enable_zoom=True)
