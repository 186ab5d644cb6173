"""Speech end to end: the lab phone speaks espeak-ng phrases into real calls; `<Gather input="speech">` answers
with SpeechResult, partial results reach partialResultCallback, silence takes the empty-result path, speech
barges in over a long `<Say>`, and `<Record transcribe>` gives a transcribeCallback and the Transcriptions
resources through the official client; with `[speech] engine = "http"` both go to an OpenAI-style endpoint."""

from __future__ import annotations

import asyncio
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

HINTS = ["check my balance", "pay my bill", "talk to an agent", "technical support", "cancel my order",
         "track my package", "open a new account", "make a payment"]


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


@pytest.mark.parametrize("text", HINTS)
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


def test_dtmf_speech_takes_digits_pressed_before_speech(switch: SwitchProcess, app: WebhookSink) -> None:
    response = VoiceResponse()
    response.gather(input="dtmf speech", action=app.url("/keys/action"), num_digits=2, hints=", ".join(HINTS))
    app.twiml("/keys/action", "<Response><Hangup/></Response>")
    with PhoneProcess(["--answer", "auto", "--dtmf", "42", "--dtmf-after", "1", "--exit-after-calls", "1"]) as phone:
        _call(switch, app, phone, str(response))
        app.wait_for(lambda hooks: any(h.path == "/keys/action" for h in hooks), timeout=20)
        phone.wait_for("hangup", timeout=20)
    action = app.for_path("/keys/action")[0]
    assert action.params["Digits"] == "42"
    assert "SpeechResult" not in action.params


class HttpSpeechSwitch(SwitchProcess):
    """The switch with `[speech] engine = "http"`, pointed at `url`."""

    url: str = ""

    def write_config(self) -> Path:
        path = super().write_config()
        path.write_text(path.read_text() + f'[speech]\nengine = "http"\nurl = "{self.url}"\nmodel = "test-model"\n'
                        'api_key = "test-key"\ntimeout = 5\n')
        return path


@pytest.fixture(scope="module")
def http_switch(tmp_path_factory: pytest.TempPathFactory, app: WebhookSink) -> Iterator[SwitchProcess]:
    app.responses["/v1/audio/transcriptions"] = lambda _hook: (200, '{"text": "I would like to pay my bill."}',
                                                                "application/json")
    proc = HttpSpeechSwitch(tmp_path_factory.mktemp("speech-http"), workers=1, fetch_timeout=3.0)
    proc.url = app.url("/v1/audio/transcriptions")
    proc.start()
    yield proc
    proc.stop()


def test_an_http_transcription_endpoint_answers_gather_and_record(http_switch: SwitchProcess, app: WebhookSink,
                                                                  phrases: dict[str, Path]) -> None:
    response = VoiceResponse()
    response.append(Gather(input="speech", action=app.url("/http/gathered"), hints="pay my bill",
                           speech_timeout="auto", timeout=6))
    record = VoiceResponse()
    record.record(action=app.url("/http/recorded"), transcribe_callback=app.url("/http/transcribed"), timeout=0,
                  max_length=7, play_beep=False, trim="do-not-trim")  # the phrase comes round again within 7 s
    app.twiml("/http/gathered", str(record))
    app.twiml("/http/recorded", "<Response><Hangup/></Response>")
    with PhoneProcess(["--answer", "auto", "--play", str(phrases["pay my bill"]), "--exit-after-calls", "1"]) as phone:
        _call(http_switch, app, phone, str(response))
        app.wait_for(lambda hooks: any(h.path == "/http/transcribed" for h in hooks), timeout=40)
        phone.wait_for("hangup", timeout=20)
    gathered = app.for_path("/http/gathered")[0].params
    assert (gathered["SpeechResult"], gathered["Confidence"]) == ("I would like to pay my bill.", "1.0")
    assert app.for_path("/http/transcribed")[0].params["TranscriptionText"] == "I would like to pay my bill."
    posts = app.for_path("/v1/audio/transcriptions")
    assert len(posts) == 2  # the Gather's utterance, then the recording
    assert all(p.params["model"] == "test-model" for p in posts)
    assert posts[0].params["prompt"] == "pay my bill"


class LazySpeechSwitch(SwitchProcess):
    """The switch with `[speech] preload = false`: pocketsphinx's models load at their first use."""

    def write_config(self) -> Path:
        path = super().write_config()
        path.write_text(path.read_text() + "[speech]\npreload = false\n")
        return path


def _rss_mb(proc: SwitchProcess) -> float:
    assert proc.proc is not None
    status = Path(f"/proc/{proc.proc.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def test_preload_false_loads_the_model_at_its_first_use(switch: SwitchProcess, app: WebhookSink,
                                                        phrases: dict[str, Path], tmp_path: Path) -> None:
    """Without preload the control plane starts smaller by the models' memory, and the first `<Gather>` still
    hears its phrase (the grammar decoder loads then)."""
    lazy = LazySpeechSwitch(tmp_path, workers=1, fetch_timeout=3.0).start()
    try:
        started = _rss_mb(lazy)
        assert _rss_mb(switch) - started > 60, (started, _rss_mb(switch))
        app.twiml("/lazy/action", "<Response><Hangup/></Response>")
        response = VoiceResponse()
        response.append(Gather(input="speech", action=app.url("/lazy/action"), hints=", ".join(HINTS),
                               speech_timeout="auto", timeout=6))
        with PhoneProcess(["--answer", "auto", "--play", str(phrases["pay my bill"]), "--exit-after-calls", "1"]) \
                as phone:
            _call(lazy, app, phone, str(response))
            app.wait_for(lambda hooks: any(h.path == "/lazy/action" for h in hooks), timeout=30)
            phone.wait_for("hangup", timeout=20)
        assert app.for_path("/lazy/action")[0].params["SpeechResult"] == "pay my bill"
        assert _rss_mb(lazy) - started > 15, (started, _rss_mb(lazy))  # the grammar decoder, loaded on use
    finally:
        lazy.stop()
