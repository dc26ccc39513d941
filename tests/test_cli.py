"""The `relayq` command as a user runs it: a subprocess of the installed entry point."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relayq.simulator import Simulator, scripted_reply
from tests.conftest import ROOT, WorkerProcess, worker_env


def relayq_command() -> list[str]:
    installed = Path(sys.executable).parent / "relayq"
    if installed.exists():
        return [str(installed)]
    found = shutil.which("relayq")
    return [found] if found else [sys.executable, "-m", "relayq"]


@pytest.fixture
def run(redis_url: str, simulator: Simulator, worker: WorkerProcess):  # type: ignore[no-untyped-def]
    env = worker_env(redis_url, simulator)

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*relayq_command(), *args],
            env=env,
            cwd=ROOT,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def test_producers_subscribers_and_the_cli_load_neither_livekit_nor_the_sdk_nor_playwright() -> (
    None
):
    # each of them costs seconds of imports: `relayq watch` must start at once
    code = (
        "import sys, relayq, relayq.cli; "
        "heavy = {'livekit.agents', 'anthropic', 'playwright'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_submit_prints_the_job_id_and_watch_json_streams_it_to_done(run) -> None:  # type: ignore[no-untyped-def]
    submitted = run("submit", "chat", "--prompt", "Hello from the CLI", "--system", "Be brief.")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert job_id.startswith("job_")

    watched = run("watch", job_id, "--json")

    assert watched.returncode == 0, watched.stderr
    lines = [json.loads(line) for line in watched.stdout.splitlines()]
    assert all(line["id"] and line["job_id"] == job_id for line in lines)
    assert lines[0]["type"] == "queued" and lines[-1]["type"] == "done"
    text = "".join(line["text"] for line in lines if line["type"] == "text")
    assert text == scripted_reply({"messages": [{"role": "user", "content": "Hello from the CLI"}]})


def test_watch_resumes_after_a_stream_id(run) -> None:  # type: ignore[no-untyped-def]
    job_id = run("submit", "chat", "--prompt", "Resume me").stdout.strip()
    full = [json.loads(x) for x in run("watch", job_id, "--json").stdout.splitlines()]

    tail = run("watch", job_id, "--json", "--after", full[1]["id"])

    assert [json.loads(x)["id"] for x in tail.stdout.splitlines()] == [x["id"] for x in full[2:]]


def test_watch_exits_1_when_the_job_fails(run) -> None:  # type: ignore[no-untyped-def]
    job_id = run("submit", "chat", "--prompt", "[[sim:fail=400]] bad").stdout.strip()

    watched = run("watch", job_id)

    assert watched.returncode == 1
    assert "error: APIStatusError" in watched.stdout


def test_human_watch_streams_the_text_and_a_usage_line(run) -> None:  # type: ignore[no-untyped-def]
    job_id = run("submit", "chat", "--prompt", "Plain view").stdout.strip()

    watched = run("watch", job_id)

    assert watched.returncode == 0
    assert "Simulated reply to: Plain view." in watched.stdout
    assert "[done: end_turn; tokens in" in watched.stdout


def test_submit_from_a_job_file_and_from_stdin(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"id": "job_from_file_1", "prompt": "From a file"}))

    from_file = run("submit", "chat", "--job-file", str(job_file))
    from_stdin = run("submit", "chat", "--job-file", "-", stdin='{"prompt": "From stdin"}')

    assert from_file.stdout.strip() == "job_from_file_1"
    assert run("watch", "job_from_file_1").returncode == 0
    assert run("watch", from_stdin.stdout.strip()).returncode == 0


def test_an_invalid_job_file_is_refused_with_exit_2(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    job_file = tmp_path / "job.json"
    job_file.write_text('{"prompt": 12}')

    result = run("submit", "chat", "--job-file", str(job_file))

    assert result.returncode == 2
    assert "invalid job file" in result.stderr and "prompt" in result.stderr


def test_cancel_and_watch_of_an_unknown_job(run) -> None:  # type: ignore[no-untyped-def]
    cancelled = run("cancel", "job_nobody_knows")
    watched = run("watch", "job_nobody_knows")

    assert cancelled.returncode == 0 and "unknown" in cancelled.stdout
    assert watched.returncode == 2 and "no job" in watched.stderr
