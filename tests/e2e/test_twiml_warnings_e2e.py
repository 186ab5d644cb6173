"""TwiML schema problems end to end, on a real `softswitch serve` with the lab phone as the far end.

As on Twilio, a schema warning (an unknown attribute, a wrong-case verb) is logged on the call as a Notification
with Log=1 and the call goes on with the problem ignored; an error (here a Twilio verb softswitch does not
implement) ends the document: the caller hears the application-error message and the call ends. Each test
asserts every status callback, every request to the app, what the phone heard, and the call's Notifications as
the official client lists them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from twilio.twiml.voice_response import VoiceResponse

from media.audio import read_wav
from media.tones import band_energy_ratio, rms, sine
from tests.peers.harness import Hook, SwitchProcess, WebhookSink, wait_until
from tests.peers.phone import PhoneProcess

ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]


@pytest.fixture(scope="module")
def app() -> Iterator[WebhookSink]:
    sink = WebhookSink().start()
    data = io.BytesIO()
    sf.write(data, sine(600.0, 1.0, rate=8000), 8000, format="WAV", subtype="PCM_16")
    body = data.getvalue()
    sink.responses["/tone600.wav"] = lambda _h: (200, body, "audio/wav")
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, app: WebhookSink) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("twiml-warnings"), workers=1, fetch_timeout=2.0)
    proc.start()
    yield proc
    proc.stop()


def _run(switch: SwitchProcess, app: WebhookSink, path: str, heard: Path) -> str:
    """Call the lab phone with the app at `path`, wait for the end, and return the call SID."""
    with PhoneProcess(["--answer", "auto", "--record", str(heard), "--exit-after-calls", "1"]) as phone:
        call = switch.client().calls.create(to=phone.uri("bob"), from_="+15550199", url=app.url(path),
                                            status_callback=app.url("/status"), status_callback_event=ALL_EVENTS)
        sid = str(call.sid)
        phone.wait_for("hangup", timeout=25)
        assert phone.events("hangup")[0]["by"] == "remote"  # the switch ended the call, not the phone
    app.wait_statuses("/status", sid, 4)
    return sid


def _check_callbacks(hooks: list[Hook]) -> None:
    """The status callbacks are the whole sequence, numbered from 0, signed."""
    assert [h.params["CallStatus"] for h in hooks] == ["initiated", "ringing", "in-progress", "completed"]
    assert [h.params["SequenceNumber"] for h in hooks] == ["0", "1", "2", "3"]
    assert all(WebhookSink.valid(h) for h in hooks)
    assert "ErrorCode" not in hooks[-1].params


def _requests(app: WebhookSink, sid: str) -> list[str]:
    """The app's URLs the switch requested for the call, in order (status callbacks left out)."""
    return [f"{h.method} {h.path}" for h in app.hooks if h.params.get("CallSid") == sid and h.path != "/status"]


def _notifications(switch: SwitchProcess, sid: str) -> list[tuple[str, str, str]]:
    """(log, error code, message) of each Notification of the call, oldest first, as the official client reads them."""
    return [(n.log, n.error_code, n.message_text) for n in switch.client().calls(sid).notifications.list()]


def _heard(path: Path) -> np.ndarray:
    samples, rate = read_wav(path)
    assert rate == 8000
    return samples


def test_an_unknown_attribute_and_a_wrong_case_verb_are_warnings_and_the_call_goes_on(
        switch: SwitchProcess, app: WebhookSink, tmp_path: Path) -> None:
    response = VoiceResponse()
    response.say("Hello", voice="alice", foo="bar")  # <Say foo="bar">: Twilio ignores the attribute
    response.play(app.url("/tone600.wav"), loop=2)
    app.twiml("/warned", str(response).replace("<Play", "<say>lower case</say><Play"))  # <say>: wrong case
    heard = tmp_path / "warned.wav"
    sid = _run(switch, app, "/warned", heard)

    _check_callbacks(app.wait_statuses("/status", sid, 4))
    assert _requests(app, sid) == ["POST /warned"]
    samples = _heard(heard)
    assert rms(samples[: int(8000 * 0.8)]) > 300  # the <Say> with the unknown attribute was spoken...
    assert band_energy_ratio(samples, 8000, 600.0) > 0.3  # ...and the <Play> after the bad verb was played
    wait_until(lambda: len(_notifications(switch, sid)) == 2, what="two warnings")
    assert _notifications(switch, sid) == [
        ("1", "12200", "line 1: <Say> does not allow the attribute foo; it was ignored"),
        ("1", "12200", "line 1: unknown element <say> (did you mean <Say>?); it was skipped"),
    ]
    assert switch.client().calls(sid).fetch().status == "completed"


def test_an_unsupported_verb_is_an_error_the_caller_hears_the_application_error(
        switch: SwitchProcess, app: WebhookSink, tmp_path: Path) -> None:
    response = VoiceResponse()
    response.play(app.url("/tone600.wav"))
    response.pay()
    app.twiml("/enqueue", str(response))
    heard = tmp_path / "enqueue.wav"
    sid = _run(switch, app, "/enqueue", heard)

    _check_callbacks(app.wait_statuses("/status", sid, 4))
    assert _requests(app, sid) == ["POST /enqueue"]  # the document failed whole: its <Play> never ran
    samples = _heard(heard)
    assert rms(samples) > 300  # the application-error message was spoken...
    start = int(np.argmax(np.abs(samples) > 500))
    assert band_energy_ratio(samples[start: start + 6400], 8000, 600.0) < 0.3  # ...first: no tone before it
    wait_until(lambda: len(_notifications(switch, sid)) == 1, what="one error")
    assert _notifications(switch, sid) == [
        ("0", "13750", "<Pay> is a Twilio verb softswitch does not support")]
