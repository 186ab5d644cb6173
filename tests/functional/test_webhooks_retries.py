"""Functional tests of the webhook dispatcher (`switch.core.webhooks`) against a recording aiohttp server: retries
with backoff after errors, connection refusals and timeouts, and what a webhook that fails for good leaves behind
(the endpoint is in webhook_endpoint.py, the fixtures in conftest.py)."""

from __future__ import annotations

import socket
from pathlib import Path

from twilio.request_validator import RequestValidator

from switch.core.model import new_sid
from switch.core.store import Store
from switch.core.webhooks import WebhookDispatcher
from tests.functional.webhook_endpoint import TOKEN, Endpoint, Hit, hook_state, status_params


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- retries and failures -----------------------------------------------------------------------


async def test_500_then_success_is_retried(endpoint: Endpoint, dispatcher: WebhookDispatcher,
                                           db_path: Path) -> None:
    async def fail_once(hit: Hit, nth: int) -> int:
        return 500 if nth == 1 else 204

    endpoint.behaviours["/status"] = fail_once
    seen: list[int | None] = []
    dispatcher.observers.append(lambda hook, status, at: seen.append(status))
    sid = new_sid("CA")
    params = status_params(sid, "completed")
    dispatcher.send(sid, endpoint.url("/status"), "POST", params)
    assert await dispatcher.flush(5)

    hits = endpoint.on("/status")
    assert len(hits) == 2
    assert hits[1].at - hits[0].at >= 0.04  # backoff
    for hit in hits:
        assert hit.form == params
        assert hit.signature is not None
        assert RequestValidator(TOKEN).validate(hit.url, dict(hit.form), hit.signature)
    assert seen == [500, 204]
    assert hook_state(db_path, sid) == [("delivered", 2, None)]


async def test_retry_keeps_later_webhooks_of_the_call_behind(endpoint: Endpoint,
                                                              dispatcher: WebhookDispatcher) -> None:
    async def fail_first_attempt(hit: Hit, nth: int) -> int:
        return 503 if dict(hit.form)["SequenceNumber"] == "0" and nth == 1 else 200

    endpoint.behaviours["/status"] = fail_first_attempt
    sid = new_sid("CA")
    for i in range(3):
        dispatcher.send(sid, endpoint.url("/status"), "POST", status_params(sid, "ringing", seq=i))
    assert await dispatcher.flush(5)
    assert [dict(h.form)["SequenceNumber"] for h in endpoint.hits] == ["0", "0", "1", "2"]


async def test_always_failing_endpoint_ends_failed(endpoint: Endpoint, dispatcher: WebhookDispatcher,
                                                   store: Store, db_path: Path) -> None:
    async def always_503(hit: Hit, nth: int) -> int:
        return 503

    endpoint.behaviours["/status"] = always_503
    sid = new_sid("CA")
    dispatcher.send(sid, endpoint.url("/status"), "POST", status_params(sid, "completed"))
    assert await dispatcher.flush(5)
    hits = endpoint.on("/status")
    assert len(hits) == 3  # retries + 1
    assert hits[1].at - hits[0].at >= 0.04
    assert hits[2].at - hits[1].at >= 0.09  # exponential
    assert hook_state(db_path, sid) == [("failed", 3, "HTTP 503")]
    assert list(store.pending_webhooks()) == []


async def test_connection_refused_is_retried_then_failed(dispatcher: WebhookDispatcher, store: Store,
                                                          db_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    dispatcher.observers.append(lambda hook, status, at: seen.append((hook.id, status)))
    sid = new_sid("CA")
    dispatcher.send(sid, f"http://127.0.0.1:{closed_port()}/status", "POST", status_params(sid, "completed"))
    assert await dispatcher.flush(5)
    [(state, attempts, error)] = hook_state(db_path, sid)
    assert (state, attempts) == ("failed", 3)
    assert error is not None and "Connect" in error
    assert [status for _, status in seen] == [None, None, None]
    assert list(store.pending_webhooks()) == []


async def test_timeout_is_retried_then_failed(endpoint: Endpoint, store: Store, db_path: Path) -> None:
    async def hang(hit: Hit, nth: int) -> int:
        await endpoint.release.wait()
        return 200

    endpoint.behaviours["/slow"] = hang
    d = WebhookDispatcher(store, TOKEN, timeout=0.2, retries=1, backoff=0.01)
    await d.start()
    try:
        sid = new_sid("CA")
        d.send(sid, endpoint.url("/slow"), "POST", status_params(sid, "completed"))
        assert await d.flush(5)
    finally:
        await d.close(1)
    assert len(endpoint.on("/slow")) == 2
    [(state, attempts, error)] = hook_state(db_path, sid)
    assert (state, attempts) == ("failed", 2)
    assert error is not None and "Timeout" in error


async def test_failed_webhook_does_not_stop_the_next_one(endpoint: Endpoint, dispatcher: WebhookDispatcher,
                                                         db_path: Path) -> None:
    async def always_500(hit: Hit, nth: int) -> int:
        return 500

    endpoint.behaviours["/bad"] = always_500
    sid = new_sid("CA")
    dispatcher.send(sid, endpoint.url("/bad"), "POST", status_params(sid, "ringing"))
    dispatcher.send(sid, endpoint.url("/good"), "POST", status_params(sid, "completed"))
    assert await dispatcher.flush(5)
    assert [h.path for h in endpoint.hits] == ["/bad"] * 3 + ["/good"]
    assert hook_state(db_path, sid) == [("failed", 3, "HTTP 500"), ("delivered", 1, None)]
