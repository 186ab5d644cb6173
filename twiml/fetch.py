"""Fetching TwiML from the customer's app: signed like every Twilio request, with Twilio's error codes.

- HTTP error status, timeout, connection refused: 11200 (HTTP retrieval failure).
- A Content-Type that is not XML: 12300 (invalid Content-Type).
- A body larger than the cap: 12100 (document parse failure), checked while reading.

Each `exchange_observers` callable (none by default) is told of every request as an `Exchange`: what was sent and
what came back (status, Content-Type, the start of the body, latency, error); the switch keeps them per call.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import yarl

from twiml.errors import INVALID_CONTENT_TYPE, PARSE_FAILURE, TwimlError

HTTP_RETRIEVAL_FAILURE = 11200
FETCH_TIMEOUT = 15.0
MAX_DOCUMENT_BYTES = 64 * 1024
TWIML_CONTENT_TYPES = frozenset({"text/xml", "application/xml", "text/html"})
EXCERPT_CHARS = 1024  # of a response body, in an `Exchange`


@dataclass(frozen=True)
class Document:
    """A TwiML document as fetched: its final URL (after redirects) and its text."""

    url: str
    text: str


@dataclass(frozen=True)
class Exchange:
    """One request the fetcher made and what came back: `status` None when no response came (`error` says
    why); `body` is the start of the response body; `at` is when the request left (`time.time()`)."""

    at: float
    method: str
    url: str
    params: list[tuple[str, str]]
    status: int | None
    content_type: str | None
    body: str
    duration_ms: int
    error: str | None


@dataclass
class _Seen:
    """What the response said, filled in as the request goes (for the exchange observers)."""

    status: int | None = None
    content_type: str | None = None
    body: bytes = field(default=b"")


def resolve(base: str | None, url: str) -> str:
    """`url` made absolute against the document it appeared in (Twilio resolves relative URLs)."""
    return urllib.parse.urljoin(base, url) if base else url


# (method, url, params) -> the URL to request (GET: with the parameters) and the headers that sign it
Signer = Callable[[str, str, list[tuple[str, str]]], tuple[str, dict[str, str]]]


class Fetcher:
    """Requests TwiML documents with the call's parameters, signed by `sign` (X-Twilio-Signature)."""

    def __init__(self, session: aiohttp.ClientSession, sign: Signer, timeout: float = FETCH_TIMEOUT,
                 max_bytes: int = MAX_DOCUMENT_BYTES) -> None:
        self._session = session
        self._sign = sign
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_bytes = max_bytes
        self.exchange_observers: list[Callable[[Exchange], None]] = []

    async def fetch(self, url: str, method: str, params: list[tuple[str, str]]) -> Document:
        """The document at `url`, requested with `params`; TwimlError (11200, 12300, 12100) when it fails."""
        method = method.upper()
        if not self.exchange_observers:
            return await self._fetch(url, method, params, _Seen())
        seen = _Seen()
        at, started = time.time(), time.perf_counter()
        error: str | None = None
        try:
            return await self._fetch(url, method, params, seen)
        except TwimlError as exc:
            error = exc.message
            raise
        except asyncio.CancelledError:
            error = "cancelled (the call moved on)"
            raise
        finally:
            exchange = Exchange(at, method, url, list(params), seen.status, seen.content_type,
                                seen.body[:EXCERPT_CHARS * 4].decode("utf-8", errors="replace")[:EXCERPT_CHARS],
                                round((time.perf_counter() - started) * 1000), error)
            for observer in self.exchange_observers:
                observer(exchange)

    async def _fetch(self, url: str, method: str, params: list[tuple[str, str]], seen: _Seen) -> Document:
        if not url.startswith(("http://", "https://")):
            raise TwimlError(HTTP_RETRIEVAL_FAILURE, f"cannot fetch {url!r}: not an http(s) URL")
        target, headers = self._sign(method, url, params)
        if method == "GET":
            request = self._session.get(yarl.URL(target, encoded=True), headers=headers, timeout=self._timeout)
        else:
            # the form encoded here, as aiohttp would (urlencode, UTF-8), without its FormData machinery
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            request = self._session.post(yarl.URL(url, encoded=True), data=urllib.parse.urlencode(params).encode(),
                                         headers=headers, timeout=self._timeout)
        try:
            async with request as response:
                seen.status, seen.content_type = response.status, response.headers.get("Content-Type")
                if response.status >= 400:
                    if self.exchange_observers:  # the start of the error page, for the call's request log
                        seen.body = await response.content.read(EXCERPT_CHARS * 4)
                    raise TwimlError(HTTP_RETRIEVAL_FAILURE, f"{method} {url} answered HTTP {response.status}")
                ctype = response.content_type.lower()
                if ctype not in TWIML_CONTENT_TYPES:
                    raise TwimlError(INVALID_CONTENT_TYPE,
                                     f"{method} {url} returned Content-Type {ctype!r}, not TwiML (text/xml)")
                body = bytearray()
                async for chunk in response.content.iter_chunked(8192):
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise TwimlError(PARSE_FAILURE, f"{url}: document larger than {self._max_bytes} bytes")
                if self.exchange_observers:
                    seen.body = bytes(body[:EXCERPT_CHARS * 4])
                charset = response.charset or "utf-8"
                return Document(str(response.url), body.decode(charset, errors="replace"))
        except TimeoutError as exc:
            raise TwimlError(HTTP_RETRIEVAL_FAILURE, f"{method} {url} timed out") from exc
        except aiohttp.ClientError as exc:
            raise TwimlError(HTTP_RETRIEVAL_FAILURE, f"{method} {url} failed: {exc}") from exc
