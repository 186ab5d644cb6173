"""Speech recognition: the interface every recognizer speaks, hints, a streaming upsampler and the driver.

A `Recognizer` makes one `Utterance` per thing to recognize (a `<Gather>`'s answer, a recording to transcribe).
An utterance is fed PCM16 8 kHz mono audio (native byte order, call audio as `media.ulaw.ulaw_decode` gives it)
in pieces of any size and may return a `Partial` after each; `finish` returns the `Result` (the text, empty when
nothing was recognized, and a confidence from 0 to 1).  Utterances do CPU work (or block on HTTP), so they run
on `RECOGNIZER_THREADS`, never on the event loop: `Stream` is the asyncio face of one utterance, and
`transcribe` recognizes a finished WAV file.

Two recognizers, chosen by `[speech] engine` in softswitch.toml (`switch.core.config`):

- `pocketsphinx` (the default, `media.recognize_sphinx`): offline, its en-US model inside the PyPI package.
  With hints it decodes against a grammar of the hint phrases; without, against its general language model.
- `http` (`HttpRecognizer` here): the utterance's audio as a WAV file posted to an OpenAI-style transcription
  endpoint when it ends (`POST {url}`, multipart `file` and `model`, answer `{"text": ...}`); no partials.

CPU is the cost of the offline one: measured on this machine, a hint grammar costs about 0.02 s of CPU per
second of call audio and the language model about 0.25 s (tests/unit/test_recognize*.py print both).
pocketsphinx keeps the GIL while it decodes, so audio goes to it in pieces of at most `MAX_PIECE_MS`: the event
loop waits at most that piece's decoding time for the GIL.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from media.audio import AudioError, decode, encode, resample, to_pcm16

log = logging.getLogger("media.recognize")

SAMPLE_RATE = 8000
"""The rate utterances are fed at: call audio."""

MAX_PIECE_MS = 40
"""The longest piece of audio handed to a recognizer in one call (it holds the GIL while it decodes: 40 ms of
audio is at most ~35 ms of decoding with the language model, ~2 ms with a grammar)."""

RECOGNIZER_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="recognize")
"""Where utterances run: never the event loop."""

_HINT_TOKEN = re.compile(r"\$[A-Za-z_]+")  # Twilio's class tokens ($OOV_CLASS_DIGIT_SEQUENCE, ...)


class RecognizeError(Exception):
    """A recognizer failed (the HTTP endpoint refused, the model did not load)."""


@dataclass(frozen=True)
class Result:
    """What was said: `text` (empty when nothing was recognized) and `confidence` from 0 to 1."""

    text: str
    confidence: float


@dataclass(frozen=True)
class Partial:
    """A hypothesis while the caller speaks: `text` may still change; `stable` is the part of it that has not
    changed since the previous partial, `stability` the share of words in it (0..1)."""

    text: str
    stable: str
    stability: float


class Utterance(Protocol):
    """One utterance being recognized, used by one thread at a time (never the event loop)."""

    def feed(self, pcm: bytes) -> Partial | None:
        """Recognize more audio (PCM16 8 kHz); a new hypothesis, or None when it did not change."""
        ...

    def finish(self) -> Result:
        """The end of the audio: the final result."""
        ...


class Recognizer(Protocol):
    """Makes utterances; safe to call from any thread."""

    name: str
    partials: bool  # whether its utterances return Partial results

    def utterance(self, hints: Sequence[str] = ()) -> Utterance:
        """A new utterance; `hints` are the phrases the caller is likely to say."""
        ...

    def warm(self) -> None:
        """Load what the first utterance would otherwise wait for (blocking: run it on a thread)."""
        ...


def parse_hints(raw: str | None) -> tuple[str, ...]:
    """Twilio's `hints` (comma-separated words and phrases) as lower-case phrases of words, in order, without
    repeats; class tokens such as `$OOV_CLASS_DIGIT_SEQUENCE` are dropped (they name no words)."""
    phrases: dict[str, None] = {}
    for item in (raw or "").split(","):
        words = re.sub(r"[^\w' ]+", " ", _HINT_TOKEN.sub(" ", item).lower()).split()
        if words:
            phrases[" ".join(words)] = None
    return tuple(phrases)


def stability(previous: str, text: str) -> tuple[str, float]:
    """The words of `text` that `previous` already had at its start, and their share of `text`'s words."""
    old, new = previous.split(), text.split()
    same = 0
    while same < min(len(old), len(new)) and old[same] == new[same]:
        same += 1
    return " ".join(new[:same]), (same / len(new) if new else 0.0)


class Upsampler:
    """8 kHz to 16 kHz in pieces, as if the whole signal had been resampled at once (no clicks at the seams).

    `media.audio.resample` pads each end of what it is given with zeros; this keeps `context` input samples
    either side of the part it emits, so every emitted sample saw real neighbours."""

    context = 32  # input samples either side; the 2:1 filter's half-width is 24 (media.audio._ZERO_CROSSINGS)

    def __init__(self) -> None:
        self._history = np.zeros(self.context, dtype=np.float32)  # already emitted, kept as left context
        self._pending = np.zeros(0, dtype=np.float32)  # not emitted yet (waits for right context)

    def feed(self, pcm: bytes) -> bytes:
        """PCM16 at 8 kHz in, PCM16 at 16 kHz out (lagging by `context` samples)."""
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16).astype(np.float32) / 32768.0
        self._pending = np.concatenate([self._pending, samples])
        ready = len(self._pending) - self.context
        if ready <= 0:
            return b""
        return self._emit(ready, self.context)

    def flush(self) -> bytes:
        """Whatever is still held back, with silence as its right context."""
        ready = len(self._pending)
        self._pending = np.concatenate([self._pending, np.zeros(self.context, dtype=np.float32)])
        return self._emit(ready, self.context) if ready else b""

    def _emit(self, ready: int, right: int) -> bytes:
        window = np.concatenate([self._history, self._pending[: ready + right]])
        out = resample(window, SAMPLE_RATE, 2 * SAMPLE_RATE)
        left = len(self._history)
        emitted = out[2 * left : 2 * (left + ready)]
        self._history = window[left + ready - self.context : left + ready]
        self._pending = self._pending[ready:]
        return to_pcm16(emitted).tobytes()


class HttpRecognizer:
    """Posts each utterance's audio to an OpenAI-style transcription endpoint (`[speech] engine = "http"`):
    multipart `file` (a 8 kHz WAV) and `model`, and `prompt` with the hints; the answer's `text` is the result
    (confidence 1.0 when it is not empty: such endpoints give none).  No partial results."""

    name = "http"
    partials = False

    def __init__(self, url: str, model: str = "whisper-1", api_key: str | None = None, timeout: float = 30.0):
        self.url = url
        self.model = model
        self.api_key = api_key
        self.timeout = timeout

    def utterance(self, hints: Sequence[str] = ()) -> Utterance:
        return _HttpUtterance(self, hints)

    def warm(self) -> None:
        """Nothing to load."""

    def post(self, pcm: bytes, hints: Sequence[str]) -> Result:
        """One request: the audio in, the result out (RecognizeError when the endpoint fails)."""
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16).astype(np.float32) / 32768.0
        if samples.size == 0:
            return Result("", 0.0)
        fields = [("model", self.model)] + ([("prompt", ", ".join(hints))] if hints else [])
        body, content_type = _multipart(fields, encode(samples, SAMPLE_RATE, "wav"))
        request = urllib.request.Request(self.url, data=body, method="POST", headers={"Content-Type": content_type})
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RecognizeError(f"transcription endpoint {self.url}: {exc}") from exc
        text = answer.get("text") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise RecognizeError(f"transcription endpoint {self.url}: no text in the answer")
        text = text.strip()
        return Result(text, 1.0 if text else 0.0)


class _HttpUtterance:
    def __init__(self, recognizer: HttpRecognizer, hints: Sequence[str]) -> None:
        self._recognizer = recognizer
        self._hints = tuple(hints)
        self._audio = bytearray()

    def feed(self, pcm: bytes) -> Partial | None:
        self._audio += pcm
        return None

    def finish(self) -> Result:
        return self._recognizer.post(bytes(self._audio), self._hints)


def _multipart(fields: Sequence[tuple[str, str]], wav: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for key, value in fields:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode())
    out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="audio.wav"\r\n'
              "Content-Type: audio/wav\r\n\r\n".encode())
    out.write(wav)
    out.write(f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class Stream:
    """One utterance driven from asyncio: `feed` queues audio, which a recognizer thread consumes in pieces of
    at most `MAX_PIECE_MS`; each new partial goes to `partials`; `finish` returns the result."""

    def __init__(self, recognizer: Recognizer, hints: Sequence[str] = ()) -> None:
        self.recognizer = recognizer
        self._hints = tuple(hints)
        self._utterance: Utterance | None = None  # made on a recognizer thread: loading a model takes a while
        self._buffer = bytearray()
        self._busy: asyncio.Future[Partial | None] | None = None
        self.partials: asyncio.Queue[Partial] = asyncio.Queue()

    def feed(self, pcm: bytes) -> None:
        """Queue call audio (PCM16 8 kHz); recognition runs behind, off the event loop."""
        self._buffer += pcm
        if self._busy is None:
            self._next()

    def _next(self) -> None:
        piece = SAMPLE_RATE * 2 * MAX_PIECE_MS // 1000
        chunk, self._buffer = bytes(self._buffer[:piece]), self._buffer[piece:]
        loop = asyncio.get_running_loop()
        self._busy = loop.run_in_executor(RECOGNIZER_THREADS, self._feed, chunk)
        self._busy.add_done_callback(self._fed)

    def _current(self) -> Utterance:
        if self._utterance is None:
            self._utterance = self.recognizer.utterance(self._hints)
        return self._utterance

    def _feed(self, chunk: bytes) -> Partial | None:
        return self._current().feed(chunk)

    def _finish(self) -> Result:
        return self._current().finish()

    def _fed(self, done: asyncio.Future[Partial | None]) -> None:
        self._busy = None
        if done.cancelled():
            return
        if done.exception() is None:
            partial = done.result()
            if partial is not None:
                self.partials.put_nowait(partial)
        else:
            log.warning("recognizer %s failed on a piece of audio: %s", self.recognizer.name, done.exception())
        if self._buffer:
            self._next()

    def discard(self) -> None:
        """Drop the utterance unfinished (the Gather was cancelled): it is ended on a recognizer thread, so that
        its decoder goes back to the pool, and its result is not read."""
        self._buffer.clear()
        loop = asyncio.get_running_loop()

        def end(_: object = None) -> None:
            loop.run_in_executor(RECOGNIZER_THREADS, self._end_quietly)

        if self._busy is not None:
            self._busy.add_done_callback(end)
        elif self._utterance is not None:
            end()

    def _end_quietly(self) -> None:
        try:
            self._finish()
        except Exception as exc:  # nobody waits for this result; the failure is only worth a line
            log.info("recognizer %s: a discarded utterance failed to end: %s", self.recognizer.name, exc)

    async def finish(self) -> Result:
        """Recognize what is queued, then the final result (RecognizeError when the recognizer fails)."""
        while self._busy is not None or self._buffer:
            if self._busy is None:
                self._next()
            busy = self._busy
            assert busy is not None
            await asyncio.wait([busy])
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(RECOGNIZER_THREADS, self._finish)
        except RecognizeError:
            raise
        except Exception as exc:  # a recognizer's own failure, named for the caller's log
            raise RecognizeError(f"{self.recognizer.name}: {exc}") from exc


def _utterance_of_file(recognizer: Recognizer, path: Path, hints: Sequence[str]) -> Result:
    samples, rate = decode(path.read_bytes())
    pcm = to_pcm16(resample(samples, rate, SAMPLE_RATE)).tobytes()
    utterance = recognizer.utterance(hints)
    piece = SAMPLE_RATE * 2 * MAX_PIECE_MS // 1000
    for start in range(0, len(pcm), piece):
        utterance.feed(pcm[start : start + piece])
    return utterance.finish()


async def transcribe(recognizer: Recognizer, path: Path, hints: Sequence[str] = ()) -> Result:
    """The text of an audio file (a recording), recognized on a recognizer thread."""
    try:
        return await asyncio.get_running_loop().run_in_executor(
            RECOGNIZER_THREADS, _utterance_of_file, recognizer, Path(path), tuple(hints))
    except (RecognizeError, AudioError):
        raise
    except Exception as exc:
        raise RecognizeError(f"{recognizer.name}: {exc}") from exc
