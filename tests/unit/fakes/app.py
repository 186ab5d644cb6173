"""Fakes of what a call's TwiML session reaches outside the process: the app's documents, speech and audio.

- `FakeFetcher` answers TwiML requests from a dict (URL -> document, a function of the request's parameters,
  or a `TwimlError`), and records every request; a URL it does not know answers HTTP 404 (11200), as a real
  app would.
- `FakeSpeech` and `FakeAudio` stand in for espeak-ng and the HTTP audio cache: they write small silent WAV
  files named after what was asked (`say-hello-world.wav`, `hold.wav`), so the worker fake plays them for
  their length and a trace reads as the call sounded.
"""

from __future__ import annotations

import re
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from media.audio import AudioError
from twiml.errors import TwimlError
from twiml.fetch import HTTP_RETRIEVAL_FAILURE, Document

Answer = str | Callable[[dict[str, str]], str] | TwimlError


def write_silence(path: Path, seconds: float, rate: int = 8000) -> Path:
    """A silent 16-bit mono WAV of `seconds`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\0\0" * round(seconds * rate))
    return path


def slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "empty"


@dataclass(frozen=True)
class Request:
    """One TwiML request the switch made."""

    method: str
    url: str
    params: dict[str, str]

    def __str__(self) -> str:
        return f"{self.method} {self.url}"


@dataclass
class FakeFetcher:
    """`twiml.fetch.Fetcher` over a dict of documents (see the module docstring)."""

    documents: dict[str, Answer] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    async def fetch(self, url: str, method: str, params: list[tuple[str, str]]) -> Document:
        method = method.upper()
        self.requests.append(Request(method, url, dict(params)))
        if not url.startswith(("http://", "https://")):
            raise TwimlError(HTTP_RETRIEVAL_FAILURE, f"cannot fetch {url!r}: not an http(s) URL")
        answer = self.documents.get(url)
        if answer is None:
            raise TwimlError(HTTP_RETRIEVAL_FAILURE, f"{method} {url} answered HTTP 404")
        if isinstance(answer, TwimlError):
            raise answer
        text = answer(dict(params)) if callable(answer) else answer
        return Document(url, text)

    @property
    def trace(self) -> list[str]:
        return [str(r) for r in self.requests]


class FakeSpeech:
    """`media.speech.Speech` without espeak-ng: `say-<text>.wav`, `seconds` long, silent."""

    def __init__(self, root: Path, seconds: float = 1.0) -> None:
        self.root = root
        self.seconds = seconds
        self.said: list[tuple[str, str, str | None]] = []

    async def synthesize(self, text: str, voice: str = "alice", language: str | None = None) -> Path:
        self.said.append((text, voice, language))
        path = self.root / f"say-{slug(text)}.wav"
        return path if path.exists() else write_silence(path, self.seconds)


class FakeAudio:
    """`media.sources.AudioCache` without HTTP: every URL is a WAV named like its last path segment, `seconds`
    long (`lengths` per URL); URLs in `broken` raise AudioError, URLs in `unplayable` give a path the worker
    cannot open.  `fetched` lists the URLs asked for, `opened` the local files."""

    def __init__(self, root: Path, seconds: float = 2.0) -> None:
        self.root = root
        self.seconds = seconds
        self.lengths: dict[str, float] = {}
        self.broken: set[str] = set()
        self.unplayable: set[str] = set()
        self.fetched: list[str] = []
        self.opened: list[str] = []

    def _wav(self, source: str) -> Path:
        if source in self.broken:
            raise AudioError(f"cannot decode {source}", url=source)
        name = source.rstrip("/").rsplit("/", 1)[-1] or "index"
        if source in self.unplayable:
            return self.root / "missing" / name
        path = self.root / (name if name.endswith(".wav") else f"{name}.wav")
        return write_silence(path, self.lengths.get(source, self.seconds))

    async def from_url(self, url: str, session: Any = None) -> Path:
        self.fetched.append(url)
        return self._wav(url)

    def from_file(self, path: str | Path) -> Path:
        self.opened.append(str(path))
        return self._wav(str(path))
