"""relayq: Claude chat generation and computer use as background jobs on arq workers."""

from relayq.client import Client, JobNotFound, JobStatus, StreamEntry, Submitted
from relayq.queued_llm import QueuedLLM
from relayq.transcript import Transcript, transcript_of
from schemas.jobs import ChatJob

__all__ = [
    "ChatJob",
    "Client",
    "JobNotFound",
    "JobStatus",
    "QueuedLLM",
    "StreamEntry",
    "Submitted",
    "Transcript",
    "transcript_of",
]
