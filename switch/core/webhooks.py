"""The one webhook dispatcher: persisted first, delivered in order per call, signed, retried with backoff.

`send()` writes the webhook to the store and returns at once; a per-call delivery task sends that call's
webhooks one after another, so callbacks of one call never overtake each other while calls never wait
for each other.  A slow endpoint gets `timeout` seconds per attempt and `retries` more attempts with
exponential backoff; then the webhook is marked failed and logged.  Webhooks still pending at start-up
(the switch stopped or crashed before delivering them) are sent by `resume()`.

Bodies are form-encoded (Twilio's) unless `send` is given another `body_format`: "multipart" sends the same
parameters as multipart/form-data and "json" sends a JSON document (the Exotel edge's callbacks).  A webhook may
carry its own retry count (Exotel promises two retries whatever the dispatcher's default).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any, Literal, NamedTuple, Protocol

import aiohttp
import yarl

from switch import __version__
from switch.core.call_events import BODY_EXCERPT, HttpExchange
from switch.core.http_client import HttpTransport
from switch.core.signature import compute_signature, form_encode
from switch.core.store import PendingWebhook, Store

log = logging.getLogger("switch.core.webhooks")

Observer = Callable[[PendingWebhook, int | None, float], None]
# One delivery attempt, for the metrics: the webhook, its HTTP status (None: no response), its error (None:
# delivered) and how long the request took in seconds.
AttemptObserver = Callable[[PendingWebhook, int | None, str | None, float], None]
BodyFormat = Literal["form", "json", "multipart"]
ExchangeObserver = Callable[[HttpExchange], None]  # each attempt with its response (switch.core.call_events)


SENT_CALLS_KEPT = 4096  # calls whose webhooks' (URL, event) `WebhookDispatcher` keeps in memory


class Reply(NamedTuple):
    """What one attempt got: its status (None: no response), its error (None: delivered), the response."""

    status: int | None
    error: str | None
    content_type: str | None = None
    body: bytes = b""


def url_with_query(url: str, params: list[tuple[str, str]]) -> str:
    """`url` with `params` appended to its query string (Twilio's GET webhooks)."""
    if not params:
        return url
    sep = "&" if urllib.parse.urlsplit(url).query else "?"
    return url + sep + form_encode(params)


def signed_form_request(auth_token: str, method: str, url: str,
                        params: list[tuple[str, str]]) -> tuple[str, dict[str, str]]:
    """The URL to request and its signature header for a form request (GET: parameters in the query string,
    POST: in the body); TwiML fetches and webhooks are signed alike."""
    if method.upper() == "GET":
        url = url_with_query(url, params)
        return url, {"X-Twilio-Signature": compute_signature(auth_token, url)}
    return url, {"X-Twilio-Signature": compute_signature(auth_token, url, params)}


class WebhookSender(Protocol):
    """What the dialects' renderers of call events need of the dispatcher (unit tests hand in their own)."""

    def send(self, call_sid: str, url: str, method: str, params: list[tuple[str, str]],
             body_format: BodyFormat = "form", *, document: dict[str, Any] | None = None,
             retries: int | None = None, event: str | None = None) -> None: ...

    def sent(self, call_sid: str, url: str, event: str) -> bool: ...

    def count(self, call_sid: str, url: str | None, events: Collection[str] | None = None) -> int: ...


class WebhookDispatcher:
    """Sends every webhook of the switch (status callbacks now; TwiML fetches use the same signing)."""

    def __init__(self, store: Store, auth_token: str, timeout: float = 10.0, retries: int = 3,
                 backoff: float = 0.5) -> None:
        self._store = store
        self._auth_token = auth_token
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._queues: dict[str, list[PendingWebhook]] = {}
        self._sent: OrderedDict[str, list[tuple[str, str | None]]] = OrderedDict()  # see `_sent_of`
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started = False
        # every webhook leaves through it (switch.core.http_client; multipart ones through its aiohttp session),
        # and what a webhook reports is on disk before it leaves
        self._http = HttpTransport(timeout, f"softswitch/{__version__}", store.commit)
        self.observers: list[Observer] = []
        self.attempt_observers: list[AttemptObserver] = []
        self.exchange_observers: list[ExchangeObserver] = []

    async def start(self) -> None:
        self._started = True

    def resume(self) -> int:
        """Queue the webhooks a previous run left pending; returns how many."""
        count = 0
        for hook in self._store.pending_webhooks():
            self._enqueue(hook)
            count += 1
        return count

    def send(self, call_sid: str, url: str, method: str, params: list[tuple[str, str]],
             body_format: BodyFormat = "form", *, document: dict[str, Any] | None = None,
             retries: int | None = None, event: str | None = None) -> None:
        """Persist the webhook and schedule its delivery after the call's earlier ones.

        `body_format` "json" POSTs `document` (and needs no `params`); "multipart" POSTs `params` as
        multipart/form-data.  `retries` replaces the dispatcher's retry count for this webhook.  `event` names
        what it reports, so that `sent` can tell later whether it went already.
        """
        method = method.upper()
        if body_format != "form" and method != "POST":
            raise ValueError(f"a {body_format} body needs POST, not {method}")
        if (body_format == "json") != (document is not None):
            raise ValueError("a document goes with body_format='json', and only with it")
        sent = self._sent_of(call_sid)
        hook_id = self._store.add_webhook(call_sid, url, method, params, body_format, retries, document, event)
        sent.append((url, event))
        self._enqueue(PendingWebhook(hook_id, call_sid, url, method, [] if document is not None else params, 0,
                                     body_format, retries, document))

    def sent(self, call_sid: str, url: str, event: str) -> bool:
        """Whether a webhook about `call_sid` reporting `event` was sent (or queued) to `url` already."""
        return (url, event) in self._sent_of(call_sid)

    def count(self, call_sid: str, url: str | None, events: Collection[str] | None = None) -> int:
        """How many webhooks about `call_sid` were sent (or queued) to `url` (None: any), of `events` if given."""
        return sum(1 for to, what in self._sent_of(call_sid)
                   if (url is None or to == url) and (events is None or what in events))

    def fresh(self, call_sid: str) -> None:
        """`call_sid` names a call made just now: nothing was sent about it, and its first webhook needs no
        look-up in the store."""
        self._keep(call_sid, [])

    def _sent_of(self, call_sid: str) -> list[tuple[str, str | None]]:
        """(URL, event) of every webhook about `call_sid`, as the store has them, kept for the calls of late: one
        SELECT a call instead of one per callback (SequenceNumber).  Every webhook is written by `send`."""
        sent = self._sent.get(call_sid)
        if sent is None:
            return self._keep(call_sid, self._store.webhook_targets(call_sid))
        self._sent.move_to_end(call_sid)
        return sent

    def _keep(self, call_sid: str, sent: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
        self._sent[call_sid] = sent
        if len(self._sent) > SENT_CALLS_KEPT:
            self._sent.popitem(last=False)
        return sent

    def _enqueue(self, hook: PendingWebhook) -> None:
        self._queues.setdefault(hook.call_sid, []).append(hook)
        if hook.call_sid not in self._tasks:
            task = asyncio.get_running_loop().create_task(self._drain(hook.call_sid))
            self._tasks[hook.call_sid] = task

    async def _drain(self, call_sid: str) -> None:
        queue = self._queues[call_sid]
        try:
            while queue:
                await self._deliver(queue[0])
                queue.pop(0)
        finally:
            self._tasks.pop(call_sid, None)
            if not queue:
                self._queues.pop(call_sid, None)

    async def _deliver(self, hook: PendingWebhook) -> None:
        attempts = hook.attempts
        error: str | None = None
        delay = self._backoff
        retries = self._retries if hook.retries is None else hook.retries
        while attempts <= retries:
            attempts += 1
            started = time.perf_counter()
            sent_at = dt.datetime.now(dt.UTC)
            reply = await self._attempt(hook)
            seconds, at, error = time.perf_counter() - started, time.time(), reply.error
            if error is None:
                # The call's next webhook leaves first (`_drain` sends it in this turn); this one's record and
                # observers follow on the loop's next turn, in the order the webhooks were answered.
                asyncio.get_running_loop().call_soon(self._report, hook, sent_at, seconds, at, reply, attempts)
                return
            self._report(hook, sent_at, seconds, at, reply, attempts)
            log.warning("%s: webhook %s %s attempt %d failed: %s", hook.call_sid, hook.method, hook.url,
                        attempts, error)
            if attempts <= retries:
                await asyncio.sleep(delay)
                delay *= 2
        log.error("%s: webhook %s %s given up after %d attempts: %s", hook.call_sid, hook.method, hook.url,
                  attempts, error)
        self._store.webhook_done(hook.id, False, attempts, error)

    def _report(self, hook: PendingWebhook, sent_at: dt.datetime, seconds: float, at: float, reply: Reply,
                attempts: int) -> None:
        """One attempt's outcome to the observers; a delivered webhook's to the store too."""
        if self.exchange_observers:
            self._exchanged(hook, sent_at, seconds, reply)
        for timed in self.attempt_observers:
            timed(hook, reply.status, reply.error, seconds)
        for observer in self.observers:
            observer(hook, reply.status, at)
        if reply.error is None:
            self._store.webhook_done(hook.id, True, attempts, None)

    def _exchanged(self, hook: PendingWebhook, sent_at: dt.datetime, seconds: float, reply: Reply) -> None:
        params = hook.params
        if hook.document is not None:  # a JSON body: its top-level members as the parameters
            params = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in hook.document.items()]
        body = reply.body[:BODY_EXCERPT * 4].decode("utf-8", errors="replace")[:BODY_EXCERPT]
        exchange = HttpExchange(hook.call_sid, sent_at, "webhook", hook.method, hook.url, list(params), reply.status,
                                reply.content_type, body, round(seconds * 1000), reply.error)
        for observer in self.exchange_observers:
            observer(exchange)

    async def _attempt(self, hook: PendingWebhook) -> Reply:
        assert self._started, "dispatcher not started"
        url = hook.url
        body = b""
        if hook.method == "GET":
            url, headers = signed_form_request(self._auth_token, "GET", hook.url, hook.params)
        elif hook.body_format == "multipart":
            # Not a form: the signature covers the URL alone, as Twilio's does for JSON bodies.
            self._store.commit()  # what it reports is on disk before it leaves
            headers = {"X-Twilio-Signature": compute_signature(self._auth_token, hook.url)}
            form = aiohttp.FormData(hook.params, default_to_multipart=True)  # a fresh one per attempt
            post = self._http.session().post(yarl.URL(url, encoded=True), data=form, headers=headers)
            return await self._multipart(post)
        elif hook.body_format == "json":
            headers = {"X-Twilio-Signature": compute_signature(self._auth_token, hook.url),
                       "Content-Type": "application/json"}
            body = json.dumps(hook.document).encode()
        else:
            _, headers = signed_form_request(self._auth_token, "POST", hook.url, hook.params)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = form_encode(hook.params).encode()
        try:
            reply = await self._http.request(hook.method, url, headers, body)
        except (OSError, TimeoutError) as exc:
            return Reply(None, f"{type(exc).__name__}: {exc}")
        error = f"HTTP {reply.status}" if reply.status >= 400 else None
        return Reply(reply.status, error, reply.headers.get("content-type"), reply.body)

    async def _multipart(self, request: Any) -> Reply:
        """A multipart webhook, through aiohttp's client (its FormData encoder)."""
        try:
            async with request as response:
                body = await response.read()
                ctype = response.headers.get("Content-Type")
                error = f"HTTP {response.status}" if response.status >= 400 else None
                return Reply(response.status, error, ctype, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Reply(None, f"{type(exc).__name__}: {exc}")

    async def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` s for queued webhooks; True when none is left.  Their outcomes are committed."""
        deadline = time.monotonic() + timeout
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(list(self._tasks.values()), timeout=max(0.0, deadline - time.monotonic()))
        self._store.commit()
        return not self._tasks

    async def close(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered in `timeout` s; the rest stays pending in the store."""
        await self.flush(timeout)
        for task in list(self._tasks.values()):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await self._http.close()
