"""Conference announcements: an announceUrl (REST `AnnounceUrl` on a conference or a participant) as audio files.

Twilio lets the URL answer with an audio file or with TwiML holding `<Play>`, `<Say>`, `<Pause>` and `<Redirect>`.
The document is requested with the conference's parameters (AccountSid, ConferenceSid, FriendlyName); served as
audio (not XML), the URL itself is played.  Each `<Play>` becomes its cached file, each `<Say>` its speech, each
`<Pause>` that much silence, each `loop` repeated (a `loop="0"` plays once: an announcement must end); a
`<Redirect>` loads the next document (at most a few).  Anything else is skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from media.audio import write_wav
from switch.core.conference_model import Conference
from switch.session.voice import VoiceEngine
from twiml import verbs
from twiml.errors import INVALID_CONTENT_TYPE, TwimlError
from twiml.fetch import resolve
from twiml.parse import parse

MAX_REDIRECTS = 5
RATE = 8000


async def announcement(engine: VoiceEngine, url: str, method: str, conf: Conference) -> list[Path]:
    """The audio files `url` announces (see the module docstring); TwimlError when it cannot be fetched."""
    params = [("AccountSid", conf.account_sid), ("ConferenceSid", conf.sid), ("FriendlyName", conf.friendly_name)]
    paths: list[Path] = []
    for _ in range(MAX_REDIRECTS):
        try:
            document = await engine.fetcher.fetch(url, method, params)
        except TwimlError as exc:
            if exc.code != INVALID_CONTENT_TYPE:
                raise
            return [*paths, await engine.audio.from_url(url, engine.session)]
        redirect = None
        for verb in parse(document.text).verbs:
            if isinstance(verb, verbs.Play) and verb.url:
                path = await engine.audio.from_url(resolve(document.url, verb.url), engine.session)
                paths += [path] * max(1, verb.loop)
            elif isinstance(verb, verbs.Say) and verb.text.strip():
                path = await engine.speech.synthesize(verb.text, verb.voice, verb.language)
                paths += [path] * max(1, verb.loop)
            elif isinstance(verb, verbs.Pause):
                paths.append(_silence(engine, verb.length))
            elif isinstance(verb, verbs.Redirect):
                redirect = verb
                break
        if redirect is None:
            return paths
        url, method = resolve(document.url, redirect.url), redirect.method
    return paths


def _silence(engine: VoiceEngine, seconds: int) -> Path:
    path = engine.beep_path.parent / f"silence-{seconds}s.wav"
    if not path.exists():
        write_wav(path, np.zeros(seconds * RATE, dtype=np.int16), RATE)
    return path
