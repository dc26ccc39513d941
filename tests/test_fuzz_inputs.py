"""Inputs that cross a trust boundary, fuzzed with hypothesis: job payloads (as the schema sees
them and through a real worker) and raw bytes in the queue's keys. Each gets a clear error,
no worker dies, no other job is affected."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayq.client import Client
from relayq.schemas.constants import envelope_key, events_key, job_key
from relayq.schemas.events import Done, Error
from relayq.schemas.jobs import ChatJob, parse_job
from relayq.schemas.settings import Settings
from tests.conftest import WorkerProcess, enqueue_raw, put_raw_envelope

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=30,
)
job_like = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(["chat", "computer_use", "nope", 3]),
        "prompt": st.text(max_size=30) | st.integers(),
        "system": st.text(max_size=10) | st.lists(st.text()),
        "messages": json_values,
        "tools": st.lists(
            st.fixed_dictionaries(
                {"name": st.text(max_size=70), "input_schema": json_values},
                optional={"description": json_values},
            ),
            max_size=3,
        ),
        "tool_choice": json_values,
        "max_tokens": json_values,
        "temperature": json_values,
        "conn_options": json_values,
        "deadline": json_values,
        "metadata": json_values,
        "id": st.text(max_size=140),
        "surprise": json_values,
        "task": json_values,
        "start_url": st.text(max_size=30),
    },
)
raw_payloads = (
    st.binary(max_size=300)
    | job_like.map(lambda d: json.dumps(d).encode())
    | st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n)
    | st.integers(1, 3000).map(
        lambda n: ('{"prompt":"x","metadata":' + '{"a":' * n + "1" + "}" * n + "}").encode()
    )
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(raw_payloads)
def test_any_payload_either_parses_or_is_refused_with_a_value_error(raw: bytes) -> None:
    try:
        job = parse_job(raw)
    except ValueError as e:
        assert str(e)
    else:
        assert job.id and job.v == 1


def test_huge_and_deeply_nested_payloads_are_refused_cleanly() -> None:
    for raw in (
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps({"prompt": "x" * 5_000_000}).encode(),
        json.dumps({"prompt": "x", "metadata": {str(i): i for i in range(100)}}).encode(),
    ):
        try:
            parse_job(raw)
        except ValueError:
            continue
        raise AssertionError("accepted")


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=job_like.map(json.dumps) | st.text(max_size=80))
def test_bad_payloads_through_a_real_worker_get_one_error_event_each(
    payload: str, redis_url: str, worker: WorkerProcess
) -> None:
    async def scenario() -> tuple[Any, Any]:
        async with Client(redis_url, settings=Settings(redis_url=redis_url)) as client:
            bad_id = f"fuzz_{abs(hash(payload)) % 10**12}_{id(payload)}"
            await enqueue_raw(client, bad_id, payload)
            bad = [e.event async for e in client.events(bad_id)]
            return bad, None

    events, _ = asyncio.run(scenario())
    terminals = [e for e in events if e.type in ("done", "error", "cancelled")]
    assert len(terminals) == 1
    if isinstance(terminals[0], Error):
        assert terminals[0].error.type in ("invalid_request", "APIStatusError")
        assert terminals[0].error.message


async def test_the_worker_still_serves_after_the_fuzzing(client: Client) -> None:
    job = ChatJob(prompt="after the fuzz")
    await client.submit(job)
    assert isinstance([e.event async for e in client.events(job.id)][-1], Done)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(envelope=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_raw_garbage_in_an_arq_envelope_is_reported_not_fatal(
    envelope: bytes, redis_url: str, worker: WorkerProcess
) -> None:
    async def scenario() -> list[Any]:
        async with Client(redis_url, settings=Settings(redis_url=redis_url)) as client:
            job_id = f"garbage_{abs(hash(envelope)) % 10**12}"
            await client.redis.delete(job_key(job_id), events_key(job_id), envelope_key(job_id))
            await put_raw_envelope(client, job_id, envelope)
            return [e.event async for e in client.events(job_id)]

    events = asyncio.run(scenario())
    assert sum(e.type in ("done", "error", "cancelled") for e in events) == 1
