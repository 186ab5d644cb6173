"""`FakePool`: the worker pool of the call engine, without processes or SIP: commands recorded, events scripted.

It stands where `switch.workers.pool.WorkerPool` stands (`CallManager.attach`): it counts call slots, records
every command sent to a worker (`commands`, and `trace`, the same commands as short readable lines), and
answers them as a pjsua2 worker would, on the event loop and in the protocol's own typed events:

- `Dial` -> `InviteSent`, then whatever the far end's `Script` says (`far_end(alias, script)`); no script:
  it rings forever.  `Hangup` -> `Ended` (487 before the answer, 200 after, the given code for an inbound leg
  not yet answered).  `Answer` -> `MediaReady`, `Answered`.  `incoming(...)` makes a caller: `Incoming`.
- `Play` -> `PlayDone` after the WAV file's length (`play_seconds=None`) or a fixed time; `loop` plays until
  `StopPlay`; a missing file or a leg without audio -> `PlayFailed`.  A leg that ends stops its players
  (`PlayDone` reason hangup) and the recordings it owns, before its `Ended`, as the worker does.
- `Record` writes the raw files (`<base>.leg<i>.raw`, tone where the far end `speak`s, silence elsewhere) when
  it stops and answers `RecordDone` with the frame count; `level_ms` gives `TapLevel` events.  `RecordAttach`
  -> `RecordAttached`; `Bridge` -> `Bridged`.  `fail_bridges`, `fail_records`, `fail_attaches` (an error text)
  make those commands answer their failure event instead; `lost_frames` is what each `RecordDone` reports lost.
- `AllowRefer` lets `refer(alias, ...)` (the far end's REFER) be accepted (`ReferReceived`) instead of refused 403
  (`ReferRefused`); `ReferNotify` sipfrags land in the leg's `notifies`.
- `kill(worker)` is a worker process dying: its pending events are dropped, `on_lost` is told.

Time is the event loop's (virtual under looptime), so seconds of call flow take microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from switch.workers import protocol as p
from switch.workers.pool import NoCapacity
from tests.unit.fakes.legs import FakeLeg, FakeWorker, user_part, wav_seconds
from tests.unit.fakes.ports import port_command, port_dial
from tests.unit.fakes.recording import FakeRecording
from tests.unit.fakes.script import Script, Step, ring

EventSink = Callable[[int, p.Event], None]
LostSink = Callable[[int], None]
# Every command the fake answers as the worker would; tests/unit/test_fakes.py checks it against the protocol.
HANDLED: tuple[type[p.Command], ...] = (
    p.Dial, p.Ring, p.Answer, p.Hangup, p.SendDtmf, p.AllowRefer, p.ReferNotify, p.Play, p.StopPlay, p.Record,
    p.RecordAttach, p.PauseRecord, p.StopRecord, p.Bridge, p.Unbridge, p.Shutdown, p.TapStart, p.TapStop, p.TapSend,
    p.TapMark, p.TapClear, p.ConfJoin, p.ConfMute, p.ConfLeave, p.ConfLink, p.ConfPlay, p.ConfRecord, p.PortOpen,
    p.PortSignal,
)
HANGUP_REASONS = {200: "Normal call clearing", 404: "Not Found", 486: "Busy Here", 487: "Request Terminated",
                  500: "Server Internal Error", 503: "Service Unavailable", 603: "Decline"}


class FakePool:
    """A scripted stand-in for `WorkerPool` (see the module docstring)."""

    def __init__(self, workers: int = 1, capacity: int = 16, sip_host: str = "127.0.0.1", sip_port: int = 5060,
                 play_seconds: float | None = None) -> None:
        self.workers = [FakeWorker(i, sip_host, sip_port + i, capacity, pid=4000 + i) for i in range(workers)]
        self.play_seconds = play_seconds  # None: a play lasts as long as its WAV file
        self.on_event: EventSink | None = None
        self.on_lost: LostSink | None = None
        self.commands: list[tuple[int, p.Command]] = []
        self._room_recordings: set[str] = set()  # ConfRecord ids until their StopRecord
        self.trace: list[str] = []
        self.events: list[tuple[int, p.Event]] = []
        self.legs: dict[str, FakeLeg] = {}  # leg id -> leg
        # Failures on demand: an error text makes every such command answer its failure event with it.
        self.fail_bridges: str | None = None  # Bridge -> BridgeFailed
        self.fail_records: str | None = None  # Record -> RecordFailed
        self.fail_attaches: str | None = None  # RecordAttach -> RecordAttachFailed
        self.lost_frames = 0  # what each RecordDone reports as frames the tap could not write
        self._scripts: dict[str, list[Script]] = {}
        self._aliases: dict[str, str] = {}  # alias -> leg id
        self._players: dict[str, tuple[FakeLeg, str, asyncio.TimerHandle | None]] = {}
        self._play_paths: dict[str, str] = {}  # every play id ever -> its file
        self._recordings: dict[str, FakeRecording] = {}
        self._calls = itertools.count(1)

    # -- wiring -------------------------------------------------------------------------------------
    def connect(self, on_event: EventSink, on_lost: LostSink) -> None:
        """Where events go (`CallManager.on_worker_event`) and who hears of a dead worker."""
        self.on_event, self.on_lost = on_event, on_lost

    # -- what the call engine uses (WorkerPool's surface) ------------------------------------------------
    @property
    def healthy(self) -> bool:
        return all(w.up for w in self.workers)

    def reserve(self, leg: str, worker_index: int | None = None, now: float | None = None) -> int:
        candidates = self.workers if worker_index is None else [self.workers[worker_index]]
        open_ = [w for w in candidates if w.free > 0]
        if not open_:
            raise NoCapacity(f"no free call slot on {len(candidates)} fake worker(s)")
        worker = max(open_, key=lambda w: w.free)
        worker.legs.add(leg)
        return worker.index

    def adopt(self, leg: str, worker_index: int) -> None:
        self.workers[worker_index].legs.add(leg)

    def release(self, leg: str, worker_index: int) -> None:
        self.workers[worker_index].legs.discard(leg)

    def status(self) -> list[dict[str, Any]]:
        return [{"worker": w.index, "up": w.up, "pid": w.pid, "sip": f"{w.sip_host}:{w.sip_port}",
                 "capacity": w.capacity, "in_use": len(w.legs), "restarts": w.restarts,
                 "dropped_events": w.dropped_events} for w in self.workers]

    def send(self, worker_index: int, command: p.Command) -> bool:
        if not self.workers[worker_index].up:
            return False
        self.commands.append((worker_index, command))
        self.trace.append(self._line(command))
        self._handle(worker_index, command)
        return True

    # -- what a test does ---------------------------------------------------------------------------------
    def far_end(self, alias: str, *scripts: Script) -> None:
        """How the party dialed as `alias` (the user part of the URI) behaves, one script per time it is dialed
        (the last one is kept for any further dial)."""
        self._scripts[alias] = list(scripts)

    def incoming(self, alias: str, to: str, from_: str = "+15551230000", script: Script | None = None,
                 worker: int = 0, request_uri: str | None = None) -> FakeLeg:
        """A caller `alias` dials `to` on `worker`: an `Incoming` event; the switch rings and answers it."""
        host = self.workers[worker]
        uri = request_uri or f"sip:{to}@{host.sip_host}:{host.sip_port}"
        leg = FakeLeg(alias, alias, worker, True, uri, f"{alias}@fake")
        self._add(leg)
        self.emit(worker, p.Incoming(leg=leg.leg_id, from_uri=f"<sip:{from_}@caller.test>", to_uri=f"<{uri}>",
                                     request_uri=uri, call_id=leg.call_id, t=self.now))
        self._start(leg, script or Script())
        return leg

    def leg(self, alias: str) -> FakeLeg:
        return self.legs[self._aliases[alias]]

    def alias(self, leg_id: str) -> str:
        leg = self.legs.get(leg_id)
        return leg.alias if leg is not None else leg_id

    def refer(self, alias: str, refer_to: str, referred_by: str = "",
              headers: tuple[tuple[str, str], ...] = ()) -> None:
        """The far end `alias` sends a REFER: accepted as the worker does (`ReferReceived`, NOTIFY 100 Trying in
        `notifies`) when the switch allowed it and none is pending; otherwise refused 403 (`ReferRefused`)."""
        leg = self.leg(alias)
        if leg.refer_allowed and not leg.refer_pending and leg.answered and not leg.ended:
            leg.refer_pending = True
            leg.notifies.append((100, False))
            self.emit(leg.worker, p.ReferReceived(leg=leg.leg_id, refer_to=refer_to, referred_by=referred_by,
                                                  headers=headers, t=self.now))
        else:
            self.emit(leg.worker, p.ReferRefused(leg=leg.leg_id, refer_to=refer_to, code=403, t=self.now))

    def kill(self, worker: int) -> None:
        """Worker `worker` dies: its legs go silent, its pending events are lost, the engine is told."""
        handle = self.workers[worker]
        handle.up = False
        for leg in self.legs.values():
            if leg.worker == worker and not leg.ended:
                leg.ended = True
                self._stop_script(leg)
        for rec in [r for r in self._recordings.values() if r.worker == worker]:
            rec.stop_levels()
            self._recordings.pop(rec.rec_id, None)
        if self.on_lost is not None:
            self.on_lost(worker)
        handle.legs.clear()

    def commands_of(self, kind: type[p.Command]) -> list[Any]:
        return [c for _, c in self.commands if isinstance(c, kind)]

    @property
    def now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- events -------------------------------------------------------------------------------------------
    def emit(self, worker: int, event: p.Event, delay: float = 0.0) -> None:
        """Deliver `event` from `worker` after `delay` s, unless the worker died in between."""
        loop = asyncio.get_running_loop()
        if delay > 0:
            loop.call_later(delay, self._deliver, worker, event)
        else:
            loop.call_soon(self._deliver, worker, event)

    def _deliver(self, worker: int, event: p.Event) -> None:
        if not self.workers[worker].up:
            return
        self.events.append((worker, event))
        assert self.on_event is not None, "FakePool.connect() was not called"
        self.on_event(worker, event)

    # -- legs and their scripts -----------------------------------------------------------------------------
    def _add(self, leg: FakeLeg) -> None:
        self.legs[leg.leg_id] = leg
        alias = leg.alias
        for n in itertools.count(2):
            if alias not in self._aliases:
                break
            alias = f"{leg.alias}#{n}"
        leg.alias = alias
        self._aliases[alias] = leg.leg_id

    def _script_for(self, alias: str) -> Script:
        scripts = self._scripts.get(alias)
        if not scripts:
            return ring()  # nobody told us: it rings until the switch gives up
        return scripts.pop(0) if len(scripts) > 1 else scripts[0]

    def _start(self, leg: FakeLeg, script: Script) -> None:
        leg.task = asyncio.get_running_loop().create_task(self._run(leg, script), name=f"far-end-{leg.alias}")

    def _stop_script(self, leg: FakeLeg) -> None:
        if leg.task is not None and leg.task is not asyncio.current_task():
            leg.task.cancel()

    async def _run(self, leg: FakeLeg, script: Script) -> None:
        for step in script.steps:
            if step.needs_media:
                await leg.media_up.wait()
            elif step.kind in ("answer", "final") and not leg.progressed and not leg.inbound:
                self._progress(leg, 180, "Ringing")  # 180 at once, the answer `after` seconds later
            if step.after:
                await asyncio.sleep(step.after)
            if leg.ended:
                return
            await self._do(leg, step)
            if leg.ended:
                return

    async def _do(self, leg: FakeLeg, step: Step) -> None:
        if step.kind == "progress":
            self._progress(leg, step.code, step.reason)
        elif step.kind == "answer":
            self._media(leg)
            leg.answered = True
            self.emit(leg.worker, p.Answered(leg=leg.leg_id, t=self.now))
        elif step.kind == "final":
            self._end(leg, step.code, step.reason)
        elif step.kind == "press":
            for i, digit in enumerate(step.digits):
                if i and step.gap:
                    await asyncio.sleep(step.gap)
                if leg.ended:
                    return
                self.emit(leg.worker, p.DtmfReceived(leg=leg.leg_id, digit=digit, t=self.now))
        elif step.kind == "speak":
            leg.sounds.append((self.now, self.now + step.seconds))
            if step.seconds:
                await asyncio.sleep(step.seconds)
        elif step.kind == "hang_up":
            if leg.answered:
                self._end(leg, 200, "Normal call clearing")
            else:
                self._end(leg, 487, "Request Terminated")
        elif step.kind == "refer":
            self.refer(leg.alias, step.uri, referred_by=f"<sip:{leg.alias}@far.test>", headers=(("X-Ctx", "42"),))
        elif step.kind == "dial_failed":
            leg.ended = True
            self.emit(leg.worker, p.DialFailed(leg=leg.leg_id, code=step.code, reason=step.reason))
        else:
            raise ValueError(f"unknown far-end step {step.kind!r}")

    def _progress(self, leg: FakeLeg, code: int, reason: str) -> None:
        leg.progressed = True
        sdp = code == 183
        if sdp:
            self._media(leg)
        self.emit(leg.worker, p.Progress(leg=leg.leg_id, code=code, reason=reason, sdp=sdp, t=self.now))

    def _media(self, leg: FakeLeg) -> None:
        if not leg.media:
            leg.media = True
            leg.media_up.set()
            self.emit(leg.worker, p.MediaReady(leg=leg.leg_id, t=self.now))

    def _end(self, leg: FakeLeg, code: int, reason: str) -> None:
        """The leg is gone: its players and owned recordings stop first, then `Ended` (the worker's order)."""
        if leg.ended:
            return
        leg.ended = True
        leg.end_code = code
        for play_id, (player_leg, _, timer) in list(self._players.items()):
            if player_leg is leg:
                self._play_done(play_id, "hangup", timer)
        for rec in list(self._recordings.values()):
            if rec.owner == leg.leg_id:
                self._stop_recording(rec, "hangup")
            else:
                rec.leg_gone(leg.leg_id, self.now)
        self.emit(leg.worker, p.Ended(leg=leg.leg_id, code=code, reason=reason, answered=leg.answered,
                                      t=self.now))
        self._stop_script(leg)

    # -- commands -------------------------------------------------------------------------------------------
    def _line(self, command: p.Command) -> str:
        """A command as one short line: legs by alias, files by name."""
        a = self.alias
        match command:
            case p.Dial():
                return f"dial {user_part(command.uri)}"
            case p.Ring() | p.Answer():
                return f"{type(command).__name__.lower()} {a(command.leg)}"
            case p.Hangup():
                return f"hangup {a(command.leg)} {command.code}"
            case p.SendDtmf():
                return f"dtmf {a(command.leg)} {command.digits}"
            case p.AllowRefer():
                return f"allow_refer {a(command.leg)} {command.allow}"
            case p.ReferNotify():
                return f"refer_notify {a(command.leg)} {command.code}"
            case p.Play():
                return f"play {a(command.leg)} {Path(command.path).name}{' loop' if command.loop else ''}"
            case p.StopPlay():
                return f"stop_play {Path(self._play_paths.get(command.id, command.id)).name}"
            case p.Record():
                mirror = f" mirror={a(command.mirror[0])}:{command.mirror[1]}" if command.mirror else ""
                return f"record {'+'.join(a(leg) for leg in command.legs)}{mirror}"
            case p.RecordAttach():
                return f"record_attach {a(command.leg)} {command.index}"
            case p.PauseRecord():
                return f"pause_record {command.paused}"
            case p.StopRecord():
                return "stop_record"
            case p.Bridge():
                return f"bridge {a(command.a)} {a(command.b)}"
            case p.Unbridge():
                return f"unbridge {a(command.a)}"
        return type(command).__name__.lower()

    def _leg(self, leg_id: str) -> FakeLeg | None:
        leg = self.legs.get(leg_id)
        return None if leg is None or leg.ended else leg

    def _handle(self, worker: int, command: p.Command) -> None:
        match command:
            case p.Dial() if command.uri.lower().startswith(p.PORT_SCHEME):
                port_dial(self, worker, command)  # a browser's leg (tests/unit/fakes/ports.py)
            case p.Dial():
                self._dial(worker, command)
            case p.PortOpen() | p.PortSignal():
                port_command(self, worker, command)
            case p.Answer():
                leg = self._leg(command.leg)
                if leg is not None and leg.inbound and not leg.answered:
                    self._media(leg)
                    leg.answered = True
                    self.emit(worker, p.Answered(leg=leg.leg_id, t=self.now))
            case p.Hangup():
                leg = self._leg(command.leg)
                if leg is None:
                    return
                code = 200 if leg.answered else command.code if leg.inbound else 487
                self._end(leg, code, HANGUP_REASONS.get(code, "Terminated"))
            case p.SendDtmf():
                leg = self._leg(command.leg)
                if leg is not None:
                    leg.digits_heard.append(command.digits)
            case p.Play():
                self._play(worker, command)
            case p.StopPlay():
                player = self._players.get(command.id)
                if player is not None:
                    self._play_done(command.id, "stopped", player[2])
            case p.Record():
                self._record(worker, command)
            case p.RecordAttach():
                self._attach(worker, command)
            case p.PauseRecord():
                rec = self._recordings.get(command.id)
                if rec is not None:
                    rec.pause(command.paused, self.now)
            case p.StopRecord():
                rec = self._recordings.get(command.id)
                if rec is not None:
                    self._stop_recording(rec, "stopped")
                elif command.id in self._room_recordings:
                    self._room_recordings.discard(command.id)
                    self.emit(worker, p.RecordDone(id=command.id, frames=0, reason="stopped"))
            case p.Bridge():
                self._bridge(worker, command)
            case p.AllowRefer():
                leg = self._leg(command.leg)
                if leg is not None:
                    leg.refer_allowed = command.allow
            case p.ReferNotify():
                leg = self._leg(command.leg)
                if leg is not None and leg.refer_pending:
                    leg.notifies.append((command.code, command.final))
                    leg.refer_pending = not command.final
            case p.TapStart() | p.TapStop() | p.TapMark():
                self._tap(worker, command)
            case p.ConfJoin() | p.ConfLeave() | p.ConfLink() | p.ConfPlay() | p.ConfRecord():
                self._conference(worker, command)
            case _:
                pass  # Ring, Unbridge, Shutdown, TapSend, TapClear, ConfMute: nothing comes back

    def _conference(self, worker: int, command: p.ConfJoin | p.ConfLeave | p.ConfLink | p.ConfPlay | p.ConfRecord
                    ) -> None:
        """Rooms hear nothing here: a leg with audio joins, leaves at once; links start; plays end at once; a
        room's recording ends (empty) when stopped."""
        if isinstance(command, p.ConfJoin):
            leg = self._leg(command.leg)
            if leg is None or not leg.media:
                self.emit(worker, p.ConfFailed(conf=command.conf, leg=command.leg, error="no audio on the leg"))
            else:
                self.emit(worker, p.ConfJoined(conf=command.conf, leg=command.leg))
        elif isinstance(command, p.ConfLeave):
            self.emit(worker, p.ConfLeft(conf=command.conf, leg=command.leg, reason="left"))
        elif isinstance(command, p.ConfLink):
            self.emit(worker, p.TapStarted(id=command.id, leg=""))
        elif isinstance(command, p.ConfPlay):
            self.emit(worker, p.PlayDone(id=command.id, leg="", reason="eof"))
        else:
            self._room_recordings.add(command.id)

    def _tap(self, worker: int, command: p.TapStart | p.TapStop | p.TapMark) -> None:
        """Taps hear nothing here: they start (on a leg with audio), echo marks at once, and stop."""
        if isinstance(command, p.TapStart):
            leg = self._leg(command.leg)
            if leg is None or not leg.media:
                self.emit(worker, p.TapFailed(id=command.id, leg=command.leg, error="no audio on the leg"))
            else:
                self.emit(worker, p.TapStarted(id=command.id, leg=command.leg))
        elif isinstance(command, p.TapMark):
            self.emit(worker, p.TapMarkPlayed(id=command.id, name=command.name))
        else:
            self.emit(worker, p.TapEnded(id=command.id, reason="stopped"))

    def _dial(self, worker: int, command: p.Dial) -> None:
        leg = FakeLeg(user_part(command.uri), command.leg, worker, False, command.uri,
                      f"out{next(self._calls)}@fake", command=command)
        self._add(leg)
        script = self._script_for(user_part(command.uri))
        if not (script.steps and script.steps[0].kind == "dial_failed"):
            self.emit(worker, p.InviteSent(leg=leg.leg_id, call_id=leg.call_id, t=self.now))
        self._start(leg, script)

    def _play(self, worker: int, command: p.Play) -> None:
        self._play_paths[command.id] = command.path
        leg = self._leg(command.leg)
        length = wav_seconds(command.path)
        if leg is None or not leg.media or length is None:
            why = "no audio on the leg" if leg is None or not leg.media else f"cannot open {command.path}"
            self.emit(worker, p.PlayFailed(id=command.id, leg=command.leg, error=why))
            return
        timer = None
        if not command.loop:
            seconds = length if self.play_seconds is None else self.play_seconds
            timer = asyncio.get_running_loop().call_later(seconds, self._play_done, command.id, "eof", None)
        self._players[command.id] = (leg, command.path, timer)

    def _play_done(self, play_id: str, reason: str, timer: asyncio.TimerHandle | None) -> None:
        player = self._players.pop(play_id, None)
        if player is None:
            return
        if timer is not None:
            timer.cancel()
        self.emit(player[0].worker, p.PlayDone(id=play_id, leg=player[0].leg_id, reason=reason))

    def _record(self, worker: int, command: p.Record) -> None:
        legs = [self._leg(leg) for leg in command.legs]
        mirrored = self._leg(command.mirror[0]) if command.mirror else None
        error = self.fail_records
        without_audio = any(leg is None or not leg.media for leg in legs) or (command.mirror and mirrored is None)
        if error is None and without_audio:
            error = "a leg has no audio"
        if error is not None:
            self.emit(worker, p.RecordFailed(id=command.id, error=error))
            return
        rec = FakeRecording(command, worker, self.now, [self.legs[leg] for leg in command.legs])
        self._recordings[command.id] = rec
        if command.level_ms > 0:
            rec.levels = asyncio.get_running_loop().create_task(self._levels(rec))

    async def _levels(self, rec: FakeRecording) -> None:
        while True:
            await asyncio.sleep(rec.command.level_ms / 1000)
            self.emit(rec.worker, p.TapLevel(id=rec.rec_id, rms=rec.level(self.now), t=self.now))

    def _attach(self, worker: int, command: p.RecordAttach) -> None:
        rec = self._recordings.get(command.id)
        leg = self._leg(command.leg)
        error = self.fail_attaches
        if error is None and (rec is None or leg is None or not leg.media or not 0 <= command.index < rec.channels):
            error = "no such recording, channel or audio"
        if error is not None or rec is None or leg is None:
            self.emit(worker, p.RecordAttachFailed(id=command.id, index=command.index, leg=command.leg,
                                                   error=error or "no such recording"))
            return
        rec.attach(command.index, leg, self.now)
        self.emit(worker, p.RecordAttached(id=command.id, index=command.index, leg=command.leg))

    def _stop_recording(self, rec: FakeRecording, reason: str) -> None:
        self._recordings.pop(rec.rec_id, None)
        rec.stop_levels()
        frames = rec.write(self.now)
        self.emit(rec.worker, p.RecordDone(id=rec.rec_id, frames=frames, reason=reason,
                                           lost_frames=min(self.lost_frames, frames)))

    def _bridge(self, worker: int, command: p.Bridge) -> None:
        a, b = self._leg(command.a), self._leg(command.b)
        error = self.fail_bridges
        if error is None and (a is None or b is None or not a.media or not b.media):
            error = "a leg has no audio"
        if error is not None:
            self.emit(worker, p.BridgeFailed(id=command.id, a=command.a, b=command.b, error=error))
            return
        self.emit(worker, p.Bridged(id=command.id, a=command.a, b=command.b))

    async def close(self) -> None:
        """Stop every script and level ticker (the test is over)."""
        tasks = [leg.task for leg in self.legs.values() if leg.task is not None and not leg.task.done()]
        tasks += [r.levels for r in self._recordings.values() if r.levels is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

