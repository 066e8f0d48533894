"""Usage → money, in one place. Every charge, worst-case reservation and usage estimate is computed here.

- `Rates.from_card` turns a model's price card (currency units per the card's own unit: per 1M tokens,
  per image, per 1M characters, per minute of audio, per second of video or music) into integer
  micro-units once, when the config loads.
- `charge(usage, rates)` is the one function from quantities to money: the exact sum over every unit,
  rounded up once to a whole micro-unit (never under-charged, error below one micro-unit per request),
  never negative.
- `worst_case(...)` is the one function from a request to the most it may cost: input tokens bounded by
  the body's size in bytes (a token always covers at least one byte), output tokens by the request's
  cap (or the configured default) times the number of choices, plus what the request declares outright.
- `estimate(...)` is the one rule for a usage the provider did not report, or reported wrongly.
- `openai_usage(...)` reads OpenAI's usage object, trusting only sane counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from server.money import to_micro
from server.settings import PriceCard
from server.translate.counts import count
from server.types import Charge, Unit, Usage

SCALE = 60_000_000  # a common denominator: per 1M tokens or characters, per minute (60 s), per unit
CHARS_PER_TOKEN = 4

# card key -> (the unit it prices, how many of that unit the price is for, the card key it defaults to)
_RATES: dict[str, tuple[str, int, str | None]] = {
    "input": (Unit.INPUT_TOKENS, 1_000_000, None),
    "output": (Unit.OUTPUT_TOKENS, 1_000_000, None),
    "cached_input": (Unit.CACHED_TOKENS, 1_000_000, "input"),
    "audio_input": (Unit.AUDIO_INPUT_TOKENS, 1_000_000, "input"),
    "audio_output": (Unit.AUDIO_OUTPUT_TOKENS, 1_000_000, "output"),
    "cache_hit": (Unit.CACHE_HIT_TOKENS, 1_000_000, None),
    "per_1m_characters": (Unit.SPEECH_CHARACTERS, 1_000_000, None),
    "per_minute_audio": (Unit.AUDIO_SECONDS, 60, None),
    "per_second_video": (Unit.VIDEO_SECONDS, 1, None),
    "per_second_music": (Unit.MUSIC_SECONDS, 1, None),
}
_ALWAYS_SHOWN = ("input", "output", "cached_input")  # the card every usage row stored before other units


@dataclass(slots=True, frozen=True)
class Rates:
    """A price card in integer micro-units, and per unit the multiplier the charge sums (micro * SCALE / unit)."""

    card: Mapping[str, Any]
    multipliers: Mapping[str, int]
    image_fallback: int = 0  # an image size the card does not name is priced as its dearest image

    @classmethod
    def from_card(cls, price: PriceCard) -> Rates:
        """From the config's price card (currency units), with each default filled in."""
        card: dict[str, Any] = {}
        for key, (_, _, default) in _RATES.items():
            value: Decimal | None = getattr(price, key)
            if value is None and default is not None:
                value = getattr(price, default)
            micro = to_micro(value or 0)
            if micro or key in _ALWAYS_SHOWN:
                card[key] = micro
        if price.per_image:
            card["per_image"] = {size: to_micro(amount) for size, amount in price.per_image.items()}
        return cls.from_micro(card)

    @classmethod
    def from_micro(cls, card: Mapping[str, Any]) -> Rates:
        """From a card already in micro-units (as stored with a usage row or a hold)."""
        multipliers: dict[str, int] = {}
        for key, (unit, per, _) in _RATES.items():
            micro = card.get(key) or 0
            if isinstance(micro, int) and micro > 0:
                multipliers[unit] = micro * (SCALE // per)
        images = card.get("per_image") or {}
        for size, micro in images.items():
            multipliers[Unit.IMAGE_PREFIX + size] = micro * SCALE
        return cls(dict(card), multipliers, max(images.values(), default=0) * SCALE)

    def multiplier(self, unit: str) -> int:
        found = self.multipliers.get(unit)
        if found is not None:
            return found
        if unit.startswith(Unit.IMAGE_PREFIX):  # "images:1024x1024/hd" falls back to "images:1024x1024"
            return self.multipliers.get(unit.split("/", 1)[0], self.image_fallback)
        return 0


FREE = Rates({"input": 0, "output": 0, "cached_input": 0}, {})


def _billable(usage: Usage) -> dict[str, int]:
    """Quantities as priced: cached and audio input out of the text input, audio output out of the text output,
    then the tokens the gateway's own cache served (`cache_hit_tokens`) out of the text input first and the
    text output after it, so each token is priced once, at one rate."""
    quantities = dict(usage.quantities)
    cached = min(quantities.get(Unit.CACHED_TOKENS, 0), quantities.get(Unit.INPUT_TOKENS, 0))
    quantities[Unit.CACHED_TOKENS] = cached
    text_in = max(0, quantities.get(Unit.INPUT_TOKENS, 0) - cached - quantities.get(Unit.AUDIO_INPUT_TOKENS, 0))
    text_out = max(0, quantities.get(Unit.OUTPUT_TOKENS, 0) - quantities.get(Unit.AUDIO_OUTPUT_TOKENS, 0))
    hits = min(quantities.get(Unit.CACHE_HIT_TOKENS, 0), text_in + text_out)
    from_input = min(hits, text_in)
    quantities[Unit.CACHE_HIT_TOKENS] = hits
    quantities[Unit.INPUT_TOKENS] = text_in - from_input
    quantities[Unit.OUTPUT_TOKENS] = text_out - (hits - from_input)
    return quantities


def charge(usage: Usage, rates: Rates) -> Charge:
    """The money for a usage: the exact sum, rounded up once; never negative."""
    numerator = 0
    for unit, amount in _billable(usage).items():
        if amount > 0:
            numerator += amount * rates.multiplier(unit)
    return Charge(micro=-(-numerator // SCALE), card=rates.card)


@dataclass(slots=True, frozen=True)
class Declared:
    """What a request declares about its own size, already validated: its output-token cap (None when it
    gives none), how many choices it asks for, and quantities it states outright (images, seconds...)."""

    output_cap: int | None = None
    choices: int = 1
    quantities: Mapping[str, int] = field(default_factory=dict)
    input_bound: int | None = None  # input tokens at most, when the body's size is not the bound (realtime)
    audio: bool = False  # its tokens, in and out, may be audio (a realtime response)


def output_bound(declared: Declared, default_cap: int) -> int:
    """The most output tokens a request may produce: its cap (or the default one) times its choices."""
    cap = default_cap if declared.output_cap is None else declared.output_cap
    return cap * declared.choices


def worst_case(input_bytes: int, declared: Declared, default_cap: int) -> Usage:
    """The most a request may consume; its `reservation` is what a hold holds. Audio token quantities in it
    mean "these tokens may be audio" (a realtime response may answer in either)."""
    tokens_in_bound = input_bytes if declared.input_bound is None else declared.input_bound
    tokens_out_bound = output_bound(declared, default_cap)
    audio = {Unit.AUDIO_INPUT_TOKENS: tokens_in_bound, Unit.AUDIO_OUTPUT_TOKENS: tokens_out_bound}
    return Usage(
        {**declared.quantities, **(audio if declared.audio else {})},
        input_tokens=tokens_in_bound,
        output_tokens=tokens_out_bound,
    )


def reservation(worst: Usage, rates: Rates) -> Charge:
    """What a worst case holds: its charge, or, where some of its tokens may be audio, the dearer of pricing
    them as audio or as text (a card may make either the dearer), so the hold is a real bound."""
    priced = charge(worst, rates)
    if not worst.get(Unit.AUDIO_INPUT_TOKENS) and not worst.get(Unit.AUDIO_OUTPUT_TOKENS):
        return priced
    audio = (Unit.AUDIO_INPUT_TOKENS, Unit.AUDIO_OUTPUT_TOKENS)
    as_text = {unit: amount for unit, amount in worst.quantities.items() if unit not in audio}
    return max(priced, charge(Usage(as_text), rates), key=lambda c: c.micro)


def tokens_in(chars: int) -> int:
    """A provider-independent token count for text (~4 characters per token), rounded up."""
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


# Audio tokens per second of speech, as OpenAI's realtime models count them (~600 a minute in, ~1,200 out):
# only the estimate of a usage the provider did not report uses them (never a bound).
AUDIO_INPUT_TOKENS_PER_S = 10
AUDIO_OUTPUT_TOKENS_PER_S = 20


def audio_tokens(ms: int, per_second: int) -> int:
    """Tokens for `ms` milliseconds of audio, rounded up."""
    return -(-max(0, ms) * per_second // 1000)


def estimate(
    input_bytes: int,
    delivered_chars: int,
    reported: Usage | None = None,
    *,
    context_tokens: int = 0,
    input_audio_ms: int = 0,
    delivered_audio_ms: int = 0,
) -> Usage:
    """The one rule for a missing or untrusted usage: the provider's input count when it gave a sane one,
    else ~4 bytes of request body per token; output the larger of the provider's running count and ~4
    delivered characters per token. Always marked estimated. A realtime response adds what it carries
    beyond text: the conversation it continues (`context_tokens`, the last counts reported), the audio the
    client sent for it and the audio it delivered, counted by duration."""
    audio_out = audio_tokens(delivered_audio_ms, AUDIO_OUTPUT_TOKENS_PER_S)
    output = tokens_in(delivered_chars) + audio_out
    if reported is None:
        audio_in = audio_tokens(input_audio_ms, AUDIO_INPUT_TOKENS_PER_S)
        return Usage(
            input_tokens=tokens_in(input_bytes) + context_tokens + audio_in,
            output_tokens=output,
            audio_input_tokens=audio_in,
            audio_output_tokens=audio_out,
            estimated=True,
        )
    audio_out = max(audio_out, reported.get(Unit.AUDIO_OUTPUT_TOKENS))
    return Usage(
        reported.quantities,
        output_tokens=max(reported.output_tokens, output),
        audio_output_tokens=audio_out,
        estimated=True,
    )


def openai_usage(data: Any) -> Usage | None:
    """OpenAI's usage object (chat, embeddings, or a Response's) as a Usage; None when absent or not sane."""
    if not isinstance(data, dict):
        return None
    prompt = count(data.get("prompt_tokens", data.get("input_tokens")), default=None)
    completion = count(data.get("completion_tokens", data.get("output_tokens")))
    details_in = data.get("prompt_tokens_details", data.get("input_tokens_details")) or {}
    details_out = data.get("completion_tokens_details", data.get("output_tokens_details")) or {}
    if not isinstance(details_in, dict) or not isinstance(details_out, dict):
        return None
    cached = count(details_in.get("cached_tokens"))
    audio_in = count(details_in.get("audio_tokens"))
    audio_out = count(details_out.get("audio_tokens"))
    if prompt is None or completion is None or cached is None or audio_in is None or audio_out is None:
        return None
    if cached > prompt or audio_in > prompt or audio_out > completion:
        return None
    return Usage(
        input_tokens=prompt,
        output_tokens=completion,
        cached_tokens=cached,
        audio_input_tokens=audio_in,
        audio_output_tokens=audio_out,
    )


def realtime_usage(data: Any) -> Usage | None:
    """A realtime `response.done`'s usage (text and audio, input and output, cached) as a Usage; None when
    absent or not sane. Cached tokens are priced at the cached rate whichever their kind, so the audio input
    priced at the audio rate is its uncached part."""
    if not isinstance(data, dict):
        return None
    details_in, details_out = data.get("input_token_details") or {}, data.get("output_token_details") or {}
    if not isinstance(details_in, dict) or not isinstance(details_out, dict):
        return None
    cached_in = details_in.get("cached_tokens_details") or {}
    if not isinstance(cached_in, dict):
        return None
    found = (
        count(data.get("input_tokens"), default=None),
        count(data.get("output_tokens"), default=None),
        count(details_in.get("cached_tokens")),
        count(details_in.get("audio_tokens")),
        count(cached_in.get("audio_tokens")),
        count(details_out.get("audio_tokens")),
    )
    if any(value is None for value in found):
        return None
    prompt, completion, cached, audio_in, cached_audio, audio_out = (int(value or 0) for value in found)
    if cached > prompt or audio_in > prompt or audio_out > completion or cached_audio > min(cached, audio_in):
        return None
    return Usage(
        input_tokens=prompt,
        output_tokens=completion,
        cached_tokens=cached,
        audio_input_tokens=audio_in - cached_audio,
        audio_output_tokens=audio_out,
    )
