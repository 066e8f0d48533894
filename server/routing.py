"""Try a model's targets in order: the next one on retryable failures, never on other 4xx."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from server.errors import UpstreamError
from server.providers.base import Provider
from server.types import Attempt, Target

T = TypeVar("T")


async def first_success(
    providers: dict[str, Provider],
    targets: tuple[Target, ...],
    call: Callable[[Provider, str], Awaitable[T]],
    attempts: list[Attempt],
) -> tuple[int, Target, T]:
    """(index of the serving target, the target, its result); every attempt is appended to `attempts`."""
    last: UpstreamError | None = None
    for index, target in enumerate(targets):
        provider = providers[target.provider]
        started = time.perf_counter()
        try:
            result = await call(provider, target.model)
        except UpstreamError as exc:
            attempts.append(Attempt(str(target), exc.upstream_status, (time.perf_counter() - started) * 1000))
            if not exc.retryable:
                raise
            last = exc
            continue
        attempts.append(Attempt(str(target), 200, (time.perf_counter() - started) * 1000))
        return index, target, result
    assert last is not None
    raise UpstreamError(
        last.status,
        f"All upstream targets failed; last: {last.message}",
        retryable=False,
        upstream_status=last.upstream_status,
        retry_after=last.retry_after,
    )
