"""Another language, both ways in and out: examples/node enqueues through enqueue.lua and over
HTTP, reads through XREAD and SSE, and must see exactly what the Python client sees.

Runs `node` as a subprocess against the session's Redis, worker and a gateway; skipped only when
node is not installed. `npm ci` runs once when examples/node/node_modules is missing (it stays
in the work tree afterwards, so later runs start at once)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from relayq.client import Client
from relayq.schemas.events import parse_event
from relayq.simulator import scripted_reply
from relayq.transcript import transcript_of
from tests.conftest import ROOT
from tests.test_gateway import KEYS, gateway

NODE_DIR = ROOT / "examples" / "node"
__all__ = ["gateway"]  # the fixture, imported for this module

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def ensure_node_modules() -> None:
    if (NODE_DIR / "node_modules" / "redis" / "package.json").exists():
        return
    npm = shutil.which("npm")
    assert npm is not None, "node is installed but npm is not: install npm"
    command = "ci" if (NODE_DIR / "package-lock.json").exists() else "install"
    subprocess.run(
        [npm, command, "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_DIR,
        check=True,
        timeout=300,
    )


async def test_the_node_client_sees_what_the_python_client_sees(
    gateway: str, redis_url: str, client: Client
) -> None:
    await asyncio.to_thread(ensure_node_modules)
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "GATEWAY_URL": gateway,
        "API_KEY": KEYS["acme"],
        "TENANT": "acme",
        "CONTRACT_DIR": str(ROOT / "relayq" / "contract"),
    }
    node = await asyncio.create_subprocess_exec(
        "node",
        "test.mjs",
        cwd=NODE_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(node.communicate(), timeout=90)
    assert node.returncode == 0, stderr.decode()[-4000:]
    jobs = json.loads(stdout.decode().strip().splitlines()[-1])["jobs"]

    assert [job["path"] for job in jobs] == ["lua", "http"]
    for job in jobs:
        python = [entry async for entry in client.events(job["id"])]
        assert job["ids"] == [entry.id for entry in python]
        assert [parse_event(json.dumps(e)) for e in job["events"]] == [e.event for e in python]
        expected = transcript_of([e.event for e in python])
        assert (
            job["text"]
            == expected.text
            == scripted_reply({"messages": [{"role": "user", "content": job["prompt"]}]})
        )
        assert job["outcome"] == expected.outcome == "done"
        assert job["stopReason"] == expected.stop_reason
        status = await client.status(job["id"])
        assert status.tenant == "acme" and status.status == "done"


def test_the_node_example_has_a_lockfile_so_installs_are_reproducible() -> None:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    assert "node_modules/redis" in lock["packages"]
    assert Path(NODE_DIR / "client.mjs").exists()
