"""A playout queue of 20 ms frames that does not let a standing delay build up.

Two clocks meet wherever audio crosses between a browser's WebRTC session and a worker's bridge: the sender's
and the player's.  If the sender runs even slightly fast, a plain queue fills up to its cap and stays there, and
its whole length becomes delay.  `Playout` watches the shortest the queue has been over each window of
`WINDOW` frames played: frames that never left the queue in a whole window are a standing delay, and all but
`SLACK` of them are dropped at once.  Bursts (frames arriving in twos and threes) survive: the queue empties
between them, so its minimum stays low.  `cap` bounds a sudden flood.

`push` and `pop` may run on different threads (deque appends and pops are atomic); the window's counters are
`pop`'s alone.
"""

from __future__ import annotations

import collections

__all__ = ["SLACK", "WINDOW", "Playout"]

WINDOW = 50  # frames (1 s) between trims
SLACK = 1  # frames of standing queue kept: one frame of margin against the next arrival's jitter


class Playout:
    """Frames to play, oldest first (see the module docstring); `dropped` counts the frames trimmed."""

    def __init__(self, cap: int = 10) -> None:
        self.cap = cap
        self.frames: collections.deque[bytes] = collections.deque()
        self.dropped = 0
        self._played = 0
        self._shortest = cap

    def __len__(self) -> int:
        return len(self.frames)

    def push(self, frame: bytes) -> None:
        self.frames.append(frame)
        while len(self.frames) > self.cap:
            try:
                self.frames.popleft()  # the player may take one at the same time: either way it is gone
            except IndexError:
                break
            self.dropped += 1

    def pop(self) -> bytes | None:
        """The next frame to play, None when nothing waits; trims a standing delay once per window."""
        try:
            frame: bytes | None = self.frames.popleft()
        except IndexError:
            frame = None
        self._shortest = min(self._shortest, len(self.frames))
        self._played += 1
        if self._played >= WINDOW:
            for _ in range(self._shortest - SLACK):
                try:
                    self.frames.popleft()
                except IndexError:
                    break
                self.dropped += 1
            self._played = 0
            self._shortest = self.cap
        return frame

    def clear(self) -> None:
        self.frames.clear()
