"""`<Dial>` on a scripted pool: parallel (first answer wins, the others are cancelled) and sequential ringing,
busy/no-answer outcomes, action parameters, answerOnBridge, hangupOnStar, timeLimit, early media bridged
instead of ringback, a whisper on the called party, a caller who hangs up while it rings, a REFER from the called
party (referUrl)."""

from __future__ import annotations

from pathlib import Path

from switch.core.config import Trunk
from switch.workers import protocol as p
from tests.unit.fakes import (
    FakeSwitch,
    Script,
    answer,
    busy,
    early_media,
    hang_up,
    no_answer,
    press,
    refer,
    speak,
    virtual_time,
)

pytestmark = virtual_time

VOICE = "http://app.test/voice"
AFTER = "http://app.test/after"
BOB, CAROL = "<Sip>sip:bob@b.test</Sip>", "<Sip>sip:carol@c.test</Sip>"


async def _dial(switch: FakeSwitch, dial: str, caller: Script | None = None) -> list[str]:
    """An inbound caller whose app is `<Dial action=AFTER ...>`; the whole trace once the caller's call ended."""
    switch.number("+15550100", voice_url=VOICE)
    switch.app.documents[VOICE] = f"<Response>{dial}<Say>Next verb</Say></Response>"
    switch.app.documents[AFTER] = "<Response><Say>After</Say></Response>"
    await switch.call_in("caller", script=caller)
    await switch.ended("caller")
    return switch.pool.trace


def _told(switch: FakeSwitch) -> dict[str, str]:
    """The Dial parameters the action URL was told."""
    [request] = [r for r in switch.app.requests if r.url == AFTER]
    return {k: v for k, v in request.params.items() if k.startswith(("Dial", "Recording"))}


async def test_parallel_first_answer_wins_and_the_others_are_cancelled(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", answer(after=2) + hang_up(after=10))
    switch.pool.far_end("carol", no_answer())
    trace = await _dial(switch, f"<Dial action='/after'>{BOB}{CAROL}</Dial>")
    assert trace == ["ring caller", "dial bob", "dial carol", "answer caller", "play caller ringback-us.wav loop",
                     "hangup carol 487", "bridge caller bob", "stop_play ringback-us.wav", "unbridge caller",
                     "play caller say-after.wav", "hangup caller 200"]
    assert _told(switch) == {"DialCallStatus": "completed", "DialCallSid": switch.sid("bob"),
                             "DialCallDuration": "10", "DialSipResponseCode": "200"}
    assert switch.history("bob") == ["initiated", "ringing", "in-progress", "completed"]
    assert switch.history("carol") == ["initiated", "ringing", "canceled"]
    assert switch.history("caller") == ["in-progress", "completed"]
    bob = switch.call("bob")
    assert (bob.direction, bob.parent_call_sid, bob.from_) == ("outbound-dial", switch.sid("caller"), "+15551230000")


async def test_sequential_tries_each_noun_in_turn(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", busy(after=1))
    switch.pool.far_end("carol", answer(after=2) + hang_up(after=5))
    trace = await _dial(switch, f"<Dial sequential='true' action='/after'>{BOB}{CAROL}</Dial>")
    assert trace == ["ring caller", "dial bob", "answer caller", "play caller ringback-us.wav loop", "dial carol",
                     "bridge caller carol", "stop_play ringback-us.wav", "unbridge caller",
                     "play caller say-after.wav", "hangup caller 200"]
    assert _told(switch)["DialCallStatus"] == "completed"
    assert _told(switch)["DialCallSid"] == switch.sid("carol")
    assert switch.history("bob") == ["initiated", "ringing", "busy"]


async def test_a_second_child_answering_at_once_is_hung_up(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", answer(after=2) + hang_up(after=5))
    switch.pool.far_end("carol", answer(after=2))
    trace = await _dial(switch, f"<Dial action='/after'>{BOB}{CAROL}</Dial>")
    assert trace == ["ring caller", "dial bob", "dial carol", "answer caller", "play caller ringback-us.wav loop",
                     "hangup carol 200", "bridge caller bob", "stop_play ringback-us.wav", "unbridge caller",
                     "play caller say-after.wav", "hangup caller 200"]
    assert switch.history("carol") == ["initiated", "ringing", "in-progress", "completed"]
    assert _told(switch)["DialCallSid"] == switch.sid("bob")


async def test_sequential_rings_each_noun_for_the_timeout(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", no_answer())
    switch.pool.far_end("carol", answer(after=1) + hang_up(after=2))
    trace = await _dial(switch, f"<Dial sequential='true' timeout='5' action='/after'>{BOB}{CAROL}</Dial>")
    assert trace == ["ring caller", "dial bob", "answer caller", "play caller ringback-us.wav loop",
                     "hangup bob 487", "dial carol", "bridge caller carol", "stop_play ringback-us.wav",
                     "unbridge caller", "play caller say-after.wav", "hangup caller 200"]
    carol, bob = switch.call("carol").start_time, switch.call("bob").start_time
    assert carol is not None and bob is not None and (carol - bob).total_seconds() == 5


async def test_everyone_busy_is_busy(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", busy(after=1))
    switch.pool.far_end("carol", busy(after=2))
    trace = await _dial(switch, f"<Dial action='/after'>{BOB}{CAROL}</Dial>")
    assert trace == ["ring caller", "dial bob", "dial carol", "answer caller", "play caller ringback-us.wav loop",
                     "stop_play ringback-us.wav", "play caller say-after.wav", "hangup caller 200"]
    assert _told(switch) == {"DialCallStatus": "busy", "DialCallSid": switch.sid("carol"),
                             "DialCallDuration": "0", "DialSipResponseCode": "486"}


async def test_nobody_answering_within_the_timeout_is_no_answer(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", no_answer())
    switch.pool.far_end("carol", busy(after=1))
    trace = await _dial(switch, f"<Dial timeout='5' action='/after'>{BOB}{CAROL}</Dial>")
    assert trace == ["ring caller", "dial bob", "dial carol", "answer caller", "play caller ringback-us.wav loop",
                     "hangup bob 487", "stop_play ringback-us.wav", "play caller say-after.wav",
                     "hangup caller 200"]
    assert _told(switch)["DialCallStatus"] == "no-answer"  # the most telling outcome: no-answer before busy
    assert switch.history("bob") == ["initiated", "ringing", "no-answer"]
    assert switch.call("caller").duration == 5 + 1


async def test_without_an_action_the_next_verb_runs(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", busy())
    trace = await _dial(switch, f"<Dial>{BOB}</Dial>")
    assert trace[-3:] == ["stop_play ringback-us.wav", "play caller say-next-verb.wav", "hangup caller 200"]
    assert switch.app.trace == [f"POST {VOICE}"]


async def test_a_noun_that_cannot_be_placed_is_reported_and_the_dial_fails(switch: FakeSwitch) -> None:
    trace = await _dial(switch, "<Dial action='/after'><Number>+15557654321</Number></Dial>")
    assert trace == ["ring caller", "answer caller", "play caller ringback-us.wav loop", "stop_play ringback-us.wav",
                     "play caller say-after.wav", "hangup caller 200"]
    assert _told(switch) == {"DialCallStatus": "failed"}
    [(code, message)] = switch.notes("caller")
    assert code == 21215 and "+15557654321" in message


async def test_answer_on_bridge_answers_the_caller_only_when_a_child_answers(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", answer(after=4) + hang_up(after=6))
    trace = await _dial(switch, f"<Dial answerOnBridge='true' action='/after'>{BOB}</Dial>")
    assert trace == ["ring caller", "dial bob", "answer caller", "bridge caller bob", "unbridge caller",
                     "play caller say-after.wav", "hangup caller 200"]
    caller = switch.call("caller")
    assert caller.answer_time is not None and caller.start_time is not None
    assert (caller.answer_time - caller.start_time).total_seconds() == 4


async def test_hangup_on_star_ends_the_conversation_but_not_the_caller(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", answer(after=1))
    trace = await _dial(switch, f"<Dial hangupOnStar='true' action='/after'>{BOB}</Dial>",
                        caller=press("1*", after=5))
    assert trace == ["ring caller", "dial bob", "answer caller", "play caller ringback-us.wav loop",
                     "bridge caller bob", "stop_play ringback-us.wav", "unbridge caller", "hangup bob 200",
                     "play caller say-after.wav", "hangup caller 200"]
    assert _told(switch)["DialCallStatus"] == "completed"
    assert switch.history("bob") == ["initiated", "ringing", "in-progress", "completed"]


async def test_time_limit_hangs_up_the_called_party(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", answer(after=1))
    trace = await _dial(switch, f"<Dial timeLimit='20' action='/after'>{BOB}</Dial>")
    # the child leg carries the limit itself (its engine timer started at its answer, a hair before the dial's)
    assert trace == ["ring caller", "dial bob", "answer caller", "play caller ringback-us.wav loop",
                     "bridge caller bob", "stop_play ringback-us.wav", "hangup bob 200", "unbridge caller",
                     "play caller say-after.wav", "hangup caller 200"]
    assert switch.history("bob") == ["initiated", "ringing", "in-progress", "completed"]
    assert _told(switch)["DialCallDuration"] == "20"


async def test_early_media_is_bridged_instead_of_ringback(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", early_media(after=1) + answer(after=3) + hang_up(after=5))
    trace = await _dial(switch, f"<Dial action='/after'>{BOB}</Dial>")
    assert trace == ["ring caller", "dial bob", "answer caller", "play caller ringback-us.wav loop",
                     "bridge caller bob", "stop_play ringback-us.wav", "unbridge caller",
                     "play caller say-after.wav", "hangup caller 200"]
    assert [t for t in trace if t.startswith("bridge")] == ["bridge caller bob"]  # once, at the 183
    assert _told(switch)["DialCallStatus"] == "completed"


async def test_the_early_media_child_giving_up_brings_ringback_back(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", early_media(after=1) + busy(after=2))
    switch.pool.far_end("carol", answer(after=6) + hang_up(after=1))
    trace = await _dial(switch, f"<Dial action='/after'>{BOB}{CAROL}</Dial>")
    assert trace == ["ring caller", "dial bob", "dial carol", "answer caller", "play caller ringback-us.wav loop",
                     "bridge caller bob", "stop_play ringback-us.wav", "play caller ringback-us.wav loop",
                     "bridge caller carol", "stop_play ringback-us.wav", "unbridge caller",
                     "play caller say-after.wav", "hangup caller 200"]
    assert _told(switch)["DialCallSid"] == switch.sid("carol")


async def test_a_whisper_runs_on_the_called_party_before_the_bridge(switch: FakeSwitch) -> None:
    switch.app.documents["http://app.test/whisper"] = "<Response><Say>Call for you</Say></Response>"
    switch.pool.far_end("bob", answer(after=1) + hang_up(after=5))
    trace = await _dial(switch, "<Dial action='/after'><Sip url='/whisper'>sip:bob@b.test</Sip></Dial>")
    assert trace == ["ring caller", "dial bob", "answer caller", "play caller ringback-us.wav loop",
                     "play bob say-call-for-you.wav", "bridge caller bob", "stop_play ringback-us.wav",
                     "unbridge caller", "play caller say-after.wav", "hangup caller 200"]
    whisper = next(r for r in switch.app.requests if r.url == "http://app.test/whisper")
    assert (whisper.params["CallSid"], whisper.params["ParentCallSid"]) == (switch.sid("bob"), switch.sid("caller"))


async def test_a_whisper_that_hangs_up_declines_the_call(switch: FakeSwitch) -> None:
    switch.app.documents["http://app.test/whisper"] = "<Response><Hangup/></Response>"
    switch.pool.far_end("bob", answer(after=1))
    trace = await _dial(switch, "<Dial action='/after'><Sip url='/whisper'>sip:bob@b.test</Sip></Dial>")
    assert trace == ["ring caller", "dial bob", "answer caller", "play caller ringback-us.wav loop",
                     "hangup bob 200", "stop_play ringback-us.wav", "play caller say-after.wav",
                     "hangup caller 200"]
    assert _told(switch)["DialCallStatus"] == "no-answer"


async def test_the_caller_hanging_up_cancels_the_children_and_still_tells_the_action(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", no_answer())
    switch.pool.far_end("carol", no_answer())
    trace = await _dial(switch, f"<Dial action='/after'>{BOB}{CAROL}</Dial>", caller=hang_up(after=3))
    assert trace == ["ring caller", "dial bob", "dial carol", "answer caller", "play caller ringback-us.wav loop",
                     "hangup bob 487", "hangup carol 487", "stop_play ringback-us.wav"]
    assert _told(switch) == {"DialCallStatus": "canceled"}
    assert switch.history("bob") == ["initiated", "ringing", "canceled"]
    assert switch.history("carol") == ["initiated", "ringing", "canceled"]


async def test_record_from_answer_records_both_parties_and_tells_the_action(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", answer(after=1) + speak(3) + hang_up(after=1))
    trace = await _dial(switch, f"<Dial record='record-from-answer-dual' action='/after'>{BOB}</Dial>")
    assert trace == ["ring caller", "dial bob", "answer caller", "play caller ringback-us.wav loop",
                     "bridge caller bob", "stop_play ringback-us.wav", "record caller+bob",
                     "stop_record",  # bob's leg ended: the recording of his call is finalized at once
                     "unbridge caller", "play caller say-after.wav", "hangup caller 200"]
    told = _told(switch)
    rec = switch.recordings.get(told["RecordingSid"])
    assert rec is not None
    assert (rec.status, rec.channels, rec.duration, rec.legs) == ("completed", 2, 4, (switch.sid("caller"),
                                                                                      switch.sid("bob")))
    assert (told["RecordingDuration"], told["DialCallDuration"]) == ("4", "4")


async def test_a_failed_bridge_ends_the_dial_failed_with_a_notification(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", answer(after=1))
    switch.pool.fail_bridges = "no free conference slot"
    trace = await _dial(switch, f"<Dial action='/after'>{BOB}</Dial>")
    assert trace == ["ring caller", "dial bob", "answer caller", "play caller ringback-us.wav loop",
                     "bridge caller bob", "stop_play ringback-us.wav", "unbridge caller", "hangup bob 200",
                     "play caller say-after.wav", "hangup caller 200"]
    assert _told(switch)["DialCallStatus"] == "failed"
    [(code, message)] = switch.notes("caller")
    assert code == 12400 and "cannot bridge: no free conference slot" in message
    assert switch.history("bob") == ["initiated", "ringing", "in-progress", "completed"]


async def test_record_from_ringing_taps_the_caller_at_once_and_the_child_joins_at_its_answer(
        switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", answer(after=2) + speak(2) + hang_up())
    trace = await _dial(switch, f"<Dial record='record-from-ringing' action='/after'>{BOB}</Dial>",
                        caller=speak(1))
    assert trace == ["ring caller", "dial bob", "answer caller", "record caller", "play caller ringback-us.wav loop",
                     "bridge caller bob", "stop_play ringback-us.wav", "record_attach bob 1", "unbridge caller",
                     "stop_record", "play caller say-after.wav", "hangup caller 200"]
    told = _told(switch)
    assert (told["RecordingDuration"], told["DialCallDuration"]) == ("4", "2")  # from the ringing, from the answer


async def test_numbers_go_to_the_trunk_with_caller_id_and_send_digits(tmp_path: Path) -> None:
    fake = await FakeSwitch(tmp_path, trunks=[Trunk(name="carrier", uri="sip:trunk.test:5080")]).start()
    try:
        fake.pool.far_end("+15557654321", answer(after=1) + hang_up(after=5))
        await _dial(fake, "<Dial callerId='+15559990000' action='/after'>"
                          "<Number sendDigits='1w2'>+15557654321</Number></Dial>")
        dial = fake.pool.commands_of(p.Dial)[0]
        assert (dial.uri, dial.from_uri, dial.auth) == ("sip:+15557654321@trunk.test:5080",
                                                        "sip:+15559990000@127.0.0.1:5060", None)
        assert fake.pool.leg("+15557654321").digits_heard == ["1", "2"]
        assert "DialSipResponseCode" not in _told(fake)  # a <Number>, not a <Sip>
        assert fake.call("+15557654321").from_ == "+15559990000"
    finally:
        await fake.close()


# -- REFER from the dialed party (referUrl) -------------------------------------------------------------------
REFER_URL = "http://app.test/refer"
DAVE = "<Dial><Sip>sip:dave@d.test</Sip></Dial>"


async def test_a_refer_runs_the_refer_url_on_the_caller_and_lets_the_transferor_go(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", answer(after=1) + refer("<sip:dave@d.test?X-Ctx=1>", after=3))
    switch.pool.far_end("dave", answer(after=2) + hang_up(after=4))
    switch.app.documents[REFER_URL] = f"<Response>{DAVE}<Say>Transferred</Say></Response>"
    trace = await _dial(switch, f"<Dial action='/after' referUrl='/refer'>{BOB}</Dial>")
    assert trace == ["ring caller", "dial bob", "answer caller", "play caller ringback-us.wav loop",
                     "bridge caller bob", "stop_play ringback-us.wav", "allow_refer bob True",
                     "refer_notify bob 200", "unbridge caller", "hangup bob 200",
                     "dial dave", "play caller ringback-us.wav loop", "bridge caller dave",
                     "stop_play ringback-us.wav", "unbridge caller", "play caller say-transferred.wav",
                     "hangup caller 200"]
    assert switch.pool.leg("bob").notifies == [(100, False), (200, True)]
    [request] = [r for r in switch.app.requests if r.url == REFER_URL]
    assert request.method == "POST"
    assert request.params["CallSid"] == switch.sid("caller")
    assert request.params["ReferTransferTarget"] == "<sip:dave@d.test?X-Ctx=1>"
    assert request.params["SipHeader_Referred-By"] == "<sip:bob@far.test>"
    assert request.params["SipHeader_X-Ctx"] == "42"
    assert _told(switch) == {"DialCallStatus": "completed", "DialCallSid": switch.sid("bob"),
                             "DialCallDuration": "3", "DialSipResponseCode": "200"}  # told, answer ignored
    assert [r.url for r in switch.app.requests] == [VOICE, REFER_URL, AFTER]
    assert switch.history("bob") == ["initiated", "ringing", "in-progress", "completed"]
    assert switch.history("dave") == ["initiated", "ringing", "in-progress", "completed"]
    assert switch.notes("caller") == []


async def test_a_refer_url_that_fails_keeps_the_conversation(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", answer(after=1) + refer("<sip:dave@d.test>", after=2) + hang_up(after=3))
    trace = await _dial(switch, f"<Dial action='/after' referUrl='/refer' referMethod='GET'>{BOB}</Dial>")
    assert "refer_notify bob 503" in trace and not any(line.startswith("dial dave") for line in trace)
    assert switch.pool.leg("bob").notifies == [(100, False), (503, True)]
    assert [(r.method, r.url) for r in switch.app.requests if r.url == REFER_URL] == [("GET", REFER_URL)]
    assert _told(switch)["DialCallDuration"] == "5"  # bob stayed on until he hung up himself
    assert [code for code, _ in switch.notes("caller")] == [11200]


async def test_a_refer_without_refer_url_is_refused_with_13802(switch: FakeSwitch) -> None:
    switch.pool.far_end("bob", answer(after=1) + refer("<sip:dave@d.test>", after=2) + hang_up(after=3))
    trace = await _dial(switch, f"<Dial action='/after'>{BOB}</Dial>")
    assert not any(line.startswith(("allow_refer", "refer_notify")) for line in trace)
    assert switch.pool.leg("bob").notifies == []
    assert [code for code, _ in switch.notes("caller")] == [13802]
    assert _told(switch)["DialCallDuration"] == "5"
    assert switch.history("bob") == ["initiated", "ringing", "in-progress", "completed"]
