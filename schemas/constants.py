"""Every Redis key, channel, queue and function name relayq uses, in one place.

The layout fits Redis Cluster: every Lua script touches the keys of one hash slot only.
- A job's keys share the hash tag ``{<job_id>}``: its state, stream, blobs and envelope live in
  the job's slot, so event traffic spreads over every shard.
- A queue's keys share the hash tag ``{<queue name>}``: its waiting jobs, its leases and their
  owners live in the queue's slot.
Channels are not keys (they belong to no slot); `relayq:jobs` is an index in a slot of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

KEY_PREFIX = "relayq"
KEY_LAYOUT = 2
"""Version of this key layout (CONTRACT.md): 1 was arq's, 2 is the cluster layout."""

CHAT_FUNCTION = "chat"
COMPUTER_FUNCTION = "computer_use"

EVENT_FIELD = "event"
JOBS_INDEX = "relayq:jobs"
CANCEL_CHANNEL = "relayq:cancel"


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue, all in the queue's slot (hash tag ``{<name>}``)."""

    name: str

    @property
    def waiting(self) -> str:
        """Sorted set: job ids waiting to run, scored by the time (ms) they may start."""
        return f"relayq:queue:{{{self.name}}}"

    @property
    def leases(self) -> str:
        """Sorted set: job ids being run, scored by the time (ms) their lease ends."""
        return f"relayq:queue:{{{self.name}}}:leases"

    @property
    def claims(self) -> str:
        """Hash: job id -> the claim token of the worker whose lease it is."""
        return f"relayq:queue:{{{self.name}}}:claims"

    @property
    def wake(self) -> str:
        """Channel published to when a job becomes due at once, so idle workers start it."""
        return f"{self.waiting}:wake"

    @property
    def slot_keys(self) -> list[str]:
        return [self.waiting, self.leases, self.claims]


CHAT = QueueKeys("chat")
COMPUTER = QueueKeys("computer")
QUEUE_KEYS = {"chat": CHAT, "computer": COMPUTER}
QUEUE_OF_KIND = {"chat": CHAT, "computer_use": COMPUTER}
FUNCTION_OF_QUEUE = {"chat": CHAT_FUNCTION, "computer": COMPUTER_FUNCTION}

CHAT_QUEUE = CHAT.waiting
COMPUTER_QUEUE = COMPUTER.waiting
QUEUES = {name: keys.waiting for name, keys in QUEUE_KEYS.items()}


def queue_keys_of(waiting_key: str) -> QueueKeys:
    """The queue whose waiting set is `waiting_key` (as stored in a job hash's `queue`)."""
    for keys in QUEUE_KEYS.values():
        if keys.waiting == waiting_key:
            return keys
    raise ValueError(f"unknown queue key {waiting_key!r}")


def job_key(job_id: str) -> str:
    return f"relayq:{{{job_id}}}:job"


def events_key(job_id: str) -> str:
    return f"relayq:{{{job_id}}}:events"


def cancel_key(job_id: str) -> str:
    return f"relayq:{{{job_id}}}:cancel"


def blobs_key(job_id: str) -> str:
    """Hash: blob number -> bytes (screenshots referred to by `screenshot` events)."""
    return f"relayq:{{{job_id}}}:blobs"


def envelope_key(job_id: str) -> str:
    """String: an arq-style job envelope written by a raw producer (CONTRACT.md)."""
    return f"relayq:{{{job_id}}}:envelope"


def job_slot_keys(job_id: str) -> list[str]:
    """Every key of a job, in the order the job-slot scripts take them as KEYS."""
    return [
        job_key(job_id),
        events_key(job_id),
        cancel_key(job_id),
        blobs_key(job_id),
        envelope_key(job_id),
    ]


def barrier_key(slot_key: str) -> str:
    """A throw-away key in the slot of `slot_key`: written before a WAIT, so that the WAIT
    covers every earlier write to that slot's primary (see relayq.connection.replicated)."""
    start = slot_key.find("{")
    end = slot_key.find("}", start + 1)
    tag = slot_key[start + 1 : end] if start >= 0 and end > start + 1 else slot_key
    return f"relayq:{{{tag}}}:barrier"


def tenant_jobs_key(tenant: str) -> str:
    """The tenant's own recent-jobs index (zset: job id -> created ms); "" is no tenant."""
    return f"relayq:tenant:{{t:{tenant}}}:jobs"


def tenant_limits_key(tenant: str) -> str:
    """The gateway's submit rate bucket and daily quota count of a tenant (hash)."""
    return f"relayq:tenant:{{t:{tenant}}}:limits"


def gateway_wake_key(instance: str, reader: int) -> str:
    """A stream a gateway's SSE reader includes in its XREAD so that it can be woken at once."""
    return f"relayq:gateway:{instance}:{reader}:wake"


def wake_channel(queue: str) -> str:
    """The wake channel of the queue whose waiting set is `queue`."""
    return f"{queue}:wake"


def worker_key(worker_id: str) -> str:
    """A live worker's description (JSON), expiring a few heartbeats after it stops."""
    return f"relayq:worker:{worker_id}"


WORKERS_PATTERN = "relayq:worker:*"
