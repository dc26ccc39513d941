"""What an attempt runs: the job JSON that enqueue.lua stored, or a raw producer's envelope.

A raw producer (CONTRACT.md) writes arq's job envelope as JSON, `{"t": 1, "f": "chat", "a":
["<job JSON>"], "k": {}, "et": <ms>}`, read here with arq's own decoder (`arq.jobs`, JSON, never
pickle). relayq calls no function with whatever the envelope holds: it takes the one argument,
the job, and checks everything else, so that a malformed envelope ends its job with an `error`
event instead of a call that fails. Messages never echo what the envelope holds (it may carry
secrets).
"""

from __future__ import annotations

import json

from arq.jobs import DeserializationError, deserialize_job

SOURCES = ("job", "envelope", "none")


class UnreadableJob(ValueError):
    """The job's input cannot be run; the message says why, for the job's `error` event."""


def job_input(source: str, raw: bytes, function: str) -> str:
    """The job JSON to validate and run, from what start.lua returned."""
    match source:
        case "job":
            return _text(raw, "the job JSON")
        case "envelope":
            return _from_envelope(raw, function)
        case _:
            raise UnreadableJob(
                "nothing to run under this id: no job and no envelope (expired before a worker "
                "took it, or never written)"
            )


def _from_envelope(raw: bytes, function: str) -> str:
    try:
        document = json.loads(_text(raw, "the job's envelope"))
    except (ValueError, RecursionError) as e:
        raise UnreadableJob("the job's envelope is not JSON (relayq never reads pickle)") from e
    try:
        envelope = deserialize_job(raw, deserializer=lambda _: document)
    except DeserializationError as e:
        raise UnreadableJob(
            'the job\'s envelope is not arq\'s job envelope {"t", "f", "a", "k", "et"}'
        ) from e
    if envelope.function != function:
        raise UnreadableJob(
            f"the job's envelope names a function this queue does not run (it runs {function!r})"
        )
    args, kwargs = envelope.args, envelope.kwargs
    if not isinstance(args, list) or len(args) != 1:
        count = len(args) if isinstance(args, list) else "not a list"
        raise UnreadableJob(
            f"the envelope's arguments `a` must hold exactly one item, the job JSON ({count})"
        )
    if not isinstance(kwargs, dict) or kwargs:
        raise UnreadableJob("the envelope's keyword arguments `k` must be empty")
    job = args[0]
    if isinstance(job, str):
        return job
    if isinstance(job, dict):
        return json.dumps(job)
    raise UnreadableJob(
        f"the envelope's argument must be the job, as JSON text or an object, not a "
        f"{type(job).__name__}"
    )


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnreadableJob(f"{what} is not UTF-8 text") from e
