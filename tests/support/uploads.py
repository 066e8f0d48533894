"""A large file uploaded to a gateway process as a streamed multipart body (never whole in the test's memory),
with the server's peak resident memory sampled while it goes: what the tests of bounded-memory uploads share."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

BOUNDARY = "large-upload-boundary"


def rss(pid: int) -> int:
    """The process's resident set size in bytes, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@dataclass(slots=True)
class LargeUpload:
    answer: httpx.Response
    sha256: str
    size: int
    rss_before: int
    rss_peak: int
    seconds: float

    @property
    def grown(self) -> int:
        return self.rss_peak - self.rss_before


def upload_large(url: str, key: str, pid: int, mib: int) -> LargeUpload:
    """POST /v1/files with `mib` MiB of random bytes (one random MiB repeated), streamed; samples `pid`'s RSS
    every 20 ms meanwhile."""
    piece = os.urandom(1 << 20)
    digest = hashlib.sha256()
    for _ in range(mib):
        digest.update(piece)
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(mib):
            yield piece
        yield tail

    before = rss(pid)
    peak, stop = [before], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    try:
        answer = httpx.post(
            f"{url}/v1/files",
            content=body(),
            headers={
                "authorization": f"Bearer {key}",
                "content-type": f"multipart/form-data; boundary={BOUNDARY}",
                "content-length": str(len(head) + (mib << 20) + len(tail)),
            },
            timeout=120,
        )
    finally:
        seconds = time.monotonic() - started
        stop.set()
        sampler.join()
    return LargeUpload(answer, digest.hexdigest(), mib << 20, before, peak[0], seconds)


def sha256_of_download(url: str, key: str, file_id: str) -> tuple[str, int]:
    """The file's content downloaded in a stream: (hex SHA-256, bytes)."""
    digest, size = hashlib.sha256(), 0
    with httpx.stream(
        "GET", f"{url}/v1/files/{file_id}/content", headers={"authorization": f"Bearer {key}"}, timeout=120
    ) as answer:
        answer.raise_for_status()
        for chunk in answer.iter_bytes():
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
