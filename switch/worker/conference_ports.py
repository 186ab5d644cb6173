"""The conference bridge ports of a worker's conferences (`switch.worker.conference`): meters and recorders.

- `Meter`: a sink fed by one member; on the clock thread it takes the RMS of each frame (numpy, a few
  microseconds) and keeps the member's speaking state (`Member.observe`): `SPEAK_FRAMES` frames above `SPEAK_RMS`
  start speaking, `QUIET_FRAMES` below end it; each change is emitted as `ConfSpeaking`.  A muted member counts
  as quiet.
- `Recorder`: a sink writing what the bridge mixes into it to a mono 16-bit WAV, one frame per clock tick.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from dataclasses import dataclass

import numpy as np

from switch.worker.media import Emit
from switch.worker.pjengine import pj
from switch.worker.pjmedia import CLOCK_RATE, FRAME_BYTES, frame_bytes, pcm_format
from switch.workers.protocol import ConfSpeaking

__all__ = ["QUIET_FRAMES", "SPEAK_FRAMES", "SPEAK_RMS", "Member", "Meter", "Recorder"]

log = logging.getLogger("switch.worker.conference")

SPEAK_RMS = 300.0  # a frame louder than this counts as speech
SPEAK_FRAMES = 2  # this many loud frames in a row: speaking
QUIET_FRAMES = 30  # this many quiet frames in a row (600 ms): silent again
_SILENCE = bytes(FRAME_BYTES)


class Meter(pj.AudioMediaPort):  # type: ignore[misc]
    """A sink fed by one member: the energy of what the member sends, turned into `ConfSpeaking` events."""

    def __init__(self, conf: str, member: Member, emit: Emit) -> None:
        super().__init__()
        self.conf = conf
        self.member = member
        self.emit = emit

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        try:
            level = 0.0
            if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
                data = frame_bytes(frame)
                if len(data) == FRAME_BYTES:
                    samples = np.frombuffer(data, dtype=np.int16).astype(np.float32)
                    level = float(np.sqrt(np.dot(samples, samples) / len(samples)))
            change = self.member.observe(level)
            if change is not None:
                self.emit(ConfSpeaking(conf=self.conf, leg=self.member.leg, speaking=change, t=time.time()))
        except Exception:  # never raise into the clock thread
            log.exception("conference %s: meter of %s failed", self.conf, self.member.leg)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        pass  # a sink only


class Recorder(pj.AudioMediaPort):  # type: ignore[misc]
    """A sink that writes what the bridge mixes into it to a mono 16-bit WAV, one frame per clock tick.

    The frame is written on the clock thread (one `os.write` to the page cache); `close` on the pjsua thread
    fills in the header's lengths, so the file is complete when `RecordDone` leaves."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.frames = 0
        self._lock = threading.Lock()
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        os.write(self._fd, _wav_header(0))
        self.createPort(f"conf-rec-{os.path.basename(path)[-12:]}", pcm_format())

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        try:
            data = frame_bytes(frame) if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO else b""
            with self._lock:
                if self._fd is not None:
                    os.write(self._fd, data if len(data) == FRAME_BYTES else _SILENCE)
                    self.frames += 1
        except Exception:  # never raise into the clock thread
            log.exception("conference recording %s: frame lost", self.path)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        pass  # a sink only

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.pwrite(fd, _wav_header(self.frames * FRAME_BYTES), 0)
            finally:
                os.close(fd)


def _wav_header(data_bytes: int) -> bytes:
    """The 44-byte header of a mono 16-bit PCM WAV at the bridge's rate holding `data_bytes` of samples."""
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, CLOCK_RATE, CLOCK_RATE * 2, 2, 16)
            + b"data" + struct.pack("<I", data_bytes))


@dataclass(eq=False)
class Member:
    """One leg in a room; `speaking`, `loud` and `quiet` belong to the clock thread."""

    leg: str
    muted: bool
    meter: Meter | None = None
    speaking: bool = False
    loud: int = 0
    quiet: int = 0

    def observe(self, level: float) -> bool | None:
        """Clock thread: one frame's RMS; returns the new speaking state when it changes, else None."""
        if level > SPEAK_RMS and not self.muted:
            self.loud += 1
            self.quiet = 0
            if not self.speaking and self.loud >= SPEAK_FRAMES:
                self.speaking = True
                return True
        else:
            self.quiet += 1
            self.loud = 0
            if self.speaking and self.quiet >= QUIET_FRAMES:
                self.speaking = False
                return False
        return None
