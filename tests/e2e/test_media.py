"""Images, audio, files and jobs end to end: the official openai SDK against a real gateway process, with
the OpenAI stand-in (its media routes speak OpenAI's wire formats, multipart included, and record what they
received) and the built-in mock behind it. One gateway for the module; each test uses its own project."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.gateway import GatewayProcess
from tests.support.uploads import upload_large
from tests.upstreams import openai_media
from tests.upstreams.openai_upstream import UpstreamProcess, start_upstream_process

UPSTREAM_SECRET = "sk-media-standin-secret"
IMAGE_PRICES = '{ "1024x1024" = 0.04, "1024x1024/hd" = 0.08 }'


def config(up: UpstreamProcess) -> str:
    rpm = "{ chat = 100000, images = 100000, audio = 100000, files = 100000, video = 100000 }"
    return f"""
[plans.default]
rpm = {rpm}

[plans.tiny]
rpm = {{ chat = 100000, images = 2, audio = 3, files = 100000, video = 100000 }}
storage_mb = 1

[jobs]
poll_interval_s = 0.2

[[providers]]
name = "up"
kind = "openai"
base_url = "{up.base_url}"
api_key_env = "MEDIA_UPSTREAM_KEY"
timeouts = {{ connect = 2, first_byte = 10, total = 30 }}

[[providers]]
name = "mock"
kind = "mock"
job_seconds = 0.6

[[models]]
name = "img"
targets = ["up:dall-e-3"]
price = {{ per_image = {IMAGE_PRICES} }}
capabilities = ["images"]

[[models]]
name = "img-mock"
targets = ["mock:img"]
price = {{ per_image = {IMAGE_PRICES} }}

[[models]]
name = "tts"
targets = ["up:tts-1"]
price = {{ per_1m_characters = 15 }}

[[models]]
name = "stt"
targets = ["up:whisper-1"]
price = {{ per_minute_audio = 0.006 }}

[[models]]
name = "vid"
targets = ["up:sora-2"]
price = {{ per_second_video = 0.1 }}

[[models]]
name = "vid-mock"
targets = ["mock:vid"]
price = {{ per_second_video = 0.1 }}

[[models]]
name = "music-mock"
targets = ["mock:music"]
price = {{ per_second_music = 0.02 }}

[[models]]
name = "chat"
targets = ["mock:chat"]
price = {{ input = 1, output = 2 }}
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamProcess]:
    up = start_upstream_process()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def gw(upstream: UpstreamProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(
        tmp_path_factory.mktemp("media"), config(upstream), {"MEDIA_UPSTREAM_KEY": UPSTREAM_SECRET}
    )
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture()
def up(upstream: UpstreamProcess) -> UpstreamProcess:
    upstream.clear()
    return upstream


def project_key(gw: GatewayProcess, plan: str | None = None) -> tuple[str, str]:
    """A new project (on `plan`) and a key for it: (project id, key)."""
    name = f"media-{uuid.uuid4().hex[:8]}"
    args = ["projects", "create", name] + (["--plan", plan] if plan else [])
    project = gw.cli_json(*args)
    return project["id"], str(gw.cli_json("keys", "create", "--project", name)["key"])


def client(gw: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)


def rows(gw: GatewayProcess, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(gw.database) as conn:
        return conn.execute(sql, args).fetchall()


def usage_of(gw: GatewayProcess, project_id: str) -> list[tuple[str, int, dict[str, int]]]:
    """(model, cost, quantities) of every usage row of the project, oldest first; each with its ledger debit."""
    found = rows(
        gw,
        "SELECT u.model, u.cost_micro, u.quantities, l.amount_micro FROM usage u"
        " JOIN ledger l ON l.kind = 'usage' AND l.source_id = u.request_id WHERE u.project_id = ? ORDER BY u.rowid",
        (project_id,),
    )
    assert all(debit == -cost for _, cost, _, debit in found), found
    return [(model, cost, json.loads(quantities or "{}")) for model, cost, quantities, _ in found]


def received(up: UpstreamProcess, path: str) -> list[dict[str, Any]]:
    return [r for r in up.received() if r["path"] == path]


# ------------------------------------------------------------------------------------------------ images


def test_image_url_answers_point_at_stored_files_fetched_without_a_key(gw: GatewayProcess, up: UpstreamProcess) -> None:
    project, key = project_key(gw)
    answer = client(gw, key).images.generate(model="img", prompt="a red fox", n=2, size="1024x1024", quality="hd")
    assert len(answer.data) == 2 and all(d.b64_json is None for d in answer.data)
    sent = received(up, "/v1/images/generations")[0]
    assert sent["json"]["response_format"] == "b64_json" and sent["json"]["model"] == "dall-e-3"
    assert sent["headers"]["authorization"] == f"Bearer {UPSTREAM_SECRET}"
    for index, item in enumerate(answer.data):
        assert item.url is not None and item.url.startswith(f"{gw.url}/v1/files/file-")
        fetched = httpx.get(item.url)  # no key: the signature is the credential
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
        assert fetched.content == openai_media.tiny_png(f"a red fox|{index}")
    url = answer.data[0].url
    assert url is not None
    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
    assert httpx.get(tampered).status_code == 403
    later = url.replace("expires=", "expires=9")  # a longer life is not for the taking
    assert httpx.get(later).json()["error"]["code"] == "signed_url_invalid"
    [(model, cost, quantities)] = usage_of(gw, project)
    assert (model, cost, quantities["images:1024x1024/hd"]) == ("img", 160_000, 2)
    assert quantities["stored_bytes"] == sum(len(openai_media.tiny_png(f"a red fox|{i}")) for i in range(2))
    stored = rows(gw, "SELECT purpose, source FROM files WHERE project_id = ?", (project,))
    assert stored == [("assistants_output", "image")] * 2


def test_image_b64_answers_carry_the_bytes_and_are_priced_by_size(gw: GatewayProcess, up: UpstreamProcess) -> None:
    project, key = project_key(gw)
    answer = client(gw, key).images.generate(model="img", prompt="a blue whale", response_format="b64_json")
    assert base64.b64decode(answer.data[0].b64_json or "") == openai_media.tiny_png("a blue whale|0")
    assert received(up, "/v1/images/generations")[0]["json"]["response_format"] == "b64_json"
    assert usage_of(gw, project) == [("img", 40_000, {"images:1024x1024": 1})]
    assert rows(gw, "SELECT COUNT(*) FROM files WHERE project_id = ?", (project,)) == [(0,)]


def test_image_edits_are_restreamed_upstream_as_multipart(gw: GatewayProcess, up: UpstreamProcess) -> None:
    project, key = project_key(gw)
    image, mask = os.urandom(300_000), os.urandom(1000)
    answer = client(gw, key).images.edit(
        model="img",
        prompt="add a hat",
        image=("cat.png", image, "image/png"),
        mask=("mask.png", mask, "image/png"),
        response_format="b64_json",
    )
    assert base64.b64decode(answer.data[0].b64_json or "") == openai_media.tiny_png("add a hat|0")
    form = received(up, "/v1/images/edits")[0]["form"]
    assert form["fields"]["model"] == ["dall-e-3"] and form["fields"]["prompt"] == ["add a hat"]
    sent = {f["field"]: (f["filename"], f["size"], f["sha256"]) for f in form["files"]}
    assert sent["image"] == ("cat.png", len(image), hashlib.sha256(image).hexdigest())
    assert sent["mask"] == ("mask.png", len(mask), hashlib.sha256(mask).hexdigest())
    assert usage_of(gw, project) == [("img", 40_000, {"images:1024x1024": 1})]


def test_the_mock_draws_a_real_png_from_the_prompt(gw: GatewayProcess) -> None:
    _, key = project_key(gw)
    first = client(gw, key).images.generate(model="img-mock", prompt="same prompt", response_format="b64_json")
    again = client(gw, key).images.generate(model="img-mock", prompt="same prompt", response_format="b64_json")
    data = base64.b64decode(first.data[0].b64_json or "")
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[16:24] == (1024).to_bytes(4, "big") * 2
    assert first.data[0].b64_json == again.data[0].b64_json


def test_a_prompt_over_4000_characters_is_refused_before_anything_is_sent(
    gw: GatewayProcess, up: UpstreamProcess
) -> None:
    _, key = project_key(gw)
    with pytest.raises(openai.BadRequestError) as info:
        client(gw, key).images.generate(model="img", prompt="x" * 4001)
    assert (info.value.code, info.value.param) == ("too_long", "prompt")
    assert received(up, "/v1/images/generations") == []


# ------------------------------------------------------------------------------------------------- audio


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_speech_streams_audio_with_its_content_type(
    gw: GatewayProcess, up: UpstreamProcess, fmt: str, tmp_path: Path
) -> None:
    project, key = project_key(gw)
    text = "The quick brown fox jumps over the lazy dog."
    target = tmp_path / f"speech.{fmt}"
    with client(gw, key).audio.speech.with_streaming_response.create(
        model="tts",
        voice="alloy",
        input=text,
        response_format=fmt,  # type: ignore[arg-type]
    ) as response:
        assert response.headers["content-type"] == openai_media.SPEECH_TYPES[fmt]
        response.stream_to_file(target)
    assert target.read_bytes() == openai_media.speech_bytes(fmt, text)
    assert received(up, "/v1/audio/speech")[0]["json"]["model"] == "tts-1"
    assert usage_of(gw, project) == [("tts", math.ceil(len(text) * 15), {"speech_characters": len(text)})]


AUDIO = b"RIFF" + os.urandom(64_000)  # not a WAV header: the reservation uses the size bound


@pytest.mark.parametrize("fmt", ["json", "text", "srt", "verbose_json", "vtt"])
def test_transcriptions_in_every_format(gw: GatewayProcess, up: UpstreamProcess, fmt: str) -> None:
    project, key = project_key(gw)
    answer: Any = client(gw, key).audio.transcriptions.create(
        model="stt",
        file=("talk.mp3", AUDIO),
        response_format=fmt,
        language="en",  # type: ignore[arg-type]
    )
    expected = openai_media.transcript_text(len(AUDIO), hashlib.sha256(AUDIO).hexdigest(), "transcriptions")
    form = received(up, "/v1/audio/transcriptions")[0]["form"]
    assert form["files"][0]["sha256"] == hashlib.sha256(AUDIO).hexdigest()
    assert form["fields"]["model"] == ["whisper-1"] and form["fields"]["language"] == ["en"]
    text = answer if isinstance(answer, str) else answer.text
    assert expected in text
    if fmt in ("json", "verbose_json"):
        assert answer.usage.cost == pytest.approx(0.0004)  # type: ignore[union-attr]
    # 100 micro a second: JSON answers report the duration (4 s); text ones do not, so it is estimated from
    # the size at 16 kB/s (rounded up: 5 s) and marked
    reported = fmt in ("json", "verbose_json")
    seconds = 4 if reported else 5
    assert usage_of(gw, project) == [("stt", 100 * seconds, {"audio_seconds": seconds})]
    assert rows(gw, "SELECT estimated FROM usage WHERE project_id = ?", (project,)) == [(int(not reported),)]


def test_a_transcription_sent_as_base64_json_is_the_same_as_multipart(gw: GatewayProcess, up: UpstreamProcess) -> None:
    project, key = project_key(gw)
    body = {"model": "stt", "file": base64.b64encode(AUDIO).decode(), "filename": "talk.mp3"}
    answer = httpx.post(f"{gw.url}/v1/audio/transcriptions", json=body, headers={"authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    assert hashlib.sha256(AUDIO).hexdigest()[:12] in answer.json()["text"]
    sent = received(up, "/v1/audio/transcriptions")[0]["form"]["files"][0]
    assert (sent["filename"], sent["size"]) == ("talk.mp3", len(AUDIO))
    assert usage_of(gw, project)[0][2] == {"audio_seconds": 4}


def test_translations_and_the_mock_transcript_derived_from_the_audio(gw: GatewayProcess, up: UpstreamProcess) -> None:
    _, key = project_key(gw)
    answer = client(gw, key).audio.translations.create(model="stt", file=("talk.mp3", AUDIO))
    assert answer.text.startswith("stand-in translation of 64004 bytes")
    assert received(up, "/v1/audio/translations")


# ------------------------------------------------------------------------------------------------- files


def test_files_api_with_exact_storage_headers_and_a_quota(gw: GatewayProcess) -> None:
    project, key = project_key(gw, plan="tiny")  # storage_mb = 1
    sdk = client(gw, key)
    limit = str(1 << 20)
    first = sdk.files.with_raw_response.create(file=("notes.txt", b"a" * 600_000), purpose="user_data")
    assert (first.headers["x-storage-used-bytes"], first.headers["x-storage-limit-bytes"]) == ("600000", limit)
    kept = first.parse()
    assert (kept.bytes, kept.filename, kept.purpose) == (600_000, "notes.txt", "user_data")
    with pytest.raises(openai.APIStatusError) as info:
        sdk.files.create(file=("more.txt", b"b" * 600_000), purpose="user_data")
    assert (info.value.status_code, info.value.code) == (413, "storage_quota_exceeded")
    assert info.value.response.headers["x-storage-used-bytes"] == "600000"
    assert rows(gw, "SELECT COUNT(*) FROM files WHERE project_id = ?", (project,)) == [(1,)]
    assert not list((gw.dir / "data" / "files" / ".incoming").iterdir())  # nothing half-kept
    listed = sdk.files.with_raw_response.list()
    assert [f.id for f in listed.parse()] == [kept.id] and listed.headers["x-storage-used-bytes"] == "600000"
    assert sdk.files.retrieve(kept.id).bytes == 600_000
    assert sdk.files.content(kept.id).read() == b"a" * 600_000
    deleted = sdk.files.with_raw_response.delete(kept.id)
    assert deleted.parse().deleted and deleted.headers["x-storage-used-bytes"] == "0"
    again = sdk.files.with_raw_response.create(file=("more.txt", b"b" * 600_000), purpose="user_data")
    assert again.headers["x-storage-used-bytes"] == "600000"
    usage = usage_of(gw, project)
    assert [q for _, _, q in usage] == [{"stored_bytes": 600_000}, {"stored_bytes": 600_000}]


def test_another_projects_file_is_not_found(gw: GatewayProcess) -> None:
    _, owner = project_key(gw)
    _, stranger = project_key(gw)
    kept = client(gw, owner).files.create(file=("secret.txt", b"mine"), purpose="user_data")
    other = client(gw, stranger)
    for call in (
        lambda: other.files.retrieve(kept.id),
        lambda: other.files.content(kept.id).read(),
        lambda: other.files.delete(kept.id),
    ):
        with pytest.raises(openai.NotFoundError) as info:
            call()
        assert info.value.code == "file_not_found"
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": [{"type": "file", "file": {"file_id": kept.id}}]}]
        )
    assert client(gw, owner).files.content(kept.id).read() == b"mine"


def test_a_200_mb_upload_streams_to_disk_without_growing_the_server(gw: GatewayProcess) -> None:
    project, key = project_key(gw)
    assert gw.proc is not None
    upload = upload_large(gw.url, key, gw.proc.pid, 200)
    assert upload.answer.status_code == 200, upload.answer.text
    assert upload.answer.json()["bytes"] == upload.size
    print(f"server RSS before {upload.rss_before >> 20} MiB, peak during the upload {upload.rss_peak >> 20} MiB")
    assert upload.grown < 30 << 20, f"the server grew by {upload.grown >> 20} MiB during the upload"
    kept = rows(gw, "SELECT sha256, bytes FROM files WHERE project_id = ?", (project,))
    assert kept == [(upload.sha256, upload.size)]
    client(gw, key).files.delete(upload.answer.json()["id"])


# -------------------------------------------------------------------------------------------------- jobs


def test_a_video_through_the_sdk_is_polled_downloaded_and_billed_once(gw: GatewayProcess, up: UpstreamProcess) -> None:
    project, key = project_key(gw)
    up.set_behavior(video_queued_ms=300, video_run_ms=600)
    sdk = client(gw, key)
    created = sdk.videos.create(model="vid", prompt="a sunset over the sea", seconds="8")
    assert created.status == "queued" and created.id.startswith("video_")
    done = sdk.videos.poll(created.id, poll_interval_ms=100)
    assert (done.status, done.progress, done.seconds) == ("completed", 100, "8")
    content = sdk.videos.download_content(created.id).read()
    upstream_id = rows(gw, "SELECT upstream_id FROM jobs WHERE id = ?", (created.id,))[0][0]
    assert content.startswith(b"\x00\x00\x00\x18ftypmp42") and upstream_id.encode() in content
    posts = [r for r in received(up, "/v1/videos") if r["method"] == "POST"]
    assert len(posts) == 1 and posts[0]["headers"]["idempotency-key"] == created.id
    assert posts[0]["form"]["fields"]["model"] == ["sora-2"]
    [(model, cost, quantities)] = usage_of(gw, project)
    assert (model, cost, quantities["video_seconds"]) == ("vid", 800_000, 8)
    assert rows(
        gw, "SELECT status FROM holds WHERE id = (SELECT request_id FROM jobs WHERE id = ?)", (created.id,)
    ) == [("settled",)]
    events = rows(gw, "SELECT event_type FROM outbox WHERE project_id = ? AND event_type LIKE 'job.%'", (project,))
    assert events == [("job.completed",)]
    assert [v.id for v in sdk.videos.list()] == [created.id]
    assert sdk.videos.delete(created.id).deleted
    with pytest.raises(openai.NotFoundError):
        sdk.videos.retrieve(created.id)


def test_a_failed_video_is_not_billed_and_its_reservation_is_released(gw: GatewayProcess, up: UpstreamProcess) -> None:
    project, key = project_key(gw)
    up.set_behavior(video_run_ms=200, video_fail=True)
    sdk = client(gw, key)
    video = sdk.videos.poll(sdk.videos.create(model="vid", prompt="doomed").id, poll_interval_ms=100)
    assert video.status == "failed" and video.error is not None and video.error.code == "stand_in_failure"
    assert usage_of(gw, project) == []
    request_id = rows(gw, "SELECT request_id FROM jobs WHERE id = ?", (video.id,))[0][0]
    assert rows(gw, "SELECT status FROM holds WHERE id = ?", (request_id,)) == [("released",)]
    assert rows(gw, "SELECT status, error_code FROM requests WHERE id = ?", (request_id,)) == [
        ("upstream_failed", "job_failed")
    ]
    events = rows(gw, "SELECT event_type FROM outbox WHERE project_id = ? AND event_type LIKE 'job.%'", (project,))
    assert events == [("job.failed",)]


@pytest.mark.parametrize(("route", "model", "unit", "cost"), [
    ("videos", "vid-mock", "video_seconds", 400_000),
    ("music", "music-mock", "music_seconds", 100_000),
])  # fmt: skip
def test_seed_job_routes_on_the_mock(gw: GatewayProcess, route: str, model: str, unit: str, cost: int) -> None:
    project, key = project_key(gw)
    auth = {"authorization": f"Bearer {key}"}
    seconds = 4 if route == "videos" else 5
    body = {"model": model, "prompt": "calm waves", "seconds": seconds}
    job = httpx.post(f"{gw.url}/v1/{route}/generations", json=body, headers=auth).json()
    assert job["id"] == job["job_id"] and job["status"] == "queued" and job["result"] is None
    for _ in range(100):
        job = httpx.get(f"{gw.url}/v1/{route}/generations/{job['job_id']}", headers=auth).json()
        if job["status"] in ("completed", "failed"):
            break
        time.sleep(0.1)
    assert job["status"] == "completed" and job["progress"] == 100 and job["error"] is None
    result = httpx.get(job["result"]["url"])  # signed: no key needed
    assert result.status_code == 200
    assert result.headers["content-type"] == ("video/mp4" if route == "videos" else "audio/wav")
    if route == "videos":
        assert b"placeholder video" in result.content
    [(_, charged, quantities)] = usage_of(gw, project)
    assert (charged, quantities[unit]) == (cost, seconds)
    _, stranger = project_key(gw)
    lost = httpx.get(
        f"{gw.url}/v1/{route}/generations/{job['job_id']}", headers={"authorization": f"Bearer {stranger}"}
    )
    assert lost.status_code == 404


# ------------------------------------------------------------------------------ limits, invoices, the log


def test_plan_rpm_is_enforced_per_endpoint_class(gw: GatewayProcess, up: UpstreamProcess) -> None:
    _, key = project_key(gw, plan="tiny")  # images = 2 a minute, audio = 3, chat unlimited
    sdk = client(gw, key)
    for _ in range(2):
        sdk.images.generate(model="img", prompt="one more", response_format="b64_json")
    with pytest.raises(openai.RateLimitError) as info:
        sdk.images.generate(model="img", prompt="one too many", response_format="b64_json")
    assert "plan 'tiny' images" in info.value.message and info.value.response.headers["retry-after"]
    assert len(received(up, "/v1/images/generations")) == 2
    sdk.audio.speech.create(model="tts", voice="alloy", input="audio is its own class").read()
    sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "chat is too"}])


def test_invoices_and_the_request_log_show_media_units(gw: GatewayProcess, tmp_path: Path) -> None:
    project, key = project_key(gw)
    sdk = client(gw, key)
    sdk.images.generate(model="img", prompt="invoice me", response_format="b64_json", quality="hd")
    sdk.audio.speech.create(model="tts", voice="alloy", input="twelve chars").read()
    name = next(p["name"] for p in gw.cli_json("projects", "list") if p["id"] == project)
    month = time.strftime("%Y-%m", time.gmtime())
    gw.cli("invoices", "export", "--month", month, "--out", str(tmp_path), "--project", name)
    invoice = json.loads((tmp_path / month / f"DRAFT-{name}.json").read_text())
    units = {line["model"]: line.get("units") for line in invoice["lines"]}
    assert units == {"img": {"images:1024x1024/hd": 1}, "tts": {"speech_characters": 12}}
    csv_text = (tmp_path / month / f"DRAFT-{name}.csv").read_text()
    assert "unit,img,,,,images:1024x1024/hd,,,1 image 1024x1024/hd" in csv_text
    request_id = rows(gw, "SELECT id FROM requests WHERE project_id = ? AND endpoint = 'images'", (project,))[0][0]
    shown = gw.cli("requests", "show", request_id).stdout
    assert "1 images:1024x1024/hd" in shown and "images" in shown
    assert "characters of base64" in shown  # the log keeps the answer's shape, not the picture
