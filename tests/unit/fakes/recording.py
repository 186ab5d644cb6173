"""A recording tap in the fake worker: which leg feeds which channel when, written as raw files at its end."""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from switch.workers import protocol as p

if TYPE_CHECKING:
    from tests.unit.fakes.legs import FakeLeg

FRAME = 0.02  # seconds per frame, as the worker's media clock ticks
RATE = 8000
LOUD_RMS = 3000 / math.sqrt(2)  # the RMS of `tone`


def tone(seconds: float, rate: int = RATE) -> np.ndarray[Any, np.dtype[np.int16]]:
    """A 440 Hz tone at about -20 dBFS: what a far end that `speak`s sounds like."""
    n = np.arange(round(seconds * rate))
    return (3000 * np.sin(2 * np.pi * 440 * n / rate)).astype(np.int16)


class FakeRecording:
    """Channel i hears leg i of `Record.legs` (or the leg attached to it later); the mirror channel hears what
    the switch sends, which the fake does not model: silence."""

    def __init__(self, command: p.Record, worker: int, start: float, legs: list[FakeLeg]) -> None:
        self.command = command
        self.rec_id = command.id
        self.worker = worker
        self.start = start
        mirror = command.mirror[1] + 1 if command.mirror else 0
        self.channels = max(len(legs), command.slots, mirror, 1)
        self.owner = command.legs[0] if command.legs else (command.mirror[0] if command.mirror else "")
        # channel -> [(leg, from, until)]
        self.feeds: list[list[tuple[FakeLeg, float, float]]] = [[] for _ in range(self.channels)]
        for index, leg in enumerate(legs):
            self.feeds[index].append((leg, start, math.inf))
        self.paused: list[tuple[float, float]] = []
        self.levels: asyncio.Task[None] | None = None

    def attach(self, index: int, leg: FakeLeg, now: float) -> None:
        self._close(index, now)
        self.feeds[index].append((leg, now, math.inf))

    def leg_gone(self, leg_id: str, now: float) -> None:
        for index, feeds in enumerate(self.feeds):
            if feeds and feeds[-1][0].leg_id == leg_id:
                self._close(index, now)

    def _close(self, index: int, now: float) -> None:
        feeds = self.feeds[index]
        if feeds and feeds[-1][2] == math.inf:
            leg, since, _ = feeds[-1]
            feeds[-1] = (leg, since, now)

    def pause(self, paused: bool, now: float) -> None:
        if paused and (not self.paused or self.paused[-1][1] != math.inf):
            self.paused.append((now, math.inf))
        elif not paused and self.paused and self.paused[-1][1] == math.inf:
            self.paused[-1] = (self.paused[-1][0], now)

    def _loud(self, index: int, t: float) -> bool:
        if any(a <= t < b for a, b in self.paused):
            return False
        return any(since <= t < until and leg.loud_at(t) for leg, since, until in self.feeds[index])

    def level(self, now: float) -> float:
        """The RMS of channel 0 just now."""
        return LOUD_RMS if self._loud(0, now - FRAME / 2) else 0.0

    def stop_levels(self) -> None:
        if self.levels is not None:
            self.levels.cancel()

    def write(self, now: float) -> int:
        """Write `<base>.leg<i>.raw` for every channel; returns the frames per channel."""
        frames = max(0, round((now - self.start) / FRAME))
        per_frame = round(FRAME * RATE)
        sound = tone(frames * FRAME)
        for index in range(self.channels):
            samples = np.zeros(frames * per_frame, dtype="<i2")
            for k in range(frames):
                if self._loud(index, self.start + (k + 0.5) * FRAME):
                    samples[k * per_frame:(k + 1) * per_frame] = sound[k * per_frame:(k + 1) * per_frame]
            path = f"{self.command.base}.leg{index}.raw"
            with open(path, "wb") as raw:
                raw.write(samples.tobytes())
        return frames
