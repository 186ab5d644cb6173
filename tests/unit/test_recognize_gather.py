"""`<Gather input="speech">` on a fake call, in virtual time: the fake worker's taps hear silence, so these are
the paths without speech (the e2e tier has the lab phone speak): the empty result, actionOnEmptyResult, digits
winning in `dtmf speech`, and a warning when no recognizer is wired."""

from __future__ import annotations

import asyncio
from pathlib import Path

from media.recognize import HttpRecognizer
from switch.core.notifications import WARNING
from switch.core.transcriptions import Transcriptions
from switch.verbs.gather import mask_profanity
from tests.unit.fakes import FakeSwitch, press, virtual_time

pytestmark = virtual_time

VOICE = "http://app.test/voice"
ACTION = "http://app.test/heard"


def _wire(switch: FakeSwitch, tmp_path: Path) -> None:
    recognizer = HttpRecognizer("http://127.0.0.1:9/never-called")  # silence never reaches it
    switch.voice.transcriptions = Transcriptions(switch.store, recognizer, switch.calls.account_sid,
                                                 lambda t: f"http://x/{t.sid}")


async def test_silence_with_action_on_empty_result_requests_the_action_without_a_result(
        switch: FakeSwitch, tmp_path: Path) -> None:
    _wire(switch, tmp_path)
    loop = asyncio.get_running_loop()
    switch.number("+15550100", voice_url=VOICE)
    switch.app.documents[VOICE] = (f"<Response><Gather input='speech' timeout='4' actionOnEmptyResult='true' "
                                   f"hints='yes, no' action='{ACTION}'><Say>Say yes or no</Say></Gather>"
                                   "</Response>")
    switch.app.documents[ACTION] = "<Response><Hangup/></Response>"
    start = loop.time()
    await switch.call_in("caller")
    await switch.ended("caller")
    assert switch.app.trace == [f"POST {VOICE}", f"POST {ACTION}"]
    params = switch.app.requests[1].params
    assert "SpeechResult" not in params and "Confidence" not in params and "Digits" not in params
    assert loop.time() - start < 1 + 4 + 1.5  # the prompt, the timeout, settling
    assert switch.notifications.for_call(switch.sid("caller")) == []


async def test_silence_without_action_on_empty_result_goes_on(switch: FakeSwitch, tmp_path: Path) -> None:
    _wire(switch, tmp_path)
    switch.number("+15550100", voice_url=VOICE)
    switch.app.documents[VOICE] = (f"<Response><Gather input='speech' timeout='2' action='{ACTION}'/>"
                                   "<Say>Nothing heard</Say></Response>")
    await switch.call_in("caller")
    await switch.ended("caller")
    assert switch.app.trace == [f"POST {VOICE}"]
    assert switch.pool.trace[-2:] == ["play caller say-nothing-heard.wav", "hangup caller 200"]


async def test_digits_win_in_dtmf_speech(switch: FakeSwitch, tmp_path: Path) -> None:
    _wire(switch, tmp_path)
    switch.number("+15550100", voice_url=VOICE)
    switch.app.documents[VOICE] = (f"<Response><Gather input='dtmf speech' numDigits='2' action='{ACTION}'>"
                                   "<Say loop='3'>Say or press</Say></Gather></Response>")
    switch.app.documents[ACTION] = "<Response><Hangup/></Response>"
    await switch.call_in("caller", script=press("42", after=0.5))
    await switch.ended("caller")
    assert "stop_play say-say-or-press.wav" in switch.pool.trace  # barge-in
    params = switch.app.requests[1].params
    assert params["Digits"] == "42"
    assert "SpeechResult" not in params


async def test_without_a_recognizer_speech_is_a_warning_and_not_heard(switch: FakeSwitch) -> None:
    switch.number("+15550100", voice_url=VOICE)
    switch.app.documents[VOICE] = f"<Response><Gather input='speech' timeout='1' action='{ACTION}'/></Response>"
    await switch.call_in("caller")
    await switch.ended("caller")
    [note] = switch.notifications.for_call(switch.sid("caller"))
    assert (note.log, note.error_code) == (WARNING, 12200)
    assert "no recognizer" in note.message_text


def test_profanity_is_masked_but_its_first_letter() -> None:
    assert mask_profanity("well Shit happens damn it") == "well S*** happens d*** it"
    assert mask_profanity("") == ""
