"""Safe to install beside anyone's code: the wheel's only top-level name is `relayq`, the producer
install is redis + pydantic alone, and neither the PyPI `llm` CLI nor an app's own `schemas/` and
`workers/` packages collide with ours.

Each test builds a fresh virtual environment from the wheel (packages come from the registry or
pip's cache), so these are the slowest tests of the suite; `pytest -m install` runs them alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, WorkerProcess

# a fresh venv takes 5-30 s on a quiet machine, minutes on a busy one
pytestmark = [pytest.mark.install, pytest.mark.timeout(600)]

# what `pip install relayq` may bring: redis and pydantic with their own dependencies
PRODUCER_DISTRIBUTIONS = {
    "relayq",
    "redis",
    "pyjwt",  # redis-py 5.3
    "async-timeout",  # redis-py on Python < 3.11.3
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-extensions",
    "typing-inspection",
    "pip",
    "setuptools",
}
HEAVY_MODULES = {
    "arq",
    "anthropic",
    "livekit",
    "playwright",
    "fastapi",
    "starlette",
    "rich",
    "opentelemetry",
    "pydantic_settings",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this working tree, built from a copy so the tree gains no build/ folder."""
    source = tmp_path_factory.mktemp("source") / "relayq"
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "node_modules",
            ".relayq",
            "test-output",
            "build",
            "*.egg-info",
            "__pycache__",
            ".*_cache",
        ),
    )
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("relayq-*.whl")
    return built


def new_venv(path: Path, *requirements: str) -> Path:
    """A fresh virtual environment with `requirements` installed; returns its bin/ folder."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    bin_dir = path / "bin"
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", *requirements],
        check=True,
        timeout=600,
    )
    return bin_dir


def installed(bin_dir: Path) -> set[str]:
    listing = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
    )
    return {d["name"].lower().replace("_", "-") for d in json.loads(listing.stdout)}


def test_the_wheel_holds_one_top_level_name_relayq(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))

    assert {n.split("/")[0] for n in names} == {"relayq", dist_info}
    assert zipfile.ZipFile(wheel).read(f"{dist_info}/top_level.txt").split() == [b"relayq"]
    for shipped in (
        "relayq/contract/enqueue.lua",
        "relayq/contract/cancel.lua",
        "relayq/workers/lua/publish.lua",
        "relayq/llm/stream.py",
        "relayq/schemas/jobs.py",
        "relayq/py.typed",
        "relayq/llm/py.typed",
        "relayq/static/demo_signup.html",
    ):
        assert shipped in names


APP_WITH_ITS_OWN_PACKAGES = {
    # the FastAPI app's own schemas/ and the Celery app's own workers/: ours must not care
    "schemas/__init__.py": "APP_SCHEMAS = True\n",
    "schemas/jobs.py": "class Job:  # the app's own model\n    pass\n",
    "workers/__init__.py": "APP_WORKERS = True\n",
    "workers/tasks.py": "def send_email() -> None: ...\n",
    "app.py": textwrap.dedent(
        """
        import asyncio
        import sys

        import schemas.jobs
        import workers.tasks

        import relayq


        async def main(redis_url: str) -> None:
            async with relayq.Client(redis_url) as client:
                job = await client.submit(relayq.ChatJob(prompt="Hello from an app"))
                transcript = relayq.Transcript()
                async for entry in client.events(job.id):
                    transcript.feed(entry.event)
            heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(",")))
            print(json.dumps({"outcome": transcript.outcome, "text": transcript.text,
                              "app_schemas": schemas.APP_SCHEMAS, "heavy": heavy}))


        import json

        asyncio.run(main(sys.argv[1]))
        """
    ),
}


def test_the_producer_install_is_redis_and_pydantic_and_submits_watches_and_cancels(
    wheel: Path, tmp_path: Path, redis_url: str, worker: WorkerProcess
) -> None:
    bin_dir = new_venv(tmp_path / "venv", str(wheel))
    assert installed(bin_dir) <= PRODUCER_DISTRIBUTIONS

    app = tmp_path / "app"
    for name, text in APP_WITH_ITS_OWN_PACKAGES.items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(text)
    run = subprocess.run(
        [str(bin_dir / "python"), "app.py", redis_url, ",".join(HEAVY_MODULES)],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["outcome"] == "done"
    assert result["text"].startswith("Simulated reply to: Hello from an app")
    assert result["app_schemas"] is True
    assert result["heavy"] == []

    cli_env = {**os.environ, "RELAYQ_REDIS_URL": redis_url, "NO_COLOR": "1"}
    cli_env.pop("PYTHONPATH", None)

    def relayq(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / "relayq"), *args],
            cwd=app,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    submitted = relayq("submit", "chat", "--prompt", "Hello from the producer CLI")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    watched = relayq("watch", "--json", job_id)
    assert watched.returncode == 0, watched.stderr
    events = [json.loads(line) for line in watched.stdout.splitlines()]
    assert events[-1]["type"] == "done"
    assert "Hello from the producer CLI" in "".join(e.get("text", "") for e in events)
    cancelled = relayq("cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr


def test_relayq_and_the_pypi_llm_cli_install_side_by_side(wheel: Path, tmp_path: Path) -> None:
    bin_dir = new_venv(tmp_path / "venv", f"{wheel}[worker]", "llm")

    llm_version = subprocess.run(
        [str(bin_dir / "llm"), "--version"], capture_output=True, text=True, timeout=60
    )
    assert llm_version.returncode == 0, llm_version.stderr
    assert llm_version.stdout.startswith("llm, version")

    # the demo's own defaults: embedded Redis, its own simulator
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RELAYQ_", "ANTHROPIC_")) and k != "PYTHONPATH"
    }
    demo = subprocess.run(
        [str(bin_dir / "relayq"), "demo", "--prompt", "Hello beside the llm CLI"],
        cwd=tmp_path,
        env={**env, "RELAYQ_DATA_DIR": str(tmp_path / ".relayq")},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Simulated reply to: Hello beside the llm CLI" in demo.stdout
    assert "computer use skipped" in demo.stdout


def test_the_producer_install_runs_relayq_submit_watch_and_cancel(
    wheel: Path, tmp_path: Path, redis_url: str, worker: WorkerProcess
) -> None:
    bin_dir = new_venv(tmp_path / "venv", str(wheel))
    assert installed(bin_dir) <= PRODUCER_DISTRIBUTIONS  # no rich, arq, anthropic, playwright
    env = {k: v for k, v in worker.env.items() if k != "PYTHONPATH"}

    def relayq(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / "relayq"), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    submitted = relayq("submit", "chat", "--prompt", "From the producer install")
    job_id = submitted.stdout.strip()
    watched = relayq("watch", job_id)
    cancelled = relayq("cancel", job_id)
    operator = relayq("worker", "--queues", "chat")

    assert submitted.returncode == 0 and job_id.startswith("job_"), submitted.stderr
    assert watched.returncode == 0, watched.stderr
    assert "Simulated reply to: From the producer install" in watched.stdout
    assert cancelled.stdout.strip() == f"{job_id}: finished"
    assert operator.returncode == 2
    assert operator.stderr.strip() == (
        "relayq: relayq worker needs the worker extra (anthropic is not installed): "
        "pip install 'relayq[worker]'"
    )
