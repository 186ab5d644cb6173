"""`<Redirect>`, `<Hangup>` and `<Reject>`: what the call engine is told, and that nothing runs after them."""

from __future__ import annotations

import pytest

from tests.unit.fakes import FakeSwitch, answer, virtual_time

pytestmark = virtual_time

VOICE = "http://app.test/voice"


async def _inbound(switch: FakeSwitch, twiml: str) -> list[str]:
    switch.number("+15550100", voice_url=VOICE)
    switch.app.documents[VOICE] = twiml
    await switch.call_in("caller")
    await switch.ended("caller")
    return switch.pool.trace


@pytest.mark.parametrize(("reason", "code", "status"), [("busy", 486, "busy"), ("rejected", 603, "failed")])
async def test_reject_refuses_the_unanswered_call(switch: FakeSwitch, reason: str, code: int, status: str) -> None:
    trace = await _inbound(switch, f"<Response><Reject reason='{reason}'/><Say>Never</Say></Response>")
    assert trace == ["ring caller", f"hangup caller {code}"]
    assert switch.history("caller") == [status]
    call = switch.call("caller")
    assert (call.answer_time, call.duration, call.sip_response_code) == (None, 0, code)


async def test_reject_defaults_to_rejected(switch: FakeSwitch) -> None:
    trace = await _inbound(switch, "<Response><Reject/></Response>")
    assert trace == ["ring caller", "hangup caller 603"]


async def test_reject_on_an_answered_call_hangs_up(switch: FakeSwitch) -> None:
    trace = await _inbound(switch, "<Response><Say>Hi</Say><Reject reason='busy'/><Say>Never</Say></Response>")
    assert trace == ["ring caller", "answer caller", "play caller say-hi.wav", "hangup caller 200"]
    assert switch.history("caller") == ["in-progress", "completed"]


async def test_hangup_ends_the_call_and_the_app(switch: FakeSwitch) -> None:
    trace = await _inbound(switch, "<Response><Say>Bye</Say><Hangup/><Say>Never</Say></Response>")
    assert trace == ["ring caller", "answer caller", "play caller say-bye.wav", "hangup caller 200"]
    assert switch.history("caller") == ["in-progress", "completed"]
    assert switch.app.trace == [f"POST {VOICE}"]


async def test_redirect_loads_the_next_document_and_skips_the_rest(switch: FakeSwitch) -> None:
    switch.app.documents["http://app.test/other"] = "<Response><Say>Other</Say></Response>"
    switch.pool.far_end("alice", answer(after=1))
    switch.app.documents[VOICE] = "<Response><Redirect method='GET'>/other</Redirect><Say>Never</Say></Response>"
    await switch.call_out("sip:alice@phone.test", url=VOICE)
    await switch.ended("alice")
    assert switch.app.trace == [f"POST {VOICE}", "GET http://app.test/other"]
    assert switch.pool.trace == ["dial alice", "play alice say-other.wav", "hangup alice 200"]
    assert switch.app.requests[1].params["CallStatus"] == "in-progress"
