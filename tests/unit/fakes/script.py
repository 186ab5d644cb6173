"""Scripts of far ends: what the party at the other end of a leg does, and when, as a test would tell it.

A script is a sequence of steps, each `after` seconds (virtual time) after the one before it::

    answer(after=2) + press("1#", after=1) + hang_up(after=5)

reads "rings, answers two seconds later, presses 1 and # a second after that, hangs up five seconds later".
Steps that need audio (`press`, `speak`) first wait until the leg is answered (its media is up); the others
count from the step before.  An outbound leg without a script rings forever (the switch's ring timer ends it);
an inbound leg is answered by the switch itself, so its script usually starts with what the caller does once
answered.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One thing a far end does: `kind` (see the builders below), `after` seconds after the step before."""

    kind: str
    after: float = 0.0
    code: int = 0
    reason: str = ""
    digits: str = ""
    gap: float = 0.0
    seconds: float = 0.0
    uri: str = ""  # a REFER's Refer-To

    @property
    def needs_media(self) -> bool:
        return self.kind in ("press", "speak", "refer")


@dataclass(frozen=True)
class Script:
    """Steps in order; `+` appends."""

    steps: tuple[Step, ...] = ()

    def __add__(self, other: Script) -> Script:
        return Script(self.steps + other.steps)


def ring(after: float = 0.0) -> Script:
    """180 Ringing (no early media)."""
    return Script((Step("progress", after, code=180, reason="Ringing"),))


def early_media(after: float = 0.0) -> Script:
    """183 Session Progress with SDP: the leg's media comes up before the answer."""
    return Script((Step("progress", after, code=183, reason="Session Progress"),))


def answer(after: float = 0.1) -> Script:
    """200 OK (and ACK), `after` seconds after a 180 sent at once (unless a provisional response came first)."""
    return Script((Step("answer", after),))


def busy(after: float = 0.1) -> Script:
    """486 Busy Here after a 180."""
    return Script((Step("final", after, code=486, reason="Busy Here"),))


def decline(code: int = 603, after: float = 0.1, reason: str = "Decline") -> Script:
    """A final error response `code` after a 180."""
    return Script((Step("final", after, code=code, reason=reason),))


def no_answer() -> Script:
    """Rings until the switch gives up (its ring timer sends CANCEL)."""
    return ring()


def dial_fails(reason: str = "Invalid URI") -> Script:
    """pjsua refuses to place the call: `DialFailed`, no INVITE leaves."""
    return Script((Step("dial_failed", 0.0, code=500, reason=reason),))


def press(digits: str, after: float = 0.0, gap: float = 0.25) -> Script:
    """RFC 2833 digits, `gap` seconds apart, `after` seconds after the step before (once the media is up)."""
    return Script((Step("press", after, digits=digits, gap=gap),))


def speak(seconds: float, after: float = 0.0) -> Script:
    """Make sound for `seconds` (what a recording of the leg hears; silence otherwise)."""
    return Script((Step("speak", after, seconds=seconds),))


def hang_up(after: float = 0.0) -> Script:
    """BYE when answered; CANCEL (487) while an inbound call is still unanswered."""
    return Script((Step("hang_up", after),))


def refer(to: str, after: float = 0.0) -> Script:
    """A REFER with `Refer-To: to` (once the media is up): accepted or refused as the switch allowed."""
    return Script((Step("refer", after, uri=to),))


def wait(after: float) -> Script:
    """Do nothing for `after` seconds (once the media is up)."""
    return Script((Step("speak", after, seconds=0.0),))
