"""The one place that decodes, resamples, encodes and writes audio.

Media workers play 8 kHz 16-bit mono PCM WAV files (`BRIDGE_RATE`); everything playable is turned into
that by `decode` -> `resample` -> `to_pcm16` -> `write_wav` (or `to_bridge_wav`, which does all four).
Resampling is a windowed-sinc (Kaiser) polyphase filter in plain numpy.  Files are written atomically:
a temporary file in the target directory, then `os.replace`, so a worker never plays half a file.
"""

from __future__ import annotations

import io
import os
import tempfile
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import soundfile as sf

BRIDGE_RATE = 8000
"""Sample rate of everything the media workers play and record."""

AudioFormat = Literal["wav", "mp3"]
FloatArray = npt.NDArray[np.float32]
Int16Array = npt.NDArray[np.int16]

_ZERO_CROSSINGS = 24  # filter half-width, in zero crossings of the lower rate's cutoff
_ROLLOFF = 0.94  # cutoff as a fraction of the lower Nyquist frequency
_KAISER_BETA = 8.0  # flat to 3.4 kHz at 8 kHz, over 80 dB stop-band attenuation


class AudioError(Exception):
    """Audio that cannot be fetched, decoded, synthesized or encoded; `url`/`status` say where it came from."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


def decode(data: bytes) -> tuple[FloatArray, int]:
    """Decode a whole audio file held in memory (WAV, MP3, FLAC, OGG, ...) to mono float32 and its rate.

    Raises AudioError for empty, corrupt, unsupported or sample-less data.
    """
    if not data:
        raise AudioError("empty audio data (0 bytes)")
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"cannot decode audio ({len(data)} bytes): {exc}") from exc
    if samples.shape[0] == 0:
        raise AudioError(f"audio file ({len(data)} bytes) holds no samples")
    mono = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    return np.ascontiguousarray(mono, dtype=np.float32), int(rate)


@lru_cache(maxsize=16)
def _polyphase_filter(up: int, down: int) -> npt.NDArray[np.float64]:
    """Filter bank of shape (up, taps): row p holds the time-reversed taps of phase p."""
    ratio = max(up, down)
    half = _ZERO_CROSSINGS * ratio
    n = np.arange(-half, half + 1, dtype=np.float64)
    cutoff = _ROLLOFF / ratio
    h = cutoff * np.sinc(cutoff * n) * np.kaiser(2 * half + 1, _KAISER_BETA)
    h *= up / h.sum()
    taps = -(-h.size // up)
    padded = np.zeros(taps * up)
    padded[: h.size] = h
    # padded[p + up * j] is tap j of phase p; reversed so a sliding window dot product applies it
    return np.ascontiguousarray(padded.reshape(taps, up).T[:, ::-1])


def resample(samples: npt.ArrayLike, from_rate: int, to_rate: int) -> FloatArray:
    """Resample a 1-D signal by the exact ratio `to_rate / from_rate` (windowed-sinc polyphase, ~80 dB).

    The output has `ceil(len * to_rate / from_rate)` samples and no delay; content above the lower rate's
    Nyquist frequency is filtered out before decimation.
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"resample expects a 1-D signal, got shape {x.shape}")
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"invalid sample rates {from_rate} -> {to_rate}")
    if from_rate == to_rate or x.size == 0:
        return x.copy()
    ratio = Fraction(to_rate, from_rate)
    up, down = ratio.numerator, ratio.denominator
    bank = _polyphase_filter(up, down).astype(np.float32)
    taps = bank.shape[1]
    half = _ZERO_CROSSINGS * max(up, down)
    out_len = -(-x.size * up // down)
    # output m uses phase (m*down + half) % up and input window ending at (m*down + half) // up
    last = ((out_len - 1) * down + half) // up
    xp = np.zeros(taps - 1 + max(x.size, last + 1), dtype=np.float32)
    xp[taps - 1 : taps - 1 + x.size] = x
    windows = np.lib.stride_tricks.sliding_window_view(xp, taps)
    out = np.empty(out_len, dtype=np.float32)
    for m0 in range(min(up, out_len)):
        t = m0 * down + half
        count = len(range(m0, out_len, up))
        start = t // up
        out[m0::up] = windows[start : start + down * count : down] @ bank[t % up]
    return out


def to_pcm16(samples: npt.ArrayLike) -> Int16Array:
    """Float samples in [-1, 1] to int16 (scale 32768, rounded, clipped); int16 input is returned as a copy."""
    x = np.asarray(samples)
    if x.dtype == np.int16:
        return x.copy()
    scaled = np.rint(np.nan_to_num(x.astype(np.float64)) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def encode(samples: npt.ArrayLike, rate: int = BRIDGE_RATE, fmt: AudioFormat = "wav") -> bytes:
    """Encode int16 samples, shape (n,) or (n, channels), as a 16-bit PCM WAV or an MP3 file image."""
    pcm = to_pcm16(samples)
    options: dict[str, Any]
    if fmt == "wav":
        options = {"format": "WAV", "subtype": "PCM_16"}
    elif fmt == "mp3":
        if "MP3" not in sf.available_formats():
            raise AudioError(f"MP3 encoding is not supported by libsndfile {sf.__libsndfile_version__}")
        options = {"format": "MP3", "subtype": "MPEG_LAYER_III"}
        if pcm.shape[0] == 0:  # libsndfile writes nothing for no frames; one silent sample makes a valid file
            pcm = np.zeros((1, *pcm.shape[1:]), dtype=np.int16)
    else:
        raise AudioError(f"unsupported output format {fmt!r}")
    buf = io.BytesIO()
    try:
        sf.write(buf, pcm, rate, **options)
    except (sf.SoundFileError, RuntimeError, ValueError) as exc:
        raise AudioError(f"cannot encode {fmt}: {exc}") from exc
    return buf.getvalue()


def write_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to `path` via a temporary file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_wav(path: Path, samples: npt.ArrayLike, rate: int = BRIDGE_RATE) -> Path:
    """Atomically write int16 samples, shape (n,) or (n, channels), as a 16-bit PCM WAV file."""
    return write_atomic(path, encode(samples, rate, "wav"))


def read_wav(path: Path) -> tuple[Int16Array, int]:
    """Read a WAV (or any libsndfile-readable) file as int16: shape (n,) if mono, else (n, channels)."""
    try:
        samples, rate = sf.read(str(path), dtype="int16")
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"cannot read {path}: {exc}") from exc
    return np.asarray(samples, dtype=np.int16), int(rate)


def to_bridge(samples: npt.ArrayLike, rate: int) -> Int16Array:
    """Mono float samples at `rate` to int16 at `BRIDGE_RATE`."""
    return to_pcm16(resample(samples, rate, BRIDGE_RATE))


def to_bridge_wav(data: bytes, path: Path) -> Path:
    """Decode any playable file image and write it to `path` as an 8 kHz mono 16-bit WAV."""
    samples, rate = decode(data)
    return write_wav(path, to_bridge(samples, rate), BRIDGE_RATE)
