"""A worker that dies: each of its calls ends `failed` exactly once, with one notification that says why and what
its far end was sent (the pool's reaper sends it: tests/unit/test_reaper.py, tests/e2e/test_worker_death_e2e.py)."""

from __future__ import annotations

import asyncio

from switch.core.calls import WORKER_LOST
from tests.unit.fakes import FakeSwitch, answer, no_answer, virtual_time

pytestmark = virtual_time


async def test_every_call_of_a_dead_worker_fails_with_a_notification(switch: FakeSwitch) -> None:
    switch.number("+15550100", voice_url="http://app.test/pause")
    switch.app.documents["http://app.test/pause"] = "<Response><Pause length='60'/></Response>"
    switch.pool.far_end("alice", answer(after=1))
    switch.pool.far_end("bob", no_answer())
    await switch.call_out("sip:alice@phone.test", twiml="<Response><Pause length='60'/></Response>")
    await switch.call_out("sip:bob@phone.test", twiml="<Response><Pause length='60'/></Response>")
    await switch.call_in("carol")
    await asyncio.sleep(5)
    switch.calls.on_worker_lost(0, "killed by signal 9 (SIGKILL)")  # what the pool says once the process is gone
    for alias in ("alice", "bob", "carol"):
        await switch.ended(alias)
    assert switch.history("alice") == ["initiated", "ringing", "in-progress", "failed"]
    assert switch.history("bob") == ["initiated", "ringing", "failed"]
    assert switch.history("carol") == ["in-progress", "failed"]  # created ringing
    why = "The media worker that carried this call stopped: killed by signal 9 (SIGKILL). The call failed; "
    assert switch.notes("alice") == [(WORKER_LOST, why + "its far end was sent BYE.")]
    assert switch.notes("bob") == [(WORKER_LOST, why + "its far end was sent CANCEL.")]
    assert switch.notes("carol") == [(WORKER_LOST, why + "its far end was sent BYE.")]
    assert "media worker 0 exited during the call (killed by signal 9" in (switch.call("alice").error or "")
