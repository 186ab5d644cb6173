"""The Conversations dialect's rendering of call events: `<Conversation>` callbacks and routing requests."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from switch.core.events import (
    CallbackTarget,
    CallStatusChanged,
    ConversationLegPlaced,
    ConversationRouting,
    ConversationSession,
)
from switch.core.model import Call, CallbackEvent, Direction
from switch.core.status import CallStatus
from switch.core.store import Store
from switch.dialects.conversations.callbacks import ConversationCallbacks
from tests.unit.dispatcher import RecordingDispatcher, Sent

T0 = dt.datetime(2026, 12, 5, 10, 0, 0, tzinfo=dt.UTC)
ACCOUNT = "AC" + "2" * 32
PARENT = "CA" + "0" * 32
CONVERSATION = "CH" + "2" * 32
STAMP = "Sat, 05 Dec 2026 10:00:00 +0000"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store(tmp_path / "db.sqlite")
    yield db
    db.close()


def _leg(sid: str, status: CallStatus = CallStatus.QUEUED) -> Call:
    return Call(sid=sid, account_sid=ACCOUNT, to="sip:al@127.0.0.1", from_="+15550100",
                direction=Direction.OUTBOUND_DIAL, status=status, parent_call_sid=PARENT)


def _session(wanted: set[CallbackEvent], method: str = "GET", session_id: str = "s1") -> ConversationSession:
    return ConversationSession(session_id, PARENT, ACCOUNT, CONVERSATION, True,
                               CallbackTarget("http://app/s", method, frozenset(wanted)))


def _change(leg: Call, status: CallStatus, previous: CallStatus) -> CallStatusChanged:
    return CallStatusChanged(dataclasses.replace(leg, status=status), previous, T0)


def _params(leg_sid: str, status: str, sequence: int) -> list[tuple[str, str]]:
    return [("AccountSid", ACCOUNT), ("ConversationSid", CONVERSATION), ("DialCallSid", leg_sid),
            ("WorkerInitiated", "true"), ("Status", status), ("SequenceNumber", str(sequence)),
            ("Timestamp", STAMP), ("CallbackSource", "voice-conversation-service")]


def test_session_callbacks_keep_their_order_and_number_from_one_across_legs(store: Store) -> None:
    hooks = RecordingDispatcher(store)
    render = ConversationCallbacks(hooks)
    session = _session({CallbackEvent.INITIATED, CallbackEvent.ANSWERED, CallbackEvent.COMPLETED})
    first, second = _leg("CA1"), _leg("CA2")
    render(ConversationLegPlaced(session, first))
    render(ConversationLegPlaced(session, second))
    render(_change(first, CallStatus.INITIATED, CallStatus.QUEUED))
    render(_change(second, CallStatus.INITIATED, CallStatus.QUEUED))
    render(_change(first, CallStatus.RINGING, CallStatus.INITIATED))  # not wanted
    render(_change(first, CallStatus.IN_PROGRESS, CallStatus.RINGING))
    render(_change(second, CallStatus.CANCELED, CallStatus.INITIATED))
    render(_change(first, CallStatus.COMPLETED, CallStatus.IN_PROGRESS))
    render(_change(_leg("CA3"), CallStatus.INITIATED, CallStatus.QUEUED))  # no session's leg
    assert hooks.hooks == [
        Sent("CA1", "http://app/s", "GET", _params("CA1", "call-initiated", 1), event="call-initiated"),
        Sent("CA2", "http://app/s", "GET", _params("CA2", "call-initiated", 2), event="call-initiated"),
        Sent("CA1", "http://app/s", "GET", _params("CA1", "call-answered", 3), event="call-answered"),
        Sent("CA2", "http://app/s", "GET", _params("CA2", "call-completed", 4), event="call-completed"),
        Sent("CA1", "http://app/s", "GET", _params("CA1", "call-completed", 5), event="call-completed"),
    ]


def test_a_leg_that_failed_before_it_started_reports_completed_once(store: Store) -> None:
    hooks = RecordingDispatcher(store)
    render = ConversationCallbacks(hooks)
    failed = dataclasses.replace(_leg("CA9", CallStatus.FAILED), end_time=T0)
    render(_change(failed, CallStatus.FAILED, CallStatus.QUEUED))  # before it was placed: nobody's leg yet
    render(ConversationLegPlaced(_session({CallbackEvent.COMPLETED}, "POST"), failed))
    render(_change(failed, CallStatus.FAILED, CallStatus.QUEUED))  # reported already: the record says so
    assert hooks.hooks == [Sent("CA9", "http://app/s", "POST", _params("CA9", "call-completed", 1),
                                event="call-completed")]


def test_a_second_session_on_the_same_call_numbers_from_one_again(store: Store) -> None:
    hooks = RecordingDispatcher(store)
    render = ConversationCallbacks(hooks)
    for session_id, leg in (("s1", _leg("CA1")), ("s2", _leg("CA2"))):
        render(ConversationLegPlaced(_session({CallbackEvent.INITIATED}, session_id=session_id), leg))
        render(_change(leg, CallStatus.INITIATED, CallStatus.QUEUED))
    assert [(h.call_sid, dict(h.params)["SequenceNumber"]) for h in hooks.hooks] == [("CA1", "1"), ("CA2", "1")]


def test_the_session_forgets_its_legs_once_they_and_its_call_have_ended(store: Store) -> None:
    render = ConversationCallbacks(RecordingDispatcher(store))
    leg = _leg("CA1", CallStatus.INITIATED)
    render(ConversationLegPlaced(_session(set()), leg))
    parent = dataclasses.replace(_leg(PARENT), direction=Direction.INBOUND)
    render(_change(parent, CallStatus.COMPLETED, CallStatus.IN_PROGRESS))
    render(_change(leg, CallStatus.CANCELED, CallStatus.INITIATED))  # cancelled after the caller hung up
    assert (render._legs, render._members, render._sessions, render._ended) == ({}, {}, {}, set())


def test_routing_requests_name_the_conversation_and_its_customer(store: Store) -> None:
    hooks = RecordingDispatcher(store)
    render = ConversationCallbacks(hooks)
    render(ConversationRouting(PARENT, ACCOUNT, "IS1", CONVERSATION, "http://app/route", "+15550123", "+15550100"))
    render(ConversationRouting(PARENT, ACCOUNT, "IS1", "CH2", "http://app/route", "sip:carol@h", None))
    assert hooks.hooks == [
        Sent(PARENT, "http://app/route", "POST", [
            ("AccountSid", ACCOUNT), ("ChatServiceSid", "IS1"), ("ConversationSid", CONVERSATION),
            ("CustomerAddress", "+15550123"), ("MessagingBinding.Address", "+15550123"),
            ("MessagingBinding.ProxyAddress", "+15550100")], event=f"routing:{CONVERSATION}"),
        Sent(PARENT, "http://app/route", "POST", [
            ("AccountSid", ACCOUNT), ("ChatServiceSid", "IS1"), ("ConversationSid", "CH2"),
            ("CustomerAddress", "sip:carol@h"), ("MessagingBinding.Address", "sip:carol@h")], event="routing:CH2"),
    ]
