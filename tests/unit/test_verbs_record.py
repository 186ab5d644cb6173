"""`<Record>`: beep, tap the caller, stop on a key or hang-up, finalize the file, tell the action (also when the
caller hung up, detached), and go on with the next verb when nothing was recorded."""

from __future__ import annotations

import asyncio

from switch.core.recording_model import RecordingSource
from switch.core.recordings import RecordingFilter
from tests.unit.fakes import BASE_URL, FakeSwitch, Script, hang_up, press, speak, virtual_time

pytestmark = virtual_time

VOICE = "http://app.test/rec/voice"
ACTION = "http://app.test/rec/done"


async def _record(switch: FakeSwitch, record: str, caller: Script | None) -> list[str]:
    switch.number("+15550100", voice_url=VOICE)
    switch.app.documents[VOICE] = f"<Response>{record}<Say>Nothing recorded</Say></Response>"
    switch.app.documents[ACTION] = "<Response><Say>Got it</Say></Response>"
    await switch.call_in("caller", script=caller)
    await switch.ended("caller")
    await switch.settle(5)  # a detached action and the recording's finalization
    return switch.pool.trace


def _told(switch: FakeSwitch) -> list[dict[str, str]]:
    return [{k: v for k, v in r.params.items() if k.startswith("Recording") or k == "Digits"}
            for r in switch.app.requests if r.url == ACTION]


async def test_a_key_ends_the_take_and_the_action_gets_the_recording(switch: FakeSwitch) -> None:
    trace = await _record(switch, "<Record action='done' finishOnKey='#'/>",
                          speak(3, after=0.5) + press("#", after=0.5))
    assert trace == ["ring caller", "answer caller", "play caller beep.wav", "record caller", "stop_record",
                     "play caller say-got-it.wav", "hangup caller 200"]
    [told] = _told(switch)
    rec = switch.recordings.get(told["RecordingSid"])
    assert rec is not None
    assert told == {"RecordingUrl": f"{BASE_URL}/Recordings/{rec.sid}", "RecordingSid": rec.sid,
                    "RecordingDuration": "3", "Digits": "#"}  # trim-silence keeps the three seconds of sound
    assert (rec.status, rec.duration, rec.channels, rec.call_sid) == ("completed", 3, 1, switch.sid("caller"))
    assert switch.recordings.wav_path(rec.sid).is_file()


async def test_without_a_beep_the_tap_starts_at_once(switch: FakeSwitch) -> None:
    trace = await _record(switch, "<Record action='done' playBeep='false' trim='do-not-trim'/>",
                          speak(2) + press("1", after=1))
    assert trace == ["ring caller", "answer caller", "record caller", "stop_record", "play caller say-got-it.wav",
                     "hangup caller 200"]
    assert _told(switch)[0]["RecordingDuration"] == "3"  # untrimmed: two seconds of sound, one of silence
    assert _told(switch)[0]["Digits"] == "1"


async def test_silence_after_speech_ends_the_take(switch: FakeSwitch) -> None:
    trace = await _record(switch, "<Record action='done' timeout='3' trim='do-not-trim'/>", speak(2, after=0.5))
    assert trace == ["ring caller", "answer caller", "play caller beep.wav", "record caller", "stop_record",
                     "play caller say-got-it.wav", "hangup caller 200"]
    [told] = _told(switch)
    # the tap from the beep's end (0.4 s) until three seconds after the last sound (2.5 s): 5.1 s
    assert (told["Digits"], told["RecordingDuration"]) == ("", "5")


async def test_max_length_caps_the_take(switch: FakeSwitch) -> None:
    trace = await _record(switch, "<Record action='done' maxLength='4' trim='do-not-trim'/>", speak(30))
    assert trace == ["ring caller", "answer caller", "play caller beep.wav", "record caller", "stop_record",
                     "play caller say-got-it.wav", "hangup caller 200"]
    [told] = _told(switch)
    assert (told["Digits"], told["RecordingDuration"]) == ("", "4")


async def test_a_caller_who_hangs_up_still_reaches_the_action_detached(switch: FakeSwitch) -> None:
    trace = await _record(switch, "<Record action='done'/>", speak(4, after=0.5) + hang_up(after=0.5))
    assert trace == ["ring caller", "answer caller", "play caller beep.wav", "record caller", "stop_record"]
    [told] = _told(switch)
    assert (told["Digits"], told["RecordingDuration"]) == ("hangup", "4")
    assert switch.app.trace == [f"POST {VOICE}", f"POST {ACTION}"]  # its answer is not run: the call is over


async def test_a_silent_take_is_absent_and_the_next_verb_runs(switch: FakeSwitch) -> None:
    trace = await _record(switch, "<Record action='done'/>", press("#", after=2))
    assert trace == ["ring caller", "answer caller", "play caller beep.wav", "record caller", "stop_record",
                     "play caller say-nothing-recorded.wav", "hangup caller 200"]
    assert _told(switch) == []
    [rec] = [r for r in switch.recordings.list_recordings(RecordingFilter(), 0, 10)]
    assert (rec.status, rec.problem) == ("absent", "silent")  # trim-silence left nothing


async def test_the_recording_status_callback_resolves_against_the_document(switch: FakeSwitch) -> None:
    await _record(switch, "<Record action='done' recordingStatusCallback='status' "
                          "recordingStatusCallbackEvent='in-progress completed'/>",
                  speak(2) + press("#", after=0.1))
    sent = switch.webhooks.to("http://app.test/rec/status")
    assert [s["RecordingStatus"] for s in sent] == ["in-progress", "completed"]
    assert sent[-1]["RecordingDuration"] == "2"
    assert sent[-1]["CallSid"] == switch.sid("caller")



async def test_a_stop_cancelled_while_it_waits_still_finalizes_the_recording(switch: FakeSwitch) -> None:
    """Whoever stops a recording may be cancelled while it waits for the file (a <Record> whose call ends right
    then): the finalization goes on, and the recording ends `completed` with its callback, not `processing` for
    good (a churn of short <Record> calls left one so in every run)."""
    switch.number("+15550100", voice_url=VOICE)
    switch.app.documents[VOICE] = "<Response><Pause length='30'/></Response>"
    await switch.call_in("caller", script=speak(3))
    await switch.settle(1)
    rec = await switch.recordings.start([switch.sid("caller")], RecordingSource.RECORD, 1, False, ACTION, "POST",
                                        ("completed",), switch.sid("caller"))
    await switch.settle(2)
    stopping = asyncio.get_running_loop().create_task(switch.recordings.stop(rec.sid))
    await asyncio.sleep(0)  # stop() has started the finalization, which waits for the worker's RecordDone
    stopping.cancel()
    await switch.settle(5)
    final = switch.recordings.get(rec.sid)
    assert final is not None and (final.status, final.duration) == ("completed", 2)
    assert [r["RecordingStatus"] for r in switch.webhooks.to(ACTION)] == ["completed"]
