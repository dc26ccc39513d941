"""Every Redis key, queue and function name relayq uses, in one place.

Keys of one job share the hash tag ``{<job_id>}`` so that they live in one Redis Cluster slot.
"""

from __future__ import annotations

KEY_PREFIX = "relayq"

CHAT_QUEUE = "relayq:queue:chat"
COMPUTER_QUEUE = "relayq:queue:computer"
QUEUES = {"chat": CHAT_QUEUE, "computer": COMPUTER_QUEUE}

CHAT_FUNCTION = "chat"
COMPUTER_FUNCTION = "computer_use"

EVENT_FIELD = "event"
JOBS_INDEX = "relayq:jobs"
CANCEL_CHANNEL = "relayq:cancel"


def events_key(job_id: str) -> str:
    return f"relayq:{{{job_id}}}:events"


def job_key(job_id: str) -> str:
    return f"relayq:{{{job_id}}}:job"


def cancel_key(job_id: str) -> str:
    return f"relayq:{{{job_id}}}:cancel"


def blob_key(job_id: str, n: int) -> str:
    return f"relayq:{{{job_id}}}:blob:{n}"


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
    """Published to by the enqueue script so that idle workers start the job at once."""
    return f"{queue}:wake"


def in_progress_key(job_id: str) -> str:
    """arq's lease on a running job (claim.lua sets it, the worker's heartbeat renews it)."""
    return f"arq:in-progress:{job_id}"


def worker_key(worker_id: str) -> str:
    """A live worker's description (JSON), expiring a few heartbeats after it stops."""
    return f"relayq:worker:{worker_id}"


WORKERS_PATTERN = "relayq:worker:*"
