"""Claude model ids this package knows by name (any other id string is accepted too).

The 4.5 Sonnet and Opus ids are deprecated by Anthropic (the SDK warns when they are used).
"""

import re
from typing import Literal, TypeAlias

__all__ = ["DEFAULT_MODEL", "ChatModels", "claude_version", "model_accepts_prefill"]

ChatModels: TypeAlias = Literal[
    "claude-opus-4-8",
    "claude-opus-4-7",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-opus-4-5",
    "claude-opus-4-5-20251101",
    "claude-sonnet-4-5",
    "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5",
    "claude-haiku-4-5-20251001",
]

DEFAULT_MODEL: ChatModels = "claude-sonnet-4-6"

_PREFILL_REMOVED_FROM = (4, 6)
_FAMILIES = frozenset({"opus", "sonnet", "haiku", "fable", "mythos"})


def model_accepts_prefill(model: str) -> bool:
    """Whether the model takes a conversation that ends with an assistant turn (a prefill).

    Claude 4.6 and later answer one with a 400 ("This model does not support assistant message
    prefill"). Model ids that name no Claude version (aliases, proxies' names) are assumed to
    accept it, as the API did before 4.6.
    """
    version = claude_version(model)
    return not version or version < _PREFILL_REMOVED_FROM


def claude_version(model: str) -> tuple[int, ...]:
    """(4, 6) for "claude-sonnet-4-6" or "us.anthropic.claude-sonnet-4-6-v1", (4, 5) for
    "claude-opus-4-5-20251101", (3, 7) for "claude-3-7-sonnet-20250219"; () if it names none."""
    segments = [s for s in re.split(r"[-_.@:]", model.split("[")[0].lower()) if s]
    family = next((i for i, s in enumerate(segments) if s in _FAMILIES), None)
    if family is None:
        return ()
    after = _leading_numbers(segments[family + 1 :])
    if after:
        return after
    return tuple(reversed(_leading_numbers(segments[:family][::-1])))


def _leading_numbers(segments: list[str]) -> tuple[int, ...]:
    numbers: list[int] = []
    for segment in segments:
        if not (segment.isdigit() and len(segment) <= 2):  # a date (20251101) ends the version
            break
        numbers.append(int(segment))
    return tuple(numbers)
