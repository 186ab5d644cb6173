"""Exotel's connect request and what the switch renders of it, without a call: the POST response's StartTime is
the one the callbacks show, CallerId is required as Exotel's reference says, and CustomField is sent only where
Exotel sends it (the terminal callback, when it was given).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from multidict import MultiDict

from switch.core.model import Call, Direction
from switch.core.status import CallStatus
from switch.dialects.exotel.api import BadRequest, call_resource, parse_connect
from switch.dialects.exotel.render import (
    CallView,
    Connect,
    ConnectRequest,
    Event,
    callback_document,
    default_document,
    form_fields,
)

T0 = dt.datetime(2022, 4, 6, 10, 44, 40, 600000, tzinfo=dt.UTC)  # the request; the INVITE leaves 0.5 s later
GOOD = {"From": "07874762218", "To": "08780296135", "CallerId": "08044556678"}
LIVE_KEYS = ["CallSid", "EventType", "DateCreated", "DateUpdated", "Status", "To", "From", "PhoneNumberSid",
             "StartTime", "EndTime", "EventTime", "Direction", "RecordingUrl", "ConversationDuration", "Legs"]


def _at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def _request(**params: str) -> ConnectRequest:
    return parse_connect(MultiDict({**GOOD, **params}))


def _leg(sid: str, to: str, status: CallStatus) -> Call:
    return Call(sid, "AC1", to, "08044556678", Direction.OUTBOUND_API, status, date_created=T0, date_updated=T0)


def _history(request: ConnectRequest) -> tuple[Connect, list[tuple[Event | None, Call, Call | None, dt.datetime]]]:
    """A connect call as the edge sees it: the POST (leg 1 queued), leg 1 rings, answers, leg 2 rings, answers,
    both end.  Each step: the event it reports (None for the POST), leg 1, leg 2, when."""
    connect = Connect("CA1", request, ringing_at={1: _at(1), 2: _at(5)})
    queued = _leg("CA1", request.from_, CallStatus.QUEUED)
    ringing = dataclasses.replace(queued, status=CallStatus.RINGING, start_time=_at(0.5), date_updated=_at(1))
    answered = dataclasses.replace(ringing, status=CallStatus.IN_PROGRESS, answer_time=_at(4), date_updated=_at(4))
    leg2 = dataclasses.replace(_leg("CA2", request.to, CallStatus.RINGING), start_time=_at(4.5), date_updated=_at(5))
    leg2_up = dataclasses.replace(leg2, status=CallStatus.IN_PROGRESS, answer_time=_at(8), date_updated=_at(8))
    ended1 = dataclasses.replace(answered, status=CallStatus.COMPLETED, end_time=_at(16), duration=12)
    ended2 = dataclasses.replace(leg2_up, status=CallStatus.COMPLETED, end_time=_at(16), duration=8)
    return connect, [(None, queued, None, T0), (Event.RINGING, ringing, None, _at(1)),
                     (Event.ANSWERED, answered, None, _at(4)), (Event.RINGING, answered, leg2, _at(5)),
                     (Event.ANSWERED, answered, leg2_up, _at(8)), (Event.TERMINAL, ended1, ended2, _at(16))]


def test_the_post_response_start_time_is_the_one_the_callbacks_and_details_show() -> None:
    request = _request(CustomField="ticket-42")
    connect, steps = _history(request)
    response = call_resource(CallView(steps[0][1], None, request, None), "sid", details=False)
    documents = [callback_document(connect, event, CallView(leg1, leg2, request, None), at)
                 for event, leg1, leg2, at in steps[1:] if event is not None]
    details = call_resource(CallView(steps[1][1], None, request, None), "sid", details=True)
    # Until From answers: the request's time, in the response, the first callback and the details alike
    # (not the INVITE's, which the response cannot know: it leaves after the response is rendered).
    assert response["StartTime"] == documents[0]["StartTime"] == details["StartTime"] == "2022-04-06 10:44:40"
    assert response["StartTime"] == response["DateCreated"]
    # From answers: leg 1's answer time from then on (Exotel's samples), so OnCallDuration = EndTime - StartTime.
    assert [d["StartTime"] for d in documents[1:]] == ["2022-04-06 10:44:44"] * 4
    end = documents[-1]
    assert (end["EndTime"], end["Legs"][0]["OnCallDuration"]) == ("2022-04-06 10:44:56", 12)


def test_custom_field_is_sent_only_in_the_terminal_callback_and_only_when_given() -> None:
    # An empty CustomField is one not given (as every empty parameter of the API).
    for custom, expected in (({"CustomField": "ticket-42"}, "ticket-42"), ({"CustomField": ""}, None), ({}, None)):
        request = _request(**custom)
        connect, steps = _history(request)
        documents = [callback_document(connect, event, CallView(leg1, leg2, request, None), at)
                     for event, leg1, leg2, at in steps if event is not None]
        assert [d["EventType"] for d in documents] == ["ringing", "answered", "ringing", "answered", "terminal"]
        assert all(list(d) == LIVE_KEYS for d in documents[:4]), custom
        keys = LIVE_KEYS[:-1] + (["CustomField"] if expected is not None else []) + ["Legs"]
        assert list(documents[4]) == keys, custom
        assert documents[4].get("CustomField") == expected
        fields = dict(form_fields(documents[4]))
        assert fields.get("CustomField") == expected and fields["Legs[1][OnCallDuration]"] == "8"
        # Exotel's default callback (no StatusCallbackEvents) is its four fields, CustomField or not.
        view = CallView(steps[-1][1], steps[-1][2], request, None)
        assert list(default_document(connect, view, _at(16))) == ["CallSid", "DateUpdated", "Status", "RecordingUrl"]


@pytest.mark.parametrize(("params", "message"), [
    ({"CallerId": None}, "Missing parameter 'CallerId'"),
    ({"CallerId": "  "}, "Missing parameter 'CallerId'"),
    ({"CallerId": "not a number"}, "Invalid 'CallerId' number: not a number"),
    ({"From": None}, "Missing parameter 'From'"),
    ({"To": None}, "Missing parameter 'To'"),
    ({"CustomField": "x" * 129}, "'CustomField' must be at most 128 characters, not 129"),
])
def test_connect_parameters_exotel_requires(params: dict[str, str | None], message: str) -> None:
    form = {k: v for k, v in {**GOOD, **params}.items() if v is not None}
    with pytest.raises(BadRequest) as caught:
        parse_connect(MultiDict(form))
    assert (caught.value.http_status, caught.value.message) == (400, message)


def test_a_full_connect_request_is_read_whole() -> None:
    request = _request(CustomField="x" * 128, TimeOut="20", Record="true", RecordingChannels="dual")
    assert request == ConnectRequest(from_="07874762218", to="08780296135", caller_id="08044556678",
                                     timeout=20, record=True, recording_channels="dual", custom_field="x" * 128)
