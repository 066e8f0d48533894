"""Recent latency per model (p50/p95), for the latency band /v1/models reports."""

from __future__ import annotations

from collections import deque

WINDOW = 500


class LatencyBands:
    def __init__(self) -> None:
        self._samples: dict[str, deque[float]] = {}

    def observe(self, model: str, ms: float) -> None:
        samples = self._samples.get(model)
        if samples is None:
            samples = self._samples[model] = deque(maxlen=WINDOW)
        samples.append(ms)

    def band(self, model: str) -> dict[str, float] | None:
        samples = self._samples.get(model)
        if not samples:
            return None
        ordered = sorted(samples)
        pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
        return {"p50_ms": round(pick(0.50), 1), "p95_ms": round(pick(0.95), 1), "samples": len(ordered)}
