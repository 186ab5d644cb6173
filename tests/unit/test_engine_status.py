"""The call engine's one status path, driven by a scripted worker pool: every status in order, exactly one
terminal status, the SIP code and the reason reading it (ring timeout, our CANCEL, worker lost)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from switch.core.errors import CapacityError
from switch.core.model import CallbackEvent
from switch.core.service import CallUpdate
from switch.core.status import CallStatus
from switch.workers import protocol as p
from tests.unit.fakes import (
    FakeSwitch,
    Script,
    answer,
    busy,
    decline,
    dial_fails,
    early_media,
    hang_up,
    no_answer,
    ring,
    virtual_time,
)

pytestmark = virtual_time

ALICE = "sip:alice@phone.test"


async def test_answered_call_ends_completed_when_the_far_end_hangs_up(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", answer(after=2) + hang_up(after=10))
    created = await switch.call_out(ALICE)
    assert created.status == "queued"
    call = await switch.ended("alice")
    assert switch.pool.trace == ["dial alice"]
    assert switch.history("alice") == ["initiated", "ringing", "in-progress", "completed"]
    assert (call.duration, call.sip_response_code) == (10, 200)
    assert call.start_time is not None and call.answer_time is not None and call.end_time is not None
    assert (call.answer_time - call.start_time).total_seconds() == 2
    assert (call.end_time - call.answer_time).total_seconds() == 10


@pytest.mark.parametrize(("script", "status", "code"), [
    (busy(after=1), "busy", 486),
    (decline(code=603), "failed", 603),
    (decline(code=480, reason="Temporarily Unavailable"), "no-answer", 480),
], ids=["busy", "declined", "unavailable"])
async def test_final_response_before_answer(switch: FakeSwitch, script: Script, status: str, code: int) -> None:
    switch.pool.far_end("alice", script)
    await switch.call_out(ALICE)
    call = await switch.ended("alice")
    assert switch.pool.trace == ["dial alice"]
    assert switch.history("alice") == ["initiated", "ringing", status]
    assert (call.sip_response_code, call.duration, call.answer_time) == (code, 0, None)


async def test_ring_timeout_cancels_and_ends_no_answer(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", no_answer())
    loop = asyncio.get_running_loop()
    started = loop.time()
    await switch.call_out(ALICE, timeout=7)
    call = await switch.ended("alice")
    assert switch.pool.trace == ["dial alice", "hangup alice 487"]
    assert switch.history("alice") == ["initiated", "ringing", "no-answer"]
    assert call.sip_response_code == 487
    assert call.end_time is not None and call.start_time is not None
    assert (call.end_time - call.start_time).total_seconds() == 7
    assert loop.time() - started == 7 + 1  # + ended()'s settling second


async def test_early_media_is_ringing_once(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", early_media() + ring(after=1) + answer(after=1) + hang_up(after=3))
    await switch.call_out(ALICE)
    await switch.ended("alice")
    assert switch.history("alice") == ["initiated", "ringing", "in-progress", "completed"]
    events = [(c.status, c.sip_code, c.detail) for c in switch.changes]
    assert events == [("initiated", None, ""), ("ringing", 183, "early media"), ("in-progress", 200, ""),
                      ("completed", 200, "")]


async def test_rest_cancel_while_ringing_is_canceled(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", no_answer())
    call = await switch.call_out(ALICE)
    await asyncio.sleep(3)
    updated = await switch.calls.update_call(call.sid, CallUpdate(status=CallStatus.CANCELED))
    assert updated.status == "canceled"  # where the CANCEL on its way leads; its 487 ends the call
    ended = await switch.ended("alice")
    assert switch.pool.trace == ["dial alice", "hangup alice 487"]
    assert switch.history("alice") == ["initiated", "ringing", "canceled"]
    assert (ended.sip_response_code, ended.end_reason) == (487, "canceled")


async def test_our_cancel_crossing_the_200_still_ends_canceled(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", no_answer())
    call = await switch.call_out(ALICE)
    await asyncio.sleep(1)
    await switch.calls.update_call(call.sid, CallUpdate(status=CallStatus.CANCELED))
    # the far end's 200 arrives before the worker reports the CANCEL's outcome
    switch.calls.on_worker_event(0, p.Answered(leg=call.sid, t=1.0))
    await switch.ended("alice")
    assert switch.history("alice") == ["initiated", "ringing", "canceled"]


async def test_rest_completed_hangs_up_an_answered_call(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", answer(after=1))
    call = await switch.call_out(ALICE)
    await asyncio.sleep(5)
    await switch.calls.update_call(call.sid, CallUpdate(status=CallStatus.COMPLETED))
    ended = await switch.ended("alice")
    assert switch.pool.trace == ["dial alice", "hangup alice 200"]
    assert switch.history("alice") == ["initiated", "ringing", "in-progress", "completed"]
    assert (ended.duration, ended.end_reason) == (4, "hangup")


async def test_rest_completed_before_the_answer_cancels(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", no_answer())
    call = await switch.call_out(ALICE)
    await asyncio.sleep(1)
    await switch.calls.update_call(call.sid, CallUpdate(status=CallStatus.COMPLETED))
    await switch.ended("alice")
    assert switch.pool.trace == ["dial alice", "hangup alice 487"]
    assert switch.history("alice") == ["initiated", "ringing", "canceled"]


async def test_time_limit_hangs_up(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", answer(after=1))
    await switch.call_out(ALICE, time_limit=30)
    call = await switch.ended("alice")
    assert switch.pool.trace == ["dial alice", "hangup alice 200"]
    assert switch.history("alice") == ["initiated", "ringing", "in-progress", "completed"]
    assert call.duration == 30


async def test_worker_lost_fails_every_call_it_held(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", answer(after=1))
    switch.pool.far_end("bob", no_answer())
    await switch.call_out(ALICE)
    await switch.call_out("sip:bob@phone.test")
    await asyncio.sleep(5)
    switch.pool.kill(0)
    alice, bob = await switch.ended("alice"), await switch.ended("bob")
    assert switch.history("alice") == ["initiated", "ringing", "in-progress", "failed"]
    assert switch.history("bob") == ["initiated", "ringing", "failed"]
    assert alice.error is not None and "media worker 0 exited" in alice.error
    assert (alice.duration, bob.duration) == (4, 0)
    assert switch.pool.trace == ["dial alice", "dial bob"]


async def test_a_dial_the_worker_refuses_fails(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", dial_fails("Invalid URI"))
    await switch.call_out(ALICE)
    call = await switch.ended("alice")
    # initiated when the Dial went to the worker (Twilio: "starts dialing"); failed when pjsua refused it
    assert switch.history("alice") == ["initiated", "failed"]
    assert call.error is not None and "Invalid URI" in call.error


async def test_a_second_end_changes_nothing(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", answer(after=1) + hang_up(after=2))
    call = await switch.call_out(ALICE)
    await switch.ended("alice")
    switch.calls.on_worker_event(0, p.Ended(leg=call.sid, code=500, reason="late", answered=True, t=9.0))
    await switch.settle()
    assert switch.history("alice") == ["initiated", "ringing", "in-progress", "completed"]
    assert switch.call("alice").sip_response_code == 200


async def test_no_free_slot_refuses_before_anything_is_recorded(tmp_path: Path) -> None:
    fake = await FakeSwitch(tmp_path, capacity=1).start()
    try:
        fake.pool.far_end("alice", no_answer())
        await fake.call_out(ALICE)
        with pytest.raises(CapacityError):
            await fake.call_out("sip:bob@phone.test")
        assert fake.pool.trace == ["dial alice"]
        assert len(fake.calls.live) == 1
    finally:
        await fake.close()


async def test_status_callbacks_follow_every_change_in_order(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", answer(after=2) + hang_up(after=3))
    await switch.call_out(ALICE, status_callback="http://app.test/status",
                          status_callback_events=frozenset(CallbackEvent))
    await switch.ended("alice")
    sent = switch.webhooks.to("http://app.test/status")
    assert [(s["CallStatus"], s["SequenceNumber"]) for s in sent] == [
        ("initiated", "0"), ("ringing", "1"), ("in-progress", "2"), ("completed", "3")]
    assert sent[-1]["CallDuration"] == "3"


async def test_send_digits_after_the_answer(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", answer(after=1) + hang_up(after=10))
    await switch.call_out(ALICE, send_digits="12w3")
    await switch.ended("alice")
    assert switch.pool.trace == ["dial alice", "dtmf alice 12", "dtmf alice 3"]
    assert switch.pool.leg("alice").digits_heard == ["12", "3"]


async def test_inbound_call_without_an_app_is_answered_and_held(switch: FakeSwitch) -> None:
    switch.number("+15550100", voice_url=None)
    await switch.call_in("caller", script=hang_up(after=20))
    call = await switch.ended("caller")
    assert switch.pool.trace == ["ring caller", "answer caller"]
    assert switch.history("caller") == ["in-progress", "completed"]
    assert (call.direction, call.to, call.from_, call.duration) == ("inbound", "+15550100", "+15551230000", 20)


async def test_inbound_call_to_an_unknown_number_is_refused(switch: FakeSwitch) -> None:
    await switch.call_in("caller", to="+15559999")
    await switch.settle()
    assert switch.pool.trace == ["hangup caller 404"]
    assert switch.calls.live == {}
    assert next(e for _, e in switch.pool.events if isinstance(e, p.Ended)).code == 404


async def test_shutdown_hangs_up_every_live_call(switch: FakeSwitch) -> None:
    switch.pool.far_end("alice", answer(after=1))
    switch.pool.far_end("bob", no_answer())
    await switch.call_out(ALICE)
    await switch.call_out("sip:bob@phone.test")
    await asyncio.sleep(2)
    await switch.calls.shutdown()
    assert switch.pool.trace == ["dial alice", "dial bob", "hangup alice 503", "hangup bob 503"]
    await switch.settle()
    assert switch.history("alice")[-1] == "completed"
    assert switch.history("bob")[-1] == "failed"



async def test_hold_is_a_state_of_the_leg_record(switch: FakeSwitch) -> None:
    """The far end's hold and unhold reach the one leg record (and the call's events); the call goes on."""
    switch.pool.far_end("alice", answer(after=1) + hang_up(after=10))
    await switch.call_out(ALICE)
    await switch.settle(2)
    sid = switch.sid("alice")
    leg = switch.calls.legs[sid]
    assert leg.answered and not leg.held and leg.media_ready.is_set()
    fake = switch.pool.leg("alice")
    switch.pool.emit(fake.worker, p.HoldChanged(leg=fake.leg_id, held=True, t=0.0))
    await switch.settle(1)
    assert leg.held
    switch.pool.emit(fake.worker, p.HoldChanged(leg=fake.leg_id, held=False, t=0.0))
    await switch.settle(1)
    assert not leg.held
    call = await switch.ended("alice")
    assert switch.history("alice") == ["initiated", "ringing", "in-progress", "completed"]
    assert sid not in switch.calls.legs and leg.gone
    details = [e.detail for e in switch.calls.store.events(call.sid) if e.kind == "sip"]
    assert [d for d in details if d in ("held by the far end", "taken off hold")] == ["held by the far end",
                                                                                 "taken off hold"]
