"""Answering-machine detection around the detector: the Twilio parameters and attributes, the callbacks' rendering,
a `<Dial>` leg's request, and `switch.core.amd.MachineDetection` on a scripted tap (no worker)."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from multidict import MultiDict
from twilio.twiml.voice_response import Dial, VoiceResponse

from media.ulaw import ulaw_encode
from switch.core.amd import DETECT_MESSAGE_END, ENABLE, MachineDetection, settings_of
from switch.core.errors import InvalidArgument
from switch.core.events import CallEvent, MachineDetected
from switch.core.model import Call, Direction
from switch.core.status import CallStatus
from switch.core.store import Store
from switch.dialects.errors import InvalidParameter
from switch.dialects.twilio.callbacks import TwilioCallbacks, amd_callback_params, standard_params
from switch.dialects.twilio.params import parse_new_call
from switch.verbs.dial import _child_request
from switch.workers.media import MediaError
from switch.workers.media_taps import AudioFrame
from tests.unit.test_amd_audio import human, machine_beep
from twiml import verbs
from twiml.parse import parse

SID = "CA" + "a" * 32
ACCOUNT = "AC" + "b" * 32
BASE = {"To": "sip:bob@127.0.0.1", "From": "+15550199", "Url": "https://app.example.com/voice"}


def _new_call(**params: str) -> Any:
    return parse_new_call(MultiDict({**BASE, **params}))


def _call(**fields: Any) -> Call:
    values: dict[str, Any] = {"sid": SID, "account_sid": ACCOUNT, "to": "sip:bob@127.0.0.1", "from_": "+15550199",
                              "direction": Direction.OUTBOUND_API, "status": CallStatus.IN_PROGRESS}
    values.update(fields)
    return Call(**values)


# -- Calls create -----------------------------------------------------------------------------------------
def test_calls_create_takes_machine_detection_and_its_tuning() -> None:
    request = _new_call(MachineDetection="DetectMessageEnd", MachineDetectionTimeout="45",
                        MachineDetectionSpeechThreshold="3000", MachineDetectionSpeechEndThreshold="800",
                        MachineDetectionSilenceTimeout="4000", AsyncAmd="true",
                        AsyncAmdStatusCallback="https://app.example.com/amd", AsyncAmdStatusCallbackMethod="get")
    assert (request.machine_detection, request.machine_detection_timeout, request.machine_detection_speech_threshold,
            request.machine_detection_speech_end_threshold, request.machine_detection_silence_timeout) == (
        DETECT_MESSAGE_END, 45, 3000, 800, 4000)
    assert (request.async_amd, request.async_amd_status_callback, request.async_amd_status_callback_method) == (
        True, "https://app.example.com/amd", "GET")


def test_calls_create_defaults_are_twilios() -> None:
    plain = _new_call()
    assert plain.machine_detection is None and plain.async_amd is False
    enabled = _new_call(MachineDetection="Enable")
    assert enabled.machine_detection == ENABLE
    assert settings_of(_call(machine_detection=ENABLE)).__dict__ == {
        "detect_message_end": False, "timeout_ms": 30_000, "speech_threshold_ms": 2400,
        "speech_end_threshold_ms": 1200, "silence_timeout_ms": 5000}


@pytest.mark.parametrize("params", [
    {"MachineDetection": "Maybe"}, {"MachineDetection": "Enable", "MachineDetectionTimeout": "2"},
    {"MachineDetection": "Enable", "MachineDetectionTimeout": "60"},
    {"MachineDetectionSpeechThreshold": "999"}, {"MachineDetectionSpeechEndThreshold": "5001"},
    {"MachineDetectionSilenceTimeout": "10001"}, {"MachineDetectionTimeout": "ten"}, {"AsyncAmd": "yes"},
    {"AsyncAmdStatusCallback": "/relative"},
])
def test_calls_create_refuses_bad_values(params: dict[str, str]) -> None:
    with pytest.raises((InvalidParameter, InvalidArgument)):  # a 400 either way (a bad URL is the core's)
        _new_call(**params)


def test_send_digits_turns_machine_detection_off() -> None:
    assert _new_call(MachineDetection="Enable", SendDigits="1234").machine_detection is None


# -- rendering --------------------------------------------------------------------------------------------
def test_answered_by_joins_every_request_once_known() -> None:
    assert "AnsweredBy" not in dict(standard_params(_call(machine_detection=ENABLE)))
    params = dict(standard_params(_call(answered_by="machine_start", machine_detection_duration=2920)))
    assert (params["AnsweredBy"], params["MachineDetectionDuration"]) == ("machine_start", "2920")


@dataclass
class _Webhooks:
    sent: list[tuple[str, str, str, list[tuple[str, str]], str | None]] = field(default_factory=list)

    def send(self, call_sid: str, url: str, method: str, params: list[tuple[str, str]], body_format: str = "form",
             *, event: str | None = None, **_: Any) -> None:
        self.sent.append((call_sid, url, method, params, event))

    def count(self, *_: Any) -> int:
        return 0


def test_async_amd_posts_to_its_callback_and_sync_amd_does_not() -> None:
    webhooks = _Webhooks()
    callbacks = TwilioCallbacks(webhooks, "http://127.0.0.1")  # type: ignore[arg-type]
    at = dt.datetime.now(dt.UTC)
    done = {"answered_by": "human", "machine_detection_duration": 2180, "machine_detection": ENABLE,
            "async_amd_status_callback": "https://app.example.com/amd", "async_amd_status_callback_method": "GET"}
    callbacks(MachineDetected(_call(**done), at))  # synchronous: the Url request told it
    assert webhooks.sent == []
    callbacks(MachineDetected(_call(async_amd=True, **done), at))
    assert webhooks.sent == [(SID, "https://app.example.com/amd", "GET", [
        ("CallSid", SID), ("AccountSid", ACCOUNT), ("AnsweredBy", "human"), ("MachineDetectionDuration", "2180")],
        "amd")]
    assert amd_callback_params(_call())[2:] == [("AnsweredBy", "unknown"), ("MachineDetectionDuration", "0")]


# -- TwiML -------------------------------------------------------------------------------------------------
def _dial_nouns(**attrs: Any) -> tuple[verbs.DialNoun, ...]:
    response = VoiceResponse()
    dial = Dial()
    dial.number("+15550111", **attrs)
    dial.sip("sip:bob@127.0.0.1", **attrs)
    response.append(dial)
    parsed = parse(str(response))
    verb = parsed.verbs[0]
    assert isinstance(verb, verbs.Dial)
    assert [w.message for w in parsed.warnings] == []
    return verb.nouns


def test_number_and_sip_take_the_machine_detection_attributes() -> None:
    for noun in _dial_nouns(machine_detection="DetectMessageEnd", machine_detection_timeout=60,
                            machine_detection_speech_threshold=1000, machine_detection_speech_end_threshold=500,
                            machine_detection_silence_timeout=10000, amd_status_callback="/amd",
                            amd_status_callback_method="GET"):
        assert isinstance(noun, verbs.Number | verbs.Sip)
        assert (noun.machine_detection, noun.machine_detection_timeout, noun.machine_detection_speech_threshold,
                noun.machine_detection_speech_end_threshold, noun.machine_detection_silence_timeout,
                noun.amd_status_callback, noun.amd_status_callback_method) == (
            "detect_message_end", 60, 1000, 500, 10000, "/amd", "GET")


def test_a_bad_machine_detection_attribute_is_a_warning_and_the_default() -> None:
    parsed = parse('<Response><Dial><Number machineDetection="sometimes" machineDetectionTimeout="2">+15550111'
                   '</Number></Dial></Response>')
    verb = parsed.verbs[0]
    assert isinstance(verb, verbs.Dial) and isinstance(verb.nouns[0], verbs.Number)
    assert (verb.nouns[0].machine_detection, verb.nouns[0].machine_detection_timeout) == (None, 30)
    assert len(parsed.warnings) == 2


def test_a_dial_leg_asks_for_asynchronous_detection_with_the_callback_resolved() -> None:
    parent = _call()
    number, sip = _dial_nouns(machine_detection="Enable", amd_status_callback="/amd")
    dial = verbs.Dial(nouns=(number, sip))
    for noun in (number, sip):
        request = _child_request(parent, dial, noun, "https://app.example.com/voice/doc")
        assert (request.machine_detection, request.async_amd, request.async_amd_status_callback) == (
            ENABLE, True, "https://app.example.com/amd")
    plain = _child_request(parent, dial, verbs.Number(number="+15550112"), None)
    assert plain.machine_detection is None and plain.async_amd is False


# -- MachineDetection on a scripted tap ---------------------------------------------------------------------
class _Tap:
    def __init__(self, pcm: np.ndarray[Any, Any], chunk: int = 160) -> None:
        self.frames: asyncio.Queue[AudioFrame | None] = asyncio.Queue()
        ulaw = ulaw_encode(pcm.astype(np.int16).tobytes())
        for seq, start in enumerate(range(0, len(ulaw) - chunk + 1, chunk)):
            self.frames.put_nowait(AudioFrame("inbound", seq, seq * 20, ulaw[start:start + chunk]))
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


class _Media:
    def __init__(self, tap: _Tap | None) -> None:
        self._tap = tap
        self.asked: list[tuple[str, tuple[str, ...], bool]] = []

    async def tap(self, call_sid: str, tracks: tuple[str, ...], inject: bool) -> _Tap:
        self.asked.append((call_sid, tracks, inject))
        if self._tap is None:
            raise MediaError(f"{call_sid} has no live media leg")
        return self._tap


class _Events:
    def __init__(self) -> None:
        self.emitted: list[CallEvent] = []

    def emit(self, event: CallEvent) -> None:
        self.emitted.append(event)


class _Calls:
    def __init__(self, store: Store, tap: _Tap | None) -> None:
        self.store = store
        self.media = _Media(tap)
        self.events = _Events()
        self.answered_hooks: list[Any] = []
        self.live: dict[str, Call] = {}

    def clock(self) -> dt.datetime:
        return dt.datetime(2026, 12, 6, tzinfo=dt.UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db.sqlite")


async def test_synchronous_detection_settles_with_the_answer_on_the_call(store: Store) -> None:
    calls = _Calls(store, _Tap(human()))
    amd = MachineDetection(calls)  # type: ignore[arg-type]
    amd.attach()
    call = _call(machine_detection=ENABLE)
    await calls.answered_hooks[0](call)
    await asyncio.wait_for(amd.settled(call), 5)
    assert (call.answered_by, 1500 < (call.machine_detection_duration or 0) < 3000) == ("human", True)
    assert calls.media.asked == [(SID, ("inbound",), False)]
    assert calls.media._tap is not None and calls.media._tap.stopped
    stored = store.get_call(SID)
    assert stored is not None and stored.answered_by == "human"
    [logged] = [e.detail for e in store.events(SID) if e.kind == "amd"]
    assert logged.startswith("answered by human after ")
    [event] = calls.events.emitted
    assert isinstance(event, MachineDetected) and event.call.answered_by == "human" and event.call is not call


async def test_asynchronous_detection_does_not_hold_settled(store: Store) -> None:
    calls = _Calls(store, _Tap(machine_beep()))
    amd = MachineDetection(calls)  # type: ignore[arg-type]
    call = _call(machine_detection=DETECT_MESSAGE_END, async_amd=True)
    await amd.settled(call)  # at once
    assert call.answered_by is None
    work = amd.on_answered(call)
    assert work is not None
    await work
    for _ in range(200):
        if call.answered_by is not None:
            break
        await asyncio.sleep(0.01)
    assert call.answered_by == "machine_end_beep"


async def test_a_tap_that_ends_early_or_never_starts_is_decided_with_what_was_heard(store: Store) -> None:
    short = _Tap(human()[:8000])  # a second of audio, then the call hangs up
    short.frames.put_nowait(None)
    calls = _Calls(store, short)
    call = _call(machine_detection=ENABLE)
    await MachineDetection(calls).settled(call)  # type: ignore[arg-type]
    assert (call.answered_by, call.machine_detection_duration) == ("unknown", 1000)
    nothing = _Calls(store, None)
    lost = _call(sid="CA" + "c" * 32, machine_detection=ENABLE)
    await MachineDetection(nothing).settled(lost)  # type: ignore[arg-type]
    assert (lost.answered_by, lost.machine_detection_duration) == ("unknown", 0)


async def test_calls_without_detection_are_left_alone(store: Store) -> None:
    calls = _Calls(store, _Tap(human()))
    amd = MachineDetection(calls)  # type: ignore[arg-type]
    call = _call()
    assert amd.on_answered(call) is None
    await amd.settled(call)
    assert calls.media.asked == [] and call.answered_by is None
