"""Logging: JSON lines when stderr is not a terminal, each carrying the job, attempt and queue
of the attempt that logged it; API keys are scrubbed from every line, whatever logged them."""

from __future__ import annotations

import json
import logging
import os
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

job_context: ContextVar[dict[str, object] | None] = ContextVar("relayq_job", default=None)

_SECRET_ENV = ("ANTHROPIC_API_KEY", "RELAYQ_API_KEYS")


def _secrets() -> list[str]:
    found: list[str] = []
    for name in _SECRET_ENV:
        for part in os.environ.get(name, "").replace(",", ":").split(":"):
            if len(part) >= 8:
                found.append(part)
    return found


class JobContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (job_context.get() or {}).items():
            setattr(record, key, value)
        return True


class ScrubbingFormatter(logging.Formatter):
    def __init__(self, fmt: str | None = None, *, as_json: bool) -> None:
        super().__init__(fmt)
        self.as_json = as_json
        self.secrets = _secrets()

    def format(self, record: logging.LogRecord) -> str:
        if self.as_json:
            line: dict[str, object] = {
                "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
            }
            for key in ("job_id", "attempt", "queue"):
                if hasattr(record, key):
                    line[key] = getattr(record, key)
            if record.exc_info:
                line["exc"] = self.formatException(record.exc_info)
            text = json.dumps(line, default=str)
        else:
            text = super().format(record)
            if hasattr(record, "job_id"):
                text += f" [job={record.job_id} attempt={getattr(record, 'attempt', '?')}]"
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def configure_logging(level: str = "INFO", *, as_json: bool | None = None) -> None:
    if as_json is None:
        as_json = not sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", as_json=as_json)
    )
    handler.addFilter(JobContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
