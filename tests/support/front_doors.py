"""One gateway with a provider of every kind behind it, for the front-door end-to-end tests.

Four providers (the OpenAI, Anthropic and Gemini stand-ins, and the built-in mock), one public model
routed to each (`via-openai`, `via-anthropic`, `via-gemini`, `via-mock`), all at the same price so
metering can be checked the same way on every front door: input 3, output 15 per 1M tokens, i.e.
exactly 3 and 15 micro-units per token.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.gateway import GatewayProcess
from tests.upstreams.anthropic_upstream import AnthropicUpstreamProcess, start_anthropic_process
from tests.upstreams.gemini_upstream import GeminiUpstreamProcess, start_gemini_upstream
from tests.upstreams.openai_upstream import UpstreamProcess, start_upstream_process

KINDS = ("openai", "anthropic", "gemini", "mock")
HTTP_KINDS = ("openai", "anthropic", "gemini")
UPSTREAM_MODEL = {
    "openai": "gpt-4o-mini-2024-07-18",
    "anthropic": "claude-3-5-haiku-20241022",
    "gemini": "gemini-2.0-flash",
    "mock": "mock-chat",
}
SECRETS = {
    "FD_OPENAI_KEY": "sk-openai-standin-secret",
    "FD_ANTHROPIC_KEY": "sk-ant-standin-secret",
    "FD_GEMINI_KEY": "gemini-standin-secret",
}
REPLY_PREFIX = {  # each upstream's deterministic reply is this prefix plus the last user text
    "openai": "upstream reply to: ",
    "anthropic": "anthropic reply to: ",
    "gemini": "gemini reply to: ",
    "mock": "Mock reply: ",
}
TOOL_ARGS: dict[str, dict[str, Any]] = {  # the arguments each upstream puts in its tool call
    "openai": {"x": 1},
    "anthropic": {"x": 1},
    "gemini": {"x": 1},
    "mock": {"input": "mock"},
}
INPUT_MICRO, OUTPUT_MICRO = 3, 15  # per token, from the price card below


def model_of(kind: str) -> str:
    return f"via-{kind}"


def expected_text(kind: str, last_user_text: str) -> str:
    return REPLY_PREFIX[kind] + last_user_text


def cost_micro(input_tokens: int, output_tokens: int) -> int:
    return INPUT_MICRO * input_tokens + OUTPUT_MICRO * output_tokens


def new_request_id() -> str:
    return str(uuid.uuid4())


def config(openai_up: UpstreamProcess, anthropic_up: AnthropicUpstreamProcess, gemini_up: GeminiUpstreamProcess) -> str:
    timeouts = "timeouts = { connect = 2, first_byte = 10, total = 30 }"
    price = "price = { input = 3.0, output = 15.0 }"
    models = "".join(
        f'\n[[models]]\nname = "{model_of(kind)}"\ntargets = ["{kind}:{UPSTREAM_MODEL[kind]}"]\n{price}\n'
        for kind in KINDS
    )
    return f"""
[plans.default]
rpm = {{ chat = 100000, embeddings = 100000 }}

[[providers]]
name = "openai"
kind = "openai"
base_url = "{openai_up.base_url}"
api_key_env = "FD_OPENAI_KEY"
{timeouts}

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{anthropic_up.base_url}"
api_key_env = "FD_ANTHROPIC_KEY"
{timeouts}

[[providers]]
name = "gemini"
kind = "gemini"
base_url = "{gemini_up.base_url}"
api_key_env = "FD_GEMINI_KEY"
{timeouts}

[[providers]]
name = "mock"
kind = "mock"
{models}"""


@dataclass
class FrontDoors:
    """The gateway, its stand-ins and a key for a project allowed every model."""

    gw: GatewayProcess
    openai_up: UpstreamProcess
    anthropic_up: AnthropicUpstreamProcess
    gemini_up: GeminiUpstreamProcess
    key: str

    def upstream(self, kind: str) -> UpstreamProcess | None:
        return {"openai": self.openai_up, "anthropic": self.anthropic_up, "gemini": self.gemini_up}.get(kind)

    def clear(self) -> None:
        for up in (self.openai_up, self.anthropic_up, self.gemini_up):
            up.clear()

    def received(self, kind: str) -> list[dict[str, Any]]:
        """What the stand-in behind `kind` was sent (nothing for the mock, which has no wire)."""
        up = self.upstream(kind)
        return up.received() if up else []

    def last_sent(self, kind: str) -> dict[str, Any]:
        received = self.received(kind)
        assert received, f"nothing reached the {kind} stand-in"
        return received[-1]

    def assert_metered(
        self,
        request_id: str,
        *,
        endpoint: str,
        kind: str,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        stream: bool = False,
    ) -> dict[str, Any]:
        """The request row: ok, served by `kind`'s target, with exact (not estimated) usage and its cost."""
        row: dict[str, Any] = self.gw.admin(f"/requests/{request_id}")
        assert row["status"] == "ok", row
        assert row["endpoint"] == endpoint
        assert row["model"] == model_of(kind)
        assert (row["provider"], row["upstream_model"]) == (kind, UPSTREAM_MODEL[kind])
        assert row["stream"] is stream
        assert [a["status"] for a in row["attempts"]] == [200]
        assert not row["estimated"]
        assert row["input_tokens"] > 0 and row["output_tokens"] > 0
        if input_tokens is not None:
            assert row["input_tokens"] == input_tokens
        if output_tokens is not None:
            assert row["output_tokens"] == output_tokens
        assert row["cost_micro"] == cost_micro(row["input_tokens"], row["output_tokens"])
        return row


def credits(micro: int) -> str:
    """The x-credits-used header's spelling of an amount."""
    return f"{micro / 1e6:.6f}".rstrip("0").rstrip(".")


@contextmanager
def running_front_doors(directory: Path, extra_config: str = "") -> Iterator[FrontDoors]:
    """Start the three stand-ins and a gateway (the `config` above plus `extra_config`) on 127.0.0.1;
    every process is ended by its own handle on exit, the gateway first."""
    with ExitStack() as stack:
        openai_up = start_upstream_process()
        stack.callback(openai_up.stop)
        anthropic_up = start_anthropic_process()
        stack.callback(anthropic_up.stop)
        gemini_up = start_gemini_upstream()
        stack.callback(gemini_up.stop)
        gw = GatewayProcess(directory, config(openai_up, anthropic_up, gemini_up) + extra_config, SECRETS)
        stack.callback(gw.stop)
        gw.start()
        yield FrontDoors(gw, openai_up, anthropic_up, gemini_up, gw.new_key("front-doors"))
