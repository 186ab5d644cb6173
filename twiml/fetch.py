"""Fetching TwiML from the customer's app: signed like every Twilio request, with Twilio's error codes.

- HTTP error status, timeout, connection refused: 11200 (HTTP retrieval failure).
- A Content-Type that is not XML: 12300 (invalid Content-Type).
- A body larger than the cap: 12100 (document parse failure), checked while reading.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import yarl

from twiml.errors import INVALID_CONTENT_TYPE, PARSE_FAILURE, TwimlError

HTTP_RETRIEVAL_FAILURE = 11200
FETCH_TIMEOUT = 15.0
MAX_DOCUMENT_BYTES = 64 * 1024
TWIML_CONTENT_TYPES = frozenset({"text/xml", "application/xml", "text/html"})


@dataclass(frozen=True)
class Document:
    """A TwiML document as fetched: its final URL (after redirects) and its text."""

    url: str
    text: str


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

    async def fetch(self, url: str, method: str, params: list[tuple[str, str]]) -> Document:
        method = method.upper()
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
                if response.status >= 400:
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
                charset = response.charset or "utf-8"
                return Document(str(response.url), body.decode(charset, errors="replace"))
        except TimeoutError as exc:
            raise TwimlError(HTTP_RETRIEVAL_FAILURE, f"{method} {url} timed out") from exc
        except aiohttp.ClientError as exc:
            raise TwimlError(HTTP_RETRIEVAL_FAILURE, f"{method} {url} failed: {exc}") from exc
