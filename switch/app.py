"""`softswitch serve`: the control plane (aiohttp + asyncio) and its media workers, wired together."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from media.webrtc import use_host_addresses
from switch.core.accounts import Accounts
from switch.core.api_keys import ApiKeys
from switch.core.applications import ApplicationRegistry
from switch.core.browsers import BrowserPhones
from switch.core.call_events import CallRequests, SipLadder
from switch.core.calls import CallManager
from switch.core.conference_coach import Whispers
from switch.core.conference_model import ConferenceService, QueueService
from switch.core.conference_recording import RoomRecorder
from switch.core.conferences import Conferences
from switch.core.config import Config, Credentials, is_wildcard, resolve_credentials
from switch.core.conversations import Conversations
from switch.core.metrics import Metrics
from switch.core.notifications import Notifications
from switch.core.numbers import NumberRegistry
from switch.core.queues import Queues
from switch.core.recordings import RecordingManager
from switch.core.signature import compute_signature
from switch.core.sip_calls import ClientRouter
from switch.core.sip_domains import SipDirectory
from switch.core.store import Store
from switch.core.streams import StreamManager
from switch.core.transcriptions import Transcriptions, make_recognizer
from switch.core.webhooks import WebhookDispatcher
from switch.dialects.console.routes import Console, add_console_routes
from switch.dialects.conversations.api import add_conversation_routes
from switch.dialects.conversations.callbacks import ConversationCallbacks
from switch.dialects.errors import error_middleware
from switch.dialects.exotel.api import ExotelAuth, add_exotel_routes
from switch.dialects.exotel.connect import ExotelEdge
from switch.dialects.metrics import add_metrics_route, instrument, is_loopback
from switch.dialects.twilio.accounts import add_twilio_account_routes
from switch.dialects.twilio.api import add_twilio_routes
from switch.dialects.twilio.applications import add_twilio_application_routes
from switch.dialects.twilio.callbacks import TwilioCallbacks, TwilioTwiml, recording_url
from switch.dialects.twilio.client_ws import add_client_routes
from switch.dialects.twilio.conference_callbacks import TwilioConferenceCallbacks
from switch.dialects.twilio.conferences import add_twilio_conference_routes
from switch.dialects.twilio.events import add_twilio_event_routes
from switch.dialects.twilio.keys import add_twilio_key_routes
from switch.dialects.twilio.notifications import add_twilio_notification_routes
from switch.dialects.twilio.numbers import add_twilio_number_routes
from switch.dialects.twilio.queues import add_twilio_queue_routes
from switch.dialects.twilio.recordings import add_recording_routes
from switch.dialects.twilio.sip import add_twilio_sip_routes
from switch.dialects.twilio.streams import TwilioStreamCallbacks, add_twilio_stream_routes
from switch.dialects.twilio.transcriptions import add_transcription_routes, transcription_url
from switch.session.announce import announcement
from switch.session.voice import VoiceEngine
from switch.verbs.registry import task_for
from switch.workers.edge import Edge
from switch.workers.edge_config import EdgeSettings, worker_uri
from switch.workers.edge_domains import EdgeDomain
from switch.workers.edge_trunks import TrunkRegistration
from switch.workers.pool import WorkerPool
from switch.workers.protocol import Event

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
        "store": {"writes": switch.store.writes},  # SQLite statements that wrote, since start-up
        # the control plane's cross-worker conference mixing: 20 ms ticks run, and those more than a frame late
        "conference_mixer": {"ticks": switch.calls.media.conferences.ticks,
                             "late_ticks": switch.calls.media.conferences.late_ticks},
    }
    healthy = pool.healthy
    if switch.edge is not None:
        body["edge"] = switch.edge.status()
        healthy = healthy and switch.edge.up
        body["status"] = "ok" if healthy else "degraded"
    if switch.calls.draining:  # SIGTERM: live calls go on, new ones are refused; out of any load balancer
        body["status"], healthy = "draining", False
    body["draining"] = switch.calls.draining
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
    metrics: Metrics | None = None  # GET /metrics ([server] metrics)
    phones: BrowserPhones | None = None  # browser softphones (switch.core.browsers)

    @property
    def base_url(self) -> str:
        return self.config.base_url

    async def stop(self) -> None:
        if self.voice.conferences is not None:
            await self.voice.conferences.close()
        await self.voice.close()
        await self.calls.shutdown()
        if self.phones is not None:
            await self.phones.close()
        if self.voice.streams is not None:  # the calls' streams send their stop and close their sockets
            await self.voice.streams.close()
        if self.edge is not None:  # no new calls; BYEs just sent, and the workers' last ones, still go through it
            self.edge.drain()
        await self.pool.close()
        if self.edge is not None:
            await self.edge.close()
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
    sip_domains = SipDirectory(store, credentials.account_sid)
    numbers = NumberRegistry(store, credentials.account_sid, config.numbers, applications)
    calls.lookup_number = numbers.lookup
    notifications = Notifications(store, credentials.account_sid)
    requests = CallRequests(store)  # every request a call made (its Events) and its SIP ladder when traced
    if config.call_events:  # [server] call_events = false: no rows recorded (the bench's comparison)
        webhooks.exchange_observers.append(requests.record)
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
    if config.call_events:
        voice.request_log = requests.record
    await voice.start()
    metrics = Metrics() if config.metrics else None
    if metrics is not None:
        instrument(metrics, calls, webhooks, voice)
    # <Connect><Conversation>: the Conversations services; pool routing skips workers on a live call.
    conversations = Conversations(store, credentials.account_sid, config.conversation_services, calls.events,
                                  lambda: list(calls.live.values()))
    voice.conversations = conversations
    voice.queues = Queues(store, credentials.account_sid, calls)  # <Enqueue>, <Dial><Queue>; the Queues API
    voice.conferences = _conferences(store, credentials.account_sid, calls, voice, recordings)  # <Conference>
    calls.events.subscribe(TwilioConferenceCallbacks(webhooks))
    # Media Streams (<Start>/<Connect><Stream>, Calls/{Sid}/Streams): upgrades signed as Twilio signs them.
    streams = StreamManager(calls.media, credentials.account_sid, notifications,
                            sign=lambda url: {"X-Twilio-Signature": compute_signature(credentials.auth_token, url)})
    streams.observers.append(TwilioStreamCallbacks(webhooks))
    calls.ended_hooks.append(lambda call: streams.forget(call.sid))
    voice.streams = streams
    # Speech: the recognizer of <Gather input="speech"> and <Record transcribe> ([speech]), and transcriptions.
    transcriptions = Transcriptions(store, make_recognizer(config.speech), credentials.account_sid,
                                    lambda t: transcription_url(config.base_url, t.account_sid, t.sid))
    voice.transcriptions = transcriptions
    if config.speech.preload:  # the offline model loads now, not on a first call ([speech] preload)
        await asyncio.to_thread(transcriptions.recognizer.warm)
    edge = _edge(config)
    worker_host, worker_port = config.worker_sip
    on_event: Callable[[int, Event], None] = calls.on_worker_event
    if config.sip_trace:  # the workers' SipMessage events go to the calls' SIP ladders
        on_event = SipLadder(requests, lambda leg: _call_of_leg(calls, leg)).wrap(on_event)
    pool = WorkerPool(config.workers, worker_host, worker_port,
                      on_event if metrics is None else metrics.tap(on_event),
                      calls.on_worker_lost, config.pj_log_level, advertised_host=config.advertised_host,
                      media_address=config.rtp_address if edge else config.media_address,
                      external_address=config.external_address, rtp_ports=config.rtp_ports,
                      outbound_proxy=_edge_proxy(config) if edge else None, sip_trace=config.sip_trace,
                      log_level=config.log_level, log_format=config.log_format)
    calls.attach(pool)
    await pool.start()
    calls.lookup_domain = sip_domains.route_named
    calls.clients = ClientRouter(sip_domains.routes, edge.contacts if edge is not None else None)
    phones = _browser_phones(config, calls, applications)
    if edge is not None:
        _follow_workers(pool, edge)
        _follow_domains(sip_domains, edge)
        try:
            await edge.start()
        except Exception:
            await pool.close()
            raise
    app = web.Application(middlewares=[error_middleware])

    async def commit_first(request: web.Request, response: web.StreamResponse) -> None:
        store.commit()  # what the response shows is on disk before it leaves (Store's group commit)

    app.on_response_prepare.append(commit_first)
    app.router.add_get("/healthz", _healthz)
    if metrics is not None:
        metrics.watch(lambda: pool.workers, lambda: calls.live.values(), edge)
        add_metrics_route(app, metrics, credentials, config.metrics_auth if config.metrics_auth is not None
                          else not is_loopback(config.http_host))
    add_twilio_routes(app, calls, config.base_url)
    add_recording_routes(app, recordings, config.recordings_public)
    add_transcription_routes(app, calls, transcriptions)
    add_console_routes(app, Console(credentials, calls, store, recordings, notifications, _healthz, requests))
    add_twilio_number_routes(app, credentials, numbers, config.base_url)
    add_twilio_application_routes(app, credentials, applications, config.base_url)
    api_keys = ApiKeys(store, credentials.account_sid)
    add_twilio_key_routes(app, credentials, api_keys, config.base_url)
    add_client_routes(app, phones, credentials.account_sid, api_keys.secret_of)  # browser softphones
    add_twilio_sip_routes(app, credentials, sip_domains, config.base_url)
    add_callcenter_routes(app, credentials, recordings, config.base_url, voice.conferences, voice.queues)
    add_twilio_account_routes(app, credentials, Accounts(store, credentials.account_sid))
    add_twilio_notification_routes(app, calls, notifications)
    add_twilio_stream_routes(app, calls, streams)
    add_twilio_event_routes(app, calls, requests)
    add_conversation_routes(app, credentials, conversations, config.base_url)
    # The Exotel dialect: [exotel] sid, api_key, api_token default to the account SID and auth token.
    exotel_sid = config.exotel_sid or credentials.account_sid
    add_exotel_routes(app, ExotelEdge(store, calls, webhooks, recordings, exotel_sid, config.base_url),
                      ExotelAuth(exotel_sid, config.exotel_api_key or credentials.account_sid,
                                 config.exotel_api_token or credentials.auth_token))
    runner = web.AppRunner(app, access_log=None)
    switch = Switch(config, credentials, store, webhooks, calls, pool, runner, voice, numbers, notifications, edge,
                    metrics, phones)
    app[SWITCH_KEY] = switch
    await runner.setup()
    site = web.TCPSite(runner, config.http_host, config.http_port)
    await site.start()
    return switch


def add_callcenter_routes(app: web.Application, credentials: Credentials, recordings: RecordingManager,
                          base_url: str, conferences: ConferenceService | None = None,
                          queues: QueueService | None = None) -> None:
    """The Twilio Conferences (with their Participants and Recordings) and Queues (with their Members) APIs, each
    mounted only when its manager is given."""
    if conferences is not None:
        add_twilio_conference_routes(app, credentials, conferences, base_url, recordings)
    if queues is not None:
        add_twilio_queue_routes(app, credentials, queues, base_url)


def _conferences(store: Store, account_sid: str, calls: CallManager, voice: VoiceEngine,
                 recordings: RecordingManager) -> Conferences:
    """The conference rooms, mixed by the workers (`CallMedia.conferences`), announcing through the voice engine."""
    rooms = Conferences(store, account_sid, calls.events, calls.media.conferences)
    rooms.calls = calls
    rooms.recorder = RoomRecorder(recordings, calls.media.conferences)
    rooms.recordings_of = recordings.of_conference
    rooms.whispers = Whispers(calls.media)
    rooms.beep_path = voice.beep_path
    rooms.announcer = lambda url, method, conf: announcement(voice, url, method, conf)
    calls.media.conferences.on_speaking = rooms.speaking
    return rooms


def _browser_phones(config: Config, calls: CallManager, applications: ApplicationRegistry) -> BrowserPhones:
    """Browser softphones: their calls route to `webrtc:` legs; WebRTC media offered on the configured addresses."""
    use_host_addresses(config.browser_addresses)
    logging.getLogger("aioice").setLevel(logging.WARNING)  # a line per ICE check otherwise
    phones = BrowserPhones(calls, applications)
    calls.clients.browsers = phones.takes_calls
    calls.created_hooks.append(phones.on_created)
    return phones


def _call_of_leg(calls: CallManager, leg: str) -> str | None:
    """The CallSid of a live leg (the SIP ladder's lookup)."""
    found = calls.legs.by_id(leg)
    return None if found is None else found.call.sid


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
    settings = dataclasses.replace(settings, trunks=tuple(  # [[trunks]] register = true: the edge registers them
        TrunkRegistration(t.name, t.registrar_hostport, t.username or "", t.password or "", t.expires, t.addresses)
        for t in config.trunks if t.register))
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


def _follow_domains(sip_domains: SipDirectory, edge: Edge) -> None:
    """Keep the edge's SIP domains (registration, authentication, ACLs) on the SIP API's, at every change."""
    def changed() -> None:
        edge.domains_changed(
            EdgeDomain(d.domain_name, d.sid, d.sip_registration, d.registration_users, d.call_users, d.call_networks)
            for d in sip_domains.routes())
    sip_domains.subscribe(changed)
    changed()


async def drain(switch: Switch, seconds: float, now: asyncio.Event) -> None:
    """Take no new calls (the edge lists every worker inactive, REST and stray INVITEs get 503) and wait until
    the live calls have ended, `seconds` at most or until `now` is set (a second signal)."""
    switch.calls.draining = True
    if switch.edge is not None:
        switch.edge.drain()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    if switch.calls.live:
        print(f"softswitch: draining: no new calls; {len(switch.calls.live)} live calls may go on for up to "
              f"{seconds:g} s (SIGTERM or SIGINT again ends them now)", flush=True)
    while switch.calls.live and not now.is_set():
        left = deadline - loop.time()
        if left <= 0:
            log.warning("drain time (%g s) over: ending %d live calls", seconds, len(switch.calls.live))
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(now.wait(), min(left, 0.1))
    if now.is_set() and switch.calls.live:
        log.warning("signalled again: ending %d live calls now", len(switch.calls.live))


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, drain (live calls go on up to [server] drain_seconds, a second signal ends
    them at once), then hang up what is left, with its callbacks, and stop cleanly."""
    stop, now = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def signalled() -> None:
        (now if stop.is_set() else stop).set()

    for sig in (signal.SIGINT, signal.SIGTERM):  # before start-up, so an early signal also stops cleanly
        loop.add_signal_handler(sig, signalled)
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
    # the token only when this start made it; a token the user gave (or saw before) stays out of logs
    token = creds.auth_token if creds.generated else f"(not shown: from {creds.source})"
    print(f"  account SID {creds.account_sid}\n  auth token  {token}", flush=True)
    await stop.wait()
    await drain(switch, config.drain_seconds, now)
    log.info("shutting down")
    await switch.stop()
