"""Failures a user can fix, and how the CLI says them: one line on stderr that names the fix, no
traceback. Exit code 2 for usage and configuration errors, 1 for everything else."""

from __future__ import annotations

from relayq.errors import InvalidJob, JobNotFound, NotConfigured, RedisUnavailable, RelayqError


class CliError(Exception):
    """Printed as `relayq: <message>`; the process exits with `exit_code`."""

    exit_code = 1


class UsageError(CliError):
    """A wrong argument, file or setting: the command cannot run as given."""

    exit_code = 2


def explain(error: BaseException) -> CliError | None:
    """The one-line form of an error raised below the CLI, or None for a bug (a traceback)."""
    match error:
        case CliError():
            return error
        case JobNotFound():
            return UsageError(
                f"no job {error} (never submitted, or its keys expired RELAYQ_STREAM_TTL_S "
                "after it ended); `relayq jobs` lists recent jobs"
            )
        case NotConfigured():
            return UsageError(f"{error}; e.g. RELAYQ_REDIS_URL=redis://localhost:6379/0")
        case InvalidJob():
            return UsageError(f"invalid job: {error}")
        case RedisUnavailable():
            return CliError(
                f"Redis stopped answering ({one_line(str(error))}); check that it is up "
                "(`relayq status`) and run the command again"
            )
        case RelayqError():
            return CliError(one_line(str(error)))
    return None


def one_line(text: str) -> str:
    return " ".join(text.split())
