"""G.711 μ-law, the audio of Twilio's Media Streams: 8-bit codes for 16-bit linear samples (ITU-T G.711).

Both directions are table lookups built once at import: 256 linear values for decoding, and one code for each of
the 65,536 possible 16-bit samples for encoding, so a 20 ms frame converts in a few microseconds.  Linear audio
is native-endian int16, as pjmedia hands frames over and as the switch's WAV files hold it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BIAS = 0x84  # added before the segment search, so that every segment's mantissa starts at a power of two
CLIP = 32635  # the largest magnitude that still fits after the bias


def _decode_table() -> npt.NDArray[np.int16]:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS
    return np.where(codes & 0x80, -magnitude, magnitude).astype(np.int16)


def _encode_table() -> npt.NDArray[np.uint8]:
    # on 14-bit samples, as the G.711 reference code and pjmedia do: the shift floors negatives
    samples = np.arange(-32768, 32768, dtype=np.int32) >> 2
    sign = np.where(samples < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(samples), CLIP >> 2) + (BIAS >> 2)
    exponent = np.floor(np.log2(magnitude >> 5 | 1)).astype(np.int32)  # segment: the highest bit above bit 5
    mantissa = (magnitude >> (exponent + 1)) & 0x0F
    codes = ~(sign | (exponent << 4) | mantissa) & 0xFF
    # index by the sample's 16 bits read as unsigned: samples -32768..-1 sit at 32768..65535
    return np.roll(codes.astype(np.uint8), -32768)


DECODE = _decode_table()
ENCODE = _encode_table()


def ulaw_decode(data: bytes) -> bytes:
    """μ-law codes -> native-endian int16 samples (two bytes per code)."""
    return DECODE[np.frombuffer(data, dtype=np.uint8)].tobytes()


def ulaw_encode(pcm: bytes) -> bytes:
    """Native-endian int16 samples -> μ-law codes (an odd trailing byte is ignored)."""
    samples = np.frombuffer(pcm[: len(pcm) & ~1], dtype=np.uint16)
    return ENCODE[samples].tobytes()
