"""Browser-safety fixtures: two local HTTP sites (see safety_sites) and a shared BrowserPool."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from safety_sites import Site, SiteHandler, SiteServer, Violations

from relayq.workers.browser.pool import BrowserPool


@pytest.fixture(scope="session")
def _servers() -> Iterator[tuple[Site, Site]]:
    servers = []
    sites = []
    for host in ("127.0.0.1", "localhost"):
        server = SiteServer(("127.0.0.1", 0), SiteHandler)
        server.site = Site(host, server.server_address[1])
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        sites.append(server.site)
    yield sites[0], sites[1]
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def site_a(_servers: tuple[Site, Site]) -> Site:
    """Reached as 127.0.0.1."""
    return _servers[0]


@pytest.fixture
def site_b(_servers: tuple[Site, Site]) -> Site:
    """Reached as localhost."""
    return _servers[1]


@pytest.fixture(scope="session")
async def pool() -> AsyncIterator[BrowserPool]:
    async with BrowserPool(size=2) as browser_pool:
        yield browser_pool


@pytest.fixture
def violations() -> Violations:
    return Violations()
