"""Media cases for ``bench/run`` (also runnable alone: ``python bench/media_bench.py [--quick]``).

Starts the OpenAI stand-in (tests/upstreams/openai_upstream.py, which speaks the images and audio wire
formats) and a gateway in front of it, then measures, direct to the stand-in and through the gateway:

- images: sequential ``POST /v1/images/generations`` (b64_json), and through the gateway the same as
  ``url`` answers (each image stored as a file and signed);
- transcriptions: sequential multipart ``POST /v1/audio/transcriptions`` with a 256 KiB file;
- memory: the gateway's RSS while 20 clients upload 25 MB each at once, to /v1/audio/transcriptions
  (streamed to disk, re-streamed upstream) and to /v1/files (streamed to disk).

It prints figures and the machine; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import harness
import httpx

REPO = harness.BENCH_DIR.parent
MEDIA_CONFIG = """
[[models]]
name = "bench-image"
targets = ["up:dall-e-3"]
price = { per_image = { "1024x1024" = 0.04 } }
capabilities = ["images"]

[[models]]
name = "bench-stt"
targets = ["up:whisper-1"]
price = { per_minute_audio = 0.006 }
capabilities = ["transcription"]
"""
IMAGE = {"model": "bench-image", "prompt": "a lighthouse at dusk", "response_format": "b64_json"}


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def start_standin(children: harness.Children, tmp: Path) -> int:
    port = harness.free_port()
    cmd = [sys.executable, "-m", "tests.upstreams.openai_upstream", "--port", str(port)]
    proc = children.start("openai stand-in", cmd, tmp / "standin.log", harness.child_env(), REPO)
    harness.wait_for_port(port, proc, 15)
    return port


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": round(statistics.median(ordered), 2), "p99": round(pick(0.99), 2), "n": len(ordered)}


async def timed(client: httpx.AsyncClient, n: int, send: Any) -> dict[str, float]:
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        response = await send(client)
        if response.status_code != 200:
            raise harness.SetupError(f"{response.request.url}: {response.status_code} {response.text[:300]}")
        latencies.append((time.perf_counter() - started) * 1000)
    return percentiles(latencies)


async def uploads(url: str, key: str, path: str, pid: int, data: bytes, fields: dict[str, str]) -> dict[str, float]:
    """RSS of the gateway (sampled every 20 ms) while 20 clients upload `data` at once."""
    peak, stop = [rss_mib(pid)], threading.Event()
    before = peak[0]

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mib(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=300, headers={"authorization": f"Bearer {key}"}) as client:
            answers = await asyncio.gather(
                *(client.post(url + path, files={"file": ("a.wav", data)}, data=fields) for _ in range(20))
            )
    finally:
        stop.set()
        sampler.join()
    failed = [a for a in answers if a.status_code != 200]
    if failed:
        raise harness.SetupError(f"{path}: {failed[0].status_code} {failed[0].text[:300]}")
    return {
        "rss_before_mib": round(before, 1),
        "rss_peak_mib": round(peak[0], 1),
        "grew_mib": round(peak[0] - before, 1),
        "seconds": round(time.perf_counter() - started, 2),
    }


async def measure(gw: dict[str, Any], standin: str, n: int) -> dict[str, Any]:
    direct_hdrs = {"authorization": f"Bearer {harness.UPSTREAM_KEY}"}
    gw_hdrs = {"authorization": f"Bearer {gw['key']}"}
    audio = os.urandom(256 * 1024)
    res: dict[str, Any] = {}
    async with (
        httpx.AsyncClient(base_url=standin, headers=direct_hdrs, timeout=60) as direct,
        httpx.AsyncClient(base_url=gw["url"] + "/v1", headers=gw_hdrs, timeout=60) as gateway,
    ):
        for side, client, model in (("direct", direct, "dall-e-3"), ("gateway", gateway, "bench-image")):
            await timed(client, 10, lambda c, m=model: c.post("/images/generations", json={**IMAGE, "model": m}))
            say(f"images {side}: {n} requests ...")
            res.setdefault("images_b64", {})[side] = await timed(
                client, n, lambda c, m=model: c.post("/images/generations", json={**IMAGE, "model": m})
            )
        say(f"images gateway, url answers: {n} requests ...")
        res["images_url_gateway"] = await timed(
            gateway, n, lambda c: c.post("/images/generations", json={**IMAGE, "response_format": "url"})
        )
        for side, client, model in (("direct", direct, "whisper-1"), ("gateway", gateway, "bench-stt")):
            say(f"transcriptions {side}: {n // 2} requests of 256 KiB ...")

            def send(c: httpx.AsyncClient, m: str = model) -> Any:
                return c.post("/audio/transcriptions", files={"file": ("a.wav", audio)}, data={"model": m})

            res.setdefault("transcriptions", {})[side] = await timed(client, n // 2, send)
    big = os.urandom(25 * 1000 * 1000)
    say("20 concurrent 25 MB uploads to /v1/audio/transcriptions ...")
    res["uploads_transcriptions"] = await uploads(
        gw["url"], gw["key"], "/v1/audio/transcriptions", gw["pid"], big, {"model": "bench-stt"}
    )
    say("20 concurrent 25 MB uploads to /v1/files ...")
    res["uploads_files"] = await uploads(gw["url"], gw["key"], "/v1/files", gw["pid"], big, {"purpose": "batch"})
    return res


def report(res: dict[str, Any]) -> None:
    print(f"\n{'media case (ms)':<34}{'direct p50/p99':>18}{'gateway p50/p99':>18}{'overhead p50/p99':>20}")
    for case in ("images_b64", "transcriptions"):
        d, g = res[case]["direct"], res[case]["gateway"]
        print(
            f"{case:<34}{d['p50']:>9.2f}/{d['p99']:<8.2f}{g['p50']:>9.2f}/{g['p99']:<8.2f}"
            f"{g['p50'] - d['p50']:>+10.2f}/{g['p99'] - d['p99']:<+9.2f}"
        )
    u = res["images_url_gateway"]
    print(f"{'images_url (stored + signed)':<34}{'':>18}{u['p50']:>9.2f}/{u['p99']:<8.2f}")
    for case in ("uploads_transcriptions", "uploads_files"):
        r = res[case]
        print(
            f"{case}: 20 x 25 MB in {r['seconds']} s; gateway RSS {r['rss_before_mib']} -> peak "
            f"{r['rss_peak_mib']} MiB (+{r['grew_mib']} MiB)"
        )


def run(quick: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="gateway-media-bench-"))
    children = harness.Children()
    try:
        port = start_standin(children, tmp)
        gw = harness.setup_gateway(children, tmp, port, extra_config=MEDIA_CONFIG)
        res = asyncio.run(measure(gw, f"http://127.0.0.1:{port}/v1", 50 if quick else 200))
        report(res)
        return res
    finally:
        children.stop_all()


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/media_bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    opts = parser.parse_args()
    run(opts.quick)
    info = harness.machine()
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores, {info['python']}, {info['os']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
