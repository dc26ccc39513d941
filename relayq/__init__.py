"""relayq: Claude chat generation and computer use as background jobs on Redis workers."""

from typing import TYPE_CHECKING, Any

from relayq.client import Client, JobStatus, StreamEntry, Submitted
from relayq.errors import (
    InvalidJob,
    JobNotFound,
    NotConfigured,
    RedisUnavailable,
    RelayqError,
    ScreenshotGone,
)
from relayq.schemas.jobs import ChatJob, ComputerUseJob
from relayq.transcript import Transcript, transcript_of

if TYPE_CHECKING:
    from relayq.queued_llm import QueuedLLM

__all__ = [
    "ChatJob",
    "Client",
    "ComputerUseJob",
    "InvalidJob",
    "JobNotFound",
    "JobStatus",
    "NotConfigured",
    "QueuedLLM",
    "RedisUnavailable",
    "RelayqError",
    "ScreenshotGone",
    "StreamEntry",
    "Submitted",
    "Transcript",
    "transcript_of",
]


def __getattr__(name: str) -> Any:
    # QueuedLLM brings in livekit.agents (seconds of imports): producers, subscribers and the CLI
    # load it only when they use it
    if name == "QueuedLLM":
        from relayq.queued_llm import QueuedLLM

        return QueuedLLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
