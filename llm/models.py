"""Claude model ids this package knows by name (any other id string is accepted too).

The 4.5 Sonnet and Opus ids are deprecated by Anthropic (the SDK warns when they are used).
"""

from typing import Literal, TypeAlias

__all__ = ["DEFAULT_MODEL", "ChatModels"]

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
