"""The realtime proxy's pure rules: reading usage and events, pricing text and audio apart, worst cases, the
estimate of a cut response, the dialect's cap, and the mock peer's answers."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest

from server.errors import GatewayError
from server.metering import Declared, Rates, charge, estimate, realtime_usage, reservation, worst_case
from server.providers.mock_realtime import MockRealtimePeer, tone_chunk
from server.realtime.dialect import RealtimeDialect
from server.realtime.events import audio_ms, bytes_per_second, decoded_size, output_cap, parse, session_audio
from server.settings import PriceCard
from server.types import Unit, Usage

# OpenAI's own response.done example (openai-openapi.yaml, RealtimeServerEventResponseDone)
EXAMPLE_USAGE = {
    "total_tokens": 253,
    "input_tokens": 132,
    "output_tokens": 121,
    "input_token_details": {
        "text_tokens": 119,
        "audio_tokens": 13,
        "image_tokens": 0,
        "cached_tokens": 64,
        "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 0, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 30, "audio_tokens": 91},
}
GPT_REALTIME = Rates.from_card(
    PriceCard(
        input=Decimal(4),
        output=Decimal(16),
        cached_input=Decimal("0.4"),
        audio_input=Decimal(32),
        audio_output=Decimal(64),
    )
)


def test_response_done_usage_is_priced_text_and_audio_apart() -> None:
    usage = realtime_usage(EXAMPLE_USAGE)
    assert usage is not None
    assert usage.quantities == {
        Unit.INPUT_TOKENS: 132,
        Unit.OUTPUT_TOKENS: 121,
        Unit.CACHED_TOKENS: 64,
        Unit.AUDIO_INPUT_TOKENS: 13,
        Unit.AUDIO_OUTPUT_TOKENS: 91,
    }
    # text in 132-64-13=55 x 4, cached 64 x 0.4, audio in 13 x 32, text out 30 x 16, audio out 91 x 64: currency
    # units per 1M tokens times tokens is micro-units, 6,965.6 here, rounded up once
    exact = 55 * 4 + 64 * Decimal("0.4") + 13 * 32 + 30 * 16 + 91 * 64
    assert exact == Decimal("6965.6")
    assert charge(usage, GPT_REALTIME).micro == 6966


def test_cached_audio_is_priced_at_the_cached_rate_once() -> None:
    data = json.loads(json.dumps(EXAMPLE_USAGE))
    data["input_token_details"]["cached_tokens_details"]["audio_tokens"] = 10
    usage = realtime_usage(data)
    assert usage is not None and usage.get(Unit.AUDIO_INPUT_TOKENS) == 3  # the uncached audio


@pytest.mark.parametrize(
    "broken",
    [
        {"input_tokens": -1, "output_tokens": 1},
        {"input_tokens": "9", "output_tokens": 1},
        {"input_tokens": 5, "output_tokens": 1, "output_token_details": {"audio_tokens": 2}},
        {"input_tokens": 5, "output_tokens": 1, "input_token_details": {"cached_tokens": 6}},
        {"output_tokens": 1},
        None,
        [],
    ],
)
def test_a_usage_that_is_not_sane_is_not_trusted(broken: Any) -> None:
    assert realtime_usage(broken) is None


def test_a_worst_case_that_may_be_audio_holds_the_dearer_pricing() -> None:
    declared = Declared(output_cap=100, input_bound=1000, audio=True)
    worst = worst_case(50, declared, 4096)
    assert worst.input_tokens == 1000 and worst.output_tokens == 100
    assert (
        reservation(worst, GPT_REALTIME).micro
        == charge(
            Usage(input_tokens=1000, audio_input_tokens=1000, output_tokens=100, audio_output_tokens=100), GPT_REALTIME
        ).micro
    )
    cheap_audio = Rates.from_card(PriceCard(input=Decimal(50), output=Decimal(50), audio_input=Decimal(1)))
    assert (
        reservation(worst, cheap_audio).micro == charge(Usage(input_tokens=1000, output_tokens=100), cheap_audio).micro
    )


def test_the_estimate_of_a_cut_response_counts_its_audio_and_is_never_zero_for_delivered_output() -> None:
    usage = estimate(40, 0, context_tokens=100, input_audio_ms=2000, delivered_audio_ms=1500)
    assert usage.estimated
    assert usage.get(Unit.AUDIO_OUTPUT_TOKENS) == 30 and usage.output_tokens == 30
    assert usage.get(Unit.AUDIO_INPUT_TOKENS) == 20 and usage.input_tokens == 10 + 100 + 20
    assert charge(usage, GPT_REALTIME).micro > 0
    running = estimate(40, 8, Usage(input_tokens=7, output_tokens=1), delivered_audio_ms=1000)
    assert running.input_tokens == 7 and running.output_tokens == 2 + 20


def test_events_measure_audio_by_format() -> None:
    assert bytes_per_second({"type": "audio/pcm", "rate": 24000}) == 48_000
    assert bytes_per_second({"type": "audio/pcmu"}) == bytes_per_second("g711_alaw") == 8_000
    assert bytes_per_second("pcm16") == bytes_per_second(None) == 48_000
    assert decoded_size(tone_chunk()) == 4800 and audio_ms(tone_chunk(), 48_000) == 100
    assert session_audio({"input_audio_format": "g711_ulaw", "output_audio_format": "pcm16"}) == (8_000, 48_000)
    ga = {"audio": {"input": {"format": {"type": "audio/pcma"}}, "output": {"format": {"type": "audio/pcm"}}}}
    assert session_audio(ga) == (8_000, 48_000)
    assert parse('{"type": "x"}') == {"type": "x"} and parse("[1]") is None and parse("nope") is None


def test_output_caps_are_read_and_malformed_ones_refused() -> None:
    assert output_cap({"max_output_tokens": 200}, "response") == 200
    assert output_cap({"max_response_output_tokens": "inf"}, "session") is None
    assert output_cap(None, "response") is None
    with pytest.raises(GatewayError) as info:
        output_cap({"max_output_tokens": 0}, "response")
    assert info.value.status == 400 and info.value.param == "response.max_output_tokens"


def test_the_dialect_caps_a_response_and_keeps_a_session_cap() -> None:
    dialect = RealtimeDialect()
    body: dict[str, Any] = {"type": "response.create"}
    assert dialect.declare(body).output_cap is None
    dialect.cap_output(body, 100_000)
    assert body["response"] == {"max_output_tokens": 4096}
    dialect.cap_output(body := {"type": "response.create", "response": {"x": 1}}, 300)
    assert body["response"] == {"x": 1, "max_output_tokens": 300}
    dialect.session = {"max_response_output_tokens": 77, "modalities": ["text"]}  # a beta session
    declared = dialect.declare({"type": "response.create"})
    assert declared.output_cap == 77 and not declared.audio
    assert dialect.declare({"type": "response.create", "response": {"output_modalities": ["audio"]}}).audio


def test_the_mock_peer_answers_in_audio_by_default_and_stops_at_the_cap() -> None:
    async def run() -> list[dict[str, Any]]:
        peer = MockRealtimePeer("m")
        await peer.send(json.dumps({"type": "conversation.item.create", "item": {"content": [{"text": "a b c"}]}}))
        await peer.send(json.dumps({"type": "response.create", "response": {"max_output_tokens": 4}}))
        seen = []
        while not seen or seen[-1]["type"] != "response.done":
            seen.append(json.loads(await peer.recv()))
        await peer.close()
        return seen

    seen = asyncio.run(run())
    audio = [e["delta"] for e in seen if e["type"] == "response.output_audio.delta"]
    assert audio == [tone_chunk(), tone_chunk()]  # 2 tokens a chunk, capped at 4
    done = seen[-1]["response"]
    assert done["status"] == "incomplete" and done["usage"]["output_token_details"]["audio_tokens"] == 4


def test_the_mock_peer_refuses_a_second_response_naming_the_event() -> None:
    async def run() -> dict[str, Any]:
        peer = MockRealtimePeer("m")
        await peer.send(json.dumps({"type": "response.create"}))
        await peer.send(json.dumps({"type": "response.create", "event_id": "e2"}))
        while True:
            event = json.loads(await peer.recv())
            if event["type"] == "error":
                await peer.close()
                return event

    assert asyncio.run(run())["error"]["event_id"] == "e2"


def test_the_outbox_is_bounded_in_bytes_and_a_cleared_one_lets_a_waiting_put_through() -> None:
    from server.realtime.outbox import Outbox

    async def run() -> tuple[bool, bool, str]:
        box = Outbox(100)
        await box.put("x" * 150)  # one event always fits
        waiting = asyncio.get_running_loop().create_task(box.put("y"))
        await asyncio.sleep(0.01)
        blocked = not waiting.done()
        first = await box.get()
        await asyncio.sleep(0.01)
        through = waiting.done()
        box.clear()
        return blocked, through, first

    blocked, through, first = asyncio.run(run())
    assert blocked and through and first == "x" * 150


def test_the_restart_rule_bills_a_cut_response_from_its_checkpoint_and_not_its_session() -> None:
    from server.gateway import recovery
    from server.store.protocol import Interrupted

    card = dict(GPT_REALTIME.card)
    checkpoint = {Unit.INPUT_TOKENS: 20, Unit.OUTPUT_TOKENS: 40, Unit.AUDIO_OUTPUT_TOKENS: 40}
    cut = Interrupted("r1", "prj", "key", "m", True, 100, 0, "r1", card, session_id="s1", checkpoint_usage=checkpoint)
    billed = recovery(cut)
    assert billed.usage == Usage(checkpoint, estimated=True)
    assert billed.charge_micro == charge(Usage(checkpoint), GPT_REALTIME).micro > 0
    session = Interrupted("s1", "prj", "key", "m", False, 0, None, None, {}, session_id="s1")
    assert recovery(session).usage is None and recovery(session).charge_micro == 0
