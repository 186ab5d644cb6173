"""The Exotel dialect on the call side: connect calls, their status callbacks with `Legs`, agent pass-through.

Exotel is a second edge, not a second engine: its calls are ordinary calls of `CallManager`, its callbacks
leave through the one `WebhookDispatcher`, and every Exotel name is spelled here or in `switch.dialects.exotel.api`.

**Connect** (`POST /v1/Accounts/{sid}/Calls/connect`) is one call of two legs: the switch calls From; once
From answers, inline TwiML `<Dial>`s To and bridges them.  Leg 1 is an outbound-api call, leg 2 its Dial child.
The callbacks are derived from the legs' status changes (`CallManager.watch`, and `DialSession`'s
child-placed hook to learn leg 2), each at most once::

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

Exotel's times are `YYYY-MM-DD HH:MM:SS`, in UTC here.  The state of each connect call is kept in the store
(`exotel_calls`), so call details survive a restart and a terminal callback a crash prevented is sent at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import enum
import json
import logging
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from switch.core.calls import CallManager
from switch.core.model import Call, Direction
from switch.core.recordings import RecordingFilter, RecordingManager, RecordingStatus
from switch.core.routing import is_sip_uri, route
from switch.core.service import CallFilter, NewCall
from switch.core.status import CallStatus
from switch.core.store import Store
from switch.core.tasks import TaskSet
from switch.core.webhooks import BodyFormat, WebhookDispatcher
from switch.verbs.dial import DialObserver, DialSession
from twiml.fetch import resolve

log = logging.getLogger("switch.dialects.exotel.connect")

API_ROOT = "/v1"
RETRIES = 2  # Exotel retries a failed callback up to twice
RECORDING_WAIT = 15.0  # seconds the terminal callback waits for the recording to be finished
DEFAULT_TIMEOUT = 30  # seconds each leg rings when TimeOut is not given
DEFAULT_TIME_LIMIT = 14400  # Exotel's maximum call length, 4 hours

# Our statuses in Exotel's words.  Exotel reports a ringing leg as in-progress (see its ringing samples).
STATUS: dict[CallStatus, str] = {
    CallStatus.QUEUED: "queued",
    CallStatus.INITIATED: "in-progress",
    CallStatus.RINGING: "in-progress",
    CallStatus.IN_PROGRESS: "in-progress",
    CallStatus.COMPLETED: "completed",
    CallStatus.BUSY: "busy",
    CallStatus.NO_ANSWER: "no-answer",
    CallStatus.FAILED: "failed",
    CallStatus.CANCELED: "canceled",
}
# A call's overall terminal Status is one of completed, failed, busy, no-answer: a leg we cancelled (the other
# party hung up while it rang) counts as not answered.
_OVERALL = {"canceled": "no-answer"}


class Event(enum.StrEnum):
    """StatusCallbackEvents values."""

    RINGING = "ringing"
    ANSWERED = "answered"
    TERMINAL = "terminal"


class Passthru(enum.StrEnum):
    """EventType of an agent pass-through request."""

    DIAL = "Dial"
    RINGING = "Ringing"
    ANSWERED = "Answered"
    TERMINAL = "Terminal"


def exotel_time(moment: dt.datetime | None) -> str | None:
    """Exotel's time format, `2019-04-08 03:17:59` (UTC here)."""
    return None if moment is None else moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> int:
    return 0 if start is None or end is None else max(0, round((end - start).total_seconds()))


@dataclass(frozen=True)
class ConnectRequest:
    """A validated `Calls/connect` request."""

    from_: str  # called first (the agent)
    to: str  # called once From answers (the customer)
    caller_id: str | None = None  # the ExoPhone both parties see; Exotel's PhoneNumberSid
    call_type: str = "trans"
    time_limit: int = DEFAULT_TIME_LIMIT
    timeout: int = DEFAULT_TIMEOUT
    record: bool = False
    recording_channels: str = "single"  # single | dual
    recording_format: str = "mp3"  # mp3 | mp3-hq (the same file here: the audio is 8 kHz telephony)
    custom_field: str | None = None
    status_callback: str | None = None
    events: tuple[Event, ...] = ()  # none: Exotel's default terminal callback only
    body_format: BodyFormat = "json"  # StatusCallbackContentType: application/json or multipart/form-data

    def twiml(self) -> str:
        """What leg 1 runs once answered: dial To and bridge, recording from the bridge when asked."""
        attrs = {
            "callerId": self.caller_id or self.from_,  # without an ExoPhone, To sees From's number
            "timeout": str(self.timeout),
            "timeLimit": str(self.time_limit),
        }
        if self.record:
            attrs["record"] = "record-from-answer-dual" if self.recording_channels == "dual" else "record-from-answer"
        noun = "Sip" if is_sip_uri(self.to) else "Number"
        rendered = "".join(f" {name}={quoteattr(value)}" for name, value in attrs.items())
        return f"<Response><Dial{rendered}><{noun}>{escape(self.to)}</{noun}></Dial></Response>"


@dataclass
class Connect:
    """One connect call: what was asked, its legs (live objects while it lasts) and what was reported."""

    sid: str  # leg 1's SID, the Exotel CallSid
    request: ConnectRequest
    leg1: Call | None = None
    leg2: Call | None = None
    child_sid: str | None = None
    ringing_at: dict[int, dt.datetime] = field(default_factory=dict)  # leg number -> when it started ringing
    sent: set[str] = field(default_factory=set)  # "ringing:1", "answered:2", "terminal", ...
    ending: bool = False  # the terminal callback is on its way (waiting for the recording)


@dataclass(frozen=True)
class CallView:
    """What Exotel's Call resource and call details show of a call: its legs and, for connect calls, the request."""

    leg1: Call
    leg2: Call | None
    request: ConnectRequest | None
    recording_url: str | None

    @property
    def connect(self) -> bool:
        return self.request is not None

    @property
    def ended(self) -> bool:
        return self.leg1.terminal and (self.leg2 is None or self.leg2.terminal)


def start_time(leg1: Call) -> dt.datetime:
    """Exotel's StartTime: when leg 1 was answered, or until then when it was called.

    This is what Exotel's samples show: the first ringing event carries the dial time, later events the
    answer time, and leg 1's OnCallDuration at the end is EndTime - StartTime.
    """
    return leg1.answer_time or leg1.start_time or leg1.date_created


def end_time(view: CallView) -> dt.datetime | None:
    if not view.ended:
        return None
    ends = [leg.end_time for leg in (view.leg1, view.leg2) if leg is not None and leg.end_time is not None]
    return max(ends) if ends else None


def overall_status(view: CallView) -> str:
    """The call's Status: each leg's while it lasts; at the end, completed only if the legs talked."""
    leg1, leg2 = view.leg1, view.leg2
    if not view.ended:
        return STATUS[leg1.status]
    if leg1.answer_time is None:
        status = STATUS[leg1.status]
    elif leg2 is None:
        status = "failed" if view.connect else STATUS[leg1.status]  # connect: To was never dialed
    else:
        status = STATUS[leg2.status]
    return _OVERALL.get(status, status)


def conversation_duration(view: CallView) -> int:
    """Seconds From and To were connected: leg 2's time on call."""
    if view.leg2 is None:
        return 0 if view.connect else view.leg1.duration or 0
    return view.leg2.duration or 0


def _leg(call: Call | None, ringing_at: dt.datetime | None, terminal: bool) -> dict[str, Any]:
    if not terminal:
        return {"OnCallDuration": None, "Status": None if call is None else STATUS[call.status]}
    if call is None:  # never dialed: leg 1 did not answer, or hung up first
        return {"OnCallDuration": 0, "RingingDuration": 0, "Status": None, "AnsweredBy": "NA"}
    return {
        "OnCallDuration": call.duration or 0,
        "RingingDuration": _seconds(ringing_at, call.answer_time or call.end_time),
        "Status": STATUS[call.status],
        "AnsweredBy": call.answered_by or "NA",  # no answering-machine detection: not analysed
    }


def callback_document(connect: Connect, event: Event, view: CallView, at: dt.datetime) -> dict[str, Any]:
    """A status callback of `connect` for `event`, in the reference samples' shape and order."""
    request = connect.request
    terminal = event is Event.TERMINAL
    return {
        "CallSid": connect.sid,
        "EventType": str(event),
        "DateCreated": exotel_time(view.leg1.date_created),
        "DateUpdated": exotel_time(at),
        "Status": overall_status(view),
        "To": request.to,
        "From": request.from_,
        "PhoneNumberSid": request.caller_id,
        "StartTime": exotel_time(start_time(view.leg1)),
        "EndTime": exotel_time(end_time(view)) if terminal else None,
        "EventTime": exotel_time(at),
        "Direction": str(Direction.OUTBOUND_API),
        "RecordingUrl": view.recording_url if terminal else None,
        "ConversationDuration": conversation_duration(view) if terminal else None,
        "CustomField": request.custom_field,
        "Legs": [_leg(view.leg1, connect.ringing_at.get(1), terminal),
                 _leg(view.leg2, connect.ringing_at.get(2), terminal)],
    }


def default_document(connect: Connect, view: CallView, at: dt.datetime) -> dict[str, Any]:
    """Exotel's callback when no StatusCallbackEvents were given: sent once, at the end."""
    return {"CallSid": connect.sid, "DateUpdated": exotel_time(at), "Status": overall_status(view),
            "RecordingUrl": view.recording_url}


def form_fields(document: dict[str, Any]) -> list[tuple[str, str]]:
    """A callback document as form fields for multipart/form-data: `Legs[0][Status]`, ...; null is empty."""

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    fields: list[tuple[str, str]] = []
    for key, value in document.items():
        if isinstance(value, list):
            for index, item in enumerate(value):
                fields += [(f"{key}[{index}][{name}]", text(inner)) for name, inner in item.items()]
        else:
            fields.append((key, text(value)))
    return fields


def passthru_params(parent: Call, child: Call, event: Passthru, now: dt.datetime) -> list[tuple[str, str]]:
    """The query of an agent pass-through GET about `child`, an agent leg of `parent`."""
    return [
        ("CallSid", parent.sid),
        ("CallFrom", parent.from_),
        ("CallTo", parent.to),
        ("Direction", str(Direction.OUTBOUND_DIAL)),
        ("Created", exotel_time(parent.date_created) or ""),
        ("From", parent.from_),
        ("To", parent.to),
        ("CurrentTime", exotel_time(now) or ""),
        ("DialWhomNumber", child.to),
        ("Status", "free" if event is Passthru.TERMINAL else "busy"),
        ("EventType", str(event)),
    ]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS exotel_calls (
    sid TEXT PRIMARY KEY, request TEXT NOT NULL, child_sid TEXT, ringing_at TEXT NOT NULL, sent TEXT NOT NULL
);
"""


class ExotelEdge:
    """Places connect calls, reports them to their StatusCallback, and sends agent pass-through requests."""

    def __init__(self, store: Store, calls: CallManager, webhooks: WebhookDispatcher, recordings: RecordingManager,
                 account_sid: str, base_url: str, dial_observers: list[DialObserver]) -> None:
        self.store = store
        self._dial_observers = dial_observers  # the voice engine's: this edge follows <Dial> children
        self.calls = calls
        self.webhooks = webhooks
        self.recordings = recordings
        self.account_sid = account_sid  # Exotel's account SID (the path's {sid})
        self.base_url = base_url.rstrip("/")
        self._live: dict[str, Connect] = {}  # leg 1 SID -> connect call not yet reported terminal
        self._tasks = TaskSet()
        store.executescript(_SCHEMA)

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self) -> int:
        """Watch Dial children from now on; send the terminal callbacks a previous run left unsent."""
        if self._on_child not in self._dial_observers:
            self._dial_observers.append(self._on_child)
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
        with contextlib.suppress(ValueError):
            self._dial_observers.remove(self._on_child)
        await self._tasks.wait(RECORDING_WAIT)

    # -- connect ------------------------------------------------------------------------------------
    async def connect(self, request: ConnectRequest) -> CallView:
        """Call From now (To once From answers); returns the new call.

        Raises ApiError when either number has no route: To is checked now, not when the agent has answered.
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
            self.calls.watch(leg1.sid, lambda call: self._changed(connect, 1, call))
        return self._view(connect)

    def _changed(self, connect: Connect, number: int, call: Call) -> None:
        """A status change of leg `number` (1: From, 2: To)."""
        if number == 1:
            connect.leg1 = call
        else:
            connect.leg2 = call
        if call.status is CallStatus.RINGING:
            connect.ringing_at.setdefault(number, call.date_updated)
            self._event(connect, Event.RINGING, number, call.date_updated)
        elif call.status is CallStatus.IN_PROGRESS:
            self._event(connect, Event.ANSWERED, number, call.date_updated)
        elif call.terminal:
            self._save(connect)
            leg1, leg2 = connect.leg1, connect.leg2
            if leg1 is not None and leg1.terminal and (leg2 is None or leg2.terminal):
                self._finish(connect)

    def _event(self, connect: Connect, event: Event, number: int, at: dt.datetime) -> None:
        key = f"{event}:{number}"
        if key in connect.sent:
            return
        connect.sent.add(key)
        self._save(connect)
        if event in connect.request.events:
            self._send(connect, callback_document(connect, event, self._view(connect, recording=False), at))

    def _finish(self, connect: Connect) -> None:
        """Both legs ended: the terminal callback, once, after the recording is finished."""
        if "terminal" in connect.sent or connect.ending:
            return
        connect.ending = True
        self._tasks.spawn(self._terminal(connect), f"{connect.sid} (terminal callback)")

    async def _terminal(self, connect: Connect) -> None:
        view = self._view(connect, recording=False)
        at = end_time(view) or self.calls.clock()
        if connect.request.record:
            view = dataclasses.replace(view, recording_url=await self._finished_recording_url(connect.sid))
        connect.sent.add("terminal")
        self._save(connect)
        self._live.pop(connect.sid, None)
        request = connect.request
        if request.events and Event.TERMINAL not in request.events:
            return
        document = (callback_document(connect, Event.TERMINAL, view, at) if request.events
                    else default_document(connect, view, at))
        self._send(connect, document)

    def _send(self, connect: Connect, document: dict[str, Any]) -> None:
        url = connect.request.status_callback
        if url is None:
            return
        if connect.request.body_format == "json":
            self.webhooks.send(connect.sid, url, "POST", [], "json", document=document, retries=RETRIES)
        else:
            self.webhooks.send(connect.sid, url, "POST", form_fields(document), "multipart", retries=RETRIES)

    # -- Dial children: leg 2 of connect calls, agent pass-through ------------------------------------
    def _on_child(self, session: DialSession, child: Call) -> None:
        try:
            connect = self._live.get(session.parent.sid)
            if connect is not None and connect.child_sid is None:
                connect.child_sid, connect.leg2 = child.sid, child
                self._save(connect)
                if child.terminal:
                    self._changed(connect, 2, child)
                else:
                    self.calls.watch(child.sid, lambda call: self._changed(connect, 2, call))
            if session.dial.passthru_url:
                self._passthru(session.parent, child, resolve(session.document_url, session.dial.passthru_url))
        except Exception:
            log.exception("%s: could not follow the Dial leg %s", session.parent.sid, child.sid)

    def _passthru(self, parent: Call, child: Call, url: str) -> None:
        """GET `url` about `child` when it is placed, rings, answers and ends (keyed by the parent: in order)."""
        sent: set[Passthru] = set()

        def report(event: Passthru) -> None:
            if event not in sent:
                sent.add(event)
                params = passthru_params(parent, child, event, self.calls.clock())
                self.webhooks.send(parent.sid, url, "GET", params, retries=RETRIES)

        def changed(call: Call) -> None:
            if call.status is CallStatus.RINGING:
                report(Passthru.RINGING)
            elif call.status is CallStatus.IN_PROGRESS:
                report(Passthru.ANSWERED)
            elif call.terminal:
                report(Passthru.TERMINAL)

        report(Passthru.DIAL)
        if child.terminal:
            report(Passthru.TERMINAL)
        else:
            self.calls.watch(child.sid, changed)

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
            "INSERT OR REPLACE INTO exotel_calls (sid, request, child_sid, ringing_at, sent) VALUES (?, ?, ?, ?, ?)",
            (connect.sid, json.dumps(request), connect.child_sid, json.dumps(ringing), " ".join(sorted(connect.sent))))

    @staticmethod
    def _from_row(row: Any) -> Connect:
        raw = json.loads(row["request"])
        raw["events"] = tuple(Event(e) for e in raw["events"])
        ringing = {int(k): dt.datetime.fromisoformat(v) for k, v in json.loads(row["ringing_at"]).items()}
        return Connect(row["sid"], ConnectRequest(**raw), child_sid=row["child_sid"], ringing_at=ringing,
                       sent=set(row["sent"].split()))

    def _load(self, sid: str) -> Connect | None:
        row = self.store.execute("SELECT * FROM exotel_calls WHERE sid = ?", (sid,)).fetchone()
        return None if row is None else self._from_row(row)

    def _load_unfinished(self) -> list[Connect]:
        rows = self.store.execute("SELECT * FROM exotel_calls WHERE ' ' || sent || ' ' NOT LIKE '% terminal %'")
        return [self._from_row(r) for r in rows.fetchall()]
