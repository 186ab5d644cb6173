"""`GET /metrics`: the switch's Prometheus metrics (switch.core.metrics), hooked into the call engine, the webhook
dispatcher and the TwiML fetcher.

Whether a scrape needs the account's credentials is `[server] metrics_auth`; unset, it does unless the HTTP
server listens on a loopback address only (Prometheus scrapes without credentials by default; one on another
host can send them: `basic_auth` in its scrape config).
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from switch.core.calls import CallManager
from switch.core.metrics import CONTENT_TYPE, Metrics
from switch.core.webhooks import WebhookDispatcher
from switch.dialects.auth import Credentials, check_credentials
from switch.dialects.errors import ApiError, error_response
from switch.session.voice import VoiceEngine


def is_loopback(host: str) -> bool:
    """Whether `host` (an HTTP bind address) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def instrument(metrics: Metrics, calls: CallManager, webhooks: WebhookDispatcher, voice: VoiceEngine) -> None:
    """Hook `metrics` into the call engine (created, status changes), webhooks and TwiML requests; the workers'
    events go through `metrics.tap` where the pool is made, and the state is read at scrape (`metrics.watch`)."""
    calls.created_hooks.append(metrics.on_call_created)
    calls.events.subscribe(metrics.on_call_event)
    webhooks.attempt_observers.append(metrics.on_webhook_attempt)
    voice.fetch_observers.append(metrics.on_twiml_fetch)


def add_metrics_route(app: web.Application, metrics: Metrics, creds: Credentials, auth: bool) -> None:
    """`GET /metrics` in Prometheus' text format; behind the account's credentials when `auth`."""
    async def scrape(request: web.Request) -> web.Response:
        if auth:
            try:
                check_credentials(request, creds)
            except ApiError as exc:  # outside the API root: rendered here, as the API would (401, 20003)
                return error_response(exc)
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/metrics", scrape)
