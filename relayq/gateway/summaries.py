"""One line of each job's request for the jobs list: the start of the prompt or the task.

A request is immutable, so each job's line is read once (its first bytes only, by a script) and
kept in a bounded cache.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from collections.abc import Iterable
from importlib.resources import files

from redis.asyncio import Redis

from relayq.connection import is_cluster
from relayq.contract import script_source
from relayq.schemas.constants import job_key

PREFIX_BYTES = 4096
SUMMARY_CHARS = 160
# where model_dump_json puts a chat job's prompt and a computer-use job's task (CONTRACT.md)
_TEXT_FIELD = re.compile(r'"kind":"chat","messages":null,"prompt":"|"kind":"computer_use","task":"')
_MESSAGES = '"kind":"chat","messages":{'


def summary_of(prefix: str) -> str:
    """The prompt's or the task's first characters, from the start of the request's JSON."""
    found = _TEXT_FIELD.search(prefix)
    if found is None:
        return "(a conversation)" if _MESSAGES in prefix else ""
    start = found.end() - 1
    try:
        text, _ = json.JSONDecoder().raw_decode(prefix, start)
    except ValueError:  # cut off inside the string: decode what is there
        partial = prefix[start + 1 :]
        partial = re.sub(r"\\(u[0-9a-fA-F]{0,3})?$", "", partial)
        try:
            text = json.loads(f'"{partial}"')
        except ValueError:
            return ""
    line = " ".join(str(text).split())
    return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"


class Summaries:
    def __init__(self, redis: Redis, capacity: int = 50_000) -> None:
        folder = files(__package__ or "relayq.gateway")
        self._script = redis.register_script(script_source("summary", folder))
        self._redis = redis
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._capacity = capacity

    async def of(self, stored_ids: Iterable[str]) -> dict[str, str]:
        ids = list(stored_ids)
        missing = [i for i in ids if i not in self._cache]
        if missing and is_cluster(self._redis):
            # a cluster pipeline runs no scripts (and each job is a slot of its own anyway)
            replies: list[object] = await asyncio.gather(
                *(self._script(keys=[job_key(i)], args=[PREFIX_BYTES]) for i in missing),
                return_exceptions=True,
            )
        elif missing:
            pipe = self._redis.pipeline(transaction=False)
            for job_id in missing:  # the pipeline loads the script first if Redis lacks it
                await self._script(keys=[job_key(job_id)], args=[PREFIX_BYTES], client=pipe)
            replies = await pipe.execute(raise_on_error=False)
        if missing:
            for job_id, reply in zip(missing, replies, strict=True):
                if isinstance(reply, bytes):
                    self._remember(job_id, summary_of(reply.decode("utf-8", errors="ignore")))
        return {i: self._cache[i] for i in ids if i in self._cache}

    def _remember(self, job_id: str, summary: str) -> None:
        self._cache[job_id] = summary
        self._cache.move_to_end(job_id)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
