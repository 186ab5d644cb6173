"""`<Say>`, `<Play>` and `<Pause>`: what the caller hears is the worker's play commands, in order, with loop;
Play digits; relative Play URLs resolved against the document; local files only from inline TwiML."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.fakes import FakeSwitch, Script, answer, hang_up, virtual_time

pytestmark = virtual_time

VOICE = "http://app.test/ivr/voice"


async def _run(switch: FakeSwitch, twiml: str, script: Script | None = None, url: str = VOICE) -> list[str]:
    """Run `twiml` (fetched from `url`) on an inbound call; the trace after ring and answer."""
    switch.number("+15550100", voice_url=url)
    switch.app.documents[url] = twiml
    await switch.call_in("caller", script=script)
    await switch.ended("caller")
    assert switch.pool.trace[:2] == ["ring caller", "answer caller"]
    return switch.pool.trace[2:]


async def test_say_plays_its_speech_loop_times(switch: FakeSwitch) -> None:
    trace = await _run(switch, "<Response><Say voice='alice' language='en-GB' loop='3'>Hi there</Say></Response>")
    assert trace == ["play caller say-hi-there.wav"] * 3 + ["hangup caller 200"]
    assert switch.speech.said == [("Hi there", "alice", "en-GB")]
    assert switch.call("caller").duration == 3


async def test_say_loop_zero_plays_until_the_caller_hangs_up(switch: FakeSwitch) -> None:
    trace = await _run(switch, "<Response><Say loop='0'>Hold</Say></Response>", hang_up(after=7))
    assert trace == ["play caller say-hold.wav loop", "stop_play say-hold.wav"]
    assert switch.history("caller") == ["in-progress", "completed"]
    assert switch.call("caller").duration == 7


async def test_empty_say_still_answers_and_plays_nothing(switch: FakeSwitch) -> None:
    trace = await _run(switch, "<Response><Say> </Say><Say>Next</Say></Response>")
    assert trace == ["play caller say-next.wav", "hangup caller 200"]
    assert switch.speech.said == [("Next", "man", "en-US")]


async def test_play_fetches_once_and_plays_loop_times(switch: FakeSwitch) -> None:
    switch.audio.lengths["http://media.test/tune.wav"] = 4.0
    trace = await _run(switch, "<Response><Play loop='2'>http://media.test/tune.wav</Play></Response>")
    assert trace == ["play caller tune.wav", "play caller tune.wav", "hangup caller 200"]
    assert switch.audio.fetched == ["http://media.test/tune.wav"]
    assert switch.call("caller").duration == 8


async def test_play_digits_sends_dtmf_with_pauses(switch: FakeSwitch) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    trace = await _run(switch, "<Response><Play digits='12w3'/><Hangup/></Response>")
    assert trace == ["dtmf caller 12", "dtmf caller 3", "hangup caller 200"]
    assert switch.pool.leg("caller").digits_heard == ["12", "3"]
    # two digits then a half-second `w`, then one digit and its trailing half second
    assert loop.time() - start == pytest.approx(2 * 0.25 + 0.5 + 0.25 + 0.5 + 1)


async def test_relative_play_urls_resolve_against_the_document(switch: FakeSwitch) -> None:
    twiml = ("<Response><Play>/hold.wav</Play><Play>chime.wav</Play>"
             "<Gather timeout='1'><Play>../prompt.wav</Play></Gather></Response>")
    trace = await _run(switch, twiml)
    assert switch.audio.fetched == ["http://app.test/hold.wav", "http://app.test/ivr/chime.wav",
                                    "http://app.test/prompt.wav"]
    assert switch.audio.opened == []
    assert trace == ["play caller hold.wav", "play caller chime.wav", "play caller prompt.wav", "hangup caller 200"]


async def test_a_fetched_document_cannot_play_local_files(switch: FakeSwitch) -> None:
    trace = await _run(switch, "<Response><Play>file:///etc/secret.wav</Play><Say>After</Say></Response>")
    assert switch.audio.opened == [] and switch.audio.fetched == []
    assert trace == ["play caller say-after.wav", "hangup caller 200"]
    [(code, message)] = switch.notes("caller")
    assert code == 11200 and "file:///etc/secret.wav" in message
    assert switch.notifications.for_call(switch.sid("caller"))[0].log == 1  # a warning: the call went on


async def test_inline_twiml_may_play_local_files(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", answer(after=1))
    await switch.call_out("sip:alice@phone.test", twiml="<Response><Play>/srv/sounds/hold.wav</Play></Response>")
    await switch.ended("alice")
    assert switch.audio.opened == ["/srv/sounds/hold.wav"]
    assert switch.pool.trace == ["dial alice", "play alice hold.wav", "hangup alice 200"]


async def test_an_undecodable_url_is_skipped_with_a_warning(switch: FakeSwitch) -> None:
    switch.audio.broken.add("http://media.test/bad.mp3")
    trace = await _run(switch, "<Response><Play>http://media.test/bad.mp3</Play><Say>After</Say></Response>")
    assert trace == ["play caller say-after.wav", "hangup caller 200"]
    assert [code for code, _ in switch.notes("caller")] == [11200]


async def test_audio_the_worker_cannot_play_ends_the_app(switch: FakeSwitch) -> None:
    switch.audio.unplayable.add("http://media.test/gone.wav")
    trace = await _run(switch, "<Response><Play>http://media.test/gone.wav</Play><Say>Never</Say></Response>")
    assert trace == ["play caller gone.wav", "hangup caller 200"]
    [(code, message)] = switch.notes("caller")
    assert code == 12400 and "<Play>" in message


async def test_pause_is_silence_for_its_length(switch: FakeSwitch) -> None:
    trace = await _run(switch, "<Response><Pause length='30'/><Say>Bye</Say></Response>")
    assert trace == ["play caller say-bye.wav", "hangup caller 200"]
    assert switch.call("caller").duration == 31
