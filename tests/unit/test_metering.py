"""Usage → money in integer micro-units, rounded up once per request."""

from __future__ import annotations

from decimal import Decimal

import pytest

from server.metering import Rates, charge, openai_usage
from server.money import format_credits, to_micro
from server.settings import PriceCard
from server.types import Usage


def test_price_card_becomes_integer_micro_per_million() -> None:
    rates = Rates.from_card(PriceCard(input=Decimal("0.15"), output=Decimal("0.60")))
    assert (rates.card["input"], rates.card["output"], rates.card["cached_input"]) == (150_000, 600_000, 150_000)


def test_charge_is_exact_for_whole_amounts_and_rounds_up_fractions() -> None:
    rates = Rates.from_card(PriceCard(input=Decimal("1"), output=Decimal("2")))
    assert charge(Usage(input_tokens=1_000_000, output_tokens=500_000), rates).micro == 2_000_000
    cheap = Rates.from_card(PriceCard(input=Decimal("0.15"), output=Decimal("0.60")))
    # 10 * 0.15 + 5 * 0.6 = 4.5 micro -> 5 (never under-charge)
    assert charge(Usage(input_tokens=10, output_tokens=5), cheap).micro == 5


def test_cached_tokens_use_the_cached_rate() -> None:
    rates = Rates.from_card(PriceCard(input=Decimal("2"), output=Decimal("0"), cached_input=Decimal("1")))
    usage = Usage(input_tokens=1_000_000, cached_tokens=400_000)
    assert charge(usage, rates).micro == 600_000 * 2 + 400_000 * 1


def test_cache_hit_tokens_are_priced_once_at_the_cache_rate() -> None:
    rates = Rates.from_card(PriceCard(input=Decimal("2"), output=Decimal("4"), cache_hit=Decimal("0.5")))
    # an embeddings batch: 300k of its 1M input tokens came from the cache
    batch = Usage(input_tokens=1_000_000, cache_hit_tokens=300_000)
    assert charge(batch, rates).micro == 700_000 * 2 + 300_000 // 2
    # a whole chat answer from the cache: its input and output tokens, all at the cache rate
    answer = Usage(input_tokens=600_000, output_tokens=400_000, cache_hit_tokens=1_000_000)
    assert charge(answer, rates).micro == 500_000
    # more hits than tokens cannot price anything twice; the default cache_hit rate is 0
    assert charge(Usage(input_tokens=10, cache_hit_tokens=99), rates).micro == 5
    free_hits = Rates.from_card(PriceCard(input=Decimal("2")))
    assert charge(Usage(input_tokens=1_000_000, cache_hit_tokens=1_000_000), free_hits).micro == 0


def test_usage_parses_openai_shape() -> None:
    usage = openai_usage({"prompt_tokens": 12, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 4}})
    assert usage == Usage(input_tokens=12, output_tokens=7, cached_tokens=4)
    assert openai_usage(None) is None


def test_money_helpers() -> None:
    assert to_micro("20") == 20_000_000
    assert to_micro(Decimal("0.000001")) == 1
    with pytest.raises(ValueError):
        to_micro("0.0000001")
    assert format_credits(1500) == "0.0015"
    assert format_credits(20_000_000) == "20"
    assert format_credits(-1) == "-0.000001"
