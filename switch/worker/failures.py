"""The failure event that answers each worker command pjsua refused or could not carry out (`switch.worker.engine`)."""

from __future__ import annotations

from switch.workers.protocol import (
    Answer,
    AnswerFailed,
    Bridge,
    BridgeFailed,
    DtmfFailed,
    Event,
    Hangup,
    HangupFailed,
    Play,
    PlayFailed,
    Record,
    RecordAttach,
    RecordAttachFailed,
    RecordFailed,
    Ring,
    RingFailed,
    SendDtmf,
)


def leg_failure(command: Ring | Answer | Hangup | SendDtmf, error: str) -> Event:
    """The failure event that answers a leg command pjsua refused."""
    if isinstance(command, Ring):
        return RingFailed(leg=command.leg, error=error)
    if isinstance(command, Answer):
        return AnswerFailed(leg=command.leg, error=error)
    if isinstance(command, Hangup):
        return HangupFailed(leg=command.leg, code=command.code, error=error)
    return DtmfFailed(leg=command.leg, digits=command.digits, error=error)


def media_failure(command: object, error: str) -> Event | None:
    """The failure event that answers a media command naming a leg without audio (None: it cannot fail)."""
    match command:
        case Play():
            return PlayFailed(id=command.id, leg=command.leg, error=error)
        case Record():
            return RecordFailed(id=command.id, error=error)
        case RecordAttach():
            return RecordAttachFailed(id=command.id, index=command.index, leg=command.leg, error=error)
        case Bridge():
            return BridgeFailed(id=command.id, a=command.a, b=command.b, error=error)
    return None
