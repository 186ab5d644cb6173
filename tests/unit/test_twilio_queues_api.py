"""Twilio's Queues and Members routes over an in-memory `QueueService`, driven by the official `twilio` client for
every operation, plus raw HTTP for field names and error codes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from twilio.base.exceptions import TwilioRestException

from tests.unit.callcenter_fakes import ACCOUNT_SID, Harness

QUEUE_FIELDS = {"date_updated", "current_size", "friendly_name", "uri", "account_sid", "average_wait_time", "sid",
                "date_created", "max_size"}
MEMBER_FIELDS = {"call_sid", "date_enqueued", "position", "uri", "wait_time", "queue_sid"}
URL = "https://app.example/agent.xml"


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = await Harness().start()
    yield harness
    await harness.close()


async def test_queue_create_fetch_list_update_delete(h: Harness) -> None:
    queues = h.client.queues
    support = await h.call(lambda: queues.create(friendly_name="support"))
    assert support.sid.startswith("QU") and support.max_size == 1000  # Twilio's default
    assert (support.current_size, support.average_wait_time) == (0, 0)
    sales = await h.call(lambda: queues.create(friendly_name="sales", max_size=5000))
    assert sales.max_size == 5000
    listed = await h.call(lambda: queues.list())
    assert [q.sid for q in listed] == [support.sid, sales.sid]  # oldest first
    paged = await h.call(lambda: queues.list(page_size=1))
    assert [q.sid for q in paged] == [support.sid, sales.sid]
    fetched = await h.call(lambda: queues(support.sid).fetch())
    assert (fetched.friendly_name, fetched.max_size) == ("support", 1000)
    updated = await h.call(lambda: queues(support.sid).update(friendly_name="help", max_size=20))
    assert (updated.friendly_name, updated.max_size) == ("help", 20)
    resized = await h.call(lambda: queues(support.sid).update(max_size=30))
    assert (resized.friendly_name, resized.max_size) == ("help", 30)
    assert await h.call(lambda: queues(sales.sid).delete()) is True
    assert sales.sid not in h.queues.queues
    await h.error("GET", f"Queues/{sales.sid}.json", (404, 20404))


async def test_queue_json_fields(h: Harness) -> None:
    status, body = await h.raw("POST", "Queues.json", data={"FriendlyName": "support", "MaxSize": "7"})
    assert status == 201 and set(body) == QUEUE_FIELDS
    assert body["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Queues/{body['sid']}.json"
    assert body["account_sid"] == ACCOUNT_SID and body["max_size"] == 7
    assert body["date_created"].endswith("+0000")
    h.queues.enqueue(body["sid"], wait_time=10)
    h.queues.enqueue(body["sid"], wait_time=30)
    status, body = await h.raw("GET", f"Queues/{body['sid']}.json")
    assert (status, body["current_size"], body["average_wait_time"]) == (200, 2, 20)
    status, page = await h.raw("GET", "Queues.json")
    assert status == 200 and [q["sid"] for q in page["queues"]] == [body["sid"]]


@pytest.mark.parametrize("form", [
    {},
    {"FriendlyName": "   "},
    {"FriendlyName": "x" * 65},
    {"FriendlyName": "q", "MaxSize": "0"},
    {"FriendlyName": "q", "MaxSize": "5001"},
    {"FriendlyName": "q", "MaxSize": "ten"},
])  # fmt: skip
async def test_queue_create_rejects_bad_parameters(h: Harness, form: dict[str, str]) -> None:
    await h.error("POST", "Queues.json", (400, 20001), data=form)
    assert h.queues.queues == {}


async def test_queue_create_errors_through_the_client(h: Harness) -> None:
    with pytest.raises(TwilioRestException) as info:
        await h.call(lambda: h.client.queues.create(friendly_name="q" * 65))
    assert (info.value.status, info.value.code) == (400, 20001)
    queue = await h.call(lambda: h.client.queues.create(friendly_name="ok"))
    await h.error("POST", f"Queues/{queue.sid}.json", (400, 20001), data={"MaxSize": "6000"})
    await h.error("POST", f"Queues/{queue.sid}.json", (400, 20001), data={"FriendlyName": "y" * 65})


async def test_delete_a_queue_with_callers_is_a_conflict(h: Harness) -> None:
    queue = await h.call(lambda: h.client.queues.create(friendly_name="busy"))
    member = h.queues.enqueue(queue.sid)
    with pytest.raises(TwilioRestException) as info:
        await h.call(lambda: h.client.queues(queue.sid).delete())
    assert info.value.status == 409
    await h.error("DELETE", f"Queues/{queue.sid}.json", (409, 20001))
    await h.call(lambda: h.client.queues(queue.sid).members(member.call_sid).update(url=URL))
    assert await h.call(lambda: h.client.queues(queue.sid).delete()) is True


async def test_unknown_queue_and_member_are_404(h: Harness) -> None:
    missing = "QU" + "0" * 32
    with pytest.raises(TwilioRestException) as info:
        await h.call(lambda: h.client.queues(missing).fetch())
    assert (info.value.status, info.value.code) == (404, 20404)
    for method, path in (("GET", f"Queues/{missing}.json"), ("POST", f"Queues/{missing}.json"),
                         ("DELETE", f"Queues/{missing}.json"), ("GET", f"Queues/{missing}/Members.json"),
                         ("GET", f"Queues/{missing}/Members/Front.json")):
        await h.error(method, path, (404, 20404))
    queue = await h.call(lambda: h.client.queues.create(friendly_name="empty"))
    await h.error("GET", f"Queues/{queue.sid}/Members/Front.json", (404, 20404))
    await h.error("POST", f"Queues/{queue.sid}/Members/CA{'1' * 32}.json", (404, 20404), data={"Url": URL})
    status, body = await h.raw("GET", f"Queues/{queue.sid}.json", auth=False)
    assert (status, body["code"]) == (401, 20003)


async def test_members_list_fetch_front_and_dequeue(h: Harness) -> None:
    queue = await h.call(lambda: h.client.queues.create(friendly_name="support"))
    first, second, third = (h.queues.enqueue(queue.sid, wait_time=w) for w in (30, 20, 10))
    members = h.client.queues(queue.sid).members
    listed = await h.call(lambda: members.list())
    assert [(m.call_sid, m.position) for m in listed] == [(first.call_sid, 1), (second.call_sid, 2),
                                                          (third.call_sid, 3)]
    paged = await h.call(lambda: members.list(page_size=2))
    assert [m.call_sid for m in paged] == [first.call_sid, second.call_sid, third.call_sid]
    status, body = await h.raw("GET", f"Queues/{queue.sid}/Members.json")
    assert status == 200 and set(body["queue_members"][0]) == MEMBER_FIELDS
    assert body["queue_members"][0]["uri"] == \
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Queues/{queue.sid}/Members/{first.call_sid}.json"
    assert body["queue_members"][0]["wait_time"] == 30 and body["queue_members"][0]["queue_sid"] == queue.sid
    front = await h.call(lambda: members("Front").fetch())
    assert (front.call_sid, front.position, front.wait_time) == (first.call_sid, 1, 30)
    by_sid = await h.call(lambda: members(second.call_sid).fetch())
    assert (by_sid.call_sid, by_sid.position) == (second.call_sid, 2)
    dequeued = await h.call(lambda: members("Front").update(url=URL, method="GET"))
    assert dequeued.call_sid == first.call_sid
    assert h.queues.dequeued == [(queue.sid, first.call_sid, URL, "GET")]
    await h.call(lambda: members(third.call_sid).update(url=URL))
    assert h.queues.dequeued[-1] == (queue.sid, third.call_sid, URL, "POST")  # Method defaults to POST
    left = await h.call(lambda: members.list())
    assert [(m.call_sid, m.position) for m in left] == [(second.call_sid, 1)]
    await h.error("POST", f"Queues/{queue.sid}/Members/Front.json", (400, 21205))
    await h.error("POST", f"Queues/{queue.sid}/Members/Front.json", (400, 21205), data={"Url": "agent.xml"})
    await h.error("POST", f"Queues/{queue.sid}/Members/Front.json", (400, 21209),
                 data={"Url": URL, "Method": "PATCH"})
    assert len(h.queues.dequeued) == 2
