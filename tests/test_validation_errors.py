"""Validation errors say where and what failed, never the value that failed: a job may carry
secrets, and error events, client exceptions and gateway answers are read by others."""

from __future__ import annotations

import json

import httpx
import pytest

from relayq.client import Client
from relayq.errors import InvalidJob
from relayq.schemas.events import Error
from tests.conftest import WorkerProcess, enqueue_raw
from tests.test_gateway import ACME, running_gateway

SECRET = "sk-ant-api03-DoNotEchoMe"

BAD_JOBS = {
    "wrong type": ({"prompt": "hi", "temperature": SECRET}, "temperature"),
    "unknown kind": ({"kind": SECRET, "prompt": "hi"}, "kind"),
    "bad chat context": (
        {"messages": {"items": [{"type": "message", "role": SECRET, "content": [SECRET]}]}},
        "messages",
    ),
    "bad url": (
        {"kind": "computer_use", "task": "log in", "start_url": f"ftp://ada:{SECRET}@example.com"},
        "start_url",
    ),
    "extra field": ({"prompt": "hi", "surprise": SECRET}, "surprise"),
}


@pytest.mark.parametrize(("body", "field"), BAD_JOBS.values(), ids=list(BAD_JOBS))
async def test_a_workers_error_event_names_the_field_but_not_its_value(
    client: Client, worker: WorkerProcess, body: dict[str, object], field: str
) -> None:
    job_id = f"secretive_{field}_{abs(hash(json.dumps(body))) % 10**9}"
    # a producer that skips validation: the raw envelope, as CONTRACT.md's enqueue writes it
    await enqueue_raw(client, job_id, json.dumps({"id": job_id, **body}))

    events = [entry.event async for entry in client.events(job_id)]

    error = events[-1]
    assert isinstance(error, Error) and error.error.type == "invalid_request"
    assert field in error.error.message
    assert SECRET not in json.dumps([e.model_dump(mode="json") for e in events])


async def test_the_clients_invalid_job_error_does_not_quote_the_input(client: Client) -> None:
    with pytest.raises(InvalidJob) as info:
        await client.submit_chat("hi", temperature=SECRET)

    assert "temperature" in str(info.value) and SECRET not in str(info.value)


async def test_the_gateways_422_does_not_quote_the_input(idle_redis_url: str) -> None:
    with running_gateway(idle_redis_url) as base:
        async with httpx.AsyncClient(base_url=base, headers=ACME, timeout=30) as http:
            answers = [await http.post("/v1/jobs", json=body) for body, _ in BAD_JOBS.values()]

    for answer, (_, field) in zip(answers, BAD_JOBS.values(), strict=True):
        assert answer.status_code == 422 and field in answer.text
        assert SECRET not in answer.text
