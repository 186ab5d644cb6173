"""<Dial> end to end: a caller (lab phone) runs TwiML that dials lab phones and sipp peers; audio both ways
is checked by FFT, the child legs' callbacks and the Dial action's parameters as whole sequences."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from twilio.twiml.voice_response import Dial, VoiceResponse

from media.audio import read_wav
from media.tones import band_energy_ratio, dominant_frequency, rms
from tests.peers.harness import SwitchProcess, WebhookSink
from tests.peers.phone import PhoneProcess
from tests.peers.sipp_peer import SippPeer

EVENTS = "initiated ringing answered completed"
NUMBER = "+15550122"


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, app: WebhookSink) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("dial"), workers=1,
                         numbers=[{"number": NUMBER, "voice_url": app.url("/inbound-dial")}])
    proc.start()
    yield proc
    proc.stop()


def _dial_doc(*uris: str, after: str | None = None, **attrs: object) -> str:
    response = VoiceResponse()
    dial = Dial(action="/dialed", **attrs)
    for uri in uris:
        dial.sip(uri, status_callback="/child", status_callback_event=EVENTS)
    response.append(dial)
    if after:
        response.say(after)
    return str(response)


def _place(switch: SwitchProcess, app: WebhookSink, caller: PhoneProcess, path: str, document: str) -> str:
    app.twiml(path, document)
    app.twiml("/dialed", str(VoiceResponse()))  # the action ends the call
    return str(switch.client().calls.create(to=caller.uri("alice"), from_="+15550199", url=app.url(path)).sid)


def _action(app: WebhookSink, sid: str, timeout: float = 20) -> dict[str, str]:
    hooks = app.wait_for(lambda hs: any(h.path == "/dialed" and h.params.get("CallSid") == sid for h in hs),
                         timeout)
    return next(h for h in hooks if h.path == "/dialed" and h.params.get("CallSid") == sid).params


def _child_statuses(app: WebhookSink, child: str) -> list[str]:
    return [h.params["CallStatus"] for h in app.for_path("/child") if h.params["CallSid"] == child]


def _tone_share(path: Path, hz: float, start: float = 0.0) -> float:
    samples, rate = read_wav(path)
    part = samples[int(start * rate):]
    return band_energy_ratio(part, rate, hz) if len(part) > rate // 2 and rms(part) > 1000 else 0.0


def test_dial_bridges_audio_both_ways_and_reports(switch: SwitchProcess, app: WebhookSink, tmp_path: Path) -> None:
    a_rec, b_rec = tmp_path / "a.wav", tmp_path / "b.wav"
    with PhoneProcess(["--answer", "auto", "--tone", "1000", "--record", str(b_rec), "--hangup-after", "3",
                       "--dtmf", "7", "--dtmf-after", "1"]) as callee, \
         PhoneProcess(["--answer", "auto", "--tone", "440", "--record", str(a_rec), "--dtmf", "3",
                       "--dtmf-after", "2", "--exit-after-calls", "1"]) as caller:
        sid = _place(switch, app, caller, "/dial-basic", _dial_doc(callee.uri("bob")))
        action = _action(app, sid)
        caller.wait_for("hangup", timeout=15)
        callee.wait_for("hangup", timeout=5)
    child = action["DialCallSid"]
    assert action["DialCallStatus"] == "completed"
    assert action["DialSipResponseCode"] == "200"
    assert 2 <= int(action["DialCallDuration"]) <= 4
    app.wait_for(lambda hs: len([h for h in hs if h.path == "/child" and h.params["CallSid"] == child]) >= 4)
    assert _child_statuses(app, child) == ["initiated", "ringing", "in-progress", "completed"]
    hooks = [h for h in app.for_path("/child") if h.params["CallSid"] == child]
    assert all(h.params["ParentCallSid"] == sid and h.params["Direction"] == "outbound-dial" for h in hooks)
    assert [h.params["SequenceNumber"] for h in hooks] == ["0", "1", "2", "3"]
    assert all(WebhookSink.valid(h) for h in hooks)
    children = switch.client().calls.list(parent_call_sid=sid)
    assert [c.sid for c in children] == [child]
    assert children[0].direction == "outbound-dial" and children[0].status == "completed"
    assert _tone_share(a_rec, 1000.0, start=0.5) > 0.5  # the caller heard the callee
    assert _tone_share(b_rec, 440.0, start=0.3) > 0.5  # and the callee heard the caller
    assert [e["digit"] for e in callee.events("dtmf")] == ["3"]  # DTMF relayed across the bridge
    assert [e["digit"] for e in caller.events("dtmf")] == ["7"]


def test_busy_and_no_answer(switch: SwitchProcess, app: WebhookSink) -> None:
    with SippPeer("uas_busy.xml", timeout=20) as busy, PhoneProcess(["--answer", "auto"]) as caller:
        sid = _place(switch, app, caller, "/dial-busy", _dial_doc(f"sip:x@{busy.uri_host}"))
        action = _action(app, sid)
        assert busy.wait_sync(10) == 0
    assert (action["DialCallStatus"], action["DialSipResponseCode"]) == ("busy", "486")
    assert _child_statuses(app, action["DialCallSid"]) == ["initiated", "ringing", "busy"]
    with SippPeer("uas_noanswer.xml", timeout=20) as silent, PhoneProcess(["--answer", "auto"]) as caller:
        started = time.monotonic()
        sid = _place(switch, app, caller, "/dial-noanswer", _dial_doc(f"sip:x@{silent.uri_host}", timeout=2))
        action = _action(app, sid)
        assert 1.5 < time.monotonic() - started < 8
        assert silent.wait_sync(10) == 0
    assert action["DialCallStatus"] == "no-answer"
    assert silent.methods_received() == ["INVITE", "CANCEL", "ACK"]


def test_parallel_first_answer_wins_the_other_is_cancelled(switch: SwitchProcess, app: WebhookSink) -> None:
    with SippPeer("uas_noanswer.xml", timeout=20) as slow, \
         PhoneProcess(["--answer", "auto", "--answer-after", "0.5", "--hangup-after", "1"]) as fast, \
         PhoneProcess(["--answer", "auto"]) as caller:
        sid = _place(switch, app, caller, "/dial-parallel",
                     _dial_doc(f"sip:slow@{slow.uri_host}", fast.uri("fast")))
        action = _action(app, sid)
        assert slow.wait_sync(10) == 0, slow.describe()
    assert action["DialCallStatus"] == "completed"
    children = {c.to: c for c in switch.client().calls.list(parent_call_sid=sid)}
    assert children[fast.uri("fast")].sid == action["DialCallSid"]
    assert children[f"sip:slow@{slow.uri_host}"].status == "canceled"
    assert slow.methods_received() == ["INVITE", "CANCEL", "ACK"]


def test_sequential_falls_back_to_the_next(switch: SwitchProcess, app: WebhookSink) -> None:
    with SippPeer("uas_busy.xml", timeout=20) as busy, \
         PhoneProcess(["--answer", "auto", "--hangup-after", "1"]) as second, \
         PhoneProcess(["--answer", "auto"]) as caller:
        sid = _place(switch, app, caller, "/dial-seq",
                     _dial_doc(f"sip:first@{busy.uri_host}", second.uri("second"), sequential=True))
        action = _action(app, sid)
    assert action["DialCallStatus"] == "completed"
    children = {c.to: c for c in switch.client().calls.list(parent_call_sid=sid)}
    assert children[f"sip:first@{busy.uri_host}"].status == "busy"
    assert children[second.uri("second")].status == "completed"
    assert children[second.uri("second")].sid == action["DialCallSid"]
    first_invite = busy.first("received", "INVITE")
    assert first_invite is not None and second.events("incoming")[0]["t"] > first_invite.timestamp


def test_hangup_on_star_and_time_limit(switch: SwitchProcess, app: WebhookSink) -> None:
    with PhoneProcess(["--answer", "auto"]) as callee, \
         PhoneProcess(["--answer", "auto", "--dtmf", "*", "--dtmf-after", "1.5"]) as caller:
        sid = _place(switch, app, caller, "/dial-star", _dial_doc(callee.uri("b"), hangup_on_star=True))
        action = _action(app, sid)
        hangup = callee.wait_for("hangup", timeout=5)
    assert action["DialCallStatus"] == "completed"
    assert hangup["by"] == "remote"  # the switch hung up the callee, not the other way round
    assert 1 <= int(action["DialCallDuration"]) <= 3
    with PhoneProcess(["--answer", "auto"]) as callee, PhoneProcess(["--answer", "auto"]) as caller:
        started = time.monotonic()
        sid = _place(switch, app, caller, "/dial-limit", _dial_doc(callee.uri("b"), time_limit=2))
        action = _action(app, sid)
        assert 1.5 < time.monotonic() - started < 6
    assert action["DialCallStatus"] == "completed"
    assert int(action["DialCallDuration"]) in (2, 3)


def test_answer_on_bridge_keeps_the_caller_unanswered(switch: SwitchProcess, app: WebhookSink) -> None:
    with PhoneProcess(["--answer", "auto", "--answer-after", "1.5", "--hangup-after", "1"]) as callee:
        app.twiml("/inbound-dial", _dial_doc(callee.uri("agent"), answer_on_bridge=True))
        app.twiml("/dialed", str(VoiceResponse()))
        with PhoneProcess(["--call", f"sip:{NUMBER}@{switch.sip_uri_host}", "--exit-after-calls", "1"]) as caller:
            caller.wait_for("hangup", timeout=20)
        callee_answered = callee.wait_for("answered", timeout=5)["t"]
    names = caller.names()
    assert names[1:4] == ["calling", "ringing", "answered"]
    assert caller.events("answered")[0]["t"] >= callee_answered - 0.05  # answered only at bridge time


def test_redirect_of_the_parent_while_the_child_rings(switch: SwitchProcess, app: WebhookSink) -> None:
    next_doc = VoiceResponse()
    next_doc.say("next")
    app.twiml("/next-customer", str(next_doc))
    with SippPeer("uas_noanswer.xml", timeout=20) as customer, PhoneProcess(["--answer", "auto"]) as agent:
        sid = _place(switch, app, agent, "/dial-redirect", _dial_doc(f"sip:customer@{customer.uri_host}"))
        app.wait_for(lambda hs: any(h.path == "/child" and h.params["CallStatus"] == "ringing" for h in hs
                                    if h.params.get("ParentCallSid") == sid))
        switch.client().calls(sid).update(url=app.url("/next-customer"))
        action = _action(app, sid)
        app.wait_for(lambda hs: any(h.path == "/next-customer" and h.params.get("CallSid") == sid for h in hs))
        assert customer.wait_sync(10) == 0
    assert action["DialCallStatus"] == "canceled"
    assert customer.methods_received() == ["INVITE", "CANCEL", "ACK"]
    child = switch.client().calls.list(parent_call_sid=sid)[0]
    assert child.status == "canceled"


def test_dial_without_capacity_fails_cleanly(tmp_path: Path, app: WebhookSink) -> None:
    # A full worker needs a small limit: the PyPI wheel's 4 legs (the built engine holds 1,024).
    switch = SwitchProcess(tmp_path, workers=1, extra_env={"SOFTSWITCH_ENGINE": "wheel"}).start()
    try:
        with PhoneProcess(["--answer", "auto"]) as busy_phone:
            holders = [switch.client().calls.create(to=busy_phone.uri(f"h{i}"), from_="+1555",
                                                    twiml="<Response><Pause length='20'/></Response>").sid
                       for i in range(3)]
            with PhoneProcess(["--answer", "auto"]) as caller:
                sid = _place(switch, app, caller, "/dial-full", _dial_doc(busy_phone.uri("x")))
                action = _action(app, sid)
            for holder in holders:
                switch.client().calls(holder).update(status="completed")
        assert action["DialCallStatus"] == "failed"
        assert "DialCallSid" not in action
    finally:
        switch.stop()


def _ringback_share(samples: np.ndarray) -> float:
    return band_energy_ratio(samples, 8000, 440.0, width=15) + band_energy_ratio(samples, 8000, 480.0, width=15)


def test_caller_hears_ringback_then_early_media_across_codecs(switch: SwitchProcess, app: WebhookSink,
                                                              tmp_path: Path) -> None:
    rec = tmp_path / "ringback.wav"
    with SippPeer("uas_noanswer.xml", timeout=20) as silent, \
         PhoneProcess(["--answer", "auto", "--record", str(rec), "--exit-after-calls", "1"]) as caller:
        sid = _place(switch, app, caller, "/dial-ringback", _dial_doc(f"sip:x@{silent.uri_host}", timeout=3))
        _action(app, sid)
        caller.wait_for("hangup", timeout=10)
    samples, _ = read_wav(rec)
    assert _ringback_share(samples[4000:16000]) > 0.8  # 440 + 480 Hz: the US ringback
    rec = tmp_path / "early.wav"
    with SippPeer("uas_early_media_pcma.xml", timeout=20, variables={"pause_ms": 2500}) as pcma, \
         PhoneProcess(["--answer", "auto", "--record", str(rec), "--exit-after-calls", "1"]) as caller:
        sid = _place(switch, app, caller, "/dial-early", _dial_doc(f"sip:x@{pcma.uri_host}", time_limit=1))
        action = _action(app, sid)
        caller.wait_for("hangup", timeout=10)
    assert action["DialCallStatus"] == "completed"
    samples, _ = read_wav(rec)
    early = samples[4000:16000]  # 0.5 s .. 2 s: while the child is still in 183
    assert rms(early) > 300  # the caller (PCMU) hears the child's A-law early media...
    assert _ringback_share(early) < 0.3  # ...instead of our ringback
    invite = pcma.first("received", "INVITE")
    assert invite is not None and "PCMA" in invite.body


def test_number_goes_through_the_trunk_with_digest_auth(tmp_path: Path, app: WebhookSink) -> None:
    with SippPeer("uas_auth.xml", timeout=30, auth=("trunkuser", "trunkpass")) as trunk:
        switch = SwitchProcess(tmp_path, workers=1, trunks=[
            {"name": "lab", "uri": f"sip:{trunk.uri_host}", "username": "trunkuser", "password": "trunkpass"}])
        switch.start()
        try:
            document = VoiceResponse()
            dial = Dial(action="/dialed", time_limit=1)
            dial.number("+15557000001", status_callback="/child", status_callback_event=EVENTS)
            document.append(dial)
            with PhoneProcess(["--answer", "auto"]) as caller:
                sid = _place(switch, app, caller, "/dial-trunk", str(document))
                action = _action(app, sid)
            assert trunk.wait_sync(10) == 0, trunk.describe()
        finally:
            switch.stop()
    assert action["DialCallStatus"] == "completed"
    assert "DialSipResponseCode" not in action  # only for <Sip> nouns
    invite = trunk.first("received", "INVITE")
    assert invite is not None and invite.request_uri == f"sip:+15557000001@{trunk.uri_host}"
    assert trunk.codes_sent() == [401, 100, 180, 200, 200]


def test_dual_recording_puts_each_party_on_its_own_channel(switch: SwitchProcess, app: WebhookSink) -> None:
    with PhoneProcess(["--answer", "auto", "--tone", "1000", "--hangup-after", "3"]) as callee, \
         PhoneProcess(["--answer", "auto", "--tone", "440", "--exit-after-calls", "1"]) as caller:
        sid = _place(switch, app, caller, "/dial-record",
                     _dial_doc(callee.uri("bob"), record="record-from-answer-dual"))
        action = _action(app, sid)
    assert action["DialCallStatus"] == "completed"
    assert action["RecordingSid"].startswith("RE")
    data, rate = switch.recording(action["RecordingUrl"])
    assert data.shape[1] == 2 and rate == 8000
    assert 2.0 <= len(data) / rate <= 4.0
    caller_channel, callee_channel = data[4000:, 0], data[4000:, 1]
    assert abs(dominant_frequency(caller_channel, rate) - 440.0) < 10
    assert abs(dominant_frequency(callee_channel, rate) - 1000.0) < 10
    assert band_energy_ratio(caller_channel, rate, 1000.0) < 0.05  # no bleed between channels
    assert band_energy_ratio(callee_channel, rate, 440.0) < 0.05
    recordings = switch.client().recordings.list(call_sid=sid)
    assert [(r.sid, r.source, r.channels) for r in recordings] == [(action["RecordingSid"], "DialVerb", 2)]


def test_call_recording_hears_the_dialed_party_on_its_outbound_track(switch: SwitchProcess,
                                                                     app: WebhookSink) -> None:
    # Record=true on Calls.create, dual: the called phone on channel 1, what the switch sends it -- here the
    # party its <Dial> bridged -- on channel 2.
    with PhoneProcess(["--answer", "auto", "--tone", "1000", "--hangup-after", "3"]) as callee, \
         PhoneProcess(["--answer", "auto", "--tone", "440", "--exit-after-calls", "1"]) as caller:
        app.twiml("/dial-call-rec", _dial_doc(callee.uri("bob")))
        app.twiml("/dialed", str(VoiceResponse()))
        sid = switch.client().calls.create(to=caller.uri("alice"), from_="+15550199", url=app.url("/dial-call-rec"),
                                           record=True, recording_channels="dual",
                                           recording_status_callback=app.url("/call-rec")).sid
        _action(app, sid)
    hook = app.wait_for(lambda hs: any(h.path == "/call-rec" and h.params["CallSid"] == sid for h in hs), 15)
    params = next(h.params for h in hook if h.path == "/call-rec" and h.params["CallSid"] == sid)
    assert (params["RecordingSource"], params["RecordingChannels"]) == ("OutboundAPI", "2")
    data, rate = switch.recording(params["RecordingUrl"])
    caller_channel, sent_channel = data[4000:, 0], data[4000:, 1]
    assert abs(dominant_frequency(caller_channel, rate) - 440.0) < 10
    assert abs(dominant_frequency(sent_channel, rate) - 1000.0) < 10
    assert band_energy_ratio(caller_channel, rate, 1000.0) < 0.05


def test_whisper_runs_on_the_callee_before_bridging_and_can_decline(switch: SwitchProcess, app: WebhookSink,
                                                                    tmp_path: Path) -> None:
    whisper = VoiceResponse()
    whisper.say("You have a call from the soft switch")
    app.twiml("/whisper", str(whisper))
    decline = VoiceResponse()
    decline.hangup()
    app.twiml("/decline", str(decline))

    def doc(url: str) -> str:
        response = VoiceResponse()
        dial = Dial(action="/dialed", time_limit=5)  # counts from the agent's answer, whisper included
        dial.sip(callee.uri("agent"), url=url)
        response.append(dial)
        return str(response)

    heard = tmp_path / "whisper.wav"
    with PhoneProcess(["--answer", "auto", "--record", str(heard)]) as callee, \
         PhoneProcess(["--answer", "auto", "--tone", "440"]) as caller:
        sid = _place(switch, app, caller, "/dial-whisper", doc("/whisper"))
        action = _action(app, sid)
        callee.wait_for("hangup", timeout=10)
    assert action["DialCallStatus"] == "completed"
    samples, _ = read_wav(heard)
    assert rms(samples[:8000]) > 200  # the whisper speech reached the agent first...
    assert band_energy_ratio(samples[-8000:], 8000, 440.0) > 0.5  # ...then the caller's voice
    whisper_fetch = [h for h in app.hooks if h.path == "/whisper"][-1]
    assert whisper_fetch.params["Direction"] == "outbound-dial" and whisper_fetch.params["ParentCallSid"] == sid
    with PhoneProcess(["--answer", "auto"]) as callee, PhoneProcess(["--answer", "auto"]) as caller:
        sid = _place(switch, app, caller, "/dial-decline", doc("/decline"))
        action = _action(app, sid)
    assert action["DialCallStatus"] == "no-answer"  # the agent declined in the whisper
    assert switch.client().calls(action["DialCallSid"]).fetch().status == "completed"  # it was answered


def test_record_from_ringing_dual_keeps_the_early_media(switch: SwitchProcess, app: WebhookSink) -> None:


    from media.tones import dominant_frequency

    with SippPeer("uas_early_media_pcma.xml", timeout=20, variables={"pause_ms": 2000}) as pcma, \
         PhoneProcess(["--answer", "auto", "--tone", "440", "--exit-after-calls", "1"]) as caller:
        sid = _place(switch, app, caller, "/dial-ringing-rec",
                     _dial_doc(f"sip:x@{pcma.uri_host}", time_limit=1, record="record-from-ringing-dual"))
        action = _action(app, sid)
    data, rate = switch.recording(action["RecordingUrl"])
    assert data.shape[1] == 2
    assert len(data) / rate >= 2.5  # ~2 s of ringing (early media) + 1 s of talk
    assert abs(dominant_frequency(data[800:8000, 0], rate) - 440.0) < 10  # the caller, from the start
    assert rms(data[4000:12000, 1]) > 300  # the child's A-law early media, before it answered


def test_rest_hangup_of_the_child_and_a_404_child(switch: SwitchProcess, app: WebhookSink) -> None:
    with PhoneProcess(["--answer", "auto"]) as callee, PhoneProcess(["--answer", "auto"]) as caller:
        sid = _place(switch, app, caller, "/dial-rest-child", _dial_doc(callee.uri("agent")))
        app.wait_for(lambda hs: any(h.path == "/child" and h.params["CallStatus"] == "in-progress"
                                    and h.params.get("ParentCallSid") == sid for h in hs))
        child = switch.client().calls.list(parent_call_sid=sid)[0].sid
        switch.client().calls(child).update(status="completed")  # the app hangs up the agent's leg
        action = _action(app, sid)
    assert (action["DialCallStatus"], action["DialCallSid"]) == ("completed", child)
    assert _child_statuses(app, child) == ["initiated", "ringing", "in-progress", "completed"]
    with SippPeer("uas_404.xml", timeout=20) as missing, PhoneProcess(["--answer", "auto"]) as caller:
        sid = _place(switch, app, caller, "/dial-404", _dial_doc(f"sip:nobody@{missing.uri_host}"))
        action = _action(app, sid)
        assert missing.wait_sync(10) == 0
    assert (action["DialCallStatus"], action["DialSipResponseCode"]) == ("failed", "404")
    assert _child_statuses(app, action["DialCallSid"]) == ["initiated", "failed"]
