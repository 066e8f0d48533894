"""Stored bodies: cut first (so a huge body costs what a cut one does), yet a key straddling the cut is
still redacted; the bytes scrubber finds every shape the text one does."""

from __future__ import annotations

from server.redact import scrub, scrub_bytes
from server.request_log import pack, unpack

SAMPLES = [
    "no secrets here at all, just words and sk- alone",
    "key gw_live_AbCdEfGh12345678 and sk-proj-abcdefghijklmnop and AIza" + "x" * 30,
    'header "Bearer abcdefgh.ijk" then whsec_ABCDEFGH12 and sk_live_abcdefgh1 and rk_test_abcdefgh1',
    "gwa_admintoken123 sk-ant-api03-abcdefghijk",
]


def test_bytes_and_text_scrubbers_agree() -> None:
    for text in SAMPLES:
        assert scrub_bytes(text.encode()) == scrub(text).encode()


def test_a_key_cut_by_the_limit_is_still_redacted() -> None:
    secret = "sk-proj-" + "s" * 40
    body = ("x" * 1000 + secret + "y" * 5000).encode()
    for limit in (1000, 1004, 1020, 1047):  # the cut lands before, inside and at the end of the key
        blob, truncated = pack(body, limit)
        stored = unpack(blob, truncated)
        assert truncated and len(stored.encode()) <= limit
        assert "s" * 6 not in stored


def test_an_uncut_body_comes_back_whole() -> None:
    body = b'{"messages": [{"content": "hello gw_live_AbCdEfGh12345678"}]}'
    blob, truncated = pack(body, 1 << 20)
    assert not truncated and unpack(blob, truncated) == {"messages": [{"content": "hello [redacted]"}]}
