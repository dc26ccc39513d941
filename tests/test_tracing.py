"""A producer's trace continues in the worker: enqueue -> run -> model request -> publish."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from relayq.client import Client
from relayq.embedded_redis import EmbeddedRedis
from relayq.schemas.jobs import ChatJob
from relayq.schemas.settings import Settings
from relayq.simulator import Simulator
from tests.conftest import start_worker, worker_env


def producer_spans() -> InMemorySpanExporter:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def test_the_workers_spans_continue_the_producers_trace(
    simulator: Simulator, tmp_path: Path
) -> None:
    exported = producer_spans()
    trace_file = tmp_path / "worker-spans.jsonl"
    with EmbeddedRedis(appendonly=False) as redis:
        worker = start_worker(
            worker_env(redis.url, simulator, RELAYQ_TRACE_FILE=str(trace_file)),
            "--queues",
            "chat",
        )
        try:
            async with Client(redis.url, settings=Settings(redis_url=redis.url)) as client:
                with trace.get_tracer("producer").start_as_current_span("handle request"):
                    job = ChatJob(prompt="trace me")
                    await client.submit(job)
                [e async for e in client.events(job.id)]
        finally:
            worker.stop()  # a clean stop: every span is written

    ours = {s.name: s for s in exported.get_finished_spans()}
    trace_id = ours["handle request"].context.trace_id
    enqueue = ours["relayq.enqueue"]
    spans = [json.loads(line) for line in trace_file.read_text().splitlines()]
    by_name = {s["name"]: s for s in spans}

    run = by_name["relayq.run"]
    assert int(run["context"]["trace_id"], 16) == trace_id
    assert int(run["parent_id"], 16) == enqueue.context.span_id
    assert run["attributes"]["relayq.job_id"] == job.id
    publishes = [s for s in spans if s["name"] == "relayq.publish"]
    assert publishes and all(s["parent_id"] == run["context"]["span_id"] for s in publishes)
    model_requests = [s for s in spans if s["name"] == "llm_request"]
    assert model_requests
    assert all(int(s["context"]["trace_id"], 16) == trace_id for s in model_requests)


def test_without_tracing_configured_jobs_carry_no_trace_context() -> None:
    from relayq.tracing import inject

    job = ChatJob(prompt="untraced")
    assert inject(job).trace_context is None
