"""The TwiML interpreter on a live call: the chain of documents (Url, Redirect, REST redirect), fallback with
ErrorCode and ErrorUrl, the application-error message, the redirect-loop guard, and the end of the app."""

from __future__ import annotations

import asyncio

from switch.core.service import CallUpdate
from tests.unit.fakes import FakeSwitch, answer, hang_up, virtual_time
from tests.unit.fakes.app import slug
from twiml.interpreter import APPLICATION_ERROR, MAX_DOCUMENTS

pytestmark = virtual_time

ALICE = "sip:alice@phone.test"
VOICE = "http://app.test/voice"
SORRY = f"say-{slug(APPLICATION_ERROR)}.wav"


async def test_an_outbound_call_runs_its_url_once_answered_and_hangs_up_after_the_last_verb(
        switch: FakeSwitch) -> None:
    switch.app.documents[VOICE] = "<Response><Say>Hello</Say><Pause length='2'/></Response>"
    switch.pool.far_end("alice", answer(after=1))
    await switch.call_out(ALICE, url=VOICE)
    call = await switch.ended("alice")
    assert switch.pool.trace == ["dial alice", "play alice say-hello.wav", "hangup alice 200"]
    assert switch.history("alice") == ["initiated", "ringing", "in-progress", "completed"]
    assert call.duration == 3  # one second of speech, two of silence
    assert switch.app.trace == [f"POST {VOICE}"]
    params = switch.app.requests[0].params
    assert (params["CallSid"], params["CallStatus"], params["Direction"], params["To"]) == (
        call.sid, "in-progress", "outbound-api", ALICE)


async def test_an_inbound_call_runs_its_number_url_and_is_answered_by_its_first_audio(switch: FakeSwitch) -> None:
    switch.number("+15550100", voice_url=VOICE)
    switch.app.documents[VOICE] = "<Response><Say>Welcome</Say></Response>"
    await switch.call_in("caller")
    call = await switch.ended("caller")
    assert switch.pool.trace == ["ring caller", "answer caller", "play caller say-welcome.wav", "hangup caller 200"]
    assert switch.history("caller") == ["in-progress", "completed"]
    assert switch.app.requests[0].params["CallStatus"] == "ringing"  # fetched before the answer
    assert call.duration == 1


async def test_redirects_resolve_against_the_document_and_keep_their_method(switch: FakeSwitch) -> None:
    switch.app.documents.update({
        "http://app.test/ivr/start": "<Response><Redirect method='GET'>next</Redirect></Response>",
        "http://app.test/ivr/next": "<Response><Redirect>/done</Redirect></Response>",
        "http://app.test/done": "<Response><Say>Done</Say></Response>",
    })
    switch.pool.far_end("alice", answer(after=1))
    await switch.call_out(ALICE, url="http://app.test/ivr/start")
    await switch.ended("alice")
    assert switch.app.trace == ["POST http://app.test/ivr/start", "GET http://app.test/ivr/next",
                                "POST http://app.test/done"]
    assert switch.pool.trace == ["dial alice", "play alice say-done.wav", "hangup alice 200"]


async def test_a_failed_url_falls_back_with_error_code_and_url(switch: FakeSwitch) -> None:
    switch.app.documents["http://app.test/fallback"] = "<Response><Say>Sorry</Say></Response>"
    switch.pool.far_end("alice", answer(after=1))
    await switch.call_out(ALICE, url="http://app.test/broken", fallback_url="http://app.test/fallback",
                          fallback_method="GET")
    await switch.ended("alice")
    assert switch.app.trace == ["POST http://app.test/broken", "GET http://app.test/fallback"]
    fallback = switch.app.requests[1].params
    assert (fallback["ErrorCode"], fallback["ErrorUrl"]) == ("11200", "http://app.test/broken")
    assert switch.notes("alice") == [(11200, "POST http://app.test/broken answered HTTP 404")]
    assert switch.pool.trace == ["dial alice", "play alice say-sorry.wav", "hangup alice 200"]


async def test_without_a_working_document_the_caller_hears_the_application_error(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", answer(after=1))
    await switch.call_out(ALICE, url="http://app.test/broken", fallback_url="http://app.test/gone")
    await switch.ended("alice")
    assert switch.app.trace == ["POST http://app.test/broken", "POST http://app.test/gone"]
    assert [code for code, _ in switch.notes("alice")] == [11200, 11200]
    assert switch.notes("alice")[1][1].startswith("fallback failed too")
    assert switch.pool.trace == ["dial alice", f"play alice {SORRY}", "hangup alice 200"]


async def test_an_invalid_document_is_a_parse_error(switch: FakeSwitch) -> None:
    switch.app.documents[VOICE] = "<Response><Say>unclosed</Response>"
    switch.pool.far_end("alice", answer(after=1))
    await switch.call_out(ALICE, url=VOICE)
    await switch.ended("alice")
    assert [code for code, _ in switch.notes("alice")] == [12100]
    assert switch.pool.trace == ["dial alice", f"play alice {SORRY}", "hangup alice 200"]


async def test_an_app_that_redirects_forever_is_stopped(switch: FakeSwitch) -> None:
    switch.app.documents["http://app.test/loop"] = "<Response><Redirect>/loop</Redirect></Response>"
    switch.pool.far_end("alice", answer(after=1))
    await switch.call_out(ALICE, url="http://app.test/loop")
    await switch.ended("alice")
    assert switch.app.trace == ["POST http://app.test/loop"] * MAX_DOCUMENTS
    assert [code for code, _ in switch.notes("alice")] == [12400]
    assert switch.pool.trace == ["dial alice", "hangup alice 200"]


async def test_rest_redirects_are_not_counted_as_a_redirect_loop(switch: FakeSwitch) -> None:
    """An app that moves a long call by REST more than MAX_DOCUMENTS times keeps it (each is a request of its own);
    a <Redirect> loop reached by REST is still stopped, after MAX_DOCUMENTS documents counted from that redirect."""
    hold = "http://app.test/hold"
    switch.app.documents.update({
        VOICE: "<Response><Pause length='60'/></Response>",
        hold: "<Response><Pause length='60'/></Response>",
        "http://app.test/loop": "<Response><Redirect>/loop</Redirect></Response>",
    })
    switch.pool.far_end("alice", answer(after=1))
    call = await switch.call_out(ALICE, url=VOICE)
    await asyncio.sleep(2)  # answered, and holding in its first document
    moves = MAX_DOCUMENTS + 20
    for _ in range(moves):
        await asyncio.sleep(1)
        await switch.calls.update_call(call.sid, CallUpdate(url=hold))
    await asyncio.sleep(1)
    assert switch.calls.live.get(call.sid) is not None  # still up, still holding
    assert switch.notes("alice") == []
    await switch.calls.update_call(call.sid, CallUpdate(url="http://app.test/loop"))
    await switch.ended("alice")
    assert switch.app.trace == ([f"POST {VOICE}"] + [f"POST {hold}"] * moves
                                + ["POST http://app.test/loop"] * MAX_DOCUMENTS)
    assert [code for code, _ in switch.notes("alice")] == [12400]
    assert switch.pool.trace == ["dial alice", "hangup alice 200"]


async def test_a_rest_redirect_interrupts_the_running_verb(switch: FakeSwitch) -> None:
    switch.app.documents.update({
        VOICE: "<Response><Play loop='0'>http://media.test/music.wav</Play><Say>Never</Say></Response>",
        "http://app.test/next": "<Response><Say>Next</Say></Response>",
    })
    switch.pool.far_end("alice", answer(after=1))
    call = await switch.call_out(ALICE, url=VOICE)
    await asyncio.sleep(10)
    await switch.calls.update_call(call.sid, CallUpdate(url="http://app.test/next", method="GET"))
    await switch.ended("alice")
    assert switch.pool.trace == ["dial alice", "play alice music.wav loop", "stop_play music.wav",
                                 "play alice say-next.wav", "hangup alice 200"]
    assert switch.app.trace == [f"POST {VOICE}", "GET http://app.test/next"]


async def test_a_rest_redirect_with_inline_twiml(switch: FakeSwitch) -> None:
    switch.app.documents[VOICE] = "<Response><Pause length='60'/></Response>"
    switch.pool.far_end("alice", answer(after=1))
    call = await switch.call_out(ALICE, url=VOICE)
    await asyncio.sleep(5)
    await switch.calls.update_call(call.sid, CallUpdate(twiml="<Response><Say>Inline</Say><Hangup/></Response>"))
    ended = await switch.ended("alice")
    assert switch.pool.trace == ["dial alice", "play alice say-inline.wav", "hangup alice 200"]
    assert ended.duration == 5
    assert switch.app.trace == [f"POST {VOICE}"]


async def test_a_rest_redirect_before_the_answer_runs_the_new_url_when_answered(switch: FakeSwitch) -> None:
    switch.app.documents["http://app.test/new"] = "<Response><Say>New</Say></Response>"
    switch.pool.far_end("alice", answer(after=10))
    call = await switch.call_out(ALICE, url="http://app.test/old")
    await asyncio.sleep(2)
    await switch.calls.update_call(call.sid, CallUpdate(url="http://app.test/new"))
    await switch.ended("alice")
    assert switch.app.trace == ["POST http://app.test/new"]
    assert switch.pool.trace == ["dial alice", "play alice say-new.wav", "hangup alice 200"]


async def test_the_far_end_hanging_up_stops_the_app(switch: FakeSwitch) -> None:
    switch.app.documents[VOICE] = "<Response><Say loop='0'>Hold on</Say><Redirect>/after</Redirect></Response>"
    switch.pool.far_end("alice", answer(after=1) + hang_up(after=4))
    await switch.call_out(ALICE, url=VOICE)
    call = await switch.ended("alice")
    await switch.settle(10)
    # the worker ended the player with the leg; the cancelled verb still says stop (an id the worker forgot)
    assert switch.pool.trace == ["dial alice", "play alice say-hold-on.wav loop", "stop_play say-hold-on.wav"]
    assert switch.app.trace == [f"POST {VOICE}"]
    assert switch.voice.interpreters == {}
    assert (call.status, call.duration) == ("completed", 4)


async def test_a_worker_that_dies_mid_verb_fails_the_call_and_stops_the_app(switch: FakeSwitch) -> None:
    switch.app.documents[VOICE] = "<Response><Say loop='0'>Music</Say><Redirect>/next</Redirect></Response>"
    switch.pool.far_end("alice", answer(after=1))
    await switch.call_out(ALICE, url=VOICE)
    await asyncio.sleep(5)
    switch.pool.kill(0)
    call = await switch.ended("alice")
    await switch.settle(10)
    assert switch.pool.trace == ["dial alice", "play alice say-music.wav loop"]  # nothing reaches a dead worker
    assert switch.history("alice") == ["initiated", "ringing", "in-progress", "failed"]
    assert (call.duration, switch.app.trace, switch.voice.interpreters) == (4, [f"POST {VOICE}"], {})
