"""The chat pipeline end to end: client -> Redis -> worker process -> simulator over HTTP."""

from __future__ import annotations

import json

from relayq.client import Client, StreamEntry
from relayq.simulator import Simulator, scripted_reply
from relayq.transcript import transcript_of
from schemas.events import Done, Error, Retry, Started, Text, ToolCall
from schemas.jobs import ChatJob, ConnOptions, ToolSchema


def sim_body(job: ChatJob) -> dict[str, object]:
    """The request body the simulator scripts its reply from (the last user message is enough)."""
    return {"messages": [{"role": "user", "content": job.prompt}]}


async def collect(client: Client, job_id: str, after: str = "0") -> list[StreamEntry]:
    return [entry async for entry in client.events(job_id, after=after)]


async def test_chat_job_streams_the_scripted_reply_then_done(client: Client) -> None:
    job = ChatJob(prompt="Say hello to the pipeline", system="Be brief.")
    submitted = await client.submit(job)
    assert submitted.created

    entries = await collect(client, job.id)
    events = [e.event for e in entries]

    assert [e.type for e in events[:2]] == ["queued", "started"]
    assert isinstance(events[-1], Done)
    assert events[-1].stop_reason == "end_turn"
    assert sum(e.type in ("done", "error", "cancelled") for e in events) == 1
    assert "".join(e.text for e in events if isinstance(e, Text)) == scripted_reply(sim_body(job))
    assert events[-1].usage.completion_tokens > 0
    assert all(e.job_id == job.id for e in events)
