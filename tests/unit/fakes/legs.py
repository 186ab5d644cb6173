"""What the fake worker knows of itself and of each SIP leg it holds."""

from __future__ import annotations

import asyncio
import wave
from dataclasses import dataclass, field

from switch.workers import protocol as p


@dataclass
class FakeWorker:
    """A worker as `CallManager` sees it: its SIP address, capacity and the legs it holds."""

    index: int
    sip_host: str
    sip_port: int
    capacity: int
    legs: set[str] = field(default_factory=set)
    up: bool = True
    pid: int | None = None
    restarts: int = 0
    dropped_events: int = 0

    @property
    def free(self) -> int:
        return self.capacity - len(self.legs) if self.up else 0


@dataclass
class FakeLeg:
    """One SIP leg in a fake worker: who is at the far end and what state the leg is in."""

    alias: str
    leg_id: str
    worker: int
    inbound: bool
    uri: str
    call_id: str
    command: p.Dial | None = None  # the Dial that placed an outbound leg
    progressed: bool = False
    media: bool = False
    answered: bool = False
    ended: bool = False
    end_code: int | None = None
    media_up: asyncio.Event = field(default_factory=asyncio.Event)
    sounds: list[tuple[float, float]] = field(default_factory=list)  # when the far end made sound
    digits_heard: list[str] = field(default_factory=list)  # SendDtmf from the switch
    refer_allowed: bool = False  # AllowRefer: a REFER from the far end is accepted
    refer_pending: bool = False  # accepted, its final ReferNotify not sent yet
    notifies: list[tuple[int, bool]] = field(default_factory=list)  # ReferNotify (code, final), the sipfrags sent
    task: asyncio.Task[None] | None = None

    def loud_at(self, t: float) -> bool:
        return any(start <= t < end for start, end in self.sounds)


def user_part(uri: str) -> str:
    """`sip:bob@host;x` -> `bob`; a bare value is itself."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    return rest.split("@", 1)[0].split(";", 1)[0]


def wav_seconds(path: str) -> float | None:
    """The length of a WAV file in seconds; None when it cannot be read."""
    try:
        with wave.open(path, "rb") as wav:
            return wav.getnframes() / wav.getframerate()
    except (OSError, EOFError, wave.Error):
        return None
