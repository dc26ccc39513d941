"""A scripted reply before it goes on the wire: its blocks, stop reason and token counts."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypedDict

from .request import JSON, digest, dumps

if TYPE_CHECKING:
    from .directives import Directives

PROMPT_WORDS = 12
FILLER = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "amber", "basalt", "cobalt",
    "dune", "ember", "fjord",
)  # fmt: skip
_JSON_PIECE_SIZES = (3, 7, 1, 5, 11, 2, 8, 4)


def stable_index(key: str, n: int) -> int:
    return int(digest(key)[:8], 16) % n if n else 0


def split_awkwardly(text: str) -> list[str]:
    pieces, pos, i = [""], 0, 0
    while pos < len(text):
        size = _JSON_PIECE_SIZES[i % len(_JSON_PIECE_SIZES)]
        pieces.append(text[pos : pos + size])
        pos, i = pos + size, i + 1
    return pieces


@dataclass(frozen=True)
class Block:
    kind: Literal["thinking", "text", "tool_use"]
    pieces: tuple[str, ...]
    signature: str = ""
    tool_id: str = ""
    tool_name: str = ""
    tool_input: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class ReplyPlan:
    blocks: tuple[Block, ...]
    stop_reason: str
    output_tokens: int
    directives: Directives


def split_words(text: str) -> list[str]:
    return text.split()


def tokens(lead: list[str], seed: str, count: int | None) -> list[str]:
    """Words of ``lead`` padded with filler (or cut) to ``count``, as word+space tokens."""
    words = list(lead)
    if count is not None:
        start, step = stable_index(seed, len(FILLER)), 1 + stable_index(seed + "/", 7)
        while len(words) < count:
            words.append(FILLER[(start + step * (len(words) - len(lead))) % len(FILLER)])
        words = words[:count]
    return [w + " " for w in words[:-1]] + words[-1:]


def sentence(prefix: str, words: list[str], empty: str) -> list[str]:
    if not words:
        return [*prefix.split(), empty]
    last = words[-1] if words[-1][-1] in ".?!" else words[-1] + "."
    return [*prefix.split(), *words[:-1], last]


def thinking_block(prompt: str) -> Block:
    thought = sentence("The user asked:", split_words(prompt)[:PROMPT_WORDS], "nothing.")
    thought += "I will answer with the scripted reply.".split()
    pieces = tuple(tokens(thought, prompt, None))
    return Block("thinking", pieces, signature=thinking_signature("".join(pieces)))


def thinking_signature(text: str) -> str:
    """The signature the simulator gives a thinking block's text (strict mode checks it)."""
    return base64.b64encode(hashlib.sha256(("sig:" + text).encode()).digest() * 2).decode()


def tool_use_block(tool_id: str, name: str, tool_input: JSON, *, badjson: bool) -> Block:
    raw = dumps(tool_input)
    if badjson:
        raw = raw[:-1] + ',"sim_badjson": }'
    return Block(
        "tool_use",
        tuple(split_awkwardly(raw)),
        tool_id=tool_id,
        tool_name=name,
        tool_input=tool_input,
    )


def finish(blocks: list[Block], stop_reason: str, directives: Directives) -> ReplyPlan:
    output_tokens = sum(
        max(1, len("".join(b.pieces)) // 4) if b.kind == "tool_use" else len(b.pieces)
        for b in blocks
    )
    return ReplyPlan(tuple(blocks), stop_reason, max(1, output_tokens), directives)


class UsagePayload(TypedDict):
    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    cache_creation: int
    cache_read: int

    def payload(self, output_tokens: int) -> UsagePayload:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation,
            "cache_read_input_tokens": self.cache_read,
            "output_tokens": output_tokens,
        }
