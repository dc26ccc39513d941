"""What the producer side of relayq (`relayq.Client`, `relayq.QueuedLLM`, the CLI) raises.

    RelayqError
    ├── JobNotFound          no job with this id (never submitted, or its keys expired);
    │                        also a LookupError
    ├── ScreenshotGone       a screenshot's bytes expired or never existed; also a LookupError
    ├── InvalidJob           a job that fails validation; also a ValueError
    ├── NotConfigured        no Redis URL given (nor RELAYQ_REDIS_URL), or one that does not
    │                        parse; also a ValueError
    └── RedisUnavailable     Redis could not be reached, even after the connection's retries
        │                    (relayq.connection); also a ConnectionError
        └── NotReplicated    a write reached the primary but not the replicas the URL's
                             `ack_replicas` asks for in time; resubmitting the same id is safe

Errors from Redis and pydantic are translated where they enter, with the original as
`__cause__`. A job that fails is not an exception here: it ends with an `error` event.
"""

from __future__ import annotations


class RelayqError(Exception):
    """Base class of everything relayq's client side raises."""


class JobNotFound(RelayqError, LookupError):
    """No job with this id exists (never submitted, or its keys expired)."""


class ScreenshotGone(RelayqError, LookupError):
    """The screenshot's bytes are gone (expired with the job's keys, or never stored)."""


class InvalidJob(RelayqError, ValueError):
    """The job does not validate against the wire contract (relayq.schemas)."""


class NotConfigured(RelayqError, ValueError):
    """The client lacks a usable Redis URL."""


class RedisUnavailable(RelayqError, ConnectionError):
    """Redis did not answer, even after the connection's own retries."""


class NotReplicated(RedisUnavailable):
    """A submission reached the primary, but fewer replicas than `ack_replicas` confirmed it in
    time: it runs unless that primary fails first. Submitting the same job id again is safe."""
