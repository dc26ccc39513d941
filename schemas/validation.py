"""Validation errors as text and problem lists that never repeat the input.

A job may carry secrets (a password in a computer-use task, a key in metadata): what failed and
where is reported (`loc`, `msg`, `type`), never the value that failed. The worker's `error`
events, the client's `InvalidJob` and the gateway's 422 answers all go through here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

MAX_LISTED = 5


def validation_problems(
    errors: ValidationError | Iterable[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """`loc`, `msg` and `type` of each error: no `input`, `ctx` or `url`."""
    raw: Iterable[Mapping[str, Any]] = (
        errors.errors(include_input=False, include_url=False, include_context=False)
        if isinstance(errors, ValidationError)
        else errors
    )
    return [
        {
            "loc": [p if isinstance(p, int | str) else str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in raw
    ]


def describe_problems(problems: list[dict[str, Any]]) -> str:
    """`field.path: message; ...`, the first few of them."""
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in problems[:MAX_LISTED]
    ]
    more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
    return "; ".join(parts) + more


def error_text(error: Exception) -> str:
    """What to tell a user about a failed validation: a pydantic error without its inputs, or
    the message of any other error (relayq's own messages never quote job values)."""
    if isinstance(error, ValidationError):
        return describe_problems(validation_problems(error))
    return str(error)
