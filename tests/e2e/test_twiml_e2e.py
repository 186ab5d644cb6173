"""TwiML end to end: documents built with the official `VoiceResponse`, served by a local app, run on real
calls to the lab phone, which records what it heard (checked by FFT and energy) and presses digits."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from twilio.twiml.voice_response import VoiceResponse

from media.audio import read_wav
from media.tones import band_energy_ratio, dominant_frequency, rms, sine
from tests.peers.harness import SwitchProcess, WebhookSink, wait_until
from tests.peers.phone import PhoneProcess

NUMBER = "+15550111"


@pytest.fixture(scope="module")
def app() -> Iterator[WebhookSink]:
    sink = WebhookSink().start()
    for hz in (400, 600, 1200):
        sink.tone(f"/tone{hz}.wav", float(hz))
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, app: WebhookSink) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("twiml"), workers=1, fetch_timeout=2.0,
                         numbers=[{"number": NUMBER, "voice_url": app.url("/inbound")}])
    proc.start()
    yield proc
    proc.stop()


def _doc(build: object) -> str:
    """A document from one VoiceResponse builder call: `_doc(lambda r: r.hangup())`."""
    response = VoiceResponse()
    build(response)  # type: ignore[operator]
    return str(response)


def _call(switch: SwitchProcess, app: WebhookSink, phone: PhoneProcess, **kwargs: object) -> str:
    call = switch.client().calls.create(to=phone.uri("bob"), from_="+15550199",
                                        status_callback=app.url("/status"), **kwargs)
    return str(call.sid)


def _heard(path: Path) -> np.ndarray:
    samples, rate = read_wav(path)
    assert rate == 8000
    return samples


def test_say_is_heard_and_the_call_ends_after_the_last_verb(switch: SwitchProcess, app: WebhookSink,
                                                           tmp_path: Path) -> None:
    response = VoiceResponse()
    response.say("Hello from the soft switch. This is a test of speech.", voice="alice")
    heard = tmp_path / "say.wav"
    with PhoneProcess(["--answer", "auto", "--record", str(heard), "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, twiml=str(response))
        phone.wait_for("hangup", timeout=20)
    hangup = phone.events("hangup")[0]
    assert hangup["by"] == "remote"  # the switch hung up after the last verb
    samples = _heard(heard)
    assert len(samples) > 8000 * 1.5
    assert rms(samples) > 300  # speech, not silence
    app.wait_statuses("/status", sid, 1)
    assert app.statuses("/status", sid) == ["completed"]


def test_play_gather_and_action(switch: SwitchProcess, app: WebhookSink, tmp_path: Path) -> None:
    first = VoiceResponse()
    gather = first.gather(num_digits=1, action="/gathered", timeout=5)
    gather.play(app.url("/tone600.wav"), loop=5)
    first.say("We did not get your answer.")
    app.twiml("/ivr", str(first))
    done = VoiceResponse()
    done.play(app.url("/tone1200.wav"))
    done.hangup()
    app.twiml("/gathered", str(done))
    heard = tmp_path / "gather.wav"
    with PhoneProcess(["--answer", "auto", "--record", str(heard), "--dtmf", "5", "--dtmf-after", "1.5",
                       "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, url=app.url("/ivr"))
        phone.wait_for("hangup", timeout=20)
    fetches = [h for h in app.hooks if h.path in ("/ivr", "/gathered") and h.params.get("CallSid") == sid]
    assert [h.path for h in fetches] == ["/ivr", "/gathered"]
    assert fetches[1].params["Digits"] == "5"
    assert all(WebhookSink.valid(h) for h in fetches)
    assert fetches[0].params["CallStatus"] == "in-progress"
    samples = _heard(heard)
    # 600 Hz until the digit (barge-in at ~1.5 s, well before the 5 loops end), then 1200 Hz
    assert band_energy_ratio(samples[: int(8000 * 1.2)], 8000, 600.0) > 0.5
    tail = samples[int(8000 * 1.8):]
    assert abs(dominant_frequency(tail, 8000) - 1200.0) < 10
    assert len(samples) < 8000 * 4.5  # the 5-second prompt was cut short


def test_gather_without_input_goes_on_to_the_next_verb(switch: SwitchProcess, app: WebhookSink) -> None:
    response = VoiceResponse()
    response.gather(num_digits=1, action="/never", timeout=1)
    response.redirect("/after-gather", method="GET")
    app.twiml("/quiet", str(response))
    app.twiml("/after-gather", _doc(lambda r: r.hangup()))
    with PhoneProcess(["--answer", "auto", "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, url=app.url("/quiet"))
        phone.wait_for("hangup", timeout=15)
    paths = [h.path for h in app.hooks if h.params.get("CallSid") == sid and h.path != "/status"]
    assert paths == ["/quiet", "/after-gather"]
    assert [h.method for h in app.hooks if h.path == "/after-gather" and h.params.get("CallSid") == sid] == ["GET"]
    assert _errors_of(switch, sid) == []


def test_live_redirect_changes_what_the_caller_hears(switch: SwitchProcess, app: WebhookSink,
                                                    tmp_path: Path) -> None:
    hold = VoiceResponse()
    hold.play(app.url("/tone400.wav"), loop=0)  # hold music until someone redirects us
    app.twiml("/hold", str(hold))
    bye = VoiceResponse()
    bye.play(app.url("/tone1200.wav"))
    app.twiml("/bye", str(bye))
    heard = tmp_path / "redirect.wav"
    with PhoneProcess(["--answer", "auto", "--record", str(heard), "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, url=app.url("/hold"))
        answered = phone.wait_for("answered", timeout=10)["t"]
        time.sleep(2.0)
        switch.client().calls(sid).update(url=app.url("/bye"), method="POST")
        redirected = time.time()
        phone.wait_for("hangup", timeout=15)
    samples = _heard(heard)
    cut = int((redirected - answered) * 8000)
    before, after = samples[cut - 8000: cut - 800], samples[cut + 2400: cut + 6400]
    assert abs(dominant_frequency(before, 8000) - 400.0) < 10
    assert abs(dominant_frequency(after, 8000) - 1200.0) < 10
    assert len(samples) < cut + 8000 * 2  # the 1 s goodbye tone, then the switch hung up


def test_rapid_redirects_of_a_looping_play_keep_the_worker_alive(switch: SwitchProcess, app: WebhookSink,
                                                                  tmp_path: Path) -> None:
    """90 REST redirects 30 ms apart, each replacing a looping <Play> of a one-frame file (an EOF on every tick) with
    another: each stops a player for which pjmedia may still hold an EOF.  pjsua2 2.17 called the destroyed player
    back for it, and the worker died with SIGSEGV (in 2 runs of 3, within 30 redirects, before players were
    destroyed late: switch.worker.media).  The call lives through them all and hears the last one."""
    for hz in (400, 600):
        app.tone(f"/frame{hz}.wav", float(hz), seconds=0.02, rate=8000)  # whole cycles: it loops seamlessly
        looping = VoiceResponse()
        looping.play(app.url(f"/frame{hz}.wav"), loop=0)
        app.twiml(f"/loop{hz}", str(looping))
    heard = tmp_path / "loops.wav"
    restarts = switch.healthz()[1]["workers"][0]["restarts"]
    with PhoneProcess(["--answer", "auto", "--record", str(heard), "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, url=app.url("/loop400"))
        answered = phone.wait_for("answered", timeout=10)["t"]
        client = switch.client()
        for j in range(90):  # fewer than 100: the switch ends a call at its 100th document (a redirect loop)
            client.calls(sid).update(url=app.url(f"/loop{600 if j % 2 == 0 else 400}"), method="POST")
            time.sleep(0.03)
        last = time.time()  # the 90th went to /loop400
        time.sleep(1.5)
        assert client.calls(sid).fetch().status == "in-progress"
        client.calls(sid).update(status="completed")
        phone.wait_for("hangup", timeout=15)
    assert switch.healthz()[1]["workers"][0]["restarts"] == restarts
    samples = _heard(heard)
    cut = int((last - answered) * 8000)
    assert abs(dominant_frequency(samples[cut + 2400: cut + 9600], 8000) - 400.0) < 10


def test_inbound_reject_busy_is_never_answered(switch: SwitchProcess, app: WebhookSink) -> None:
    app.twiml("/inbound", _doc(lambda r: r.reject(reason="busy")))
    with PhoneProcess(["--call", f"sip:{NUMBER}@{switch.sip_uri_host}", "--exit-after-calls", "1"]) as caller:
        hangup = caller.wait_for("hangup", timeout=15)
    assert hangup["code"] == 486
    assert "answered" not in caller.names()
    calls = switch.client().calls.list(to=NUMBER, status="busy")
    assert len(calls) >= 1 and calls[0].direction == "inbound"


def test_inbound_call_runs_say_then_hangs_up(switch: SwitchProcess, app: WebhookSink, tmp_path: Path) -> None:
    app.twiml("/inbound", _doc(lambda r: r.say("Welcome")))
    heard = tmp_path / "inbound.wav"
    with PhoneProcess(["--call", f"sip:{NUMBER}@{switch.sip_uri_host}", "--record", str(heard),
                       "--exit-after-calls", "1"]) as caller:
        caller.wait_for("hangup", timeout=15)
    assert caller.names()[1:4] == ["calling", "ringing", "answered"]
    inbound = [h for h in app.hooks if h.path == "/inbound"]
    assert inbound[-1].params["Direction"] == "inbound"
    assert inbound[-1].params["CallStatus"] == "ringing"  # fetched before answering
    assert rms(_heard(heard)) > 200


def _errors_of(switch: SwitchProcess, sid: str) -> list[int]:
    import json

    from tests.peers.harness import ACCOUNT_SID

    notifications = json.loads(switch.get(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}/Notifications.json"))
    return [int(n["error_code"]) for n in notifications["notifications"]]


@pytest.mark.parametrize(("path", "responder", "code"), [
    ("/broken-500", lambda _h: (500, "oops", "text/plain"), 11200),
    ("/not-xml", lambda _h: (200, "<Response><Say>unclosed", "text/xml"), 12100),
    ("/unsupported-verb", lambda _h: (200, "<Response><Pay/></Response>", "text/xml"), 13750),
    ("/error-attribute", lambda _h: (200, "<Response><Gather actionOnEmptyResult='no way'/></Response>",
                                     "text/xml"), 13338),
    ("/json", lambda _h: (200, '{"say": "hi"}', "application/json"), 12300),
    ("/huge", lambda _h: (200, "<Response>" + "<Pause/>" * 20000 + "</Response>", "text/xml"), 12100),
])
def test_bad_documents_use_the_fallback(switch: SwitchProcess, app: WebhookSink, path: str,
                                        responder: object, code: int) -> None:
    app.responses[path] = responder  # type: ignore[assignment]
    app.twiml("/fallback", _doc(lambda r: r.hangup()))
    with PhoneProcess(["--answer", "auto", "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, url=app.url(path), fallback_url=app.url("/fallback"))
        phone.wait_for("hangup", timeout=15)
    fallback = [h for h in app.hooks if h.path == "/fallback" and h.params.get("CallSid") == sid]
    assert len(fallback) == 1
    assert fallback[0].params["ErrorCode"] == str(code)
    assert fallback[0].params["ErrorUrl"] == app.url(path)
    wait_until(lambda: _errors_of(switch, sid) == [code], what=f"notification {code}")
    app.wait_statuses("/status", sid, 1)
    assert app.statuses("/status", sid) == ["completed"]


def test_failing_app_without_fallback_says_so_and_hangs_up(switch: SwitchProcess, app: WebhookSink,
                                                          tmp_path: Path) -> None:
    app.responses["/down"] = lambda _h: (503, "down", "text/plain")
    heard = tmp_path / "error.wav"
    with PhoneProcess(["--answer", "auto", "--record", str(heard), "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, url=app.url("/down"))
        phone.wait_for("hangup", timeout=20)
    assert rms(_heard(heard)) > 200  # the application-error message was spoken
    assert _errors_of(switch, sid) == [11200]


def test_unreachable_app_is_11200(switch: SwitchProcess, app: WebhookSink) -> None:
    with PhoneProcess(["--answer", "auto", "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, url="http://127.0.0.1:9/refused",
                    fallback_url=app.url("/fallback"))
        phone.wait_for("hangup", timeout=20)
    fallback = [h for h in app.hooks if h.path == "/fallback" and h.params.get("CallSid") == sid]
    assert fallback and fallback[0].params["ErrorCode"] == "11200"


def test_redirect_loop_is_ended(switch: SwitchProcess, app: WebhookSink) -> None:
    app.twiml("/loop", _doc(lambda r: r.redirect("/loop")))
    with PhoneProcess(["--answer", "auto", "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, url=app.url("/loop"))
        phone.wait_for("hangup", timeout=30)
    assert len([h for h in app.hooks if h.path == "/loop" and h.params.get("CallSid") == sid]) == 100
    assert _errors_of(switch, sid) == [12400]


def test_play_of_a_missing_file_is_reported_and_the_call_goes_on(switch: SwitchProcess, app: WebhookSink,
                                                                tmp_path: Path) -> None:
    response = VoiceResponse()
    response.play(app.url("/missing.wav"))
    response.play(app.url("/tone600.wav"))
    app.responses["/missing.wav"] = lambda _h: (404, "no", "text/plain")
    heard = tmp_path / "missing.wav"
    with PhoneProcess(["--answer", "auto", "--record", str(heard), "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, twiml=str(response))
        phone.wait_for("hangup", timeout=15)
    assert abs(dominant_frequency(_heard(heard), 8000) - 600.0) < 10
    assert _errors_of(switch, sid) == [11200]




def test_gather_takes_sip_info_digits_and_finish_on_key(switch: SwitchProcess, app: WebhookSink) -> None:
    response = VoiceResponse()
    response.gather(action="/info-gathered", timeout=3, finish_on_key="#")
    app.twiml("/info-ivr", str(response))
    app.twiml("/info-gathered", _doc(lambda r: r.hangup()))
    with PhoneProcess(["--answer", "auto", "--dtmf", "42#", "--dtmf-method", "info", "--dtmf-after", "1",
                       "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, url=app.url("/info-ivr"))
        phone.wait_for("hangup", timeout=15)
    hooks = [h for h in app.hooks if h.path == "/info-gathered" and h.params.get("CallSid") == sid]
    assert len(hooks) == 1
    assert (hooks[0].params["Digits"], hooks[0].params["FinishedOnKey"]) == ("42", "#")


def _download(switch: SwitchProcess, url: str) -> bytes:
    return switch.get(url + ".wav")


def test_record_until_finish_key(switch: SwitchProcess, app: WebhookSink, tmp_path: Path) -> None:
    response = VoiceResponse()
    response.record(action="/recorded", max_length=20, timeout=5, finish_on_key="#",
                    recording_status_callback="/rec-status")
    app.twiml("/voicemail", str(response))
    app.twiml("/recorded", _doc(lambda r: r.hangup()))
    heard = tmp_path / "beep.wav"
    with PhoneProcess(["--answer", "auto", "--tone", "800", "--record", str(heard), "--dtmf", "#",
                       "--dtmf-after", "3", "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, url=app.url("/voicemail"))
        phone.wait_for("hangup", timeout=20)
    action = [h for h in app.hooks if h.path == "/recorded" and h.params.get("CallSid") == sid]
    assert len(action) == 1
    params = action[0].params
    assert params["Digits"] == "#"
    assert 1 <= int(params["RecordingDuration"]) <= 4
    assert params["RecordingSid"].startswith("RE")
    status = app.wait_for(lambda hs: any(h.path == "/rec-status" and h.params.get("CallSid") == sid for h in hs))
    completed = [h for h in status if h.path == "/rec-status" and h.params.get("CallSid") == sid]
    assert [h.params["RecordingStatus"] for h in completed] == ["completed"]
    assert completed[0].params["RecordingSource"] == "RecordVerb"
    wav = tmp_path / "message.wav"
    wav.write_bytes(_download(switch, params["RecordingUrl"]))
    samples, rate = read_wav(wav)
    assert abs(dominant_frequency(samples, rate) - 800.0) < 10
    beep = _heard(heard)[: int(8000 * 0.5)]
    assert band_energy_ratio(beep, 8000, 1000.0) > 0.5  # the caller heard the beep first


def test_record_of_silence_goes_on_to_the_next_verb(switch: SwitchProcess, app: WebhookSink) -> None:
    response = VoiceResponse()
    response.record(action="/never-recorded", timeout=1, play_beep=False)
    response.redirect("/after-record")
    app.twiml("/silent-record", str(response))
    app.twiml("/after-record", _doc(lambda r: r.hangup()))
    with PhoneProcess(["--answer", "auto", "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, url=app.url("/silent-record"))
        phone.wait_for("hangup", timeout=15)
    paths = [h.path for h in app.hooks if h.params.get("CallSid") == sid and h.path != "/status"]
    assert paths == ["/silent-record", "/after-record"]


def test_slow_app_times_out_to_the_fallback(switch: SwitchProcess, app: WebhookSink) -> None:
    app.twiml("/slow", _doc(lambda r: r.say("too late")))
    app.twiml("/fallback", _doc(lambda r: r.hangup()))
    app.delays["/slow"] = 4.0  # the switch is configured with a 2 s fetch timeout (Twilio's is 15 s)
    with PhoneProcess(["--answer", "auto", "--exit-after-calls", "1"]) as phone:
        started = time.monotonic()
        sid = _call(switch, app, phone, url=app.url("/slow"), fallback_url=app.url("/fallback"))
        fallback = app.wait_for(lambda hs: any(h.path == "/fallback" and h.params.get("CallSid") == sid for h in hs))
        elapsed = time.monotonic() - started
        phone.wait_for("hangup", timeout=15)
    assert 1.8 < elapsed < 4.0
    hook = next(h for h in fallback if h.path == "/fallback" and h.params.get("CallSid") == sid)
    assert hook.params["ErrorCode"] == "11200"
    assert _errors_of(switch, sid) == [11200]


def test_inbound_reject_rejected_is_603_and_failed(switch: SwitchProcess, app: WebhookSink) -> None:
    app.twiml("/inbound", _doc(lambda r: r.reject()))
    with PhoneProcess(["--call", f"sip:{NUMBER}@{switch.sip_uri_host}", "--exit-after-calls", "1"]) as caller:
        hangup = caller.wait_for("hangup", timeout=15)
    assert hangup["code"] == 603
    assert "answered" not in caller.names()
    rejected = switch.client().calls.list(to=NUMBER, status="failed")
    assert rejected and rejected[0].direction == "inbound"


def _serve_tone(app: WebhookSink, path: str, hz: float) -> None:
    data = io.BytesIO()
    sf.write(data, sine(hz, 1.0, rate=8000), 8000, format="WAV", subtype="PCM_16")
    body = data.getvalue()
    app.responses[path] = lambda _h: (200, body, "audio/wav")


def test_relative_play_urls_resolve_against_their_document(switch: SwitchProcess, app: WebhookSink,
                                                           tmp_path: Path) -> None:
    """`<Play>` in a fetched document, also nested in `<Gather>`, fetches relative URLs from the app."""
    _serve_tone(app, "/rel/nested-500.wav", 500.0)
    _serve_tone(app, "/top-900.wav", 900.0)
    app.twiml("/rel/voice", '<?xml version="1.0"?><Response><Gather timeout="1" numDigits="1">'
                            "<Play>nested-500.wav</Play></Gather><Play>/top-900.wav</Play></Response>")
    heard = tmp_path / "relative.wav"
    with PhoneProcess(["--answer", "auto", "--record", str(heard), "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, url=app.url("/rel/voice"))
        phone.wait_for("hangup", timeout=20)
    assert [h.method for h in app.for_path("/rel/nested-500.wav")] == ["GET"]
    assert [h.method for h in app.for_path("/top-900.wav")] == ["GET"]
    samples = _heard(heard)
    assert band_energy_ratio(samples, 8000, 500.0) > 0.2
    assert band_energy_ratio(samples, 8000, 900.0) > 0.2
    assert _errors_of(switch, sid) == []


def test_a_fetched_document_cannot_play_the_switchs_own_files(switch: SwitchProcess, app: WebhookSink,
                                                              tmp_path: Path) -> None:
    """A local path in a fetched document is a URL on the app's server; a file:// URL is refused (11200)."""
    secret = tmp_path / "secret.wav"
    sf.write(secret, sine(1500.0, 1.0, rate=8000), 8000, subtype="PCM_16")
    app.twiml("/own-files", f'<?xml version="1.0"?><Response><Play>{secret}</Play><Play>file://{secret}</Play>'
                            "<Play>/tone600.wav</Play></Response>")
    heard = tmp_path / "own-files.wav"
    with PhoneProcess(["--answer", "auto", "--record", str(heard), "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, url=app.url("/own-files"))
        phone.wait_for("hangup", timeout=20)
    assert [h.path for h in app.hooks if h.path == str(secret)] == [str(secret)]  # asked the app, got 204
    samples = _heard(heard)
    assert abs(dominant_frequency(samples, 8000) - 600.0) < 10
    assert band_energy_ratio(samples, 8000, 1500.0) < 0.01
    assert _errors_of(switch, sid) == [11200, 11200]


def test_record_status_callback_resolves_against_the_document_not_the_action(switch: SwitchProcess,
                                                                            app: WebhookSink) -> None:
    """A relative recordingStatusCallback is relative to the document that holds the <Record>."""
    response = VoiceResponse()
    response.record(action="/elsewhere/recorded", max_length=2, timeout=0, play_beep=False,
                    recording_status_callback="rec-status")
    app.twiml("/mailbox/voice", str(response))
    app.twiml("/elsewhere/recorded", _doc(lambda r: r.hangup()))
    with PhoneProcess(["--answer", "auto", "--tone", "700", "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, url=app.url("/mailbox/voice"))
        phone.wait_for("hangup", timeout=20)
    hooks = app.wait_for(lambda hs: any(h.path == "/mailbox/rec-status" and h.params.get("CallSid") == sid
                                        for h in hs))
    assert [h.params["RecordingStatus"] for h in hooks
            if h.path == "/mailbox/rec-status" and h.params.get("CallSid") == sid] == ["completed"]
    assert not [h for h in hooks if h.path == "/elsewhere/rec-status"]
