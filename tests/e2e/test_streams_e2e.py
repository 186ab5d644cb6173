"""Media Streams end to end: a real switch, the lab phone as the caller, an aiohttp WebSocket bot on 127.0.0.1.

The phone plays 440 Hz and records what it hears; the bot decodes the μ-law it gets (FFT) and sends 1000 Hz back,
which the phone must hear.  Marks round-trip, ``clear`` cuts the bot's audio within 40 ms (measured on the
call's outbound track, which the bot also receives), DTMF reaches the bot, ``<Start><Stream>`` keeps the TwiML
running (a ``<Play>`` after it is heard, and streamed on the outbound track), a bot that refuses, is down or
drops gives ``stream-error`` and a notification while the call goes on, and the REST Streams resource starts
and stops a stream through the official client.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from aiohttp import WSMsgType, web
from twilio.base.exceptions import TwilioRestException
from twilio.twiml.voice_response import Connect, Start, Stop, VoiceResponse

from media.audio import read_wav, write_wav
from media.tones import band_energy_ratio, dominant_frequency, rms, sine
from media.ulaw import ulaw_decode, ulaw_encode
from switch.tools.bench.common import ThreadedServer
from tests.peers.harness import SwitchProcess, WebhookSink, free_tcp_port, wait_until
from tests.peers.phone import PhoneProcess

pytestmark = pytest.mark.e2e

CALLER_HZ = 440.0
BOT_HZ = 1000.0
PLAY_HZ = 700.0


@dataclass
class Conn:
    """One WebSocket the bot accepted: every message with its arrival time (monotonic), and what it sent when."""

    path: str
    headers: dict[str, str]
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    sent: dict[str, float] = field(default_factory=dict)
    closed: threading.Event = field(default_factory=threading.Event)

    def of(self, event: str) -> list[dict[str, Any]]:
        return [m for _t, m in list(self.messages) if m["event"] == event]

    async def until(self, event: str, count: int = 1, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.of(event)) < count:
                await asyncio.sleep(0.005)

    def frames(self, track: str) -> list[tuple[float, int, bytes]]:
        """(arrival, timestamp ms, decoded PCM16 bytes) of the track's media, in order."""
        return [(t, int(m["media"]["timestamp"]), ulaw_decode(base64.b64decode(m["media"]["payload"])))
                for t, m in list(self.messages) if m["event"] == "media" and m["media"]["track"] == track]


Behaviour = Callable[[web.Request, web.WebSocketResponse, Conn], Awaitable[None]]


class Bot(ThreadedServer):
    """The WebSocket server: `/refuse` answers 403; other paths accept and run `behaviours[path]` (default:
    listen until the switch closes)."""

    name = "stream-bot"

    def __init__(self) -> None:
        super().__init__()
        self.port = free_tcp_port()
        self.conns: list[Conn] = []
        self.behaviours: dict[str, Behaviour] = {}

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def conn(self, path: str, timeout: float = 10.0) -> Conn:
        wait_until(lambda: any(c.path == path for c in self.conns), timeout, f"a stream to {path}")
        return next(c for c in self.conns if c.path == path)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/refuse":
            return web.Response(status=403, text="not today")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Conn(request.path, dict(request.headers))
        self.conns.append(conn)
        reader = asyncio.create_task(self._read(ws, conn))
        behaviour = self.behaviours.get(request.path)
        try:
            if behaviour is not None:
                await behaviour(request, ws, conn)
            await asyncio.wait_for(reader, 30)
        finally:
            reader.cancel()
            conn.closed.set()
        return ws

    @staticmethod
    async def _read(ws: web.WebSocketResponse, conn: Conn) -> None:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                conn.messages.append((time.monotonic(), json.loads(message.data)))


class SecureBot(Bot):
    """The bot over TLS (wss://), with a self-signed certificate for 127.0.0.1 that the switch is told to trust."""

    name = "stream-bot-tls"

    def __init__(self, cert: Path, key: Path) -> None:
        super().__init__()
        self.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ssl_context.load_cert_chain(cert, key)

    def ws(self, path: str) -> str:
        return f"wss://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl, as the edge's TLS test makes one)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, tls: tuple[Path, Path]) -> Iterator[SwitchProcess]:
    """The module's switch, trusting the TLS bot's certificate (OpenSSL's SSL_CERT_FILE) for wss:// streams."""
    proc = SwitchProcess(tmp_path_factory.mktemp("streams"), workers=2, extra_env={"SSL_CERT_FILE": str(tls[0])})
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def bot() -> Iterator[Bot]:
    server = Bot().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def secure_bot(tls: tuple[Path, Path]) -> Iterator[SecureBot]:
    server = SecureBot(*tls).start()
    yield server
    server.stop()


def _media(sid: str, pcm: npt.NDArray[np.int16]) -> str:
    return json.dumps({"event": "media", "streamSid": sid,
                       "media": {"payload": base64.b64encode(ulaw_encode(pcm.tobytes())).decode()}})


async def _send_tone(ws: web.WebSocketResponse, conn: Conn, seconds: float) -> None:
    """`seconds` of the bot's tone, sent at once in 100 ms messages (the switch buffers and paces it)."""
    sid = conn.of("start")[0]["streamSid"]
    tone = sine(BOT_HZ, seconds, amplitude=0.5)
    for i in range(0, len(tone), 800):
        await ws.send_str(_media(sid, tone[i:i + 800]))


def _pcm(frames: list[tuple[float, int, bytes]]) -> npt.NDArray[np.int16]:
    return np.frombuffer(b"".join(f[2] for f in frames), dtype=np.int16)


def _loud(samples: npt.NDArray[np.int16], rate: int) -> npt.NDArray[np.int16]:
    frame = rate // 50
    frames = [samples[i:i + frame] for i in range(0, len(samples) - frame + 1, frame)]
    loud = [f for f in frames if rms(f) > 1000]
    return np.concatenate(loud) if loud else np.zeros(0, dtype=np.int16)


def _phone(record: Path, *extra: str) -> PhoneProcess:
    return PhoneProcess(["--answer", "auto", "--tone", str(CALLER_HZ), "--record", str(record),
                         "--exit-after-calls", "1", *extra])


def _call(switch: SwitchProcess, phone: PhoneProcess, response: VoiceResponse) -> str:
    return str(switch.client().calls.create(to=phone.uri("bob"), from_="+15550199", twiml=str(response)).sid)


def _notification_codes(switch: SwitchProcess, sid: str) -> list[int]:
    return sorted(int(n.error_code) for n in switch.client().calls(sid).notifications.list())


# -- <Connect><Stream>: both ways ---------------------------------------------------------------------------------

def test_connect_stream_hears_the_caller_talks_back_marks_and_dtmf(switch: SwitchProcess, app: WebhookSink,
                                                                   bot: Bot, tmp_path: Path) -> None:
    async def talk(request: web.Request, ws: web.WebSocketResponse, conn: Conn) -> None:
        await conn.until("start")
        await asyncio.sleep(1.5)  # listen to the caller first
        await _send_tone(ws, conn, 2.0)
        conn.sent["mark"] = time.monotonic()
        await ws.send_str(json.dumps({"event": "mark", "streamSid": conn.of("start")[0]["streamSid"],
                                      "mark": {"name": "tone-end"}}))
        await conn.until("mark", timeout=8)
        await conn.until("dtmf", timeout=5)
        await ws.close()

    bot.behaviours["/talk"] = talk
    app.twiml("/after-talk", "<Response><Hangup/></Response>")
    response = VoiceResponse()
    connect = Connect(action=app.url("/after-talk"))
    connect.stream(url=bot.ws("/talk"), status_callback=app.url("/talk-status")).parameter(name="who", value="e2e")
    response.append(connect)
    heard = tmp_path / "heard.wav"
    with _phone(heard, "--dtmf", "5", "--dtmf-after", "1.0") as phone:
        sid = _call(switch, phone, response)
        conn = bot.conn("/talk")
        assert conn.closed.wait(20)
        app.wait_for(lambda hooks: any(h.path == "/after-talk" for h in hooks), 10)
        phone.wait_for("hangup", timeout=10)
        phone.wait(10)
    events = [m["event"] for _t, m in conn.messages]
    assert events[:2] == ["connected", "start"]
    start = conn.of("start")[0]["start"]
    assert start["callSid"] == sid and start["tracks"] == ["inbound"] and start["customParameters"] == {"who": "e2e"}
    assert start["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    assert [int(m["sequenceNumber"]) for _t, m in conn.messages[1:]] == list(range(1, len(conn.messages)))
    assert "X-Twilio-Signature" in conn.headers
    inbound = conn.frames("inbound")
    assert len(inbound) > 100  # 2 s and more of 20 ms frames
    assert [int(m["media"]["chunk"]) for m in conn.of("media")][:5] == [1, 2, 3, 4, 5]
    steps = np.diff([ts for _a, ts, _p in inbound])
    assert np.median(steps) == 20
    assert abs(dominant_frequency(_loud(_pcm(inbound), 8000), 8000) - CALLER_HZ) < 10  # the caller's tone
    (mark,) = conn.of("mark")
    assert mark["mark"]["name"] == "tone-end"
    mark_at = next(t for t, m in conn.messages if m["event"] == "mark")
    assert 1.8 <= mark_at - conn.sent["mark"] <= 2.6  # echoed once the 2 s before it had played
    assert conn.of("dtmf")[0]["dtmf"] == {"track": "inbound_track", "digit": "5"}
    samples, rate = read_wav(heard)
    loud = _loud(samples, rate)
    assert len(loud) >= 1.5 * rate and band_energy_ratio(loud, rate, BOT_HZ) > 0.8  # the phone heard the bot
    statuses = [h.params["StreamEvent"] for h in app.for_path("/talk-status")]
    assert statuses == ["stream-started", "stream-stopped"]
    assert switch.client().calls(sid).fetch().status == "completed"


def test_clear_cuts_the_bot_audio_within_40_ms(switch: SwitchProcess, app: WebhookSink, bot: Bot,
                                               tmp_path: Path) -> None:
    async def interrupted(request: web.Request, ws: web.WebSocketResponse, conn: Conn) -> None:
        await conn.until("start")
        await _send_tone(ws, conn, 5.0)
        sid = conn.of("start")[0]["streamSid"]
        await ws.send_str(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "five-seconds"}}))
        await asyncio.sleep(1.0)
        conn.sent["clear"] = time.monotonic()
        await ws.send_str(json.dumps({"event": "clear", "streamSid": sid}))
        await conn.until("mark", timeout=2)
        await asyncio.sleep(1.0)
        await ws.close()

    bot.behaviours["/clear"] = interrupted
    response = VoiceResponse()
    response.connect().stream(url=bot.ws("/clear"), track="both_tracks")
    response.hangup()
    heard = tmp_path / "heard.wav"
    with _phone(heard) as phone:
        _call(switch, phone, response)
        conn = bot.conn("/clear")
        assert conn.closed.wait(20)
        phone.wait_for("hangup", timeout=10)
        phone.wait(10)
    mark_at = next(t for t, m in conn.messages if m["event"] == "mark")
    assert mark_at - conn.sent["clear"] < 0.2  # a pending mark is echoed at once when its audio is cleared
    outbound = conn.frames("outbound")
    # The tap's clock against the bot's: the lowest latency any frame had (frames leave as they are made).
    offset = min(arrival - ts / 1000 for arrival, ts, _p in outbound)
    clear_ts = (conn.sent["clear"] - offset) * 1000
    loud = [ts for _a, ts, pcm in outbound if rms(np.frombuffer(pcm, dtype=np.int16)) > 1000]
    assert loud, "the bot's audio never reached the call"
    assert 0.8 <= (loud[-1] - loud[0]) / 1000 <= 1.3  # about the second before the clear, not five
    assert loud[-1] + 20 - clear_ts <= 40, f"audio went on {loud[-1] + 20 - clear_ts:.0f} ms after the clear"
    samples, rate = read_wav(heard)
    tone = _loud(samples, rate)
    assert band_energy_ratio(tone, rate, BOT_HZ) > 0.8 and len(tone) <= 1.5 * rate


# -- <Start><Stream>: listen-only, the TwiML goes on ---------------------------------------------------------------

def test_start_stream_keeps_the_twiml_running_and_carries_both_tracks(switch: SwitchProcess, app: WebhookSink,
                                                                      bot: Bot, tmp_path: Path) -> None:
    play = write_wav(tmp_path / "play.wav", sine(PLAY_HZ, 2.0))
    response = VoiceResponse()
    start = Start()
    start.stream(name="ears", url=bot.ws("/listen"), track="both_tracks",
                 status_callback=app.url("/listen-status")).parameter(name="a", value="b")
    response.append(start)
    response.play(str(play))
    stop = Stop()
    stop.stream(name="ears")
    response.append(stop)
    response.pause(length=1)
    response.hangup()
    heard = tmp_path / "heard.wav"
    with _phone(heard) as phone:
        sid = _call(switch, phone, response)
        conn = bot.conn("/listen")
        assert conn.closed.wait(20)
        phone.wait_for("hangup", timeout=10)
        phone.wait(10)
    assert conn.of("start")[0]["start"]["tracks"] == ["inbound", "outbound"]
    assert conn.of("start")[0]["start"]["customParameters"] == {"a": "b"}
    assert [m["event"] for _t, m in conn.messages][-1] == "stop"  # <Stop> sent stop, then closed the socket
    inbound, outbound = _pcm(conn.frames("inbound")), _pcm(conn.frames("outbound"))
    assert abs(dominant_frequency(_loud(inbound, 8000), 8000) - CALLER_HZ) < 10
    assert abs(dominant_frequency(_loud(outbound, 8000), 8000) - PLAY_HZ) < 10  # what the <Play> sent
    samples, rate = read_wav(heard)
    assert band_energy_ratio(_loud(samples, rate), rate, PLAY_HZ) > 0.8  # the TwiML went on
    hooks = app.for_path("/listen-status")
    assert [h.params["StreamEvent"] for h in hooks] == ["stream-started", "stream-stopped"]
    params = hooks[0].params
    assert (params["CallSid"], params["StreamName"]) == (sid, "ears")
    assert params["StreamSid"] == conn.of("start")[0]["streamSid"] and params["AccountSid"].startswith("AC")
    assert all(WebhookSink.valid(h) for h in hooks)


def test_a_stream_over_wss(switch: SwitchProcess, app: WebhookSink, secure_bot: SecureBot, tmp_path: Path) -> None:
    response = VoiceResponse()
    start = Start()
    start.stream(url=secure_bot.ws("/secure"), status_callback=app.url("/secure-status"))
    response.append(start)
    response.pause(length=2)
    response.hangup()
    with _phone(tmp_path / "heard.wav") as phone:
        sid = _call(switch, phone, response)
        conn = secure_bot.conn("/secure")
        assert conn.closed.wait(15)
        phone.wait_for("hangup", timeout=10)
    assert conn.of("start")[0]["start"]["callSid"] == sid
    assert abs(dominant_frequency(_loud(_pcm(conn.frames("inbound")), 8000), 8000) - CALLER_HZ) < 10
    assert [m["event"] for _t, m in conn.messages][-1] == "stop"  # the call ended: stop, then the socket closed
    hooks = app.wait_for(lambda hs: len([h for h in hs if h.path == "/secure-status"]) >= 2, 10)
    assert [h.params["StreamEvent"] for h in hooks if h.path == "/secure-status"] == ["stream-started",
                                                                                      "stream-stopped"]


# -- failures: the call goes on ------------------------------------------------------------------------------------

def test_refused_down_and_dropped_bots_are_stream_errors_and_the_call_goes_on(
        switch: SwitchProcess, app: WebhookSink, bot: Bot, tmp_path: Path) -> None:
    async def drop(request: web.Request, ws: web.WebSocketResponse, conn: Conn) -> None:
        await conn.until("media", 10)
        assert request.transport is not None
        request.transport.abort()  # gone without a close frame

    bot.behaviours["/drop"] = drop
    play = write_wav(tmp_path / "play.wav", sine(PLAY_HZ, 1.5))
    response = VoiceResponse()
    for name, url in (("refused", bot.ws("/refuse")), ("down", f"ws://127.0.0.1:{free_tcp_port()}/ws")):
        start = Start()
        start.stream(name=name, url=url, status_callback=app.url("/fail-status"))
        response.append(start)
    response.connect().stream(name="dropped", url=bot.ws("/drop"), status_callback=app.url("/fail-status"))
    response.play(str(play))
    response.hangup()
    heard = tmp_path / "heard.wav"
    with _phone(heard) as phone:
        sid = _call(switch, phone, response)
        phone.wait_for("hangup", timeout=20)
        phone.wait(10)
    hooks = app.wait_for(lambda hs: len([h for h in hs if h.path == "/fail-status"]) >= 4, 10)
    events = sorted((h.params["StreamName"], h.params["StreamEvent"]) for h in hooks if h.path == "/fail-status")
    assert events == [("down", "stream-error"), ("dropped", "stream-error"), ("dropped", "stream-started"),
                      ("refused", "stream-error")]
    errors = {h.params["StreamName"]: h.params.get("StreamError", "") for h in hooks
              if h.path == "/fail-status" and h.params["StreamEvent"] == "stream-error"}
    assert "HTTP 403" in errors["refused"] and "connect" in errors["down"] and "dropped" in errors["dropped"]
    assert _notification_codes(switch, sid) == [31901, 31920, 31921]
    samples, rate = read_wav(heard)
    assert band_energy_ratio(_loud(samples, rate), rate, PLAY_HZ) > 0.8  # the <Play> after the <Connect> ran
    assert switch.client().calls(sid).fetch().status == "completed"


# -- the REST Streams resource ------------------------------------------------------------------------------------

def test_rest_creates_and_stops_a_stream_with_the_official_client(switch: SwitchProcess, app: WebhookSink,
                                                                  bot: Bot, tmp_path: Path) -> None:
    response = VoiceResponse()
    response.pause(length=20)
    with _phone(tmp_path / "heard.wav") as phone:
        sid = _call(switch, phone, response)
        client = switch.client()
        wait_until(lambda: client.calls(sid).fetch().status == "in-progress", 10, "the call answered")
        created = client.calls(sid).streams.create(url=bot.ws("/rest"), name="rest", track="inbound_track",
                                                   status_callback=app.url("/rest-status"),
                                                   parameter1_name="x", parameter1_value="y")
        assert created.sid.startswith("MZ") and created.call_sid == sid
        assert (created.name, created.status) == ("rest", "in-progress")
        conn = bot.conn("/rest")
        wait_until(lambda: len(conn.of("media")) >= 50, 10, "a second of media")
        stopped = client.calls(sid).streams("rest").update(status="stopped")
        assert (stopped.sid, stopped.status) == (created.sid, "stopped")
        assert conn.closed.wait(10)
        client.calls(sid).update(status="completed")
        phone.wait_for("hangup", timeout=10)
    start = conn.of("start")[0]
    assert start["streamSid"] == created.sid and start["start"]["customParameters"] == {"x": "y"}
    assert [m["event"] for _t, m in conn.messages][-1] == "stop"
    assert abs(dominant_frequency(_loud(_pcm(conn.frames("inbound")), 8000), 8000) - CALLER_HZ) < 10
    hooks = app.wait_for(lambda hs: len([h for h in hs if h.path == "/rest-status"]) >= 2, 10)
    assert [h.params["StreamEvent"] for h in hooks if h.path == "/rest-status"] == ["stream-started",
                                                                                    "stream-stopped"]
    with pytest.raises(TwilioRestException) as refused:
        client.calls(sid).streams.create(url="ftp://not-a-socket.example/x")
    assert (refused.value.status, refused.value.code) == (400, 20001)


def test_a_connect_stream_stopped_over_rest_goes_on_and_a_redirect_stops_it(
        switch: SwitchProcess, app: WebhookSink, bot: Bot, tmp_path: Path) -> None:
    play = write_wav(tmp_path / "play.wav", sine(PLAY_HZ, 1.0))
    response = VoiceResponse()
    response.connect().stream(name="first", url=bot.ws("/first"))
    response.connect().stream(name="second", url=bot.ws("/second"))
    response.hangup()
    with _phone(tmp_path / "heard.wav") as phone:
        sid = _call(switch, phone, response)
        client = switch.client()
        first = bot.conn("/first")
        wait_until(lambda: len(first.of("media")) >= 10, 10, "the first stream's media")
        stopped = client.calls(sid).streams("first").update(status="stopped")
        assert stopped.status == "stopped"
        assert first.closed.wait(10)
        second = bot.conn("/second")  # the next verb ran
        wait_until(lambda: len(second.of("media")) >= 10, 10, "the second stream's media")
        client.calls(sid).update(twiml=f"<Response><Play>{play}</Play><Hangup/></Response>")
        assert second.closed.wait(10)
        phone.wait_for("hangup", timeout=10)
    assert [m["event"] for _t, m in first.messages][-1] == "stop"
    assert [m["event"] for _t, m in second.messages][-1] == "stop"  # interrupted by the redirect: stopped
    assert switch.client().calls(sid).fetch().status == "completed"



# -- a worker dying mid-stream (last in the module: the pool replaces the worker) --------------------------------

def test_a_worker_dying_mid_stream_ends_the_call_once_and_the_stream_once(switch: SwitchProcess, app: WebhookSink,
                                                                          bot: Bot, tmp_path: Path) -> None:
    response = VoiceResponse()
    response.connect().stream(url=bot.ws("/dying"), status_callback=app.url("/dying-stream"))
    with _phone(tmp_path / "heard.wav") as phone:
        call = switch.client().calls.create(to=phone.uri("bob"), from_="+15550199", twiml=str(response),
                                            status_callback=app.url("/dying-call"))
        conn = bot.conn("/dying")
        wait_until(lambda: len(conn.of("media")) >= 25, 10, "half a second of media")
        _, health = switch.healthz()
        holder = next(w for w in health["workers"] if int(w.get("in_use", 0)) > 0)
        os.kill(int(holder["pid"]), signal.SIGKILL)
        assert conn.closed.wait(10), "the stream's socket stayed open after its worker died"
        phone.wait_for("hangup", timeout=10)  # the reaper's BYE
    final = app.wait_statuses("/dying-call", call.sid, 1, timeout=10)
    assert [h.params["CallStatus"] for h in final] == ["failed"]
    assert switch.client().calls(call.sid).fetch().status == "failed"
    events = [h.params["StreamEvent"] for h in app.wait_for(
        lambda hs: sum(h.path == "/dying-stream" for h in hs) >= 2, 10) if h.path == "/dying-stream"]
    assert events[0] == "stream-started" and len(events) == 2 and events[1] in ("stream-stopped", "stream-error")
    wait_until(lambda: all(w["up"] for w in switch.healthz()[1]["workers"]), 20, "the worker replaced")
