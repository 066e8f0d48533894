"""The gateway through the official openai SDK, against a real server process and a stand-in upstream."""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.support.gateway import GatewayProcess
from tests.upstreams.openai_upstream import UpstreamProcess, expected_embedding, expected_reply

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello gateway"}]


@pytest.fixture(scope="module")
def key(gateway: GatewayProcess) -> str:
    return gateway.new_key("sdk")


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def cost_micro(input_tokens: int, output_tokens: int, input_rate: int, output_rate: int) -> int:
    return -(-(input_tokens * input_rate + output_tokens * output_rate) // 1_000_000)


def test_models_list_shows_configured_models_with_prices(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert {"gpt-4o-mini", "text-embedding-3-small", "mock-chat", "mock-embed"} <= set(models)
    extra = models["gpt-4o-mini"].model_extra or {}
    assert extra["pricing"]["input"] == 0.15
    assert extra["pricing"]["output"] == 0.6
    assert "chat" in extra["capabilities"]
    assert client.models.retrieve("mock-embed").id == "mock-embed"


def test_unknown_model_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_bad_key_is_401_invalid_api_key(gateway: GatewayProcess) -> None:
    bad = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="gw_live_not-a-real-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.code == "invalid_api_key"
    assert info.value.body["type"] == "authentication_error"  # type: ignore[index]


def test_chat_is_forwarded_with_unknown_fields_and_metered(
    gateway: GatewayProcess, client: openai.OpenAI, fresh_upstream: UpstreamProcess
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, temperature=0.2, extra_body={"vendor_knob": {"a": [1, 2]}}
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == expected_reply(MESSAGES)
    sent = fresh_upstream.received()[-1]
    assert sent["json"]["model"] == "gpt-4o-mini-2024-07-18"
    assert sent["json"]["vendor_knob"] == {"a": [1, 2]}
    assert sent["json"]["temperature"] == 0.2
    assert sent["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    usage = completion.usage
    assert usage is not None
    expected = cost_micro(usage.prompt_tokens, usage.completion_tokens, 150_000, 600_000)
    assert (usage.model_extra or {})["cost"] == pytest.approx(expected / 1e6)
    assert raw.headers["x-model-used"] == "gpt-4o-mini-2024-07-18"
    request_id = raw.headers["x-request-id"]
    uuid.UUID(request_id)
    row = gateway.admin(f"/requests/{request_id}")
    assert row["status"] == "ok"
    assert row["cost_micro"] == expected
    assert row["input_tokens"] == usage.prompt_tokens
    assert row["output_tokens"] == usage.completion_tokens
    assert raw.headers["x-credits-used"] == f"{expected / 1e6:.6f}".rstrip("0").rstrip(".")


def test_stream_without_include_usage_has_no_usage_chunk_but_is_metered(
    gateway: GatewayProcess, client: openai.OpenAI, fresh_upstream: UpstreamProcess
) -> None:
    request_id = str(uuid.uuid4())
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers={"x-request-id": request_id}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected_reply(MESSAGES)
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    assert fresh_upstream.received()[-1]["json"]["stream_options"] == {"include_usage": True}
    row = gateway.admin(f"/requests/{request_id}")
    assert row["status"] == "ok" and row["stream"] is True
    assert row["output_tokens"] > 0 and row["cost_micro"] > 0 and not row["estimated"]


def test_stream_with_include_usage_ends_with_usage_and_cost(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens > 0
    assert (last.usage.model_extra or {})["cost"] > 0
    assert all(c.usage is None for c in chunks[:-1])


def test_tool_calls_stream_and_not(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    done = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=tools)  # type: ignore[arg-type]
    call = done.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert done.choices[0].finish_reason == "tool_calls"
    with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES, tools=tools) as stream:  # type: ignore[arg-type]
        final = stream.get_final_completion()
    streamed = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert streamed.function.name == "get_weather"
    assert streamed.function.arguments == call.function.arguments  # type: ignore[union-attr]


def test_mock_provider_answers_tool_calls_without_network(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    done = client.chat.completions.create(model="mock-chat", messages=MESSAGES, tools=tools)  # type: ignore[arg-type]
    assert done.choices[0].message.tool_calls[0].function.name == "lookup"  # type: ignore[index,union-attr]
    plain = client.chat.completions.create(model="mock-chat", messages=MESSAGES)
    assert plain.choices[0].message.content == "Mock reply: hello gateway"


def test_embeddings_batch_with_sdk_default_base64(
    client: openai.OpenAI, gateway: GatewayProcess, fresh_upstream: UpstreamProcess
) -> None:
    inputs = ["alpha", "beta", "gamma"]
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=inputs)
    result = raw.parse()
    assert fresh_upstream.received()[-1]["json"]["encoding_format"] == "base64"
    assert [d.index for d in result.data] == [0, 1, 2]
    for item, datum in zip(inputs, result.data, strict=True):
        assert datum.embedding == pytest.approx(expected_embedding(item))
    row = gateway.admin(f"/requests/{raw.headers['x-request-id']}")
    assert row["endpoint"] == "embeddings" and row["input_tokens"] == result.usage.prompt_tokens
    mock = client.embeddings.create(model="mock-embed", input="same")
    again = client.embeddings.create(model="mock-embed", input="same")
    assert mock.data[0].embedding == again.data[0].embedding


def test_malformed_json_is_400_not_500(gateway: GatewayProcess, key: str) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=b'{"model": "gpt-4o-mini", "messages": [',
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_missing_messages_is_400_with_param(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert info.value.param == "messages"


def test_oversized_body_is_413(gateway: GatewayProcess, key: str) -> None:
    big = "x" * 70_000  # the test config caps bodies at 65,536 bytes
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": big}]},
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert "x-request-id" in response.headers


def test_request_id_is_echoed_when_well_formed(gateway: GatewayProcess, key: str) -> None:
    mine = str(uuid.uuid4())
    headers = {"authorization": f"Bearer {key}"}
    echoed = httpx.get(f"{gateway.url}/v1/models", headers={**headers, "x-request-id": mine})
    assert echoed.headers["x-request-id"] == mine
    replaced = httpx.get(f"{gateway.url}/v1/models", headers={**headers, "x-request-id": "not a uuid"})
    assert replaced.headers["x-request-id"] != "not a uuid"
    uuid.UUID(replaced.headers["x-request-id"])
    unknown = httpx.get(f"{gateway.url}/v1/nothing-here", headers=headers)
    assert unknown.status_code == 404
    uuid.UUID(unknown.headers["x-request-id"])
    assert unknown.json()["error"]["type"] == "not_found_error"


def test_api_v1_base_path_serves_the_same_routes(gateway: GatewayProcess, key: str) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key=key, max_retries=0)
    assert client.chat.completions.create(model="mock-chat", messages=MESSAGES).choices[0].message.content
    assert client.embeddings.create(model="mock-embed", input=["a", "b"]).data[1].index == 1
    assert any(m.id == "mock-chat" for m in client.models.list())


def test_upstream_5xx_is_retried_then_502_in_openai_shape_and_recorded(
    gateway: GatewayProcess, client: openai.OpenAI, fresh_upstream: UpstreamProcess
) -> None:
    fresh_upstream.set_behavior(status=500, times=1)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    row = gateway.admin(f"/requests/{raw.headers['x-request-id']}")
    assert [a["status"] for a in row["attempts"]] == [500, 200]  # one bounded retry after a backoff
    fresh_upstream.set_behavior(status=500, times=2)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.status_code == 502
    assert "500" in info.value.message and "2 attempts" in info.value.message
    row = gateway.admin(f"/requests/{info.value.response.headers['x-request-id']}")
    assert row["status"] == "upstream_failed"
    assert [a["status"] for a in row["attempts"]] == [500, 500]
    assert row["cost_micro"] is None


def test_upstream_4xx_is_passed_on_not_retried(client: openai.OpenAI, fresh_upstream: UpstreamProcess) -> None:
    fresh_upstream.set_behavior(status=400, times=1)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(fresh_upstream.received()) == 1


def test_upstream_refusing_our_credentials_is_a_502_not_the_clients_401(
    client: openai.OpenAI, fresh_upstream: UpstreamProcess
) -> None:
    fresh_upstream.set_behavior(status=401, times=1)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.status_code == 502
    assert "credentials" in info.value.message


def test_stream_broken_mid_way_ends_with_error_event_and_is_metered(
    gateway: GatewayProcess, client: openai.OpenAI, fresh_upstream: UpstreamProcess
) -> None:
    fresh_upstream.set_behavior(fail_after_chunks=3, times=1)
    request_id = str(uuid.uuid4())
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers={"x-request-id": request_id}
        ):
            received.append(chunk)
    assert len(received) == 3
    row = gateway.admin(f"/requests/{request_id}")
    assert row["status"] == "upstream_failed"
    assert row["estimated"] == 1 and row["cost_micro"] > 0


def test_client_disconnect_cancels_upstream_and_bills_what_was_delivered(
    gateway: GatewayProcess, key: str, fresh_upstream: UpstreamProcess
) -> None:
    fresh_upstream.set_behavior(chunk_delay_ms=300, times=1)
    request_id = str(uuid.uuid4())
    long_messages = [{"role": "user", "content": "one two three four five six seven eight nine ten"}]
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST",
            f"{gateway.url}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": long_messages, "stream": True},
            headers={"authorization": f"Bearer {key}", "x-request-id": request_id},
        ) as response,
    ):
        lines = response.iter_lines()
        got = [line for line in (next(lines) for _ in range(4)) if line.startswith("data:")]
        assert got  # some chunks arrived; now the client goes away mid-stream
    deadline = time.monotonic() + 10
    row = gateway.admin(f"/requests/{request_id}")
    while row["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.1)
        row = gateway.admin(f"/requests/{request_id}")
    assert row["status"] == "client_disconnected"
    assert row["estimated"] == 1 and row["cost_micro"] > 0  # input plus the output delivered
