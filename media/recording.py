"""Final recording files from the raw PCM the media workers capture.

A worker writes one raw file per call leg, `<base>.leg0.raw` (parent/caller) and `<base>.leg1.raw`:
little-endian int16, 8 kHz mono, both starting at the same tick.  `finalize` pads the shorter leg (the
worker may have died mid-write) and mixes them to mono or lays them out as two channels, optionally
trims silence, and writes WAV (16-bit PCM, 8 kHz) or MP3.  `convert` serves a stored WAV as MP3.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from media.audio import BRIDGE_RATE, AudioError, AudioFormat, encode, read_wav, write_atomic
from media.trim import trim_silence


@dataclass(frozen=True)
class RecordingInfo:
    """A finished recording file: where it is, how long, how many channels and frames."""

    path: Path
    duration_seconds: float
    channels: int
    samples: int


def leg_path(base: Path, leg: int) -> Path:
    """The raw capture file of one leg: `<base>.leg0.raw` or `<base>.leg1.raw`."""
    return base.with_name(f"{base.name}.leg{leg}.raw")


def read_raw(path: Path) -> npt.NDArray[np.int16] | None:
    """Little-endian int16 samples of a raw capture file (a trailing odd byte is dropped); None if missing."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    usable = len(data) - len(data) % 2
    return np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)


def mix(legs: list[npt.NDArray[np.int16]]) -> npt.NDArray[np.int16]:
    """Sum equal-length int16 signals in int32 and clip to int16."""
    total = np.zeros(legs[0].shape[0], dtype=np.int32)
    for leg in legs:
        total += leg
    return np.clip(total, -32768, 32767).astype(np.int16)


def finalize(
    base: Path,
    out_path: Path,
    channels: Literal[1, 2] = 1,
    trim: bool = False,
    fmt: AudioFormat = "wav",
) -> RecordingInfo:
    """Turn `<base>.leg0.raw`/`<base>.leg1.raw` into `out_path` (written atomically); raw files are kept.

    Mono mixes both legs; dual puts leg0 on channel 1 and leg1 on channel 2 (silent if leg1 is missing).
    Raises AudioError when neither leg file exists or the format cannot be written.
    """
    if channels not in (1, 2):
        raise AudioError(f"recording channels must be 1 or 2, not {channels!r}")
    base = Path(base)
    leg0, leg1 = read_raw(leg_path(base, 0)), read_raw(leg_path(base, 1))
    if leg0 is None and leg1 is None:
        raise AudioError(f"no raw recording at {leg_path(base, 0)}")
    length = max(len(leg) for leg in (leg0, leg1) if leg is not None)
    legs = [_padded(leg, length) for leg in (leg0, leg1)]
    audio = mix(legs) if channels == 1 else np.stack(legs, axis=1)
    if trim:
        audio = trim_silence(audio, BRIDGE_RATE)
    write_atomic(Path(out_path), encode(audio, BRIDGE_RATE, fmt))
    frames = int(audio.shape[0])
    return RecordingInfo(Path(out_path), frames / BRIDGE_RATE, channels, frames)


def convert(wav_path: Path, fmt: AudioFormat) -> bytes:
    """The bytes of a stored recording WAV in `fmt` (`wav` returns the file as is)."""
    if fmt == "wav":
        try:
            return Path(wav_path).read_bytes()
        except OSError as exc:
            raise AudioError(f"cannot read {wav_path}: {exc}") from exc
    samples, rate = read_wav(wav_path)
    return encode(samples, rate, fmt)


def _padded(leg: npt.NDArray[np.int16] | None, length: int) -> npt.NDArray[np.int16]:
    out = np.zeros(length, dtype=np.int16)
    if leg is not None:
        out[: leg.shape[0]] = leg
    return out
