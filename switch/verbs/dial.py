"""`<Dial>`: ring one or more child legs, bridge the first that answers, report how it went.

Children are ordinary calls (direction outbound-dial, `parent_call_sid` set) placed on the parent's worker,
so their status callbacks, store records and REST views come from the same engine as every other call.
Parallel dialing (the default) rings every noun and cancels the rest when one answers; `sequential`
tries them in order.  Until a child answers the caller hears a ringback tone (unless `answerOnBridge`,
which keeps the caller unanswered until the bridge).  The conversation ends when either side hangs up, at
`timeLimit`, or when the caller presses `*` with `hangupOnStar`.  If the interpreter is cancelled (the
caller hung up, or a REST redirect of the parent) the children are cancelled or hung up and `result` still
says how far the dial got, so the action URL can be told.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from switch.core.errors import INTERNAL_FAILURE, RequestError
from switch.core.events import DialLegPlaced, snapshot
from switch.core.model import Call, CallbackEvent
from switch.core.recording_model import RecordingSource
from switch.core.service import NewCall
from switch.core.status import CallStatus
from switch.session.voice import LiveCall
from switch.verbs.base import Task, run_session
from switch.verbs.dial_conference import dial_conference
from switch.verbs.dial_queue import dial_queue
from switch.verbs.dial_refer import watch_refers
from switch.verbs.dial_state import Caller, DialState, Phase
from switch.workers.media import MediaError
from twiml import verbs
from twiml.control import CONTINUE, Outcome
from twiml.fetch import Document, resolve
from twiml.interpreter import Interpreter, Source

log = logging.getLogger("switch.verbs.dial")

MEDIA_FAILURE = INTERNAL_FAILURE  # the notification of a failed bridge, as the interpreter reports other media failures


@dataclass(frozen=True)
class DialResult:
    """What the Dial action URL is told."""

    status: str  # completed, busy, no-answer, failed, canceled
    child_sid: str | None = None
    duration: int = 0
    sip_code: int | None = None
    sip: bool = False
    recording: tuple[tuple[str, str], ...] = ()  # RecordingUrl, RecordingSid, RecordingDuration

    def params(self) -> tuple[tuple[str, str], ...]:
        out = [("DialCallStatus", self.status)]
        if self.child_sid:
            out += [("DialCallSid", self.child_sid), ("DialCallDuration", str(self.duration))]
        if self.sip and self.sip_code is not None:
            out.append(("DialSipResponseCode", str(self.sip_code)))
        return (*out, *self.recording)


def _child_request(parent: Call, dial: verbs.Dial, noun: RingNoun, document_url: str | None) -> NewCall:
    events = frozenset(CallbackEvent(e) for e in noun.status_callback_event)
    common: dict[str, object] = {
        "from_": dial.caller_id or parent.from_,
        "status_callback": resolve(document_url, noun.status_callback) if noun.status_callback else None,
        "status_callback_method": noun.status_callback_method,
        "status_callback_events": events,
        "timeout": dial.timeout,
        "time_limit": dial.time_limit,
    }
    if isinstance(noun, verbs.Number | verbs.Sip) and noun.machine_detection is not None:
        common.update(_machine_detection(noun, document_url))
    if isinstance(noun, verbs.Sip):
        return NewCall(to=noun.uri, sip_auth_username=noun.username, sip_auth_password=noun.password,
                       **common)  # type: ignore[arg-type]
    if isinstance(noun, verbs.Client):
        return NewCall(to=f"client:{noun.identity}", client_parameters=dict(noun.parameters) or None,
                       **common)  # type: ignore[arg-type]
    return NewCall(to=noun.number, send_digits=noun.send_digits, **common)  # type: ignore[arg-type]


def _machine_detection(noun: verbs.Number | verbs.Sip, document_url: str | None) -> dict[str, object]:
    """A leg's answering-machine detection (switch.core.amd): always asynchronous on a `<Dial>` leg, its answer to
    the noun's amdStatusCallback while the leg is bridged."""
    callback = noun.amd_status_callback
    return {
        "machine_detection": noun.machine_detection,
        "machine_detection_timeout": noun.machine_detection_timeout,
        "machine_detection_speech_threshold": noun.machine_detection_speech_threshold,
        "machine_detection_speech_end_threshold": noun.machine_detection_speech_end_threshold,
        "machine_detection_silence_timeout": noun.machine_detection_silence_timeout,
        "async_amd": True,
        "async_amd_status_callback": resolve(document_url, callback) if callback else None,
        "async_amd_status_callback_method": noun.amd_status_callback_method,
    }


def request_target(noun: RingNoun) -> str:
    """How a noun is named in a notification: its number, SIP URI or client identity."""
    if isinstance(noun, verbs.Sip):
        return noun.uri
    if isinstance(noun, verbs.Client):
        return f"client:{noun.identity}"
    return noun.number


RingNoun = verbs.Number | verbs.Sip | verbs.Client
"""A noun `<Dial>` rings (a `<Conference>` or `<Queue>` runs its own way: `Dial.run`)."""


def ringing_nouns(dial: verbs.Dial) -> tuple[RingNoun, ...]:
    return tuple(n for n in dial.nouns if isinstance(n, verbs.Number | verbs.Sip | verbs.Client))


class DialSession:
    """One run of a `<Dial>` verb on a parent call."""

    def __init__(self, live: LiveCall, dial: verbs.Dial, document_url: str | None) -> None:
        self.live = live
        self.dial = dial
        self.document_url = document_url  # relative URLs in the nouns are resolved against it
        self.calls = live.engine.calls
        self.result: DialResult | None = None
        self.transfer: Document | None = None  # a REFER from the dialed party was taken: run this on the caller
        self.children: list[Call] = []
        self.state = DialState(Caller.ON_BRIDGE if dial.answer_on_bridge and not live.answered else Caller.ANSWERING)
        self._unwatch: list[object] = []
        self._ring_task: asyncio.Task[str] | None = None

    @property
    def parent(self) -> Call:
        return self.live.call

    async def run(self) -> DialResult:
        answering: asyncio.Task[None] | None = None
        try:
            if not self.dial.answer_on_bridge and not self.live.answered:
                # The children are placed while the caller's 200 and ACK go on: answering adds no post-dial delay.
                answering = asyncio.create_task(self._answer_caller())
                answering.add_done_callback(self._caller_lost)
            elif self.live.answered:
                await self._caller_ready()
            winner = None
            nouns = ringing_nouns(self.dial)
            groups = [[n] for n in nouns] if self.dial.sequential else [list(nouns)]
            for group in groups:
                if self.state.caller_failed:
                    break
                winner = await self._ring(group)
                if winner is not None:
                    break
            if answering is not None:
                await answering
            self._stop_ringback()
            state = self.state
            if state.early is not None and state.early is not winner:
                with contextlib.suppress(MediaError):
                    self.calls.media.unbridge(self.parent.sid)
            if winner is None:
                state.move(Phase.ENDED)
                self.result = self._failure()
                return self.result
            state.winner = winner
            self.result = DialResult("completed", winner.sid, sip=state.winner_is_sip)
            if not self.live.answered:
                await self.live.answer()  # answerOnBridge: the caller is answered only now
                state.caller_is(Caller.UP)
            if state.early is not winner:
                try:
                    await self.calls.media.bridge(self.parent.sid, winner.sid)
                except MediaError as exc:  # the worker answered BridgeFailed (or the leg went away)
                    return await self._bridge_failed(winner, exc)
            state.move(Phase.BRIDGED)
            if state.recording is None:
                await self._start_recording(winner)
            elif state.early is not winner:
                await self.live.engine.recordings.attach(state.recording, 1, winner.sid)
            await self._talk(winner)
            await self._end_child(winner)
            recording = await self._stop_recording()
            state.move(Phase.ENDED)
            self.result = DialResult("completed", winner.sid, winner.duration or 0, winner.sip_response_code,
                                     state.winner_is_sip, recording)
            return self.result
        except asyncio.CancelledError:
            self._abort()
            raise
        finally:
            if answering is not None:
                answering.cancel()
            self._stop_ringback()
            for unwatch in self._unwatch:
                unwatch()  # type: ignore[operator]

    def placed(self, child: Call) -> None:
        """A child leg was just placed, before its first status change: a `DialLegPlaced` call event (the
        Exotel edge follows connect calls' second legs and pass-through agents with it); subclasses add theirs."""
        self.calls.events.emit(DialLegPlaced(snapshot(self.parent), snapshot(child), self.document_url,
                                             self.dial.passthru_url))

    def _caller_lost(self, task: asyncio.Task[None]) -> None:
        """Answering the caller failed (its media never came up): stop ringing; `run` then raises why."""
        if task.cancelled() or task.exception() is None:
            return
        self.state.caller_is(Caller.FAILED)
        for child in self.children:
            if not child.terminal:
                self.calls.cancel(child)

    async def _answer_caller(self) -> None:
        await self.live.answer()
        await self._caller_ready()

    async def _caller_ready(self) -> None:
        """The caller is answered: record from ringing, and play ringback, or the early media that came first."""
        self.state.caller_is(Caller.UP)
        if self.dial.record.startswith("record-from-ringing"):
            await self._start_recording(None)  # the caller's channel from now; the child joins later
        pending, self.state.pending_early = self.state.pending_early, None
        if pending is not None and pending.status is CallStatus.RINGING:
            await self._early_media(pending)
        if self.state.phase is Phase.PLACING:
            self._start_ringback()

    def _start_ringback(self) -> None:
        self.state.move(Phase.RINGBACK)
        self._ring_task = asyncio.create_task(self._ringback())

    def _stop_ringback(self) -> None:
        if self._ring_task is not None:
            self._ring_task.cancel()
            self._ring_task = None

    async def _start_recording(self, child: Call | None) -> None:
        """`record`: the caller on channel 1 and the dialed party on channel 2 (mixed for mono).  From answer:
        both legs at the bridge.  From ringing: the caller from the dial's start, the child's channel silent
        until its early media or answer joins it."""
        mode = self.dial.record
        if mode == "do-not-record":
            return
        callback = self.dial.recording_status_callback
        legs = [self.parent.sid] if child is None else [self.parent.sid, child.sid]
        rec = await self.live.engine.recordings.start(
            legs, RecordingSource.DIAL, 2 if mode.endswith("-dual") else 1,
            self.dial.trim == "trim-silence", resolve(self.document_url, callback) if callback else None,
            self.dial.recording_status_callback_method, tuple(self.dial.recording_status_callback_event),
            self.parent.sid, slots=2)
        self.state.recording = rec.sid

    async def _stop_recording(self) -> tuple[tuple[str, str], ...]:
        if self.state.recording is None:
            return ()
        recordings = self.live.engine.recordings
        done = await recordings.stop(self.state.recording)
        self.state.recording = None
        if str(done.status) != "completed":
            return ()
        return (("RecordingUrl", recordings.media_url(done)), ("RecordingSid", done.sid),
                ("RecordingDuration", str(done.duration or 0)))

    async def _ringback(self) -> str:
        path = self.live.engine.ringback_path(self.dial.ring_tone)
        return await self.live.play(path, loop_forever=True)

    async def _ring(self, nouns: list[RingNoun]) -> Call | None:
        """Ring `nouns` at once; the first to answer (and accept any whisper) wins, the rest are cancelled."""
        queue: asyncio.Queue[Call] = asyncio.Queue()
        ringing: dict[str, RingNoun] = {}
        for noun in nouns:
            try:
                request = _child_request(self.parent, self.dial, noun, self.document_url)
                target = await self.calls.route_client(request.to)  # a <Client>: where its phones are
                child = self.calls.create_child(self.parent, request, target)
            except RequestError as exc:
                where = request_target(noun)
                self.live.notify(self.live.engine.dialect.error_code(exc), f"<Dial> could not place {where}: "
                                                                           f"{exc.message}")
                continue
            self.children.append(child)
            self.placed(child)
            ringing[child.sid] = noun
            self._unwatch.append(self.calls.watch(child.sid, queue.put_nowait))
        while ringing:
            call = await queue.get()
            if call.sid not in ringing:
                continue
            if call.status is CallStatus.IN_PROGRESS:
                noun = ringing.pop(call.sid)
                for other in ringing:
                    live_child = self.calls.live.get(other)
                    if live_child is not None:
                        self.calls.cancel(live_child)
                if noun.url and not await self._whisper(call, noun):
                    continue
                self.state.winner_is_sip = isinstance(noun, verbs.Sip)
                return call
            if call.status is CallStatus.RINGING and call.sip_response_code == 183:
                await self._early_media(call)
            if call.status.terminal:
                ringing.pop(call.sid, None)
                self._early_ended(call, others_ringing=bool(ringing))
        return None

    def _early_ended(self, child: Call, others_ringing: bool) -> None:
        """The child whose early media the caller heard gave up: ringback again while others still ring."""
        if self.state.early is not child:
            return
        self.state.early = None
        if others_ringing and self.state.caller_up:
            self._start_ringback()

    async def _early_media(self, child: Call) -> None:
        """183 with SDP: the caller hears the child's early media instead of our ringback."""
        state = self.state
        if state.early is not None or not self.live.answered:
            return
        if not state.caller_up:  # the caller's answer is still on its way: bridge once it is up
            state.pending_early = child
            return
        self._stop_ringback()
        state.early = child  # taken before the worker answers: one early bridge at a time
        try:
            await self.calls.media.bridge(self.parent.sid, child.sid)
        except MediaError as exc:
            log.info("%s: no early media from %s: %s", self.parent.sid, child.sid, exc)
            if state.early is child:
                state.early = None
            if state.phase is Phase.PLACING:
                self._start_ringback()
            elif state.phase is Phase.RINGBACK:
                self._ring_task = asyncio.create_task(self._ringback())
            return
        if state.early is not child:  # it gave up while the bridge was being made (`_early_ended`)
            return
        state.move(Phase.EARLY_MEDIA)
        if state.recording is not None:  # record-from-ringing: the early media is the child's channel
            self.live.engine.background.spawn(self.live.engine.recordings.attach(state.recording, 1, child.sid),
                                              self.parent.sid)

    async def _whisper(self, child: Call, noun: RingNoun) -> bool:
        """Run the noun's `url` TwiML on the called party; False when it declined (hung up)."""
        assert noun.url is not None
        engine = self.live.engine
        whisper = Interpreter(LiveCall(engine, child), engine.fetcher, engine.tasks, hangup_when_done=False)
        await whisper.run(Source(url=resolve(self.document_url, noun.url), method=noun.method))
        if whisper.stopped or child.terminal:  # <Hangup>/<Reject> in the whisper: the agent declined
            self.state.declined.append(child)
            return False
        return True

    async def _talk(self, winner: Call) -> None:
        """Until the child hangs up, the time limit, or `*` from the caller (hangupOnStar)."""
        if winner.terminal:
            return
        waits: list[asyncio.Task[object]] = [
            asyncio.create_task(self.calls.wait_until(winner, lambda c: c.terminal, None))]
        if self.dial.hangup_on_star:
            waits.append(asyncio.create_task(self._star()))  # type: ignore[arg-type]
        media = self.calls.media
        refers = asyncio.create_task(watch_refers(self.live, self.dial, self.document_url, winner))
        waits.append(refers)  # type: ignore[arg-type]
        if self.dial.refer_url is not None:
            with contextlib.suppress(MediaError):
                media.allow_refer(winner.sid)  # refused (403, 13802) on every other leg
        try:
            await asyncio.wait(waits, timeout=self.dial.time_limit, return_when=asyncio.FIRST_COMPLETED)
            if refers.done() and not refers.cancelled():
                if refers.exception() is None:
                    self.transfer = refers.result()
                else:
                    log.error("%s: REFER handling failed", self.parent.sid, exc_info=refers.exception())
        finally:
            for task in waits:
                task.cancel()
            media.forget_refers(winner.sid)

    async def _star(self) -> None:
        digits = self.live.digits()
        while await digits.get() != "*":
            pass

    async def _bridge_failed(self, winner: Call, exc: MediaError) -> DialResult:
        """The worker could not bridge the caller to the child that answered: the child is hung up, the dial
        ends `failed`, and the call gets a notification, as for other media failures."""
        self.live.notify(MEDIA_FAILURE, f"<Dial> could not connect the caller to {winner.sid}: {exc}")
        await self._end_child(winner)
        await self._stop_recording()
        self.state.move(Phase.ENDED)
        self.result = DialResult("failed", winner.sid, 0, winner.sip_response_code, self.state.winner_is_sip)
        return self.result

    async def _end_child(self, child: Call) -> None:
        with contextlib.suppress(MediaError):
            self.calls.media.unbridge(self.parent.sid)
        if child.terminal:
            return
        self.calls.cancel(child)
        await self.calls.wait_until(child, lambda c: c.terminal, 5.0)

    def _abort(self) -> None:
        """Cancelled: cancel ringing children, hang up a connected one, and record how far we got."""
        state = self.state
        if state.recording is not None:
            self.live.engine.background.spawn(self.live.engine.recordings.stop(state.recording), self.parent.sid)
        for child in self.children:
            if not child.terminal:
                self.calls.cancel(child)
        state.move(Phase.ENDED)
        winner = state.winner
        if winner is not None:
            duration = 0 if winner.answer_time is None else round(time.time() - winner.answer_time.timestamp())
            self.result = DialResult("completed", winner.sid, max(0, duration), winner.sip_response_code,
                                     state.winner_is_sip)
        else:
            self.result = DialResult("canceled")

    def _failure(self) -> DialResult:
        """Nobody answered: the most telling child outcome (no-answer, busy, failed, canceled)."""
        for status in (CallStatus.NO_ANSWER, CallStatus.BUSY, CallStatus.FAILED, CallStatus.CANCELED):
            for child in reversed(self.children):
                if child.status is status:
                    return DialResult(str(status), child.sid, 0, child.sip_response_code, self._is_sip(child))
        if self.state.declined:  # a whisper declined: for the caller that is a call nobody took
            child = self.state.declined[-1]
            return DialResult("no-answer", child.sid, 0, child.sip_response_code, self._is_sip(child))
        return DialResult("failed")

    def _is_sip(self, child: Call) -> bool:
        return any(isinstance(n, verbs.Sip) and n.uri == child.to for n in self.dial.nouns)


class Dial(Task[verbs.Dial]):
    """`<Dial action method timeout callerId timeLimit hangupOnStar answerOnBridge ringTone record trim
    recordingStatusCallback* sequential referUrl referMethod>` with `<Number>`/`<Sip>`/`<Client>` nouns or a plain
    number: ring the nouns (in parallel by default; a `<Client>` rings every registered phone of its identity,
    `switch.core.sip_calls`), bridge the first that answers (`DialSession`); then request `action` with
    DialCallStatus, DialCallSid, DialCallDuration (DialSipResponseCode for <Sip>, RecordingUrl... when
    recording), or go on with the next verb.  When the dial is interrupted (caller hung up, REST redirect) the
    action is still told, and its answer ignored.  A REFER from the dialed party runs `referUrl`'s TwiML on the
    caller (`switch.verbs.dial_refer`)."""

    verb = verbs.Dial

    async def run(self, call: LiveCall) -> Outcome:
        noun = self.v.nouns[0] if len(self.v.nouns) == 1 else None
        if isinstance(noun, verbs.Conference):  # alone in its <Dial> (the parser sees to it)
            return await dial_conference(call, self.v, noun, self.document_url)
        if isinstance(noun, verbs.Queue):
            return await dial_queue(call, self.v, noun, self.document_url)
        action = resolve(self.document_url, self.v.action) if self.v.action else None
        session = DialSession(call, self.v, self.document_url)
        result = await run_session(call, session, action, self.v.method)
        if session.transfer is not None:  # the dialed party's REFER was taken: the referUrl's TwiML runs next
            if action is not None:
                call.post_detached(action, self.v.method, result.params())
            return Outcome(next_url=session.transfer.url, method=self.v.refer_method, twiml=session.transfer.text)
        if action is None:
            return CONTINUE
        return Outcome(next_url=action, method=self.v.method, extra=result.params())
