"""Cost estimates for the dashboard, `relayq watch` and `relayq jobs`: a small per-model price
table in USD per million tokens. Producer-safe (pydantic only).

Estimates only: list prices as published for each model family (5-minute cache writes), matched
by the longest model-name prefix; an unknown model is priced like Sonnet. `RELAYQ_PRICES` (JSON:
`{"model-prefix": {"input": 3, "output": 15, "cache_write": 3.75, "cache_read": 0.3}}`) adds
prefixes or replaces the ones here. `prompt_tokens` in
relayq's usage includes cache reads and writes, so the uncached input is what is left of it.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from relayq.schemas.events import TokenUsage


class Price(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(frozen=True)

    input: float
    output: float
    cache_write: float
    cache_read: float


_OPUS_4 = Price(input=15.0, output=75.0, cache_write=18.75, cache_read=1.50)
_OPUS_45 = Price(input=5.0, output=25.0, cache_write=6.25, cache_read=0.50)
_SONNET = Price(input=3.0, output=15.0, cache_write=3.75, cache_read=0.30)
_HAIKU_45 = Price(input=1.0, output=5.0, cache_write=1.25, cache_read=0.10)
_HAIKU_35 = Price(input=0.80, output=4.0, cache_write=1.00, cache_read=0.08)
_HAIKU_3 = Price(input=0.25, output=1.25, cache_write=0.30, cache_read=0.03)

PRICES: dict[str, Price] = {
    "claude-opus-4-6": _OPUS_45,
    "claude-opus-4-5": _OPUS_45,
    "claude-opus-4-1": _OPUS_4,
    "claude-opus-4": _OPUS_4,
    "claude-3-opus": _OPUS_4,
    "claude-sonnet-4": _SONNET,
    "claude-3-7-sonnet": _SONNET,
    "claude-3-5-sonnet": _SONNET,
    "claude-haiku-4-5": _HAIKU_45,
    "claude-3-5-haiku": _HAIKU_35,
    "claude-3-haiku": _HAIKU_3,
}
DEFAULT_PRICE = _SONNET


def price_table(overrides: Mapping[str, Mapping[str, float]]) -> dict[str, Price]:
    """The built-in table with the configured prefixes added or replaced."""
    return {**PRICES, **{prefix: Price.model_validate(p) for prefix, p in overrides.items()}}


def price_of(model: str, table: Mapping[str, Price] = PRICES) -> Price:
    """The price of the longest known prefix of `model`; Sonnet's when none matches."""
    best = ""
    for prefix in table:
        if model.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return table[best] if best else DEFAULT_PRICE


def estimate_cost(
    model: str, usage: TokenUsage | None, table: Mapping[str, Price] = PRICES
) -> float:
    """Estimated USD for `usage` on `model` (0.0 without usage)."""
    if usage is None:
        return 0.0
    price = price_of(model, table)
    uncached = max(usage.prompt_tokens - usage.cache_creation_tokens - usage.cache_read_tokens, 0)
    total = (
        uncached * price.input
        + usage.completion_tokens * price.output
        + usage.cache_creation_tokens * price.cache_write
        + usage.cache_read_tokens * price.cache_read
    )
    return round(total / 1_000_000, 6)
