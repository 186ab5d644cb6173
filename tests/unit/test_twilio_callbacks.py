"""The Twilio dialect's rendering of call events: status and recording callbacks, parameter for parameter."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from switch.core.errors import CapacityError, InvalidArgument, NotFound, Problem
from switch.core.events import CallStatusChanged, RecordingStarted, RecordingStatusChanged
from switch.core.model import Call, CallbackEvent, Direction
from switch.core.recording_model import Recording, RecordingProblem, RecordingSource, RecordingStatus
from switch.core.status import CallStatus
from switch.core.store import Store
from switch.dialects.twilio.callbacks import (
    TwilioCallbacks,
    TwilioTwiml,
    recording_source,
    recording_url,
    standard_params,
    status_callback_params,
)
from tests.unit.dispatcher import RecordingDispatcher, Sent

T0 = dt.datetime(2026, 12, 5, 10, 0, 0, tzinfo=dt.UTC)
CALL = "CA" + "1" * 32
ACCOUNT = "AC" + "2" * 32
PARENT = "CA" + "3" * 32
REC = "RE" + "4" * 32
BASE = [("CallSid", CALL), ("AccountSid", ACCOUNT), ("From", "+15550199"), ("To", "+15550100"),
        ("Caller", "+15550199"), ("Called", "+15550100")]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store(tmp_path / "db.sqlite")
    yield db
    db.close()


def _child(status: CallStatus) -> Call:
    return Call(sid=CALL, account_sid=ACCOUNT, to="+15550100", from_="+15550199", direction=Direction.OUTBOUND_DIAL,
                status=status, parent_call_sid=PARENT, forwarded_from="+15550111", caller_name="Alice",
                status_callback="http://app/status", status_callback_method="GET",
                status_callback_events=frozenset({CallbackEvent.RINGING, CallbackEvent.COMPLETED}))


def test_a_status_callback_renders_exactly_twilios_parameters() -> None:
    completed = dataclasses.replace(_child(CallStatus.COMPLETED), sip_response_code=200, answer_time=T0,
                                    end_time=T0 + dt.timedelta(seconds=61), duration=61)
    assert status_callback_params(completed, 3, T0 + dt.timedelta(seconds=61)) == [
        *BASE, ("CallStatus", "completed"), ("ApiVersion", "2010-04-01"), ("Direction", "outbound-dial"),
        ("ForwardedFrom", "+15550111"), ("CallerName", "Alice"), ("ParentCallSid", PARENT),
        ("CallbackSource", "call-progress-events"), ("SequenceNumber", "3"),
        ("Timestamp", "Sat, 05 Dec 2026 10:01:01 +0000"), ("SipResponseCode", "200"), ("CallDuration", "61"),
        ("Duration", "2")]
    inbound = Call(sid=CALL, account_sid=ACCOUNT, to="+15550100", from_="+15550199", direction=Direction.INBOUND,
                   status=CallStatus.RINGING)
    assert status_callback_params(inbound, 0, T0) == [
        *BASE, ("CallStatus", "ringing"), ("ApiVersion", "2010-04-01"), ("Direction", "inbound"),
        ("CallbackSource", "call-progress-events"), ("SequenceNumber", "0"),
        ("Timestamp", "Sat, 05 Dec 2026 10:00:00 +0000")]
    assert TwilioTwiml().request_params(inbound) == standard_params(inbound) == [
        *BASE, ("CallStatus", "ringing"), ("ApiVersion", "2010-04-01"), ("Direction", "inbound")]


def test_a_call_notification_gets_twilios_code_for_a_neutral_error() -> None:
    twiml = TwilioTwiml()
    assert [twiml.error_code(e) for e in (CapacityError("full"), InvalidArgument("x", Problem.NO_ROUTE),
                                          InvalidArgument("y", Problem.INVALID_TO), NotFound("/Calls/CA1"))] == [
        20429, 21215, 21211, 20404]


def test_status_events_become_the_callbacks_the_call_asked_for_numbered_per_url(store: Store) -> None:
    hooks = RecordingDispatcher(store)
    render = TwilioCallbacks(hooks, "http://switch:8080/")
    render(CallStatusChanged(_child(CallStatus.INITIATED), CallStatus.QUEUED, T0))  # not asked for
    ringing = dataclasses.replace(_child(CallStatus.RINGING), sip_response_code=180)
    render(CallStatusChanged(ringing, CallStatus.INITIATED, T0 + dt.timedelta(seconds=1), 180))
    render(CallStatusChanged(dataclasses.replace(ringing, status=CallStatus.IN_PROGRESS), CallStatus.RINGING,
                             T0 + dt.timedelta(seconds=2), 200))  # not asked for
    busy = dataclasses.replace(ringing, status=CallStatus.BUSY, sip_response_code=486, duration=0)
    render(CallStatusChanged(busy, CallStatus.RINGING, T0 + dt.timedelta(seconds=3), 486))
    head = [*BASE, ("ApiVersion", "2010-04-01"), ("Direction", "outbound-dial"), ("ForwardedFrom", "+15550111"),
            ("CallerName", "Alice"), ("ParentCallSid", PARENT), ("CallbackSource", "call-progress-events")]
    head.insert(6, ("CallStatus", "ringing"))
    assert hooks.hooks == [
        Sent(CALL, "http://app/status", "GET",
             [*head, ("SequenceNumber", "0"), ("Timestamp", "Sat, 05 Dec 2026 10:00:01 +0000"),
              ("SipResponseCode", "180")], event="ringing"),
        Sent(CALL, "http://app/status", "GET",
             [*head[:6], ("CallStatus", "busy"), *head[7:], ("SequenceNumber", "1"),
              ("Timestamp", "Sat, 05 Dec 2026 10:00:03 +0000"), ("SipResponseCode", "486"),
              ("CallDuration", "0"), ("Duration", "0")], event="completed"),
    ]
    assert store.webhook_sent(CALL, "http://app/status", "completed")
    assert not store.webhook_sent(CALL, "http://app/status", "answered")


def _recording(status: RecordingStatus, **changes: object) -> Recording:
    rec = Recording(sid=REC, account_sid=ACCOUNT, call_sid=CALL, channels=2, source=RecordingSource.DIAL,
                    status=status, date_created=T0, start_time=T0 + dt.timedelta(seconds=1), track="both",
                    status_callback="http://app/rec", status_callback_method="POST",
                    status_callback_events=("in-progress", "completed", "absent"))
    return dataclasses.replace(rec, **changes)  # type: ignore[arg-type]


def test_recording_events_become_recording_status_callbacks(store: Store) -> None:
    hooks = RecordingDispatcher(store)
    render = TwilioCallbacks(hooks, "http://switch:8080")
    started = _recording(RecordingStatus.IN_PROGRESS)
    render(RecordingStarted(started, T0))
    for status, previous in ((RecordingStatus.STOPPED, RecordingStatus.IN_PROGRESS),
                             (RecordingStatus.PROCESSING, RecordingStatus.STOPPED)):
        render(RecordingStatusChanged(_recording(status), previous, T0))  # no callback for these
    render(RecordingStatusChanged(_recording(RecordingStatus.COMPLETED, duration=7), RecordingStatus.PROCESSING, T0))
    url = f"http://switch:8080/2010-04-01/Accounts/{ACCOUNT}/Recordings/{REC}"
    assert recording_url("http://switch:8080/", ACCOUNT, REC) == url
    head = [("AccountSid", ACCOUNT), ("CallSid", CALL), ("RecordingSid", REC), ("RecordingUrl", url)]
    tail = [("RecordingChannels", "2"), ("RecordingSource", "DialVerb"),
            ("RecordingStartTime", "Sat, 05 Dec 2026 10:00:01 +0000"), ("RecordingTrack", "both")]
    assert hooks.hooks == [
        Sent(CALL, "http://app/rec", "POST", [*head, ("RecordingStatus", "in-progress"), *tail],
             event=f"recording:{REC}:in-progress"),
        Sent(CALL, "http://app/rec", "POST",
             [*head, ("RecordingStatus", "completed"), ("RecordingDuration", "7"), *tail],
             event=f"recording:{REC}:completed"),
    ]
    hooks.hooks.clear()
    absent = _recording(RecordingStatus.ABSENT, duration=0, problem=RecordingProblem.NOTHING_CAPTURED,
                        start_time=None, status_callback_events=("completed",))
    render(RecordingStatusChanged(absent, RecordingStatus.PROCESSING, T0))
    assert hooks.hooks == []  # absent was not asked for
    render(RecordingStatusChanged(dataclasses.replace(absent, status_callback_events=("absent",)),
                                  RecordingStatus.PROCESSING, T0))
    assert hooks.hooks[0].params == [
        *head, ("RecordingStatus", "absent"), ("RecordingDuration", "0"), tail[0], tail[1],
        ("RecordingStartTime", "Sat, 05 Dec 2026 10:00:00 +0000"), tail[3], ("ErrorCode", "16101")]


def test_recording_sources_in_twilios_words() -> None:
    assert [recording_source(s) for s in RecordingSource] == [
        "OutboundAPI", "DialVerb", "RecordVerb", "StartCallRecordingAPI", "Conference"]
    assert recording_source("DialVerb") == "DialVerb"  # a row an older release wrote
