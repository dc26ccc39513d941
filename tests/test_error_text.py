"""Error text as subscribers see it, through a real worker and the simulator over HTTP: what the
API said, in words, with the retry's delay; never the SDK's `Error code: 529 - {...}` repr."""

from __future__ import annotations

import re
import uuid

from relayq.client import Client
from relayq.schemas.events import Error, Retry
from relayq.schemas.jobs import ChatJob, ConnOptions


async def test_a_retried_overload_reads_as_words_with_the_delay(client: Client) -> None:
    job = ChatJob(
        prompt=f"[[sim:fail=529 times=1]] Overloaded at first {uuid.uuid4()}",
        conn_options=ConnOptions(retry_interval=0.4),
    )
    await client.submit(job)

    events = [entry.event async for entry in client.events(job.id)]

    (retry,) = [e for e in events if isinstance(e, Retry)]
    assert retry.error is not None
    assert re.fullmatch(
        r"Anthropic API overloaded \(529\), retrying in \d+\.\d s", retry.error.message
    )
    assert f"retrying in {retry.delay:.1f} s" in retry.error.message


async def test_a_final_rejection_carries_the_apis_reason(client: Client) -> None:
    job = ChatJob(prompt=f"[[sim:fail=400]] A request the API refuses {uuid.uuid4()}")
    await client.submit(job)

    events = [entry.event async for entry in client.events(job.id)]

    assert isinstance(events[-1], Error)
    assert events[-1].error.message == (
        "Anthropic API rejected the request (400): Invalid request (simulated)"
    )
