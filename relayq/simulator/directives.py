"""The ``[[sim:...]]`` directive language: how a prompt scripts its own request's behaviour."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from .computer import PLAN_STEPS
from .request import block_text, computer_step, computer_tool, system_text, user_block_lists
from .wire import ERROR_TYPES

DEFAULT_MIDSTREAM_AFTER = 3
DEFAULT_STALL_AFTER = -1
_DIRECTIVE_RE = re.compile(r"\[\[sim:([^\]]*)\]\]")


@dataclass(frozen=True)
class FaultSpec:
    """One directive group's fault: what happens, where, and on how many attempts."""

    kind: Literal["fail", "midstream", "drop"] | None
    status: int = 0
    error_type: str = ""
    stall: float = 0.0
    times: int = 1
    after: int = DEFAULT_MIDSTREAM_AFTER
    retry_after: float = 1.0
    source: str = "directive"
    step: int | None = None


@dataclass(frozen=True)
class Directives:
    faults: tuple[FaultSpec, ...] = ()
    tokens: int | None = None
    rate: float | None = None
    badjson: bool = False
    chaos: bool = True
    plan: str | None = None


class DirectiveError(ValueError):
    """A ``[[sim:...]]`` directive could not be understood."""


def _parse_number(key: str, value: str, *, integer: bool, minimum: float) -> float:
    try:
        number = float(int(value)) if integer else float(value)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise DirectiveError(f"sim directive {key}={value!r}: expected {kind}") from None
    if number < minimum:
        raise DirectiveError(f"sim directive {key}={value!r}: must be >= {minimum:g}")
    return number


def _parse_group(text: str, acc: dict[str, Any]) -> FaultSpec | None:
    pairs: dict[str, str] = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise DirectiveError(f"sim directive {item!r}: expected KEY=VALUE")
        pairs[key.lower()] = value
    kind: Literal["fail", "midstream", "drop"] | None = None
    status, error_type, stall = 0, "", 0.0
    for key, value in pairs.items():
        if key == "fail":
            status = int(_parse_number(key, value, integer=True, minimum=400))
            if status > 599:
                raise DirectiveError(f"sim directive fail={value}: not an HTTP error status")
            kind, error_type = (
                "fail",
                ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error"),
            )
        elif key == "midstream":
            if not re.fullmatch(r"[a-z_]+", value):
                raise DirectiveError(f"sim directive midstream={value!r}: expected an error type")
            kind, error_type = "midstream", value
        elif key == "drop":
            if value not in ("1", "true", "yes"):
                raise DirectiveError(f"sim directive drop={value!r}: expected drop=1")
            kind = "drop"
        elif key == "stall":
            stall = _parse_number(key, value, integer=False, minimum=0)
        elif key == "tokens":
            acc["tokens"] = int(_parse_number(key, value, integer=True, minimum=1))
        elif key == "rate":
            acc["rate"] = _parse_number(key, value, integer=False, minimum=0)
        elif key == "badjson":
            acc["badjson"] = value not in ("0", "false", "no")
        elif key == "chaos":
            acc["chaos"] = value not in ("0", "false", "no", "off")
        elif key == "plan":
            if value not in PLAN_STEPS:
                raise DirectiveError(
                    f"sim directive plan={value!r}: expected one of {', '.join(sorted(PLAN_STEPS))}"
                )
            acc["plan"] = value
        elif key not in ("times", "after", "retry_after", "step"):
            raise DirectiveError(f"sim directive: unknown key {key!r}")
    if sum(k in pairs for k in ("fail", "midstream", "drop")) > 1:
        raise DirectiveError("sim directive: one of fail/midstream/drop per [[sim:...]] group")
    step = (
        int(_parse_number("step", pairs["step"], integer=True, minimum=0))
        if "step" in pairs
        else None
    )
    if kind is None and "stall" not in pairs:
        if step is not None:
            raise DirectiveError("sim directive step=: only with fail/midstream/drop/stall")
        return None
    default_after = DEFAULT_STALL_AFTER if kind in (None, "fail") else DEFAULT_MIDSTREAM_AFTER
    return FaultSpec(
        kind=kind,
        status=status,
        error_type=error_type,
        stall=stall,
        times=int(_parse_number("times", pairs.get("times", "1"), integer=True, minimum=0)),
        after=int(
            _parse_number("after", pairs.get("after", str(default_after)), integer=True, minimum=-1)
        ),
        retry_after=_parse_number(
            "retry_after", pairs.get("retry_after", "1"), integer=False, minimum=0
        ),
        step=step,
    )


def parse_directives(*texts: str) -> Directives:
    """Parse every ``[[sim:...]]`` group in ``texts`` (in order). Raises DirectiveError."""
    faults: list[FaultSpec] = []
    acc: dict[str, Any] = {}
    for text in texts:
        for match in _DIRECTIVE_RE.finditer(text):
            spec = _parse_group(match.group(1), acc)
            if spec is not None:
                faults.append(spec)
    return Directives(faults=tuple(faults), **acc)


def strip_directives(text: str) -> str:
    return _DIRECTIVE_RE.sub(" ", text)


def request_directives(body: Mapping[str, Any]) -> Directives:
    """The directives of a request: system prompt first, then the last user message.

    In computer-use mode the task (first user message) counts too: its ``plan``, ``rate``,
    ``chaos`` and ``badjson`` apply to every turn, its fault groups to the first turn
    only unless they carry ``step=K``. A group with ``step=K`` (anywhere) strikes only the request
    that is to produce computer step K (0-based), see ``computer_step``.
    """
    step = computer_step(body)
    system = system_text(body)
    users = user_block_lists(body)
    last = block_text(users[-1]) if users else ""
    if len(users) > 1 and (computer_tool(body) is not None or step > 0):
        task = block_text(users[0])
        directives = parse_directives(system, task, last)
        directives = replace(
            directives,
            faults=(
                *parse_directives(system).faults,
                *(f for f in parse_directives(task).faults if f.step is not None),
                *parse_directives(last).faults,
            ),
        )
    else:
        directives = parse_directives(system, last)
    return replace(directives, faults=tuple(f for f in directives.faults if f.step in (None, step)))
