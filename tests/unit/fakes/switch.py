"""`FakeSwitch`: the real call engine, recordings, voice engine and verb registry on top of the fakes.

Composed as `switch.app.start_switch` composes the switch, with a `FakePool` for the workers, a `FakeFetcher`
for the app, `FakeSpeech`/`FakeAudio` for the caches, webhooks captured instead of sent, the store on a temp
SQLite file and every clock on the event loop's (virtual) time.  A test says what the far ends do, places or
receives a call, waits for its end and asserts on the whole story: `pool.trace` (every command, in order),
`history(alias)` (every status), `app.trace` (every TwiML request), `notes(alias)` (notifications).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path

from switch.core.calls import CallManager
from switch.core.config import Config, ConversationServiceConfig, Number, Trunk
from switch.core.conversations import Conversations
from switch.core.events import CallStatusChanged
from switch.core.model import Call
from switch.core.notifications import Notifications
from switch.core.recordings import RecordingManager
from switch.core.service import CallFilter, NewCall
from switch.core.store import PendingWebhook, Store
from switch.core.webhooks import Reply, WebhookDispatcher
from switch.dialects.conversations.callbacks import ConversationCallbacks
from switch.dialects.twilio.callbacks import TwilioCallbacks, TwilioTwiml
from switch.session.voice import VoiceEngine
from switch.verbs.registry import task_for
from tests.unit.fakes.app import FakeAudio, FakeFetcher, FakeSpeech
from tests.unit.fakes.legs import FakeLeg
from tests.unit.fakes.pool import FakePool
from tests.unit.fakes.script import Script

ACCOUNT = "AC" + "0" * 32
TOKEN = "0" * 32
BASE_URL = "http://switch.test"
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def loop_clock() -> dt.datetime:
    """Wall-clock time as the switch sees it: the event loop's (virtual) time after a fixed epoch."""
    return EPOCH + dt.timedelta(seconds=asyncio.get_running_loop().time())


class CapturingWebhooks(WebhookDispatcher):
    """The real dispatcher (persisted, ordered per call), delivering into `delivered` instead of HTTP."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, TOKEN)
        self.delivered: list[PendingWebhook] = []

    async def _attempt(self, hook: PendingWebhook) -> Reply:
        self.delivered.append(hook)
        return Reply(200, None)

    def to(self, url: str) -> list[dict[str, str]]:
        """The parameters of every webhook delivered to `url`, in order."""
        return [dict(h.params) for h in self.delivered if h.url == url]


class FakeSwitch:
    """The switch's control plane with fakes where processes, SIP and HTTP would be."""

    def __init__(self, root: Path, workers: int = 1, capacity: int = 16,
                 conversation_services: list[ConversationServiceConfig] | None = None,
                 trunks: list[Trunk] | None = None) -> None:
        self.root = root
        self.config = Config(data_dir=root, conversation_services=conversation_services or [], trunks=trunks or [])
        self.pool = FakePool(workers, capacity)
        self.app = FakeFetcher()
        self.speech = FakeSpeech(root / "fake" / "speech")
        self.audio = FakeAudio(root / "fake" / "audio")
        self.numbers: dict[str, Number] = {}
        self.changes: list[CallStatusChanged] = []

    async def start(self) -> FakeSwitch:
        self.store = Store(self.root / "softswitch.db")
        self.store.ensure_account(ACCOUNT, TOKEN)
        self.webhooks = CapturingWebhooks(self.store)
        self.calls = CallManager(self.config, ACCOUNT, TOKEN, self.store, self.webhooks, clock=loop_clock)
        self.calls.events.subscribe(TwilioCallbacks(self.webhooks, BASE_URL))
        self.calls.events.subscribe(ConversationCallbacks(self.webhooks))
        self.calls.events.subscribe(self._changed)
        self.calls.lookup_number = self.numbers.get
        self.notifications = Notifications(self.store, ACCOUNT)
        self.recordings = RecordingManager(self.store, self.calls, self.root, ACCOUNT,
                                           lambda rec: f"{BASE_URL}/Recordings/{rec.sid}", clock=loop_clock,
                                           notifications=self.notifications)
        self.voice = VoiceEngine(self.calls, self.root, TOKEN, self.notifications, self.recordings, task_for,
                                 dialect=TwilioTwiml())
        await self.voice.start()
        self.voice.fetcher = self.app  # type: ignore[assignment]
        self.voice.speech = self.speech  # type: ignore[assignment]
        self.voice.audio = self.audio  # type: ignore[assignment]
        self.conversations = Conversations(self.store, ACCOUNT, self.config.conversation_services, self.calls.events,
                                           lambda: list(self.calls.live.values()), clock=loop_clock)
        self.voice.conversations = self.conversations
        self.pool.connect(self.calls.on_worker_event, self.calls.on_worker_lost)
        self.calls.attach(self.pool)  # type: ignore[arg-type]
        return self

    async def close(self) -> None:
        await self.voice.close()
        await self.pool.close()
        await self.calls.shutdown(timeout=0.1)
        await self.recordings.close(timeout=1.0)
        self.store.close()

    def _changed(self, event: object) -> None:
        if isinstance(event, CallStatusChanged):
            self.changes.append(event)

    # -- calls ----------------------------------------------------------------------------------------
    def number(self, number: str, voice_url: str | None = "http://app.test/voice", **fields: str) -> Number:
        """An incoming phone number with its voice URL."""
        entry = Number(number=number, voice_url=voice_url, **fields)
        self.numbers[number] = entry
        return entry

    async def call_out(self, to: str = "sip:alice@phone.test", **fields: object) -> Call:
        """A REST-created call (`POST /Calls`): `url=` or `twiml=` and any other `NewCall` field."""
        fields.setdefault("from_", "+15550001111")
        return await self.calls.create_call(NewCall(to=to, **fields))  # type: ignore[arg-type]

    async def call_in(self, alias: str = "caller", to: str = "+15550100", script: Script | None = None,
                      from_: str = "+15551230000") -> FakeLeg:
        """A caller `alias` dials `to` (a number given to `number()`); returns once the switch saw the INVITE."""
        leg = self.pool.incoming(alias, to, from_, script)
        await asyncio.sleep(0)
        return leg

    def sid(self, alias: str) -> str:
        """The SID of the call on the leg `alias`."""
        leg = self.pool.leg(alias)
        if not leg.inbound:
            return leg.leg_id
        for call in self._every_call():
            if call.sip_call_id == leg.call_id:
                return call.sid
        raise KeyError(f"no call for the leg {alias}")

    def _every_call(self) -> list[Call]:
        return [*self.calls.live.values(), *self.store.list_calls(ACCOUNT, CallFilter(), 0, 10_000)]

    def call(self, alias: str) -> Call:
        """The call on leg `alias` as it is now (live, or as stored once it ended)."""
        call = self.calls.get_call(self.sid(alias))
        assert call is not None
        return dataclasses.replace(call)

    def history(self, alias: str) -> list[str]:
        """Every status change of the call on leg `alias`, in order (one event each, from the one status path)."""
        sid = self.sid(alias)
        return [str(change.status) for change in self.changes if change.call.sid == sid]

    def notes(self, alias: str) -> list[tuple[int, str]]:
        """The notifications (error code, message) recorded against the call on leg `alias`."""
        return [(n.error_code, n.message_text) for n in self.notifications.for_call(self.sid(alias))]

    async def ended(self, alias: str, timeout: float = 3600.0) -> Call:
        """Wait (virtual time) until the call on leg `alias` has a terminal status, then let its aftermath run."""
        call = self.calls.live.get(self.sid(alias))
        if call is not None:
            assert await self.calls.wait_until(call, lambda c: c.terminal, timeout), f"{alias} did not end"
        await self.settle()
        return self.call(alias)

    async def settle(self, seconds: float = 1.0) -> None:
        """Let `seconds` of virtual time pass: tasks the end left behind (hooks, recordings, webhooks) finish."""
        await asyncio.sleep(seconds)
