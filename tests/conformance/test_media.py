"""The media routes against OpenAI's schema: images (b64_json from a passed-through OpenAI upstream, url
from the mock), transcriptions (json and verbose_json), the Files API (upload, list, retrieve, delete) and
the video API (create, retrieve, list, delete), plus the gateway's own 404s for files and videos."""

from __future__ import annotations

import time

import pytest

from tests.conformance.client import ConformanceClient
from tests.support.front_doors import model_of

AUDIO = b"RIFF" + bytes(32_000)


@pytest.mark.parametrize(("kind", "fmt"), [("openai", "b64_json"), ("mock", "url"), ("mock", "b64_json")])
def test_an_images_answer_conforms(api: ConformanceClient, kind: str, fmt: str) -> None:
    body = {"model": model_of(kind), "prompt": "a lighthouse", "n": 2, "response_format": fmt}
    answer = api.json("POST", "/images/generations", body)
    assert len(answer["data"]) == 2 and all(fmt in item for item in answer["data"])


TRANSCRIPT_SCHEMAS = {
    "json": "CreateTranscriptionResponseJson",
    "verbose_json": "CreateTranscriptionResponseVerboseJson",
}


@pytest.mark.parametrize("kind", ["openai", "mock"])
@pytest.mark.parametrize("fmt", ["json", "verbose_json"])
def test_a_transcription_conforms(api: ConformanceClient, kind: str, fmt: str) -> None:
    """The route's answer is a union in the document (one member per format): checked against the member."""
    form = {"model": model_of(kind), "response_format": fmt}
    response = api.http.post("/audio/transcriptions", files={"file": ("a.wav", AUDIO)}, data=form)
    assert response.status_code == 200, response.text
    answer = response.json()
    api.spec.check(TRANSCRIPT_SCHEMAS[fmt], answer)
    assert answer["text"] and answer["usage"]["type"] == "duration"


def test_the_files_api_conforms(api: ConformanceClient) -> None:
    kept = api.json("POST", "/files", files={"file": ("notes.txt", b"conformance")}, data={"purpose": "user_data"})
    assert kept["bytes"] == 11 and kept["object"] == "file"
    assert api.json("GET", f"/files/{kept['id']}")["id"] == kept["id"]
    listed = api.json("GET", "/files", params={"purpose": "user_data", "limit": 100})
    assert kept["id"] in [item["id"] for item in listed["data"]]
    assert api.json("DELETE", f"/files/{kept['id']}") == {"id": kept["id"], "object": "file", "deleted": True}
    api.error("GET", f"/files/{kept['id']}", 404)


def test_the_video_api_conforms(api: ConformanceClient) -> None:
    created = api.json("POST", "/videos", files={"x": (None, "")}, data={"model": model_of("mock"), "prompt": "dawn"})
    assert created["status"] == "queued"
    for _ in range(100):
        video = api.json("GET", f"/videos/{created['id']}")
        if video["status"] == "completed":
            break
        time.sleep(0.1)
    assert video["status"] == "completed" and video["progress"] == 100
    assert created["id"] in [item["id"] for item in api.json("GET", "/videos")["data"]]
    assert api.json("DELETE", f"/videos/{created['id']}")["deleted"] is True
    api.error("GET", f"/videos/{created['id']}", 404)
