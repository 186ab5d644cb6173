"""Twilio's Conferences, Participants and conference Recordings routes over an in-memory `ConferenceService`,
driven by the official `twilio` client for every operation, plus raw HTTP for field names and error codes."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
from twilio.base.exceptions import TwilioRestException

from switch.core.conference_model import ConferenceStatus, ParticipantUpdate
from tests.unit.callcenter_fakes import ACCOUNT_SID, T0, Harness

CONFERENCE_FIELDS = {
    "account_sid", "date_created", "date_updated", "api_version", "friendly_name", "region", "sid", "status", "uri",
    "subresource_uris", "reason_conference_ended", "call_sid_ending_conference",
}  # fmt: skip
PARTICIPANT_FIELDS = {
    "account_sid", "call_sid", "label", "call_sid_to_coach", "coaching", "conference_sid", "date_created",
    "date_updated", "end_conference_on_exit", "muted", "hold", "start_conference_on_enter", "status", "queue_time",
    "uri",
}  # fmt: skip
NEW = {"From": "+15017122661", "To": "+15558675310"}


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = await Harness().start()
    yield harness
    await harness.close()


async def test_conferences_list_fetch_and_filters(h: Harness) -> None:
    fakes = h.conferences
    old = fakes.add_conference("old", ConferenceStatus.COMPLETED, T0 - dt.timedelta(days=3))
    room = fakes.add_conference("room", created=T0)
    lobby = fakes.add_conference("lobby", ConferenceStatus.INIT, T0 + dt.timedelta(hours=1))
    listed = await h.call(lambda: h.client.conferences.list())
    assert [c.sid for c in listed] == [lobby.sid, room.sid, old.sid]  # newest first
    running = await h.call(lambda: h.client.conferences.list(status="in-progress"))
    assert [c.sid for c in running] == [room.sid]
    named = await h.call(lambda: h.client.conferences.list(friendly_name="lobby"))
    assert [c.sid for c in named] == [lobby.sid]
    recent = await h.call(lambda: h.client.conferences.list(date_created_after=T0.date()))
    assert {c.sid for c in recent} == {room.sid, lobby.sid}
    early = await h.call(lambda: h.client.conferences.list(date_created_before=(T0 - dt.timedelta(days=1)).date()))
    assert [c.sid for c in early] == [old.sid]
    # A raw `DateCreated<=` arrives as the key `DateCreated<` with the value `=YYYY-MM-DD`.
    status, body = await h.raw("GET", "Conferences.json?DateCreated<=2024-04-30")
    assert status == 200 and [c["sid"] for c in body["conferences"]] == [old.sid]
    fetched = await h.call(lambda: h.client.conferences(room.sid).fetch())
    assert (fetched.friendly_name, fetched.status, fetched.date_created) == ("room", "in-progress", T0)
    status, body = await h.raw("GET", f"Conferences/{room.sid}.json")
    assert status == 200 and set(body) == CONFERENCE_FIELDS
    uri = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Conferences/{room.sid}"
    assert body["uri"] == uri + ".json" and body["api_version"] == "2010-04-01"
    assert body["subresource_uris"] == {"participants": uri + "/Participants.json",
                                        "recordings": uri + "/Recordings.json"}
    assert body["date_created"] == "Wed, 01 May 2024 12:00:00 +0000"
    assert body["reason_conference_ended"] is None


async def test_conference_list_pages(h: Harness) -> None:
    made = [h.conferences.add_conference(f"c{i}", created=T0 + dt.timedelta(minutes=i)) for i in range(5)]
    listed = await h.call(lambda: h.client.conferences.list(page_size=2))
    assert [c.sid for c in listed] == [c.sid for c in reversed(made)]
    status, body = await h.raw("GET", "Conferences.json?PageSize=2&Status=in-progress")
    assert status == 200 and len(body["conferences"]) == 2 and body["page_size"] == 2
    assert "Status=in-progress" in body["next_page_uri"] and "PageToken=PA" in body["next_page_uri"]


async def test_conference_update_ends_and_announces(h: Harness) -> None:
    room = h.conferences.add_conference("room")
    announced = await h.call(lambda: h.client.conferences(room.sid).update(announce_url="https://app.example/a.xml"))
    assert announced.status == "in-progress"
    assert h.conferences.announced == [(room.sid, "https://app.example/a.xml", "POST")]
    ended = await h.call(lambda: h.client.conferences(room.sid).update(status="completed"))
    assert (ended.status, ended.reason_conference_ended) == ("completed", "conference-ended-via-api")
    await h.error("POST", f"Conferences/{room.sid}.json", (400, 20001), data={"Status": "in-progress"})
    await h.error("POST", f"Conferences/{room.sid}.json", (400, 21205), data={"AnnounceUrl": "nope"})
    await h.error("POST", f"Conferences/{room.sid}.json", (400, 21209),
                 data={"AnnounceUrl": "https://app.example/a", "AnnounceMethod": "PUT"})


async def test_unknown_conference_is_404(h: Harness) -> None:
    missing = "CF" + "0" * 32
    with pytest.raises(TwilioRestException) as info:
        await h.call(lambda: h.client.conferences(missing).fetch())
    assert (info.value.status, info.value.code) == (404, 20404)
    for method, path in (("GET", f"Conferences/{missing}.json"), ("POST", f"Conferences/{missing}.json"),
                         ("GET", f"Conferences/{missing}/Participants.json"),
                         ("GET", f"Conferences/{missing}/Participants/CA{'1' * 32}.json"),
                         ("DELETE", f"Conferences/{missing}/Participants/CA{'1' * 32}.json"),
                         ("GET", f"Conferences/{missing}/Recordings.json")):
        await h.error(method, path, (404, 20404))
    await h.error("POST", f"Conferences/{missing}/Participants.json", (404, 20404), data=NEW)


async def test_authentication_is_required(h: Harness) -> None:
    room = h.conferences.add_conference("room")
    status, body = await h.raw("GET", f"Conferences/{room.sid}.json", auth=False)
    assert (status, body["code"]) == (401, 20003)


async def test_participants_create_maps_every_parameter(h: Harness) -> None:
    room = h.conferences.add_conference("room")
    made = await h.call(lambda: h.client.conferences(room.sid).participants.create(
        from_="+15017122661", to="sip:agent@example.com", label="agent one", muted=True, beep="onEnter",
        start_conference_on_enter=False, end_conference_on_exit=True, wait_url="https://app.example/wait",
        wait_method="GET", max_participants=10, early_media=False, timeout=25, time_limit=600,
        status_callback="https://app.example/status", status_callback_event=["ringing", "answered"],
        conference_status_callback="https://app.example/conf", conference_status_callback_event=["join", "leave"],
        conference_record="true", conference_trim="do-not-trim",
        conference_recording_status_callback="https://app.example/rec",
        conference_recording_status_callback_event=["in-progress", "completed"],
        recording_status_callback="https://app.example/prec", caller_id="+15017122661",
        sip_auth_username="agent", sip_auth_password="s3cret", region="ie1", jitter_buffer_size="small"))
    assert made.label == "agent one" and made.muted is True and made.status == "queued"
    assert made.conference_sid == room.sid and made.call_sid.startswith("CA")
    target, create = h.conferences.created[0]
    assert target == room.sid
    assert (create.from_, create.to, create.label, create.muted, create.beep) == (
        "+15017122661", "sip:agent@example.com", "agent one", True, "onEnter")
    assert (create.start_conference_on_enter, create.end_conference_on_exit, create.early_media) == (False, True, False)
    assert (create.wait_url, create.wait_method, create.max_participants) == ("https://app.example/wait", "GET", 10)
    assert (create.timeout, create.time_limit) == (25, 600)
    assert create.status_callback_event == ("ringing", "answered")
    assert create.conference_status_callback_event == ("join", "leave")
    assert (create.conference_record, create.conference_trim) == ("record-from-start", "do-not-trim")
    assert create.conference_recording_status_callback_event == ("in-progress", "completed")
    assert (create.recording_status_callback, create.caller_id) == ("https://app.example/prec", "+15017122661")
    assert (create.sip_auth_username, create.sip_auth_password) == ("agent", "s3cret")


async def test_participant_create_defaults_and_conference_by_name(h: Harness) -> None:
    status, body = await h.raw("POST", "Conferences/my%20room/Participants.json", data=NEW)
    assert status == 201 and set(body) == PARTICIPANT_FIELDS
    conf_sid = body["conference_sid"]
    assert h.conferences.conferences[conf_sid].friendly_name == "my room"
    assert body["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Conferences/{conf_sid}/Participants/" \
                          f"{body['call_sid']}.json"
    target, create = h.conferences.created[0]
    assert target == "my room"
    assert (create.beep, create.start_conference_on_enter, create.early_media, create.timeout) == (
        "true", True, True, 60)
    assert (create.max_participants, create.time_limit, create.wait_url) == (250, 14400, None)
    assert create.status_callback_event == ("completed",)
    assert create.conference_status_callback_event == ("start", "end")
    assert create.conference_record == "do-not-record" and create.conference_trim == "trim-silence"
    assert create.conference_recording_status_callback_event == ("completed",)
    # An empty WaitUrl is silence, not the default music; Coaching follows CallSidToCoach.
    coach = "CA" + "a" * 32
    status, _ = await h.raw("POST", f"Conferences/{conf_sid}/Participants.json",
                            data={**NEW, "WaitUrl": "", "CallSidToCoach": coach})
    assert status == 201
    _, create = h.conferences.created[1]
    assert (create.wait_url, create.coaching, create.call_sid_to_coach) == ("", True, coach)


@pytest.mark.parametrize(("form", "code"), [
    ({"From": "+15017122661"}, 21201),
    ({"To": "+15558675310"}, 21213),
    ({**NEW, "To": "not a number"}, 21211),
    ({**NEW, "From": "bad<from>"}, 21212),
    ({**NEW, "Label": "a/b"}, 16024),
    ({**NEW, "Label": "x" * 129}, 16024),
    ({**NEW, "Label": "CA" + "0" * 32}, 16024),
    ({**NEW, "Beep": "loud"}, 20001),
    ({**NEW, "Muted": "yes"}, 20001),
    ({**NEW, "Timeout": "4"}, 21208),
    ({**NEW, "Timeout": "601"}, 21208),
    ({**NEW, "MaxParticipants": "1"}, 20001),
    ({**NEW, "MaxParticipants": "251"}, 20001),
    ({**NEW, "ConferenceRecord": "sometimes"}, 20001),
    ({**NEW, "ConferenceTrim": "trim"}, 20001),
    ({**NEW, "StatusCallbackEvent": "started"}, 20001),
    ({**NEW, "ConferenceStatusCallbackEvent": "begin"}, 20001),
    ({**NEW, "StatusCallback": "ftp://x"}, 21205),
    ({**NEW, "WaitMethod": "PUT"}, 21209),
    ({**NEW, "Coaching": "true"}, 20001),
    ({**NEW, "Record": "true"}, 20001),
    ({**NEW, "MachineDetection": "Enable"}, 20001),
])  # fmt: skip
async def test_participant_create_rejects_bad_parameters(h: Harness, form: dict[str, str], code: int) -> None:
    room = h.conferences.add_conference("room")
    await h.error("POST", f"Conferences/{room.sid}/Participants.json", (400, code), data=form)
    assert h.conferences.created == []


async def test_participant_label_in_use_is_16026(h: Harness) -> None:
    room = h.conferences.add_conference("room")
    h.conferences.add_participant_now(room.sid, label="agent")
    with pytest.raises(TwilioRestException) as info:
        await h.call(lambda: h.client.conferences(room.sid).participants.create(
            from_="+15017122661", to="+15558675310", label="agent"))
    assert (info.value.status, info.value.code) == (400, 16026)
    await h.error("POST", "Conferences/room/Participants.json", (400, 16026), data={**NEW, "Label": "agent"})


async def test_participants_list_fetch_update_delete(h: Harness) -> None:
    room = h.conferences.add_conference("room")
    alice = h.conferences.add_participant_now(room.sid, label="alice smith", created=T0)
    bob = h.conferences.add_participant_now(room.sid, muted=True, created=T0 + dt.timedelta(seconds=5))
    participants = h.client.conferences(room.sid).participants
    listed = await h.call(lambda: participants.list())
    assert [p.call_sid for p in listed] == [alice.call_sid, bob.call_sid]  # in the order they joined
    muted = await h.call(lambda: participants.list(muted=True))
    assert [p.call_sid for p in muted] == [bob.call_sid]
    assert await h.call(lambda: participants.list(hold=True, coaching=False)) == []
    await h.error("GET", f"Conferences/{room.sid}/Participants.json?Muted=maybe", (400, 20001))
    by_sid = await h.call(lambda: participants(alice.call_sid).fetch())
    by_label = await h.call(lambda: participants("alice smith").fetch())
    assert by_sid.call_sid == by_label.call_sid == alice.call_sid and by_label.label == "alice smith"
    status, body = await h.raw("GET", f"Conferences/{room.sid}/Participants/{quote('alice smith')}.json")
    assert status == 200 and set(body) == PARTICIPANT_FIELDS and body["muted"] is False
    assert body["status"] == "connected" and body["queue_time"] == "0"
    updated = await h.call(lambda: participants("alice smith").update(
        muted=True, hold=True, hold_url="https://app.example/hold", announce_url="https://app.example/ann",
        end_conference_on_exit=True, wait_url="https://app.example/ignored", beep_on_exit=False))
    assert (updated.muted, updated.hold, updated.end_conference_on_exit) == (True, True, True)
    assert h.conferences.updates[-1] == ParticipantUpdate(
        muted=True, hold=True, hold_url="https://app.example/hold", hold_method="GET",
        announce_url="https://app.example/ann", announce_method="POST", end_conference_on_exit=True)
    coached = await h.call(lambda: participants(bob.call_sid).update(call_sid_to_coach=alice.call_sid))
    assert (coached.coaching, coached.call_sid_to_coach) == (True, alice.call_sid)
    await h.error("POST", f"Conferences/{room.sid}/Participants/{bob.call_sid}.json", (400, 20001),
                 data={"Hold": "later"})
    assert await h.call(lambda: participants(bob.call_sid).delete()) is True
    assert bob.call_sid not in h.conferences.participants[room.sid]
    with pytest.raises(TwilioRestException) as info:
        await h.call(lambda: participants(bob.call_sid).fetch())
    assert (info.value.status, info.value.code) == (404, 20404)
    for method in ("POST", "DELETE"):
        await h.error(method, f"Conferences/{room.sid}/Participants/nobody.json", (404, 20404))


async def test_conference_recordings(h: Harness) -> None:
    room = h.conferences.add_conference("room")
    other = h.conferences.add_conference("other")
    first = h.recordings.add(room.sid, T0)
    second = h.recordings.add(room.sid, T0 + dt.timedelta(days=1))
    elsewhere = h.recordings.add(other.sid, T0)
    h.conferences.recording_sids = {room.sid: [first.sid, second.sid, "RE" + "9" * 32], other.sid: [elsewhere.sid]}
    recordings = h.client.conferences(room.sid).recordings
    listed = await h.call(lambda: recordings.list())
    assert [r.sid for r in listed] == [second.sid, first.sid]  # newest first; an unknown SID is skipped
    assert listed[0].conference_sid == room.sid and listed[0].duration == "7"
    assert listed[0].uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Conferences/{room.sid}/Recordings/{second.sid}.json"
    on_day = await h.call(lambda: recordings.list(date_created=T0.date()))
    assert [r.sid for r in on_day] == [first.sid]
    fetched = await h.call(lambda: recordings(first.sid).fetch())
    assert fetched.sid == first.sid and fetched.status == "completed"
    await h.error("GET", f"Conferences/{room.sid}/Recordings/{elsewhere.sid}.json", (404, 20404))
    assert await h.call(lambda: recordings(first.sid).delete()) is True
    assert first.sid not in h.recordings.by_sid
    await h.error("DELETE", f"Conferences/{room.sid}/Recordings/{first.sid}.json", (404, 20404))
