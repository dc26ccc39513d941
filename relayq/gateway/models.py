"""The gateway's answers, as pydantic models (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from relayq.pricing import Price
from relayq.schemas.jobs import ChatJob, ComputerUseJob
from relayq.schemas.status import JobStatus

JobRequest = Annotated[ChatJob | ComputerUseJob, Field(discriminator="kind")]


class JobLinks(BaseModel):
    self: str
    events: str
    dashboard: str


class JobAccepted(BaseModel):
    id: str
    status: str
    created: bool = Field(description="False when a job with this id (or key) already existed.")
    links: JobLinks


class JobView(JobStatus):
    """A job's status (the client's `JobStatus`) with what only the gateway adds."""

    summary: str | None = Field(
        default=None, description="The start of the prompt or the task, on one line."
    )
    cost_usd: float = Field(description="Estimate from the model's list price.")
    pricing: Price = Field(description="USD per million tokens used for the estimate.")
    links: JobLinks


class JobList(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page.")
    next: str | None = Field(description="The next page's URL, if there may be more jobs.")


class Cancelled(BaseModel):
    id: str
    outcome: Literal["cancelled", "signalled", "finished", "unknown"]


class Health(BaseModel):
    status: str
    redis: str
