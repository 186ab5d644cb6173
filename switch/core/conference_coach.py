"""Coaching in a conference (`<Conference coach="CA...">`, REST `Coaching`/`CallSidToCoach`): a coach hears the
whole room, and only the participant it coaches hears it.

The coach is in the room's mix muted (it transmits to nobody there); what it says reaches the coached call through
two audio taps (`switch.workers.media_taps`): the coach's inbound track, relayed frame by frame by the control
plane into an inject-only tap of the coached call.  The two may sit on different workers.  A whisper ends when
coaching is turned off, or when either call leaves the room or ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from switch.workers.media import MediaError
from switch.workers.media_taps import AudioTap

log = logging.getLogger("switch.core.conferences")


class Tapper(Protocol):
    async def tap(self, call_sid: str, tracks: tuple[str, ...] = ("inbound",), inject: bool = False) -> AudioTap: ...


class Whispers:
    """The running whispers, by coach CallSid."""

    def __init__(self, media: Tapper) -> None:
        self.media = media
        self._running: dict[str, tuple[str, asyncio.Task[None]]] = {}

    def coaching(self, coach: str) -> str | None:
        """The call `coach` whispers to now, if any."""
        running = self._running.get(coach)
        return running[0] if running is not None else None

    def start(self, coach: str, coached: str) -> None:
        """`coach` whispers to `coached` from now on (replacing any earlier whisper of the coach)."""
        if self.coaching(coach) == coached:
            return
        self.stop(coach)
        task = asyncio.get_running_loop().create_task(self._relay(coach, coached))
        self._running[coach] = (coached, task)

    def stop(self, coach: str) -> None:
        running = self._running.pop(coach, None)
        if running is not None:
            running[1].cancel()

    def forget(self, call_sid: str) -> None:
        """`call_sid` left the room: its whisper, and any whisper to it, end."""
        for coach, (coached, _) in list(self._running.items()):
            if call_sid in (coach, coached):
                self.stop(coach)

    async def close(self) -> None:
        tasks = [task for _, task in self._running.values()]
        self._running.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _relay(self, coach: str, coached: str) -> None:
        listen: AudioTap | None = None
        speak: AudioTap | None = None
        try:
            listen = await self.media.tap(coach, ("inbound",))
            speak = await self.media.tap(coached, (), inject=True)
            while True:
                frame = await listen.frames.get()
                if frame is None or speak.ended.is_set():
                    return
                speak.send(frame.payload)
        except MediaError as exc:
            log.info("coach %s -> %s: no whisper: %s", coach, coached, exc)
        finally:
            for tap in (listen, speak):
                if tap is not None:
                    with contextlib.suppress(Exception):
                        tap.stop()
            running = self._running.get(coach)
            if running is not None and running[1] is asyncio.current_task():
                del self._running[coach]
