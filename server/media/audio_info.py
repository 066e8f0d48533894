"""How long an audio file is, from its first bytes: exact for WAV (RIFF) headers, else a bound from its
size. The bound is what a transcription's reservation holds, so it must never be below the truth: at 8
kbit/s (1,000 bytes a second, below any speech codec's usual rate) a file cannot last longer.
"""

from __future__ import annotations

import math
import struct

BOUND_BYTES_PER_SECOND = 1_000


def wav_seconds(head: bytes) -> float | None:
    """The duration a WAV header states (its `fmt ` byte rate and `data` size), or None when it is not one."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    offset, byte_rate, data_size = 12, None, None
    while offset + 8 <= len(head):
        chunk, size = head[offset : offset + 4], struct.unpack("<I", head[offset + 4 : offset + 8])[0]
        if chunk == b"fmt " and offset + 20 <= len(head):
            byte_rate = struct.unpack("<I", head[offset + 16 : offset + 20])[0]
        elif chunk == b"data":
            data_size = size
            break
        offset += 8 + size + (size & 1)
    if not byte_rate or data_size is None:
        return None
    return data_size / byte_rate


def seconds_bound(size: int, head: bytes) -> int:
    """Whole seconds the audio lasts at most: the WAV header's duration when it has one, else the size bound."""
    stated = wav_seconds(head)
    if stated is not None:
        return max(1, math.ceil(stated))
    return max(1, math.ceil(size / BOUND_BYTES_PER_SECOND))
