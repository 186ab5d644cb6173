"""Media commands seen from the control plane: awaitable plays, recordings, bridges and digits per call.

`CallMedia` turns the worker's fire-and-forget media protocol into coroutines: `await play(...)` returns
when the file ended, was stopped, or the leg went away, and cancelling the awaiting task stops the player
at once (the worker is woken immediately, so a REST redirect interrupts audio within a frame).  Digits
arrive on a per-call queue that `<Gather>` and `<Record finishOnKey>` read.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from switch.workers.protocol import Message

log = logging.getLogger("switch.media")

Send = Callable[[int, Message], bool]


class MediaError(Exception):
    """A media command failed (no audio on the leg, unplayable file, worker gone)."""


@dataclass
class LegState:
    """What the control plane knows of one leg's media."""

    worker: int
    leg: str
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    digits: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    gone: bool = False


class CallMedia:
    """Per-call media operations over the worker pool; events come back through `on_event`."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[Message]] = {}
        self.legs: dict[str, LegState] = {}  # call sid -> state

    # -- registration by the call manager -----------------------------------------------------
    def add_leg(self, call_sid: str, worker: int, leg: str) -> LegState:
        state = LegState(worker, leg)
        self.legs[call_sid] = state
        return state

    def leg_ended(self, call_sid: str) -> None:
        state = self.legs.pop(call_sid, None)
        if state is not None:
            state.gone = True
            state.ready.set()  # wake anything waiting for media that will never come

    def worker_lost(self, worker: int) -> None:
        """Fail every pending operation of a dead worker."""
        for key, future in list(self._waiting.items()):
            if key.startswith(f"w{worker}:") and not future.done():
                future.set_result({"ev": "worker_lost", "error": f"media worker {worker} exited"})

    def _state(self, call_sid: str) -> LegState:
        state = self.legs.get(call_sid)
        if state is None or state.gone:
            raise MediaError(f"{call_sid} has no live media leg")
        return state

    def _new_id(self, worker: int, kind: str) -> str:
        return f"w{worker}:{kind}{next(self._ids)}"

    async def wait_ready(self, call_sid: str, timeout: float = 5.0) -> None:
        state = self._state(call_sid)
        try:
            await asyncio.wait_for(state.ready.wait(), timeout)
        except TimeoutError as exc:
            raise MediaError(f"{call_sid}: media did not become active in {timeout:g} s") from exc
        if state.gone:
            raise MediaError(f"{call_sid}: the call ended")

    # -- playing --------------------------------------------------------------------------------
    async def play(self, call_sid: str, path: str, loop: bool = False) -> str:
        """Play a bridge-rate WAV file to the call; returns why it ended (eof, stopped, hangup)."""
        await self.wait_ready(call_sid)
        state = self._state(call_sid)
        play_id = self._new_id(state.worker, "p")
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[play_id] = future
        if not self._send(state.worker, {"op": "play", "id": play_id, "leg": state.leg, "path": path, "loop": loop}):
            self._waiting.pop(play_id, None)
            raise MediaError(f"{call_sid}: media worker {state.worker} unavailable")
        try:
            done = await asyncio.shield(future)
        except asyncio.CancelledError:
            self._send(state.worker, {"op": "stop_play", "id": play_id})
            raise
        finally:
            self._waiting.pop(play_id, None)
        if done.get("error"):
            raise MediaError(f"{call_sid}: cannot play {path}: {done['error']}")
        return str(done.get("reason", "eof"))

    # -- recording -------------------------------------------------------------------------------
    def start_recording(self, call_sids: list[str], base: str, slots: int = 0,
                        mirror: tuple[str, int] | None = None) -> tuple[str, asyncio.Future[Message]]:
        """Tap the given calls' legs (one raw file each, sample-aligned); returns the id and its done-future.

        `slots` reserves channels for legs attached later with `attach_recording`.  `mirror` (call, channel)
        puts on that channel what the switch sends to the call (its outbound track).
        """
        states = [self._state(sid) for sid in call_sids]
        mirrored = None if mirror is None else self._state(mirror[0])
        every = [*states, *([] if mirrored is None else [mirrored])]
        if not every:
            raise MediaError("a recording needs a leg")
        worker = every[0].worker
        if any(s.worker != worker for s in every):
            raise MediaError("the legs of one recording must live on one worker")
        rec_id = self._new_id(worker, "r")
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[rec_id] = future
        future.add_done_callback(lambda _f: self._waiting.pop(rec_id, None))
        command: Message = {"op": "record", "id": rec_id, "base": base, "legs": [s.leg for s in states],
                            "slots": slots}
        if mirror is not None and mirrored is not None:
            command["mirror"] = {"leg": mirrored.leg, "index": mirror[1]}
        if not self._send(worker, command):
            future.set_result({"ev": "record_done", "id": rec_id, "frames": 0, "error": "worker unavailable"})
        return rec_id, future

    def _worker_of(self, item: str) -> int:
        return int(item[1:].split(":", 1)[0])

    def attach_recording(self, rec_id: str, index: int, call_sid: str) -> None:
        """Feed channel `index` of a running recording from `call_sid`'s leg from now on."""
        state = self._state(call_sid)
        if state.worker != self._worker_of(rec_id):
            raise MediaError("a recording's legs must live on one worker")
        self._send(state.worker, {"op": "record_attach", "id": rec_id, "index": index, "leg": state.leg})

    def stop_recording(self, rec_id: str) -> None:
        self._send(self._worker_of(rec_id), {"op": "stop_record", "id": rec_id})

    def pause_recording(self, rec_id: str, paused: bool) -> None:
        self._send(self._worker_of(rec_id), {"op": "pause_record", "id": rec_id, "paused": paused})

    # -- bridging ----------------------------------------------------------------------------------
    def bridge(self, a_sid: str, b_sid: str) -> None:
        a, b = self._state(a_sid), self._state(b_sid)
        if a.worker != b.worker:
            raise MediaError("bridged legs must live on one worker")
        self._send(a.worker, {"op": "bridge", "a": a.leg, "b": b.leg})

    def unbridge(self, a_sid: str) -> None:
        state = self.legs.get(a_sid)
        if state is not None and not state.gone:
            self._send(state.worker, {"op": "unbridge", "a": state.leg})

    # -- digits ------------------------------------------------------------------------------------
    def digits(self, call_sid: str) -> asyncio.Queue[str]:
        return self._state(call_sid).digits

    def send_digits(self, call_sid: str, digits: str) -> None:
        state = self._state(call_sid)
        self._send(state.worker, {"op": "dtmf", "leg": state.leg, "digits": digits})

    # -- worker events -----------------------------------------------------------------------------
    def on_event(self, call_sid: str | None, event: Message) -> None:
        kind = event.get("ev")
        if kind in ("play_done", "record_done"):
            future = self._waiting.get(str(event.get("id")))
            if future is not None and not future.done():
                future.set_result(event)
            return
        state = self.legs.get(call_sid or "")
        if state is None:
            return
        if kind == "media_ready":
            state.ready.set()
        elif kind == "dtmf":
            state.digits.put_nowait(str(event.get("digit")))
        else:
            log.info("%s: media event %s", call_sid, kind)

    def pending(self) -> dict[str, Any]:
        return {"waiting": len(self._waiting), "legs": len(self.legs)}
