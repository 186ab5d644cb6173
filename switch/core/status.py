"""Call status: the one state machine and the one SIP-to-status table.

A call moves forward only::

    queued ──► initiated ──► ringing ──► in-progress ──► completed
       │           │            │
       └───────────┴────────────┴──► busy | no-answer | failed | canceled

`queued` exists only for calls created through the REST API (Twilio puts them in a queue before the
INVITE leaves); inbound calls and `<Dial>` children start at `initiated` or `ringing`.  Every terminal
status is final: a second terminal event for the same call is a bug elsewhere and raises
`InvalidTransition`, so "exactly one terminal status" is enforced here rather than hoped for.

SIP responses map to a status through `status_for_sip_code` (ARCHITECTURE.md's table).  Why a call
ended matters as much as the code: a 487 after *our* CANCEL is `canceled` when the REST API asked for it
and `no-answer` when the ring timer fired, so the caller of `status_for_sip_code` passes the reason.
"""

from __future__ import annotations

import enum


class CallStatus(enum.StrEnum):
    """Twilio's call statuses, spelled as Twilio spells them."""

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset(
    {CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.FAILED, CallStatus.CANCELED}
)

_UNANSWERED_ENDINGS = frozenset({CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.FAILED, CallStatus.CANCELED})

# from-status -> statuses it may move to.  Skipping forward (queued -> in-progress when a UAS answers
# without a provisional response) is allowed; going back never is.
TRANSITIONS: dict[CallStatus, frozenset[CallStatus]] = {
    CallStatus.QUEUED: frozenset({CallStatus.INITIATED, CallStatus.RINGING, CallStatus.IN_PROGRESS})
    | _UNANSWERED_ENDINGS,
    CallStatus.INITIATED: frozenset({CallStatus.RINGING, CallStatus.IN_PROGRESS}) | _UNANSWERED_ENDINGS,
    CallStatus.RINGING: frozenset({CallStatus.IN_PROGRESS}) | _UNANSWERED_ENDINGS,
    # An answered call that dies abnormally (worker crash, media failure) ends `failed`.
    CallStatus.IN_PROGRESS: frozenset({CallStatus.COMPLETED, CallStatus.FAILED}),
    CallStatus.COMPLETED: frozenset(),
    CallStatus.BUSY: frozenset(),
    CallStatus.NO_ANSWER: frozenset(),
    CallStatus.FAILED: frozenset(),
    CallStatus.CANCELED: frozenset(),
}


class InvalidTransition(Exception):
    """A status change the state machine forbids (e.g. a second terminal status)."""

    def __init__(self, sid: str, current: CallStatus, new: CallStatus) -> None:
        super().__init__(f"{sid}: illegal status change {current} -> {new}")
        self.sid = sid
        self.current = current
        self.new = new


def check_transition(sid: str, current: CallStatus, new: CallStatus) -> None:
    """Raise `InvalidTransition` unless `current -> new` is allowed."""
    if new not in TRANSITIONS[current]:
        raise InvalidTransition(sid, current, new)


class EndReason(enum.StrEnum):
    """Why a call ended, as far as the switch knows; decides how a SIP code is read."""

    REMOTE = "remote"  # the far end answered with a final response or sent BYE
    CANCELED = "canceled"  # REST Status=canceled (or a parent gone) before answer
    RING_TIMEOUT = "ring-timeout"  # our Timeout fired before answer
    HANGUP = "hangup"  # we hung up an answered call (REST Status=completed, TimeLimit)
    ERROR = "error"  # local failure: worker crash, no capacity, bad route


# SIP final response -> status for a call that was never answered.
_FINAL_CODE_STATUS: dict[int, CallStatus] = {
    486: CallStatus.BUSY,
    600: CallStatus.BUSY,
    408: CallStatus.NO_ANSWER,
    480: CallStatus.NO_ANSWER,
}


def status_for_sip_code(code: int, answered: bool, reason: EndReason = EndReason.REMOTE) -> CallStatus:
    """The terminal status of a call that ended with SIP `code`.

    `answered` says whether the call reached 200 OK; `reason` says whether the switch itself ended it.
    """
    if answered:
        return CallStatus.FAILED if reason is EndReason.ERROR else CallStatus.COMPLETED
    if reason is EndReason.CANCELED:
        return CallStatus.CANCELED
    if reason is EndReason.RING_TIMEOUT:
        return CallStatus.NO_ANSWER
    if reason is EndReason.ERROR:
        return CallStatus.FAILED
    return _FINAL_CODE_STATUS.get(code, CallStatus.FAILED)


def status_for_provisional(code: int) -> CallStatus | None:
    """Status for a provisional response: 180 and 183 are ringing; 100 changes nothing."""
    if code in (180, 181, 182, 183):
        return CallStatus.RINGING
    return None
