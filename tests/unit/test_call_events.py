"""The core's call events: the one status -> callback-event table, the event bus, and the one status path."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path

import pytest

from switch.core.calls import CallManager
from switch.core.config import Config
from switch.core.events import CallEvent, CallEvents, CallStatusChanged, snapshot
from switch.core.model import STATUS_EVENTS, Call, CallbackEvent, Direction, event_for_status, new_sid
from switch.core.status import CallStatus, InvalidTransition
from switch.core.store import Store

T0 = dt.datetime(2026, 12, 5, 10, 0, 0, tzinfo=dt.UTC)


def test_the_one_status_table_names_a_callback_event_for_every_status() -> None:
    assert STATUS_EVENTS == {
        CallStatus.QUEUED: None,
        CallStatus.INITIATED: CallbackEvent.INITIATED,
        CallStatus.RINGING: CallbackEvent.RINGING,
        CallStatus.IN_PROGRESS: CallbackEvent.ANSWERED,
        CallStatus.COMPLETED: CallbackEvent.COMPLETED,
        CallStatus.BUSY: CallbackEvent.COMPLETED,
        CallStatus.NO_ANSWER: CallbackEvent.COMPLETED,
        CallStatus.FAILED: CallbackEvent.COMPLETED,
        CallStatus.CANCELED: CallbackEvent.COMPLETED,
    }
    assert [event_for_status(s) for s in CallStatus] == [STATUS_EVENTS[s] for s in CallStatus]
    assert {s for s in CallStatus if event_for_status(s) is CallbackEvent.COMPLETED} == {
        s for s in CallStatus if s.terminal}


def _call(status: CallStatus = CallStatus.RINGING) -> Call:
    return Call(sid=new_sid("CA"), account_sid=new_sid("AC"), to="+15550100", from_="+15550199",
                direction=Direction.INBOUND, status=status)


def test_subscribers_get_each_event_in_order_and_one_failing_does_not_stop_the_others(
        caplog: pytest.LogCaptureFixture) -> None:
    bus = CallEvents()
    seen: list[tuple[str, CallEvent]] = []
    event = CallStatusChanged(_call(), CallStatus.INITIATED, T0, 180)

    def broken(_e: CallEvent) -> None:
        raise RuntimeError("boom")

    bus.subscribe(lambda e: seen.append(("first", e)))
    bus.subscribe(broken)
    stop = bus.subscribe(lambda e: seen.append(("third", e)))
    with caplog.at_level(logging.ERROR, "switch.core.events"):
        bus.emit(event)
    assert seen == [("first", event), ("third", event)]
    assert "CallStatusChanged subscriber" in caplog.text and "boom" in caplog.text
    stop()
    stop()  # twice: harmless
    bus.emit(event)
    assert [name for name, _ in seen] == ["first", "third", "first"]


def test_an_event_holds_the_call_as_it_was() -> None:
    call = _call()
    event = CallStatusChanged(snapshot(call), CallStatus.INITIATED, T0, 180)
    call.status = CallStatus.IN_PROGRESS
    assert (event.status, event.progress, event.call.status) == (
        CallStatus.RINGING, CallbackEvent.RINGING, CallStatus.RINGING)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.sip_code = 200  # type: ignore[misc]


def test_the_call_engine_emits_exactly_one_event_per_status_change(tmp_path: Path) -> None:
    clock = iter(T0 + dt.timedelta(seconds=s) for s in (0, 1, 2, 65))
    store = Store(tmp_path / "db.sqlite")
    engine = CallManager(Config(data_dir=tmp_path), new_sid("AC"), "token", store, None,  # type: ignore[arg-type]
                         clock=lambda: next(clock))
    events: list[CallEvent] = []
    engine.events.subscribe(events.append)
    call = _call(CallStatus.QUEUED)
    call.direction = Direction.OUTBOUND_API
    for status, code in ((CallStatus.INITIATED, None), (CallStatus.RINGING, 180), (CallStatus.IN_PROGRESS, 200),
                         (CallStatus.COMPLETED, 200)):
        engine._set_status(call, status, code)
    with pytest.raises(InvalidTransition):
        engine._set_status(call, CallStatus.FAILED)  # a second terminal status: refused, and nothing emitted
    assert [type(e) for e in events] == [CallStatusChanged] * 4
    changes = [e for e in events if isinstance(e, CallStatusChanged)]
    assert [(e.previous, e.status, e.progress, e.sip_code, e.at) for e in changes] == [
        (CallStatus.QUEUED, CallStatus.INITIATED, CallbackEvent.INITIATED, None, T0),
        (CallStatus.INITIATED, CallStatus.RINGING, CallbackEvent.RINGING, 180, T0 + dt.timedelta(seconds=1)),
        (CallStatus.RINGING, CallStatus.IN_PROGRESS, CallbackEvent.ANSWERED, 200, T0 + dt.timedelta(seconds=2)),
        (CallStatus.IN_PROGRESS, CallStatus.COMPLETED, CallbackEvent.COMPLETED, 200,
         T0 + dt.timedelta(seconds=65)),
    ]
    last = changes[-1].call
    assert (last.duration, last.answer_time, last.end_time) == (63, T0 + dt.timedelta(seconds=2),
                                                                T0 + dt.timedelta(seconds=65))
    assert changes[1].call.duration is None  # each event is the call at its own change
    store.close()
