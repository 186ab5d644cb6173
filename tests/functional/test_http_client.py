"""switch.core.http_client against real servers on 127.0.0.1: aiohttp's, and raw asyncio servers that answer
with exact bytes (chunked, close-delimited, 1xx first, broken, silent)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvloop
from aiohttp import web

from switch.core.http_client import MAX_BODY, BadResponse, ConnectError, HttpClient, ServerDisconnected
from tests.functional.catch_all import catch_all

Answer = Callable[[bytes], Awaitable[bytes | None]]  # the request's bytes -> what to send back (None: nothing)


class RawServer:
    """Reads one request at a time (head and Content-Length body) and writes what `answer` returns; counts
    connections; `close_after` closes each connection after that many answers."""

    def __init__(self, answer: Answer, close_after: int = 0) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                reply = await self.answer(request)
                if reply is None:
                    await asyncio.sleep(60)
                    return
                writer.write(reply)
                await writer.drain()
                answered += 1
                if self.close_after and answered >= self.close_after:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


def fixed(reply: bytes) -> Answer:
    async def answer(request: bytes) -> bytes:
        return reply
    return answer


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    c = HttpClient(2.0, "softswitch/test")
    yield c
    await c.close()


async def test_posts_to_aiohttp_over_one_kept_connection(client: HttpClient) -> None:
    seen: list[tuple[str, str, str, bytes, str | None, str | None]] = []
    peers: set[object] = set()

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.method, request.path_qs, request.headers["Host"], await request.read(),
                     request.headers.get("User-Agent"), request.headers.get("X-Twilio-Signature")))
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        return web.Response(status=201, text="created", content_type="text/plain")

    async with catch_all(handle) as base:
        port = int(base.rsplit(":", 1)[1])
        replies = [await client.request("POST", f"{base}/status?x=1", {"X-Twilio-Signature": "s"},
                                        b"CallSid=CA1&CallStatus=ringing") for _ in range(3)]
        got = await client.request("GET", f"{base}/q?a=b%20c", {})
    assert [(r.status, r.body, r.headers["content-type"]) for r in replies] == \
        [(201, b"created", "text/plain; charset=utf-8")] * 3
    assert got.status == 201
    assert seen == [("POST", "/status?x=1", f"127.0.0.1:{port}", b"CallSid=CA1&CallStatus=ringing", "softswitch/test",
                     "s")] * 3 + [("GET", "/q?a=b%20c", f"127.0.0.1:{port}", b"", "softswitch/test", None)]
    assert len(peers) == 1  # every request on the same connection


async def test_bodies_chunked_close_delimited_and_after_a_1xx(client: HttpClient) -> None:
    replies = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n<Response/>",
    ]
    answers = iter(replies)

    async def answer(request: bytes) -> bytes:
        return next(answers)

    server = RawServer(answer, close_after=1)
    base = await server.start()
    try:
        chunked = await client.request("POST", base + "/a", {}, b"x")
        empty = await client.request("POST", base + "/b", {}, b"x")
        to_close = await client.request("GET", base + "/c", {})
    finally:
        await server.stop()
    assert (chunked.status, chunked.body) == (200, b"hello world")
    assert (empty.status, empty.body, empty.headers["x-a"]) == (204, b"", "1, 2")
    assert (to_close.status, to_close.body, to_close.headers["content-type"]) == (200, b"<Response/>", "text/xml")
    assert server.connections == 3


async def test_a_kept_connection_the_server_closed_is_retried_on_a_new_one(client: HttpClient) -> None:
    server = RawServer(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), close_after=1)
    base = await server.start()
    try:
        first = await client.request("POST", base + "/a", {}, b"1")
        await asyncio.sleep(0.05)  # the server has closed it by now, without saying so in the answer
        second = await client.request("POST", base + "/a", {}, b"2")
    finally:
        await server.stop()
    assert (first.body, second.body) == (b"ok", b"ok")
    assert server.connections == 2 and len(server.requests) == 2


async def test_basic_auth_from_the_url_and_connection_close(client: HttpClient) -> None:
    server = RawServer(fixed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
    base = await server.start()
    try:
        for _ in range(2):
            reply = await client.request("POST", base.replace("http://", "http://us%40er:p%3Ass@") + "/x", {}, b"")
            assert reply.status == 200
    finally:
        await server.stop()
    token = base64.b64encode(b"us@er:p:ss").decode()
    assert all(f"Authorization: Basic {token}\r\n".encode() in r for r in server.requests)
    assert all(b"Host: 127.0.0.1:" in r and b"@" not in r.split(b"\r\n")[1] for r in server.requests)
    assert server.connections == 2  # Connection: close is honoured


@pytest.mark.parametrize(("reply", "error", "text"), [
    (b"HTTP/2 200\r\n\r\n", BadResponse, "status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", BadResponse, "header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", BadResponse, "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1), BadResponse, "over"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", BadResponse, "chunk size"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", ServerDisconnected, "closed"),
])
async def test_broken_answers_are_errors(client: HttpClient, reply: bytes, error: type[Exception], text: str) -> None:
    server = RawServer(fixed(reply), close_after=1)
    base = await server.start()
    try:
        with pytest.raises(error, match=text):
            await client.request("POST", base + "/x", {}, b"x")
    finally:
        await server.stop()


async def test_silence_times_out_and_refusal_is_a_connect_error() -> None:
    server = RawServer(lambda request: asyncio.sleep(0, None))
    base = await server.start()
    client = HttpClient(0.3, "t")
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await client.request("POST", base + "/x", {}, b"x")
        assert 0.25 < loop.time() - started < 1.5
        port = int(base.rsplit(":", 1)[1])
    finally:
        await server.stop()
        await client.close()
    await asyncio.sleep(0.05)
    with pytest.raises(ConnectError, match=r"cannot connect to 127\.0\.0\.1"):
        await HttpClient(1.0, "t").request("POST", f"http://127.0.0.1:{port}/x", {}, b"")
    with pytest.raises(ValueError, match="not an http:// URL"):
        await HttpClient(1.0, "t").request("GET", "https://127.0.0.1/x", {})


def test_on_uvloop_as_the_switch_runs() -> None:
    """The control plane's loop is uvloop (its transports are not asyncio.Transport instances)."""
    async def go() -> list[tuple[int, bytes]]:
        server = RawServer(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        base = await server.start()
        client = HttpClient(2.0, "t")
        try:
            replies = [await client.request("POST", base + "/x", {}, b"1") for _ in range(2)]
        finally:
            await client.close()
            await server.stop()
        assert server.connections == 1
        return [(r.status, r.body) for r in replies]

    assert uvloop.run(go()) == [(200, b"ok")] * 2


async def test_connections_are_capped_and_the_wait_counts_in_the_timeout() -> None:
    """A server that never answers gets `max_connections` connections; a request beyond them waits for a slot,
    within its own timeout, and never connects."""
    server = RawServer(lambda request: asyncio.sleep(0, None))
    base = await server.start()
    client = HttpClient(0.4, "t", max_connections=2)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await asyncio.gather(*(client.request("POST", base + "/x", {}, b"x") for _ in range(3)),
                                       return_exceptions=True)
        assert all(isinstance(r, TimeoutError) for r in results), results
        assert loop.time() - started < 1.5
        assert server.connections == 2
    finally:
        await client.close()
        await server.stop()
