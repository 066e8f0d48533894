"""`file_id` content blocks in chat and Responses, resolved to the file's bytes in each provider kind's own
shape (inline data for OpenAI-compatible upstreams, image and document blocks for Anthropic, inlineData
for Gemini), and remote image URLs fetched for Gemini under the outbound URL rules. One gateway with a
provider of every kind behind it (tests/support/front_doors.py)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.support.front_doors import FrontDoors, model_of, running_front_doors
from tests.upstreams import openai_media

FETCH_RULES = '\n[files]\nfetch_allow_networks = ["127.0.0.0/8"]\nfetch_allow_http = true\n'
PNG = openai_media.tiny_png("a file of the project")
TEXT = b"Quarterly numbers: up 12 %."


@pytest.fixture(scope="module")
def doors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontDoors]:
    with running_front_doors(tmp_path_factory.mktemp("file-ids"), FETCH_RULES) as front:
        yield front


@pytest.fixture()
def fd(doors: FrontDoors) -> FrontDoors:
    doors.clear()
    return doors


@pytest.fixture(scope="module")
def sdk(doors: FrontDoors) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{doors.gw.url}/v1", api_key=doors.key, max_retries=0)


@pytest.fixture(scope="module")
def files(sdk: openai.OpenAI) -> dict[str, str]:
    image = sdk.files.create(file=("chart.png", PNG, "image/png"), purpose="vision")
    text = sdk.files.create(file=("notes.txt", TEXT, "text/plain"), purpose="user_data")
    return {"image": image.id, "text": text.id}


def _last_sent(fd: FrontDoors, kind: str) -> dict[str, Any]:
    up = fd.upstream(kind)
    assert up is not None
    return up.received()[-1]["json"]


def _ask(sdk: openai.OpenAI, kind: str, parts: list[dict[str, Any]]) -> str:
    content = [{"type": "text", "text": "what is in these?"}, *parts]
    answer = sdk.chat.completions.create(model=model_of(kind), messages=[{"role": "user", "content": content}])
    return answer.choices[0].message.content or ""


def test_file_ids_reach_an_openai_upstream_as_inline_data(
    fd: FrontDoors, sdk: openai.OpenAI, files: dict[str, str]
) -> None:
    _ask(sdk, "openai", [{"type": "file", "file": {"file_id": files["image"]}},
                         {"type": "file", "file": {"file_id": files["text"]}}])  # fmt: skip
    parts = _last_sent(fd, "openai")["messages"][0]["content"]
    assert parts[1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
    }
    assert parts[2]["type"] == "file" and parts[2]["file"]["filename"] == "notes.txt"
    assert parts[2]["file"]["file_data"] == "data:text/plain;base64," + base64.b64encode(TEXT).decode()


def test_file_ids_reach_anthropic_as_image_and_document_blocks(
    fd: FrontDoors, sdk: openai.OpenAI, files: dict[str, str]
) -> None:
    _ask(sdk, "anthropic", [{"type": "file", "file": {"file_id": files["image"]}},
                            {"type": "file", "file": {"file_id": files["text"]}}])  # fmt: skip
    blocks = _last_sent(fd, "anthropic")["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
    }
    assert blocks[2] == {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": TEXT.decode()},
    }


def test_file_ids_reach_gemini_as_inline_data(fd: FrontDoors, sdk: openai.OpenAI, files: dict[str, str]) -> None:
    _ask(sdk, "gemini", [{"type": "file", "file": {"file_id": files["image"]}}])
    parts = _last_sent(fd, "gemini")["contents"][0]["parts"]
    assert {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}} in parts


def test_the_mock_answers_with_a_file_id_too(sdk: openai.OpenAI, files: dict[str, str]) -> None:
    assert _ask(sdk, "mock", [{"type": "file", "file": {"file_id": files["image"]}}]).startswith("Mock reply")


def test_responses_input_file_and_input_image_by_file_id(
    fd: FrontDoors, sdk: openai.OpenAI, files: dict[str, str]
) -> None:
    content = [
        {"type": "input_text", "text": "summarise"},
        {"type": "input_file", "file_id": files["text"]},
        {"type": "input_image", "file_id": files["image"], "detail": "auto"},
    ]
    sdk.responses.create(model=model_of("openai"), input=[{"role": "user", "content": content}])  # type: ignore[misc]
    sent = _last_sent(fd, "openai")["input"][0]["content"]
    assert sent[1] == {
        "type": "input_file",
        "filename": "notes.txt",
        "file_data": "data:text/plain;base64," + base64.b64encode(TEXT).decode(),
    }
    assert sent[2]["image_url"].startswith("data:image/png;base64,") and "file_id" not in sent[2]
    sdk.responses.create(model=model_of("anthropic"), input=[{"role": "user", "content": content}])  # type: ignore[misc]
    blocks = _last_sent(fd, "anthropic")["messages"][0]["content"]
    assert [b["type"] for b in blocks] == ["text", "document", "image"]


def test_remote_images_are_fetched_for_gemini_under_the_outbound_rules(fd: FrontDoors, sdk: openai.OpenAI) -> None:
    url = f"{fd.openai_up.root_url}/_media/cat.png"
    _ask(sdk, "gemini", [{"type": "image_url", "image_url": {"url": url}}])
    parts = _last_sent(fd, "gemini")["contents"][0]["parts"]
    expected = base64.b64encode(openai_media.tiny_png("/_media/cat.png")).decode()
    assert {"inlineData": {"mimeType": "image/png", "data": expected}} in parts
    _ask(sdk, "openai", [{"type": "image_url", "image_url": {"url": url}}])  # OpenAI fetches URLs itself
    assert _last_sent(fd, "openai")["messages"][0]["content"][1]["image_url"]["url"] == url
    gemini_calls = len(fd.gemini_up.received())
    for refused in ("http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/x.png"):
        with pytest.raises(openai.BadRequestError) as info:
            _ask(sdk, "gemini", [{"type": "image_url", "image_url": {"url": refused}}])
        assert info.value.code == "url_not_fetched" and "address" in info.value.message
    assert len(fd.gemini_up.received()) == gemini_calls  # refused before anything was sent


def test_an_unknown_file_id_is_404_and_nothing_is_sent(fd: FrontDoors, sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        _ask(sdk, "openai", [{"type": "file", "file": {"file_id": "file-doesnotexist"}}])
    assert info.value.code == "file_not_found"
    assert fd.openai_up.received() == []


def test_anthropic_and_gemini_take_images_in_but_make_no_media(fd: FrontDoors, sdk: openai.OpenAI) -> None:
    for kind in ("anthropic", "gemini"):
        with pytest.raises(openai.BadRequestError) as info:
            sdk.images.generate(model=model_of(kind), prompt="a cat")
        assert info.value.code == "model_not_supported"
        with pytest.raises(openai.BadRequestError) as info:
            sdk.audio.transcriptions.create(model=model_of(kind), file=("a.wav", b"RIFF" + bytes(100)))
        assert info.value.code == "model_not_supported"
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(
            model=model_of("anthropic"),
            messages=[
                {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}
            ],  # type: ignore[list-item]
        )
    assert info.value.code == "audio_not_supported_by_model"
    assert fd.anthropic_up.received() == [] and fd.gemini_up.received() == []
