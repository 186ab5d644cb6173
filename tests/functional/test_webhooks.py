"""Functional tests of the webhook dispatcher (`switch.core.webhooks`) against a recording aiohttp server: how
webhooks are signed and encoded (POST forms, GET queries, URLs that already carry a query), and their order per
call and independence between calls.  Retries and failures are in test_webhooks_retries.py, resuming and closing
in test_webhooks_restart.py; the endpoint in webhook_endpoint.py, the fixtures in conftest.py."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from pathlib import Path

from multidict import MultiDict
from twilio.request_validator import RequestValidator

from switch import __version__
from switch.core.model import new_sid
from switch.core.store import Store
from switch.core.webhooks import WebhookDispatcher, url_with_query
from tests.functional.webhook_endpoint import TOKEN, Endpoint, Hit, hook_state, status_params

# -- signing and encoding -------------------------------------------------------------------------


async def test_post_form_body_and_signature(endpoint: Endpoint, dispatcher: WebhookDispatcher, store: Store,
                                            db_path: Path) -> None:
    sid = new_sid("CA")
    params = [*status_params(sid, "completed"), ("CallerName", "Zoë & Co = 1+1"),
              ("StatusCallbackEvent", "completed"), ("Empty", "")]
    dispatcher.send(sid, endpoint.url("/status"), "post", params)
    assert await dispatcher.flush(5)

    [hit] = endpoint.hits
    assert hit.method == "POST"
    assert hit.form == params
    assert hit.query == []
    assert hit.url == endpoint.url("/status")
    assert hit.signature is not None
    assert RequestValidator(TOKEN).validate(hit.url, MultiDict(hit.form), hit.signature)
    assert RequestValidator(TOKEN).validate(hit.url, dict(hit.form), hit.signature)
    assert not RequestValidator("wrong").validate(hit.url, dict(hit.form), hit.signature)
    assert hit.user_agent == f"softswitch/{__version__}"
    assert hook_state(db_path, sid) == [("delivered", 1, None)]
    assert list(store.pending_webhooks()) == []


async def test_post_to_url_with_query_string(endpoint: Endpoint, dispatcher: WebhookDispatcher) -> None:
    sid = new_sid("CA")
    url = endpoint.url("/status?app=demo&n=1")
    dispatcher.send(sid, url, "POST", status_params(sid, "ringing"))
    assert await dispatcher.flush(5)
    [hit] = endpoint.hits
    assert hit.query == [("app", "demo"), ("n", "1")]
    assert hit.signature is not None
    assert RequestValidator(TOKEN).validate(hit.url, dict(hit.form), hit.signature)


async def test_get_params_in_query_and_full_url_signed(endpoint: Endpoint,
                                                      dispatcher: WebhookDispatcher) -> None:
    sid = new_sid("CA")
    params = status_params(sid, "in-progress")
    dispatcher.send(sid, endpoint.url("/status"), "get", params)
    assert await dispatcher.flush(5)

    [hit] = endpoint.hits
    assert hit.method == "GET"
    assert hit.query == params
    assert hit.form == []
    assert hit.signature is not None
    assert hit.url == url_with_query(endpoint.url("/status"), params)
    assert RequestValidator(TOKEN).validate(hit.url, {}, hit.signature)
    assert not RequestValidator(TOKEN).validate(endpoint.url("/status"), dict(params), hit.signature)


async def test_get_appends_to_existing_query(endpoint: Endpoint, dispatcher: WebhookDispatcher) -> None:
    sid = new_sid("CA")
    dispatcher.send(sid, endpoint.url("/status?app=demo"), "GET", [("CallSid", sid)])
    assert await dispatcher.flush(5)
    [hit] = endpoint.hits
    assert hit.query == [("app", "demo"), ("CallSid", sid)]
    assert hit.signature is not None
    assert RequestValidator(TOKEN).validate(hit.url, {}, hit.signature)


async def test_get_signature_valid_with_sip_uris_and_urls_in_params(endpoint: Endpoint,
                                                                   dispatcher: WebhookDispatcher) -> None:
    """Status callbacks of SIP calls carry `From=sip:alice@host`, `To=sip:...`, callback URLs...

    The receiver validates the signature over the URL it actually received, so the bytes on the wire
    must be the bytes that were signed.
    """
    sid = new_sid("CA")
    params = [("CallSid", sid), ("CallStatus", "ringing"), ("From", "sip:alice@example.com:5060"),
              ("To", "sip:+15550100@10.0.0.1;transport=udp"), ("Caller", "a/b?c"),
              ("CallbackSource", "call-progress-events"), ("Url", "https://app.example.com/voice")]
    dispatcher.send(sid, endpoint.url("/status"), "GET", params)
    assert await dispatcher.flush(5)
    [hit] = endpoint.hits
    assert hit.query == params
    assert hit.signature is not None
    assert RequestValidator(TOKEN).validate(hit.url, {}, hit.signature), (
        f"signature does not match the URL the endpoint received: {hit.url}"
    )


async def test_post_signature_valid_with_percent_encoded_callback_url(endpoint: Endpoint,
                                                                      dispatcher: WebhookDispatcher) -> None:
    """A StatusCallback URL that carries an encoded URL in its query must reach the endpoint byte for byte."""
    sid = new_sid("CA")
    url = endpoint.url("/status?next=https%3A%2F%2Fapp.example.com%2Fdone&who=sip%3Abob%40example.com")
    dispatcher.send(sid, url, "POST", status_params(sid, "completed"))
    assert await dispatcher.flush(5)
    [hit] = endpoint.hits
    assert hit.query == [("next", "https://app.example.com/done"), ("who", "sip:bob@example.com")]
    assert hit.signature is not None
    assert RequestValidator(TOKEN).validate(hit.url, dict(hit.form), hit.signature), (
        f"signed {url}, endpoint received {hit.url}"
    )


def test_url_with_query() -> None:
    assert url_with_query("http://h/p", []) == "http://h/p"
    assert url_with_query("http://h/p", [("a", "1"), ("b", "x y")]) == "http://h/p?a=1&b=x+y"
    assert url_with_query("http://h/p?z=0", [("a", "+1")]) == "http://h/p?z=0&a=%2B1"
    assert urllib.parse.parse_qsl(urllib.parse.urlsplit(
        url_with_query("http://h/p", [("To", "sip:a@b")])).query) == [("To", "sip:a@b")]


# -- ordering and isolation -------------------------------------------------------------------


async def test_send_persists_first_and_returns_at_once(endpoint: Endpoint, dispatcher: WebhookDispatcher,
                                                       store: Store) -> None:
    sid = new_sid("CA")
    dispatcher.send(sid, endpoint.url("/status"), "POST", status_params(sid, "initiated"))
    pending = list(store.pending_webhooks())
    assert [(p.call_sid, p.method, p.attempts) for p in pending] == [(sid, "POST", 0)]
    assert endpoint.hits == []  # nothing sent synchronously
    assert await dispatcher.flush(5)
    assert list(store.pending_webhooks()) == []


async def test_order_per_call_preserved_with_slow_start(endpoint: Endpoint,
                                                         dispatcher: WebhookDispatcher, db_path: Path) -> None:
    async def slow_first(hit: Hit, nth: int) -> int:
        if nth <= 3:
            await asyncio.sleep(0.1)
        return 200

    endpoint.behaviours["/status"] = slow_first
    sid = new_sid("CA")
    for i in range(20):
        dispatcher.send(sid, endpoint.url("/status"), "POST", status_params(sid, "ringing", seq=i))
    assert await dispatcher.flush(10)
    assert [dict(h.form)["SequenceNumber"] for h in endpoint.hits] == [str(i) for i in range(20)]
    assert endpoint.max_in_flight["/status"] == 1  # one at a time per call
    assert hook_state(db_path, sid) == [("delivered", 1, None)] * 20


async def test_calls_do_not_block_each_other(endpoint: Endpoint, dispatcher: WebhookDispatcher) -> None:
    b_arrived = asyncio.Event()

    async def wait_for_b(hit: Hit, nth: int) -> int:
        try:
            await asyncio.wait_for(b_arrived.wait(), 3)
        except TimeoutError:
            return 504  # B was held behind A
        return 200

    async def mark_b(hit: Hit, nth: int) -> int:
        b_arrived.set()
        return 200

    endpoint.behaviours["/a"] = wait_for_b
    endpoint.behaviours["/b"] = mark_b
    a, b = new_sid("CA"), new_sid("CA")
    dispatcher.send(a, endpoint.url("/a"), "POST", status_params(a, "ringing"))
    dispatcher.send(a, endpoint.url("/a2"), "POST", status_params(a, "completed"))
    dispatcher.send(b, endpoint.url("/b"), "POST", status_params(b, "ringing"))
    start = time.monotonic()
    assert await dispatcher.flush(5)
    assert b_arrived.is_set()
    assert time.monotonic() - start < 2
    assert [h.path for h in endpoint.hits] == ["/a", "/b", "/a2"]
