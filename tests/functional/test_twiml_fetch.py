"""twiml.fetch.Fetcher over the switch's HttpTransport against an aiohttp app on 127.0.0.1: the document, its
charset, the error codes, and redirects as Twilio follows them (301, 302, 303, 307; 11216 for the others)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from switch.core.http_client import HttpTransport
from tests.functional.catch_all import catch_all
from twiml.errors import TwimlError
from twiml.fetch import Fetcher

DOC = "<Response><Say>héllo</Say></Response>"


class App:
    """Routes by path; records (method, path_qs, body) of every request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.base = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path_qs, (await request.read()).decode()))
        path = request.path
        if path.startswith("/to/"):  # /to/<code>/<target>: a redirect
            code, _, target = path[4:].partition("/")
            return web.Response(status=int(code), headers={"Location": "/" + target} if target else {})
        if path == "/loop":
            return web.Response(status=302, headers={"Location": "/loop"})
        if path == "/latin1":
            return web.Response(body=DOC.encode("latin-1"), headers={"Content-Type": "text/xml; charset=ISO-8859-1"})
        if path == "/json":
            return web.json_response({})
        if path == "/big":
            return web.Response(body=b"<Response>" + b" " * 70_000 + b"</Response>", content_type="text/xml")
        if path == "/gone":
            return web.Response(status=404, text="no such app")
        return web.Response(text=DOC, content_type="application/xml")


@pytest.fixture
async def app() -> AsyncIterator[App]:
    state = App()
    async with catch_all(state.handle) as base:
        state.base = base
        yield state


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    transport = HttpTransport(2.0, "softswitch/test")
    yield Fetcher(transport, lambda method, url, params: (url, {"X-Twilio-Signature": "sig"}))
    await transport.close()


async def test_a_document_and_its_charset(app: App, fetcher: Fetcher) -> None:
    plain = await fetcher.fetch(app.base + "/voice", "POST", [("CallSid", "CA1"), ("From", "+1 555")])
    latin = await fetcher.fetch(app.base + "/latin1", "GET", [])
    assert (plain.url, plain.text) == (app.base + "/voice", DOC)
    assert (latin.url, latin.text) == (app.base + "/latin1", DOC)
    assert app.seen == [("POST", "/voice", "CallSid=CA1&From=%2B1+555"), ("GET", "/latin1", "")]


@pytest.mark.parametrize(("code", "method", "then"), [
    (301, "POST", "GET"), (302, "POST", "GET"), (303, "POST", "GET"), (307, "POST", "POST"), (302, "GET", "GET")])
async def test_the_redirects_twilio_follows(app: App, fetcher: Fetcher, code: int, method: str, then: str) -> None:
    document = await fetcher.fetch(f"{app.base}/to/{code}/voice", method, [("CallSid", "CA1")])
    assert (document.url, document.text) == (app.base + "/voice", DOC)
    body = "CallSid=CA1" if method == "POST" else ""
    assert app.seen == [(method, f"/to/{code}/voice", body), (then, "/voice", body if then == "POST" else "")]


@pytest.mark.parametrize(("path", "code", "text"), [
    ("/to/308/voice", 11216, "HTTP 308"),
    ("/to/302/", 11216, "without a Location"),
    ("/loop", 11216, "more than 10 redirects"),
    ("/gone", 11200, "answered HTTP 404"),
    ("/json", 12300, "'application/json'"),
    ("/big", 12100, "larger than"),
])
async def test_what_fails_and_its_code(app: App, fetcher: Fetcher, path: str, code: int, text: str) -> None:
    with pytest.raises(TwimlError) as caught:
        await fetcher.fetch(app.base + path, "POST", [])
    assert caught.value.code == code and text in caught.value.message, caught.value.message


async def test_a_refused_connection_is_11200(fetcher: Fetcher) -> None:
    with pytest.raises(TwimlError) as caught:
        await fetcher.fetch("http://127.0.0.1:9/voice", "POST", [])
    assert caught.value.code == 11200 and "ConnectError" not in caught.value.message
    assert "cannot connect to 127.0.0.1:9" in caught.value.message
