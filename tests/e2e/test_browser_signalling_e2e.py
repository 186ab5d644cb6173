"""The browser client's WebSocket against a real switch, from a Python peer: what a misbehaving or unlucky
browser gets (refused tokens, bad messages, someone else's call), and a browser call whose worker dies.

The peer is aiohttp's WebSocket client and, for media, the bench's aiortc browser stand-in
(switch/tools/bench/webrtc_client.py); the switch side is the real thing.  Real Chromium is in test_browser_e2e.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant

from media.webrtc import use_host_addresses
from switch.tools.bench.webrtc_client import WebRtcClient
from tests.peers.harness import ACCOUNT_SID, SwitchProcess, WebhookSink


@pytest.fixture(scope="module")
def sink() -> Iterator[WebhookSink]:
    server = WebhookSink().start()
    server.twiml("/app", '<Response><Pause length="30"/></Response>')
    yield server
    server.stop()


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("browser-ws"), workers=1)
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()


TokenMaker = Callable[..., str]


@pytest.fixture(scope="module")
def make_token(switch: SwitchProcess, sink: WebhookSink) -> TokenMaker:
    """make_token(identity, with_app=True, ttl=600): a token of the switch's account, signed with a new API key."""
    use_host_addresses(["127.0.0.1"])  # this process's aiortc offers loopback candidates, as the switch does
    client = switch.client()
    key = client.new_keys.create(friendly_name="ws")
    app = client.applications.create(voice_url=sink.url("/app"), status_callback=sink.url("/status"))

    def make(identity: str, with_app: bool = True, ttl: int = 600) -> str:
        token = AccessToken(ACCOUNT_SID, key.sid, key.secret, identity=identity, ttl=ttl)
        token.add_grant(VoiceGrant(outgoing_application_sid=app.sid if with_app else None, incoming_allow=True))
        return str(token.to_jwt())

    return make


@pytest.fixture(scope="module")
def tokens(make_token: TokenMaker) -> dict[str, str]:
    return {"alice": make_token("alice"), "bob": make_token("bob"), "noapp": make_token("carol", False)}


async def _socket(switch: SwitchProcess, token: str) -> tuple[aiohttp.ClientSession, Any, dict[str, Any]]:
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(switch.base_url.replace("http", "ws") + "/client/ws")
    await ws.send_str(json.dumps({"type": "hello", "token": token}))
    return session, ws, json.loads((await ws.receive(timeout=10)).data)


async def _status_becomes(switch: SwitchProcess, sid: str, status: str, timeout: float = 10.0) -> None:
    """Poll the Calls API without blocking the event loop (this process's aiortc answers ICE on it)."""
    async def current() -> str | None:
        try:
            return str((await asyncio.to_thread(switch.client().calls(sid).fetch)).status)
        except Exception:  # not created yet: the switch creates the call once the browser's media is up
            return None
    deadline = asyncio.get_running_loop().time() + timeout
    while (seen := await current()) != status:
        assert asyncio.get_running_loop().time() < deadline, f"{sid} is {seen}, not {status}"
        await asyncio.sleep(0.1)


async def _ask(ws: Any, message: str | bytes) -> dict[str, Any]:
    await (ws.send_bytes(message) if isinstance(message, bytes) else ws.send_str(message))
    return dict(json.loads((await ws.receive(timeout=10)).data))


async def test_a_refused_hello_is_answered_then_closed_4001(switch: SwitchProcess) -> None:
    for hello in ("not json", json.dumps({"type": "call"}), json.dumps({"type": "hello", "token": "a.b.c"})):
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(switch.base_url.replace("http", "ws") + "/client/ws") as ws:
            await ws.send_str(hello)
            error = json.loads((await ws.receive(timeout=10)).data)
            closed = await ws.receive(timeout=10)
            assert (error["type"], error["code"], closed.type, ws.close_code) == (
                "error", 20101, aiohttp.WSMsgType.CLOSE, 4001), (hello, error)


async def test_bad_messages_get_errors_and_the_socket_goes_on(switch: SwitchProcess,
                                                              tokens: dict[str, str]) -> None:
    session, ws, ready = await _socket(switch, tokens["alice"])
    try:
        assert ready == {"type": "ready", "identity": "alice"}
        cases: list[tuple[str | bytes, int, str]] = [
            ("{not json", 31000, "JSON object"),
            (b"\x00\x01", 31000, "JSON text"),
            (json.dumps(["call"]), 31000, "JSON object"),
            (json.dumps({"type": "dance"}), 31000, "unknown message type 'dance'"),
            (json.dumps({"type": "hangup", "callSid": "CA" + "0" * 32}), 31002, "no call"),
            (json.dumps({"type": "accept", "callSid": "CA" + "1" * 32, "sdp": "v=0\r\n"}), 31002, "no call"),
            (json.dumps({"type": "call", "id": "c1", "params": {}, "sdp": "garbage"}), 31000, "SDP offer"),
            (json.dumps({"type": "call", "id": "c2", "params": {}, "sdp": "v=0\r\nm=video 9 RTP/AVP 96\r\n"}),
             31003, "SDP"),
        ]
        for message, code, words in cases:
            error = await _ask(ws, message)
            assert (error["type"], error["code"]) == ("error", code) and words in error["message"], (message, error)
        assert (await _ask(ws, json.dumps({"type": "call", "id": "c3", "params": {}, "sdp": "v=0\r\n"})))["id"] == "c3"
    finally:
        await ws.close()
        await session.close()


async def test_a_token_without_an_application_cannot_call_out(switch: SwitchProcess, tokens: dict[str, str]) -> None:
    client = WebRtcClient(switch.base_url, tokens["noapp"])
    try:
        assert (await client.connect())["type"] == "ready"
        with pytest.raises(RuntimeError, match="31002"):
            await client.call({"To": "+15550100"})
    finally:
        await client.close()


async def test_another_browsers_call_is_not_yours(switch: SwitchProcess, tokens: dict[str, str]) -> None:
    alice = WebRtcClient(switch.base_url, tokens["alice"])
    session, bob, _ = await _socket(switch, tokens["bob"])
    try:
        await alice.connect()
        call = await alice.call({"To": "+15550100"}, codec="pcmu")
        await _status_becomes(switch, call.sid, "in-progress")
        error = await _ask(bob, json.dumps({"type": "hangup", "callSid": call.sid}))
        assert (error["code"], error["callSid"]) == (31002, call.sid)
        await asyncio.sleep(0.5)
        await _status_becomes(switch, call.sid, "in-progress", timeout=1)
    finally:
        await bob.close()
        await session.close()
        await alice.close()


async def test_a_browser_call_whose_worker_dies_fails_and_the_browser_is_told(
        switch: SwitchProcess, sink: WebhookSink, tokens: dict[str, str]) -> None:
    client = WebRtcClient(switch.base_url, tokens["alice"])
    try:
        await client.connect()
        call = await client.call({"To": "+15550100"}, codec="pcmu")
        await _status_becomes(switch, call.sid, "in-progress")
        os.kill(switch.healthz()[1]["workers"][0]["pid"], signal.SIGKILL)
        await asyncio.wait_for(call.ended.wait(), 10)
        assert call.status == "failed"
        statuses = [h.params["CallStatus"] for h in sink.wait_statuses("/status", call.sid, 1)]
        assert statuses == ["failed"]
    finally:
        await client.close()


async def test_an_expired_token_unregisters_the_browser_until_a_new_one_comes(
        switch: SwitchProcess, make_token: TokenMaker) -> None:
    """Twilio's Device: error 20104 when the token expires, then no calls either way; `updateToken` with a
    token for the same identity registers it again, one for another identity is refused."""
    session, ws, ready = await _socket(switch, make_token("dora", ttl=2))
    client = switch.client()

    def ring() -> str:
        return str(client.calls.create(to="client:dora", from_="+15550100",
                                       twiml="<Response><Pause length='5'/></Response>").sid)
    try:
        assert ready == {"type": "ready", "identity": "dora"}
        expired = json.loads((await ws.receive(timeout=5)).data)
        assert (expired["type"], expired["code"], "id" in expired) == ("error", 20104, False)
        call = json.dumps({"type": "call", "id": "c1", "params": {}, "sdp": "v=0\r\n"})
        assert (await _ask(ws, call))["code"] == 20104
        with pytest.raises(TwilioRestException) as refused:  # no browser of dora's takes calls now
            await asyncio.to_thread(ring)
        assert refused.value.status == 400
        other = await _ask(ws, json.dumps({"type": "token", "token": make_token("eve")}))
        assert (other["type"], other["code"]) == ("error", 20101)
        stale = await _ask(ws, json.dumps({"type": "token", "token": make_token("dora", ttl=-60)}))
        assert (stale["type"], stale["code"]) == ("error", 20104)
        assert await _ask(ws, json.dumps({"type": "token", "token": make_token("dora")})) == {
            "type": "ready", "identity": "dora"}
        sid = await asyncio.to_thread(ring)
        incoming = json.loads((await ws.receive(timeout=10)).data)
        assert (incoming["type"], incoming["callSid"]) == ("incoming", sid)
        await ws.send_str(json.dumps({"type": "reject", "callSid": sid}))
        await _status_becomes(switch, sid, "busy")
    finally:
        await ws.close()
        await session.close()
