"""A recording's files: how one call's tracks map onto tap channels, and raw legs -> final WAV (in a thread).

`switch.core.recordings` runs these; they touch only the files under the recordings directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from media.audio import read_wav, write_wav
from media.recording import finalize, leg_path
from media.trim import trim_silence
from switch.core.recording_model import RecordingProblem

NOT_CAPTURED = RecordingProblem.NOTHING_CAPTURED
SILENT = RecordingProblem.SILENT


@dataclass(frozen=True)
class Outcome:
    """What finalizing a recording came to: its whole seconds, or why it is absent."""

    duration: int = 0
    problem: RecordingProblem | None = None


def track_layout(track: str, channels: int) -> tuple[bool, int | None, int]:
    """How a recording of one call's `track` (inbound, outbound, both) is tapped: whether channel 1 hears what
    the call sends, which channel (if any) hears what it is sent, and how many raw channels (mono mixes them)."""
    inbound, outbound = track != "outbound", track != "inbound"
    if channels == 2:
        return inbound, (1 if outbound else None), 2
    if inbound and outbound:
        return True, 1, 2
    return inbound, (0 if outbound else None), 1


def discard(base: Path) -> Outcome:
    """Thread: the raw legs of a failed tap are removed; the recording is absent."""
    for leg in (leg_path(base, i) for i in (0, 1)):
        leg.unlink(missing_ok=True)
    return Outcome(problem=NOT_CAPTURED)


def produce(base: Path, out: Path, channels: Literal[1, 2], trim: bool) -> Outcome:
    """Thread: raw legs -> final WAV; the raw files are removed once they are no longer needed."""
    legs = [leg_path(base, i) for i in (0, 1)]
    if max((leg.stat().st_size for leg in legs if leg.exists()), default=0) < 2:
        outcome = Outcome(problem=NOT_CAPTURED)
    else:
        info = finalize(base, out, channels, trim)
        if info.samples == 0:
            out.unlink(missing_ok=True)
            outcome = Outcome(problem=SILENT)
        else:
            outcome = Outcome(duration=max(1, round(info.duration_seconds)))
    for leg in legs:
        leg.unlink(missing_ok=True)
    return outcome


def finish_wav(path: Path, trim: bool) -> Outcome:
    """Thread: a recording written as a WAV by someone else (a conference's mix) -> its final WAV, trimmed of
    leading and trailing silence when asked; absent when missing, empty or all silence."""
    if not path.exists() or path.stat().st_size <= 44:
        path.unlink(missing_ok=True)
        return Outcome(problem=NOT_CAPTURED)
    samples, rate = read_wav(path)
    if trim:
        samples = trim_silence(samples, rate)
    if len(samples) == 0:
        path.unlink(missing_ok=True)
        return Outcome(problem=SILENT)
    write_wav(path, samples, rate)
    return Outcome(duration=max(1, round(len(samples) / rate)))
