"""Computer-use jobs end to end: a real worker process with a real Chromium, the simulator's
scripted policy over HTTP, the demo page served from localhost."""

from __future__ import annotations

import asyncio
import json
import struct

import pytest

from relayq.client import Client
from relayq.schemas.constants import WORKERS_PATTERN
from relayq.schemas.events import Action, Done, Error, Event, Screenshot, Text, Thinking
from relayq.schemas.jobs import ComputerUseJob
from relayq.simulator import (
    DEMO_SIGNUP_PATH,
    SMALL_TARGET,
    SMALL_TARGET_PATH,
    Simulator,
    computer_plan,
)
from relayq.transcript import transcript_of
from tests.conftest import WorkerProcess

pytestmark = pytest.mark.browser


@pytest.fixture
def computer_client(client: Client, computer_worker: WorkerProcess) -> Client:
    return client


async def events_of(client: Client, job_id: str) -> list[Event]:
    return [e.event async for e in client.events(job_id)]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def signup_job(site: str, *, start_url: str | None = None, **fields: object) -> ComputerUseJob:
    return ComputerUseJob.model_validate(
        {
            "task": "[[sim:plan=signup]] Create an account for Ada Lovelace, ada@example.com.",
            "start_url": start_url or f"{site}/demo_signup.html",
            "allow_private_network": True,
            **fields,
        }
    )


@pytest.mark.parametrize("page_server", ["static_server", "simulator"])
async def test_signup_job_runs_the_loop_and_streams_actions_and_screenshots(
    computer_client: Client, site: str, simulator: Simulator, page_server: str
) -> None:
    # the simulator serves the demo page itself, so the tour needs nothing else started
    start_url = f"{simulator.base_url}{DEMO_SIGNUP_PATH}" if page_server == "simulator" else None
    job = signup_job(site, start_url=start_url)
    await computer_client.submit(job)

    events = await events_of(computer_client, job.id)
    t = transcript_of(events)

    assert isinstance(events[-1], Done) and events[-1].stop_reason == "end_turn"
    plan = computer_plan({"messages": [{"role": "user", "content": job.task}]})
    assert [a.input for a in t.actions] == plan
    assert [a.step for a in t.actions] == list(range(1, len(plan) + 1))
    assert [s.step for s in t.screenshots] == list(range(0, len(plan) + 1))
    for shot in t.screenshots:
        data = await computer_client.screenshot(job.id, shot.blob)
        assert png_size(data) == (1280, 720) and len(data) == shot.size
    first = await computer_client.screenshot(job.id, t.screenshots[0].blob)
    last = await computer_client.screenshot(job.id, t.screenshots[-1].blob)
    assert first != last, "the page did not change"
    assert "Task complete" in t.text
    assert events[-1].usage.prompt_tokens > 0


async def test_at_1920x1080_the_model_sees_1366x768_and_its_click_on_a_small_target_lands(
    computer_client: Client, simulator: Simulator
) -> None:
    job = ComputerUseJob(
        task="[[sim:plan=small_target]] Click the small red square.",
        start_url=f"{simulator.base_url}{SMALL_TARGET_PATH}",
        allow_private_network=True,
        display_width=1920,
        display_height=1080,
    )
    await computer_client.submit(job)

    events = await events_of(computer_client, job.id)
    t = transcript_of(events)

    assert isinstance(events[-1], Done) and "The last action failed" not in t.text
    [click] = [a for a in t.actions if a.action == "left_click"]
    assert click.input["coordinate"] == SMALL_TARGET.on((1366, 768))  # the model's own space
    for shot in t.screenshots:
        data = await computer_client.screenshot(job.id, shot.blob)
        assert png_size(data) == (shot.width, shot.height) == (1366, 768)
    assert t.screenshots[-1].url is not None and t.screenshots[-1].url.endswith("#hit")


async def test_clicks_and_scrolls_without_a_coordinate_act_at_the_cursor(
    computer_client: Client, site: str
) -> None:
    job = signup_job(site, task="[[sim:plan=at_cursor]] Type the name where the pointer is.")
    await computer_client.submit(job)

    events = await events_of(computer_client, job.id)
    t = transcript_of(events)

    assert isinstance(events[-1], Done) and "The last action failed" not in t.text
    assert [a.input.get("coordinate") for a in t.actions][1:4] == [None, None, None]
    typed = await computer_client.screenshot(job.id, t.screenshots[3].blob)
    before = await computer_client.screenshot(job.id, t.screenshots[2].blob)
    assert typed != before, "typing after the click at the cursor changed the page"


async def test_a_computer_job_with_thinking_sends_each_turns_signed_thinking_back(
    computer_client: Client, site: str, simulator: Simulator
) -> None:
    rejected_before = sum(simulator.stats["rejected"].values())
    job = signup_job(site, thinking={"type": "enabled", "budget_tokens": 1024})
    await computer_client.submit(job)

    events = await events_of(computer_client, job.id)

    assert isinstance(events[-1], Done) and events[-1].stop_reason == "end_turn"
    signed = [e for e in events if isinstance(e, Thinking) and e.signature]
    plan = computer_plan({"messages": [{"role": "user", "content": job.task}]})
    assert len(signed) == len(plan) + 1  # one thinking block per model turn
    assert sum(simulator.stats["rejected"].values()) == rejected_before


async def test_typed_text_and_secrets_are_redacted_in_action_events(
    computer_client: Client, site: str
) -> None:
    job = signup_job(site, redact_typed_text=True, secrets=["ada@example.com"])
    await computer_client.submit(job)

    events = await events_of(computer_client, job.id)

    typed = [e for e in events if isinstance(e, Action) and e.action == "type"]
    assert typed and all(e.input["text"] == "***" for e in typed)
    assert not any("ada@example.com" in e.model_dump_json() for e in events)


async def test_the_browser_refuses_loopback_unless_the_job_allows_it(
    computer_client: Client, site: str
) -> None:
    job = signup_job(site, allow_private_network=False)
    await computer_client.submit(job)

    events = await events_of(computer_client, job.id)

    assert isinstance(events[-1], Error)
    assert events[-1].error.type == "navigation_blocked"
    assert "127.0.0.1" in events[-1].error.message


async def test_a_start_url_outside_the_allowed_domains_is_refused(
    computer_client: Client, site: str
) -> None:
    job = signup_job(site, allowed_domains=["example.com"])
    await computer_client.submit(job)

    events = await events_of(computer_client, job.id)

    assert isinstance(events[-1], Error) and events[-1].error.type == "navigation_blocked"
    assert "allowed domains" in events[-1].error.message


def test_file_and_other_schemes_are_refused_at_submit() -> None:
    for url in ("file:///etc/passwd", "chrome://settings", "javascript:alert(1)", "data:,x"):
        with pytest.raises(ValueError, match="http"):
            ComputerUseJob(task="read it", start_url=url)


async def test_the_loop_guard_stops_a_model_repeating_itself_on_an_unchanged_screen(
    computer_client: Client, site: str
) -> None:
    job = signup_job(site, task="[[sim:plan=loop]] Click forever.", max_steps=20)
    await computer_client.submit(job)

    events = await events_of(computer_client, job.id)

    assert isinstance(events[-1], Error) and events[-1].error.type == "loop_detected"
    assert len([e for e in events if isinstance(e, Action)]) < 10


async def test_max_steps_ends_with_a_summary_turn(computer_client: Client, site: str) -> None:
    job = signup_job(site, max_steps=2)
    await computer_client.submit(job)

    events = await events_of(computer_client, job.id)

    assert isinstance(events[-1], Done) and events[-1].stop_reason == "max_steps"
    assert len([e for e in events if isinstance(e, Action)]) == 2
    assert [e for e in events if isinstance(e, Text)][-1].text
    assert "Summary" in transcript_of(events).text


async def test_bad_actions_become_tool_errors_the_model_reads_and_the_job_goes_on(
    computer_client: Client, site: str
) -> None:
    job = signup_job(site, task="[[sim:plan=bad]] Try odd things.")
    await computer_client.submit(job)

    events = await events_of(computer_client, job.id)

    assert isinstance(events[-1], Done)
    assert [e.action for e in events if isinstance(e, Action)][:2] == ["left_click", "teleport"]
    assert [e for e in events if isinstance(e, Screenshot)]


async def test_a_cancelled_computer_job_ends_cancelled_and_closes_its_context(
    computer_client: Client, computer_worker: WorkerProcess, site: str
) -> None:
    job = signup_job(site, task="[[sim:plan=signup rate=4 tokens=40]] Slowly sign up.")
    await computer_client.submit(job)

    events: list[Event] = []
    async for entry in computer_client.events(job.id):
        events.append(entry.event)
        if isinstance(entry.event, Screenshot) and entry.event.step == 1:
            await computer_client.cancel(job.id)

    assert events[-1].type == "cancelled"
    assert sum(e.type in ("done", "error", "cancelled") for e in events) == 1
    # the worker reports (heartbeat) that the job's context is gone: only warm ones are left
    browser = await worker_state(
        computer_client,
        computer_worker,
        lambda w: not w["running"] and w["browser"]["contexts_live"] == w["browser"]["warm"],
    )
    assert browser["browser"]["contexts_live"] == 2


async def worker_state(client: Client, worker: WorkerProcess, ready, within: float = 20.0):  # type: ignore[no-untyped-def]
    """The worker's self-description once `ready(description)` holds (it refreshes every few s)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        for key in await client.redis.keys(WORKERS_PATTERN):
            description = json.loads(await client.redis.get(key))
            if description["pid"] == worker.process.pid and ready(description):
                return description
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the worker never reported the expected state")
        await asyncio.sleep(0.5)  # the worker refreshes its description every lease/3 s
