"""Speech end to end: the lab phone speaks espeak-ng phrases into real calls; `<Gather input="speech">` answers
with SpeechResult, partial results reach partialResultCallback, silence takes the empty-result path, speech
barges in over a long `<Say>`, and `<Record transcribe>` gives a transcribeCallback and the Transcriptions
resources through the official client."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from twilio.twiml.voice_response import Gather, VoiceResponse

from media.audio import read_wav, write_wav
from media.speech import Speech
from tests.peers.harness import SwitchProcess, WebhookSink
from tests.peers.phone import PhoneProcess

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

HINTS = ["check my balance", "pay my bill", "talk to an agent", "technical support", "cancel my order",
         "track my package", "open a new account", "make a payment"]


@pytest.fixture(scope="module")
def app() -> Iterator[WebhookSink]:
    sink = WebhookSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, app: WebhookSink) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("speech"), workers=1, fetch_timeout=3.0)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def phrases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each hint phrase spoken by espeak-ng (`man`), between 1 s and 4 s of silence (the phone loops it)."""
    root = tmp_path_factory.mktemp("phrases")

    async def make() -> dict[str, Path]:
        speech = Speech(root / "cache")
        out = {}
        for i, text in enumerate(HINTS):
            samples, _ = read_wav(await speech.synthesize(text, "man"))
            padded = np.concatenate([np.zeros(8000, np.int16), samples, np.zeros(32000, np.int16)])
            out[text] = write_wav(root / f"phrase{i}.wav", padded.astype(np.float32) / 32768.0)
        return out

    return asyncio.run(make())


def _gather_doc(app: WebhookSink, name: str, **attrs: object) -> str:
    response = VoiceResponse()
    response.append(Gather(input="speech", action=app.url(f"/{name}/action"), hints=", ".join(HINTS),
                           speech_timeout="auto", timeout=6, **attrs))
    response.hangup()
    return str(response)


def _call(switch: SwitchProcess, app: WebhookSink, phone: PhoneProcess, twiml: str) -> str:
    call = switch.client().calls.create(to=phone.uri("bob"), from_="+15550199", twiml=twiml)
    return str(call.sid)


@pytest.mark.parametrize("text", ["check my balance", "technical support", "track my package",
                                  "open a new account"])
def test_gather_speech_returns_the_phrase_said(switch: SwitchProcess, app: WebhookSink, phrases: dict[str, Path],
                                               text: str) -> None:
    name = text.replace(" ", "-")
    twiml = _gather_doc(app, name, partial_result_callback=app.url(f"/{name}/partial"))
    app.twiml(f"/{name}/action", "<Response><Hangup/></Response>")
    with PhoneProcess(["--answer", "auto", "--play", str(phrases[text]), "--exit-after-calls", "1"]) as phone:
        sid = _call(switch, app, phone, twiml)
        [action] = app.wait_for(lambda hooks: any(h.path == f"/{name}/action" for h in hooks), timeout=30)[-1:]
        phone.wait_for("hangup", timeout=20)
    action = app.for_path(f"/{name}/action")[0]
    assert action.params["CallSid"] == sid
    assert action.params["SpeechResult"] == text
    assert 0.0 < float(action.params["Confidence"]) <= 1.0
    assert "Digits" not in action.params
    partials = app.for_path(f"/{name}/partial")
    assert partials, "no partial result reached partialResultCallback"
    assert [int(p.params["SequenceNumber"]) for p in partials] == list(range(len(partials)))
    assert all(p.params["UnstableSpeechResult"] for p in partials)
    assert all(0.0 <= float(p.params["Stability"]) <= 1.0 for p in partials)
    assert all(p.params["CallSid"] == sid for p in partials)


def test_silence_takes_the_empty_result_path(switch: SwitchProcess, app: WebhookSink) -> None:
    response = VoiceResponse()
    response.gather(input="speech", action=app.url("/silent/action"), timeout=2, action_on_empty_result=True,
                    hints="yes, no")
    app.twiml("/silent/action", "<Response><Hangup/></Response>")
    with PhoneProcess(["--answer", "auto", "--exit-after-calls", "1"]) as phone:
        started = time.monotonic()
        sid = _call(switch, app, phone, str(response))
        app.wait_for(lambda hooks: any(h.path == "/silent/action" for h in hooks), timeout=20)
        elapsed = time.monotonic() - started
        phone.wait_for("hangup", timeout=20)
    action = app.for_path("/silent/action")[0]
    assert action.params["CallSid"] == sid
    assert "SpeechResult" not in action.params
    assert elapsed < 10


def test_speech_barges_in_over_a_long_say(switch: SwitchProcess, app: WebhookSink,
                                          phrases: dict[str, Path]) -> None:
    response = VoiceResponse()
    gather = Gather(input="dtmf speech", action=app.url("/barge/action"), hints=", ".join(HINTS),
                    speech_timeout="auto")
    gather.say("This is a very long menu. " * 12)  # about 40 seconds
    response.append(gather)
    app.twiml("/barge/action", "<Response><Hangup/></Response>")
    with PhoneProcess(["--answer", "auto", "--play", str(phrases["pay my bill"]), "--exit-after-calls", "1"]) as phone:
        started = time.monotonic()
        _call(switch, app, phone, str(response))
        app.wait_for(lambda hooks: any(h.path == "/barge/action" for h in hooks), timeout=25)
        elapsed = time.monotonic() - started
        phone.wait_for("hangup", timeout=20)
    assert elapsed < 15, "the Say played on: no barge-in"
    assert app.for_path("/barge/action")[0].params["SpeechResult"] == "pay my bill"


def test_record_transcribe_calls_back_and_serves_the_transcription(
        switch: SwitchProcess, app: WebhookSink, phrases: dict[str, Path]) -> None:
    response = VoiceResponse()
    response.record(action=app.url("/rec/action"), transcribe_callback=app.url("/rec/transcribed"), timeout=2,
                    max_length=8, play_beep=False, trim="do-not-trim")
    app.twiml("/rec/action", "<Response><Hangup/></Response>")
    with PhoneProcess(["--answer", "auto", "--play", str(phrases["make a payment"]), "--exit-after-calls", "1"]) \
            as phone:
        sid = _call(switch, app, phone, str(response))
        app.wait_for(lambda hooks: any(h.path == "/rec/transcribed" for h in hooks), timeout=40)
        phone.wait_for("hangup", timeout=20)
    action = app.for_path("/rec/action")[0]
    hook = app.for_path("/rec/transcribed")[0]
    assert hook.params["CallSid"] == sid
    assert hook.params["RecordingSid"] == action.params["RecordingSid"]
    assert hook.params["RecordingUrl"] == action.params["RecordingUrl"]
    assert hook.params["TranscriptionStatus"] == "completed"
    assert hook.params["TranscriptionSid"].startswith("TR")
    assert hook.params["TranscriptionUrl"].endswith(f"/Transcriptions/{hook.params['TranscriptionSid']}")
    assert WebhookSink.valid(hook)
    client = switch.client()
    listed = client.recordings(action.params["RecordingSid"]).transcriptions.list()
    assert [t.sid for t in listed] == [hook.params["TranscriptionSid"]]
    fetched = client.transcriptions(hook.params["TranscriptionSid"]).fetch()
    assert fetched.status == "completed"
    assert fetched.recording_sid == action.params["RecordingSid"]
    assert fetched.transcription_text == hook.params["TranscriptionText"]
    assert fetched.type == "fast"
    assert [t.sid for t in client.transcriptions.list()] == [fetched.sid]
    client.transcriptions(fetched.sid).delete()
    assert client.recordings(action.params["RecordingSid"]).transcriptions.list() == []
