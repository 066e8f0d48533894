"""Invoices: calendar-month bounds in the billing time zone and the invoice document the renderers take."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from server.budget import next_month_start
from server.errors import bad_request

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def parse_month(month: str) -> str:
    if not isinstance(month, str) or not _MONTH.match(month):
        raise bad_request("month must look like 2026-10.", "invalid_month", "month")
    return month


def month_bounds(month: str, zone: str) -> tuple[int, int]:
    """[start, end) of the calendar month in the zone, as UTC milliseconds."""
    year, mon = (int(part) for part in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=ZoneInfo(zone))
    return int(start.timestamp() * 1000), int(next_month_start(month, zone).timestamp() * 1000)


def is_closed(month: str, zone: str, now_ms: int) -> bool:
    return month_bounds(month, zone)[1] <= now_ms


def document(
    row: dict[str, Any], project: dict[str, Any], data: dict[str, Any], currency: str, zone: str
) -> dict[str, Any]:
    """The invoice as the renderers take it; derived only from stored facts, so re-export is identical."""
    return {
        "number": row["number"],
        "month": row["month"],
        "currency": currency,
        "issued_on": next_month_start(row["month"], zone).strftime("%Y-%m-%d"),
        "project": {"id": project["id"], "name": project["name"], "billing": project["billing"]},
        "lines": [
            {
                "model": line["model"],
                "requests": line["requests"],
                "input_tokens": line["input_tokens"] or 0,
                "output_tokens": line["output_tokens"] or 0,
                "amount_micro": line["amount_micro"] or 0,
            }
            for line in data["lines"]
        ],
        "credits": [
            {
                "kind": entry["kind"],
                "source_id": entry["source_id"],
                "at_ms": entry["at_ms"],
                "amount_micro": entry["amount_micro"],
                "memo": entry["memo"] or "",
            }
            for entry in data["credits"]
            if entry["kind"] in ("topup", "refund", "adjustment")
        ],
        "total_micro": data["debits_micro"],
        "status": "paid" if row["status"] == "paid" else "open",
    }
