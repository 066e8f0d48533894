"""Invoices a business can send: parties, number and dates, terms, tax, totals in the currency's
decimals (exact in CSV/JSON), DRAFT on drafts, and 200 lines that still print right (rendered to PNG)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from server.billing.invoice_render import parse_json, render_csv, render_json, render_pdf, validate_invoice
from server.billing.invoices import tax_micro
from tests.support.pdf import grey, ink, page_texts, render_png
from tests.unit.test_invoice_render import make_invoice

ISSUER = {
    "name": "Gateway Ops GmbH",
    "address": "Hauptstrasse 1\n10115 Berlin\nGermany",
    "tax_id": "DE123456789",
    "email": "billing@gateway.test",
}
BILL_TO = {"name": "ACME Corp Ltd", "address": "1 Road\nLondon", "tax_id": "GB987", "email": "ap@acme.test"}


def business(n_lines: int = 2, *, draft: bool = False, rate: str | None = "20") -> dict[str, Any]:
    invoice = make_invoice(n_lines)
    subtotal = invoice["total_micro"]
    tax = tax_micro(subtotal, rate) if rate is not None else 0
    invoice.update(
        issuer=ISSUER,
        bill_to=BILL_TO,
        payment_terms_days=30,
        payment_note="Bank transfer to IBAN DE00 1234 5678 9012 3456 78",
        subtotal_micro=subtotal,
        taxes=[] if rate is None else [{"name": "VAT", "rate": rate, "amount_micro": tax}],
        total_micro=subtotal + tax,
        due_on="2026-12-01",
    )
    if draft:
        invoice.update(number=None, status="draft", issued_on=None, due_on=None, as_of="2026-10-20")
    return invoice


def test_tax_is_computed_on_integers_and_rounded_half_up() -> None:
    assert tax_micro(10, "20") == 2
    assert tax_micro(3, "20") == 1  # 0.6 micro rounds up
    assert tax_micro(2, "25") == 1  # 0.5 rounds half up
    assert tax_micro(7_404_402, "7.25") == 536_819  # 536,819.145
    assert tax_micro(0, "20") == 0


def test_a_sendable_invoice_names_both_parties_dates_terms_and_tax() -> None:
    invoice = business()
    [text] = page_texts(render_pdf(invoice))
    for needle in (
        "Invoice INV-000001",
        "Gateway Ops GmbH",
        "Hauptstrasse 1",
        "10115 Berlin",
        "DE123456789",
        "billing@gateway.test",
        "ACME Corp Ltd",
        "1 Road",
        "GB987",
        "ap@acme.test",
        "Issue date",
        "2026-11-01",
        "Due date",
        "2026-12-01",
        "Net 30 days",
        "October 2026 (2026-10-01 to 2026-10-31)",
        "VAT (20 %)",
        "Bank transfer to IBAN",
        "Subtotal",
        "Total due",
    ):
        assert needle in text, needle
    subtotal, tax = invoice["subtotal_micro"], invoice["taxes"][0]["amount_micro"]
    assert (subtotal, tax, invoice["total_micro"]) == (2_470_134, 494_027, 2_964_161)
    assert "2.96 USD" in text and "0.49 USD" in text  # the usual decimals, rounded half up
    assert "Exact total: 2.964161 USD" in text
    assert "DRAFT" not in text


def test_csv_and_json_carry_exact_amounts_and_the_tax() -> None:
    invoice = business()
    rows = list(csv.DictReader(io.StringIO(render_csv(invoice).decode())))
    assert [r["row"] for r in rows][-3:] == ["subtotal", "tax", "total"]
    subtotal, tax, total = rows[-3:]
    assert (subtotal["amount_micro"], tax["amount_micro"], total["amount_micro"]) == ("2470134", "494027", "2964161")
    assert total["amount"] == "2.964161" and tax["kind"] == "VAT" and tax["memo"] == "20 %"
    assert {r["invoice"] for r in rows} == {"INV-000001"}
    doc = json.loads(render_json(invoice))
    assert doc["total_micro"] == 2_964_161 and doc["total"] == "2.964161" and doc["total_due"] == "2.96"
    assert doc["taxes"][0]["amount"] == "0.494027" and doc["subtotal"] == "2.470134"
    assert parse_json(render_json(invoice)) == invoice


def test_a_draft_says_draft_has_no_number_and_no_issue_date(tmp_path: Path) -> None:
    draft = business(60, draft=True)
    data = render_pdf(draft)
    texts = page_texts(data)
    assert len(texts) >= 2
    assert all("DRAFT" in text for text in texts)  # the watermark and running header on every page
    assert "INV-" not in "".join(texts) and "assigned when the month closes" in texts[0]
    assert "not issued" in texts[0] and "Figures as of" in texts[0] and "2026-10-20" in texts[0]
    assert "not a request for payment" in "".join(texts)
    rows = list(csv.DictReader(io.StringIO(render_csv(draft).decode())))
    assert {r["invoice"] for r in rows} == {"DRAFT"}
    doc = json.loads(render_json(draft))
    assert doc["status"] == "draft" and doc["number"] is None and doc["issued_on"] is None
    pages = render_png(data, tmp_path)
    (tmp_path / "final").mkdir()
    final = render_png(render_pdf(business(60)), tmp_path / "final")
    centre = (40.0, 100.0, 170.0, 200.0)  # the light grey DRAFT across the middle of every page
    assert len(pages) == len(final)
    assert all(
        grey(draft_page, centre) > grey(final_page, centre) + 1500
        for draft_page, final_page in zip(pages, final, strict=True)
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"number": "INV-000009"}, "a draft has no number"),
        ({"issued_on": "2026-10-31"}, "a draft has no number and no issue date"),
    ],
)
def test_a_draft_with_a_number_or_issue_date_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_invoice({**business(draft=True), **change})


def test_total_must_be_subtotal_plus_taxes() -> None:
    invoice = business()
    invoice["total_micro"] += 1
    with pytest.raises(ValueError, match="subtotal_micro"):
        render_json(invoice)


def test_two_hundred_lines_break_across_pages_with_the_heading_repeated(tmp_path: Path) -> None:
    invoice = business(200)
    data = render_pdf(invoice)
    texts = page_texts(data)
    pages = len(texts)
    assert pages >= 5
    for number, text in enumerate(texts, start=1):
        assert f"page {number} of {pages}" in text
        if number > 1:
            assert "Invoice INV-000001 (continued)" in text
    table_pages = [text for text in texts if "model-" in text]
    assert len(table_pages) >= 4
    assert all("Model" in text and "Requests" in text and "Amount (USD)" in text for text in table_pages)
    everything = "\n".join(texts)
    assert [int(n) for n in re.findall(r"model-(\d+)", everything)] == list(range(200))  # each once, in order
    assert everything.index("model-199") < everything.index("Total due") < everything.index("Exact total")
    images = render_png(data, tmp_path)
    assert len(images) == pages
    for image in images:
        width_mm, height_mm = image.width * 25.4 / 40, image.height * 25.4 / 40
        assert round(width_mm) == 210 and round(height_mm) == 297  # A4
        assert ink(image, (12, 8, 200, 40)) > 0  # something at the top: title or running header + heading
        assert ink(image, (203, 0, 210, 297)) == 0  # nothing runs off the right edge
        assert ink(image, (0, height_mm - 19, 210, height_mm - 16)) == 0  # the body stops above the footer
        assert ink(image, (60, height_mm - 12, 150, height_mm - 8), below=200) > 0  # the (grey) footer is there
