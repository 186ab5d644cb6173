"""`<Dial><Conference>`: one participant's life in a conference room (`switch.core.conferences`).

The caller is answered and seated; until the room starts it hears the wait music (`waitUrl`'s Play/Say/Pause/
Redirect looped, `switch.verbs.wait_loop`; Twilio's default hold music when none is named, silence when
waitUrl is empty).  Then its audio joins the room's mix and the verb follows the room: hold (the holdUrl's music
instead of the room), unhold, and leave (kicked, the room ended, or the caller hung up or was redirected).  After
leaving, the `<Dial>` action is told DialCallStatus (completed; failed when the room was full), ConferenceSid and
DialCallDuration (seconds in the room), or the document goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from switch.core.conference_recording import RecordingAsked
from switch.core.conference_room import ConferenceFull, Seat, SeatOptions
from switch.core.conferences import Conferences
from switch.session.voice import LiveCall
from switch.verbs.base import ensure_answered
from switch.verbs.wait_loop import run_wait_url
from twiml import verbs
from twiml.control import CONTINUE, Outcome
from twiml.fetch import resolve
from twiml.verbs_callcenter import Conference

log = logging.getLogger("switch.verbs.conference")

WAIT_VERBS = frozenset({verbs.Play, verbs.Say, verbs.Pause, verbs.Redirect})
"""What a waitUrl or holdUrl document may hold (Twilio's list); other verbs are skipped with a warning."""


def seat_options(noun: Conference, document_url: str | None) -> SeatOptions:
    """The core's view of a `<Conference>` noun."""
    recording = None
    if noun.record == "record-from-start":
        callback = noun.recording_status_callback
        recording = RecordingAsked(trim=noun.trim == "trim-silence",
                                   status_callback=resolve(document_url, callback) if callback else None,
                                   status_callback_method=noun.recording_status_callback_method,
                                   status_callback_events=tuple(noun.recording_status_callback_event))
    return SeatOptions(name=noun.name, muted=noun.muted, beep=noun.beep,
                       start_conference_on_enter=noun.start_conference_on_enter,
                       end_conference_on_exit=noun.end_conference_on_exit, max_participants=noun.max_participants,
                       label=noun.participant_label, coach=noun.coach, status_callback=noun.status_callback,
                       status_callback_method=noun.status_callback_method,
                       status_callback_event=tuple(noun.status_callback_event), record=recording)


async def dial_conference(call: LiveCall, dial: verbs.Dial, noun: Conference, document_url: str | None) -> Outcome:
    """Run `<Dial><Conference>` on `call` (see the module docstring)."""
    conferences: Conferences | None = call.engine.conferences
    action = resolve(document_url, dial.action) if dial.action else None
    if conferences is None:
        raise RuntimeError("the voice engine has no conferences")
    await ensure_answered(call)
    status_callback = resolve(document_url, noun.status_callback) if noun.status_callback else None
    options = dataclasses.replace(seat_options(noun, document_url), status_callback=status_callback)
    try:
        seat = conferences.enter(call.call, options)
    except ConferenceFull as exc:
        log.info("%s: %s", call.sid, exc)
        return _told(action, dial, (("DialCallStatus", "failed"),))
    entered = time.monotonic()
    try:
        await _attend(call, conferences, seat, noun, document_url)
    finally:
        conferences.leave(seat, call.call.terminal, str(call.call.status))
    told = (("DialCallStatus", "completed"), ("ConferenceSid", seat.room.sid),
            ("DialCallDuration", str(int(time.monotonic() - entered))))
    return _told(action, dial, told)


def _told(action: str | None, dial: verbs.Dial, params: tuple[tuple[str, str], ...]) -> Outcome:
    if action is None:
        return CONTINUE
    return Outcome(next_url=action, method=dial.method, extra=params)


async def _attend(call: LiveCall, conferences: Conferences, seat: Seat, noun: Conference,
                  document_url: str | None) -> None:
    """Wait for the start, then be in the room until told to leave."""
    room = seat.room
    if not room.started.is_set():
        wait_url = resolve(document_url, noun.wait_url) if noun.wait_url else noun.wait_url
        if await _with_music(call, wait_url, noun.wait_method, document_url, _start_or_leave(seat)) == "leave":
            return
    if room.ended or seat.gone:
        return
    await conferences.join_audio(seat)
    while True:
        change = await seat.changes.get()
        if change == "leave":
            return
        if change.startswith("play:"):  # an announcement to this participant only
            await call.play(Path(change.removeprefix("play:")))
        elif change == "hold":
            await conferences.leave_audio(seat)
            if await _with_music(call, seat.hold_url, seat.hold_method, document_url, _unhold(seat)) == "leave":
                return
            seat.hold_url = None
            await conferences.join_audio(seat)


async def _start_or_leave(seat: Seat) -> str:
    """"start" once the room starts; "leave" if the seat is told to leave first (kicked, the room ended)."""
    started = asyncio.ensure_future(seat.room.started.wait())
    try:
        while not started.done():
            change = asyncio.ensure_future(seat.changes.get())
            done, _ = await asyncio.wait({started, change}, return_when=asyncio.FIRST_COMPLETED)
            if change in done and change.result() == "leave":
                return "leave"
            if change not in done:
                change.cancel()
        return "leave" if seat.room.ended else "start"
    finally:
        started.cancel()


async def _unhold(seat: Seat) -> str:
    """"unhold" or "leave", whichever the seat is told first (announcements to a held participant wait)."""
    while True:
        change = await seat.changes.get()
        if change in ("unhold", "leave"):
            return change


async def _with_music(call: LiveCall, url: str | None, method: str, document_url: str | None,
                      until: Coroutine[Any, Any, str]) -> str:
    """Play `url`'s wait music (None: the default music; "": silence) until `until` returns, and return that."""
    music: asyncio.Task[str] | None = None
    if url != "":
        music = asyncio.ensure_future(run_wait_url(call, url, method, call.params, document_url, WAIT_VERBS))
    try:
        return await until
    finally:
        if music is not None:
            music.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await music
