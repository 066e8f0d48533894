"""``bench/run``: the gateway's overhead over a fast upstream, measured in one run on this machine.

Starts ``fast_upstream.py`` and ``gatewayctl serve`` (one process each), then measures, direct to
the upstream and through the gateway: saturation throughput, open-loop latency at fixed rates,
streamed time to first chunk; and the gateway's peak RSS. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import harness
import loadgen
import media_bench

CHAT = {"model": "bench-model", "messages": [{"role": "user", "content": "hello"}]}
STREAM = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
TARGET_P50_MS, TARGET_P99_MS, TARGET_RATE = 0.5, 3.0, 500
FULL = {"warmup_s": 3.0, "saturate_s": 8.0, "open_s": 10.0, "ttfb_n": 300, "settle_s": 1.0}
QUICK = {"warmup_s": 1.0, "saturate_s": 2.0, "open_s": 3.0, "ttfb_n": 50, "settle_s": 0.3}


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def measure(opts: argparse.Namespace, plan: dict[str, float], up_url: str, gw: dict[str, Any]) -> dict[str, Any]:
    chat = "/v1/chat/completions"
    sides = {
        "direct": (up_url + chat, {"Authorization": f"Bearer {harness.UPSTREAM_KEY}"}),
        "gateway": (gw["url"] + chat, {"Authorization": f"Bearer {gw['key']}"}),
    }
    body, stream_body = json.dumps(CHAT).encode(), json.dumps(STREAM).encode()
    res: dict[str, Any] = {"saturation": {}, "open_loop": {}, "ttfb": {}}

    say(f"warm-up {plan['warmup_s']:g} s ...")
    for side, (url, hdrs) in sides.items():
        warm = await loadgen.saturate(url, body, hdrs, 8, plan["warmup_s"])
        if warm["ok"] == 0:
            raise harness.SetupError(f"{side}: every warm-up request failed; first error: {warm['first_error']}")
        await loadgen.ttfb_stream(url, stream_body, hdrs, 10)
    for side, (url, hdrs) in sides.items():
        say(f"saturation {side}: {opts.concurrency} connections, {plan['saturate_s']:g} s ...")
        await asyncio.sleep(plan["settle_s"])
        res["saturation"][side] = await loadgen.saturate(url, body, hdrs, opts.concurrency, plan["saturate_s"])
    for rate in opts.rates:
        res["open_loop"][str(rate)] = {}
        for side, (url, hdrs) in sides.items():
            say(f"open loop {rate} req/s {side}, {plan['open_s']:g} s ...")
            await asyncio.sleep(plan["settle_s"])
            spy = start_profiler(opts, gw["pid"], plan["open_s"]) if side == "gateway" and rate == TARGET_RATE else None
            res["open_loop"][str(rate)][side] = await loadgen.open_loop(url, body, hdrs, rate, plan["open_s"])
            if spy is not None:
                finish_profiler(spy, opts.profile_out)
    for side, (url, hdrs) in sides.items():
        say(f"stream time to first chunk {side}: {int(plan['ttfb_n'])} requests ...")
        await asyncio.sleep(plan["settle_s"])
        res["ttfb"][side] = await loadgen.ttfb_stream(url, stream_body, hdrs, int(plan["ttfb_n"]))
    return res


def start_profiler(opts: argparse.Namespace, pid: int, duration_s: float) -> subprocess.Popen[bytes] | None:
    if not opts.profile:
        return None
    spy = shutil.which("py-spy")
    if spy is None:
        say("--profile: py-spy is not installed (pip install py-spy); running without a profile")
        return None
    cmd = [spy, "record", "--pid", str(pid), "--duration", str(max(1, int(duration_s))), "--rate", "250"]
    cmd += ["--output", str(opts.profile_out), "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish_profiler(spy: subprocess.Popen[bytes], out: Path) -> None:
    try:
        _, err = spy.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        harness.stop_pid_tree(spy)
        err = b"py-spy did not finish in time"
    if spy.returncode == 0:
        say(f"profile of the gateway during the {TARGET_RATE} req/s run: {out} (py-spy took CPU too)")
    else:
        say(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-500:]}")


def fmt(x: float | None, digits: int = 3, sign: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def report(res: dict[str, Any], rss: dict[str, float], info: dict[str, Any], plan: dict[str, float]) -> dict[str, Any]:
    rows: list[tuple[str, str, str, str]] = []
    sat_d, sat_g = res["saturation"]["direct"], res["saturation"]["gateway"]
    ratio = sat_g["rps"] / sat_d["rps"] if sat_d["rps"] else 0.0
    rows.append(("saturation throughput (req/s)", fmt(sat_d["rps"], 0), fmt(sat_g["rps"], 0), f"{ratio:.2f}x"))
    overhead: dict[str, dict[str, float]] = {}
    for rate, sides in res["open_loop"].items():
        d, g = sides["direct"], sides["gateway"]
        overhead[rate] = {p: round(g[p] - d[p], 3) for p in ("p50", "p90", "p99", "max")}
        for p in ("p50", "p90", "p99", "max"):
            rows.append((f"{rate} req/s latency {p} (ms)", fmt(d[p]), fmt(g[p]), fmt(overhead[rate][p], sign=True)))
    td, tg = res["ttfb"]["direct"], res["ttfb"]["gateway"]
    overhead["ttfb"] = {p: round(tg[p] - td[p], 3) for p in ("p50", "p99")}
    for p in ("p50", "p99"):
        rows.append((f"stream first chunk {p} (ms)", fmt(td[p]), fmt(tg[p]), fmt(overhead["ttfb"][p], sign=True)))
    rows.append(("gateway peak RSS (MiB)", "", fmt(rss["peak"], 1), ""))

    width = max(len(r[0]) for r in rows) + 2
    print(f"\n{'':<{width}}{'direct':>12}{'gateway':>12}{'overhead':>12}")
    for label, *cells in rows:
        print(f"{label:<{width}}" + "".join(f"{c:>12}" for c in cells))

    notes: list[str] = []
    for name, group in (("saturation", res["saturation"]), ("stream", res["ttfb"])):
        notes += [
            f"{name} {s}: {r['errors']} errors; first: {r['first_error']}" for s, r in group.items() if r["errors"]
        ]
    for rate, sides in res["open_loop"].items():
        for s, r in sides.items():
            if r["errors"]:
                notes.append(f"{rate} req/s {s}: {r['errors']} errors; first: {r['first_error']}")
            if r["pool_waits"]:
                notes.append(
                    f"{rate} req/s {s}: all {r['max_conns_used']} connections busy, {r['pool_waits']} requests "
                    "waited for one (their latency still counts from the scheduled time)"
                )
            if r["achieved_rps"] < 0.95 * float(rate) or r["send_lag_p99_ms"] > 5:
                notes.append(
                    f"{rate} req/s {s}: load generator fell behind (sent {r['achieved_rps']} req/s, "
                    f"send lag p99 {r['send_lag_p99_ms']} ms)"
                )
    key = str(TARGET_RATE)
    met = {}
    if key in overhead:
        p50, p99 = overhead[key]["p50"], overhead[key]["p99"]
        failed = res["open_loop"][key]["gateway"]["errors"] > 0  # refusals are fast: figures would lie
        met = {"p50": p50 <= TARGET_P50_MS and not failed, "p99": p99 <= TARGET_P99_MS and not failed}
        print(
            f"\ntargets at {TARGET_RATE} req/s: overhead p50 <= {TARGET_P50_MS} ms: {fmt(p50, sign=True)} ms "
            f"({'met' if met['p50'] else 'NOT met'}); overhead p99 <= {TARGET_P99_MS} ms: "
            f"{fmt(p99, sign=True)} ms ({'met' if met['p99'] else 'NOT met'})"
        )
    for note in notes:
        print(f"note: {note}")
    print(
        f"\nmachine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), {info['python']}, "
        f"{info['os']}, event loop {info['loop']}"
    )
    print(
        f"durations: saturation {plan['saturate_s']:g} s at concurrency {info['concurrency']}, open loop "
        f"{plan['open_s']:g} s per rate, {int(plan['ttfb_n'])} streamed requests; "
        "latency counted from the scheduled send time"
    )
    return {
        "machine": info,
        "plan": plan,
        "results": res,
        "overhead_ms": overhead,
        "rss_mib": rss,
        "targets": {"rate": TARGET_RATE, "p50_ms": TARGET_P50_MS, "p99_ms": TARGET_P99_MS, "met": met},
        "notes": notes,
    }


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short durations, for a smoke check")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway during the 500 req/s run")
    parser.add_argument("--profile-out", type=Path, default=Path(tempfile.gettempdir()) / "gateway-profile.svg")
    parser.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",")], default=[100, 500])
    parser.add_argument("--concurrency", type=int, default=32, help="connections for the saturation run")
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where to make the temp dir (disk matters)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (config, logs, database)")
    parser.add_argument(
        "--no-limits", action="store_true", help="a key without RPM/TPM/budget (for comparing with older versions)"
    )
    parser.add_argument("--no-media", action="store_true", help="skip the images, transcription and upload cases")
    parser.add_argument(
        "--redis",
        nargs="?",
        const="start",
        default=None,
        help="hot state on Redis ([state] url): the URL given, or a redis-server of the bench's own",
    )
    opts = parser.parse_args(argv)
    plan = dict(QUICK if opts.quick else FULL)
    info = harness.machine() | {"loop": loadgen.install_uvloop(), "concurrency": opts.concurrency}
    signal.signal(signal.SIGTERM, _on_sigterm)
    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-", dir=opts.tmp_dir))
    children = harness.Children()
    stops: list[Callable[[], None]] = []  # a redis-server of our own, stopped by its PID
    gw: dict[str, Any] = {}
    try:
        t0 = time.monotonic()
        up_port, _ = harness.start_upstream(children, tmp)
        server_env = {}
        if opts.redis:
            url = opts.redis
            if url == "start":
                sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
                from tests.support.services import start_redis

                redis_server = start_redis()
                stops.append(redis_server.stop)
                url = redis_server.url
            server_env["GATEWAY_STATE__URL"] = url
            say(f"hot state on Redis: {url}")
        gw = harness.setup_gateway(children, tmp, up_port, limits=not opts.no_limits, server_env=server_env)
        ready_s = time.monotonic() - t0
        say(f"upstream on :{up_port}, gateway at {gw['url']} (pid {gw['pid']}) ready in {ready_s:.1f} s")
        res = asyncio.run(measure(opts, plan, f"http://127.0.0.1:{up_port}", gw))
        rss = harness.peak_rss_mib(gw["pid"])
        figures = report(res, rss, info, plan)
        if not opts.no_media:
            children.stop_all()
            say("media cases (bench/media_bench.py) ...")
            figures["media"] = media_bench.run(opts.quick)
        if opts.json:
            print(json.dumps(figures, indent=2))
        return 0
    except harness.SetupError as exc:
        say(f"bench: {exc}")
        if gw.get("log"):
            say(f"--- gateway.log (tail) ---\n{harness.tail(gw['log'])}")
        return 1
    except KeyboardInterrupt:
        say("bench: interrupted")
        return 130
    finally:
        children.stop_all()
        for stop in stops:
            stop()
        if opts.keep_tmp:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
