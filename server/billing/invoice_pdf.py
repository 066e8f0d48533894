"""The invoice as a printable A4 PDF (fpdf2): issuer and bill-to, number and dates, usage by model,
subtotal, tax and total due, payment terms, credits for reference; DRAFT across every page of a draft.

A pure function of the (validated) invoice dict: core fonts only (nothing embedded that could vary
between machines), the creation date from the issue date (a draft's as-of date), so a closed month
renders byte-identical every time. Long invoices break across pages with the table heading repeated,
a running header naming the invoice and "page x of n" in the footer.
"""

from __future__ import annotations

import calendar
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from fpdf import FPDF
from fpdf.fonts import FontFace

from server.billing.invoice_render import (
    CREDIT_LABELS,
    due_text,
    month_dates,
    subtotal_of,
    taxes_of,
    unit_text,
    utc_text,
)
from server.money import currency_decimals, format_credits, format_number

_PAGES_ALIAS = "{invoice-total-pages}"  # an alias no invoice text will contain by accident
_FONT = "Helvetica"  # a core PDF font: nothing to embed, so nothing that can vary between machines
_GREY = 90
_WATERMARK_GREY = 222
_PARTY_KEYS = ("name", "address", "tax_id", "email")


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
    first, last = month_dates(month)
    return f"{calendar.month_name[first.month]} {first.year} ({first.isoformat()} to {last.isoformat()})"


def _title(invoice: dict[str, Any]) -> str:
    if invoice.get("number"):
        return f"Invoice {invoice['number']}"
    return f"DRAFT invoice {invoice['project']['name']} {invoice['month']}"


class _InvoicePDF(FPDF):
    """A4 portrait; a running header after page one, 'page x of n' in the footer, DRAFT behind drafts."""

    def __init__(self, title: str, draft: bool) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self._title = title
        self._draft = draft

    def header(self) -> None:
        if self._draft:
            self._watermark()
        if self.page_no() > 1:
            self.set_font(_FONT, size=8)
            self.set_text_color(_GREY)
            self.cell(0, 6, _pdf_text(f"{self._title} (continued)"), align="R")
            self.set_text_color(0)
            self.ln(10)

    def _watermark(self) -> None:
        """DRAFT drawn first on the page, in light grey, so everything else prints over it."""
        self.set_font(_FONT, style="B", size=120)
        self.set_text_color(_WATERMARK_GREY)
        width = self.get_string_width("DRAFT")
        with self.rotation(angle=55, x=self.w / 2, y=self.h / 2):
            self.text(self.w / 2 - width / 2, self.h / 2 + 15, "DRAFT")
        self.set_text_color(0)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(_FONT, size=8)
        self.set_text_color(_GREY)
        self.cell(0, 10, _pdf_text(f"{self._title} - page {self.page_no()} of {_PAGES_ALIAS}"), align="C")
        self.set_text_color(0)


def _lines_block(pdf: FPDF, x: float, y: float, width: float, heading: str, lines: Iterable[str]) -> float:
    """A titled block of text lines at (x, y); returns the y below it."""
    pdf.set_xy(x, y)
    pdf.set_font(_FONT, style="B", size=9)
    pdf.set_text_color(_GREY)
    pdf.cell(width, 5, _pdf_text(heading.upper()), new_x="LEFT", new_y="NEXT")
    pdf.set_text_color(0)
    pdf.set_font(_FONT, size=10)
    for line in lines:
        pdf.set_x(x)
        pdf.multi_cell(width, 5, _pdf_text(line), new_x="LEFT", new_y="NEXT")
    return pdf.get_y()


def _party_lines(party: dict[str, Any] | None, fallback: list[str]) -> list[str]:
    party = party or {}
    lines = []
    for key in _PARTY_KEYS:
        value = (party.get(key) or "").strip()
        if not value:
            continue
        if key == "tax_id":
            value = f"Tax id: {value}"
        lines += value.splitlines() if key == "address" else [value]
    return lines or fallback


def _facts(invoice: dict[str, Any]) -> list[tuple[str, str]]:
    project = invoice["project"]
    days = invoice.get("payment_terms_days")
    draft = invoice["status"] == "draft"
    pairs = [
        ("Invoice number", invoice.get("number") or "assigned when the month closes"),
        ("Status", "DRAFT - figures move until the month ends" if draft else str(invoice["status"]).capitalize()),
        ("Issue date", invoice["issued_on"] if not draft else "not issued"),
        *([("Figures as of", invoice["as_of"])] if draft and invoice.get("as_of") else []),
        ("Period", _month_label(invoice["month"])),
        *([("Due date", invoice["due_on"])] if invoice.get("due_on") else []),
        *([("Payment terms", f"Net {days} days")] if days is not None else []),
        ("Project", f"{project['name']} ({project['id']})"),
        *([("Billing", project["billing"])] if project.get("billing") else []),
        ("Currency", invoice["currency"]),
    ]
    return pairs


def _key_values(pdf: FPDF, x: float, y: float, pairs: Iterable[tuple[str, str]]) -> float:
    pdf.set_xy(x, y)
    for key, value in pairs:
        pdf.set_x(x)
        pdf.set_font(_FONT, style="B", size=9)
        pdf.cell(30, 5, _pdf_text(key))
        pdf.set_font(_FONT, size=9)
        pdf.multi_cell(pdf.w - pdf.r_margin - x - 30, 5, _pdf_text(value), new_x="LMARGIN", new_y="NEXT")
    return pdf.get_y()


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
    """A table with horizontal rules; fpdf2 breaks it across pages and repeats the heading row."""
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


def _usage(pdf: FPDF, invoice: dict[str, Any]) -> None:
    currency, lines, taxes = invoice["currency"], invoice["lines"], taxes_of(invoice)
    rows = []
    for line in lines:
        units = sorted((line.get("units") or {}).items())
        metered = "".join(f"\n  {unit_text(unit, amount)}" for unit, amount in units)
        rows.append(
            [
                line["model"] + metered,
                f"{line['requests']:,}",
                f"{line['input_tokens']:,}",
                f"{line['output_tokens']:,}",
                due_text(invoice, line["amount_micro"]),
            ]
        )
    rows.append(
        [
            "Subtotal" if taxes else "Total",
            f"{sum(line['requests'] for line in lines):,}",
            f"{sum(line['input_tokens'] for line in lines):,}",
            f"{sum(line['output_tokens'] for line in lines):,}",
            f"{due_text(invoice, subtotal_of(invoice))} {currency}",
        ]
    )
    _table(
        pdf,
        ["Model", "Requests", "Input tokens", "Output tokens", f"Amount ({currency})"],
        rows,
        widths=(34, 14, 17, 17, 18),
        aligns=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
        bold_last=True,
    )


def _totals(pdf: FPDF, invoice: dict[str, Any]) -> None:
    """Each tax and the total due, right-aligned under the table (whose last row is the subtotal when
    there is tax); then the exact total, since the amounts shown are rounded."""
    currency = invoice["currency"]
    pairs = [(f"{tax['name']} ({tax['rate']} %)", tax["amount_micro"]) for tax in taxes_of(invoice)]
    pairs.append(("Total due" if invoice["status"] != "draft" else "Total so far", invoice["total_micro"]))
    pdf.ln(3)
    for i, (label, micro) in enumerate(pairs):
        last = i == len(pairs) - 1
        pdf.set_font(_FONT, style="B" if last else "", size=11 if last else 10)
        pdf.set_x(pdf.l_margin + pdf.epw - 110)
        pdf.cell(70, 6, _pdf_text(label), align="R")
        pdf.cell(40, 6, _pdf_text(f"{due_text(invoice, micro)} {currency}"), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(_FONT, size=8)
    pdf.set_text_color(_GREY)
    exact = f"Exact total: {format_credits(invoice['total_micro'])} {currency}."
    pdf.multi_cell(
        0,
        4,
        _pdf_text(
            f"{exact} Amounts above are rounded half up to the currency's usual decimals; the CSV and JSON "
            "exports carry every amount exact to 0.000001."
        ),
        align="R",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_text_color(0)


def _payment(pdf: FPDF, invoice: dict[str, Any]) -> None:
    days, note = invoice.get("payment_terms_days"), invoice.get("payment_note") or ""
    if invoice["status"] == "draft":
        text = "This is a draft: it is not a request for payment. The invoice is issued when the month has ended."
    elif days is None:
        text = ""
    elif invoice.get("due_on"):
        text = f"Payment due within {days} days of the issue date, by {invoice['due_on']}."
    else:
        text = f"Payment due within {days} days of the issue date."
    text = " ".join(part for part in (text, note.strip()) if part)
    if text:
        _section(pdf, "Payment")
        pdf.multi_cell(0, 5, _pdf_text(text), new_x="LMARGIN", new_y="NEXT")


def _credits(pdf: FPDF, invoice: dict[str, Any]) -> None:
    currency = invoice["currency"]
    _section(pdf, "Credits and top-ups")
    credits = invoice.get("credits", [])
    if not credits:
        pdf.cell(0, 6, "No credits or top-ups this month.", new_x="LMARGIN", new_y="NEXT")
        return
    rows = [
        [
            utc_text(credit["at_ms"])[:10],
            CREDIT_LABELS.get(credit["kind"], credit["kind"]),
            credit["source_id"],
            credit.get("memo") or "",
            format_number(credit["amount_micro"], currency_decimals(currency), grouping=True),
        ]
        for credit in credits
    ]
    _table(
        pdf,
        ["Date (UTC)", "Kind", "Source", "Memo", f"Amount ({currency})"],
        rows,
        widths=(14, 12, 28, 28, 18),
        aligns=("LEFT", "LEFT", "LEFT", "LEFT", "RIGHT"),
    )
    pdf.ln(2)
    pdf.set_font(_FONT, size=8)
    pdf.multi_cell(
        0, 4, "Credits and top-ups are listed for reference and are not deducted from the total.", new_x="LMARGIN"
    )


def render(invoice: dict[str, Any]) -> bytes:
    """The PDF bytes of a validated invoice (call through ``invoice_render.render_pdf``)."""
    draft = invoice["status"] == "draft"
    stamp = invoice.get("issued_on") or invoice.get("as_of") or f"{invoice['month']}-01"
    created = date.fromisoformat(stamp)
    title = _title(invoice)
    pdf = _InvoicePDF(title, draft)
    pdf.set_creation_date(datetime(created.year, created.month, created.day, tzinfo=UTC))
    pdf.set_title(_pdf_text(title))
    pdf.set_subject(_pdf_text(f"Usage of project {invoice['project']['name']} in {invoice['month']}"))
    pdf.set_creator("llm-gateway")
    pdf.set_lang("en")
    pdf.alias_nb_pages(_PAGES_ALIAS)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()

    pdf.set_font(_FONT, style="B", size=20)
    pdf.cell(0, 12, _pdf_text(title), new_x="LMARGIN", new_y="NEXT")
    top = pdf.get_y() + 2
    issuer = _party_lines(invoice.get("issuer"), ["(issuer not configured: [billing] issuer_name)"])
    left = _lines_block(pdf, pdf.l_margin, top, 85, "From", issuer)
    bill_to = _party_lines(invoice.get("bill_to"), [invoice["project"]["name"]])
    left = _lines_block(pdf, pdf.l_margin, left + 3, 85, "Bill to", bill_to)
    right = _key_values(pdf, pdf.l_margin + 95, top, _facts(invoice))
    pdf.set_xy(pdf.l_margin, max(left, right))

    _section(pdf, "Usage by model")
    _usage(pdf, invoice)
    _totals(pdf, invoice)
    _payment(pdf, invoice)
    _credits(pdf, invoice)
    return bytes(pdf.output())
