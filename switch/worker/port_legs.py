"""Port legs: browser softphones' call legs, each one conference-bridge port whose audio the control plane relays.

A port leg (`switch.workers.protocol_port`) stands where a SIP call's audio stands.  Its one `pj.AudioMediaPort`
is both ends of the leg's audio on the bridge:

- the sink (`onFrameReceived`) is given, every clock tick, the mix of whatever transmits to the leg (players, a
  bridged leg, a conference, a tap's source): what the switch sends the browser.  Each frame leaves as one
  `TapAudio(id=<leg>, track="outbound")` of 160 μ-law bytes, numbered from 0, from the moment the port exists;
- the source (`onFrameRequested`) plays what `TapSend(id=<leg>)` queued, 20 ms per tick, silence when nothing
  waits.  The queue (`media.playout.Playout`) holds at most `MAX_QUEUE_FRAMES` (~200 ms) and trims any standing
  part of it once a second: when the control plane's clock runs ahead of the bridge's, the oldest frames go, so
  what the browser says is not delayed by more than a frame or two of queue.

The engine registers the port as the leg's port (`MediaManager.set_port`), so every media command works on a port
leg as on a SIP leg; `PortLegs` answers the leg commands (`Dial` to a `webrtc:` URI, `Answer`, `Ring`, `Hangup`,
`SendDtmf`) and `PortOpen`/`PortSignal` with the same leg events a SIP leg gives.  The port's callbacks run on
the media clock thread and only convert, emit (the outbox is thread-safe) and touch the queue (whose appends and
pops are atomic); creating and destroying ports happens on the pjsua thread, in the engine's command loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from media.playout import Playout
from media.ulaw import ulaw_decode, ulaw_encode
from switch.worker.media import MediaManager
from switch.worker.media_taps import fill_frame
from switch.worker.pjengine import pj
from switch.worker.pjmedia import FRAME_BYTES, destroy, error_text, frame_bytes, pcm_format
from switch.workers.protocol import (
    PORT_SCHEME,
    Answer,
    Answered,
    Dial,
    DialFailed,
    DtmfReceived,
    Ended,
    Event,
    Hangup,
    InviteSent,
    MediaReady,
    PortFailed,
    PortOpen,
    PortSignal,
    Progress,
    Ring,
    SendDtmf,
    TapAudio,
    TapSend,
)

log = logging.getLogger("switch.worker.ports")

Emit = Callable[[Event], None]
MAX_QUEUE_FRAMES = 10  # ~200 ms of what the browser said may wait; more drops the oldest
_SILENCE = bytes(FRAME_BYTES)
_ULAW_FRAME = FRAME_BYTES // 2  # 160 μ-law bytes per 20 ms
# The reason of an `Ended` a browser's `PortSignal(ended)` gives, by its code.
REASONS = {200: "Normal call clearing", 480: "Temporarily Unavailable", 486: "Busy Here", 487: "Request Terminated",
           503: "Service Unavailable", 603: "Decline"}


def is_port_uri(uri: str) -> bool:
    """A `Dial` to this URI makes a port leg (its scheme is `webrtc:`)."""
    return uri.strip().lower().startswith(PORT_SCHEME)


class PortLeg(pj.AudioMediaPort):  # type: ignore[misc]
    """One browser leg's audio on the bridge: a sink emitting what the leg is sent, a source playing its queue."""

    def __init__(self, leg_id: str, emit: Emit, inbound: bool) -> None:
        super().__init__()
        self.leg_id = leg_id
        self.emit = emit
        self.inbound = inbound  # PortOpen: the browser placed the call (the switch answers it)
        self.answered = False
        self.rang = False
        self.closed = False
        self.seq = 0  # the next outbound frame's number (clock thread)
        self.queue = Playout(MAX_QUEUE_FRAMES)  # PCM frames to play (pjsua thread in, clock thread out)
        self._partial = b""  # μ-law bytes short of a whole frame, waiting for the next TapSend
        self.createPort(f"port-{leg_id[-12:]}", pcm_format())

    # -- clock thread ----------------------------------------------------------------------------------------
    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        try:
            if self.closed:
                return
            data = frame_bytes(frame) if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO else b""
            if len(data) != FRAME_BYTES:
                data = _SILENCE
            seq = self.seq
            self.seq = seq + 1
            self.emit(TapAudio(id=self.leg_id, track="outbound", seq=seq, ms=seq * 20, payload=ulaw_encode(data)))
        except Exception:  # never raise into the clock thread
            log.exception("port leg %s: frame lost", self.leg_id)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        try:
            fill_frame(frame, self.queue.pop() or _SILENCE)
        except Exception:  # never raise into the clock thread
            log.exception("port leg %s: frame not played", self.leg_id)

    # -- pjsua thread ----------------------------------------------------------------------------------------
    def send(self, payload: bytes) -> None:
        """Queue μ-law the browser said (whole frames; a remainder waits for the next payload)."""
        data = self._partial + payload
        whole = len(data) - len(data) % _ULAW_FRAME
        self._partial = data[whole:]
        for offset in range(0, whole, _ULAW_FRAME):
            self.queue.push(ulaw_decode(data[offset:offset + _ULAW_FRAME]))


class PortLegs:
    """The port legs of one worker, by leg id; every method runs on the pjsua thread (the engine's loop).

    `sip_legs` is the engine's SIP legs: a leg id is either a SIP leg or a port leg, and a browser's digits are
    relayed to the SIP leg its port leg is bridged to, as a SIP leg's digits are.
    """

    def __init__(self, media: MediaManager, emit: Emit, sip_legs: Mapping[str, Any]) -> None:
        self.media = media
        self.emit = emit
        self.sip_legs = sip_legs
        self.legs: dict[str, PortLeg] = {}

    def __contains__(self, leg_id: object) -> bool:
        return leg_id in self.legs

    def _make(self, leg_id: str, inbound: bool) -> str | None:
        """Make the port leg and register its port with the media manager; the error text if it cannot be."""
        if leg_id in self.legs or leg_id in self.sip_legs:
            return f"leg {leg_id} exists already"
        try:
            port = PortLeg(leg_id, self.emit, inbound)
        except pj.Error as exc:
            return error_text(exc)
        self.legs[leg_id] = port
        self.media.set_port(leg_id, port)
        return None

    # -- commands ----------------------------------------------------------------------------------------------
    def dial(self, command: Dial) -> None:
        """A `Dial` to a `webrtc:` URI: `InviteSent` (the control plane tells the browser), or `DialFailed`."""
        error = self._make(command.leg, inbound=False)
        if error is not None:
            log.warning("port leg %s: cannot dial %s: %s", command.leg, command.uri, error)
            self.emit(DialFailed(leg=command.leg, code=500, reason=error))
            return
        self.emit(InviteSent(leg=command.leg, call_id=f"webrtc-{command.leg}", t=time.time()))

    def open(self, command: PortOpen) -> None:
        """A call the browser placed: the port leg, not answered yet; `PortFailed` if it cannot be made."""
        error = self._make(command.leg, inbound=True)
        if error is not None:
            log.warning("port leg %s: cannot open: %s", command.leg, error)
            self.emit(PortFailed(leg=command.leg, error=error))

    def signal(self, command: PortSignal) -> None:
        """What the browser did, as the leg events a SIP leg would give; an unknown leg's signal is ignored."""
        port = self.legs.get(command.leg)
        if port is None:
            log.info("PortSignal %s for unknown or ended leg %s ignored", command.state, command.leg)
            return
        match command.state:
            case "ringing":
                if not port.rang and not port.answered:
                    port.rang = True
                    self.emit(Progress(leg=port.leg_id, code=180, reason="Ringing", sdp=False, t=time.time()))
            case "answered":
                self._answer(port)
            case "dtmf":
                for digit in command.digits:
                    self._digit(port, digit)
            case "ended":
                code = command.code or 200
                self.end(port.leg_id, code, REASONS.get(code, "Ended by the browser"))
            case _:
                log.warning("port leg %s: unknown PortSignal state %r ignored", command.leg, command.state)

    def leg_command(self, command: Ring | Answer | Hangup | SendDtmf) -> bool:
        """A leg command, if it names a port leg (True: handled here; False: not a port leg)."""
        port = self.legs.get(command.leg)
        if port is None:
            return False
        match command:
            case Answer():
                self._answer(port)
            case Hangup():
                self.end(port.leg_id, command.code, "hangup")
            case SendDtmf():
                log.info("port leg %s: SendDtmf %r ignored (a browser takes no digits)", port.leg_id, command.digits)
            case _:
                pass  # Ring: the control plane told the browser already
        return True

    def send(self, command: TapSend) -> bool:
        """`TapSend` to a port leg: audio the browser said (True: `command.id` is a port leg)."""
        port = self.legs.get(command.id)
        if port is None:
            return False
        port.send(command.payload)
        return True

    def has_media(self, leg_id: str) -> bool:
        """A port leg's audio is on the bridge from the moment it exists."""
        return leg_id in self.legs

    # -- events ------------------------------------------------------------------------------------------------
    def _answer(self, port: PortLeg) -> None:
        if port.answered:
            log.info("port leg %s is answered already", port.leg_id)
            return
        port.answered = True
        now = time.time()
        self.emit(Answered(leg=port.leg_id, code=200, t=now))
        self.emit(MediaReady(leg=port.leg_id, t=now))

    def _digit(self, port: PortLeg, digit: str) -> None:
        """Report a browser's digit, and relay it to the SIP leg the port leg is bridged to."""
        self.emit(DtmfReceived(leg=port.leg_id, digit=digit, t=time.time()))
        peer = self.sip_legs.get(self.media.bridges.get(port.leg_id, ""))
        if peer is not None:
            try:
                peer.dialDtmf(digit)
            except pj.Error as exc:
                log.info("port leg %s: DTMF relay failed: %s", port.leg_id, error_text(exc))

    def end(self, leg_id: str, code: int, reason: str) -> None:
        """The leg is gone: its media relations end (players, recordings, taps, bridge, conference), then its
        port, then `Ended`."""
        port = self.legs.get(leg_id)
        if port is None:
            return
        self.media.leg_gone(leg_id)
        port.closed = True
        port.queue.clear()
        destroy(port)
        del self.legs[leg_id]
        if port.queue.dropped:
            log.info("port leg %s: %d queued frames dropped to keep the delay short", leg_id, port.queue.dropped)
        self.emit(Ended(leg=leg_id, code=code, reason=reason, answered=port.answered, t=time.time()))

    def close_all(self) -> None:
        """Worker shutdown: every port leg ends (503 before the answer, 200 after), as SIP legs do."""
        for leg_id, port in list(self.legs.items()):
            code = 200 if port.answered else 503
            self.end(leg_id, code, "shutdown")
