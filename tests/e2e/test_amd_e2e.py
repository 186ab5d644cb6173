"""Answering-machine detection end to end: lab phones answer with a recorded voice, tone or silence (`--play`),
the official client asks for MachineDetection, and the answer arrives where Twilio sends it.

Synchronous AMD: the Url request waits for the answer and carries AnsweredBy (with MachineDetectionDuration).
AsyncAmd: the Url runs at once, without AnsweredBy; the answer goes to AsyncAmdStatusCallback.  `<Dial><Sip
machineDetection>`: the leg is bridged at once and its answer goes to amdStatusCallback.  Each test checks the
REST `answered_by` and the detection time; `test_accuracy_and_detection_time` prints the table the report quotes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from twilio.twiml.voice_response import Dial, VoiceResponse

from tests.peers.harness import Hook, SwitchProcess, WebhookSink
from tests.peers.phone import PhoneProcess
from tests.unit.test_amd_audio import ANSWERS, write_answer

HANGUP = "<Response><Hangup/></Response>"
PAUSE = "<Response><Pause length='30'/></Response>"


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, sink: WebhookSink) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("amd"), workers=1)
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, f"switch exited with {code}:\n{proc.log()}"


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("amd-wavs")
    return {name: write_answer(name, directory) for name in ANSWERS}


def _first(sink: WebhookSink, path: str, sid: str, timeout: float = 40.0) -> Hook:
    hooks = sink.wait_for(lambda hs: any(h.path == path and h.params.get("CallSid") == sid for h in hs), timeout)
    return next(h for h in hooks if h.path == path and h.params.get("CallSid") == sid)


def _answered_at(sink: WebhookSink, sid: str) -> float:
    hooks = sink.wait_statuses("/amd-status", sid, 3)
    return next(h.received for h in hooks if h.params["CallStatus"] == "in-progress")


def _sync(switch: SwitchProcess, sink: WebhookSink, wav: Path, mode: str, path: str,
          **extra: object) -> tuple[Hook, float, str]:
    """A call answered by a phone playing `wav`, synchronous AMD: the Url request, the seconds from the answer
    to it, and the CallSid."""
    with PhoneProcess(["--answer", "auto", "--play", str(wav)]) as phone:
        sid = str(switch.client().calls.create(
            to=phone.uri("callee"), from_="+15550199", url=sink.twiml(path, HANGUP), machine_detection=mode,
            status_callback=sink.url("/amd-status"), status_callback_event=["initiated", "ringing", "answered",
                                                                            "completed"], **extra).sid)
        request = _first(sink, path, sid)
        phone.wait_for("hangup", timeout=10)
    return request, request.received - _answered_at(sink, sid), sid


def _check_sync(switch: SwitchProcess, sink: WebhookSink, request: Hook, waited: float, sid: str,
                expected: str) -> int:
    params = request.params
    assert params["AnsweredBy"] == expected, params
    assert params["CallStatus"] == "in-progress"
    assert WebhookSink.valid(request)
    duration = int(params["MachineDetectionDuration"])
    # the Url request waited for the answer: about the detection time, never before it
    assert duration / 1000 - 0.3 <= waited <= duration / 1000 + 2.0, (duration, waited)
    completed = sink.wait_statuses("/amd-status", sid, 4)[-1].params
    assert (completed["CallStatus"], completed["AnsweredBy"]) == ("completed", expected)
    assert switch.client().calls(sid).fetch().answered_by == expected
    return duration


def test_hello_then_silence_is_human(switch: SwitchProcess, sink: WebhookSink, wavs: dict[str, Path]) -> None:
    request, waited, sid = _sync(switch, sink, wavs["human"], "Enable", "/amd-human")
    duration = _check_sync(switch, sink, request, waited, sid, "human")
    assert 1500 <= duration <= 3500


def test_greeting_then_beep_is_machine_end_beep(switch: SwitchProcess, sink: WebhookSink,
                                                 wavs: dict[str, Path]) -> None:
    request, waited, sid = _sync(switch, sink, wavs["machine_beep"], "DetectMessageEnd", "/amd-beep")
    duration = _check_sync(switch, sink, request, waited, sid, "machine_end_beep")
    assert 10_000 <= duration <= 15_000


def test_greeting_then_silence_is_machine_end_silence(switch: SwitchProcess, sink: WebhookSink,
                                                      wavs: dict[str, Path]) -> None:
    request, waited, sid = _sync(switch, sink, wavs["machine_silence"], "DetectMessageEnd", "/amd-end-silence")
    duration = _check_sync(switch, sink, request, waited, sid, "machine_end_silence")
    assert 10_000 <= duration <= 15_000


def test_greeting_with_enable_is_machine_start(switch: SwitchProcess, sink: WebhookSink,
                                               wavs: dict[str, Path]) -> None:
    request, waited, sid = _sync(switch, sink, wavs["machine_beep"], "Enable", "/amd-start")
    duration = _check_sync(switch, sink, request, waited, sid, "machine_start")
    assert 2400 <= duration <= 4000


def test_cng_is_fax(switch: SwitchProcess, sink: WebhookSink, wavs: dict[str, Path]) -> None:
    request, waited, sid = _sync(switch, sink, wavs["fax"], "Enable", "/amd-fax")
    duration = _check_sync(switch, sink, request, waited, sid, "fax")
    assert duration <= 1500


def test_silence_is_unknown_at_the_silence_timeout(switch: SwitchProcess, sink: WebhookSink,
                                                   wavs: dict[str, Path]) -> None:
    request, waited, sid = _sync(switch, sink, wavs["silence"], "Enable", "/amd-unknown",
                                 machine_detection_silence_timeout=3000)
    duration = _check_sync(switch, sink, request, waited, sid, "unknown")
    assert duration == 3000


def test_async_amd_runs_the_url_at_once_and_posts_the_answer(switch: SwitchProcess, sink: WebhookSink,
                                                             wavs: dict[str, Path]) -> None:
    path = "/amd-async"
    with PhoneProcess(["--answer", "auto", "--play", str(wavs["machine_silence"])]) as phone:
        started = time.time()
        sid = str(switch.client().calls.create(
            to=phone.uri("callee"), from_="+15550199", url=sink.twiml(path, PAUSE),
            machine_detection="DetectMessageEnd", async_amd="true",
            async_amd_status_callback=sink.url("/amd-result"), async_amd_status_callback_method="POST").sid)
        request = _first(sink, path, sid)
        result = _first(sink, "/amd-result", sid)
        switch.client().calls(sid).update(status="completed")
        phone.wait_for("hangup", timeout=10)
    assert "AnsweredBy" not in request.params  # the TwiML did not wait
    assert request.received - started < 3.0
    assert result.received - request.received > 8.0
    assert WebhookSink.valid(result)
    assert set(result.params) == {"CallSid", "AccountSid", "AnsweredBy", "MachineDetectionDuration"}
    assert result.params["AnsweredBy"] == "machine_end_silence"
    assert 10_000 <= int(result.params["MachineDetectionDuration"]) <= 15_000
    assert switch.client().calls(sid).fetch().answered_by == "machine_end_silence"


def test_dial_sip_machine_detection_reports_to_amd_status_callback(switch: SwitchProcess, sink: WebhookSink,
                                                                   wavs: dict[str, Path]) -> None:
    response = VoiceResponse()
    dial = Dial(action="/amd-dialed", time_limit=20)
    with PhoneProcess(["--answer", "auto", "--play", str(wavs["human"])]) as callee, \
         PhoneProcess(["--answer", "auto", "--exit-after-calls", "1"]) as caller:
        dial.sip(callee.uri("bob"), machine_detection="Enable", amd_status_callback="/amd-leg",
                 amd_status_callback_method="POST")
        response.append(dial)
        sink.twiml("/amd-dialed", HANGUP)
        sid = str(switch.client().calls.create(to=caller.uri("alice"), from_="+15550199",
                                               url=sink.twiml("/amd-dial", str(response))).sid)
        hooks = sink.wait_for(lambda hs: any(h.path == "/amd-leg" for h in hs), 30)
        leg = next(h for h in hooks if h.path == "/amd-leg")
        switch.client().calls(sid).update(status="completed")
        caller.wait_for("hangup", timeout=10)
    child = switch.client().calls(leg.params["CallSid"]).fetch()
    assert child.parent_call_sid == sid
    assert leg.params["AnsweredBy"] == "human"
    assert child.answered_by == "human"
    assert 1500 <= int(leg.params["MachineDetectionDuration"]) <= 3500


# Each answer, the mode that tells its class, and the class.
EXPECTED = {
    "human": ("Enable", "human"),
    "machine_beep": ("DetectMessageEnd", "machine_end_beep"),
    "machine_silence": ("DetectMessageEnd", "machine_end_silence"),
    "fax": ("Enable", "fax"),
    "silence": ("Enable", "unknown"),
}
REPEATS = 3


def test_accuracy_and_detection_time(switch: SwitchProcess, sink: WebhookSink, wavs: dict[str, Path],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Every class REPEATS times, all calls at once: each right, and its MachineDetectionDuration (the report's
    table, printed)."""
    phones = [(name, PhoneProcess(["--answer", "auto", "--play", str(wavs[name])]))
              for name in EXPECTED for _ in range(REPEATS)]
    calls: list[tuple[str, str]] = []
    try:
        for name, phone in phones:
            phone.start()
            mode, _ = EXPECTED[name]
            call = switch.client().calls.create(to=phone.uri("callee"), from_="+15550199",
                                                url=sink.twiml("/amd-sweep", HANGUP), machine_detection=mode)
            calls.append((name, str(call.sid)))
        results = {sid: _first(sink, "/amd-sweep", sid).params for _, sid in calls}
    finally:
        for _, phone in phones:
            phone.stop()
    table: dict[str, list[tuple[str, int]]] = {}
    for name, sid in calls:
        params = results[sid]
        table.setdefault(name, []).append((params["AnsweredBy"], int(params["MachineDetectionDuration"])))
    with capsys.disabled():
        print("\nclass            expected             right  detection ms")
        for name, rows in table.items():
            expected = EXPECTED[name][1]
            right = sum(1 for got, _ in rows if got == expected)
            print(f"{name:16} {expected:20} {right}/{len(rows)}    {', '.join(str(ms) for _, ms in rows)}")
    for name, rows in table.items():
        assert [got for got, _ in rows] == [EXPECTED[name][1]] * REPEATS, (name, rows)


def test_dial_number_through_a_trunk_detects_the_message_end(tmp_path: Path, sink: WebhookSink,
                                                               wavs: dict[str, Path]) -> None:
    """`<Number machineDetection="DetectMessageEnd">`: the leg goes out through a trunk (a lab phone playing a
    voicemail greeting and its beep) and its answer reaches amdStatusCallback, with the tuning attributes used."""
    with PhoneProcess(["--answer", "auto", "--play", str(wavs["machine_beep"])]) as voicemail, \
         PhoneProcess(["--answer", "auto", "--exit-after-calls", "1"]) as caller:
        switch = SwitchProcess(tmp_path, workers=1, trunks=[{"name": "lab", "uri": f"sip:{voicemail.sip}"}])
        switch.start()
        try:
            response = VoiceResponse()
            dial = Dial(action="/amd-number-dialed", time_limit=30)
            dial.number("+15557000001", machine_detection="DetectMessageEnd", machine_detection_timeout=20,
                        machine_detection_speech_end_threshold=1000, amd_status_callback="/amd-number",
                        amd_status_callback_method="GET")
            response.append(dial)
            sink.twiml("/amd-number-dialed", HANGUP)
            sid = str(switch.client().calls.create(to=caller.uri("alice"), from_="+15550199",
                                                   url=sink.twiml("/amd-number-doc", str(response))).sid)
            hooks = sink.wait_for(lambda hs: any(h.path == "/amd-number" for h in hs), 30)
            leg = next(h for h in hooks if h.path == "/amd-number")
            child = switch.client().calls(leg.params["CallSid"]).fetch()
            switch.client().calls(sid).update(status="completed")
            caller.wait_for("hangup", timeout=10)
        finally:
            switch.stop()
    assert leg.method == "GET" and WebhookSink.valid(leg)
    assert (child.parent_call_sid, child.to, child.answered_by) == (sid, "+15557000001", "machine_end_beep")
    assert leg.params["AnsweredBy"] == "machine_end_beep"
    assert 10_000 <= int(leg.params["MachineDetectionDuration"]) <= 15_000
