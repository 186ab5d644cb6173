"""Conference audio seen from the control plane: members on any workers, mixed so everyone hears everyone else once.

`ConferenceMixer` (reached as `CallMedia.conferences`) hides workers and links.  Each worker mixes the members it
holds on its own conference bridge (`switch.worker.conference`: a full mesh; a muted member is heard by nobody).
When a conference has members on two or more workers, each of those workers gets one *link*
(`switch.workers.protocol_conf.ConfLink`): the worker's local mix arrives here as `TapAudio`, 20 ms of μ-law at a
time, and what the control plane `TapSend`s to the link plays into every local member.  A ticker on a monotonic
20 ms schedule takes the latest frame of every link, sums them as int16 (μ-law tables of `media.ulaw`, numpy,
clipped) and sends each worker the sum of the *other* workers' frames (mix-minus), so no one hears themselves.

Clocks.  Each worker's bridge runs on its own clock, the ticker on the event loop's.  Every link keeps a short
jitter queue here (`JITTER_FRAMES`; the oldest frame is dropped beyond it, an empty queue counts as silence), and
the first frame sent to a link is preceded by one of silence, so the worker's own short queue
(`switch.worker.conference.LINK_QUEUE_FRAMES`) rides out the loop's scheduling jitter.  Drift shows as an
occasional dropped or silent frame, never as growing delay.

A worker that dies (`worker_lost`) takes its members with it: they leave with reason `worker_lost`
(`on_left`), and every join, leave, play or recording waiting on it completes (with `MediaError` for a join).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from media.errors import MediaError
from media.ulaw import DECODE, ENCODE
from switch.workers.media_taps import Send
from switch.workers.protocol import (
    ConfFailed,
    ConfJoin,
    ConfJoined,
    ConfLeave,
    ConfLeft,
    ConfLink,
    ConfMute,
    ConfPlay,
    ConfRecord,
    ConfSpeaking,
    Event,
    PlayDone,
    PlayFailed,
    RecordDone,
    RecordFailed,
    RecordResult,
    StopPlay,
    StopRecord,
    TapAudio,
    TapEnded,
    TapFailed,
    TapSend,
    TapStarted,
    TapStop,
)

__all__ = ["JITTER_FRAMES", "ConferenceMixer"]

log = logging.getLogger("switch.conferences")

FRAME_S = 0.02
ULAW_FRAME = 160
JITTER_FRAMES = 3  # link frames waiting here at most (60 ms)
ANSWER_TIMEOUT = 10.0  # a worker answers a join or leave within this, or it is taken as lost
_SILENCE = b"\xff" * ULAW_FRAME  # μ-law zero


class ConfLeg(Protocol):
    """What the mixer needs of a live leg (`switch.core.legs.Leg` provides it)."""

    @property
    def worker(self) -> int: ...

    @property
    def id(self) -> str: ...

    @property
    def media_ready(self) -> asyncio.Event: ...

    @property
    def gone(self) -> bool: ...


@dataclass(eq=False)
class _Member:
    call_sid: str
    leg: str
    worker: int
    muted: bool


@dataclass(eq=False)
class _Link:
    id: str
    conf: str
    worker: int
    started: bool = False
    primed: bool = False
    frames: deque[bytes] = field(default_factory=lambda: deque(maxlen=JITTER_FRAMES))


@dataclass(eq=False)
class _Conference:
    name: str
    members: dict[str, _Member] = field(default_factory=dict)  # by CallSid
    links: dict[int, _Link] = field(default_factory=dict)  # by worker
    recordings: dict[str, int] = field(default_factory=dict)  # id -> worker


class ConferenceMixer:
    """Conferences over the worker pool (module docstring): join, mute, leave, play, record, speaking events."""

    def __init__(self, send: Send, legs: Mapping[str, ConfLeg]) -> None:
        self._send = send
        self.legs = legs  # CallSid -> the live leg (owned by the call engine)
        self._ids = itertools.count(1)
        self._confs: dict[str, _Conference] = {}
        self._by_leg: dict[str, tuple[str, str]] = {}  # member leg id -> (conference, CallSid)
        self._joins: dict[str, tuple[asyncio.Future[str | None], _Member, str]] = {}  # conf/leg -> (answer, who, conf)
        self._leaves: dict[str, asyncio.Future[None]] = {}  # conf/leg
        self._links: dict[str, _Link] = {}  # every link not yet ended, by id
        self._plays: dict[str, asyncio.Future[PlayDone | PlayFailed]] = {}
        self._play_conf: dict[str, str] = {}  # play id -> its conference
        self._recordings: dict[str, asyncio.Future[RecordResult]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self.ticks = 0  # mixing ticks run (for tests and metrics)
        self.late_ticks = 0  # ticks that ran more than one frame late
        self.on_speaking: Callable[[str, str, bool], None] | None = None  # (conf, CallSid, speaking)
        self.on_left: Callable[[str, str, str], None] | None = None  # (conf, CallSid, reason) for every departure

    # -- the API -----------------------------------------------------------------------------------------------
    def members(self, conf: str) -> list[str]:
        """The CallSids in conference `conf` now."""
        c = self._confs.get(conf)
        return [] if c is None else list(c.members)

    def workers(self, conf: str) -> list[int]:
        """The workers conference `conf` spans now (those with members or a recording)."""
        c = self._confs.get(conf)
        return [] if c is None else sorted(self._involved(c))

    def links(self, conf: str) -> list[int]:
        """The workers conference `conf` has a link on now (none while it lives on one worker)."""
        c = self._confs.get(conf)
        return [] if c is None else sorted(c.links)

    async def join(self, conf: str, call_sid: str, muted: bool = False) -> None:
        """Add the call to `conf` (made on first join); MediaError if its worker refuses or it is elsewhere."""
        state = self._state(call_sid)
        try:
            async with asyncio.timeout(5.0):
                await state.media_ready.wait()
        except TimeoutError as exc:
            raise MediaError(f"{call_sid}: media did not become active in 5 s") from exc
        state = self._state(call_sid)
        for other in self._confs.values():
            if call_sid in other.members:
                if other.name != conf:
                    raise MediaError(f"{call_sid} is in conference {other.name}: leave it first")
                self.mute(conf, call_sid, muted)
                return
        key = f"{conf}/{state.id}"
        if key in self._joins:
            raise MediaError(f"{call_sid} is joining {conf} already")
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._joins[key] = (future, _Member(call_sid, state.id, state.worker, muted), conf)
        if not self._send(state.worker, ConfJoin(conf=conf, leg=state.id, muted=muted)):
            self._joins.pop(key, None)
            raise MediaError(f"{call_sid}: media worker {state.worker} unavailable")
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                error = await asyncio.shield(future)
        except TimeoutError as exc:
            self._joins.pop(key, None)
            raise MediaError(f"{call_sid}: worker {state.worker} did not answer the join") from exc
        if error is not None:
            raise MediaError(f"{call_sid} cannot join {conf}: {error}")

    def mute(self, conf: str, call_sid: str, muted: bool) -> None:
        """Mute (nobody hears the call) or unmute a member; a call not in `conf` is ignored."""
        c = self._confs.get(conf)
        member = None if c is None else c.members.get(call_sid)
        if member is not None and member.muted != muted:
            member.muted = muted
            self._send(member.worker, ConfMute(conf=conf, leg=member.leg, muted=muted))

    async def leave(self, conf: str, call_sid: str) -> None:
        """Take the call out of `conf`; returns once its worker let go of it (at once if it is no member)."""
        c = self._confs.get(conf)
        member = None if c is None else c.members.get(call_sid)
        if member is None:
            return
        key = f"{conf}/{member.leg}"
        future = self._leaves.get(key)
        if future is None:
            future = self._leaves[key] = asyncio.get_running_loop().create_future()
            if not self._send(member.worker, ConfLeave(conf=conf, leg=member.leg)):
                self._member_left(conf, member.leg, "left")
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                await asyncio.shield(future)
        except TimeoutError:
            log.warning("conference %s: worker %d did not answer the leave of %s", conf, member.worker, call_sid)
            self._member_left(conf, member.leg, "left")

    async def play(self, conf: str, path: str) -> str:
        """Play a bridge-rate WAV to every member on every worker; returns why it ended (eof, stopped, ...)."""
        c = self._confs.get(conf)
        workers = sorted({m.worker for m in c.members.values()}) if c is not None else []
        if not workers:
            raise MediaError(f"conference {conf} has no members to play to")
        loop = asyncio.get_running_loop()
        futures: dict[str, asyncio.Future[PlayDone | PlayFailed]] = {}
        for worker in workers:
            play_id = self._new_id(worker, "cp")
            futures[play_id] = self._plays[play_id] = loop.create_future()
            self._play_conf[play_id] = conf
            if not self._send(worker, ConfPlay(conf=conf, id=play_id, path=path)):
                futures[play_id].set_result(PlayFailed(id=play_id, leg="", error=f"media worker {worker} unavailable"))
        try:
            results = await asyncio.shield(asyncio.gather(*futures.values()))
        except asyncio.CancelledError:
            for play_id in futures:
                self._send(self._worker_of(play_id), StopPlay(id=play_id))
            raise
        finally:
            for play_id in futures:
                self._plays.pop(play_id, None)
                self._play_conf.pop(play_id, None)
        done = [r for r in results if isinstance(r, PlayDone)]
        if not done:
            errors = {r.error for r in results if isinstance(r, PlayFailed)}
            raise MediaError(f"conference {conf}: cannot play {path}: {'; '.join(sorted(errors))}")
        reasons = {r.reason for r in done}
        return "eof" if reasons == {"eof"} else sorted(reasons - {"eof"})[0]

    async def start_recording(self, conf: str, path: str) -> str:
        """Record everything heard in `conf` into the mono WAV `path`; returns its id for `stop_recording`.

        The recording runs on the worker holding most members; while it runs that worker stays linked to the
        others even if its own members leave, so it keeps hearing the whole conference."""
        c = self._confs.get(conf)
        if c is None or not c.members:
            raise MediaError(f"conference {conf} has no members to record")
        counts: dict[int, int] = {}
        for member in c.members.values():
            counts[member.worker] = counts.get(member.worker, 0) + 1
        worker = max(sorted(counts), key=lambda w: counts[w])
        rec_id = self._new_id(worker, "cr")
        self._recordings[rec_id] = asyncio.get_running_loop().create_future()
        c.recordings[rec_id] = worker
        if not self._send(worker, ConfRecord(conf=conf, id=rec_id, path=path)):
            self._recording_ended(RecordFailed(id=rec_id, error=f"media worker {worker} unavailable"))
            raise MediaError(f"conference {conf}: media worker {worker} unavailable")
        self._relink(c)
        return rec_id

    async def stop_recording(self, rec_id: str) -> RecordResult:
        """End a conference recording: the worker's `RecordDone` (frames written) or `RecordFailed`."""
        future = self._recordings.get(rec_id)
        if future is None:
            return RecordFailed(id=rec_id, error="no such recording (it ended)")
        if not future.done() and not self._send(self._worker_of(rec_id), StopRecord(id=rec_id)):
            self._recording_ended(RecordDone(id=rec_id, frames=0, reason="worker_lost"))
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                return await asyncio.shield(future)
        except TimeoutError:
            self._recording_ended(RecordFailed(id=rec_id, error="the worker did not end the recording"))
            return await future

    def close(self, conf: str) -> None:
        """End conference `conf`: every member leaves, links, plays and recordings stop (their awaiters finish
        when the workers answer)."""
        c = self._confs.pop(conf, None)
        if c is None:
            return
        for member in c.members.values():
            self._by_leg.pop(member.leg, None)
            self._send(member.worker, ConfLeave(conf=conf, leg=member.leg))
        for link in c.links.values():
            self._send(link.worker, TapStop(id=link.id))
        for play_id in [p for p, name in self._play_conf.items() if name == conf]:
            self._send(self._worker_of(play_id), StopPlay(id=play_id))
        for rec_id, worker in c.recordings.items():
            self._send(worker, StopRecord(id=rec_id))
        c.members.clear()
        c.links.clear()

    # -- worker events -------------------------------------------------------------------------------------------
    def on_event(self, event: Event) -> bool:
        """A worker event; True if it was the mixer's (conference events, and the ids of its links, plays and
        recordings)."""
        match event:
            case ConfJoined() | ConfFailed():
                self._joined(event)
            case ConfLeft():
                self._member_left(event.conf, event.leg, event.reason)
            case ConfSpeaking():
                found = self._by_leg.get(event.leg)
                if found is not None and found[0] == event.conf and self.on_speaking is not None:
                    self.on_speaking(event.conf, found[1], event.speaking)
            case TapAudio() | TapStarted() | TapFailed() | TapEnded() if event.id in self._links:
                self._link_event(event)
            case PlayDone() | PlayFailed() if event.id in self._plays:
                future = self._plays[event.id]
                if not future.done():
                    future.set_result(event)
            case RecordDone() | RecordFailed() if event.id in self._recordings:
                self._recording_ended(event)
            case _:
                return False
        return True

    def worker_lost(self, worker: int) -> None:
        """A worker died: its members leave (`worker_lost`), and everything waiting on it completes."""
        error = f"media worker {worker} exited"
        for key, (future, member, _conf) in list(self._joins.items()):
            if member.worker == worker:
                self._joins.pop(key, None)
                if not future.done():
                    future.set_result(error)
        for c in list(self._confs.values()):
            for member in [m for m in c.members.values() if m.worker == worker]:
                self._member_left(c.name, member.leg, "worker_lost")
        for link in [k for k in self._links.values() if k.worker == worker]:
            self._drop_link(link)
        prefix = f"w{worker}:"
        for play_id, play in self._plays.items():
            if play_id.startswith(prefix) and not play.done():
                play.set_result(PlayFailed(id=play_id, leg="", error=error))
        for rec_id in [r for r in self._recordings if r.startswith(prefix)]:
            self._recording_ended(RecordDone(id=rec_id, frames=0, reason="worker_lost"))
        for c in list(self._confs.values()):
            self._relink(c)

    def _joined(self, event: ConfJoined | ConfFailed) -> None:
        pending = self._joins.pop(f"{event.conf}/{event.leg}", None)
        if pending is None:
            log.info("conference %s: %s for %s that nobody waits for", event.conf, type(event).__name__, event.leg)
            if isinstance(event, ConfJoined) and event.leg not in self._by_leg:
                self._send(self._worker_of_leg(event.leg), ConfLeave(conf=event.conf, leg=event.leg))
            return
        future, member, conf = pending
        if isinstance(event, ConfJoined):
            c = self._confs.setdefault(conf, _Conference(conf))
            c.members[member.call_sid] = member
            self._by_leg[member.leg] = (conf, member.call_sid)
            self._relink(c)
            error = None
        else:
            error = event.error
        if not future.done():
            future.set_result(error)

    def _member_left(self, conf: str, leg: str, reason: str) -> None:
        leave = self._leaves.pop(f"{conf}/{leg}", None)
        if leave is not None and not leave.done():
            leave.set_result(None)
        found = self._by_leg.get(leg)
        c = self._confs.get(conf)
        if found is None or found[0] != conf or c is None:
            return
        del self._by_leg[leg]
        c.members.pop(found[1], None)
        self._relink(c)
        if not c.members and not c.recordings:
            self._confs.pop(conf, None)
        if self.on_left is not None:
            try:
                self.on_left(conf, found[1], reason)
            except Exception:
                log.exception("conference %s: on_left failed", conf)

    def _recording_ended(self, event: RecordResult) -> None:
        future = self._recordings.pop(event.id, None)
        if future is not None and not future.done():
            future.set_result(event)
        for c in list(self._confs.values()):
            if c.recordings.pop(event.id, None) is not None:
                self._relink(c)
                if not c.members and not c.recordings:
                    self._confs.pop(c.name, None)

    # -- links -------------------------------------------------------------------------------------------------
    def _involved(self, c: _Conference) -> set[int]:
        return {m.worker for m in c.members.values()} | set(c.recordings.values())

    def _relink(self, c: _Conference) -> None:
        """One link per involved worker while the conference spans two or more; none otherwise."""
        involved = self._involved(c) if c.name in self._confs else set()
        wanted = involved if len(involved) >= 2 else set()
        for worker, link in list(c.links.items()):
            if worker not in wanted:
                del c.links[worker]
                self._send(worker, TapStop(id=link.id))  # its TapEnded forgets it
        for worker in sorted(wanted - set(c.links)):
            link = _Link(self._new_id(worker, "L"), c.name, worker)
            if self._send(worker, ConfLink(conf=c.name, id=link.id)):
                c.links[worker] = self._links[link.id] = link
        if c.links and self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._run(), name="conference-mixer")

    def _link_event(self, event: TapAudio | TapStarted | TapFailed | TapEnded) -> None:
        link = self._links[event.id]
        match event:
            case TapAudio():
                if link.started:
                    link.frames.append(event.payload)
            case TapStarted():
                link.started = True
            case TapFailed() | TapEnded():
                if isinstance(event, TapFailed):
                    log.warning("conference %s: link on worker %d failed: %s", link.conf, link.worker, event.error)
                self._drop_link(link)

    def _drop_link(self, link: _Link) -> None:
        self._links.pop(link.id, None)
        c = self._confs.get(link.conf)
        if c is not None and c.links.get(link.worker) is link:
            del c.links[link.worker]

    async def _run(self) -> None:
        """The mixing ticker: every 20 ms on a monotonic schedule while any link exists."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        try:
            while any(c.links for c in self._confs.values()):
                due += FRAME_S
                delay = due - loop.time()
                if delay < -FRAME_S:
                    self.late_ticks += 1
                    if delay < -10 * FRAME_S:  # a stall: start the schedule again from now
                        due = loop.time()
                await asyncio.sleep(max(0.0, delay))
                self._tick()
        except Exception:
            log.exception("conference mixer stopped")
        finally:
            self._ticker = None

    def _tick(self) -> None:
        """Send every linked worker the sum of the other workers' latest frames."""
        self.ticks += 1
        for c in list(self._confs.values()):
            links = [link for link in c.links.values() if link.started]
            if len(links) < 2:
                continue
            frames: dict[int, Any] = {}
            for link in links:
                if link.frames:
                    payload = link.frames.popleft()
                    if len(payload) != ULAW_FRAME:
                        payload = (payload + _SILENCE)[:ULAW_FRAME]
                    frames[link.worker] = DECODE[np.frombuffer(payload, dtype=np.uint8)].astype(np.int32)
            total = sum(frames.values()) if frames else None
            for link in links:
                own = frames.get(link.worker)
                if total is None or (own is not None and len(frames) == 1):
                    payload = _SILENCE  # nobody else sent anything this tick
                else:
                    mix = total - own if own is not None else total
                    payload = ENCODE[np.clip(mix, -32768, 32767).astype(np.int16).view(np.uint16)].tobytes()
                if not link.primed:  # one frame ahead: the worker's queue absorbs our scheduling jitter
                    link.primed = True
                    payload = _SILENCE + payload
                self._send(link.worker, TapSend(id=link.id, payload=payload))

    # -- helpers -----------------------------------------------------------------------------------------------
    def _state(self, call_sid: str) -> ConfLeg:
        state = self.legs.get(call_sid)
        if state is None or state.gone:
            raise MediaError(f"{call_sid} has no live media leg")
        return state

    def _new_id(self, worker: int, kind: str) -> str:
        return f"w{worker}:{kind}{next(self._ids)}"

    @staticmethod
    def _worker_of(item: str) -> int:
        return int(item[1:].split(":", 1)[0])

    def _worker_of_leg(self, leg_id: str) -> int:
        for state in self.legs.values():
            if state.id == leg_id:
                return state.worker
        return -1
