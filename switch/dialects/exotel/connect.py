"""The Exotel dialect on the call side: connect calls, their status callbacks with `Legs`, agent pass-through.

Exotel is a second edge, not a second engine: its calls are ordinary calls of `CallManager`, its callbacks
leave through the one `WebhookDispatcher`, and every Exotel name is spelled here, in `switch.dialects.exotel.render`
or in `switch.dialects.exotel.api`.

**Connect** (`POST /v1/Accounts/{sid}/Calls/connect`) is one call of two legs: the switch calls From; once
From answers, inline TwiML `<Dial>`s To and bridges them.  Leg 1 is an outbound-api call, leg 2 its Dial child.
The callbacks render the core's call events (`CallStatusChanged` of the legs, read through the one status ->
callback-event table; `DialLegPlaced` to learn leg 2), each at most once::

    leg 1 rings      -> ringing   Legs [in-progress, null]
    leg 1 answers    -> answered  Legs [in-progress, null]
    leg 2 rings      -> ringing   Legs [in-progress, in-progress]
    leg 2 answers    -> answered  Legs [in-progress, in-progress]
    both legs ended  -> terminal  Legs [final statuses with OnCallDuration, RingingDuration, AnsweredBy]

A leg whose operator sends no 180 has no ringing event (and a RingingDuration of 0), as Exotel documents.
Only subscribed events are sent; a StatusCallback without StatusCallbackEvents gets Exotel's default terminal
callback (CallSid, DateUpdated, Status, RecordingUrl).  The terminal callback waits for the Dial recording to be
finished so that its RecordingUrl can be fetched at once.

**Agent pass-through**: a `<Dial passthruUrl="...">` (a softswitch extension of TwiML) GETs Exotel's connect
applet parameters for every leg it places: EventType Dial when placed, Ringing, Answered, then Terminal.

What was sent is recorded once, by the webhook dispatcher (each webhook with the event it reports: `ringing:1`,
`terminal`, `passthru:<leg>:Ringing`, ...).  The state of each connect call is kept in the store (`exotel_calls`:
the request, leg 2, when each leg rang, whether it is finished), so call details survive a restart and a terminal
callback a crash prevented is sent at start-up.  Exotel's times are `YYYY-MM-DD HH:MM:SS`, in UTC here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
from typing import Any

from switch.core.calls import CallManager
from switch.core.events import CallEvent, CallStatusChanged, DialLegPlaced
from switch.core.model import Call, event_for_status
from switch.core.recordings import RecordingFilter, RecordingManager, RecordingStatus
from switch.core.routing import route
from switch.core.service import CallFilter, NewCall
from switch.core.store import Store
from switch.core.tasks import TaskSet
from switch.core.webhooks import WebhookSender
from switch.dialects.exotel.render import (
    LEG_EVENTS,
    PASSTHRU_EVENTS,
    CallView,
    Connect,
    ConnectRequest,
    Event,
    Passthru,
    callback_document,
    default_document,
    end_time,
    form_fields,
    passthru_params,
)
from twiml.fetch import resolve

log = logging.getLogger("switch.dialects.exotel.connect")

API_ROOT = "/v1"
RETRIES = 2  # Exotel retries a failed callback up to twice
RECORDING_WAIT = 15.0  # seconds the terminal callback waits for the recording to be finished
TERMINAL = str(Event.TERMINAL)

SCHEMA = """
CREATE TABLE IF NOT EXISTS exotel_calls (
    sid TEXT PRIMARY KEY, request TEXT NOT NULL, child_sid TEXT, ringing_at TEXT NOT NULL,
    finished INTEGER NOT NULL DEFAULT 0
);
"""


def migrate_store(store: Store) -> None:
    """A database from before `finished` kept a `sent` list of words: finished is "terminal" among them."""
    columns = {row["name"] for row in store.execute("PRAGMA table_info(exotel_calls)")}
    if "sent" not in columns:
        return
    if "finished" not in columns:
        store.execute("ALTER TABLE exotel_calls ADD COLUMN finished INTEGER NOT NULL DEFAULT 0")
    for row in store.execute("SELECT sid, sent FROM exotel_calls").fetchall():
        finished = "terminal" in row["sent"].split()
        store.execute("UPDATE exotel_calls SET finished = ? WHERE sid = ?", (int(finished), row["sid"]))
    store.execute("ALTER TABLE exotel_calls DROP COLUMN sent")


@dataclasses.dataclass
class _Passthru:
    """An agent leg whose progress is GET to a pass-through URL."""

    parent: Call
    child: Call
    url: str


class ExotelEdge:
    """Places connect calls, reports them to their StatusCallback, and sends agent pass-through requests."""

    def __init__(self, store: Store, calls: CallManager, webhooks: WebhookSender, recordings: RecordingManager,
                 account_sid: str, base_url: str) -> None:
        self.store = store
        self.calls = calls
        self.webhooks = webhooks
        self.recordings = recordings
        self.account_sid = account_sid  # Exotel's account SID (the path's {sid})
        self.base_url = base_url.rstrip("/")
        self._live: dict[str, Connect] = {}  # leg 1 SID -> connect call not yet reported terminal
        self._legs: dict[str, tuple[Connect, int]] = {}  # a live leg's SID -> its connect call, leg number
        self._passthru: dict[str, _Passthru] = {}  # a live agent leg's SID -> where its progress goes
        self._tasks = TaskSet()
        store.executescript(SCHEMA)
        migrate_store(store)
        self._unsubscribe = calls.events.subscribe(self._on_event)

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self) -> int:
        """Send the terminal callbacks a previous run left unsent."""
        resumed = 0
        for connect in self._load_unfinished():
            self._load_legs(connect)
            leg1, leg2 = connect.leg1, connect.leg2
            if leg1 is not None and leg1.terminal and (leg2 is None or leg2.terminal):
                self._live[connect.sid] = connect
                self._finish(connect)
                resumed += 1
        return resumed

    async def close(self) -> None:
        self._unsubscribe()
        await self._tasks.wait(RECORDING_WAIT)

    # -- connect ------------------------------------------------------------------------------------
    async def connect(self, request: ConnectRequest) -> CallView:
        """Call From now (To once From answers); returns the new call.

        Raises a request error when either number has no route: To is checked now, not when the agent has
        answered.
        """
        route(request.to, self.calls.config.trunks)
        leg1 = await self.calls.create_call(NewCall(
            to=request.from_, from_=request.caller_id or request.to, caller_id=request.caller_id,
            twiml=request.twiml(), timeout=request.timeout, time_limit=request.time_limit))
        connect = Connect(leg1.sid, request, self.calls.live.get(leg1.sid, leg1))
        self._live[leg1.sid] = connect
        self._save(connect)
        # No status change can have happened yet: worker events reach the loop only after this returns.
        if connect.leg1 is not None and connect.leg1.terminal:  # the worker was unreachable
            self._finish(connect)
        else:
            self._legs[leg1.sid] = (connect, 1)
        return self._view(connect)

    def _on_event(self, event: CallEvent) -> None:
        """The core's call events: status changes of the legs this edge follows, and `<Dial>` legs placed."""
        if isinstance(event, CallStatusChanged):
            sid = event.call.sid
            followed = self._legs.pop(sid, None) if event.call.terminal else self._legs.get(sid)
            if followed is not None:
                self._changed(followed[0], followed[1], event.call)
            agent = self._passthru.pop(sid, None) if event.call.terminal else self._passthru.get(sid)
            passthru = PASSTHRU_EVENTS.get(event.progress) if event.progress is not None else None
            if agent is not None and passthru is not None:
                self._report(agent, passthru)
        elif isinstance(event, DialLegPlaced):
            self._on_child(event.parent, event.child, event.document_url, event.passthru_url)

    def _changed(self, connect: Connect, number: int, call: Call) -> None:
        """A status change of leg `number` (1: From, 2: To); `call` is the leg after it."""
        if number == 1:
            connect.leg1 = call
        else:
            connect.leg2 = call
        event = event_for_status(call.status)
        progress = LEG_EVENTS.get(event) if event is not None else None
        if progress is Event.TERMINAL:
            self._save(connect)
            leg1, leg2 = connect.leg1, connect.leg2
            if leg1 is not None and leg1.terminal and (leg2 is None or leg2.terminal):
                self._finish(connect)
        elif progress is not None:
            if progress is Event.RINGING:
                connect.ringing_at.setdefault(number, call.date_updated)
            self._save(connect)
            if progress in connect.request.events:
                document = callback_document(connect, progress, self._view(connect, recording=False),
                                             call.date_updated)
                self._send(connect, f"{progress}:{number}", document)

    def _finish(self, connect: Connect) -> None:
        """Both legs ended: the terminal callback, once, after the recording is finished."""
        if connect.finished or connect.ending:
            return
        connect.ending = True
        self._tasks.spawn(self._terminal(connect), f"{connect.sid} (terminal callback)")

    async def _terminal(self, connect: Connect) -> None:
        view = self._view(connect, recording=False)
        at = end_time(view) or self.calls.clock()
        if connect.request.record:
            view = dataclasses.replace(view, recording_url=await self._finished_recording_url(connect.sid))
        connect.finished = True
        self._save(connect)
        self._live.pop(connect.sid, None)
        request = connect.request
        if request.events and Event.TERMINAL not in request.events:
            return
        document = (callback_document(connect, Event.TERMINAL, view, at) if request.events
                    else default_document(connect, view, at))
        self._send(connect, TERMINAL, document)

    def _send(self, connect: Connect, key: str, document: dict[str, Any]) -> None:
        """`document` to the StatusCallback, unless a callback reporting `key` went there already."""
        url = connect.request.status_callback
        if url is None or self.webhooks.sent(connect.sid, url, key):
            return
        if connect.request.body_format == "json":
            self.webhooks.send(connect.sid, url, "POST", [], "json", document=document, retries=RETRIES, event=key)
        else:
            self.webhooks.send(connect.sid, url, "POST", form_fields(document), "multipart", retries=RETRIES,
                               event=key)

    # -- Dial children: leg 2 of connect calls, agent pass-through ------------------------------------
    def _on_child(self, parent: Call, child: Call, document_url: str | None, passthru_url: str | None) -> None:
        connect = self._live.get(parent.sid)
        if connect is not None and connect.child_sid is None:
            connect.child_sid, connect.leg2 = child.sid, child
            self._save(connect)
            if child.terminal:
                self._changed(connect, 2, child)
            else:
                self._legs[child.sid] = (connect, 2)
        if passthru_url:
            agent = _Passthru(parent, child, resolve(document_url, passthru_url))
            self._report(agent, Passthru.DIAL)
            if child.terminal:
                self._report(agent, Passthru.TERMINAL)
            else:
                self._passthru[child.sid] = agent

    def _report(self, agent: _Passthru, event: Passthru) -> None:
        """GET the pass-through URL about the agent leg, once per event (keyed by the parent: in order)."""
        key = f"passthru:{agent.child.sid}:{event}"
        if not self.webhooks.sent(agent.parent.sid, agent.url, key):
            params = passthru_params(agent.parent, agent.child, event, self.calls.clock())
            self.webhooks.send(agent.parent.sid, agent.url, "GET", params, retries=RETRIES, event=key)

    # -- views for the REST edge ---------------------------------------------------------------------
    def view(self, sid: str) -> CallView | None:
        """Any call of the account as Exotel shows it (a connect call with its two legs)."""
        connect = self._live.get(sid)
        if connect is None and (connect := self._load(sid)) is not None:
            self._load_legs(connect)
        if connect is not None and connect.leg1 is not None:
            return self._view(connect)
        call = self.calls.get_call(sid)
        if call is None:
            return None
        children = self.calls.list_calls(CallFilter(parent_call_sid=sid), 0, 100)
        answered = [c for c in children if c.answer_time is not None]
        leg2 = (answered or children)[0] if children else None  # the Dial leg that talked, else the newest
        return CallView(call, leg2, None, self._recording_url(sid))

    def _view(self, connect: Connect, recording: bool = True) -> CallView:
        """A snapshot of `connect` (copies: the live legs keep changing)."""
        assert connect.leg1 is not None
        leg2 = dataclasses.replace(connect.leg2) if connect.leg2 is not None else None
        url = self._recording_url(connect.sid) if recording and connect.request.record else None
        return CallView(dataclasses.replace(connect.leg1), leg2, connect.request, url)

    def _load_legs(self, connect: Connect) -> None:
        connect.leg1 = self.calls.get_call(connect.sid)
        connect.leg2 = self.calls.get_call(connect.child_sid) if connect.child_sid else None

    def recording_media_url(self, recording_sid: str) -> str:
        return f"{self.base_url}{API_ROOT}/Accounts/{self.account_sid}/Recordings/{recording_sid}.mp3"

    async def _wait_recording(self, recording_sid: str) -> RecordingStatus:
        """The recording's final status; stopping an ending recording only joins its finalization."""
        try:
            done = await asyncio.wait_for(self.recordings.stop(recording_sid), RECORDING_WAIT)
        except TimeoutError:
            log.warning("recording %s not finished after %g s", recording_sid, RECORDING_WAIT)
            return RecordingStatus.PROCESSING
        return done.status

    def _recording_sid(self, call_sid: str) -> str | None:
        """The call's newest recording that has or may get audio."""
        recordings = self.recordings.list_recordings(RecordingFilter(call_sid=call_sid), 0, 10)
        usable = [r for r in recordings if r.status is not RecordingStatus.ABSENT]
        return usable[0].sid if usable else None

    def _recording_url(self, call_sid: str) -> str | None:
        sid = self._recording_sid(call_sid)
        return None if sid is None else self.recording_media_url(sid)

    async def _finished_recording_url(self, call_sid: str) -> str | None:
        """The recording URL once its file is ready (None when it captured nothing)."""
        sid = self._recording_sid(call_sid)
        if sid is None or await self._wait_recording(sid) is not RecordingStatus.COMPLETED:
            return None
        return self.recording_media_url(sid)

    # -- persistence -------------------------------------------------------------------------------
    def _save(self, connect: Connect) -> None:
        request = dataclasses.asdict(connect.request)
        request["events"] = [str(e) for e in connect.request.events]
        ringing = {str(k): v.isoformat() for k, v in connect.ringing_at.items()}
        self.store.execute(
            "INSERT OR REPLACE INTO exotel_calls (sid, request, child_sid, ringing_at, finished) "
            "VALUES (?, ?, ?, ?, ?)",
            (connect.sid, json.dumps(request), connect.child_sid, json.dumps(ringing), int(connect.finished)))

    @staticmethod
    def _from_row(row: Any) -> Connect:
        raw = json.loads(row["request"])
        raw["events"] = tuple(Event(e) for e in raw["events"])
        ringing = {int(k): dt.datetime.fromisoformat(v) for k, v in json.loads(row["ringing_at"]).items()}
        return Connect(row["sid"], ConnectRequest(**raw), child_sid=row["child_sid"], ringing_at=ringing,
                       finished=bool(row["finished"]))

    def _load(self, sid: str) -> Connect | None:
        row = self.store.execute("SELECT * FROM exotel_calls WHERE sid = ?", (sid,)).fetchone()
        return None if row is None else self._from_row(row)

    def _load_unfinished(self) -> list[Connect]:
        rows = self.store.execute("SELECT * FROM exotel_calls WHERE finished = 0")
        return [self._from_row(r) for r in rows.fetchall()]
