"""The chat pipeline end to end: client -> Redis -> worker process -> simulator over HTTP."""

from __future__ import annotations

import json

from relayq.client import Client, StreamEntry
from relayq.schemas.constants import CHAT_QUEUE
from relayq.schemas.events import Done, Error, Retry, Started, Text, ToolCall
from relayq.schemas.jobs import ChatJob, ConnOptions, ToolSchema
from relayq.simulator import scripted_reply
from relayq.transcript import transcript_of


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


WEATHER = ToolSchema(
    name="get_weather",
    description="Current weather for a city.",
    input_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
        "required": ["city", "unit"],
    },
)


async def test_tool_call_job_publishes_the_call_with_its_json_arguments(client: Client) -> None:
    job = ChatJob(prompt="What is the weather in Paris?", tools=[WEATHER])
    await client.submit(job)

    events = [e.event for e in await collect(client, job.id)]

    calls = [e for e in events if isinstance(e, ToolCall)]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert calls[0].call_id
    arguments = json.loads(calls[0].arguments)
    assert set(arguments) >= {"city", "unit"} and arguments["unit"] in ("C", "F")
    assert isinstance(events[-1], Done) and events[-1].stop_reason == "tool_use"


async def test_invalid_json_tool_input_is_delivered_raw_and_the_job_still_ends_done(
    client: Client,
) -> None:
    job = ChatJob(prompt="[[sim:badjson=1]] Weather in Oslo?", tools=[WEATHER])
    await client.submit(job)

    events = [e.event for e in await collect(client, job.id)]

    (call,) = [e for e in events if isinstance(e, ToolCall)]
    try:
        json.loads(call.arguments)
        parsed = True
    except json.JSONDecodeError:
        parsed = False
    assert not parsed, "the simulator was asked for invalid JSON"
    assert call.arguments
    assert isinstance(events[-1], Done)


async def test_subscriber_that_disconnects_resumes_with_no_gap_and_no_duplicate(
    client: Client,
) -> None:
    job = ChatJob(prompt="[[sim:tokens=60 rate=400]] A longer answer please")
    await client.submit(job)

    first_part: list[StreamEntry] = []
    async for entry in client.events(job.id):
        first_part.append(entry)
        if entry.event.type == "text" and len(first_part) >= 4:
            break  # the subscriber goes away mid-stream
    rest = await collect(client, job.id, after=first_part[-1].id)
    everything = await collect(client, job.id)

    resumed = first_part + rest
    assert [e.id for e in resumed] == [e.id for e in everything]
    assert len({e.id for e in resumed}) == len(resumed)
    assert transcript_of([e.event for e in resumed]).text == scripted_reply(sim_body(job))


async def test_two_subscribers_on_one_job_see_the_same_events(client: Client) -> None:
    import asyncio

    job = ChatJob(prompt="[[sim:tokens=40 rate=300]] Two readers")
    await client.submit(job)

    a, b = await asyncio.gather(collect(client, job.id), collect(client, job.id))

    assert [(e.id, e.event) for e in a] == [(e.id, e.event) for e in b]
    assert isinstance(a[-1].event, Done)


async def test_overloaded_529_is_retried_and_only_the_final_attempt_has_output(
    client: Client,
) -> None:
    job = ChatJob(
        prompt="[[sim:fail=529 times=1]] Retry me",
        conn_options=ConnOptions(max_retry=2, retry_interval=0.05),
    )
    await client.submit(job)

    events = [e.event for e in await collect(client, job.id)]

    retries = [e for e in events if isinstance(e, Retry)]
    assert len(retries) == 1
    assert retries[0].attempt == 1 and retries[0].reason == "api_error"
    assert retries[0].error is not None and retries[0].error.status_code == 529
    assert retries[0].error.retryable
    assert [e.attempt for e in events if isinstance(e, Started)] == [1, 2]
    assert all(e.attempt == 2 for e in events if isinstance(e, Text))
    assert isinstance(events[-1], Done) and events[-1].attempt == 2
    assert transcript_of(events).text == scripted_reply(sim_body(job))


async def test_bad_request_400_ends_with_one_error_and_no_retry(client: Client) -> None:
    job = ChatJob(prompt="[[sim:fail=400]] Not a valid request")
    await client.submit(job)

    events = [e.event for e in await collect(client, job.id)]

    assert not [e for e in events if isinstance(e, Retry)]
    errors = [e for e in events if isinstance(e, Error)]
    assert len(errors) == 1 and events[-1] is errors[0]
    assert errors[0].error.type == "APIStatusError"
    assert errors[0].error.status_code == 400
    assert errors[0].error.retryable is False
    assert errors[0].error.request_id


async def test_invalid_payload_gets_an_error_event_and_the_worker_serves_the_next_job(
    client: Client,
) -> None:
    from tests.conftest import enqueue_raw

    bad_id = "job_invalid_payload_1"
    await enqueue_raw(client, bad_id, '{"prompt": 42, "temperature": "hot"')
    bad_events = [e.event for e in await collect(client, bad_id)]

    assert isinstance(bad_events[-1], Error)
    assert bad_events[-1].error.type == "invalid_request"
    assert "JSON" in bad_events[-1].error.message

    good = ChatJob(prompt="Still alive?")
    await client.submit(good)
    assert isinstance((await collect(client, good.id))[-1].event, Done)


async def test_mid_stream_overload_after_output_is_an_error_without_duplicated_text(
    client: Client,
) -> None:
    job = ChatJob(
        prompt="[[sim:midstream=overloaded_error after=3]] Break in the middle",
        conn_options=ConnOptions(max_retry=2, retry_interval=0.05),
    )
    await client.submit(job)

    events = [e.event for e in await collect(client, job.id)]

    assert not [e for e in events if isinstance(e, Retry)]
    assert isinstance(events[-1], Error)
    assert events[-1].error.status_code == 529
    assert events[-1].error.retryable is False
    text = transcript_of(events).text
    assert text and scripted_reply(sim_body(job)).startswith(text)


async def test_read_timeout_before_first_token_is_retried_with_reason_timeout(
    client: Client,
) -> None:
    job = ChatJob(
        prompt="[[sim:stall=5 after=-1 times=1]] Slow to start",
        conn_options=ConnOptions(max_retry=3, retry_interval=0.05, timeout=1.5),
    )
    await client.submit(job)

    events = [e.event for e in await collect(client, job.id)]

    retry = next(e for e in events if isinstance(e, Retry))
    assert retry.reason == "timeout" and retry.error is not None
    assert retry.error.type == "APITimeoutError"
    assert isinstance(events[-1], Done)


async def test_resubmitting_a_job_id_returns_the_existing_job_and_runs_it_once(
    client: Client,
) -> None:
    job = ChatJob(prompt="Only once")
    first = await client.submit(job)
    second = await client.submit(job)

    events = [e.event for e in await collect(client, job.id)]

    assert first.created and not second.created
    assert sum(isinstance(e, Started) for e in events) == 1
    assert sum(isinstance(e, Done) for e in events) == 1


async def test_after_the_terminal_event_every_key_of_the_job_expires(
    client: Client, settings: object
) -> None:
    from relayq.schemas.constants import events_key, job_key

    job = ChatJob(prompt="Expire me")
    await client.submit(job)
    await collect(client, job.id)

    for key in (events_key(job.id), job_key(job.id)):
        ttl = await client.redis.ttl(key)
        assert 0 < ttl <= 600, key


async def test_cancel_a_running_job_ends_it_cancelled(client: Client) -> None:
    job = ChatJob(prompt="[[sim:tokens=400 rate=50]] A long slow answer")
    await client.submit(job)

    events = []
    outcome = None
    async for entry in client.events(job.id):
        events.append(entry.event)
        if isinstance(entry.event, Text) and outcome is None:
            outcome = await client.cancel(job.id)
    assert outcome == "signalled"
    assert events[-1].type == "cancelled"
    assert sum(e.type in ("done", "error", "cancelled") for e in events) == 1
    assert (await client.status(job.id)).status == "cancelled"


async def test_cancel_a_queued_job_prevents_it_from_starting(idle_client: Client) -> None:
    job = ChatJob(prompt="Never runs")
    await idle_client.submit(job)

    assert await idle_client.cancel(job.id) == "cancelled"

    events = [e.event for e in await collect(idle_client, job.id)]
    assert [e.type for e in events] == ["queued", "cancelled"]
    assert await idle_client.redis.zscore(CHAT_QUEUE, job.id) is None


async def test_cancel_of_unknown_or_finished_job_is_a_no_op(client: Client) -> None:
    from relayq.schemas.constants import cancel_key

    assert await client.cancel("job_that_never_was") == "unknown"
    assert not await client.redis.exists(cancel_key("job_that_never_was"))

    job = ChatJob(prompt="Done before the cancel")
    await client.submit(job)
    await collect(client, job.id)
    assert await client.cancel(job.id) == "finished"
    assert not await client.redis.exists(cancel_key(job.id))


async def test_past_deadline_ends_the_job_with_a_timeout_error(client: Client) -> None:
    from datetime import UTC, datetime, timedelta

    job = ChatJob(
        prompt="[[sim:tokens=200 rate=20]] Too slow for the deadline",
        deadline=datetime.now(UTC) + timedelta(seconds=1.0),
    )
    await client.submit(job)

    events = [e.event for e in await collect(client, job.id)]

    assert isinstance(events[-1], Error)
    assert events[-1].error.type == "APITimeoutError"
    assert "deadline" in events[-1].error.message
