"""Render one invoice (a plain dict) to JSON, CSV and PDF bytes, after checking it adds up.

Every renderer is a pure function of the dict: no clock, no randomness, no locale, so re-exporting
a closed month gives byte-identical files (the PDF's creation date comes from ``issued_on``, or a
draft's ``as_of``). Amounts stay integer micro-units; the exact decimal strings beside them come from
``format_credits``, and the amount due in the currency's usual decimals from ``format_number``.
The PDF lives in ``invoice_pdf`` (fpdf2 is imported only when a PDF is rendered).
"""

from __future__ import annotations

import calendar
import copy
import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from server.money import currency_decimals, format_credits, format_number

CSV_COLUMNS = (
    "row",
    "model",
    "requests",
    "input_tokens",
    "output_tokens",
    "kind",
    "source",
    "at",
    "memo",
    "amount",
    "currency",
    "amount_micro",
    "invoice",
)
CREDIT_LABELS = {"topup": "Top-up", "refund": "Refund", "adjustment": "Adjustment"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # spreadsheet formula triggers (CSV injection)


# ---------------------------------------------------------------------------------------------
# validation and shared helpers


def _is_int(value: Any) -> bool:
    """Integers only: bool is an int subclass and floats are never money."""
    return isinstance(value, int) and not isinstance(value, bool)


def _need_int(where: str, value: Any, *, minimum: int | None = None) -> int:
    if not _is_int(value):
        raise ValueError(f"{where} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where} must be >= {minimum}, got {value}")
    return value


def _need_str(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _need_date(where: str, value: Any) -> date:
    try:
        return date.fromisoformat(_need_str(where, value))
    except ValueError:
        raise ValueError(f"{where} must be a date like 2026-11-01, got {value!r}") from None


def _need_party(where: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{where} must be an object of strings")


def validate_invoice(invoice: dict[str, Any]) -> None:
    """Refuse an invoice that would render wrongly: floats for money, a draft with a number or an issue
    date, a subtotal that is not the lines' sum, or a total that is not subtotal plus taxes."""
    for key in ("month", "currency", "status"):
        _need_str(key, invoice.get(key))
    month_dates(invoice["month"])
    if invoice["status"] == "draft":
        if invoice.get("number") is not None or invoice.get("issued_on") is not None:
            raise ValueError("a draft has no number and no issue date until its month is closed")
        if invoice.get("as_of") is not None:
            _need_date("as_of", invoice["as_of"])
    else:
        _need_str("number", invoice.get("number"))
        issued = _need_date("issued_on", invoice.get("issued_on"))
        if invoice.get("due_on") is not None and _need_date("due_on", invoice["due_on"]) < issued:
            raise ValueError("due_on must not be before issued_on")
    project = invoice.get("project")
    if not isinstance(project, dict):
        raise ValueError("project must be an object")
    for key in ("id", "name"):
        _need_str(f"project.{key}", project.get(key))
    _need_party("issuer", invoice.get("issuer"))
    _need_party("bill_to", invoice.get("bill_to"))
    lines, credits, taxes = invoice.get("lines"), invoice.get("credits", []), invoice.get("taxes", [])
    if not isinstance(lines, list) or not isinstance(credits, list) or not isinstance(taxes, list):
        raise ValueError("lines, credits and taxes must be lists")
    if not all(isinstance(item, dict) for item in [*lines, *credits, *taxes]):
        raise ValueError("every line, credit and tax must be an object")
    for i, line in enumerate(lines):
        _need_str(f"lines[{i}].model", line.get("model"))
        for key in ("requests", "input_tokens", "output_tokens"):
            _need_int(f"lines[{i}].{key}", line.get(key), minimum=0)
        _need_int(f"lines[{i}].amount_micro", line.get("amount_micro"))
        units = line.get("units", {})
        if not isinstance(units, dict):
            raise ValueError(f"lines[{i}].units must be an object")
        for unit, amount in units.items():
            _need_str(f"lines[{i}].units key", unit)
            _need_int(f"lines[{i}].units.{unit}", amount, minimum=0)
    for i, credit in enumerate(credits):
        _need_str(f"credits[{i}].kind", credit.get("kind"))
        _need_str(f"credits[{i}].source_id", credit.get("source_id"))
        _need_int(f"credits[{i}].at_ms", credit.get("at_ms"), minimum=0)
        _need_int(f"credits[{i}].amount_micro", credit.get("amount_micro"))
    for i, tax in enumerate(taxes):
        _need_str(f"taxes[{i}].name", tax.get("name"))
        _need_rate(f"taxes[{i}].rate", tax.get("rate"))
        _need_int(f"taxes[{i}].amount_micro", tax.get("amount_micro"), minimum=0)
    total = _need_int("total_micro", invoice.get("total_micro"))
    tax_sum = sum(tax["amount_micro"] for tax in taxes)
    subtotal = _need_int("subtotal_micro", invoice.get("subtotal_micro", total - tax_sum))
    line_sum = sum(line["amount_micro"] for line in lines)
    if subtotal != line_sum:
        raise ValueError(f"subtotal_micro {subtotal} != sum of line amounts {line_sum}")
    if total != subtotal + tax_sum:
        raise ValueError(f"total_micro {total} != subtotal_micro {subtotal} + taxes {tax_sum}")


def _need_rate(where: str, value: Any) -> None:
    try:
        rate = Decimal(_need_str(where, value))
    except InvalidOperation:
        rate = Decimal("NaN")
    if not rate.is_finite() or not 0 <= rate <= 100:
        raise ValueError(f"{where} must be a percent from 0 to 100, got {value!r}")


def subtotal_of(invoice: dict[str, Any]) -> int:
    return int(
        invoice.get("subtotal_micro", invoice["total_micro"] - sum(t["amount_micro"] for t in taxes_of(invoice)))
    )


def taxes_of(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    return list(invoice.get("taxes") or [])


def due_text(invoice: dict[str, Any], micro: int) -> str:
    """An amount in the currency's usual decimals (rounded half-up), as an invoice states what is due."""
    return format_number(micro, currency_decimals(invoice["currency"]), exact=False, grouping=True)


def month_dates(month: str) -> tuple[date, date]:
    """First and last day of a 'YYYY-MM' month."""
    try:
        year, mon = (int(part) for part in month.split("-"))
        first = date(year, mon, 1)
    except ValueError as exc:
        raise ValueError(f"month must look like 2026-10, got {month!r}") from exc
    return first, first.replace(day=calendar.monthrange(year, mon)[1])


def utc_text(at_ms: int) -> str:
    """Epoch milliseconds as an ISO-8601 UTC string, computed in integers (no float rounding)."""
    return (_EPOCH + timedelta(milliseconds=at_ms)).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# JSON

_DERIVED_LINE_KEYS = ("amount",)
_DERIVED_CREDIT_KEYS = ("amount", "at")
_DERIVED_TAX_KEYS = ("amount",)
_DERIVED_TOP_KEYS = ("total", "total_due", "subtotal", "credits_total_micro", "credits_total")


def _json_document(invoice: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(invoice)
    doc.setdefault("credits", [])
    for line in doc["lines"]:
        line["amount"] = format_credits(line["amount_micro"])
    for credit in doc["credits"]:
        credit["amount"] = format_credits(credit["amount_micro"])
        credit["at"] = utc_text(credit["at_ms"])
    for tax in doc.get("taxes") or []:
        tax["amount"] = format_credits(tax["amount_micro"])
    if "subtotal_micro" in doc:
        doc["subtotal"] = format_credits(doc["subtotal_micro"])
    credits_total = sum(c["amount_micro"] for c in doc["credits"])
    doc["total"] = format_credits(doc["total_micro"])
    doc["total_due"] = due_text(invoice, invoice["total_micro"])
    doc["credits_total_micro"] = credits_total
    doc["credits_total"] = format_credits(credits_total)
    return doc


def render_json(invoice: dict[str, Any]) -> bytes:
    """Sorted keys, 2-space indent, UTF-8, final newline; each ``*_micro`` integer gets a decimal string beside it."""
    validate_invoice(invoice)
    text = json.dumps(_json_document(invoice), sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def parse_json(data: bytes) -> dict[str, Any]:
    """Inverse of ``render_json``: drop the derived strings after checking they agree with the integers."""
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("an invoice JSON document must be an object")
    invoice = copy.deepcopy(doc)
    for key in _DERIVED_TOP_KEYS:
        invoice.pop(key, None)
    for line in invoice.get("lines", []):
        for key in _DERIVED_LINE_KEYS:
            line.pop(key, None)
    for credit in invoice.get("credits", []):
        for key in _DERIVED_CREDIT_KEYS:
            credit.pop(key, None)
    for tax in invoice.get("taxes") or []:
        for key in _DERIVED_TAX_KEYS:
            tax.pop(key, None)
    validate_invoice(invoice)
    if _json_document(invoice) != doc:
        raise ValueError("derived amount strings disagree with the integer micro amounts")
    return invoice


# ---------------------------------------------------------------------------------------------
# CSV


def _csv_text(value: str) -> str:
    """Neutralise text a spreadsheet would run as a formula (model names and memos are user-influenced)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _money_cells(micro: int, currency: str) -> dict[str, str]:
    return {"amount": format_credits(micro), "currency": currency, "amount_micro": str(micro)}


def csv_rows(invoice: dict[str, Any]) -> list[dict[str, str]]:
    """The CSV as dicts: one ``line`` row per model (followed by one ``unit`` row per unit it was metered
    in beyond tokens: ``kind`` the unit, ``memo`` the quantity in words), one ``credit`` row per credit,
    then (with taxes) a ``subtotal`` and one ``tax`` row each, then a ``total`` row. Amounts are exact: a
    decimal string and the integer micro-units; ``invoice`` is the number, or DRAFT on every row of a draft."""
    currency = invoice["currency"]
    blank = dict.fromkeys(CSV_COLUMNS, "") | {"invoice": invoice.get("number") or "DRAFT"}
    rows = []
    for line in invoice["lines"]:
        rows.append(
            {
                **blank,
                "row": "line",
                "model": _csv_text(line["model"]),
                "requests": str(line["requests"]),
                "input_tokens": str(line["input_tokens"]),
                "output_tokens": str(line["output_tokens"]),
                **_money_cells(line["amount_micro"], currency),
            }
        )
        rows += [
            {**blank, "row": "unit", "model": _csv_text(line["model"]), "kind": unit, "memo": unit_text(unit, amount)}
            for unit, amount in sorted((line.get("units") or {}).items())
        ]
    rows += [
        {
            **blank,
            "row": "credit",
            "kind": _csv_text(credit["kind"]),
            "source": _csv_text(credit["source_id"]),
            "at": utc_text(credit["at_ms"]),
            "memo": _csv_text(credit.get("memo") or ""),
            **_money_cells(credit["amount_micro"], currency),
        }
        for credit in invoice.get("credits", [])
    ]
    taxes = taxes_of(invoice)
    if taxes:
        rows.append({**blank, "row": "subtotal", **_money_cells(subtotal_of(invoice), currency)})
        rows += [
            {**blank, "row": "tax", "kind": _csv_text(tax["name"]), "memo": f"{tax['rate']} %"}
            | _money_cells(tax["amount_micro"], currency)
            for tax in taxes
        ]
    rows.append(
        {
            **blank,
            "row": "total",
            "requests": str(sum(line["requests"] for line in invoice["lines"])),
            "input_tokens": str(sum(line["input_tokens"] for line in invoice["lines"])),
            "output_tokens": str(sum(line["output_tokens"] for line in invoice["lines"])),
            **_money_cells(invoice["total_micro"], currency),
        }
    )
    return rows


_UNIT_WORDS = {
    "speech_characters": "characters of speech",
    "audio_seconds": "seconds of audio",
    "video_seconds": "seconds of video",
    "music_seconds": "seconds of music",
    "stored_bytes": "bytes stored",
    "audio_input_tokens": "audio input tokens",
    "audio_output_tokens": "audio output tokens",
    "cache_hit_tokens": "tokens served from cache",
}


def unit_text(unit: str, amount: int) -> str:
    """A quantity as people read it: '2 images 1024x1024/hd', '1,200 characters of speech'."""
    if unit.startswith("images:"):
        return f"{amount:,} image{'s' if amount != 1 else ''} {unit.removeprefix('images:')}"
    return f"{amount:,} {_UNIT_WORDS.get(unit, unit.replace('_', ' '))}"


def render_csv(invoice: dict[str, Any]) -> bytes:
    """RFC 4180 CSV (CRLF, minimal quoting, UTF-8 without BOM) with a header row; see ``csv_rows``."""
    validate_invoice(invoice)
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(csv_rows(invoice))
    return out.getvalue().encode("utf-8")


def render_pdf(invoice: dict[str, Any]) -> bytes:
    """A printable A4 invoice (see ``invoice_pdf``); fpdf2 is imported here, on first use."""
    from server.billing.invoice_pdf import render

    validate_invoice(invoice)
    return render(invoice)
