"""A start URL that redirects where the job may not go ends with the policy's reason, through a
real computer worker and Chromium: `navigation_blocked`, naming the blocked host and the rule,
not Chromium's `net::ERR_SOCKS_CONNECTION_FAILED`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from relayq.client import Client
from relayq.schemas.events import Error, Screenshot
from relayq.schemas.jobs import ComputerUseJob
from tests.conftest import WorkerProcess

pytestmark = pytest.mark.browser


class Redirector(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        target = parse_qs(urlsplit(self.path).query)["to"][0]
        self.send_response(302)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def redirector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("target", "host", "rule"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "is a link-local"),
        ("http://localhost/admin", "localhost", "is not in allowed domains ['127.0.0.1']"),
    ],
    ids=["metadata-address", "outside-allowed-domains"],
)
async def test_a_redirect_from_the_start_url_to_a_blocked_host_names_the_policy_violation(
    client: Client,
    computer_worker: WorkerProcess,
    redirector: str,
    target: str,
    host: str,
    rule: str,
) -> None:
    start_url = f"{redirector}/go?to={quote(target, safe='')}"
    job = ComputerUseJob(
        task="[[sim:plan=signup]] Sign up",
        start_url=start_url,
        allow_private_network=True,  # the redirector is on loopback
        allowed_domains=["127.0.0.1"],
    )
    await client.submit(job)

    events = [entry.event async for entry in client.events(job.id)]

    final = events[-1]
    assert isinstance(final, Error), final
    assert final.error.type == "navigation_blocked", final.error.message
    message = final.error.message
    assert message.startswith(f"{start_url} led to {host}")
    assert "blocked by the browser's network policy" in message and rule in message
    assert "ERR_" not in message
    assert not [e for e in events if isinstance(e, Screenshot)]  # nothing was rendered
