"""A conference's recording (`<Conference record="record-from-start">`): the room's whole mix, one mono file.

It starts when the room starts (or when a participant asking for it enters a room already running) and stops when
the room ends; the worker holding most members writes the mix (`ConferenceMixer.start_recording`) straight into
the recording's final path, and the recording manager trims, measures and reports it (`RecordingManager.open_mix`,
`close_mix`): a Recording resource with `conference_sid`, source Conference, and its status callbacks.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from switch.core.recordings import Recording, RecordingManager

log = logging.getLogger("switch.core.conferences")


class MixRecorder(Protocol):
    """What recording needs of the conference mixer."""

    async def start_recording(self, conf: str, path: str) -> str: ...
    async def stop_recording(self, rec_id: str) -> Any: ...


@dataclass(frozen=True)
class RecordingAsked:
    """How a participant asked for the room to be recorded."""

    trim: bool
    status_callback: str | None
    status_callback_method: str
    status_callback_events: tuple[str, ...]


class RoomRecorder:
    """Records rooms: at most one recording per room at a time."""

    def __init__(self, recordings: RecordingManager, mixer: MixRecorder) -> None:
        self.recordings = recordings
        self.mixer = mixer
        self._running: dict[str, tuple[Recording, asyncio.Task[str | None]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, conf_sid: str, call_sid: str, asked: RecordingAsked) -> None:
        """Record room `conf_sid` from now (nothing if it is being recorded)."""
        if conf_sid in self._running:
            return
        rec = self.recordings.open_mix(call_sid, conf_sid, asked.trim, asked.status_callback,
                                       asked.status_callback_method, asked.status_callback_events)
        path = str(self.recordings.wav_path(rec.sid))
        task = asyncio.get_running_loop().create_task(self._begin(conf_sid, path))
        self._running[conf_sid] = (rec, task)

    async def _begin(self, conf_sid: str, path: str) -> str | None:
        try:
            return await self.mixer.start_recording(conf_sid, path)
        except Exception as exc:  # the recording ends absent: nothing captured
            log.warning("conference %s: the recording could not start: %s", conf_sid, exc)
            return None

    def stop(self, conf_sid: str) -> None:
        """Room `conf_sid` ended: stop its recording and report it."""
        running = self._running.pop(conf_sid, None)
        if running is not None:
            task = asyncio.get_running_loop().create_task(self._finish(*running))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _finish(self, rec: Recording, begun: asyncio.Task[str | None]) -> None:
        rec_id = await begun
        if rec_id is not None:
            try:
                await self.mixer.stop_recording(rec_id)
            except Exception as exc:
                log.warning("conference %s: stopping the recording failed: %s", rec.conference_sid, exc)
        await self.recordings.close_mix(rec)

    async def close(self) -> None:
        for conf_sid in list(self._running):
            self.stop(conf_sid)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
