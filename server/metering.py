"""Usage → money. Prices are integer micro-units per 1M tokens; a charge is rounded up once.

Rounding up (ceil) on the summed numerator means a request is never charged less than its exact
cost and the rounding error is below one micro-unit per request.
"""

from __future__ import annotations

from typing import Any

from server.money import to_micro
from server.settings import PriceCard
from server.types import Charge, PriceRates, Usage

_PER = 1_000_000


def rates_from_card(card: PriceCard) -> PriceRates:
    cached = card.cached_input if card.cached_input is not None else card.input
    return PriceRates(input=to_micro(card.input), output=to_micro(card.output), cached_input=to_micro(cached))


def charge_for(usage: Usage, rates: PriceRates) -> Charge:
    cached = min(usage.cached_tokens, usage.input_tokens)
    numerator = (
        (usage.input_tokens - cached) * rates.input + cached * rates.cached_input + usage.output_tokens * rates.output
    )
    return Charge(micro=-(-numerator // _PER), rates=rates)


def usage_from_openai(data: dict[str, Any] | None) -> Usage | None:
    """The OpenAI `usage` object (chat or embeddings) as a Usage; None when absent."""
    if not isinstance(data, dict):
        return None
    prompt = int(data.get("prompt_tokens") or 0)
    completion = int(data.get("completion_tokens") or 0)
    details = data.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    return Usage(input_tokens=prompt, output_tokens=completion, cached_tokens=cached)


def estimate_tokens(text_chars: int) -> int:
    """A provider-independent estimate (~4 characters per token), used only when usage is missing."""
    return (text_chars + 3) // 4
