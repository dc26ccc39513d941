"""The dashboard in a real headless Chromium: the page served by the gateway, the key entered in
the page, jobs submitted through the API by the test, text and screenshots arriving live over
the SSE endpoint, and the cancel button. Each test saves a screenshot under test-output/."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from relayq.llm.page_actions import launch_chromium
from tests.conftest import ROOT, WorkerProcess
from tests.test_gateway import ACME, KEYS, running_gateway, sim_text

try:
    from relayq.simulator import computer_plan
except ImportError:  # pragma: no cover - the simulator's computer-use plans are not there yet
    computer_plan = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser
OUTPUT = ROOT / "test-output"
LAPTOP = {"width": 1366, "height": 800}


@pytest.fixture(scope="module")
def dashboard(redis_url: str, worker: WorkerProcess) -> Iterator[str]:
    with running_gateway(redis_url, gateway_allow_private_network=True) as base_url:
        yield base_url


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await launch_chromium(playwright)
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser: Browser, dashboard: str) -> AsyncIterator[Page]:
    """A fresh browser profile with the acme key entered once on the dashboard."""
    context = await browser.new_context(viewport=LAPTOP, base_url=dashboard)  # type: ignore[arg-type]
    tab = await context.new_page()
    await tab.goto("/")
    await expect(tab.get_by_role("heading", name="Enter an API key")).to_be_visible()
    await tab.get_by_role("textbox", name="API key").fill(KEYS["acme"])
    await tab.get_by_role("button", name="Use this key").click()
    await expect(tab.get_by_role("heading", name="Jobs")).to_be_visible()
    yield tab
    await context.close()


@pytest.fixture
async def api(dashboard: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=dashboard, headers=ACME, timeout=30) as c:
        yield c


async def submit(api: httpx.AsyncClient, body: dict[str, object]) -> str:
    response = await api.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def snapshot(page: Page, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)


async def test_the_jobs_list_shows_a_job_submitted_through_the_api_and_keeps_the_key(
    page: Page, api: httpx.AsyncClient
) -> None:
    job_id = await submit(api, {"prompt": "Listed on the dashboard", "model": "claude-haiku-4-5"})

    row = page.locator(f'tr[data-job-id="{job_id}"]')
    await expect(row).to_be_visible()
    await expect(row.get_by_text("done", exact=True)).to_be_visible()
    await expect(row).to_contain_text("claude-haiku-4-5")
    await expect(row.locator("td").nth(6)).to_have_text(re.compile(r"^\$0\.\d{4}$"))
    await snapshot(page, "dashboard-jobs")

    await page.reload()
    await expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    await expect(page.get_by_role("heading", name="Enter an API key")).to_be_hidden()


async def test_a_wrong_key_is_refused_in_the_page(browser: Browser, dashboard: str) -> None:
    context = await browser.new_context(viewport=LAPTOP, base_url=dashboard)  # type: ignore[arg-type]
    tab = await context.new_page()
    await tab.goto("/")
    await tab.get_by_role("textbox", name="API key").fill("not-a-key-at-all")
    await tab.get_by_role("button", name="Use this key").click()

    await expect(tab.get_by_role("alert")).to_contain_text("refused")
    await context.close()


async def test_the_job_page_streams_the_text_live_then_replays_it_after_the_end(
    page: Page, api: httpx.AsyncClient
) -> None:
    prompt = "[[sim:tokens=120 rate=40]] Stream this slowly to the dashboard"
    job_id = await submit(api, {"prompt": prompt})
    expected = sim_text(prompt)

    await page.goto(f"/jobs/{job_id}")
    text = page.locator("#job-text")
    await expect(text).to_contain_text(expected.split()[0])
    await expect(page.locator("#job-status")).to_have_text("running")  # text came before the end
    await expect(page.locator("#job-status")).to_have_text("done", timeout=30_000)
    await expect(text).to_have_text(expected)
    await expect(page.locator("#job-tokens")).not_to_have_text("0 / 0")
    await expect(page.locator("#job-cost")).not_to_have_text("$0.0000")
    await expect(page.get_by_role("button", name="Cancel job")).to_be_disabled()
    await snapshot(page, "dashboard-chat-job")

    await page.reload()  # a finished job replays from its stream
    await expect(page.locator("#job-status")).to_have_text("done")
    await expect(text).to_have_text(expected)


async def test_the_job_page_shows_tool_calls(page: Page, api: httpx.AsyncClient) -> None:
    tool = {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    job_id = await submit(api, {"prompt": "Weather in Paris?", "tools": [tool]})

    await page.goto(f"/jobs/{job_id}")

    await expect(page.locator("#job-status")).to_have_text("done")
    await expect(page.locator("#tool-calls li")).to_have_count(1)
    await expect(page.locator("#tool-calls li")).to_contain_text("get_weather")


@pytest.mark.xfail(computer_plan is None, reason="relayq.simulator.computer_plan not there yet")
async def test_a_computer_use_job_shows_live_screenshots_the_click_and_a_film_strip(
    page: Page, api: httpx.AsyncClient, site: str, computer_worker: WorkerProcess
) -> None:
    task = "[[sim:plan=signup]] Create an account for Ada Lovelace, ada@example.com."
    job_id = await submit(
        api,
        {
            "kind": "computer_use",
            "task": task,
            "start_url": f"{site}/demo_signup.html",
            "allow_private_network": True,
        },
    )
    assert computer_plan is not None
    plan = computer_plan({"messages": [{"role": "user", "content": task}]})

    await page.goto(f"/jobs/{job_id}")
    screen = page.locator("#screen-img")
    await expect(screen).to_have_attribute("src", re.compile("^blob:"))
    await expect(page.locator("#job-status")).to_have_text("done", timeout=60_000)
    strip = page.locator("#filmstrip li")
    await expect(strip).to_have_count(len(plan) + 1)  # the start screen and one per step
    await expect(page.locator("#filmstrip img[src^='blob:']")).to_have_count(len(plan) + 1)
    await expect(page.locator("#job-text")).to_contain_text("Task complete")
    await snapshot(page, "dashboard-computer-job")

    # the first step clicked the Name field: its frame marks the click
    first_click = next(n for n, step in enumerate(plan, 1) if step["action"] == "left_click")
    await page.get_by_role("button", name=f"Show step {first_click}").click()
    await expect(page.locator("#screen-marker")).to_be_visible()
    x, y = plan[first_click - 1]["coordinate"]
    await expect(page.locator("#screen-caption")).to_contain_text(f"left_click at ({x}, {y})")
    await snapshot(page, "dashboard-computer-step")


async def test_the_cancel_button_cancels_a_running_job(page: Page, api: httpx.AsyncClient) -> None:
    job_id = await submit(api, {"prompt": "[[sim:tokens=600 rate=20]] A long slow answer"})

    await page.goto(f"/jobs/{job_id}")
    await expect(page.locator("#job-text")).not_to_be_empty()
    await page.get_by_role("button", name="Cancel job").click()

    await expect(page.locator("#job-status")).to_have_text("cancelled")
    await expect(page.get_by_role("button", name="Cancel job")).to_be_disabled()
    await expect(page.locator("#job-notes")).to_contain_text("Cancelled")
    status = (await api.get(f"/v1/jobs/{job_id}")).json()
    assert status["status"] == "cancelled"
    await snapshot(page, "dashboard-cancelled-job")
