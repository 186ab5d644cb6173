"""A Media Stream against a real WebSocket server on 127.0.0.1 and a fake audio tap: the messages, the ends."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from media.errors import MediaError
from switch.core.errors import Conflict
from switch.core.stream_model import StreamChanged, StreamSpec
from switch.core.streams import StreamManager
from switch.dialects.twilio.streams import TwilioStreamCallbacks, parse_stream, stream_to_json
from switch.workers.media_taps import AudioFrame

CALL = "CA" + "0" * 32
ACCOUNT = "AC" + "1" * 32


class FakeTap:
    """An AudioTap whose worker is the test: marks play when `play_marks` says so."""

    def __init__(self, tracks: tuple[str, ...], inject: bool) -> None:
        self.tracks, self.inject = tracks, inject
        self.frames: asyncio.Queue[AudioFrame | None] = asyncio.Queue()
        self.marks: asyncio.Queue[str] = asyncio.Queue()
        self.sent: list[bytes] = []
        self.pending: list[str] = []
        self.cleared = 0
        self.stopped = False

    def send(self, payload: bytes) -> None:
        self.sent.append(payload)

    def mark(self, name: str) -> None:
        self.pending.append(name)

    def play_marks(self) -> None:
        for name in self.pending:
            self.marks.put_nowait(name)
        self.pending.clear()

    def clear(self) -> None:
        self.cleared += 1
        self.sent.clear()
        self.play_marks()

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.frames.put_nowait(None)


class FakeMedia:
    def __init__(self, fail: bool = False, prefill: int = 0) -> None:
        self.fail = fail
        self.prefill = prefill  # frames already waiting when the tap starts
        self.taps: list[FakeTap] = []
        self.keys: asyncio.Queue[str] = asyncio.Queue()

    async def tap(self, call_sid: str, tracks: tuple[str, ...], inject: bool) -> FakeTap:
        if self.fail:
            raise MediaError(f"{call_sid} has no live media leg")
        tap = FakeTap(tracks, inject)
        for seq in range(self.prefill):
            tap.frames.put_nowait(AudioFrame("inbound", seq, seq * 20, b"\xff" * 160))
        self.taps.append(tap)
        return tap

    def digits(self, call_sid: str) -> asyncio.Queue[str]:
        return self.keys


@dataclass
class FakeNotifications:
    notes: list[tuple[int, str, int]] = field(default_factory=list)

    def add(self, call_sid: str, code: int, message: str, url: str | None = None, method: str | None = None,
            level: int = 0) -> None:
        self.notes.append((code, message, level))


@dataclass
class Bot:
    """A WebSocket server; `handler` plays the bot of one test, `received` is what it got."""

    handler: Callable[[web.Request, Bot], Awaitable[web.StreamResponse]]
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.headers = dict(request.headers)
        return await self.handler(request, self)

    async def until(self, event: str, count: int = 1, timeout: float = 3.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(found := [m for m in self.received if m["event"] == event]) < count:
                await asyncio.sleep(0.01)
        return found


async def _read_all(ws: web.WebSocketResponse, bot: Bot) -> None:
    async for message in ws:
        if message.type is WSMsgType.TEXT:
            bot.received.append(json.loads(message.data))


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Callable[..., Awaitable[web.StreamResponse]]], Awaitable[Bot]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Callable[..., Awaitable[web.StreamResponse]]) -> Bot:
        bot = Bot(handler)
        app = web.Application()
        app.router.add_get("/ws", bot.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        bot.url = f"ws://127.0.0.1:{port}/ws"
        return bot

    yield start
    for runner in runners:
        await runner.cleanup()


def manager_for(media: FakeMedia) -> tuple[StreamManager, list[StreamChanged], FakeNotifications]:
    notes = FakeNotifications()
    manager = StreamManager(media, ACCOUNT, notes, connect_timeout=2.0,  # type: ignore[arg-type]
                            sign=lambda url: {"X-Twilio-Signature": "sig:" + url})
    changes: list[StreamChanged] = []
    manager.observers.append(changes.append)
    return manager, changes, notes


async def listen(request: web.Request, bot: Bot) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await _read_all(ws, bot)
    return ws


async def test_listen_only_stream_sends_start_media_and_stop(serve: Any) -> None:
    bot = await serve(listen)
    media = FakeMedia()
    manager, changes, notes = manager_for(media)
    spec = StreamSpec(url=bot.url, name="ears", tracks=("inbound", "outbound"), parameters=(("k", "v"),))
    stream = manager.start(CALL, spec)
    await bot.until("start")
    (tap,) = media.taps
    assert tap.tracks == ("inbound", "outbound") and not tap.inject
    tap.frames.put_nowait(AudioFrame("inbound", 0, 0, b"\x01" * 160))
    tap.frames.put_nowait(AudioFrame("outbound", 0, 0, b"\x02" * 160))
    tap.frames.put_nowait(AudioFrame("inbound", 1, 20, b"\x03" * 160))
    await bot.until("media", 3)
    assert manager.get(CALL, "ears") is stream
    stream.stop()
    end = await asyncio.wait_for(stream.wait(), 3)
    assert end.reason == "stopped"
    await bot.until("stop")
    events = [m["event"] for m in bot.received]
    assert events == ["connected", "start", "media", "media", "media", "stop"]
    assert [m.get("sequenceNumber") for m in bot.received] == [None, "1", "2", "3", "4", "5"]
    start = bot.received[1]
    assert start["streamSid"] == stream.sid and start["start"]["callSid"] == CALL
    assert start["start"]["customParameters"] == {"k": "v"}
    assert start["start"]["tracks"] == ["inbound", "outbound"]
    medias = [m["media"] for m in bot.received if m["event"] == "media"]
    assert [(m["track"], m["chunk"], m["timestamp"]) for m in medias] == [
        ("inbound", "1", "0"), ("outbound", "1", "0"), ("inbound", "2", "20")]
    assert base64.b64decode(medias[2]["payload"]) == b"\x03" * 160
    assert bot.received[-1]["stop"] == {"accountSid": ACCOUNT, "callSid": CALL}
    assert bot.headers["X-Twilio-Signature"] == "sig:" + bot.url
    assert [c.event for c in changes] == ["started", "stopped"]
    assert tap.stopped and notes.notes == []
    assert stream.info.status == "stopped"


async def test_bidirectional_stream_plays_marks_clears_and_gets_digits(serve: Any) -> None:
    go_on = asyncio.Event()

    async def bot_handler(request: web.Request, bot: Bot) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        reader = asyncio.create_task(_read_all(ws, bot))
        await bot.until("start")
        sid = bot.received[1]["streamSid"]
        audio = base64.b64encode(b"\x7f" * 320).decode()
        await ws.send_str(json.dumps({"event": "media", "streamSid": sid, "media": {"payload": audio}}))
        await ws.send_str(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "first"}}))
        await ws.send_str(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "second"}}))
        await go_on.wait()
        await ws.send_str(json.dumps({"event": "clear", "streamSid": sid}))
        await bot.until("mark", 2)
        await bot.until("dtmf")
        await ws.close()
        await reader
        return ws

    bot = await serve(bot_handler)
    media = FakeMedia()
    manager, changes, notes = manager_for(media)
    media.keys.put_nowait("9")  # pressed before the stream: not the bot's
    stream = manager.start(CALL, StreamSpec(url=bot.url, bidirectional=True))
    await bot.until("start")
    (tap,) = media.taps
    assert tap.inject
    async with asyncio.timeout(3):
        while len(tap.pending) < 2:
            await asyncio.sleep(0.01)
    assert tap.sent == [b"\x7f" * 320]
    go_on.set()
    media.keys.put_nowait("4")
    end = await asyncio.wait_for(stream.wait(), 5)
    assert end.reason == "closed"
    assert tap.cleared == 1
    assert [m["mark"]["name"] for m in bot.received if m["event"] == "mark"] == ["first", "second"]
    assert [m["dtmf"] for m in bot.received if m["event"] == "dtmf"] == [{"track": "inbound_track", "digit": "4"}]
    assert [c.event for c in changes] == ["started", "stopped"]
    assert notes.notes == []


async def test_refused_upgrade_is_a_handshake_error(serve: Any) -> None:
    async def refuse(request: web.Request, bot: Bot) -> web.Response:
        return web.Response(status=403, text="no")

    bot = await serve(refuse)
    manager, changes, notes = manager_for(FakeMedia())
    end = await asyncio.wait_for(manager.start(CALL, StreamSpec(url=bot.url)).wait(), 5)
    assert (end.reason, end.code) == ("error", 31920)
    assert [(c.event, c.code) for c in changes] == [("error", 31920)]
    assert "HTTP 403" in (changes[0].error or "")
    assert [(code, level) for code, _m, level in notes.notes] == [(31920, 0)]


async def test_server_down_is_a_connection_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager, changes, notes = manager_for(FakeMedia())
    end = await asyncio.wait_for(manager.start(CALL, StreamSpec(url=f"ws://127.0.0.1:{port}/ws")).wait(), 5)
    assert (end.reason, end.code) == ("error", 31901)
    assert [c.event for c in changes] == ["error"]
    assert [code for code, _m, _l in notes.notes] == [31901]


async def test_an_untrusted_certificate_is_a_tls_error(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    try:
        manager, changes, notes = manager_for(FakeMedia())
        port = runner.addresses[0][1]
        end = await asyncio.wait_for(manager.start(CALL, StreamSpec(url=f"wss://127.0.0.1:{port}/ws")).wait(), 5)
    finally:
        await runner.cleanup()
    assert (end.reason, end.code) == ("error", 31910)
    assert [c.event for c in changes] == ["error"] and [code for code, _m, _l in notes.notes] == [31910]


async def test_dropped_connection_is_a_close_error(serve: Any) -> None:
    async def drop(request: web.Request, bot: Bot) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()  # connected
        assert request.transport is not None
        request.transport.abort()  # no close frame
        return ws

    bot = await serve(drop)
    manager, changes, notes = manager_for(FakeMedia())
    end = await asyncio.wait_for(manager.start(CALL, StreamSpec(url=bot.url, bidirectional=True)).wait(), 5)
    assert (end.reason, end.code) == ("error", 31921)
    assert [c.event for c in changes] == ["started", "error"]
    assert [code for code, _m, _l in notes.notes] == [31921]


async def test_close_with_an_error_code_is_a_close_error(serve: Any) -> None:
    async def close_badly(request: web.Request, bot: Bot) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()
        await ws.close(code=4000, message=b"bye")
        return ws

    bot = await serve(close_badly)
    manager, changes, _notes = manager_for(FakeMedia())
    end = await asyncio.wait_for(manager.start(CALL, StreamSpec(url=bot.url)).wait(), 5)
    assert (end.reason, end.code) == ("error", 31921) and "4000" in (end.error or "")
    assert [c.event for c in changes] == ["started", "error"]


async def test_unreadable_messages_are_one_warning_and_the_stream_goes_on(serve: Any) -> None:
    async def garbage(request: web.Request, bot: Bot) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        reader = asyncio.create_task(_read_all(ws, bot))
        await bot.until("start")
        await ws.send_str("hello")
        await ws.send_bytes(b"\x00")
        await ws.send_str(json.dumps({"event": "media", "media": {"payload": "AAAA"}}))  # listen-only: ignored
        await reader
        return ws

    bot = await serve(garbage)
    media = FakeMedia()
    manager, changes, notes = manager_for(media)
    stream = manager.start(CALL, StreamSpec(url=bot.url))
    await bot.until("start")
    await asyncio.sleep(0.2)
    assert [(code, level) for code, _m, level in notes.notes] == [(31924, 1)]
    assert media.taps[0].sent == []
    media.taps[0].stop()  # the call's audio ends: stop goes out, the stream is over
    end = await asyncio.wait_for(stream.wait(), 3)
    assert end.reason == "ended"
    await bot.until("stop")
    assert [c.event for c in changes] == ["started", "stopped"]


async def test_a_server_that_does_not_keep_up_loses_audio_with_one_warning(serve: Any,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("switch.core.stream_session.BACKLOG", 10)
    bot = await serve(listen)
    media = FakeMedia(prefill=100)  # all there at once: more than the writer can have sent
    manager, _changes, notes = manager_for(media)
    stream = manager.start(CALL, StreamSpec(url=bot.url))
    await bot.until("start")
    await asyncio.sleep(0.2)
    stream.stop()
    await asyncio.wait_for(stream.wait(), 3)
    await bot.until("stop")
    assert [(code, level) for code, _m, level in notes.notes] == [(31930, 1)]
    assert 5 <= len([m for m in bot.received if m["event"] == "media"]) <= 12


async def test_a_call_without_audio_is_an_error(serve: Any) -> None:
    bot = await serve(listen)
    manager, changes, notes = manager_for(FakeMedia(fail=True))
    end = await asyncio.wait_for(manager.start(CALL, StreamSpec(url=bot.url)).wait(), 5)
    assert (end.reason, end.code) == ("error", 12400)
    assert [c.event for c in changes] == ["error"] and [code for code, _m, _l in notes.notes] == [12400]


async def test_names_are_unique_and_four_listen_only_streams_at_most(serve: Any) -> None:
    bot = await serve(listen)
    media = FakeMedia()
    manager, _changes, _notes = manager_for(media)
    manager.start(CALL, StreamSpec(url=bot.url, name="a"))
    with pytest.raises(Conflict):
        manager.start(CALL, StreamSpec(url=bot.url, name="a"))
    for _ in range(3):
        manager.start(CALL, StreamSpec(url=bot.url))
    with pytest.raises(Conflict):
        manager.start(CALL, StreamSpec(url=bot.url))
    manager.start(CALL, StreamSpec(url=bot.url, bidirectional=True))  # a <Connect> stream is not counted
    assert len(manager.listen_only(CALL)) == 4 and len(manager.listen_only(CALL, "a")) == 1
    await bot.until("start", 5)
    await manager.close()
    assert manager.listen_only(CALL) == []
    assert all(t.stopped for t in media.taps)


class FakeWebhooks:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, list[tuple[str, str]]]] = []

    def send(self, call_sid: str, url: str, method: str, params: list[tuple[str, str]], *args: Any,
             **kwargs: Any) -> None:
        self.sent.append((url, method, params))


async def test_twilio_status_callbacks_and_resource(serve: Any) -> None:
    async def refuse(request: web.Request, bot: Bot) -> web.Response:
        return web.Response(status=404)

    bot = await serve(refuse)
    webhooks = FakeWebhooks()
    manager, _changes, _notes = manager_for(FakeMedia())
    manager.observers.append(TwilioStreamCallbacks(webhooks))  # type: ignore[arg-type]
    stream = manager.start(CALL, StreamSpec(url=bot.url, status_callback="http://app/s", status_callback_method="GET"))
    body = stream_to_json(stream.info)
    assert body["sid"].startswith("MZ") and body["status"] == "in-progress" and body["name"] is None
    assert body["uri"] == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}/Streams/{stream.sid}.json"
    await asyncio.wait_for(stream.wait(), 5)
    ((url, method, params),) = webhooks.sent
    assert (url, method) == ("http://app/s", "GET")
    names = dict(params)
    assert [k for k, _v in params] == ["AccountSid", "CallSid", "StreamSid", "StreamName", "StreamEvent",
                                       "StreamError", "Timestamp"]
    assert names["StreamEvent"] == "stream-error" and names["StreamName"] == stream.sid
    assert "HTTP 404" in names["StreamError"] and names["Timestamp"].endswith("Z")


def test_rest_parameters() -> None:
    from multidict import MultiDict

    spec = parse_stream(MultiDict({"Url": "wss://bot/x", "Name": "n", "Track": "outbound_track",
                                   "Parameter1.Name": "a", "Parameter1.Value": "1", "Parameter2.Name": "b",
                                   "StatusCallback": "https://app/cb"}))
    assert spec == StreamSpec(url="wss://bot/x", name="n", tracks=("outbound",), status_callback="https://app/cb",
                              parameters=(("a", "1"), ("b", "")))
