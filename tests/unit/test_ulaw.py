"""G.711 μ-law tables (media.ulaw) against values from the standard and the reference code's behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from media.ulaw import ulaw_decode, ulaw_encode

pytestmark = pytest.mark.unit


def _enc(*samples: int) -> list[int]:
    return list(ulaw_encode(np.array(samples, dtype=np.int16).tobytes()))


def _dec(*codes: int) -> list[int]:
    return np.frombuffer(ulaw_decode(bytes(codes)), dtype=np.int16).tolist()


def test_known_codes() -> None:
    # -1 is -1 on 14 bits (the reference code shifts with the sign), the smallest negative step
    assert _enc(0, -1, 32767, -32768, 1000, -1000) == [0xFF, 0x7E, 0x80, 0x00, 0xCE, 0x4E]
    assert _dec(0xFF, 0x7E, 0x7F, 0x80, 0x00, 0xCE, 0x4E) == [0, -8, 0, 32124, -32124, 988, -988]


def test_every_code_decodes_and_encodes_back_to_itself() -> None:
    codes = [c for c in range(256) if c != 0x7F]  # 0x7F is "negative zero": it decodes to 0, which encodes to 0xFF
    assert list(ulaw_encode(ulaw_decode(bytes(codes)))) == codes


def test_the_error_stays_within_the_segment_step() -> None:
    samples = np.arange(-32000, 32000, 7, dtype=np.int16)
    back = np.frombuffer(ulaw_decode(ulaw_encode(samples.tobytes())), dtype=np.int16).astype(np.int32)
    error = np.abs(back - samples)
    assert np.all(error <= np.maximum(16, np.abs(samples.astype(np.int32)) // 16))


def test_a_trailing_odd_byte_is_ignored() -> None:
    assert len(ulaw_encode(bytes(321))) == 160
