"""WebRTC audio with a browser, on aiortc: one `BrowserPeer` per browser call.

The browser always offers; `BrowserPeer.answer` takes its SDP and returns ours (aiortc gathers its candidates
before it answers, so nothing trickles).  Audio is handed over as the switch's workers speak it, 20 ms of 8 kHz
16-bit mono PCM (320 bytes) at a time:

- what the browser says comes out of `on_audio` (Opus at 48 kHz or PCMU, resampled here);
- what the browser should hear goes in with `feed`; a track paced by the clock plays it out, silence when
  nothing is queued; its queue (`media.playout.Playout`) trims any standing delay the two clocks build up.

Addresses.  aioice offers every interface but loopback.  `use_host_addresses` makes it offer exactly the ones
configured (`[webrtc] addresses`), which a lab on one machine (and the tests) set to ``127.0.0.1``; the remote
candidates a peer cannot reach from those are dropped before ICE sees them (`reachable_candidates`): with only
loopback addresses, only the browser's loopback candidates are kept (no mDNS ``.local`` names either).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aioice.ice
import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from media.playout import Playout

__all__ = ["FRAME_BYTES", "FRAME_SAMPLES", "MAX_QUEUED_FRAMES", "RATE", "BrowserPeer", "PacedTrack", "decoded",
           "reachable_candidates", "use_host_addresses"]

log = logging.getLogger("media.webrtc")

RATE = 8000
FRAME_SAMPLES = 160  # 20 ms
FRAME_BYTES = FRAME_SAMPLES * 2
MAX_QUEUED_FRAMES = 10  # 200 ms
_SILENCE = bytes(FRAME_BYTES)
_TIME_BASE = fractions.Fraction(1, RATE)

_host_addresses: tuple[str, ...] = ()
_AIOICE_CHOICE = aioice.ice.get_host_addresses


def _configured_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    versions = {4} if use_ipv4 else set()
    if use_ipv6:
        versions.add(6)
    return [a for a in _host_addresses if ipaddress.ip_address(a).version in versions]


def use_host_addresses(addresses: Sequence[str]) -> None:
    """Offer browsers candidates on exactly `addresses` (none: every interface but loopback, aioice's choice)."""
    global _host_addresses
    for address in addresses:
        ipaddress.ip_address(address)  # ValueError for a name or garbage
    _host_addresses = tuple(addresses)
    # aioice looks the function up at each gathering
    aioice.ice.get_host_addresses = _configured_addresses if addresses else _AIOICE_CHOICE


def _loopback_only() -> bool:
    return bool(_host_addresses) and all(ipaddress.ip_address(a).is_loopback for a in _host_addresses)


def reachable_candidates(sdp: str) -> str:
    """`sdp` without the candidates this side cannot reach: with loopback-only host addresses, every candidate
    whose address is not a loopback address (other interfaces, mDNS names)."""
    if not _loopback_only():
        return sdp
    kept: list[str] = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            try:
                if len(fields) < 6 or not ipaddress.ip_address(fields[4]).is_loopback:
                    continue
            except ValueError:  # a name (mDNS .local)
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


class PacedTrack(MediaStreamTrack):  # type: ignore[misc]
    """An outgoing audio track of 20 ms frames of 8 kHz PCM, paced by the clock: each is what `next_pcm` gives,
    silence when it gives nothing."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None
        self._n = 0  # frames handed out

    def next_pcm(self) -> bytes | None:
        """The next frame (320 bytes), or None for silence."""
        return None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            delay = self._start + self._n * FRAME_SAMPLES / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(self.next_pcm() or _SILENCE)
        frame.sample_rate = RATE
        frame.pts = self._n * FRAME_SAMPLES
        frame.time_base = _TIME_BASE
        self._n += 1
        return frame


class _FeedTrack(PacedTrack):
    """The audio the browser hears: the frames `BrowserPeer.feed` queued."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = Playout(MAX_QUEUED_FRAMES)

    def next_pcm(self) -> bytes | None:
        return self.frames.pop()


async def decoded(track: MediaStreamTrack) -> AsyncIterator[tuple[float, bytes]]:
    """What an incoming audio track carries, as 8 kHz 16-bit mono PCM with the time (monotonic) each decoded
    frame arrived, until the track ends."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    while True:
        try:
            frame: Any = await track.recv()
        except MediaStreamError:
            return
        now = time.monotonic()
        for out in resampler.resample(frame):
            yield now, out.to_ndarray().tobytes()


class BrowserPeer:
    """One browser call's WebRTC session (see the module docstring)."""

    def __init__(self, on_audio: Callable[[bytes], None], name: str = "") -> None:
        self.name = name
        self.on_audio = on_audio
        self.codec = ""  # the audio codec the answer chose (opus, PCMU, ...)
        self._pc = RTCPeerConnection()
        self._track = _FeedTrack()
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self.connected = asyncio.Event()  # ICE and DTLS are up: audio flows
        self.failed = asyncio.Event()  # ICE or DTLS failed, or the connection closed
        self._pc.on("track", self._on_track)
        self._pc.on("connectionstatechange", self._on_state)

    async def answer(self, offer_sdp: str) -> str:
        """Take the browser's offer; our answer SDP, candidates included.  ValueError for an unusable offer."""
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(reachable_candidates(offer_sdp), "offer"))
        except Exception as exc:  # aiortc raises several kinds for a bad SDP
            raise ValueError(f"unusable SDP offer: {exc}") from exc
        audio = [t for t in self._pc.getTransceivers() if t.kind == "audio"]
        if not audio:
            raise ValueError("the SDP offer has no audio")
        audio[0].sender.replaceTrack(self._track)
        audio[0].direction = "sendrecv"
        answer = await self._pc.createAnswer()
        await self._pc.setLocalDescription(answer)
        codecs = getattr(audio[0], "_codecs", None) or []
        self.codec = str(getattr(codecs[0], "mimeType", "")).split("/")[-1] if codecs else ""
        return str(self._pc.localDescription.sdp)

    def feed(self, pcm: bytes) -> None:
        """Queue 20 ms frames (320 bytes each) for the browser to hear, after what is queued."""
        for start in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
            self._track.frames.push(pcm[start:start + FRAME_BYTES])

    @property
    def state(self) -> str:
        return str(self._pc.connectionState)

    async def close(self) -> None:
        """End the session (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self._track.stop()
        with contextlib.suppress(Exception):
            await self._pc.close()
        self.failed.set()

    def _on_state(self) -> None:
        if self._pc.connectionState == "connected":
            self.connected.set()
        if self._pc.connectionState in ("failed", "closed"):
            log.info("webrtc %s: connection %s", self.name, self._pc.connectionState)
            self.failed.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._reader is None:
            self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        pending = b""
        async for _, pcm in decoded(track):
            pending += pcm
            while len(pending) >= FRAME_BYTES:
                chunk, pending = pending[:FRAME_BYTES], pending[FRAME_BYTES:]
                try:
                    self.on_audio(chunk)
                except Exception:
                    log.exception("webrtc %s: audio consumer failed", self.name)
