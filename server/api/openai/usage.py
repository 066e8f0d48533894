"""GET /v1/usage: the calling key's project's usage over a window, grouped by model, key and/or day.

Served from the hourly rollups (moved with every usage row), so it stays fast on a large log; the
partial hours at a window's edges are read from the rows themselves, so totals are exact and equal the
ledger's usage debits for the same window. `start`, `end`: unix seconds or ISO 8601 (UTC unless stated);
default: the last 24 hours. `group_by`: model, key, day (comma-separated or repeated); `model`, `key_id`
filter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get

from server.api.common import admit, gateway_of, json_response, v1
from server.clock import now_ms
from server.errors import INVALID_VALUE
from server.keys import bearer_token
from server.usage_report import GROUPS, aggregate, days_between

DAY_MS = 86_400_000


def _instant(value: str | None, name: str, default: int) -> int:
    """Unix seconds or ISO 8601 as milliseconds."""
    if value is None or value == "":
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise INVALID_VALUE(field=name, what="unix seconds or an ISO 8601 date/time") from None
        return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)
    if not 0 <= seconds < 2**34:
        raise INVALID_VALUE(field=name, what="unix seconds or an ISO 8601 date/time")
    return int(seconds * 1000)


def _groups(request: Request[Any, Any, Any]) -> list[str]:
    chosen = [part.strip() for value in request.query_params.getall("group_by", []) for part in value.split(",")]
    chosen = [part for part in chosen if part]
    unknown = [part for part in chosen if part not in GROUPS]
    if unknown:
        raise INVALID_VALUE(field="group_by", what=f"a list of {', '.join(GROUPS)}")
    return chosen


@get(v1("/usage"))
async def usage(request: Request[Any, Any, Any]) -> Response[Any]:
    caller = admit(request, bearer_token(request.headers.get("authorization")))
    gw = gateway_of(request)
    query = request.query_params
    end = _instant(query.get("end"), "end", now_ms())
    start = _instant(query.get("start"), "start", end - DAY_MS)
    if start >= end:
        raise INVALID_VALUE(field="start", what="before end")
    groups = _groups(request)
    days = days_between(start, end, gw.settings.billing.timezone) if "day" in groups else []
    found = await gw.store.usage_window(
        caller.project_id, start, end, query.get("model"), query.get("key_id"), groups, days
    )
    data = aggregate(found, groups)
    return json_response({"object": "list", "start": start // 1000, "end": end // 1000, "data": data})
