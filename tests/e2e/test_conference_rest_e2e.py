"""The Conferences and Participants REST API against a real switch, through the official twilio client: what
tests/e2e/test_conference_e2e.py (the audio, mute, hold, announce, kick) leaves out.  List filters (Status,
FriendlyName, DateCreated and its ranges), fetch, a participant fetched and updated by its label,
EndConferenceOnExit set by REST (a participant-modify event, then the room ends when that participant leaves),
404s, and the raw JSON field names of a conference, a participant and their lists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.peers.harness import ACCOUNT_SID, AUTH_TOKEN, SwitchProcess, WebhookSink, wait_until
from tests.peers.phone import PhoneProcess

UNKNOWN_CONFERENCE = "CF" + "0" * 32
UNKNOWN_CALL = "CA" + "0" * 32
CONFERENCE_FIELDS = {"account_sid", "api_version", "call_sid_ending_conference", "date_created", "date_updated",
                     "friendly_name", "reason_conference_ended", "region", "sid", "status", "subresource_uris",
                     "uri"}
PARTICIPANT_FIELDS = {"account_sid", "call_sid", "call_sid_to_coach", "coaching", "conference_sid", "date_created",
                      "date_updated", "end_conference_on_exit", "hold", "label", "muted",
                      "start_conference_on_enter", "status", "queue_time", "uri"}
LIST_FIELDS = {"uri", "page", "page_size", "first_page_uri", "next_page_uri", "previous_page_uri"}


@pytest.fixture
def phones() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def _join(switch: SwitchProcess, phones: ExitStack, room: str, label: str, callback: str | None = None) -> str:
    """A lab phone called into `room` with participantLabel `label`; returns its CallSid once it is seated."""
    phone = phones.enter_context(PhoneProcess(["--answer", "auto"]))
    hook = f' statusCallback="{callback}" statusCallbackEvent="start end join leave modify"' if callback else ""
    twiml = (f'<Response><Dial><Conference beep="false" participantLabel="{label}"{hook}>{room}</Conference>'
             "</Dial></Response>")
    client = switch.client()
    sid = str(client.calls.create(to=phone.uri("conf"), from_="+15550123", twiml=twiml).sid)

    def seated() -> bool:
        rooms = client.conferences.list(friendly_name=room, status="in-progress")
        return bool(rooms) and sid in {p.call_sid for p in client.conferences(rooms[0].sid).participants.list()}

    wait_until(seated, 15, f"{label} to be seated in {room}")
    return sid


def _rest_error(call: object) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        call()  # type: ignore[operator]
    return caught.value


def _raw(switch: SwitchProcess, path: str) -> requests.Response:
    return requests.get(f"{switch.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/{path}",
                        auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10)


def _ended(client: Client, sid: str) -> bool:
    return str(client.conferences(sid).fetch().status) == "completed"


def test_filters_fetch_label_and_end_conference_on_exit(switch: SwitchProcess, sink: WebhookSink,
                                                         phones: ExitStack) -> None:
    client = switch.client()
    # a room that came and went: one phone in it, hung up by REST
    gone_sid = _join(switch, phones, "rest-gone", "solo")
    gone = client.conferences.list(friendly_name="rest-gone")[0]
    client.calls(gone_sid).update(status="completed")
    wait_until(lambda: _ended(client, gone.sid), 10, "the first room to end")

    hook = sink.url("/conf-rest")
    first = _join(switch, phones, "rest-live", "host", hook)
    second = _join(switch, phones, "rest-live", "guest")
    live = client.conferences.list(friendly_name="rest-live")
    assert len(live) == 1 and str(live[0].status) == "in-progress"
    room = live[0]

    # Status and FriendlyName filters
    in_progress = {c.sid for c in client.conferences.list(status="in-progress")}
    completed = {c.sid for c in client.conferences.list(status="completed")}
    assert room.sid in in_progress and gone.sid not in in_progress
    assert gone.sid in completed and room.sid not in completed
    assert [c.sid for c in client.conferences.list(friendly_name="rest-live", status="completed")] == []
    assert client.conferences.list(friendly_name="no-such-room") == []
    # DateCreated: the UTC day, and ranges (on or before, on or after); newest first
    today = dt.datetime.now(dt.UTC).date()
    day = dt.timedelta(days=1)
    listed = [c.sid for c in client.conferences.list(date_created=today)]
    assert listed.index(room.sid) < listed.index(gone.sid)
    assert {room.sid, gone.sid} <= {c.sid for c in client.conferences.list(date_created_before=today)}
    assert {room.sid, gone.sid} <= {c.sid for c in client.conferences.list(date_created_after=today - day)}
    assert client.conferences.list(date_created_after=today + day) == []
    assert client.conferences.list(date_created_before=today - day) == []
    assert client.conferences.list(date_created=today - day) == []

    fetched = client.conferences(room.sid).fetch()
    assert (fetched.friendly_name, str(fetched.status), fetched.region) == ("rest-live", "in-progress", "us1")
    assert fetched.reason_conference_ended is None and fetched.call_sid_ending_conference is None
    ended = client.conferences(gone.sid).fetch()
    assert (str(ended.status), ended.reason_conference_ended) == ("completed", "last-participant-left")

    # a participant by its label: fetch, then update EndConferenceOnExit (a participant-modify event)
    participants = client.conferences(room.sid).participants
    guest = participants("guest").fetch()
    assert (guest.call_sid, guest.label, str(guest.status)) == (second, "guest", "connected")
    assert guest.end_conference_on_exit is False and guest.conference_sid == room.sid
    assert participants(first).fetch().label == "host"
    changed = participants("guest").update(end_conference_on_exit=True)
    assert changed.end_conference_on_exit is True and changed.call_sid == second
    assert participants(second).fetch().end_conference_on_exit is True
    assert participants("guest").update(end_conference_on_exit=True).end_conference_on_exit is True  # no change
    hooks = sink.wait_for(lambda hs: any(h.path == "/conf-rest" and h.params["StatusCallbackEvent"]
                                         == "participant-modify" for h in hs), 10)
    modify = [h for h in hooks if h.path == "/conf-rest" and h.params["StatusCallbackEvent"] == "participant-modify"]
    assert len(modify) == 1  # the second update changed nothing
    assert (modify[0].params["CallSid"], modify[0].params["EndConferenceOnExit"]) == (second, "true")
    assert modify[0].params["ConferenceSid"] == room.sid and WebhookSink.valid(modify[0])

    # the guest leaves: the room ends with it, and the host's call with the room
    client.calls(second).update(status="completed")
    wait_until(lambda: _ended(client, room.sid), 10, "the room to end with the guest")
    done = client.conferences(room.sid).fetch()
    assert done.reason_conference_ended == "participant-with-end-conference-on-exit-left"
    assert done.call_sid_ending_conference == second
    wait_until(lambda: str(client.calls(first).fetch().status) == "completed", 10, "the host's call to end")
    assert room.sid in {c.sid for c in client.conferences.list(status="completed")}
    events = [h.params["StatusCallbackEvent"] for h in sink.for_path("/conf-rest")]
    assert events[-2:] == ["conference-end", "participant-leave"], events
    assert _rest_error(lambda: participants("guest").fetch()).status == 404  # gone with the room


def test_unknown_conferences_and_participants_are_404(switch: SwitchProcess, phones: ExitStack) -> None:
    client = switch.client()
    for call in (lambda: client.conferences(UNKNOWN_CONFERENCE).fetch(),
                 lambda: client.conferences(UNKNOWN_CONFERENCE).update(status="completed"),
                 lambda: client.conferences(UNKNOWN_CONFERENCE).participants(UNKNOWN_CALL).fetch(),
                 lambda: client.conferences(UNKNOWN_CONFERENCE).participants(UNKNOWN_CALL).update(muted=True),
                 lambda: client.conferences(UNKNOWN_CONFERENCE).participants(UNKNOWN_CALL).delete()):
        error = _rest_error(call)
        assert (error.status, error.code) == (404, 20404), error
    listed = _raw(switch, f"Conferences/{UNKNOWN_CONFERENCE}/Participants.json")
    assert (listed.status_code, listed.json()["code"]) == (404, 20404)
    _join(switch, phones, "rest-404", "only")
    room = client.conferences.list(friendly_name="rest-404")[0]
    for key in (UNKNOWN_CALL, "nobody"):
        error = _rest_error(lambda k=key: client.conferences(room.sid).participants(k).fetch())
        assert (error.status, error.code) == (404, 20404), error
        error = _rest_error(lambda k=key: client.conferences(room.sid).participants(k).update(hold=True))
        assert error.status == 404, error
    bad = _rest_error(lambda: client.conferences(room.sid).update(status="in-progress"))
    assert (bad.status, bad.code) == (400, 20001)
    assert str(client.conferences(room.sid).update(status="completed").status) == "completed"
    assert client.conferences(room.sid).fetch().reason_conference_ended == "conference-ended-via-api"


def test_raw_json_field_names(switch: SwitchProcess, phones: ExitStack) -> None:
    call_sid = _join(switch, phones, "rest-raw", "raw-label")
    page = _raw(switch, "Conferences.json?FriendlyName=rest-raw").json()
    assert set(page) >= LIST_FIELDS and len(page["conferences"]) == 1
    conf = page["conferences"][0]
    assert set(conf) == CONFERENCE_FIELDS
    sid = conf["sid"]
    base = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Conferences/{sid}"
    assert conf["uri"] == f"{base}.json" and conf["api_version"] == "2010-04-01"
    assert conf["subresource_uris"] == {"participants": f"{base}/Participants.json",
                                        "recordings": f"{base}/Recordings.json"}
    assert (conf["status"], conf["reason_conference_ended"]) == ("in-progress", None)
    assert conf["date_created"].endswith("+0000")
    assert set(_raw(switch, f"Conferences/{sid}.json").json()) == CONFERENCE_FIELDS
    participants = _raw(switch, f"Conferences/{sid}/Participants.json").json()
    assert set(participants) >= LIST_FIELDS and len(participants["participants"]) == 1
    by_label, by_sid = (_raw(switch, f"Conferences/{sid}/Participants/{key}.json").json()
                        for key in ("raw-label", call_sid))
    for body in (participants["participants"][0], by_label, by_sid):
        assert set(body) == PARTICIPANT_FIELDS, body
        assert body["uri"] == f"{base}/Participants/{call_sid}.json"  # by CallSid, even when fetched by label
        assert (body["call_sid"], body["label"], body["conference_sid"]) == (call_sid, "raw-label", sid)
        assert (body["muted"], body["hold"], body["coaching"], body["status"]) == (False, False, False, "connected")
        assert isinstance(body["queue_time"], str)
    switch.client().calls(call_sid).update(status="completed")
