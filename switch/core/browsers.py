"""Browser softphones: the calls of browsers signed in with an access token, over WebRTC (media.webrtc).

A browser opens the client WebSocket (switch.dialects.twilio.client_ws) and becomes a `PhoneLink` of its token's
identity.  Each of its calls is a call leg like any other, with statuses and callbacks: a *port leg* on a worker
(switch.worker.port_legs) stands in for a SIP leg's audio, and this module relays its audio to and from the
browser's `BrowserPeer` through a tap named by the leg id (`Taps.adopt`), 20 ms of μ-law at a time.  What the
browser does reaches the worker as `PortSignal`s, and the worker answers with the leg events a SIP leg would give
(ringing, answered, DTMF, ended), so the call engine needs to know nothing of browsers but where to route them:

- **Calls to a browser** (`<Dial><Client>`, REST ``To=client:alice``): `ClientRouter` routes the identity to
  ``webrtc:<identity>`` while one of its browsers is open with ``incoming_allow``; the engine places the leg
  (a `Dial` the worker turns into a port leg) and `on_created` tells the newest such browser (``incoming``) and
  has the worker report ringing.  `accept` answers the browser's offer; `reject` ends the leg busy (486), a
  browser gone before it answered leaves it no-answer (480).
- **Calls from a browser** (`place`): the token's outgoing application's voice URL runs with Twilio's parameters
  (``From=client:<identity>``, ``To`` and the custom parameters, ``ApplicationSid``), as an inbound call.
- Either ends from the browser (``hangup``, a closed tab or socket: BYE-like, code 200) or from the switch (the
  browser gets ``hangup`` with the call's final status).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from media.ulaw import ulaw_decode, ulaw_encode
from media.webrtc import BrowserPeer
from switch.core.applications import ApplicationRegistry
from switch.core.calls import CallManager
from switch.core.errors import SwitchError
from switch.core.model import Call, Direction, new_sid
from switch.core.sip_calls import CLIENT_PREFIX, WEBRTC_SCHEME
from switch.core.status import CallStatus
from switch.workers.media_taps import AudioTap
from switch.workers.pool import NoCapacity
from switch.workers.protocol import PortOpen, PortSignal

log = logging.getLogger("switch.browsers")

CONNECT_TIMEOUT = 10.0  # seconds the browser's ICE and DTLS may take before its call is given up
# Twilio's Voice SDK error codes the client sees
GENERAL_ERROR = 31000
CONNECTION_DECLINED = 31002  # no application, no such call, a call that is not this browser's
MEDIA_FAILED = 31003  # an unusable SDP offer, ICE or DTLS failed
NO_CAPACITY = 31005


class PhoneLink(Protocol):
    """One signed-in browser, as the signalling gives it (switch.dialects.twilio.client_ws)."""

    identity: str  # without the ``client:`` prefix
    account_sid: str
    incoming_allow: bool
    application_sid: str | None
    outgoing_params: Mapping[str, str]

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message for the browser (never blocks; dropped once the socket is gone)."""


class BrowserError(SwitchError):
    """A browser's request that cannot be done: `code` is the Voice SDK's."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(eq=False)
class BrowserLeg:
    """One browser call: its call, its port leg's worker, the browser and the WebRTC session."""

    call_sid: str
    worker: int
    link: PhoneLink
    outgoing: bool  # the browser placed it (else the switch rings the browser)
    accepted: bool = False
    ended: bool = False
    reserved: bool = False  # a browser's call holds a worker slot the engine does not own yet
    peer: BrowserPeer | None = None
    tap: AudioTap | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    unwatch: Callable[[], None] | None = None


class BrowserPhones:
    """The signed-in browsers and their calls (see the module docstring)."""

    def __init__(self, calls: CallManager, applications: ApplicationRegistry) -> None:
        self.calls = calls
        self.applications = applications
        self.links: dict[str, list[PhoneLink]] = {}  # identity -> its open browsers, oldest first
        self.legs: dict[str, BrowserLeg] = {}  # call SID -> its browser leg
        self._closing: set[asyncio.Task[None]] = set()  # WebRTC sessions being closed

    # -- sign-in ---------------------------------------------------------------------------------------------
    def register(self, link: PhoneLink) -> None:
        self.links.setdefault(link.identity, []).append(link)
        log.info("browser client:%s signed in (%d open)", link.identity, len(self.links[link.identity]))

    def takes_calls(self, identity: str, account_sid: str) -> bool:
        """Whether `identity` has a browser open that takes incoming calls (`ClientRouter.browsers`)."""
        return any(link.incoming_allow and link.account_sid == account_sid for link in self.links.get(identity, ()))

    def closed(self, link: PhoneLink) -> None:
        """The browser's socket is gone (tab closed, network lost): its calls end as if it hung up."""
        open_links = self.links.get(link.identity, [])
        if link in open_links:
            open_links.remove(link)
        if not open_links:
            self.links.pop(link.identity, None)
        for leg in [leg for leg in self.legs.values() if leg.link is link]:
            self._signal_end(leg, 200 if leg.accepted else 480)

    # -- calls to a browser -------------------------------------------------------------------------------
    def on_created(self, call: Call) -> None:
        """A created call (`CallManager.created_hooks`): one routed to a browser rings the newest that takes calls."""
        if not (call.sip_uri or "").startswith(WEBRTC_SCHEME) or call.direction is Direction.INBOUND:
            return
        identity = (call.sip_uri or "")[len(WEBRTC_SCHEME):]
        links = [link for link in self.links.get(identity, ()) if link.incoming_allow]
        assert call.worker is not None
        if not links:  # signed out since it was routed
            leg = BrowserLeg(call.sid, call.worker, _GONE, outgoing=False)
            self.legs[call.sid] = leg
            asyncio.get_running_loop().call_soon(self._signal_end, leg, 480)
            return
        leg = BrowserLeg(call.sid, call.worker, links[-1], outgoing=False)
        self.legs[call.sid] = leg
        leg.unwatch = self.calls.watch(call.sid, self._on_status)
        # after this hook the engine sends the worker its Dial; the ringing must follow it, not pass it
        asyncio.get_running_loop().call_soon(self._ring, leg, call)

    def _ring(self, leg: BrowserLeg, call: Call) -> None:
        if leg.ended or call.terminal:
            return
        leg.link.send({"type": "incoming", "callSid": call.sid, "from": call.from_ or "",
                       "to": f"{CLIENT_PREFIX}{leg.link.identity}", "params": dict(call.client_parameters or {})})
        self.calls.send_worker(leg.worker, PortSignal(leg=call.sid, state="ringing"))

    async def accept(self, link: PhoneLink, call_sid: str, offer: str) -> str:
        """The browser takes a call ringing it: our SDP answer; the leg is answered once media connects."""
        leg = self._leg_of(link, call_sid)
        if leg.outgoing or leg.accepted:
            raise BrowserError(CONNECTION_DECLINED, f"call {call_sid} is not ringing this browser")
        leg.accepted = True
        answer = await self._connect(leg, offer)
        leg.tasks.append(asyncio.ensure_future(self._answer_when_connected(leg)))
        return answer

    def reject(self, link: PhoneLink, call_sid: str) -> None:
        """The browser refuses a call ringing it: the leg ends busy (486)."""
        leg = self._leg_of(link, call_sid)
        if leg.accepted:
            raise BrowserError(CONNECTION_DECLINED, f"call {call_sid} was accepted already")
        self._signal_end(leg, 486)

    async def _answer_when_connected(self, leg: BrowserLeg) -> None:
        if await self._wait_connected(leg):
            self.calls.send_worker(leg.worker, PortSignal(leg=leg.call_sid, state="answered"))

    # -- calls from a browser -----------------------------------------------------------------------------
    async def place(self, link: PhoneLink, params: Mapping[str, str], offer: str) -> tuple[str, str]:
        """A call from the browser to its token's outgoing application: (CallSid, our SDP answer).  The call
        starts (its voice URL is fetched) once media connects, so the app's first words are heard."""
        app = self.applications.get(link.application_sid) if link.application_sid else None
        if app is None or not app.voice_url:
            raise BrowserError(CONNECTION_DECLINED, "the token's outgoing application does not exist or has no "
                                                    "voice URL")
        if self.calls.draining or self.calls.pool is None:
            raise BrowserError(NO_CAPACITY, "the switch is shutting down and takes no new calls")
        sid = new_sid("CA")
        try:
            worker = self.calls.pool.reserve(sid)
        except NoCapacity as exc:
            raise BrowserError(NO_CAPACITY, str(exc)) from exc
        leg = BrowserLeg(sid, worker, link, outgoing=True, accepted=True, reserved=True)
        self.legs[sid] = leg
        try:
            answer = await self._connect(leg, offer)
        except BrowserError:
            self._forget(leg)
            raise
        custom = {**link.outgoing_params, **{k: v for k, v in params.items() if k != "To"}}
        now = self.calls.clock()
        call = Call(sid=sid, account_sid=link.account_sid, to=params.get("To", ""),
                    from_=f"{CLIENT_PREFIX}{link.identity}", direction=Direction.INBOUND, status=CallStatus.RINGING,
                    date_created=now, date_updated=now, start_time=now, url=app.voice_url, method=app.voice_method,
                    fallback_url=app.voice_fallback_url, fallback_method=app.voice_fallback_method,
                    status_callback=app.status_callback, status_callback_method=app.status_callback_method,
                    sip_uri=f"{WEBRTC_SCHEME}{link.identity}", worker=worker,
                    sip_params={"ApplicationSid": app.sid, **custom})
        leg.tasks.append(asyncio.ensure_future(self._start_when_connected(leg, call)))
        return sid, answer

    async def _start_when_connected(self, leg: BrowserLeg, call: Call) -> None:
        if not await self._wait_connected(leg):
            self._forget(leg)
            return
        leg.unwatch = self.calls.watch(call.sid, self._on_status)
        leg.reserved = False  # the engine's now: it releases the slot when the call ends
        self.calls.start_inbound(call, call.sid, PortOpen(leg=call.sid),
                                 f"WebRTC call from {CLIENT_PREFIX}{leg.link.identity}")

    # -- during a call -------------------------------------------------------------------------------------
    def dtmf(self, link: PhoneLink, call_sid: str, digits: str) -> None:
        leg = self._leg_of(link, call_sid)
        keep = "".join(d for d in digits if d in "0123456789*#ABCDabcd")
        if keep and leg.accepted:
            self.calls.send_worker(leg.worker, PortSignal(leg=call_sid, state="dtmf", digits=keep.upper()))

    def hangup(self, link: PhoneLink, call_sid: str) -> None:
        """The browser hangs up (or, for a call still ringing it, refuses it)."""
        leg = self._leg_of(link, call_sid)
        self._signal_end(leg, 200 if leg.accepted else 486)

    def _leg_of(self, link: PhoneLink, call_sid: str) -> BrowserLeg:
        leg = self.legs.get(call_sid)
        if leg is None or leg.link is not link or leg.ended:
            raise BrowserError(CONNECTION_DECLINED, f"no call {call_sid} of this browser")
        return leg

    # -- media ---------------------------------------------------------------------------------------------
    async def _connect(self, leg: BrowserLeg, offer: str) -> str:
        """Answer the browser's offer and relay the port leg's audio both ways."""
        tap = AudioTap(leg.call_sid, leg.call_sid, leg.worker, self.calls.send_worker)
        peer = BrowserPeer(lambda pcm: tap.send(ulaw_encode(pcm)), leg.call_sid)
        try:
            answer = await peer.answer(offer)
        except ValueError as exc:
            await peer.close()
            raise BrowserError(MEDIA_FAILED, str(exc)) from exc
        if leg.ended:  # the browser went, or the call ended, while the answer was made
            await peer.close()
            raise BrowserError(CONNECTION_DECLINED, f"call {leg.call_sid} has ended")
        leg.peer, leg.tap = peer, tap
        self.calls.media.taps.adopt(tap)
        leg.tasks.append(asyncio.ensure_future(self._relay(leg, tap, peer)))
        return answer

    async def _relay(self, leg: BrowserLeg, tap: AudioTap, peer: BrowserPeer) -> None:
        while (frame := await tap.frames.get()) is not None:
            peer.feed(ulaw_decode(frame.payload))

    async def _wait_connected(self, leg: BrowserLeg) -> bool:
        """Wait for the browser's media; on failure or timeout the call ends (the browser is told)."""
        assert leg.peer is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(leg.peer.connected.wait(), CONNECT_TIMEOUT)
        if leg.peer.connected.is_set() and not leg.ended:
            leg.tasks.append(asyncio.ensure_future(self._watch_media(leg)))
            return True
        if not leg.ended:
            leg.link.send({"type": "error", "callSid": leg.call_sid, "code": MEDIA_FAILED,
                           "message": "the browser's media did not connect (ICE or DTLS failed)"})
            if leg.call_sid in self.calls.live:
                self._signal_end(leg, 200 if leg.accepted else 480)
        return False

    async def _watch_media(self, leg: BrowserLeg) -> None:
        assert leg.peer is not None
        await leg.peer.failed.wait()
        if not leg.ended:
            log.info("%s: the browser's media failed: the call ends", leg.call_sid)
            self._signal_end(leg, 200)

    # -- the end -------------------------------------------------------------------------------------------
    def _signal_end(self, leg: BrowserLeg, code: int) -> None:
        """The browser's side ended the leg: the worker reports it ended with `code` (the engine does the rest)."""
        if leg.ended:
            return
        live = leg.call_sid in self.calls.live
        self._forget(leg)
        if live:
            self.calls.send_worker(leg.worker, PortSignal(leg=leg.call_sid, state="ended", code=code))

    def _on_status(self, call: Call) -> None:
        if not call.terminal:
            return
        leg = self.legs.get(call.sid)
        if leg is not None and not leg.ended:
            leg.link.send({"type": "hangup", "callSid": call.sid, "status": str(call.status)})
            self._forget(leg)

    def _forget(self, leg: BrowserLeg) -> None:
        leg.ended = True
        if leg.reserved and self.calls.pool is not None:
            leg.reserved = False
            self.calls.pool.release(leg.call_sid, leg.worker)
        self.legs.pop(leg.call_sid, None)
        if leg.unwatch is not None:
            leg.unwatch()
        if leg.tap is not None:
            self.calls.media.taps.drop(leg.tap.id, "hangup")
        current = asyncio.current_task()
        for task in leg.tasks:
            if task is not current:
                task.cancel()
        if leg.peer is not None:
            closing = asyncio.ensure_future(leg.peer.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Shutdown: every browser call's media ends (the engine ends the calls themselves)."""
        for leg in list(self.legs.values()):
            self._forget(leg)
            if leg.peer is not None:
                with contextlib.suppress(Exception):
                    await leg.peer.close()


class _Gone:
    """The browser of a call routed to one that signed out before it could ring."""

    identity = ""
    account_sid = ""
    incoming_allow = False
    application_sid: str | None = None
    outgoing_params: Mapping[str, str] = {}

    def send(self, message: dict[str, Any]) -> None:
        pass


_GONE = _Gone()
