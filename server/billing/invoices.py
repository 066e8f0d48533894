"""Invoices: calendar-month bounds in the billing time zone, the terms an invoice freezes, tax, and the
invoice document the renderers take.

A month still running gives a draft: no number, no issue or due date (only the date it shows the
figures as of), built from the current configuration. A month that has ended is numbered on its first
export; the number, the issue date (the day it was numbered, never in the future), the tax and the
terms (issuer, bill-to, rate, payment terms, currency) are frozen in its row, so it re-exports
byte-identical whatever the configuration or the project's details become later.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from server.budget import month_key, next_month_start
from server.errors import INVALID_MONTH, INVALID_TAX_RATE
from server.settings import BillingSettings

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
PARTY_FIELDS = ("name", "address", "tax_id", "email")


def parse_month(month: str, zone: str, now_ms: int) -> str:
    """'YYYY-MM', or 'last': the month before the current one in the billing zone (cron-friendly)."""
    if month == "last":
        year, mon = (int(part) for part in month_key(now_ms, zone).split("-"))
        year, mon = (year - 1, 12) if mon == 1 else (year, mon - 1)
        return f"{year:04d}-{mon:02d}"
    if not isinstance(month, str) or not _MONTH.match(month):
        raise INVALID_MONTH(param="month")
    return month


def month_bounds(month: str, zone: str) -> tuple[int, int]:
    """[start, end) of the calendar month in the zone, as UTC milliseconds."""
    year, mon = (int(part) for part in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=ZoneInfo(zone))
    return int(start.timestamp() * 1000), int(next_month_start(month, zone).timestamp() * 1000)


def is_closed(month: str, zone: str, now_ms: int) -> bool:
    return month_bounds(month, zone)[1] <= now_ms


def local_date(at_ms: int, zone: str) -> date:
    return datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(ZoneInfo(zone)).date()


def parse_tax_rate(value: Any) -> str | None:
    """A percent between 0 and 100 with at most 4 decimals, as canonical text ('20', '7.25'); None unsets."""
    if value is None:
        return None
    try:
        rate = Decimal(str(value).strip().rstrip("%").strip())
    except InvalidOperation:
        rate = Decimal("NaN")
    if not rate.is_finite() or not 0 <= rate <= 100 or rate != rate.quantize(Decimal("0.0001")):
        raise INVALID_TAX_RATE(param="tax_rate")
    return format(rate.normalize(), "f")


def tax_micro(subtotal_micro: int, rate: str) -> int:
    """Tax on an integer amount at a percent, rounded half-up to a whole micro-unit."""
    exact = Decimal(subtotal_micro) * Decimal(rate) / 100
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def terms(billing: BillingSettings, project: dict[str, Any]) -> dict[str, Any]:
    """What an invoice states beyond the ledger, from the configuration and the project's details."""
    details = project.get("billing_details") or {}
    project_rate = details.get("tax_rate")
    rate = project_rate if project_rate is not None else parse_tax_rate(billing.tax_rate)
    return {
        "currency": billing.currency,
        "issuer": {
            "name": billing.issuer_name,
            "address": billing.issuer_address,
            "tax_id": billing.issuer_tax_id,
            "email": billing.issuer_email,
        },
        "bill_to": {name: details.get(name) or "" for name in PARTY_FIELDS},
        "tax": None if rate is None else {"name": billing.tax_name, "rate": rate},
        "payment_terms_days": billing.payment_terms_days,
        "payment_note": billing.payment_note,
    }


def _lines(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per model; a model metered in other units too (images, seconds, characters) carries them
    as `units` (unit -> quantity), shown under its line."""
    out = []
    for line in data["lines"]:
        item = {
            "model": line["model"],
            "requests": line["requests"],
            "input_tokens": line["input_tokens"] or 0,
            "output_tokens": line["output_tokens"] or 0,
            "amount_micro": line["amount_micro"] or 0,
        }
        units = {unit: amount for unit, amount in (line.get("units") or {}).items() if amount}
        if units:
            item["units"] = units
        out.append(item)
    return out


def _credits(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "kind": entry["kind"],
            "source_id": entry["source_id"],
            "at_ms": entry["at_ms"],
            "amount_micro": entry["amount_micro"],
            "memo": entry["memo"] or "",
        }
        for entry in data["credits"]
        if entry["kind"] in ("topup", "refund", "adjustment")
    ]


def _taxes(frozen: dict[str, Any], tax: int) -> list[dict[str, Any]]:
    info = frozen.get("tax")
    return [] if not info else [{"name": info["name"], "rate": info["rate"], "amount_micro": tax}]


def _base(project: dict[str, Any], data: dict[str, Any], frozen: dict[str, Any], month: str) -> dict[str, Any]:
    return {
        "month": month,
        "currency": frozen["currency"],
        "issuer": frozen.get("issuer") or dict.fromkeys(PARTY_FIELDS, ""),
        "bill_to": frozen.get("bill_to") or dict.fromkeys(PARTY_FIELDS, ""),
        "payment_terms_days": frozen.get("payment_terms_days"),
        "payment_note": frozen.get("payment_note") or "",
        "project": {"id": project["id"], "name": project["name"], "billing": project["billing"]},
        "lines": _lines(data),
        "credits": _credits(data),
    }


def draft(project: dict[str, Any], data: dict[str, Any], frozen: dict[str, Any], month: str, as_of: date) -> dict:
    """A running month: no number, no issue date; figures as of today (they move until the month ends)."""
    subtotal = data["debits_micro"]
    tax = tax_micro(subtotal, frozen["tax"]["rate"]) if frozen.get("tax") else 0
    return {
        **_base(project, data, frozen, month),
        "number": None,
        "status": "draft",
        "as_of": as_of.isoformat(),
        "issued_on": None,
        "due_on": None,
        "subtotal_micro": subtotal,
        "taxes": _taxes(frozen, tax),
        "total_micro": subtotal + tax,
    }


def closed(row: dict[str, Any], project: dict[str, Any], data: dict[str, Any], currency: str, zone: str) -> dict:
    """A numbered invoice, derived only from its row and the closed month's entries (so re-export is
    identical). Rows numbered before terms were frozen show no parties, tax or terms."""
    frozen = {"currency": currency, **(row.get("frozen") or {})}
    issued = local_date(row["created_ms"], zone)
    days = frozen.get("payment_terms_days")
    subtotal = row["subtotal_micro"] if row.get("subtotal_micro") is not None else row["total_micro"]
    return {
        **_base(project, data, frozen, row["month"]),
        "number": row["number"],
        "status": "paid" if row["status"] == "paid" else "open",
        "as_of": None,
        "issued_on": issued.isoformat(),
        "due_on": None if days is None else (issued + timedelta(days=days)).isoformat(),
        "subtotal_micro": subtotal,
        "taxes": _taxes(frozen, row.get("tax_micro") or 0),
        "total_micro": row["total_micro"],
    }
