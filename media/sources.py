"""Playable audio from URLs and local files, converted once to 8 kHz mono WAV files in a cache directory.

`AudioCache.from_url` keys each URL to `<sha256(url)>.wav` plus a `<sha256(url)>.json` holding its HTTP
validators.  A later request for the same URL is answered from the cache without any request while
`Cache-Control: max-age` (or `Expires`) says it is fresh; otherwise it is revalidated with
`If-None-Match` / `If-Modified-Since` and a 304 reuses the file.  Concurrent requests for one URL share a
single fetch.  Failures raise `AudioError` carrying the URL and HTTP status (TwiML error 11200).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import json
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
from multidict import CIMultiDictProxy

from media.audio import AudioError, to_bridge_wav, write_atomic


@dataclass(frozen=True)
class _Entry:
    etag: str | None
    last_modified: str | None
    fresh_until: float  # epoch seconds; 0 means revalidate every time


class AudioCache:
    """Converted audio files under `root`, fetched over HTTP(S) or read from local paths / file:// URLs."""

    def __init__(self, root: Path, *, timeout: float = 30.0, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._entries: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Task[Path]] = {}

    def path_for(self, url: str) -> Path:
        """The cached WAV file of `url` (whether or not it exists yet)."""
        return self.root / f"{_sha(url)}.wav"

    async def from_url(self, url: str, session: aiohttp.ClientSession) -> Path:
        """An 8 kHz mono WAV of the audio at `url` (http, https or file), fetched or revalidated as needed."""
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if scheme == "file":
            return await asyncio.to_thread(self.from_file, url)
        if scheme not in ("http", "https"):
            raise AudioError(f"unsupported audio URL scheme {scheme!r}: {url}", url=url)
        entry = self._entry(url)
        if entry is not None and time.time() < entry.fresh_until and self.path_for(url).exists():
            return self.path_for(url)
        task = self._inflight.get(url)
        if task is None:
            task = asyncio.create_task(self._fetch(url, session))
            self._inflight[url] = task
            task.add_done_callback(lambda done: self._fetched(url, done))
        return await asyncio.shield(task)

    def from_file(self, path: str | Path) -> Path:
        """An 8 kHz mono WAV of a local audio file (a path or a file:// URL), converted once per file version."""
        source = _local_path(path)
        try:
            stat = source.stat()
            key = _sha(f"file:{source.resolve()}:{stat.st_mtime_ns}:{stat.st_size}")
            out = self.root / f"{key}.wav"
            if out.exists():
                return out
            data = source.read_bytes()
        except OSError as exc:
            raise AudioError(f"cannot read audio file {source}: {exc}", url=str(path)) from exc
        try:
            return to_bridge_wav(data, out)
        except AudioError as exc:
            raise AudioError(f"{source}: {exc}", url=str(path)) from exc

    async def _fetch(self, url: str, session: aiohttp.ClientSession) -> Path:
        entry, out = self._entry(url), self.path_for(url)
        headers: dict[str, str] = {}
        if entry is not None and out.exists():
            if entry.etag:
                headers["If-None-Match"] = entry.etag
            if entry.last_modified:
                headers["If-Modified-Since"] = entry.last_modified
        try:
            async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                if resp.status == 304 and entry is not None and headers:
                    self._store(url, _entry_from(resp.headers, entry))
                    return out
                if not 200 <= resp.status < 300:
                    raise AudioError(f"fetching {url} failed: HTTP {resp.status}", url=url, status=resp.status)
                data = await self._read(url, resp)
                fresh = _entry_from(resp.headers, None)
                status = resp.status
        except TimeoutError as exc:
            raise AudioError(f"fetching {url} timed out after {self.timeout:g} s", url=url) from exc
        except aiohttp.ClientError as exc:
            raise AudioError(f"fetching {url} failed: {exc}", url=url) from exc
        try:
            await asyncio.to_thread(to_bridge_wav, data, out)
        except AudioError as exc:
            raise AudioError(f"{url}: {exc}", url=url, status=status) from exc
        self._store(url, fresh)
        return out

    async def _read(self, url: str, resp: aiohttp.ClientResponse) -> bytes:
        if resp.content_length is not None and resp.content_length > self.max_bytes:
            raise AudioError(f"{url} is too large ({resp.content_length} bytes)", url=url, status=resp.status)
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(65536):
            size += len(chunk)
            if size > self.max_bytes:
                raise AudioError(f"{url} is larger than {self.max_bytes} bytes", url=url, status=resp.status)
            chunks.append(chunk)
        return b"".join(chunks)

    def _fetched(self, url: str, task: asyncio.Task[Path]) -> None:
        if self._inflight.get(url) is task:
            del self._inflight[url]
        if not task.cancelled():
            task.exception()  # retrieved here so an error nobody awaited any more is not logged as lost

    def _entry(self, url: str) -> _Entry | None:
        entry = self._entries.get(url)
        if entry is None:
            with contextlib.suppress(OSError, ValueError, TypeError):
                meta = json.loads((self.root / f"{_sha(url)}.json").read_text())
                if meta.pop("url", None) == url:
                    entry = self._entries[url] = _Entry(**meta)
        return entry

    def _store(self, url: str, entry: _Entry) -> None:
        self._entries[url] = entry
        write_atomic(self.root / f"{_sha(url)}.json", json.dumps({"url": url, **asdict(entry)}).encode())


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _local_path(path: str | Path) -> Path:
    text = str(path)
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() != "file":
        return Path(text)
    if parts.netloc not in ("", "localhost"):
        raise AudioError(f"file URL on another host: {text}", url=text)
    return Path(urllib.request.url2pathname(urllib.parse.unquote(parts.path)))


def _entry_from(headers: CIMultiDictProxy[str], previous: _Entry | None) -> _Entry:
    """Validators and freshness from response headers (a 304 may omit validators: keep the old ones)."""
    etag = headers.get("ETag") or (previous.etag if previous else None)
    last_modified = headers.get("Last-Modified") or (previous.last_modified if previous else None)
    return _Entry(etag, last_modified, _fresh_until(headers))


def _fresh_until(headers: CIMultiDictProxy[str]) -> float:
    now = time.time()
    directives: dict[str, str] = {}
    for part in ",".join(headers.getall("Cache-Control", [])).split(","):
        name, _, value = part.strip().partition("=")
        directives[name.lower()] = value.strip().strip('"')
    if "no-cache" in directives or "no-store" in directives:
        return 0.0
    if "max-age" in directives:
        try:
            age = float(headers.get("Age", "0"))
            return now + max(0.0, float(directives["max-age"]) - age)
        except ValueError:
            return 0.0
    expires = headers.get("Expires")
    if expires:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            return email.utils.parsedate_to_datetime(expires).timestamp()
    return 0.0
