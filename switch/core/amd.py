"""Answering-machine detection on live calls: the called party's audio, from answer, into `media.amd`.

A call created with machine detection (`Call.machine_detection`: Calls create's MachineDetection, or a `<Dial>`
noun's machineDetection) gets a detection when it is answered: a tap of its inbound track (what the called party
sends, `CallMedia.tap`), each 20 ms μ-law frame decoded and fed to an `AmdDetector` with the call's thresholds,
until it decides, `machine_detection_timeout` passes, or the call ends (an undecided detection is then decided
with what was heard: `AmdDetector.expire`).  The answer is written to the call (`answered_by`,
`machine_detection_duration`: the milliseconds of audio it took), to its events in the store, and emitted once as
a `MachineDetected` call event, which the dialects render (Twilio's AsyncAmdStatusCallback).

Synchronous detection (not `async_amd`) holds the call's TwiML: the voice session awaits `settled` before it
fetches the Url, which then carries the answer, as Twilio's does.  Asynchronous detection and detection on a
`<Dial>` leg run beside the TwiML or the bridge.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Coroutine
from typing import Any

from media.amd import AmdDetector, AmdSettings, Decision
from media.ulaw import ulaw_decode
from switch.core.calls import CallManager
from switch.core.events import MachineDetected
from switch.core.model import Call
from switch.core.tasks import TaskSet
from switch.workers.media import MediaError

log = logging.getLogger("switch.core.amd")

ENABLE = "enable"
DETECT_MESSAGE_END = "detect_message_end"
MODES = (ENABLE, DETECT_MESSAGE_END)
# Wall-clock slack over the timeout: the tap's frames arrive in real time, a little behind the audio they carry.
GRACE_S = 1.0


def settings_of(call: Call) -> AmdSettings:
    """The detector's settings from the call's machine-detection fields."""
    return AmdSettings(
        detect_message_end=call.machine_detection == DETECT_MESSAGE_END,
        timeout_ms=call.machine_detection_timeout * 1000,
        speech_threshold_ms=call.machine_detection_speech_threshold,
        speech_end_threshold_ms=call.machine_detection_speech_end_threshold,
        silence_timeout_ms=call.machine_detection_silence_timeout,
    )


class MachineDetection:
    """The detections of a call manager's calls: started on answer (`on_answered`), awaited by `settled`."""

    def __init__(self, calls: CallManager) -> None:
        self.calls = calls
        self._running: dict[str, asyncio.Task[Decision]] = {}
        self._tasks = TaskSet()

    def attach(self) -> None:
        """Start a detection on every answered call that asked for one: before other answer hooks."""
        self.calls.answered_hooks.insert(0, self.on_answered)

    def on_answered(self, call: Call) -> Coroutine[Any, Any, None] | None:
        """An answered-call hook (`CallManager.answered_hooks`): the start of the call's detection, if it asked
        for one (in a task of its own, a loop turn after the answer, as it always was)."""
        return self._begin(call) if call.machine_detection in MODES else None

    async def _begin(self, call: Call) -> None:
        self._start(call)

    async def settled(self, call: Call) -> None:
        """Return once a synchronous detection of `call` has decided (at once for any other call)."""
        if call.machine_detection not in MODES or call.async_amd:
            return
        await asyncio.shield(self._start(call))

    def _start(self, call: Call) -> asyncio.Task[Decision]:
        task = self._running.get(call.sid)
        if task is None:
            task = self._tasks.spawn(self._detect(call), call.sid)
            self._running[call.sid] = task
            task.add_done_callback(lambda _t: self._running.pop(call.sid, None))
        return task

    async def _detect(self, call: Call) -> Decision:
        settings = settings_of(call)
        detector = AmdDetector(settings)
        try:
            decision = await self._listen(call, detector, settings.timeout_ms / 1000 + GRACE_S)
        except MediaError as exc:  # no audio to listen to (the leg ended, the worker refused the tap)
            log.warning("%s: answering-machine detection had no audio: %s", call.sid, exc)
            decision = detector.expire()
        self._decided(call, decision, detector)
        return decision

    async def _listen(self, call: Call, detector: AmdDetector, limit_s: float) -> Decision:
        tap = await self.calls.media.tap(call.sid, tracks=("inbound",), inject=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        try:
            while True:
                try:
                    async with asyncio.timeout(max(0.0, deadline - loop.time())):
                        frame = await tap.frames.get()
                except TimeoutError:
                    return detector.expire()  # the audio came too slowly (or stopped): the timeout is wall-clock too
                if frame is None:  # the tap ended: the call hung up
                    return detector.expire()
                decision = detector.feed(ulaw_decode(frame.payload))
                if decision is not None:
                    return decision
        finally:
            tap.stop()

    def _decided(self, call: Call, decision: Decision, detector: AmdDetector) -> None:
        call.answered_by = str(decision.answered_by)
        call.machine_detection_duration = decision.at_ms
        what = f"answered by {decision.answered_by} after {decision.at_ms} ms ({decision.reason})"
        log.info("%s: %s; %d ms of voice", call.sid, what, detector.voice_ms)
        self.calls.store.add_event(call.sid, "amd", what)
        self.calls.store.save_call(call)  # the live call's row, or an ended call's final row with the answer added
        self.calls.events.emit(MachineDetected(dataclasses.replace(call), self.calls.clock()))

