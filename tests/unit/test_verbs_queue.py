"""`<Enqueue>`, `<Leave>` and `<Dial><Queue>` on a scripted pool (virtual time): the wait loop's requests and
parameters, an agent taking the front caller (the Queue url first, then the bridge), both actions, `<Leave>`, a
full queue, a caller hanging up while queued, and an agent giving up on an empty queue."""

from __future__ import annotations

from switch.core.queues import Queues
from tests.unit.fakes import FakeSwitch, hang_up, virtual_time
from tests.unit.fakes.switch import ACCOUNT

pytestmark = virtual_time

CALLER, AGENT = "http://app.test/caller", "http://app.test/agent"
WAIT, ABOUT = "http://app.test/wait", "http://app.test/about"
ENQUEUED, DIALED, AFTER = "http://app.test/enqueued", "http://app.test/dialed", "http://app.test/after"


def _setup(switch: FakeSwitch, enqueue: str, agent: str = "") -> Queues:
    queues = Queues(switch.store, ACCOUNT, switch.calls)
    switch.voice.queues = queues
    switch.number("+15550100", voice_url=CALLER)
    switch.number("+15550200", voice_url=AGENT)
    switch.app.documents[CALLER] = f"<Response>{enqueue}<Redirect>{AFTER}</Redirect></Response>"
    switch.app.documents[AGENT] = f"<Response>{agent}</Response>"
    switch.app.documents[WAIT] = "<Response><Pause length='2'/></Response>"
    switch.app.documents[ABOUT] = "<Response><Pause length='1'/></Response>"
    for url in (ENQUEUED, DIALED, AFTER):
        switch.app.documents[url] = "<Response><Hangup/></Response>"
    return queues


def _params(switch: FakeSwitch, url: str, alias: str) -> list[dict[str, str]]:
    sid = switch.sid(alias)
    return [r.params for r in switch.app.requests if r.url == url and r.params.get("CallSid") == sid]


async def test_an_agent_takes_the_first_caller(switch: FakeSwitch) -> None:
    queues = _setup(switch, f"<Enqueue waitUrl='{WAIT}' action='{ENQUEUED}'>support</Enqueue>",
                    f"<Dial action='{DIALED}'><Queue url='{ABOUT}'>support</Queue></Dial>")
    await switch.call_in("first", "+15550100")
    await switch.settle(3)
    await switch.call_in("second", "+15550100", script=hang_up(after=20))
    await switch.settle(3)
    await switch.call_in("agent", "+15550200", script=hang_up(after=8))
    await switch.ended("agent")
    await switch.ended("first")
    await switch.ended("second")
    first, second = _params(switch, WAIT, "first"), _params(switch, WAIT, "second")
    assert first[0]["QueuePosition"] == "1" and first[0]["CurrentQueueSize"] == "1"
    assert second[0]["QueuePosition"] == "2" and second[0]["CurrentQueueSize"] == "2"
    assert second[-1]["QueuePosition"] == "1"  # the first was taken
    assert first[0]["MaxQueueSize"] == "1000" and first[0]["QueueSid"].startswith("QU")
    queue_sid = first[0]["QueueSid"]
    [about] = _params(switch, ABOUT, "first")
    assert (about["QueueSid"], about["DequeingCallSid"]) == (queue_sid, switch.sid("agent"))
    [enqueued] = _params(switch, ENQUEUED, "first")
    assert enqueued["QueueResult"] == "bridged" and enqueued["QueueSid"] == queue_sid
    [dialed] = _params(switch, DIALED, "agent")
    assert (dialed["DialCallStatus"], dialed["DialCallSid"], dialed["QueueSid"]) == (
        "completed", switch.sid("first"), queue_sid)
    [gone] = _params(switch, ENQUEUED, "second")
    assert gone["QueueResult"] == "hangup"
    assert "bridge agent first" in switch.pool.trace or "bridge first agent" in switch.pool.trace
    assert queues.queue(queue_sid).current_size == 0


async def test_leave_full_and_default_music(switch: FakeSwitch) -> None:
    queues = _setup(switch, f"<Enqueue waitUrl='{WAIT}'>line</Enqueue>")
    queues.create_queue("line", max_size=1)
    switch.app.documents[WAIT] = "<Response><Pause length='3'/><Leave/></Response>"
    await switch.call_in("leaver", "+15550100")
    await switch.settle(0.5)
    switch.app.documents[CALLER] = f"<Response><Enqueue action='{ENQUEUED}'>line</Enqueue></Response>"
    await switch.call_in("refused", "+15550100")
    await switch.ended("refused")
    await switch.ended("leaver")
    assert _params(switch, AFTER, "leaver")  # <Leave>, no action: on with the next verb
    [refused] = _params(switch, ENQUEUED, "refused")
    assert refused["QueueResult"] == "queue-full" and "QueueSid" not in refused
    switch.app.documents[CALLER] = f"<Response><Enqueue action='{ENQUEUED}'>music</Enqueue></Response>"
    await switch.call_in("music", "+15550100", script=hang_up(after=5))
    await switch.ended("music")
    [music] = _params(switch, ENQUEUED, "music")
    assert music["QueueResult"] == "hangup" and 4 <= int(music["QueueTime"]) <= 5
    assert any("hold-music.wav" in line for line in switch.pool.trace)


async def test_an_agent_gives_up_on_an_empty_queue_and_an_unknown_one(switch: FakeSwitch) -> None:
    queues = _setup(switch, "", f"<Dial action='{DIALED}' timeout='3'><Queue>empty</Queue></Dial>")
    queues.create_queue("empty")
    await switch.call_in("agent", "+15550200")
    await switch.ended("agent")
    [dialed] = _params(switch, DIALED, "agent")
    assert dialed["DialCallStatus"] == "no-answer" and "DialCallSid" not in dialed
    switch.app.documents[AGENT] = f"<Response><Dial action='{DIALED}'><Queue>nowhere</Queue></Dial></Response>"
    await switch.call_in("lost", "+15550200")
    await switch.ended("lost")
    [failed] = _params(switch, DIALED, "lost")
    assert failed["DialCallStatus"] == "failed"


async def test_a_rest_dequeue_redirects_the_caller(switch: FakeSwitch) -> None:
    queues = _setup(switch, f"<Enqueue waitUrl='{WAIT}' action='{ENQUEUED}'>desk</Enqueue>")
    elsewhere = "http://app.test/elsewhere"
    switch.app.documents[elsewhere] = "<Response><Pause length='1'/></Response>"
    await switch.call_in("caller", "+15550100")
    await switch.settle(3)
    queue = queues.queue_named("desk")
    assert queue is not None
    member = await queues.dequeue(queue.sid, "Front", elsewhere, "POST")
    assert member.call_sid == switch.sid("caller") and member.position == 1
    await switch.ended("caller")
    [told] = _params(switch, ENQUEUED, "caller")
    assert told["QueueResult"] == "redirected" and told["QueueSid"] == queue.sid
    assert _params(switch, elsewhere, "caller") and not _params(switch, AFTER, "caller")
    assert queues.queue(queue.sid).current_size == 0
