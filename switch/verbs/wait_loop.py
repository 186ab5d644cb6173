"""The wait music of a call that waits for others: an `<Enqueue>` waitUrl, a `<Dial><Conference>` waitUrl, and
(run once) the `<Dial><Queue url>` announcement a dequeued caller hears before the bridge.

`run_wait_url` fetches the URL's TwiML with the caller's parameters and the waiter's own (QueuePosition, ...:
`params` is asked again at every request, so they are current), and runs the document's verbs through the verb
registry, then fetches it again, as Twilio loops a waitUrl, until it is cancelled: the normal end, when the wait
is over.  `<Redirect>` (and a `<Gather>` action) load another document of the loop; `<Leave>` ends the wait
with "leave", `<Hangup>` with "hangup" (the caller then hangs up).  Verbs outside `allowed` are skipped with a
warning.  Without a URL, or when the URL fails (fetch, parse), the caller hears the default hold music: a soft
chime pattern written once into the data directory's cache.  An empty URL ("") is silence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np

from media.audio import AudioError, write_wav
from media.errors import MediaError
from media.tones import sine
from switch.core.errors import INTERNAL_FAILURE
from switch.session.voice import LiveCall
from switch.verbs.base import ensure_answered
from twiml import verbs
from twiml.errors import TwimlError
from twiml.fetch import resolve
from twiml.parse import parse
from twiml.verbs_callcenter import Leave

log = logging.getLogger("switch.verbs.wait_loop")

INVALID_WAIT_VERB: Final = 13238  # Twilio's "invalid verb used in waitUrl, holdUrl or announceUrl TwiML"
HOLD_MUSIC = "hold-music.wav"
# The default hold music: a C-major arpeggio of soft chimes (Hz, seconds), then a rest; about 4 s, looped.
HOLD_NOTES: Final = ((523.25, 0.5), (659.25, 0.5), (783.99, 0.5), (659.25, 0.5), (523.25, 1.0))
HOLD_REST = 1.0
MIN_ROUND = 1.0  # a wait document that ran in less than this is not fetched again sooner (no request storm)

Params = Callable[[], list[tuple[str, str]]]


def hold_music(rate: int = 8000) -> np.ndarray:
    """The default hold music's samples: each note with a soft attack and decay, so the loop never clicks."""
    parts = []
    for freq, seconds in HOLD_NOTES:
        tone = sine(freq, seconds, rate, amplitude=0.3).astype(np.float64)
        envelope = np.minimum(1.0, np.linspace(0.0, seconds / 0.02, tone.size))  # 20 ms attack
        envelope *= np.exp(-np.linspace(0.0, 2.5, tone.size))  # a chime's decay
        parts.append(tone * envelope)
    parts.append(np.zeros(int(HOLD_REST * rate)))
    return np.round(np.concatenate(parts)).astype(np.int16)


def hold_music_path(call: LiveCall) -> Path:
    """The default hold music as a WAV in the data directory's cache (written once)."""
    path = call.engine.beep_path.parent / HOLD_MUSIC
    if not path.exists():
        write_wav(path, hold_music())
    return path


async def play_hold_music(call: LiveCall) -> None:
    """The default hold music, looped until cancelled."""
    await call.play(hold_music_path(call), loop_forever=True)
    await asyncio.Event().wait()  # the player stopped by itself (it should not): stay quiet until cancelled


async def run_wait_url(call: LiveCall, url: str | None, method: str, params: Params, document_url: str | None,
                       allowed: frozenset[type], *, loop: bool = True) -> str:
    """Run the wait TwiML at `url` (relative to `document_url`) on `call` until cancelled; "leave" or "hangup"
    when the document says so.  With `loop=False` the document runs once, and "done" says it ended."""
    await ensure_answered(call)
    if url is None:
        await play_hold_music(call)
    if not url:
        await asyncio.Event().wait()  # an empty waitUrl: silence
        return "done"  # not reached: cancelled
    start = resolve(document_url, url)
    current, current_method = start, method
    extra: tuple[tuple[str, str], ...] = ()
    while True:
        began = call.clock.now()
        try:
            document = await call.engine.fetcher.fetch(current, current_method, [*call.params(), *params(), *extra])
            response = parse(document.text)
        except TwimlError as exc:
            call.notify(exc.code, f"wait URL failed, playing the default hold music: {exc.message}", url=current,
                        method=current_method, warning=True)
            await play_hold_music(call)
            return "done"  # not reached: the music plays until cancelled
        for warning in response.warnings:
            call.notify(warning.code, warning.text, url=document.url, warning=True)
        ended, following = await _run_document(call, document.url, response.verbs, allowed)
        if ended is not None:
            return ended
        if following is not None:
            current, current_method, extra = following
            continue
        if not loop:
            return "done"
        current, current_method, extra = start, method, ()
        spent = call.clock.now() - began
        if spent < MIN_ROUND:
            await call.clock.sleep(MIN_ROUND - spent)


async def _run_document(call: LiveCall, url: str, verb_list: tuple[object, ...] | list[object],
                        allowed: frozenset[type]) -> tuple[str | None, tuple[str, str, tuple[tuple[str, str], ...]]
                                                           | None]:
    """Run one wait document: ("leave"/"hangup", None) when it ends the wait, (None, (url, method, extra)) when
    it moves to another document, (None, None) when it ran out of verbs."""
    for verb in verb_list:
        kind = type(verb)
        if kind not in allowed:
            call.notify(INVALID_WAIT_VERB, f"<{kind.__name__}> is not allowed in this wait TwiML; skipped", url=url,
                        warning=True)
            continue
        if kind is Leave:
            return "leave", None
        if isinstance(verb, verbs.Hangup):
            return "hangup", None
        if isinstance(verb, verbs.Redirect):
            return None, (resolve(url, verb.url), verb.method, ())
        try:
            outcome = await call.engine.tasks(verb, url).run(call)
        except (MediaError, AudioError) as exc:
            call.notify(INTERNAL_FAILURE, f"media failed in wait TwiML <{kind.__name__}>: {exc}", url=url, warning=True)
            await call.clock.sleep(MIN_ROUND)
            continue
        if outcome.stop:
            return "hangup", None
        if outcome.next_url is not None:  # a <Gather> action: the loop goes on there
            return None, (resolve(url, outcome.next_url), outcome.method, outcome.extra)
    return None, None
