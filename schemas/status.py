"""A job's status as the client, the CLI and the gateway report it, read from the job's hash.

`job_status_from_hash` tolerates missing or malformed fields: the hash may have been written by a
producer in another language, or by an older relayq.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, computed_field

from .events import TokenUsage

# the fields of `relayq:{<id>}:job` that a status is made of (CONTRACT.md)
STATUS_FIELDS = (
    "tenant", "kind", "model", "status", "attempt", "created_ms", "started_ms", "finished_ms",
    "usage", "worker",
)  # fmt: skip


class JobStatus(BaseModel):
    """Where a job stands. Times are unix milliseconds."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: str = Field(description="`chat` or `computer_use`.")
    model: str
    status: str = Field(description="queued, running, retrying, done, error or cancelled.")
    attempt: int = Field(description="The current (or last) attempt; 0 while first queued.")
    created_ms: int
    started_ms: int | None = Field(description="When the current (or last) attempt started.")
    finished_ms: int | None
    usage: TokenUsage | None = Field(description="Usage so far (the current attempt).")
    tenant: str = Field(description='The tenant that submitted it ("" for none).')
    worker: str | None = Field(default=None, description="The worker of the current attempt.")

    @computed_field(description="From submission to the start of the current attempt.")  # type: ignore[prop-decorator]
    @property
    def queue_wait_ms(self) -> int | None:
        return None if self.started_ms is None else max(self.started_ms - self.created_ms, 0)

    @computed_field(description="From the start of the current attempt to the end.")  # type: ignore[prop-decorator]
    @property
    def run_ms(self) -> int | None:
        if self.started_ms is None or self.finished_ms is None:
            return None
        return max(self.finished_ms - self.started_ms, 0)


def job_status_from_hash(job_id: str, fields: Mapping[str, str]) -> JobStatus:
    """A job's status from its `relayq:{<id>}:job` hash fields."""

    def opt_int(name: str) -> int | None:
        value = fields.get(name)
        return int(value) if value and value.lstrip("-").isdigit() else None

    usage: TokenUsage | None = None
    if fields.get("usage"):
        with contextlib.suppress(ValueError):
            usage = TokenUsage.model_validate_json(fields["usage"])
    return JobStatus(
        id=job_id,
        kind=fields.get("kind", ""),
        model=fields.get("model", ""),
        status=fields.get("status", "unknown"),
        attempt=opt_int("attempt") or 0,
        created_ms=opt_int("created_ms") or 0,
        started_ms=opt_int("started_ms"),
        finished_ms=opt_int("finished_ms"),
        usage=usage,
        tenant=fields.get("tenant", ""),
        worker=fields.get("worker") or None,
    )
