"""`<Dial>`'s state as tables, in the manner of `switch.core.status`.

Two things change while a `<Dial>` runs, and each has its own small machine.

What the caller hears (`Phase`)::

    placing ──► ringback ◄──► early-media ──► bridged ──► ended
       │  └──────────────────────▲──────────────▲            ▲
       └─────────────────────────┴──────────────┴────────────┘

`placing`: the children are being placed and the caller's answer may still be on its way; `ringback`: the
caller hears our ringback tone; `early-media`: the caller is bridged to a ringing child's 183 media (back to
ringback when that child gives up while others still ring); `bridged`: connected to the child that answered;
`ended`: the dial is over (any phase may end).

The caller's side (`Caller`): `answering` (200 sent, its media and ACK on their way, children already
ringing: no post-dial delay), `up`, `failed` (its media never came up: every child is cancelled), or
`on-bridge` (answerOnBridge: answered only when a child answers).

An illegal move raises `InvalidDialMove`: a bug in `DialSession`, never a peer's doing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from switch.core.model import Call


class Phase(enum.Enum):
    """What the caller hears while the `<Dial>` runs."""

    PLACING = "placing"
    RINGBACK = "ringback"
    EARLY_MEDIA = "early-media"
    BRIDGED = "bridged"
    ENDED = "ended"


class Caller(enum.Enum):
    """The caller's answer, as far as the `<Dial>` is concerned."""

    ANSWERING = "answering"
    UP = "up"
    FAILED = "failed"
    ON_BRIDGE = "on-bridge"


PHASES: dict[Phase, frozenset[Phase]] = {
    Phase.PLACING: frozenset({Phase.RINGBACK, Phase.EARLY_MEDIA, Phase.BRIDGED, Phase.ENDED}),
    Phase.RINGBACK: frozenset({Phase.EARLY_MEDIA, Phase.BRIDGED, Phase.ENDED}),
    Phase.EARLY_MEDIA: frozenset({Phase.RINGBACK, Phase.BRIDGED, Phase.ENDED}),
    Phase.BRIDGED: frozenset({Phase.ENDED}),
    Phase.ENDED: frozenset(),
}

CALLER: dict[Caller, frozenset[Caller]] = {
    Caller.ANSWERING: frozenset({Caller.UP, Caller.FAILED}),
    Caller.ON_BRIDGE: frozenset({Caller.UP, Caller.FAILED}),
    Caller.UP: frozenset(),
    Caller.FAILED: frozenset(),
}


class InvalidDialMove(RuntimeError):
    """A `<Dial>` tried a move its tables forbid."""


@dataclass
class DialState:
    """Everything a running `<Dial>` knows beyond its children: the two machines and who plays which part."""

    caller: Caller
    phase: Phase = Phase.PLACING
    early: Call | None = None  # the ringing child whose early media the caller hears
    pending_early: Call | None = None  # early media that came while the caller's answer was on its way
    winner: Call | None = None  # the child that answered and accepted any whisper
    winner_is_sip: bool = False  # the winner was a <Sip> noun (DialSipResponseCode applies)
    recording: str | None = None  # SID of the dial's recording while it runs
    declined: list[Call] = field(default_factory=list)  # answered, then declined in the whisper

    def move(self, phase: Phase) -> None:
        """Change what the caller hears; staying in the same phase is not a move."""
        if phase is self.phase:
            return
        if phase not in PHASES[self.phase]:
            raise InvalidDialMove(f"<Dial> cannot go from {self.phase.value} to {phase.value}")
        self.phase = phase

    def caller_is(self, caller: Caller) -> None:
        if caller is self.caller:
            return
        if caller not in CALLER[self.caller]:
            raise InvalidDialMove(f"<Dial> caller cannot go from {self.caller.value} to {caller.value}")
        self.caller = caller

    @property
    def caller_up(self) -> bool:
        return self.caller is Caller.UP

    @property
    def caller_failed(self) -> bool:
        return self.caller is Caller.FAILED
