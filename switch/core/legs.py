"""One record per leg: what the control plane knows of a live SIP leg, in one object.

A `Leg` carries the leg's call (its status and REST view), where it lives (the worker and the worker's leg id),
whether the switch has answered it, whether its media flows, whether the far end holds it, the digits it sent,
and its timer (ring timeout
or time limit).  The call engine creates one when a leg is placed or arrives and retires it when the leg
ends; media operations (`switch.workers.media.CallMedia`) and the TwiML session read the same object, so
nothing is synchronized by hand.  `Legs` finds a live leg by its call's SID or by the worker's leg id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from switch.core.model import Call


@dataclass(eq=False)
class Leg:
    """A live SIP leg (satisfies `switch.workers.media.MediaLeg`)."""

    call: Call
    id: str  # the worker's leg id: the call SID for legs we place, the worker's own id for inbound legs
    worker: int
    answer_sent: bool = False  # our 200 OK left (inbound legs); the call is in-progress only at the ACK
    media_ready: asyncio.Event = field(default_factory=asyncio.Event)
    digits: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    gone: bool = False  # ended: waiting for its media is pointless
    held: bool = False  # the far end holds the leg (`HoldChanged` from the worker)
    timer: asyncio.TimerHandle | None = None

    @property
    def answered(self) -> bool:
        """Answered by us (200 sent) or by the far end (in-progress)."""
        return self.answer_sent or self.call.answer_time is not None

    def set_timer(self, timer: asyncio.TimerHandle | None) -> None:
        self.cancel_timer()
        self.timer = timer

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def retire(self) -> None:
        """The leg ended: stop its timer and wake anything waiting for media that will never come."""
        self.cancel_timer()
        self.gone = True
        self.media_ready.set()


class Legs(Mapping[str, Leg]):
    """The live legs, by call SID (the mapping) and by the worker's leg id (`by_id`)."""

    def __init__(self) -> None:
        self._by_call: dict[str, Leg] = {}
        self._by_id: dict[str, Leg] = {}

    def __getitem__(self, call_sid: str) -> Leg:
        return self._by_call[call_sid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_call)

    def __len__(self) -> int:
        return len(self._by_call)

    def add(self, leg: Leg) -> Leg:
        self._by_call[leg.call.sid] = leg
        self._by_id[leg.id] = leg
        return leg

    def by_id(self, leg_id: str) -> Leg | None:
        return self._by_id.get(leg_id)

    def remove(self, call_sid: str) -> Leg | None:
        """Forget the leg of `call_sid` and retire it."""
        leg = self._by_call.pop(call_sid, None)
        if leg is not None:
            self._by_id.pop(leg.id, None)
            leg.retire()
        return leg
