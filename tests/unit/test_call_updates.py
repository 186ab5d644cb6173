"""REST updates of a live call in the engine, with Twilio's rules (www.twilio.com/docs/api/rest/change-call-state):
`canceled` hangs up queued or ringing calls "but not affect calls already in progress"; `completed` hangs up either
way; the call returned shows where the hang-up leads; a StatusCallback changed mid-call goes on numbering the
call's callbacks; a live call's record cannot be deleted (Twilio's 20009)."""

from __future__ import annotations

import asyncio

import pytest

from switch.core.errors import InvalidState, Problem
from switch.core.model import CallbackEvent
from switch.core.service import CallUpdate
from switch.core.status import CallStatus
from tests.unit.fakes import FakeSwitch, answer, hang_up, no_answer, virtual_time

pytestmark = virtual_time

ALICE = "sip:alice@phone.test"
FIRST = "http://app.test/status"
SECOND = "http://app.test/status-2"


async def test_canceled_leaves_an_answered_call_alone(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", answer(after=1) + hang_up(after=10))
    call = await switch.call_out(ALICE)
    await asyncio.sleep(3)
    updated = await switch.calls.update_call(call.sid, CallUpdate(status=CallStatus.CANCELED))
    assert updated.status == "in-progress" and updated.end_time is None
    ended = await switch.ended("alice")
    assert switch.pool.trace == ["dial alice"]  # no hang-up was sent: the far end's BYE ended it
    assert switch.history("alice") == ["initiated", "ringing", "in-progress", "completed"]
    assert ended.duration == 10


async def test_canceled_with_a_new_url_on_an_answered_call_still_redirects(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", answer(after=1) + hang_up(after=10))
    call = await switch.call_out(ALICE)
    redirected: list[str | None] = []
    switch.calls.redirect_hook = lambda c: redirected.append(c.url)
    await asyncio.sleep(3)
    await switch.calls.update_call(call.sid, CallUpdate(status=CallStatus.CANCELED, url="http://app.test/next"))
    assert redirected == ["http://app.test/next"]
    await switch.ended("alice")
    assert switch.pool.trace == ["dial alice"]


async def test_canceled_while_ringing_answers_canceled(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", no_answer())
    call = await switch.call_out(ALICE)
    await asyncio.sleep(3)
    updated = await switch.calls.update_call(call.sid, CallUpdate(status=CallStatus.CANCELED))
    assert updated.status == "canceled"  # what the CANCEL on its way leads to
    live = switch.calls.get_call(call.sid)
    assert live is not None and live.status == "ringing"  # until the far end's 487 comes back
    await switch.ended("alice")
    assert switch.pool.trace == ["dial alice", "hangup alice 487"]
    assert switch.history("alice") == ["initiated", "ringing", "canceled"]


@pytest.mark.parametrize(("script", "shown", "history", "trace"), [
    (answer(after=1), "completed", ["initiated", "ringing", "in-progress", "completed"], "hangup alice 200"),
    (no_answer(), "canceled", ["initiated", "ringing", "canceled"], "hangup alice 487"),
], ids=["answered", "ringing"])
async def test_completed_answers_the_status_the_call_ends_with(
        switch: FakeSwitch, script: object, shown: str, history: list[str], trace: str) -> None:
    switch.pool.far_end("alice", script)  # type: ignore[arg-type]
    call = await switch.call_out(ALICE)
    await asyncio.sleep(3)
    updated = await switch.calls.update_call(call.sid, CallUpdate(status=CallStatus.COMPLETED))
    assert updated.status == shown
    ended = await switch.ended("alice")
    assert ended.status == shown
    assert switch.history("alice") == history
    assert switch.pool.trace == ["dial alice", trace]


async def test_a_new_status_callback_goes_on_numbering_the_calls_callbacks(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", answer(after=2) + hang_up(after=5))
    call = await switch.call_out(ALICE, status_callback=FIRST, status_callback_events=frozenset(CallbackEvent))
    await asyncio.sleep(3)
    await switch.calls.update_call(call.sid, CallUpdate(status_callback=SECOND))
    await switch.ended("alice")
    first = [(s["CallStatus"], s["SequenceNumber"]) for s in switch.webhooks.to(FIRST)]
    second = [(s["CallStatus"], s["SequenceNumber"]) for s in switch.webhooks.to(SECOND)]
    assert first == [("initiated", "0"), ("ringing", "1"), ("in-progress", "2")]
    assert second == [("completed", "3")]


async def test_recording_callbacks_do_not_count_in_the_sequence(switch: FakeSwitch) -> None:
    """SequenceNumber numbers status callbacks only: other webhooks about the call to the same URL don't count."""
    switch.pool.far_end("alice", answer(after=2) + hang_up(after=5))
    call = await switch.call_out(ALICE, status_callback=FIRST, status_callback_events=frozenset(CallbackEvent))
    await asyncio.sleep(1)
    switch.webhooks.send(call.sid, FIRST, "POST", [("RecordingStatus", "in-progress")], event="recording:RE1:x")
    await switch.ended("alice")
    sequence = [s.get("SequenceNumber") for s in switch.webhooks.to(FIRST)]
    assert sequence == ["0", "1", None, "2", "3"]


async def test_a_live_call_cannot_be_deleted(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", answer(after=1) + hang_up(after=2))
    call = await switch.call_out(ALICE)
    with pytest.raises(InvalidState) as excinfo:
        switch.calls.delete_call(call.sid)
    assert excinfo.value.problem is Problem.NOT_COMPLETE
    await switch.ended("alice")
    switch.calls.delete_call(call.sid)
    assert switch.calls.get_call(call.sid) is None
