"""Fetching TwiML from the customer's app: signed like every Twilio request, with Twilio's error codes.

- HTTP error status, timeout, connection refused: 11200 (HTTP retrieval failure).
- A Content-Type that is not XML: 12300 (invalid Content-Type).
- A body larger than the cap: 12100 (document parse failure).
- Redirects: 301, 302, 303 and 307 are followed (up to 10; a 303, and a 301 or 302 to a POST, becomes a GET
  without the body), as Twilio follows them; another 3xx, or one without a Location, is 11216 (HTTP invalid
  redirect).  The document's URL is the last one requested (relative URLs in it resolve against it).

The requests go through a `Transport` (the switch's `HttpTransport`: a lean client for http://, aiohttp for
https://); this module is the language's side only.

Each `exchange_observers` callable (none by default) is told of every request as an `Exchange`: what was sent and
what came back (status, Content-Type, the start of the body, latency, error); the switch keeps them per call.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from twiml.errors import INVALID_CONTENT_TYPE, PARSE_FAILURE, TwimlError

HTTP_RETRIEVAL_FAILURE = 11200
HTTP_INVALID_REDIRECT = 11216
FOLLOWED_REDIRECTS = frozenset({301, 302, 303, 307})  # what Twilio follows (its error 11216)
MAX_REDIRECTS = 10
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


class Answer(Protocol):
    """An HTTP response: its status, headers (names in lower case) and whole body."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def body(self) -> bytes: ...


class Transport(Protocol):
    """Sends one request and returns the answer, redirects included (not followed); raises OSError for a request
    that got no answer, TimeoutError after its own timeout."""

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes = b"") -> Answer: ...


class Fetcher:
    """Requests TwiML documents with the call's parameters, signed by `sign` (X-Twilio-Signature)."""

    def __init__(self, transport: Transport, sign: Signer, timeout: float = FETCH_TIMEOUT,
                 max_bytes: int = MAX_DOCUMENT_BYTES) -> None:
        self._transport = transport
        self._sign = sign
        self._timeout = timeout
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
        body = b""
        if method != "GET":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urllib.parse.urlencode(params).encode()
        first = f"{method} {url}"
        try:
            async with asyncio.timeout(self._timeout):
                for _ in range(MAX_REDIRECTS + 1):
                    answer = await self._transport.request(method, target, headers, body)
                    seen.status, seen.content_type = answer.status, answer.headers.get("content-type")
                    if not 300 <= answer.status < 400:
                        return self._document(first, target, answer, seen)
                    location = answer.headers.get("location")
                    if answer.status not in FOLLOWED_REDIRECTS or not location:
                        raise TwimlError(HTTP_INVALID_REDIRECT, f"{first} answered HTTP {answer.status}"
                                         f"{'' if location else ' without a Location'}: not a redirect Twilio follows")
                    target = urllib.parse.urljoin(target, location)
                    if answer.status == 303 or (answer.status in (301, 302) and method == "POST"):
                        method, body = "GET", b""
                        headers = {k: v for k, v in headers.items() if k != "Content-Type"}
                raise TwimlError(HTTP_INVALID_REDIRECT, f"{first}: more than {MAX_REDIRECTS} redirects")
        except TimeoutError as exc:
            raise TwimlError(HTTP_RETRIEVAL_FAILURE, f"{first} timed out") from exc
        except OSError as exc:
            raise TwimlError(HTTP_RETRIEVAL_FAILURE, f"{first} failed: {exc}") from exc

    def _document(self, first: str, url: str, answer: Answer, seen: _Seen) -> Document:
        """The TwiML document in a non-redirect answer, or the error it is."""
        if answer.status >= 400:
            if self.exchange_observers:  # the start of the error page, for the call's request log
                seen.body = answer.body[:EXCERPT_CHARS * 4]
            raise TwimlError(HTTP_RETRIEVAL_FAILURE, f"{first} answered HTTP {answer.status}")
        media_type, charset = _content_type(answer.headers.get("content-type", ""))
        if media_type not in TWIML_CONTENT_TYPES:
            raise TwimlError(INVALID_CONTENT_TYPE,
                             f"{first} returned Content-Type {media_type!r}, not TwiML (text/xml)")
        if len(answer.body) > self._max_bytes:
            raise TwimlError(PARSE_FAILURE, f"{url}: document larger than {self._max_bytes} bytes")
        if self.exchange_observers:
            seen.body = answer.body[:EXCERPT_CHARS * 4]
        try:
            text = answer.body.decode(charset or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            text = answer.body.decode("utf-8", errors="replace")
        return Document(url, text)


def _content_type(value: str) -> tuple[str, str | None]:
    """The media type (lower case) and charset of a Content-Type header (`text/xml; charset=ISO-8859-1`)."""
    media_type, *parameters = value.split(";")
    charset = None
    for parameter in parameters:
        name, _, text = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = text.strip().strip('"') or None
    return media_type.strip().lower(), charset
