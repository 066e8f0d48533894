"""Render one invoice (a plain dict) to JSON, CSV and PDF bytes.

Every renderer is a pure function of the dict: no clock, no randomness, no locale, so re-exporting
a closed month gives byte-identical files (the PDF's creation date comes from ``issued_on``).
Amounts stay integer micro-units; the decimal strings beside them come from ``format_credits``.
"""

from __future__ import annotations

import calendar
import copy
import csv
import io
import json
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fpdf import FPDF
from fpdf.fonts import FontFace

from server.money import format_credits

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
)
CREDIT_LABELS = {"topup": "Top-up", "refund": "Refund", "adjustment": "Adjustment"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # spreadsheet formula triggers (CSV injection)
_PAGES_ALIAS = "{invoice-total-pages}"  # an alias no invoice text will contain by accident
_FONT = "Helvetica"  # a core PDF font: nothing to embed, so nothing that can vary between machines


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


def validate_invoice(invoice: dict[str, Any]) -> None:
    """Refuse an invoice that would render wrongly: floats for money, or a total that is not the lines' sum."""
    for key in ("number", "month", "currency", "issued_on", "status"):
        _need_str(key, invoice.get(key))
    _month_bounds(invoice["month"])
    date.fromisoformat(invoice["issued_on"])
    project = invoice.get("project")
    if not isinstance(project, dict):
        raise ValueError("project must be an object")
    for key in ("id", "name"):
        _need_str(f"project.{key}", project.get(key))
    lines, credits = invoice.get("lines"), invoice.get("credits", [])
    if not isinstance(lines, list) or not isinstance(credits, list):
        raise ValueError("lines and credits must be lists")
    if not all(isinstance(item, dict) for item in [*lines, *credits]):
        raise ValueError("every line and credit must be an object")
    for i, line in enumerate(lines):
        _need_str(f"lines[{i}].model", line.get("model"))
        for key in ("requests", "input_tokens", "output_tokens"):
            _need_int(f"lines[{i}].{key}", line.get(key), minimum=0)
        _need_int(f"lines[{i}].amount_micro", line.get("amount_micro"))
    for i, credit in enumerate(credits):
        _need_str(f"credits[{i}].kind", credit.get("kind"))
        _need_str(f"credits[{i}].source_id", credit.get("source_id"))
        _need_int(f"credits[{i}].at_ms", credit.get("at_ms"), minimum=0)
        _need_int(f"credits[{i}].amount_micro", credit.get("amount_micro"))
    total = _need_int("total_micro", invoice.get("total_micro"))
    line_sum = sum(line["amount_micro"] for line in lines)
    if total != line_sum:
        raise ValueError(f"total_micro {total} != sum of line amounts {line_sum}")


def _month_bounds(month: str) -> tuple[date, date]:
    """First and last day of a 'YYYY-MM' month."""
    try:
        year, mon = (int(part) for part in month.split("-"))
        first = date(year, mon, 1)
    except ValueError as exc:
        raise ValueError(f"month must look like 2026-10, got {month!r}") from exc
    return first, first.replace(day=calendar.monthrange(year, mon)[1])


def _utc_text(at_ms: int) -> str:
    """Epoch milliseconds as an ISO-8601 UTC string, computed in integers (no float rounding)."""
    return (_EPOCH + timedelta(milliseconds=at_ms)).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# JSON

_DERIVED_LINE_KEYS = ("amount",)
_DERIVED_CREDIT_KEYS = ("amount", "at")
_DERIVED_TOP_KEYS = ("total", "credits_total_micro", "credits_total")


def _json_document(invoice: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(invoice)
    doc.setdefault("credits", [])
    for line in doc["lines"]:
        line["amount"] = format_credits(line["amount_micro"])
    for credit in doc["credits"]:
        credit["amount"] = format_credits(credit["amount_micro"])
        credit["at"] = _utc_text(credit["at_ms"])
    credits_total = sum(c["amount_micro"] for c in doc["credits"])
    doc["total"] = format_credits(doc["total_micro"])
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
    validate_invoice(invoice)
    if _json_document(invoice) != doc:
        raise ValueError("derived amount strings disagree with the integer micro amounts")
    return invoice


# ---------------------------------------------------------------------------------------------
# CSV


def _csv_text(value: str) -> str:
    """Neutralise text a spreadsheet would run as a formula (model names and memos are user-influenced)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_rows(invoice: dict[str, Any]) -> list[dict[str, str]]:
    """The CSV as dicts: one ``line`` row per model, one ``credit`` row per credit, then a ``total`` row."""
    currency = invoice["currency"]
    blank = dict.fromkeys(CSV_COLUMNS, "")
    rows = [
        {
            **blank,
            "row": "line",
            "model": _csv_text(line["model"]),
            "requests": str(line["requests"]),
            "input_tokens": str(line["input_tokens"]),
            "output_tokens": str(line["output_tokens"]),
            "amount": format_credits(line["amount_micro"]),
            "currency": currency,
        }
        for line in invoice["lines"]
    ]
    rows += [
        {
            **blank,
            "row": "credit",
            "kind": _csv_text(credit["kind"]),
            "source": _csv_text(credit["source_id"]),
            "at": _utc_text(credit["at_ms"]),
            "memo": _csv_text(credit.get("memo") or ""),
            "amount": format_credits(credit["amount_micro"]),
            "currency": currency,
        }
        for credit in invoice.get("credits", [])
    ]
    rows.append(
        {
            **blank,
            "row": "total",
            "requests": str(sum(line["requests"] for line in invoice["lines"])),
            "input_tokens": str(sum(line["input_tokens"] for line in invoice["lines"])),
            "output_tokens": str(sum(line["output_tokens"] for line in invoice["lines"])),
            "amount": format_credits(invoice["total_micro"]),
            "currency": currency,
        }
    )
    return rows


def render_csv(invoice: dict[str, Any]) -> bytes:
    """RFC 4180 CSV (CRLF, minimal quoting, UTF-8 without BOM) with a header row; see ``csv_rows``."""
    validate_invoice(invoice)
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(csv_rows(invoice))
    return out.getvalue().encode("utf-8")


# ---------------------------------------------------------------------------------------------
# PDF


def _pdf_text(value: str) -> str:
    """Core PDF fonts only cover Latin-1: keep what fits, strip accents from the rest, else '?'."""
    out = []
    for char in value:
        if ord(char) < 256:
            out.append(char)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", char) if ord(c) < 256 and not unicodedata.combining(c))
        out.append(base or "?")
    return "".join(out)


def _month_label(month: str) -> str:
    first, last = _month_bounds(month)
    return f"{calendar.month_name[first.month]} {first.year} ({first.isoformat()} to {last.isoformat()})"


class _InvoicePDF(FPDF):
    """A4 portrait with a running header (after page one) and a 'page x of n' footer."""

    def __init__(self, number: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self._number = number

    def header(self) -> None:
        if self.page_no() > 1:
            self.set_font(_FONT, size=8)
            self.set_text_color(90)
            self.cell(0, 6, _pdf_text(f"Invoice {self._number} (continued)"), align="R")
            self.set_text_color(0)
            self.ln(10)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(_FONT, size=8)
        self.set_text_color(90)
        self.cell(0, 10, _pdf_text(f"Invoice {self._number} - page {self.page_no()} of {_PAGES_ALIAS}"), align="C")
        self.set_text_color(0)


def _key_values(pdf: FPDF, pairs: Iterable[tuple[str, str]]) -> None:
    for key, value in pairs:
        pdf.set_font(_FONT, style="B", size=10)
        pdf.cell(38, 6, _pdf_text(key))
        pdf.set_font(_FONT, size=10)
        pdf.multi_cell(0, 6, _pdf_text(value), new_x="LMARGIN", new_y="NEXT")


def _section(pdf: FPDF, title: str) -> None:
    pdf.ln(4)
    pdf.set_font(_FONT, style="B", size=12)
    pdf.cell(0, 8, _pdf_text(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(_FONT, size=9)


def _table(
    pdf: FPDF,
    headings: Sequence[str],
    rows: Sequence[Sequence[str]],
    widths: Sequence[float],
    aligns: Sequence[str],
    bold_last: bool = False,
) -> None:
    """A bordered table; fpdf2 breaks it across pages and repeats the heading row."""
    with pdf.table(
        col_widths=tuple(widths),
        text_align=tuple(aligns),
        line_height=5.5,
        padding=0.8,
        headings_style=FontFace(emphasis="BOLD", fill_color=(232, 232, 232)),
        borders_layout="HORIZONTAL_LINES",
        width=pdf.epw,
    ) as table:
        head = table.row()
        for text in headings:
            head.cell(_pdf_text(text))
        for i, cells in enumerate(rows):
            style = FontFace(emphasis="BOLD") if bold_last and i == len(rows) - 1 else None
            row = table.row(style=style)
            for text in cells:
                row.cell(_pdf_text(text))


def render_pdf(invoice: dict[str, Any]) -> bytes:
    """A printable A4 invoice: header block, usage table with total, credits listed separately."""
    validate_invoice(invoice)
    number, currency, project = invoice["number"], invoice["currency"], invoice["project"]
    issued = date.fromisoformat(invoice["issued_on"])
    pdf = _InvoicePDF(number)
    pdf.set_creation_date(datetime(issued.year, issued.month, issued.day, tzinfo=UTC))
    pdf.set_title(_pdf_text(f"Invoice {number}"))
    pdf.set_subject(_pdf_text(f"Usage of project {project['name']} in {invoice['month']}"))
    pdf.set_creator("llm-gateway")
    pdf.set_lang("en")
    pdf.alias_nb_pages(_PAGES_ALIAS)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()

    pdf.set_font(_FONT, style="B", size=20)
    pdf.cell(0, 12, _pdf_text(f"Invoice {number}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    billing = project.get("billing") or ""
    _key_values(
        pdf,
        [
            ("Project", f"{project['name']} ({project['id']})"),
            *([("Billing", billing)] if billing else []),
            ("Period", _month_label(invoice["month"])),
            ("Issued on", invoice["issued_on"]),
            ("Status", str(invoice["status"]).capitalize()),
            ("Currency", currency),
        ],
    )

    _section(pdf, "Usage by model")
    lines = invoice["lines"]
    usage_rows = [
        [
            line["model"],
            f"{line['requests']:,}",
            f"{line['input_tokens']:,}",
            f"{line['output_tokens']:,}",
            format_credits(line["amount_micro"]),
        ]
        for line in lines
    ]
    usage_rows.append(
        [
            "Total",
            f"{sum(line['requests'] for line in lines):,}",
            f"{sum(line['input_tokens'] for line in lines):,}",
            f"{sum(line['output_tokens'] for line in lines):,}",
            f"{format_credits(invoice['total_micro'])} {currency}",
        ]
    )
    _table(
        pdf,
        ["Model", "Requests", "Input tokens", "Output tokens", f"Amount ({currency})"],
        usage_rows,
        widths=(34, 14, 17, 17, 18),
        aligns=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
        bold_last=True,
    )

    _section(pdf, "Credits and top-ups")
    credits = invoice.get("credits", [])
    if credits:
        credit_rows = [
            [
                _utc_text(credit["at_ms"])[:10],
                CREDIT_LABELS.get(credit["kind"], credit["kind"]),
                credit["source_id"],
                credit.get("memo") or "",
                format_credits(credit["amount_micro"]),
            ]
            for credit in credits
        ]
        _table(
            pdf,
            ["Date (UTC)", "Kind", "Source", "Memo", f"Amount ({currency})"],
            credit_rows,
            widths=(14, 12, 28, 28, 18),
            aligns=("LEFT", "LEFT", "LEFT", "LEFT", "RIGHT"),
        )
    else:
        pdf.cell(0, 6, "No credits or top-ups this month.", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font(_FONT, size=8)
    pdf.multi_cell(
        0,
        4,
        _pdf_text(
            f"The total is the usage charged in {invoice['month']}. Credits and top-ups are listed for reference "
            "and are not deducted from it. Amounts are in "
            f"{currency} with up to 6 decimals."
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    return bytes(pdf.output())
