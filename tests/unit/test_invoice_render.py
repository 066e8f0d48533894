"""Invoice exports must be reproducible byte for byte, add up, and print (paginated) as a real PDF."""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from server.billing.invoice_render import CSV_COLUMNS, parse_json, render_csv, render_json, render_pdf
from server.money import format_credits, to_micro
from tests.support.pdf import pdftoppm

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_invoice(n_lines: int = 2, **overrides: Any) -> dict[str, Any]:
    lines = [
        {
            "model": f"model-{i:02d}" if n_lines > 2 else ("gpt-4o-mini", "text-embedding-3-small")[i],
            "requests": 12 + i,
            "input_tokens": 1234 * (i + 1),
            "output_tokens": 567 * i,
            "amount_micro": 1_234_567 + 1_000 * i,
        }
        for i in range(n_lines)
    ]
    invoice: dict[str, Any] = {
        "number": "INV-000001",
        "month": "2026-10",
        "currency": "USD",
        "issued_on": "2026-11-01",
        "project": {"id": "prj_01J9ZX", "name": "acme", "billing": "postpaid"},
        "lines": lines,
        "credits": [
            {
                "kind": "topup",
                "source_id": "evt_1Q2w3E",
                "at_ms": 1_790_000_000_000,
                "amount_micro": 50_000_000,
                "memo": "Stripe top-up",
            },
            {
                "kind": "refund",
                "source_id": "evt_9Z8y",
                "at_ms": 1_790_100_000_123,
                "amount_micro": -2_500_000,
                "memo": "",
            },
        ],
        "total_micro": sum(line["amount_micro"] for line in lines),
        "status": "open",
    }
    return {**invoice, **overrides}


def pdf_text(data: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(data))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


@pytest.mark.parametrize("render", [render_json, render_csv, render_pdf])
def test_outputs_are_byte_identical_across_calls_and_key_order(render: Any) -> None:
    invoice = make_invoice()
    reordered = dict(reversed(list(copy.deepcopy(invoice).items())))
    first, second, third = render(invoice), render(invoice), render(reordered)
    assert isinstance(first, bytes) and first
    assert first == second == third


def test_pdf_is_identical_in_another_process_timezone_and_hash_seed(tmp_path: Path) -> None:
    """A re-export by cron next year (other TZ, other hash seed) must give the same file."""
    invoice = make_invoice(5)
    src = tmp_path / "invoice.json"
    src.write_text(json.dumps(invoice))
    code = (
        "import json, sys; from server.billing.invoice_render import render_pdf, render_csv, render_json; "
        "inv = json.load(open(sys.argv[1])); "
        "sys.stdout.buffer.write(render_pdf(inv) + render_csv(inv) + render_json(inv))"
    )
    env = {**os.environ, "TZ": "Pacific/Kiritimati", "PYTHONHASHSEED": "12345", "LC_ALL": "C"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(src)], cwd=REPO_ROOT, env=env, capture_output=True, check=True
    )
    assert out.stdout == render_pdf(invoice) + render_csv(invoice) + render_json(invoice)


def test_csv_total_equals_sum_of_lines() -> None:
    invoice = make_invoice(7)
    data = render_csv(invoice)
    assert data.startswith(b"row,model,requests,input_tokens,output_tokens,") and b"\r\n" in data
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    lines = [r for r in rows if r["row"] == "line"]
    credits = [r for r in rows if r["row"] == "credit"]
    assert [r["row"] for r in rows] == ["line"] * 7 + ["credit"] * 2 + ["total"]
    total = rows[-1]
    assert total["amount"] == format_credits(invoice["total_micro"])
    assert to_micro(total["amount"]) == sum(to_micro(r["amount"]) for r in lines) == invoice["total_micro"]
    assert int(total["requests"]) == sum(int(r["requests"]) for r in lines)
    assert [r["model"] for r in lines] == [line["model"] for line in invoice["lines"]]
    assert [(r["kind"], r["source"], r["amount"]) for r in credits] == [
        ("topup", "evt_1Q2w3E", "50"),
        ("refund", "evt_9Z8y", "-2.5"),
    ]
    assert credits[0]["at"] == "2026-09-21T14:13:20Z"


@settings(max_examples=60, deadline=None)
@given(amounts=st.lists(st.integers(min_value=-(10**12), max_value=10**12), max_size=30))
def test_csv_total_is_exact_for_any_amounts(amounts: list[int]) -> None:
    lines = [
        {"model": f"m{i}", "requests": 1, "input_tokens": 0, "output_tokens": 0, "amount_micro": a}
        for i, a in enumerate(amounts)
    ]
    invoice = make_invoice(0, lines=lines, credits=[], total_micro=sum(amounts))
    rows = list(csv.DictReader(io.StringIO(render_csv(invoice).decode())))
    assert sum(to_micro(r["amount"]) for r in rows if r["row"] == "line") == to_micro(rows[-1]["amount"])


def test_csv_neutralises_spreadsheet_formulas() -> None:
    invoice = make_invoice()
    invoice["lines"][0]["model"] = "=HYPERLINK(1)"
    invoice["credits"][0]["memo"] = "@SUM(A1)"
    text = render_csv(invoice).decode()
    assert "'=HYPERLINK(1)" in text and "'@SUM(A1)" in text
    assert ",-2.5," in text  # negative amounts are numbers, not formulas: left alone


def test_json_round_trips_and_carries_integer_and_formatted_amounts() -> None:
    invoice = make_invoice(3)
    data = render_json(invoice)
    assert parse_json(data) == invoice
    doc = json.loads(data)
    assert data == (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
    assert doc["total_micro"] == invoice["total_micro"] and doc["total"] == format_credits(invoice["total_micro"])
    assert doc["lines"][0]["amount_micro"] == 1_234_567 and doc["lines"][0]["amount"] == "1.234567"
    assert doc["credits_total_micro"] == 47_500_000 and doc["credits_total"] == "47.5"
    assert all(isinstance(line["amount_micro"], int) for line in doc["lines"])


def test_parse_json_refuses_edited_amount_strings() -> None:
    doc = json.loads(render_json(make_invoice()))
    doc["total"] = "999"
    with pytest.raises(ValueError, match="disagree"):
        parse_json(json.dumps(doc).encode())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"total_micro": 1}, "sum of line amounts"),
        (
            {"lines": [{"model": "x", "requests": 1, "input_tokens": 0, "output_tokens": 0, "amount_micro": 1.5}]},
            "integer",
        ),
        ({"month": "October"}, "month"),
    ],
)
def test_inconsistent_invoices_are_refused(change: dict[str, Any], message: str) -> None:
    invoice = make_invoice(**change)
    for render in (render_json, render_csv, render_pdf):
        with pytest.raises(ValueError, match=message):
            render(invoice)


def test_pdf_parses_and_shows_number_project_and_total() -> None:
    invoice = make_invoice()
    data = render_pdf(invoice)
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    assert reader.metadata is not None and reader.metadata.title == "Invoice INV-000001"
    created = reader.metadata.creation_date
    assert created is not None and created.date().isoformat() == "2026-11-01"
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)  # A4 in points
    pages, text = pdf_text(data)
    assert pages == 1
    for needle in ("INV-000001", "acme", "prj_01J9ZX", "2026-11-01", "October 2026", "gpt-4o-mini"):
        assert needle in text
    assert format_credits(invoice["total_micro"]) == "2.470134"
    assert "2.470134" in text
    assert "Credits and top-ups" in text and "evt_1Q2w3E" in text and "Top-up" in text


def test_sixty_line_invoice_paginates_with_every_line_and_the_total() -> None:
    invoice = make_invoice(60)
    pages, text = pdf_text(render_pdf(invoice))
    assert pages >= 2
    assert all(f"model-{i:02d}" in text for i in range(60))
    assert f"page 1 of {pages}" in text and f"page {pages} of {pages}" in text
    total = format_credits(invoice["total_micro"])
    assert total in text and text.index("model-59") < text.index("Total 2,490 ") < text.index(total)


def test_pdf_survives_text_outside_latin1() -> None:
    invoice = make_invoice(project={"id": "prj_x", "name": "Café 東京 \u2013 team", "billing": "prepaid"})
    _, text = pdf_text(render_pdf(invoice))
    assert "Café" in text


def test_first_page_renders_to_png(tmp_path: Path) -> None:
    pdf = tmp_path / "invoice.pdf"
    pdf.write_bytes(render_pdf(make_invoice(60)))
    subprocess.run([pdftoppm(), "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "p")], check=True)
    pngs = list(tmp_path.glob("p*.png"))
    assert len(pngs) == 1 and pngs[0].read_bytes().startswith(b"\x89PNG")
