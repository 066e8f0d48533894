"""PDF helpers for tests: text per page (pypdf) and pages rendered to PNG by pdftoppm (poppler-utils).

`make install-test` installs poppler-utils as root on Debian; `make test` (CI) sets
GATEWAY_TEST_REQUIRE_PDFTOPPM=1 so a missing pdftoppm fails there instead of skipping.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader


def page_texts(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def pdftoppm() -> str:
    found = shutil.which("pdftoppm")
    if found is None:
        message = "pdftoppm is missing: apt-get install poppler-utils (make install-test does it as root)"
        if os.environ.get("GATEWAY_TEST_REQUIRE_PDFTOPPM"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def render_png(data: bytes, folder: Path, dpi: int = 40) -> list[Image.Image]:
    """Every page as a greyscale PNG written by pdftoppm, loaded in page order."""
    pdf = folder / "render.pdf"
    pdf.write_bytes(data)
    subprocess.run([pdftoppm(), "-png", "-gray", "-r", str(dpi), str(pdf), str(folder / "page")], check=True)
    pngs = sorted(folder.glob("page-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    return [Image.open(p).convert("L") for p in pngs]


def ink(image: Image.Image, box_mm: tuple[float, float, float, float], dpi: int = 40, below: int = 128) -> int:
    """Pixels darker than `below` inside a box given in millimetres (left, top, right, bottom)."""
    scale = dpi / 25.4
    left, top, right, bottom = (round(v * scale) for v in box_mm)
    region = image.crop((left, top, right, bottom))
    return sum(1 for value in region.tobytes() if value < below)


def grey(image: Image.Image, box_mm: tuple[float, float, float, float], dpi: int = 40) -> int:
    """Pixels in the watermark's light grey band (neither white paper nor dark text)."""
    scale = dpi / 25.4
    left, top, right, bottom = (round(v * scale) for v in box_mm)
    return sum(1 for value in image.crop((left, top, right, bottom)).tobytes() if 200 <= value <= 240)
