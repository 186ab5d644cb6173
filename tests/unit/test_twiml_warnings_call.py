"""Schema warnings and errors on a live (fake) call: a warning is recorded as a Notification with Log=1 and the
call goes on; an error ends the document (FallbackUrl, else the application-error message), as on Twilio."""

from __future__ import annotations

import asyncio

from switch.core.notifications import ERROR, WARNING
from tests.unit.fakes import FakeSwitch, answer, press, virtual_time
from tests.unit.fakes.app import slug
from twiml.interpreter import APPLICATION_ERROR

pytestmark = virtual_time

ALICE = "sip:alice@phone.test"
VOICE = "http://app.test/voice"
ACTION = "http://app.test/gathered"
SORRY = f"say-{slug(APPLICATION_ERROR)}.wav"


def _notes(switch: FakeSwitch, alias: str) -> list[tuple[int, int, str, str | None]]:
    """(log level, code, message, request URL) of each notification on the call, oldest first."""
    return [(n.log, n.error_code, n.message_text, n.request_url)
            for n in switch.notifications.for_call(switch.sid(alias))]


async def test_warnings_are_recorded_and_the_call_goes_on(switch: FakeSwitch) -> None:
    switch.app.documents[VOICE] = ('<Response>\n<Say foo="bar">Hello</Say>\n<say>lost</say>\n'
                                   '<Pause length="soon"/>\n<Say>Goodbye</Say>\n</Response>')
    switch.pool.far_end("alice", answer(after=1))
    await switch.call_out(ALICE, url=VOICE)
    call = await switch.ended("alice")
    assert switch.pool.trace == ["dial alice", "play alice say-hello.wav", "play alice say-goodbye.wav",
                                 "hangup alice 200"]
    assert switch.history("alice") == ["initiated", "ringing", "in-progress", "completed"]
    assert call.duration == 1 + 1 + 1  # Hello, the Pause with its default length, Goodbye
    assert _notes(switch, "alice") == [
        (WARNING, 12200, "line 2: <Say> does not allow the attribute foo; it was ignored", VOICE),
        (WARNING, 12200, "line 3: unknown element <say> (did you mean <Say>?); it was skipped", VOICE),
        (WARNING, 13910, 'line 4: <Pause> attribute length="soon": expected an integer >= 0; the default was used',
         VOICE),
    ]


async def test_warnings_of_inline_twiml_are_recorded_too(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", answer(after=1))
    await switch.call_out(ALICE, twiml="<Response><Play loop='x'/><Say>Hi</Say></Response>")
    await switch.ended("alice")
    assert switch.pool.trace == ["dial alice", "play alice say-hi.wav", "hangup alice 200"]
    assert [(log, code) for log, code, _, _ in _notes(switch, "alice")] == [(WARNING, 13410), (WARNING, 12200)]


async def test_an_unsupported_verb_is_an_error_and_the_caller_hears_the_application_error(
        switch: FakeSwitch) -> None:
    switch.app.documents[VOICE] = "<Response><Say>Hold on</Say><Pay/></Response>"
    switch.pool.far_end("alice", answer(after=1))
    await switch.call_out(ALICE, url=VOICE)
    await switch.ended("alice")
    assert switch.pool.trace == ["dial alice", f"play alice {SORRY}", "hangup alice 200"]  # nothing of it ran
    assert _notes(switch, "alice") == [
        (ERROR, 13750, "<Pay> is a Twilio verb softswitch does not support", VOICE)]


async def test_an_error_level_attribute_uses_the_fallback_url(switch: FakeSwitch) -> None:
    switch.app.documents[VOICE] = "<Response><Gather actionOnEmptyResult='maybe'/></Response>"
    switch.app.documents["http://app.test/fallback"] = "<Response><Say>Sorry</Say></Response>"
    switch.pool.far_end("alice", answer(after=1))
    await switch.call_out(ALICE, url=VOICE, fallback_url="http://app.test/fallback")
    await switch.ended("alice")
    assert switch.app.trace == [f"POST {VOICE}", "POST http://app.test/fallback"]
    fallback = switch.app.requests[1].params
    assert (fallback["ErrorCode"], fallback["ErrorUrl"]) == ("13338", VOICE)
    assert [(log, code) for log, code, _, _ in _notes(switch, "alice")] == [(ERROR, 13338)]
    assert switch.pool.trace == ["dial alice", "play alice say-sorry.wav", "hangup alice 200"]


async def test_gather_speech_alone_takes_no_digits_and_goes_on_after_its_timeout(switch: FakeSwitch) -> None:
    loop = asyncio.get_running_loop()
    switch.number("+15550100", voice_url=VOICE)
    switch.app.documents[VOICE] = (f"<Response><Gather input='speech' timeout='3' action='{ACTION}'>"
                                   "<Say>Say something</Say></Gather><Say>Goodbye</Say></Response>")
    start = loop.time()
    await switch.call_in("caller", script=press("1#", after=0.5))
    await switch.ended("caller")
    assert switch.pool.trace == ["ring caller", "answer caller", "play caller say-say-something.wav",
                                 "play caller say-goodbye.wav", "hangup caller 200"]
    assert switch.app.trace == [f"POST {VOICE}"]  # the keys were not input: no action request
    assert loop.time() - start == 1 + 3 + 1 + 1  # prompt (not cut by the keys), timeout, goodbye, settling
    assert [(log, code) for log, code, _, _ in _notes(switch, "caller")] == [(WARNING, 12200)]


async def test_gather_dtmf_speech_takes_digits(switch: FakeSwitch) -> None:
    switch.number("+15550100", voice_url=VOICE)
    switch.app.documents[VOICE] = (f"<Response><Gather input='dtmf speech' numDigits='1' action='{ACTION}'>"
                                   "<Say loop='3'>Say or press</Say></Gather></Response>")
    switch.app.documents[ACTION] = "<Response><Say>Thanks</Say></Response>"
    await switch.call_in("caller", script=press("4", after=0.5))
    await switch.ended("caller")
    assert switch.pool.trace == ["ring caller", "answer caller", "play caller say-say-or-press.wav",
                                 "stop_play say-say-or-press.wav", "play caller say-thanks.wav", "hangup caller 200"]
    assert [r.params.get("Digits") for r in switch.app.requests] == [None, "4"]
    # the fake switch has no recognizer: the digits are gathered and the caller's speech is not heard, said once
    assert [n[2] for n in _notes(switch, "caller")] == [
        "<Gather> speech input: no recognizer is configured; speech is not heard"]
