"""OpenTelemetry spans for enqueue -> run -> model request -> publish, one trace per job.

The producer's trace context travels in the job envelope (`trace_context`, W3C traceparent),
so the worker's `relayq.run` span continues the producer's trace; LiveKit's `llm_request` spans
nest under it. Only the OpenTelemetry API is used here: with no SDK configured every span is a
no-op. `configure_from_env()` installs an SDK when `RELAYQ_TRACE_FILE` (JSON lines) or
`OTEL_EXPORTER_OTLP_ENDPOINT` (OTLP/HTTP, the `otel` extra) asks for one.

The producer install has no OpenTelemetry at all: there `span()` and `inject()` do nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from relayq.schemas.jobs import _JobBase

try:
    from opentelemetry import context, propagate, trace
except ModuleNotFoundError:  # the producer install: nothing to trace with
    HAVE_OTEL = False
else:
    HAVE_OTEL = True
    tracer = trace.get_tracer("relayq")

JobT = TypeVar("JobT", bound=_JobBase)


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, str | int]) -> Iterator[None]:
    """A span around the block when OpenTelemetry is installed; nothing otherwise."""
    if not HAVE_OTEL:
        yield
        return
    with tracer.start_as_current_span(name, attributes=attributes):
        yield


def inject(job: JobT) -> JobT:
    """The job with the current span's context in its envelope (unchanged when not tracing)."""
    if not HAVE_OTEL or not trace.get_current_span().get_span_context().is_valid:
        return job
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return job.model_copy(update={"trace_context": carrier}) if carrier else job


def extract(job: _JobBase) -> context.Context:
    return propagate.extract(job.trace_context or {})


def configure_from_env(service: str) -> None:
    """Installs a tracer provider when the environment asks for one; otherwise does nothing."""
    trace_file = os.environ.get("RELAYQ_TRACE_FILE")
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not trace_file and not endpoint:
        return
    if not HAVE_OTEL:
        raise RuntimeError(
            "tracing asked for, but OpenTelemetry is missing: pip install 'relayq[otel]'"
        )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if trace_file:
        out = open(trace_file, "a", buffering=1, encoding="utf-8")
        exporter = ConsoleSpanExporter(out=out, formatter=_json_line)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def _json_line(span: Any) -> str:
    return str(span.to_json(indent=None)) + "\n"
