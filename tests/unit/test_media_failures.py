"""What the switch makes of what the worker reports, on a scripted pool: a tap that cannot take a leg fails its
recording (and no longer completes it early); frames a tap could not write reach the call as a warning; a failed
bridge ends the <Dial> as failed with a notification; <Record> hears silence from the worker's TapLevel events."""

from __future__ import annotations

import msgspec
import pytest

from switch.core.recordings import RecordingFilter
from switch.workers import protocol as p
from tests.unit.fakes import FakeSwitch, answer, hang_up, speak, wait

pytestmark = pytest.mark.looptime

VOICE = "http://app.test/voice"
AFTER = "http://app.test/after"
REC = "http://app.test/rec"
BOB = "<Sip>sip:bob@b.test</Sip>"


async def _dial(switch: FakeSwitch, dial: str) -> list[str]:
    switch.number("+15550100", voice_url=VOICE)
    switch.app.documents[VOICE] = f"<Response>{dial}<Say>Next verb</Say></Response>"
    switch.app.documents[AFTER] = "<Response><Say>After</Say></Response>"
    await switch.call_in("caller")
    await switch.ended("caller")
    await switch.settle(5)  # the recording's finalization
    return switch.pool.trace


def _told(switch: FakeSwitch) -> dict[str, str]:
    [request] = [r for r in switch.app.requests if r.url == AFTER]
    return {k: v for k, v in request.params.items() if k.startswith(("Dial", "Recording"))}


def _refuse_attaches(switch: FakeSwitch) -> None:
    """The worker cannot feed the recording from the joining leg (it lost its audio in between, say)."""
    def attach(worker: int, command: p.RecordAttach) -> None:
        switch.pool.emit(worker, p.RecordAttachFailed(id=command.id, index=command.index, leg=command.leg,
                                                      error="leg has no active audio"))
    switch.pool._attach = attach  # type: ignore[method-assign]


async def test_a_failed_attach_fails_the_recording_and_the_dial_goes_on(switch: FakeSwitch) -> None:
    _refuse_attaches(switch)
    switch.pool.far_end("bob", answer(after=2) + hang_up(after=10))
    trace = await _dial(switch, f"<Dial action='/after' record='record-from-ringing-dual' recordingStatusCallback="
                                f"'/rec' recordingStatusCallbackEvent='in-progress completed absent'>{BOB}</Dial>")
    # The tap is stopped as soon as the attach failed (not when the dial ends), and its RecordDone awaited:
    # the failure did not pass for the recording's end.
    assert trace == ["ring caller", "dial bob", "answer caller", "record caller", "play caller ringback-us.wav loop",
                     "bridge caller bob", "stop_play ringback-us.wav", "record_attach bob 1", "stop_record",
                     "unbridge caller", "play caller say-after.wav", "hangup caller 200"]
    [rec] = switch.recordings.list_recordings(RecordingFilter(), 0, 10)
    assert (rec.status, rec.problem, rec.duration) == ("absent", "nothing-captured", 0)
    assert not switch.recordings.wav_path(rec.sid).exists()
    sent = switch.webhooks.to(REC)
    assert [(s["RecordingStatus"], s.get("ErrorCode")) for s in sent] == [("in-progress", None), ("absent", "16101")]
    assert _told(switch) == {"DialCallStatus": "completed", "DialCallSid": switch.sid("bob"),
                             "DialCallDuration": "10", "DialSipResponseCode": "200"}  # no RecordingUrl
    [(code, message)] = switch.notes("caller")
    assert code == 12400 and f"recording {rec.sid} failed" in message and "leg has no active audio" in message


async def test_frames_a_tap_could_not_write_reach_the_call_as_a_warning(switch: FakeSwitch) -> None:
    emit = switch.pool.emit

    def lossy(worker: int, event: p.Event, delay: float = 0.0) -> None:
        if isinstance(event, p.RecordDone):
            event = msgspec.structs.replace(event, lost_frames=7)
        emit(worker, event, delay)

    switch.pool.emit = lossy  # type: ignore[method-assign]
    switch.pool.far_end("bob", answer(after=1) + hang_up(after=4))
    await _dial(switch, f"<Dial action='/after' record='record-from-answer'>{BOB}</Dial>")
    [rec] = switch.recordings.list_recordings(RecordingFilter(), 0, 10)
    assert rec.status == "completed"  # what was written is kept
    [(code, message)] = switch.notes("caller")
    assert code == 12400 and message.startswith(f"recording {rec.sid}: 7 of ") and "could not be written" in message
    assert any("7 of" in e.detail for e in switch.store.events(switch.sid("caller")) if e.kind == "recording")


async def test_a_failed_bridge_ends_the_dial_as_failed_with_a_notification(switch: FakeSwitch) -> None:
    switch.pool.fail_bridges = "leg has no active audio"
    switch.pool.far_end("bob", answer(after=2) + hang_up(after=10))
    trace = await _dial(switch, f"<Dial action='/after'>{BOB}</Dial>")
    # Not "as if bridged": bob is hung up at once, the caller goes on with the action's answer.
    assert trace == ["ring caller", "dial bob", "answer caller", "play caller ringback-us.wav loop",
                     "bridge caller bob", "stop_play ringback-us.wav", "unbridge caller", "hangup bob 200",
                     "play caller say-after.wav", "hangup caller 200"]
    assert _told(switch) == {"DialCallStatus": "failed", "DialCallSid": switch.sid("bob"), "DialCallDuration": "0",
                             "DialSipResponseCode": "200"}
    assert switch.notes("caller") == [
        (12400, f"<Dial> could not connect the caller to {switch.sid('bob')}: cannot bridge: leg has no active audio")]
    assert switch.history("bob") == ["initiated", "ringing", "in-progress", "completed"]
    assert switch.call("bob").duration == 0  # hung up as soon as the bridge failed, not after its 10 s


async def test_record_ends_on_the_silence_the_worker_reports(switch: FakeSwitch) -> None:
    switch.number("+15550100", voice_url=VOICE)
    switch.app.documents[VOICE] = "<Response><Record action='/after' timeout='3' playBeep='false'/></Response>"
    switch.app.documents[AFTER] = "<Response><Say>After</Say></Response>"
    await switch.call_in("caller", script=speak(2, after=0.5) + wait(30))
    await switch.ended("caller")
    await switch.settle(5)
    assert switch.pool.trace == ["ring caller", "answer caller", "record caller", "stop_record",
                                 "play caller say-after.wav", "hangup caller 200"]
    [record] = switch.pool.commands_of(p.Record)
    assert record.level_ms == 100  # levels come from the worker: nothing re-reads the file
    [request] = [r for r in switch.app.requests if r.url == AFTER]
    assert (request.params["RecordingDuration"], request.params["Digits"]) == ("2", "")
    # Two seconds of voice from 0.5 s, then three of silence: the tap stopped 5.5 s in (275 frames of 20 ms, give
    # or take the 100 ms of a level report), not at maxLength nor at hang-up.
    [done] = [e for _, e in switch.pool.events if isinstance(e, p.RecordDone)]
    assert 270 <= done.frames <= 282


async def test_a_tap_that_meets_its_hang_up_is_absent_without_a_notification(switch: FakeSwitch) -> None:
    """The caller hangs up as its <Record> starts: the worker, which had the BYE first, fails the tap ("a leg has no
    audio").  The recording ends absent with its callback, and no notification reports a fault: nothing failed
    but the call's own end (a churn of short calls made one such warning in every run)."""
    record = switch.pool._record

    def bye_first(worker: int, command: p.Record) -> None:
        switch.pool._end(switch.pool.leg("caller"), 200, "BYE")  # the caller's BYE reached the worker first
        record(worker, command)
    switch.pool._record = bye_first  # type: ignore[method-assign]
    switch.number("+15550100", voice_url=VOICE)
    switch.app.documents[VOICE] = ("<Response><Record playBeep='false' recordingStatusCallback='/rec' "
                                   "recordingStatusCallbackEvent='in-progress completed absent'/></Response>")
    await switch.call_in("caller")
    await switch.ended("caller")
    await switch.settle(5)
    [rec] = switch.recordings.list_recordings(RecordingFilter(), 0, 10)
    assert (rec.status, rec.problem, rec.duration) == ("absent", "nothing-captured", 0)
    assert [(s["RecordingStatus"], s.get("ErrorCode")) for s in switch.webhooks.to(REC)] == [
        ("in-progress", None), ("absent", "16101")]
    assert switch.notes("caller") == []
