"""`<Connect><Conversation>` on a scripted pool: a caller routed to a pool worker who answers (session-success),
and a caller refused because no conversation exists and autocreation is off (no-existing-conversation)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switch.core.config import ConversationServiceConfig
from tests.unit.fakes import FakeSwitch, answer, hang_up, no_answer, virtual_time

pytestmark = virtual_time

SERVICE = "IS" + "1" * 32
VOICE = "http://app.test/voice"
AFTER = "http://app.test/after"


@pytest.fixture
async def switch(tmp_path: Path) -> AsyncIterator[FakeSwitch]:
    service = ConversationServiceConfig(sid=SERVICE, pool=("agent",), workers={"agent": "sip:agent@agents.test"})
    fake = await FakeSwitch(tmp_path, conversation_services=[service]).start()
    fake.number("+15550100", voice_url=VOICE)
    fake.app.documents[AFTER] = "<Response><Say>After</Say></Response>"
    yield fake
    await fake.close()


def _told(switch: FakeSwitch) -> dict[str, str]:
    [request] = [r for r in switch.app.requests if r.url == AFTER]
    return {k: v for k, v in request.params.items()
            if k in ("Result", "WorkerInitiated", "ConversationSid", "DialCallStatus", "DialCallSid")}


async def test_a_caller_is_connected_to_the_worker_routing_assigned(switch: FakeSwitch) -> None:
    switch.app.documents[VOICE] = (f"<Response><Connect action='/after'><Conversation serviceInstanceSid='{SERVICE}'/>"
                                   "</Connect></Response>")
    switch.pool.far_end("agent", answer(after=2) + hang_up(after=30))
    await switch.call_in("caller")
    await switch.ended("caller")
    assert switch.pool.trace == ["ring caller", "dial agent", "answer caller", "play caller ringback-us.wav loop",
                                 "bridge caller agent", "stop_play ringback-us.wav", "unbridge caller",
                                 "play caller say-after.wav", "hangup caller 200"]
    told = _told(switch)
    conversation = told.pop("ConversationSid")
    assert conversation.startswith("CH")
    assert told == {"Result": "session-success", "WorkerInitiated": "false", "DialCallStatus": "completed",
                    "DialCallSid": switch.sid("agent")}
    [customer] = [p for p in switch.conversations.participants(conversation) if not p.is_worker]
    assert customer.address == "+15551230000"
    assert switch.history("agent") == ["initiated", "ringing", "in-progress", "completed"]


async def test_an_unanswered_worker_is_dialed_call_incomplete(switch: FakeSwitch) -> None:
    switch.app.documents[VOICE] = (
        f"<Response><Connect action='/after'><Conversation serviceInstanceSid='{SERVICE}' inboundTimeout='10'/>"
        "</Connect></Response>")
    switch.pool.far_end("agent", no_answer())
    await switch.call_in("caller")
    await switch.ended("caller")
    assert switch.pool.trace == ["ring caller", "dial agent", "answer caller", "play caller ringback-us.wav loop",
                                 "hangup agent 487", "stop_play ringback-us.wav", "play caller say-after.wav",
                                 "hangup caller 200"]
    told = _told(switch)
    assert (told["Result"], told["DialCallStatus"]) == ("dialed-call-incomplete", "no-answer")


async def test_without_a_conversation_and_autocreation_the_call_is_refused(switch: FakeSwitch) -> None:
    switch.app.documents[VOICE] = (
        f"<Response><Connect action='/after'><Conversation serviceInstanceSid='{SERVICE}' "
        "inboundAutocreation='false'/></Connect><Say>Never</Say></Response>")
    await switch.call_in("caller")
    await switch.ended("caller")
    await switch.settle()
    assert switch.pool.trace == ["ring caller", "hangup caller 603"]
    assert switch.history("caller") == ["failed"]
    assert _told(switch) == {"Result": "no-existing-conversation", "WorkerInitiated": "false"}
    assert switch.app.trace == [f"POST {VOICE}", f"POST {AFTER}"]  # told detached; its TwiML does not run
