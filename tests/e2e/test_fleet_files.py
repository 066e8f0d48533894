"""Stored files shared by a fleet: two gateway processes on one real PostgreSQL store and one Redis, each
with a data dir of its own (as on two machines). A file uploaded with the official openai SDK through one
is listed, retrieved, downloaded byte for byte and used by `file_id` in a chat through the other; deleted
through one, it is gone from both. An image answered with a signed `url` by one is fetched through the
other; the storage quota holds across both (concurrent uploads through both included); a large upload goes
into PostgreSQL in bounded memory. Nothing of the gateway mocked: the OpenAI stand-in upstream and the
built-in mock provider answer."""

from __future__ import annotations

import base64
import concurrent.futures
import os
import time
import uuid
from collections.abc import Iterator

import httpx
import openai
import psycopg
import pytest

from tests.conftest import UPSTREAM_KEY, upstream_config
from tests.support.gateway import GatewayProcess, start_fleet
from tests.support.services import Postgres, Redis
from tests.support.uploads import sha256_of_download, upload_large
from tests.upstreams.openai_upstream import UpstreamProcess

TEXT = b"Quarterly numbers: up 12 %, shared by the fleet."
FLEET = """
[plans.tiny]
storage_mb = 1

[[models]]
name = "img-mock"
targets = ["mock:img"]
price = {{ per_image = {{ "1024x1024" = 0.04 }} }}

[store]
url = "{store}"

[state]
url = "{state}"
"""


@pytest.fixture(scope="module")
def store_url(postgres: Postgres) -> str:
    return postgres.create_database("fleet_files")


@pytest.fixture(scope="module")
def pair(
    store_url: str, redis_server: Redis, upstream: UpstreamProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[GatewayProcess]]:
    redis_server.flush()
    config = upstream_config(upstream) + FLEET.format(store=store_url, state=redis_server.url)
    directories = [tmp_path_factory.mktemp("files-a"), tmp_path_factory.mktemp("files-b")]
    processes = start_fleet(directories, config, {"TEST_UPSTREAM_KEY": UPSTREAM_KEY})
    yield processes
    for gw in processes:
        gw.stop()


def _key(pair: list[GatewayProcess], plan: str | None = None) -> str:
    """A new project's key, made through the first process and accepted by the second (pub/sub)."""
    name = f"files-{uuid.uuid4().hex[:8]}"
    pair[0].cli_json("projects", "create", name, *(["--plan", plan] if plan else []))
    key = str(pair[0].cli_json("keys", "create", "--project", name)["key"])
    deadline = time.monotonic() + 3
    while httpx.get(f"{pair[1].url}/v1/models", headers={"authorization": f"Bearer {key}"}).status_code != 200:
        assert time.monotonic() < deadline, "the second process never learnt the key"
        time.sleep(0.05)
    return key


def _sdk(gw: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)


def _kept_on_disk(gw: GatewayProcess) -> list[str]:
    files = gw.dir / "data" / "files"
    return [str(p) for p in files.rglob("*") if p.is_file()] if files.exists() else []


def test_a_file_uploaded_through_one_process_is_served_and_deleted_through_the_other(
    pair: list[GatewayProcess], upstream: UpstreamProcess, store_url: str
) -> None:
    a, b = pair
    key = _key(pair)
    data = os.urandom(3 * (1 << 20) + 12_345)  # four chunks in PostgreSQL, the last one short
    kept = _sdk(a, key).files.create(file=("data.bin", data, "application/octet-stream"), purpose="user_data")
    note = _sdk(a, key).files.create(file=("notes.txt", TEXT, "text/plain"), purpose="user_data")
    through_b = _sdk(b, key)
    listed = through_b.files.with_raw_response.list()
    assert {f.id for f in listed.parse()} == {kept.id, note.id}
    assert listed.headers["x-storage-used-bytes"] == str(len(data) + len(TEXT))
    assert through_b.files.retrieve(kept.id).bytes == len(data)
    assert through_b.files.content(kept.id).read() == data
    assert _kept_on_disk(a) == _kept_on_disk(b) == []  # the bytes are in the database, on neither machine

    upstream.clear()
    content = [{"type": "text", "text": "summarise"}, {"type": "file", "file": {"file_id": note.id}}]
    through_b.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": content}])
    sent = [r for r in upstream.received() if r["path"] == "/v1/chat/completions"][-1]["json"]
    inline = sent["messages"][0]["content"][1]["file"]["file_data"]
    assert inline == "data:text/plain;base64," + base64.b64encode(TEXT).decode()

    assert through_b.files.delete(kept.id).deleted
    for call in (lambda: _sdk(a, key).files.retrieve(kept.id), lambda: _sdk(a, key).files.content(kept.id).read()):
        with pytest.raises(openai.NotFoundError):
            call()
    with psycopg.connect(store_url) as conn:
        left = conn.execute("SELECT COUNT(*) FROM file_chunks WHERE file_id = %s", (kept.id,)).fetchone()
    assert left == (0,)
    assert _sdk(a, key).files.with_raw_response.list().headers["x-storage-used-bytes"] == str(len(TEXT))


def test_an_image_url_signed_by_one_process_is_fetched_through_the_other(pair: list[GatewayProcess]) -> None:
    a, b = pair
    key = _key(pair)
    answer = _sdk(a, key).images.generate(model="img-mock", prompt="a lighthouse", response_format="url")
    url = answer.data[0].url
    assert url is not None and url.startswith(f"{a.url}/v1/files/file-")
    fetched = httpx.get(b.url + url.removeprefix(a.url))  # no key: the signature is the credential
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert fetched.content.startswith(b"\x89PNG") and fetched.content == httpx.get(url).content
    assert httpx.get(b.url + url.removeprefix(a.url)[:-1] + "x").status_code == 403


def test_the_storage_quota_holds_across_both_processes(pair: list[GatewayProcess]) -> None:
    key = _key(pair, plan="tiny")  # storage_mb = 1

    def upload(index: int) -> int:
        try:
            _sdk(pair[index % 2], key).files.create(file=(f"{index}.bin", os.urandom(300_000)), purpose="user_data")
        except openai.APIStatusError as exc:
            assert exc.code == "storage_quota_exceeded"
            return exc.status_code
        return 200

    with concurrent.futures.ThreadPoolExecutor(6) as pool:  # three through each, at once: three fit in 1 MiB
        statuses = list(pool.map(upload, range(6)))
    assert sorted(statuses) == [200, 200, 200, 413, 413, 413]
    for gw in pair:
        assert _sdk(gw, key).files.with_raw_response.list().headers["x-storage-used-bytes"] == "900000"
    first = _sdk(pair[1], key).files.list().data[0]
    _sdk(pair[1], key).files.delete(first.id)  # freed through one process: room through the other
    assert _sdk(pair[0], key).files.create(file=("again.bin", os.urandom(300_000)), purpose="user_data").bytes


def test_a_large_upload_goes_into_postgresql_in_bounded_memory(pair: list[GatewayProcess]) -> None:
    a, b = pair
    key = _key(pair)
    assert a.proc is not None
    upload = upload_large(a.url, key, a.proc.pid, 64)
    assert upload.answer.status_code == 200, upload.answer.text
    print(
        f"64 MiB into PostgreSQL in {upload.seconds:.2f} s; server RSS {upload.rss_before >> 20} MiB before,"
        f" peak {upload.rss_peak >> 20} MiB"
    )
    assert upload.grown < 30 << 20, f"the server grew by {upload.grown >> 20} MiB during the upload"
    assert sha256_of_download(b.url, key, upload.answer.json()["id"]) == (upload.sha256, upload.size)
