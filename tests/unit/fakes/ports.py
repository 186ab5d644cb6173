"""The fake worker's port legs (browsers' legs, `switch.workers.protocol_port`): `PortOpen` and `PortSignal`
answered with the leg events a worker gives for them; a `Dial` to a `webrtc:` URI only says `InviteSent` (the
browser, not a script, drives it from there).  Port legs carry no audio here."""

from __future__ import annotations

from typing import Protocol

from switch.workers import protocol as p
from tests.unit.fakes.legs import FakeLeg

REASONS = {200: "Normal call clearing", 486: "Busy Here", 487: "Request Terminated", 603: "Decline"}


class PortOwner(Protocol):
    """What of `FakePool` a port leg uses."""

    legs: dict[str, FakeLeg]

    @property
    def now(self) -> float: ...
    def emit(self, worker: int, event: p.Event, delay: float = 0.0) -> None: ...
    def _add(self, leg: FakeLeg) -> None: ...
    def _leg(self, leg_id: str) -> FakeLeg | None: ...
    def _progress(self, leg: FakeLeg, code: int, reason: str) -> None: ...
    def _media(self, leg: FakeLeg) -> None: ...
    def _end(self, leg: FakeLeg, code: int, reason: str) -> None: ...


def port_dial(pool: PortOwner, worker: int, command: p.Dial) -> None:
    leg = FakeLeg(command.leg, command.leg, worker, False, command.uri, f"webrtc-{command.leg}", command=command)
    pool._add(leg)
    pool.emit(worker, p.InviteSent(leg=leg.leg_id, call_id=leg.call_id, t=pool.now))


def port_command(pool: PortOwner, worker: int, command: p.PortOpen | p.PortSignal) -> None:
    if isinstance(command, p.PortOpen):
        if command.leg in pool.legs:
            pool.emit(worker, p.PortFailed(leg=command.leg, error=f"leg {command.leg} exists already"))
        else:
            pool._add(FakeLeg(command.leg, command.leg, worker, True, "webrtc:", f"webrtc-{command.leg}"))
        return
    leg = pool._leg(command.leg)
    if leg is None:
        return
    if command.state == "ringing" and not leg.progressed:
        pool._progress(leg, 180, "Ringing")
    elif command.state == "answered" and not leg.answered:
        leg.answered = True
        pool.emit(worker, p.Answered(leg=leg.leg_id, t=pool.now))
        pool._media(leg)
    elif command.state == "dtmf":
        for digit in command.digits:
            pool.emit(worker, p.DtmfReceived(leg=leg.leg_id, digit=digit, t=pool.now))
    elif command.state == "ended":
        code = command.code or 200
        pool._end(leg, code, REASONS.get(code, "Ended by the browser"))
