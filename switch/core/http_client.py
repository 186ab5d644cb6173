"""A lean HTTP/1.1 client for the webhooks and TwiML requests the switch sends to plain `http://` URLs.

aiohttp's client spends ~250 us of CPU on a small POST on loopback; this one ~30 us, and a webhook answers a
few ms sooner, which is most of a callback's latency.  It does only what a webhook needs: one request at a
time per connection, keep-alive connections per host and port (a reused connection the server had closed is
retried once on a new one), at most 100 connections at once, `Content-Length`, chunked and close-delimited
bodies, a total timeout, basic auth from the URL's user info.  It does not follow redirects (a 3xx is the
answer) and does not decompress (it asks for none).

`HttpTransport` sends `http://` requests through it and `https://` ones through an aiohttp session (TLS is
aiohttp's), with one interface and one error type: the webhooks and the TwiML fetcher (`twiml.fetch`) use it.
"""

from __future__ import annotations

import asyncio
import base64
import typing
import urllib.parse
from dataclasses import dataclass

import aiohttp
import yarl

MAX_HEAD = 64 * 1024  # status line and headers
MAX_BODY = 1024 * 1024  # the dispatcher keeps an excerpt; a longer body fails the attempt
MAX_IDLE = 8  # idle connections kept per host and port
MAX_CONNECTIONS = 100  # open at once, all hosts together (aiohttp's default): more requests wait their turn


class HttpError(OSError):
    """A request that got no usable answer; the class name says how (it starts the webhook's error text)."""


class ConnectError(HttpError):
    """The connection could not be made."""


class ServerDisconnected(HttpError):
    """The server closed the connection before its answer was whole."""


class BadResponse(HttpError):
    """The answer is not HTTP/1.x as this client reads it."""


@dataclass(frozen=True)
class HttpReply:
    """A response: status, headers (names in lower case) and body."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One TCP connection: what arrives piles up in `buffer`; `more()` waits for the next bytes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def more(self, at_eof_ok: bool = False) -> None:
        """Wait for more bytes (or the end, with `at_eof_ok`); the end before them is ServerDisconnected."""
        if self.eof:
            if at_eof_ok:
                return
            raise ServerDisconnected("the server closed the connection before its answer was whole")
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    def close(self) -> None:
        self.eof = True
        if self.transport is not None:
            self.transport.close()


class HttpClient:
    """Requests to `http://` URLs over keep-alive connections (see the module doc)."""

    def __init__(self, timeout: float, user_agent: str, max_connections: int = MAX_CONNECTIONS) -> None:
        self.timeout = timeout
        self.user_agent = user_agent
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        # a hanging server at hundreds of calls a second must not take every file descriptor of the process
        self._slots = asyncio.Semaphore(max_connections)

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes = b"") -> HttpReply:
        """Send one request and read its answer within `timeout` s (TimeoutError), or raise HttpError."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not an http:// URL: {url}")
        host, port = parts.hostname, parts.port or 80
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = parts.netloc.rpartition("@")[2]
        lines = [f"{method} {target} HTTP/1.1", f"Host: {netloc}", f"User-Agent: {self.user_agent}", "Accept: */*"]
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            lines.append("Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        message = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        async with asyncio.timeout(self.timeout), self._slots:  # the wait for a slot is part of the timeout
            return await self._exchange((host, port), message, method)

    async def _exchange(self, origin: tuple[str, int], message: bytes, method: str) -> HttpReply:
        conn, reused = self._take(origin), True
        if conn is None:
            conn, reused = await self._connect(origin), False
        try:
            assert conn.transport is not None
            conn.transport.write(message)
            try:
                reply, keep = await _read_reply(conn, method)
            except ServerDisconnected:
                if not reused or conn.buffer:
                    raise
                conn.close()  # the server had closed the idle connection: once more on a new one
                conn = await self._connect(origin)
                assert conn.transport is not None
                conn.transport.write(message)
                reply, keep = await _read_reply(conn, method)
        except BaseException:
            conn.close()
            raise
        if keep:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < MAX_IDLE:
                idle.append(conn)
                return reply
        conn.close()
        return reply

    def _take(self, origin: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.eof and not conn.buffer:
                return conn
            conn.close()
        return None

    async def _connect(self, origin: tuple[str, int]) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(_Connection, origin[0], origin[1])
        except OSError as exc:
            raise ConnectError(f"cannot connect to {origin[0]}:{origin[1]}: {exc}") from exc
        return conn

    async def close(self) -> None:
        """Close the idle connections."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


class HttpTransport:
    """One way to send a request whatever its scheme: `http://` through `HttpClient`, `https://` through
    aiohttp.  Either raises HttpError (an OSError) for a request that got no answer, TimeoutError after
    `timeout` s.  `before` runs before each request leaves (the store's commit)."""

    def __init__(self, timeout: float, user_agent: str, before: typing.Callable[[], None] | None = None) -> None:
        self.timeout = timeout
        self.before = before
        self.client = HttpClient(timeout, user_agent)
        self._session: aiohttp.ClientSession | None = None
        self._user_agent = user_agent

    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session of `https://` requests (made when first needed, on the running loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout),
                                                  headers={"User-Agent": self._user_agent})
        return self._session

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes = b"") -> HttpReply:
        """The answer to one request; redirects are answers (not followed)."""
        if self.before is not None:
            self.before()
        if url.startswith("http://"):
            return await self.client.request(method, url, headers, body)
        try:
            # encoded=True: send byte for byte the URL the caller signed (yarl would otherwise re-quote it)
            async with self.session().request(method, yarl.URL(url, encoded=True), data=body or None,
                                              headers=headers, allow_redirects=False) as response:
                data = await response.read()
                return HttpReply(response.status, {k.lower(): v for k, v in response.headers.items()}, data)
        except aiohttp.ClientError as exc:
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self.client.close()
        if self._session is not None:
            await self._session.close()


async def _read_reply(conn: _Connection, method: str) -> tuple[HttpReply, bool]:
    """The answer on `conn` and whether the connection can carry another request."""
    while True:
        status, version, headers = await _read_head(conn)
        if status >= 200 or status == 101:
            break  # 1xx (100 Continue, 103 Early Hints) come before the answer
    length = headers.get("content-length")
    keep = _keep_alive(version, headers.get("connection", ""))
    if method == "HEAD" or status in (204, 304) or status < 200:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(conn)
    elif length is not None:
        if not length.strip().isdigit():
            raise BadResponse(f"Content-Length {length!r}")
        size = int(length)
        if size > MAX_BODY:
            raise BadResponse(f"a body of {size} bytes (over {MAX_BODY})")
        body = await _read_exactly(conn, size)
    else:  # the body runs to the end of the connection
        while not conn.eof:
            if len(conn.buffer) > MAX_BODY:
                raise BadResponse(f"a body over {MAX_BODY} bytes")
            await conn.more(at_eof_ok=True)
        body, keep = bytes(conn.buffer), False
        conn.buffer.clear()
    return HttpReply(status, headers, body), keep and not conn.eof


def _keep_alive(version: str, connection: str) -> bool:
    tokens = {t.strip().lower() for t in connection.split(",")}
    return "keep-alive" in tokens if version == "HTTP/1.0" else "close" not in tokens


async def _read_head(conn: _Connection) -> tuple[int, str, dict[str, str]]:
    while (end := conn.buffer.find(b"\r\n\r\n")) < 0:
        if len(conn.buffer) > MAX_HEAD:
            raise BadResponse(f"no end of the headers within {MAX_HEAD} bytes")
        await conn.more()
    head = conn.buffer[:end].decode("latin-1")
    del conn.buffer[:end + 4]
    status_line, *header_lines = head.split("\r\n")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or not code.isdigit():
        raise BadResponse(f"status line {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadResponse(f"header line {line[:80]!r}")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return int(code), version, headers


async def _read_exactly(conn: _Connection, size: int) -> bytes:
    while len(conn.buffer) < size:
        await conn.more()
    data = bytes(conn.buffer[:size])
    del conn.buffer[:size]
    return data


async def _read_line(conn: _Connection) -> bytes:
    while (end := conn.buffer.find(b"\r\n")) < 0:
        if len(conn.buffer) > MAX_HEAD:
            raise BadResponse("a chunk line too long")
        await conn.more()
    line = bytes(conn.buffer[:end])
    del conn.buffer[:end + 2]
    return line


async def _read_chunked(conn: _Connection) -> bytes:
    body = bytearray()
    while True:
        size_text = (await _read_line(conn)).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadResponse(f"chunk size {size_text[:20]!r}") from None
        if size == 0:
            while await _read_line(conn):  # trailers, up to the empty line
                pass
            return bytes(body)
        if len(body) + size > MAX_BODY:
            raise BadResponse(f"a body over {MAX_BODY} bytes")
        body += await _read_exactly(conn, size)
        if await _read_line(conn):
            raise BadResponse("no CRLF after a chunk")
