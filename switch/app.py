"""`softswitch serve`: the control plane (aiohttp + asyncio) and its media workers, wired together."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from switch.core.accounts import Accounts
from switch.core.applications import ApplicationRegistry
from switch.core.calls import CallManager
from switch.core.config import Config, Credentials, is_wildcard, resolve_credentials
from switch.core.conversations import Conversations
from switch.core.notifications import Notifications
from switch.core.numbers import NumberRegistry
from switch.core.recordings import RecordingManager
from switch.core.store import Store
from switch.core.webhooks import WebhookDispatcher
from switch.dialects.conversations.api import add_conversation_routes
from switch.dialects.conversations.callbacks import ConversationCallbacks
from switch.dialects.errors import error_middleware
from switch.dialects.exotel.api import ExotelAuth, add_exotel_routes
from switch.dialects.exotel.connect import ExotelEdge
from switch.dialects.twilio.accounts import add_twilio_account_routes
from switch.dialects.twilio.api import add_twilio_routes
from switch.dialects.twilio.applications import add_twilio_application_routes
from switch.dialects.twilio.callbacks import TwilioCallbacks, TwilioTwiml, recording_url
from switch.dialects.twilio.notifications import add_twilio_notification_routes
from switch.dialects.twilio.numbers import add_twilio_number_routes
from switch.dialects.twilio.recordings import add_recording_routes
from switch.session.voice import VoiceEngine
from switch.verbs.registry import task_for
from switch.workers.edge import Edge
from switch.workers.edge_config import EdgeSettings, worker_uri
from switch.workers.pool import WorkerPool

log = logging.getLogger("switch")


async def _healthz(request: web.Request) -> web.Response:
    switch: Switch = request.app[SWITCH_KEY]
    pool = switch.pool
    body: dict[str, Any] = {
        "status": "ok" if pool.healthy else "degraded",
        "workers": pool.status(),
        "scaling": pool.scaler.status(),
        "capacity": sum(w.capacity for w in pool.workers if w.up),
        "in_use": sum(len(w.legs) for w in pool.workers),
        "live_calls": len(switch.calls.live),
    }
    healthy = pool.healthy
    if switch.edge is not None:
        body["edge"] = switch.edge.status()
        healthy = healthy and switch.edge.up
        body["status"] = "ok" if healthy else "degraded"
    return web.json_response(body, status=200 if healthy else 503)


@dataclass
class Switch:
    """A running switch: store, webhooks, call manager, workers and the HTTP server."""

    config: Config
    credentials: Credentials
    store: Store
    webhooks: WebhookDispatcher
    calls: CallManager
    pool: WorkerPool
    runner: web.AppRunner
    voice: VoiceEngine
    numbers: NumberRegistry
    notifications: Notifications
    edge: Edge | None = None  # Kamailio in front of the workers ([edge] enabled)

    @property
    def base_url(self) -> str:
        return self.config.base_url

    async def stop(self) -> None:
        await self.voice.close()
        await self.calls.shutdown()
        if self.edge is not None:
            await self.edge.close()
        await self.pool.close()
        await self.runner.cleanup()
        await self.webhooks.close()
        self.store.close()


SWITCH_KEY = web.AppKey("switch", Switch)


async def start_switch(config: Config) -> Switch:
    """Start everything and return once every worker has said hello and HTTP is listening."""
    credentials = resolve_credentials(config)
    store = Store(config.data_dir / "softswitch.db")
    store.ensure_account(credentials.account_sid, credentials.auth_token)
    webhooks = WebhookDispatcher(store, credentials.auth_token, config.webhook_timeout, config.webhook_retries)
    await webhooks.start()
    calls = CallManager(config, credentials.account_sid, credentials.auth_token, store, webhooks)
    # The dialects render the core's call events.  Subscribed before `recover`, so that the calls a crash left
    # live still get their callbacks; Twilio's first, so that a call's own callbacks keep leaving first.
    twilio_callbacks = TwilioCallbacks(webhooks, config.base_url)
    calls.events.subscribe(twilio_callbacks)
    calls.events.subscribe(ConversationCallbacks(webhooks))
    applications = ApplicationRegistry(store, credentials.account_sid)
    numbers = NumberRegistry(store, credentials.account_sid, config.numbers, applications)
    calls.lookup_number = numbers.lookup
    notifications = Notifications(store, credentials.account_sid)
    resumed = webhooks.resume()
    recovered = calls.recover()
    if resumed or recovered:
        log.info("start-up: %d pending webhooks resumed, %d calls left live by the last run closed",
                 resumed, recovered)
    recordings = RecordingManager(store, calls, config.data_dir, credentials.account_sid,
                                  lambda rec: recording_url(config.base_url, rec.account_sid, rec.sid),
                                  notifications=notifications)
    twilio_callbacks.call_recording = recordings.call_recording  # a Record=true call's `completed` names it
    voice = VoiceEngine(calls, config.data_dir, credentials.auth_token, notifications, recordings, task_for,
                        config.twiml_fetch_timeout, dialect=TwilioTwiml())
    await voice.start()
    # <Connect><Conversation>: the Conversations services; pool routing skips workers on a live call.
    conversations = Conversations(store, credentials.account_sid, config.conversation_services, calls.events,
                                  lambda: list(calls.live.values()))
    voice.conversations = conversations
    edge = _edge(config)
    worker_host, worker_port = config.worker_sip
    pool = WorkerPool(config.workers, worker_host, worker_port, calls.on_worker_event,
                      calls.on_worker_lost, config.pj_log_level, advertised_host=config.advertised_host,
                      media_address=config.rtp_address if edge else config.media_address,
                      external_address=config.external_address, rtp_ports=config.rtp_ports,
                      outbound_proxy=_edge_proxy(config) if edge else None)
    calls.attach(pool)
    await pool.start()
    if edge is not None:
        _follow_workers(pool, edge)
        try:
            await edge.start()
        except Exception:
            await pool.close()
            raise
    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/healthz", _healthz)
    add_twilio_routes(app, calls, config.base_url)
    add_recording_routes(app, recordings, config.recordings_public)
    add_twilio_number_routes(app, credentials, numbers, config.base_url)
    add_twilio_application_routes(app, credentials, applications, config.base_url)
    add_twilio_account_routes(app, credentials, Accounts(store, credentials.account_sid))
    add_twilio_notification_routes(app, calls, notifications)
    add_conversation_routes(app, credentials, conversations, config.base_url)
    # The Exotel dialect: [exotel] sid, api_key, api_token default to the account SID and auth token.
    exotel_sid = config.exotel_sid or credentials.account_sid
    add_exotel_routes(app, ExotelEdge(store, calls, webhooks, recordings, exotel_sid, config.base_url),
                      ExotelAuth(exotel_sid, config.exotel_api_key or credentials.account_sid,
                                 config.exotel_api_token or credentials.auth_token))
    runner = web.AppRunner(app, access_log=None)
    switch = Switch(config, credentials, store, webhooks, calls, pool, runner, voice, numbers, notifications, edge)
    app[SWITCH_KEY] = switch
    await runner.setup()
    site = web.TCPSite(runner, config.http_host, config.http_port)
    await site.start()
    return switch


def _edge(config: Config) -> Edge | None:
    """The SIP edge of `config` ([edge] enabled), not started."""
    if not config.edge.enabled:
        return None
    e = config.edge
    settings = EdgeSettings(config.sip_host, config.sip_port, advertise=config.external_address,
                            max_cps=e.max_cps, per_source_rps=e.per_source_rps,
                            max_message_bytes=e.max_message_bytes, worker_timeout_ms=e.worker_timeout_ms)
    if e.tls_certificate is not None and e.tls_private_key is not None:
        settings = dataclasses.replace(settings, tls_port=e.tls_port or config.sip_port + 1,
                                       tls_certificate=str(e.tls_certificate),
                                       tls_private_key=str(e.tls_private_key))
    return Edge(settings, config.data_dir / "edge")


def _edge_proxy(config: Config) -> str:
    """The loose route the workers put on their new requests: the edge, at an address they can reach."""
    host = "127.0.0.1" if is_wildcard(config.sip_host) else config.sip_host
    return f"sip:{host}:{config.sip_port};lr"


def _follow_workers(pool: WorkerPool, edge: Edge) -> None:
    """Keep the edge's dispatcher list on the pool's up workers, each active while it has a free leg."""
    def changed() -> None:
        edge.workers_changed((worker_uri(w.listen_host, w.sip_port), w.free > 0) for w in pool.workers if w.up)
    pool.watch(changed)
    changed()


async def serve(config: Config) -> None:
    """Run until SIGINT/SIGTERM, then hang up calls and stop cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before start-up, so an early signal also stops cleanly
        loop.add_signal_handler(sig, stop.set)
    switch = await start_switch(config)
    creds = switch.credentials
    pool = switch.pool
    total = sum(w.capacity for w in pool.workers)
    edge = "Kamailio edge" if switch.edge is not None else "worker 0, no edge"
    print(f"softswitch: HTTP {switch.base_url}  SIP {config.sip_host}:{config.sip_port} (UDP+TCP, {edge})  "
          f"workers: {pool.scaling}, up to {pool.max_workers}; {len(pool.workers)} running with {total} call legs",
          flush=True)
    if creds.generated:
        print(f"softswitch: generated credentials (kept in {config.data_dir / 'credentials.json'}):", flush=True)
    print(f"  account SID {creds.account_sid}\n  auth token  {creds.auth_token}", flush=True)
    await stop.wait()
    log.info("shutting down")
    await switch.stop()
