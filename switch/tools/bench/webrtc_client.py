"""A browser stand-in for the bench: the client WebSocket's protocol and WebRTC media, on aiortc.

The end-to-end tests drive a real Chromium; the bench needs many browser calls in one process with the audio in
hand, so it speaks the same signalling (switch.dialects.twilio.client_ws) and offers WebRTC as a browser does.
Each `ClientCall` sends what its `say` queue holds (8 kHz 16-bit mono PCM, silence when empty) and keeps what it
hears with the time each 20 ms frame arrived (`heard`).  `direct_pair` wires two such calls to each other with no
switch between, the yardstick of what the switch adds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender

from media.webrtc import FRAME_BYTES, RATE, PacedTrack, decoded

__all__ = ["FRAME_BYTES", "RATE", "ClientCall", "WebRtcClient", "direct_pair"]


class _SayTrack(PacedTrack):
    """What a call says: queued 20 ms frames (silence when none), paced by the clock; `sent_marks` holds when each
    frame queued with a mark left (just before it was encoded)."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: collections.deque[tuple[bytes, bool]] = collections.deque()
        self.sent_marks: list[float] = []

    def next_pcm(self) -> bytes | None:
        if not self.frames:
            return None
        pcm, marked = self.frames.popleft()
        if marked:
            self.sent_marks.append(time.monotonic())
        return pcm


@dataclass(eq=False)
class ClientCall:
    """One call of a `WebRtcClient`: its SID, what it hears (time, PCM) and its end."""

    sid: str
    pc: RTCPeerConnection
    say: _SayTrack
    heard: list[tuple[float, bytes]] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    status: str = ""
    reader: asyncio.Task[None] | None = None

    def send_audio(self, pcm: bytes, mark: bool = False) -> None:
        """Queue PCM (whole 20 ms frames) to be said after what is queued; with `mark`, the time its first frame
        leaves is appended to `sent_marks`."""
        for start in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
            self.say.frames.append((pcm[start:start + FRAME_BYTES], mark and start == 0))

    @property
    def sent_marks(self) -> list[float]:
        """When each marked frame left (monotonic seconds), in order."""
        return self.say.sent_marks

    async def close(self) -> None:
        """Stop hearing and saying, close the peer connection."""
        if self.reader is not None:
            self.reader.cancel()
        self.say.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()


async def _hear(call: ClientCall, track: MediaStreamTrack) -> None:
    async for arrived, pcm in decoded(track):
        call.heard.append((arrived, pcm))


def _listening(call: ClientCall) -> ClientCall:
    """`call` with a reader started on the track its peer connection gets."""

    @call.pc.on("track")
    def _on_track(track: MediaStreamTrack) -> None:
        call.reader = asyncio.ensure_future(_hear(call, track))

    return call


async def _offer(codec: str) -> tuple[RTCPeerConnection, _SayTrack, str]:
    """A peer connection saying a `_SayTrack`, offering `codec` only (every codec when empty), gathered."""
    pc = RTCPeerConnection()
    say = _SayTrack()
    transceiver = pc.addTransceiver(say, direction="sendrecv")
    if codec:
        prefs = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == f"audio/{codec}"]
        transceiver.setCodecPreferences(prefs)
    await pc.setLocalDescription(await pc.createOffer())
    return pc, say, str(pc.localDescription.sdp)


async def direct_pair(codec: str = "") -> tuple[ClientCall, ClientCall]:
    """Two calls' media wired to each other with no switch between (the latency baseline): the offerer's and
    the answerer's `ClientCall`, connected once this returns (ICE and DTLS may still be finishing)."""
    pc_a, say_a, sdp = await _offer(codec)
    a = _listening(ClientCall("direct-a", pc_a, say_a))
    pc_b, say_b = RTCPeerConnection(), _SayTrack()
    b = _listening(ClientCall("direct-b", pc_b, say_b))
    await pc_b.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
    pc_b.addTrack(say_b)
    await pc_b.setLocalDescription(await pc_b.createAnswer())
    await pc_a.setRemoteDescription(RTCSessionDescription(str(pc_b.localDescription.sdp), "answer"))
    return a, b


class WebRtcClient:
    """One signed-in browser stand-in (see the module docstring)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.url = base_url.replace("http", "ws", 1).rstrip("/") + "/client/ws"
        self.token = token
        self.identity = ""
        self.calls: dict[str, ClientCall] = {}
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.errors: list[dict[str, Any]] = []
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> dict[str, Any]:
        """Open the socket and say hello: the server's first answer (ready, or error)."""
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.url)
        await self._ws.send_str(json.dumps({"type": "hello", "token": self.token}))
        first = json.loads((await self._ws.receive(timeout=10)).data)
        if first.get("type") == "ready":
            self.identity = first["identity"]
            self._reader = asyncio.ensure_future(self._read())
        return dict(first)

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            key = data.get("id") or data.get("callSid") or ""
            kind = data.get("type")
            if kind in ("answer", "error") and key in self._replies:
                self._replies.pop(key).set_result(data)
            elif kind == "error":
                self.errors.append(data)
                if data.get("callSid") in self.calls:
                    self.calls[data["callSid"]].status = "error"
                    self.calls[data["callSid"]].ended.set()
            elif kind == "incoming":
                self.incoming.put_nowait(data)
            elif kind == "hangup" and data.get("callSid") in self.calls:
                call = self.calls[data["callSid"]]
                call.status = str(data.get("status", ""))
                call.ended.set()

    async def _request(self, key: str, message: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        assert self._ws is not None
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[key] = reply
        await self._ws.send_str(json.dumps(message))
        return await asyncio.wait_for(reply, timeout)

    def _start(self, sid: str, pc: RTCPeerConnection, say: _SayTrack) -> ClientCall:
        call = _listening(ClientCall(sid, pc, say))
        self.calls[sid] = call
        return call

    async def call(self, params: dict[str, str], codec: str = "") -> ClientCall:
        """Place a call to the token's application; the `ClientCall` once the switch answered the offer."""
        pc, say, sdp = await _offer(codec)
        key = f"c{len(self.calls)}-{time.monotonic_ns()}"
        reply = await self._request(key, {"type": "call", "id": key, "params": params, "sdp": sdp})
        if reply.get("type") != "answer":
            await pc.close()
            raise RuntimeError(f"call refused: {reply}")
        call = self._start(reply["callSid"], pc, say)
        await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        return call

    async def accept(self, sid: str, codec: str = "") -> ClientCall:
        pc, say, sdp = await _offer(codec)
        reply = await self._request(sid, {"type": "accept", "callSid": sid, "sdp": sdp})
        if reply.get("type") != "answer":
            await pc.close()
            raise RuntimeError(f"accept refused: {reply}")
        call = self._start(sid, pc, say)
        await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        return call

    async def send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps(message))

    async def hangup(self, sid: str) -> None:
        await self.send({"type": "hangup", "callSid": sid})

    async def close(self) -> None:
        """Close every call's media and the socket."""
        for call in self.calls.values():
            await call.close()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 2)
        if self._session is not None:
            await self._session.close()
