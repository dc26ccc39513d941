"""The first hour at the keyboard (issue 12): mistakes answered in one line, a watch view that
keeps the newest output and the job's place in sight, fleet tables and JSON a person and a
script can use, and a README whose tour and snippet run as written. Every command runs as a
user runs it: the installed `relayq`, against this session's real Redis, simulator and workers.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from relayq.cli.parser import build_parser
from relayq.client import Client
from relayq.embedded_redis import EmbeddedRedis, free_port
from relayq.simulator import Simulator, scripted_reply
from tests.conftest import ROOT, WorkerProcess, start_worker, worker_env
from tests.terminal import Terminal
from tests.test_cli import relayq_command

README = (ROOT / "README.md").read_text()
Run = Callable[..., subprocess.CompletedProcess[str]]


def runner(env: dict[str, str]) -> Run:
    def run(
        *args: str, stdin: str | None = None, **extra_env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*relayq_command(), *args],
            env={**env, **extra_env},
            cwd=ROOT,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


@pytest.fixture
def run(redis_url: str, simulator: Simulator, worker: WorkerProcess) -> Run:
    return runner(worker_env(redis_url, simulator))


@pytest.fixture
def run_idle(idle_redis_url: str, simulator: Simulator) -> Run:
    """Against a database no worker serves."""
    return runner(worker_env(idle_redis_url, simulator))


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# ------------------------------------------------------------------------------------------
# mistakes: one line that names the fix, exit 2 for usage errors


@pytest.mark.parametrize(
    "command",
    [
        ["submit", "chat", "--prompt", "hi"],
        ["submit", "computer", "--task", "t", "--url", "https://example.com"],
        ["watch", "job_x"],
        ["cancel", "job_x"],
        ["status"],
        ["jobs"],
        ["replay", "job_x", "-o", "x.html"],
        ["worker", "--queues", "chat"],
        ["gateway"],
    ],
    ids=lambda c: "-".join(c[:2]),
)
def test_every_command_says_in_one_line_that_redis_is_unreachable(
    simulator: Simulator, command: list[str], tmp_path: Path
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env = worker_env(dead, simulator, RELAYQ_API_KEYS="me:a-long-enough-key-123")

    started = time.monotonic()
    result = runner(env)(*command)

    assert result.returncode == 1
    line = one_line_error(result)
    assert line.startswith(f"relayq: cannot reach Redis at {dead} (connection refused)")
    assert "RELAYQ_REDIS_URL" in line
    assert time.monotonic() - started < 20  # no minute of retries before saying so


def test_a_redis_password_is_never_printed(simulator: Simulator) -> None:
    env = worker_env(f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0", simulator)

    result = runner(env)("jobs")

    assert "hunter2-secret" not in result.stderr + result.stdout
    assert ":***@127.0.0.1" in one_line_error(result)


def test_a_worker_without_an_api_key_says_which_variables_to_set(
    redis_url: str, simulator: Simulator
) -> None:
    env = {k: v for k, v in worker_env(redis_url, simulator).items() if not k.startswith("ANTH")}

    result = runner(env)("worker", "--queues", "chat")

    assert result.returncode == 2
    line = one_line_error(result)
    assert "ANTHROPIC_API_KEY" in line and "ANTHROPIC_BASE_URL" in line


def test_an_unknown_queue_name_lists_the_queues(run: Run) -> None:
    result = run("worker", "--queues", "chat,compute")

    assert result.returncode == 2
    line = one_line_error(result)
    assert "'compute'" in line and "chat, computer" in line


def test_a_gateway_without_keys_says_to_set_relayq_api_keys(run: Run) -> None:
    result = run("gateway", RELAYQ_API_KEYS="")

    assert result.returncode == 2
    assert "RELAYQ_API_KEYS" in one_line_error(result)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ('{"prompt": ', "not JSON (Expecting value at line 1 column 12)"),
        ('["a list"]', "a job is a JSON object"),
        ('{"prompt": 12}', "prompt: Input should be a valid string"),
        ('{"prompt": "x", "password": "s3cret-value"}', "password: Extra inputs"),
    ],
    ids=["missing", "not-json", "not-an-object", "invalid-field", "unknown-field"],
)
def test_a_bad_job_file_is_one_line_with_exit_2(
    run: Run, tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "job.json"
    if content is not None:
        path.write_text(content)

    result = run("submit", "chat", "--job-file", str(path))

    assert result.returncode == 2
    line = one_line_error(result)
    assert line.startswith("relayq: ") and expected in line and str(path) in line
    assert "s3cret-value" not in line  # what failed and where, never the values


@pytest.mark.parametrize(
    "argv",
    [[], ["submit", "chat"], ["watch"], ["jobs", "--limit", "many"], ["nonsense"]],
    ids=["no-command", "no-prompt", "no-job-id", "bad-number", "unknown-command"],
)
def test_usage_errors_are_one_line_with_exit_2(run: Run, argv: list[str]) -> None:
    result = run(*argv)

    assert result.returncode == 2
    line = one_line_error(result)
    assert "error:" in line and "--help" in line


def test_help_documents_every_flag_with_its_default_and_every_command_with_examples() -> None:
    parser = build_parser()
    commands = _commands(parser)
    assert {"submit chat", "submit computer", "watch", "worker", "status", "jobs"} <= set(commands)
    for name, command in commands.items():
        assert "examples:" in (command.epilog or ""), name
        assert "RELAYQ_REDIS_URL" in (command.epilog or ""), name
        one_of = {
            a for g in command._mutually_exclusive_groups if g.required for a in g._group_actions
        }
        for action in command._actions:
            if not action.option_strings or action.dest in ("help", "version"):
                continue
            assert action.help, f"{name} {action.option_strings}"
            if not (action.required or action in one_of):
                said = action.help
                assert "default" in said or "required" in said, f"{name} {action.option_strings}"
    worker_help = commands["worker"].format_help()
    assert "RELAYQ_MAX_JOBS" in worker_help and "(default: chat)" in worker_help


def test_version_prints_the_installed_version(run: Run) -> None:
    result = run("--version")

    assert result.returncode == 0
    assert result.stdout.strip() == f"relayq {version('relayq')}"


def _commands(parser):  # type: ignore[no-untyped-def]
    found = {}
    for action in parser._subparsers._group_actions:
        for name, sub in action.choices.items():
            if sub._subparsers is not None:
                found.update({f"{name} {k}": v for k, v in _commands(sub).items()})
            else:
                found[name] = sub
    return found


# ------------------------------------------------------------------------------------------
# the README runs as written


def _readme_block(after: str, language: str) -> str:
    start = README.index(f"```{language}\n", README.index(after)) + len(language) + 4
    return README[start : README.index("```", start)]


def test_the_readme_python_snippet_runs_as_written(
    redis_url: str, simulator: Simulator, worker: WorkerProcess, tmp_path: Path
) -> None:
    snippet = _readme_block("From Python:", "python")
    assert "redis://localhost:6379/0" in snippet
    script = tmp_path / "snippet.py"
    script.write_text(snippet.replace("redis://localhost:6379/0", redis_url))

    result = subprocess.run(
        [sys.executable, str(script)],
        env=worker_env(redis_url, simulator),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("done Simulated reply to: Hello")


def test_the_readme_uses_one_gateway_port_the_cli_default() -> None:
    default = build_parser().parse_args(["gateway"]).port
    simulator = build_parser().parse_args(["simulator"]).port
    ports = {int(p) for p in re.findall(r"gateway[^\n]*--port (\d+)", README)}
    ports |= {int(p) for p in re.findall(r"(?:localhost|127\.0\.0\.1):(\d+)", README)}

    assert ports - {simulator, 6379} == {default}


@pytest.mark.browser
def test_the_readme_tour_runs_computer_use_offline_against_the_simulator(
    redis_url: str, simulator: Simulator, computer_worker: WorkerProcess
) -> None:
    tour = _readme_block("## The five-minute tour", "sh").replace("\\\n", " ")
    (line,) = [x for x in tour.splitlines() if x.startswith("relayq submit computer")]
    argv = shlex.split(line.split("#")[0].replace("http://127.0.0.1:8765", simulator.base_url))
    run = runner(worker_env(redis_url, simulator))

    submitted = run(*argv[1:])
    job_id = submitted.stdout.strip()
    watched = run("watch", job_id)

    assert submitted.returncode == 0, submitted.stderr
    assert watched.returncode == 0, watched.stdout[-2000:]
    assert "[step 1] " in watched.stdout and "[done: " in watched.stdout


# ------------------------------------------------------------------------------------------
# relayq watch


def _body(rows: list[str]) -> list[str]:
    """The output rows below the header's rule."""
    rule = next(i for i, r in enumerate(rows) if r.startswith("────"))
    return [r for r in rows[rule + 1 :] if r]


def test_the_live_view_keeps_the_newest_text_in_sight_under_a_header(
    redis_url: str, simulator: Simulator, worker: WorkerProcess
) -> None:
    prompt = "[[sim:tokens=300 rate=40]] A long answer, please"
    reply = scripted_reply({"messages": [{"role": "user", "content": prompt}]})
    env = worker_env(redis_url, simulator)
    job_id = runner(env)("submit", "chat", "--prompt", prompt).stdout.strip()
    terminal = Terminal([*relayq_command(), "watch", job_id], env, columns=80, lines=12)
    flat = "".join(reply.split())
    ends: list[int] = []

    def progress(rows: list[str]) -> bool:
        if not rows[0].startswith(f"{job_id} running") or not any(
            "earlier lines" in r for r in rows
        ):
            return False
        shown = "".join("".join(r for r in _body(rows) if "earlier lines" not in r).split())
        assert shown in flat, rows  # consecutive text, nothing skipped or repeated
        end = flat.index(shown) + len(shown)
        if not ends or end > ends[-1]:
            ends.append(end)
        return len(ends) >= 3

    try:
        rows = terminal.read_until(progress)
        header = " · ".join(rows[: rows.index("─" * 80)])
        assert re.search(r" · \d+\.\d s · [\d,]+ in / [\d,]+ out tokens · ~\$\d+\.\d{4}", header)
        assert ends == sorted(ends) and ends[-1] < len(flat)  # the view follows the tail
        assert terminal.wait() == 0
    finally:
        terminal.close()
    rows = terminal.rows()
    done = max(i for i, row in enumerate(rows) if row.startswith("done: end_turn"))
    assert rows[done - 1].endswith(reply.split()[-1])  # the whole reply, up to its last word


@pytest.mark.browser
def test_the_live_view_separates_computer_use_turns_and_counts_steps(
    redis_url: str, simulator: Simulator, computer_worker: WorkerProcess
) -> None:
    env = worker_env(redis_url, simulator)
    submitted = runner(env)(
        "submit", "computer", "--task", "[[sim:plan=signup]] Sign up as Ada Lovelace",
        "--url", f"{simulator.base_url}/demo/signup", "--allow-private-network",
        "--max-steps", "15",
    )  # fmt: skip
    job_id = submitted.stdout.strip()
    terminal = Terminal([*relayq_command(), "watch", job_id], env, columns=100, lines=80)
    try:
        assert terminal.wait() == 0
        rows = terminal.rows()
    finally:
        terminal.close()

    header = next(r for r in rows if r.startswith(f"{job_id} done"))
    steps = int(re.search(r"step (\d+) of 15", header).group(1))  # type: ignore[union-attr]
    turns = [r for r in rows if r.startswith("── turn ")]
    actions = [r for r in rows if r.startswith("▸ step ")]
    assert steps >= 3 and len(actions) == steps
    assert len(turns) >= 2 and turns[0].startswith("── turn 1 ")
    assert rows.index(turns[1]) > rows.index(actions[0])  # a turn's actions, then the next turn


def test_a_queued_job_shows_its_place_and_warns_that_no_worker_serves_its_queue(
    run_idle: Run, idle_client: Client, idle_redis_url: str, simulator: Simulator
) -> None:
    first = run_idle("submit", "chat", "--prompt", "first in line")
    second = run_idle("submit", "chat", "--prompt", "second in line")
    job_id = second.stdout.strip()
    env = worker_env(idle_redis_url, simulator)
    terminal = Terminal([*relayq_command(), "watch", job_id], env, columns=100, lines=20)
    plain = subprocess.Popen(
        [*relayq_command(), "watch", job_id], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        rows = terminal.read_until(lambda rows: any("warning" in r for r in rows))
        assert plain.stdout is not None
        told = [plain.stdout.readline().strip() for _ in range(2)]
    finally:
        terminal.close()
        plain.kill()
        plain.wait()
        for submitted in (first, second):
            run_idle("cancel", submitted.stdout.strip())

    warning = "no worker is serving the chat queue; start one: relayq worker --queues chat"
    assert "warning: " + warning in second.stderr  # already when submitting
    assert rows[0].startswith(f"{job_id} queued")
    assert "queued at position 2 in the chat queue" in rows
    assert f"warning: {warning}" in rows
    assert told == ["[queued at position 2 in the chat queue]", f"[warning: {warning}]"]


# ------------------------------------------------------------------------------------------
# status and jobs


@pytest.fixture
def one_slot_worker(redis_server: EmbeddedRedis, simulator: Simulator) -> Iterator[dict[str, str]]:
    """A worker of its own database that runs one job at a time."""
    env = worker_env(f"redis://127.0.0.1:{redis_server.port}/2", simulator)
    w = start_worker(env, "--queues", "chat", "--max-jobs", "1")
    yield env
    w.stop()


def test_depth_counts_waiting_jobs_not_running_ones_and_watch_shows_the_place(
    one_slot_worker: dict[str, str],
) -> None:
    run = runner(one_slot_worker)
    slow = run("submit", "chat", "--prompt", "[[sim:tokens=2000 rate=50]] keep the slot busy")
    slow_id = slow.stdout.strip()
    following = subprocess.Popen(
        [*relayq_command(), "watch", slow_id, "--json"],
        env=one_slot_worker,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert following.stdout is not None
    while json.loads(following.stdout.readline())["type"] != "text":
        pass  # the slow job holds the worker's only slot from here on
    waiting = [run("submit", "chat", "--prompt", f"wait {n}").stdout.strip() for n in (1, 2)]
    try:
        status = json.loads(run("status", "--json").stdout)
        table = run("status").stdout
        watched = subprocess.Popen(
            [*relayq_command(), "watch", waiting[1]],
            env=one_slot_worker,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert watched.stdout is not None
        told = watched.stdout.readline().strip()
        watched.kill()
        watched.wait()
    finally:
        for job_id in [slow_id, *waiting]:
            run("cancel", job_id)
        following.kill()
        following.wait()

    chat = status["queues"]["chat"]
    assert (chat["waiting"], chat["running"], chat["delayed"]) == (2, 1, 0)
    assert chat["oldest_wait_s"] > 0
    (worker,) = status["workers"]
    assert worker["queues"] == ["chat"]
    assert status["warnings"] == []
    assert re.search(r"^chat\s+2\s+1\s+0\s+\d+\.\d s$", table, re.M), table
    assert told == "[queued at position 2 in the chat queue]"


def test_status_warns_when_no_worker_is_alive(run_idle: Run) -> None:
    status = run_idle("status")
    described = json.loads(run_idle("status", "--json").stdout)

    assert "warning: no worker is alive" in status.stdout
    assert described["workers"] == [] and "no worker is alive" in described["warnings"][0]


def test_jobs_json_is_a_json_array_with_usage_cost_duration_and_error(run: Run) -> None:
    done = run("submit", "chat", "--prompt", "count my tokens").stdout.strip()
    refused = f"[[sim:fail=400]] rejected {uuid.uuid4()}"
    failed = run("submit", "chat", "--prompt", refused).stdout.strip()
    for job_id in (done, failed):
        run("watch", job_id)

    listed = {j["id"]: j for j in json.loads(run("jobs", "--json", "--limit", "50").stdout)}

    ok, bad = listed[done], listed[failed]
    assert ok["status"] == "done" and ok["error"] is None
    assert isinstance(ok["usage"]["prompt_tokens"], int) and ok["usage"]["completion_tokens"] > 0
    assert ok["cost_usd"] > 0 and ok["duration_s"] >= 0 and ok["queue_wait_s"] >= 0
    assert bad["status"] == "error"
    assert bad["error"]["message"].startswith("Anthropic API rejected the request (400)")


def test_the_jobs_table_at_80_columns_keeps_whole_ids_and_shows_error_duration_and_cost(
    run: Run, redis_url: str, simulator: Simulator
) -> None:
    refused = f"[[sim:fail=400]] for the table {uuid.uuid4()}"
    failed = run("submit", "chat", "--prompt", refused).stdout.strip()
    run("watch", failed)
    ids = [j["id"] for j in json.loads(run("jobs", "--json", "--limit", "5").stdout)]
    env = worker_env(redis_url, simulator)
    terminal = Terminal([*relayq_command(), "jobs", "--limit", "5"], env, columns=80, lines=20)
    try:
        assert terminal.wait() == 0
        rows = terminal.rows()
    finally:
        terminal.close()

    assert {"job", "status", "took", "tokens", "cost"} <= set(rows[0].split())
    listed = [row for row in rows[1:] if row and not row.startswith("  ↳ ")]
    assert len(listed) == len(ids)  # one row per job: none wrapped onto a second line
    for job_id, row in zip(ids, listed, strict=True):
        assert row.startswith(job_id + " ")
    below = rows[rows.index(next(r for r in listed if r.startswith(failed))) + 1]
    assert below.startswith("  ↳ Anthropic API rejected the request (400)")  # the error, whole
    assert all(len(row) <= 80 for row in rows)


def test_a_wide_terminal_shows_every_column(run: Run, redis_url: str, simulator: Simulator) -> None:
    env = worker_env(redis_url, simulator)
    terminal = Terminal([*relayq_command(), "jobs", "--limit", "3"], env, columns=200, lines=10)
    try:
        assert terminal.wait() == 0
        rows = terminal.rows()
    finally:
        terminal.close()

    assert rows[0].split() == [
        "job", "kind", "model", "status", "att", "created", "wait", "took", "tokens", "cost",
        "error",
    ]  # fmt: skip
