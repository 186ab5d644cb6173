"""The pjsua2 engine of one media worker.  This package is the only code that imports pjsua2.

One thread owns the Endpoint (`uaConfig.threadCnt = 0`, `mainThreadOnly = True`) and loops on
`libHandleEvents`.  pjsua2 callbacks only read what they need and emit an event upward; commands from the
control plane arrive on another thread, wait in a queue, and wake the loop with a bare CRLFCRLF datagram to
our own SIP port (pjsip takes it for a keep-alive), which cuts command latency from a poll period to ~0.1 ms.

Every `Call` is referenced from `Engine.legs` for its whole life and dropped synchronously inside
`onCallState(DISCONNECTED)`: a collected director object answers 603, a late one hangs up the next call
that reuses its slot (ARCHITECTURE.md).  Browsers' legs are port legs (`switch.worker.port_legs`), held by
`Engine.ports`: no `Call`, a bridge port whose audio the control plane relays; a `Dial` to a `webrtc:` URI,
`PortOpen`, `PortSignal` and the leg commands naming one go there.

Commands and events are the typed messages of `switch.workers.protocol`; a command that fails is answered
with its own failure event.  `emit` never blocks (it queues for the writer thread, `switch.worker.outbox`).
SIP text that reaches an event goes through `sip_text`, so that no byte a peer sent can break the encoding.
"""

from __future__ import annotations

import logging
import queue
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from switch.worker.accounts import Accounts
from switch.worker.conference import ConferenceManager
from switch.worker.dialog import fold as fold_dialog
from switch.worker.failures import leg_failure, media_failure
from switch.worker.leg import Leg, LocalAccount
from switch.worker.media import MediaManager, PlayerEof
from switch.worker.media_clock import MediaClock
from switch.worker.media_taps import TapManager
from switch.worker.pjengine import max_calls_compiled, pj
from switch.worker.pjmedia import (
    create_transport,
    endpoint_config,
    error_text,
    set_codec_priorities,
)
from switch.worker.port_legs import PortLegs, is_port_uri
from switch.worker.refer import Transfers
from switch.worker.rtpstat import add_stats, stream_stats
from switch.worker.rxguard import RETRY_AFTER_S, RxGuard
from switch.worker.siptrace import SipTracer
from switch.workers.protocol import (
    AllowRefer,
    Answer,
    Answered,
    Bridge,
    BridgeFailed,
    Command,
    Dial,
    DialFailed,
    DialogChanged,
    DtmfReceived,
    Ended,
    Event,
    Hangup,
    HoldChanged,
    Incoming,
    InviteSent,
    Log,
    MediaReady,
    PauseRecord,
    Play,
    PortOpen,
    PortSignal,
    Progress,
    Record,
    RecordAttach,
    ReferNotify,
    Ring,
    SendDtmf,
    Shutdown,
    StopPlay,
    StopRecord,
    TapClear,
    TapMark,
    TapSend,
    TapStart,
    TapStop,
    Unbridge,
    sip_text,
)
from switch.workers.sipmsg import header_param, request_uri, x_headers

log = logging.getLogger("switch.worker")

Emit = Callable[[Event], None]
Work = Command | PlayerEof  # what the pjsua thread's queue holds
LegCommand = Ring | Answer | Hangup | SendDtmf
WAKE = b"\r\n\r\n"
# pjsip's timers bound each wait by themselves and `submit` wakes the loop with a datagram, so the poll period
# only matters at rest (an idle worker's threads: switch.worker.media_clock).
_POLL_MS = 250
BIND_RETRY_SECONDS = 5.0


class MediaUnavailable(Exception):
    """A media command named a leg that has no active audio (not answered yet, or gone)."""


@dataclass(frozen=True)
class EngineConfig:
    """Where a worker listens and what it calls itself."""

    index: int
    host: str
    port: int
    log_level: int = 1
    outbound_proxy: str | None = None  # behind the SIP edge: every new request goes through it (a loose route)
    sip_trace: bool = False  # report every SIP message of the legs (`SipMessage`, switch.worker.siptrace)


class Engine:
    """Owns the pjsua2 Endpoint of one worker process; every method runs on the pjsua thread."""

    def __init__(self, config: EngineConfig, emit: Emit) -> None:
        self.config = config
        self.emit = emit
        self.commands: queue.SimpleQueue[Work] = queue.SimpleQueue()
        self._wake_sent = False  # a wake datagram is on its way and the queue not read since (see `submit`)
        self.legs: dict[str, Leg] = {}
        self.media = MediaManager(emit, self.submit)
        self.taps = TapManager(self.media, emit)  # audio to the control plane and back (switch.worker.media_taps)
        self.conferences = ConferenceManager(self.media, emit, self.submit, self._has_media)  # worker.conference
        self.transfers = Transfers()  # REFERs: switch.worker.refer
        self.ports = PortLegs(self.media, emit, self.legs)  # browsers' legs: switch.worker.port_legs
        self.guard = RxGuard()
        self.tracer = SipTracer(emit, config.log_level) if config.sip_trace else None
        self._running = False
        self.ep = pj.Endpoint()
        self.clock = MediaClock(self.ep, self._holds_media)
        self.accounts = Accounts(self, f"sip:softswitch@{config.host}:{config.port}", config.outbound_proxy,
                                 lambda: {id(leg.account_ref) for leg in self.legs.values()})
        self.capacity = 0
        self._wake_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._wake_host = "127.0.0.1" if config.host in ("0.0.0.0", "::") else config.host

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        ep = self.ep
        ep.libCreate()
        cfg = endpoint_config("softswitch", self.config.log_level)
        if self.tracer is not None:
            self.tracer.configure(cfg)
        ep.libInit(cfg)
        for kind in (pj.PJSIP_TRANSPORT_UDP, pj.PJSIP_TRANSPORT_TCP):
            self._create_transport(kind)
        ep.libStart()
        ep.audDevManager().setNullDev()  # the bridge's clock: stopped while the worker holds nothing (`clock`)
        set_codec_priorities(ep)
        self.accounts.start()
        self.capacity = max_calls_compiled()
        self.guard.install()  # malformed input stopped before pjsip acts on it (switch.worker.rxguard)
        self.guard.calibrate(self._wake_host, self.config.port, lambda: self.ep.libHandleEvents(_POLL_MS))
        self._running = True

    def _create_transport(self, kind: int) -> None:
        """Bind our SIP port, retrying for a while: a predecessor that just died may still hold it."""
        host = None if self.config.host in ("0.0.0.0", "::") else self.config.host
        deadline = time.monotonic() + BIND_RETRY_SECONDS
        while True:
            try:
                create_transport(self.ep, kind, host, self.config.port)
                return
            except pj.Error as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot bind SIP {self.config.host}:{self.config.port}: "
                                       f"{error_text(exc)}") from None
                time.sleep(0.2)

    def run(self) -> None:
        """Loop until shutdown: handle SIP events, then drain commands."""
        while self._running:
            self.ep.libHandleEvents(_POLL_MS)
            self._wake_sent = False  # before the queue is read: a command queued from now on wakes us again
            while True:
                try:
                    command = self.commands.get_nowait()
                except queue.Empty:
                    break
                self._dispatch(command)
            if self.media.retired:
                self.media.reap()
            self.clock.tick(time.monotonic())

    def _holds_media(self) -> bool:
        media = self.media
        return bool(self.legs or self.ports.legs or self.conferences.rooms or self.taps.taps or media.ports
                    or media.players or media.recordings or media.retired)

    def submit(self, command: Work) -> None:
        """From any thread: queue a command and wake the loop."""
        self.commands.put(command)
        if self._wake_sent:  # the loop has not read the queue since the last wake: it will find this one too
            return
        self._wake_sent = True
        try:
            self._wake_sock.sendto(WAKE, (self._wake_host, self.config.port))
        except OSError:  # the loop still polls every _POLL_MS; the next command tries again
            self._wake_sent = False

    def stop(self) -> None:
        """Hang up every leg, let the BYEs/CANCELs leave, and destroy the library."""
        self.conferences.close_all()  # members leave with reason `shutdown`, before their legs end
        self.ports.close_all()
        for leg in list(self.legs.values()):
            self._hangup(leg, 503 if not leg.answered else 200)
        deadline = time.monotonic() + 1.0
        while self.legs and time.monotonic() < deadline:
            self.ep.libHandleEvents(_POLL_MS)
        self.media.close_all()
        self.legs.clear()
        self.accounts.shutdown()
        self.guard.uninstall()
        self.ep.libDestroy()

    # -- commands -----------------------------------------------------------------------------
    def _dispatch(self, command: Work) -> None:
        self.clock.need()
        try:
            match command:
                case Shutdown():
                    self._running = False
                case Dial() if is_port_uri(command.uri):
                    self.ports.dial(command)
                case Dial():
                    self._dial(command)
                case PortOpen():
                    self.ports.open(command)
                case PortSignal():
                    self.ports.signal(command)
                case TapSend() if command.id in self.ports:
                    self.ports.send(command)
                case Ring() | Answer() | Hangup() | SendDtmf():
                    self._leg_command(command)
                case AllowRefer():
                    self.transfers.allow(command.leg, command.allow and command.leg in self.legs)
                case ReferNotify():
                    if not self.transfers.notify(command.leg, command.code, command.final):
                        log.info("leg %s: no transfer pending for NOTIFY %d", command.leg, command.code)
                case _:
                    self._media_command(command)
        except pj.Error as exc:  # a media command's pjsua call failed where no failure event covers it
            text = error_text(exc)
            log.warning("%s failed: %s", type(command).__name__, text)
            self.emit(Log(level="warning", message=f"{type(command).__name__} failed: {text}"))

    def _leg_command(self, command: LegCommand) -> None:
        if self.ports.leg_command(command):
            return
        leg = self.legs.get(command.leg)
        if leg is None:  # it ended: its Ended event is on its way (or gone already)
            log.info("%s for unknown or ended leg %s ignored", type(command).__name__, command.leg)
            return
        try:
            if isinstance(command, Ring):
                self._answer(leg, 180)
            elif isinstance(command, Answer):
                self._answer(leg, 200)
            elif isinstance(command, Hangup):
                self._hangup(leg, command.code)
            else:
                leg.dialDtmf(command.digits)
        except pj.Error as exc:
            error = sip_text(error_text(exc))
            log.warning("leg %s: %s failed: %s", command.leg, type(command).__name__, error)
            self.emit(leg_failure(command, error))

    def _require_media(self, *leg_ids: str) -> None:
        for leg_id in leg_ids:
            if not self._has_media(leg_id):
                raise MediaUnavailable(f"leg {leg_id} has no active audio")

    def _has_media(self, leg_id: str) -> bool:
        leg = self.legs.get(leg_id)
        return (leg is not None and leg.has_media) or self.ports.has_media(leg_id)

    def _media_command(self, command: Work) -> None:
        media = self.media
        if self.conferences.handle(command):  # conference commands, and tap/play/record ids of conferences
            return
        try:
            match command:
                case PlayerEof():
                    media.stop_play(command.id, "eof")
                case Play():
                    self._require_media(command.leg)
                    media.play(command.id, command.leg, command.path, command.loop)
                case StopPlay():
                    media.stop_play(command.id)
                case Record():
                    self._require_media(*command.legs)
                    if command.mirror is not None:
                        self._require_media(command.mirror[0])  # the mirrored leg must have audio too
                    media.record(command.id, command.base, list(command.legs), command.slots, command.mirror,
                                 command.level_ms)
                case RecordAttach():
                    self._require_media(command.leg)
                    media.attach_record(command.id, command.index, command.leg)
                case PauseRecord():
                    media.pause_record(command.id, command.paused, command.skip)
                case StopRecord():
                    media.stop_record(command.id)
                case Bridge():
                    self._require_media(command.a, command.b)
                    refusal = self.conferences.bridge_refusal(command.a, command.b)
                    if refusal is not None:  # a conference member is mixed by its room, not bridged 1:1
                        self.emit(BridgeFailed(id=command.id, a=command.a, b=command.b, error=refusal))
                    else:
                        media.bridge(command.id, command.a, command.b)
                case Unbridge():
                    media.unbridge(command.a)
                case TapStart() | TapStop() | TapSend() | TapMark() | TapClear():
                    self.taps.handle(command, self._has_media(getattr(command, "leg", "")))
                case _:
                    log.warning("unknown command %r", command)
        except MediaUnavailable as exc:
            failure = media_failure(command, str(exc))
            if failure is not None:
                self.emit(failure)

    def _dial(self, command: Dial) -> None:
        """Answered by `InviteSent`, or `DialFailed` when pjsua refuses (a bad URI, no free call slot, ...)."""
        leg_id = command.leg
        try:
            leg = Leg(self, leg_id, self.accounts.for_leg(command.auth))
            prm = pj.CallOpParam(True)
            if command.from_uri:
                prm.txOption.localUri = command.from_uri
            self.legs[leg_id] = leg
            leg.makeCall(command.uri, prm)
        except pj.Error as exc:
            self.legs.pop(leg_id, None)
            status = int(getattr(exc, "status", 0) or 0)
            self.emit(DialFailed(leg=leg_id, code=500, reason=sip_text(error_text(exc)), status=status))
            return
        ci = leg.getInfo()
        self.emit(InviteSent(leg=leg_id, call_id=sip_text(ci.callIdString), t=time.time()))
        if self.tracer is not None:
            self.tracer.bind(str(ci.callIdString), leg_id)

    def _answer(self, leg: Leg, code: int) -> None:
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        leg.answer(prm)

    def _hangup(self, leg: Leg, code: int) -> None:
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        if code == 503 and not leg.answered and leg.inbound:  # refusing a caller (draining)
            retry = pj.SipHeader()
            retry.hName, retry.hValue = "Retry-After", str(RETRY_AFTER_S)
            prm.txOption.headers.append(retry)
        leg.hangup(prm)

    # -- callbacks (pjsua thread) -------------------------------------------------------------
    def on_incoming(self, account: LocalAccount, prm: pj.OnIncomingCallParam) -> None:
        self.clock.need()
        rdata = prm.rdata
        invite = str(rdata.wholeMsg)  # read once: every read of `wholeMsg` copies the whole message out of SWIG
        if self.guard.refuse_call(prm.callId, invite):
            return  # never a leg: the control plane does not see it (the guard module's second line)
        # A CallSid-shaped id: the control plane adopts it as the call's SID, so every log line about the leg,
        # here and there, names the call (outbound legs are named by their CallSid already).
        leg_id = "CA" + secrets.token_hex(16)
        leg = Leg(self, leg_id, account, prm.callId)
        leg.inbound = True
        self.legs[leg_id] = leg
        ci = leg.getInfo()
        self.emit(Incoming(leg=leg_id, from_uri=sip_text(ci.remoteUri), to_uri=sip_text(ci.localUri),
                           request_uri=sip_text(request_uri(invite)),
                           call_id=sip_text(ci.callIdString), t=time.time(),
                           headers={sip_text(k): sip_text(v) for k, v in x_headers(invite).items()}))
        if self.tracer is not None:
            self.tracer.bind(str(ci.callIdString), leg_id)
        self._dialog_facts(leg, invite, str(rdata.srcAddress), sent=False)

    def on_invite_tsx(self, leg: Leg, tsx_state: pj.TsxStateEvent) -> None:
        """An INVITE transaction of `leg` sent or received a message: fold it into the leg's dialog facts.  What
        cannot change them is skipped before its text is read: everything once the dialog is answered, and our
        provisional responses once they carry our tag (switch.worker.dialog)."""
        dialog = leg.dialog
        if dialog is not None and dialog.answered:
            return
        if tsx_state.type == pj.PJSIP_EVENT_TX_MSG:
            if (dialog is not None and dialog.inbound and tsx_state.tsx.statusCode < 200
                    and header_param(dialog.local, "tag")):
                return
            self._dialog_facts(leg, str(tsx_state.tsx.lastTx.wholeMsg), "", sent=True)
        elif tsx_state.type == pj.PJSIP_EVENT_RX_MSG:
            rdata = tsx_state.src.rdata
            self._dialog_facts(leg, str(rdata.wholeMsg), str(rdata.srcAddress), sent=False)

    def _dialog_facts(self, leg: Leg, text: str, source: str, sent: bool) -> None:
        """Report the leg's dialog when a message changed it (switch.worker.dialog)."""
        dialog = fold_dialog(leg.dialog, text, source, sent)
        if dialog is not None and dialog != leg.dialog:
            leg.dialog = dialog
            self.emit(DialogChanged(leg=leg.leg_id, dialog=dialog))

    def on_media_state(self, leg: Leg) -> None:
        """After every SDP negotiation of the leg: report hold changes and re-make its media on its port.

        A change of direction, address or codec gives the leg a new audio port (ARCHITECTURE.md); the media
        manager re-connects players, bridges and recording taps to it.  A held leg keeps a port (pjsua makes a
        stream even for `inactive`); a leg whose audio was refused (port 0) has none, and its relations wait.
        """
        ci = leg.getInfo()
        for index, media in enumerate(ci.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            held = media.status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD
            if held != leg.held:
                leg.held = held
                self.emit(HoldChanged(leg=leg.leg_id, held=held, t=time.time()))
            port = leg.getAudioMedia(index) if media.audioConfSlot >= 0 else None
            if leg.has_media or media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.media.set_port(leg.leg_id, port)
            if media.status == pj.PJSUA_CALL_MEDIA_ACTIVE and not leg.has_media:
                leg.has_media = True
                self.emit(MediaReady(leg=leg.leg_id, t=time.time()))
            return

    def on_stream_destroyed(self, leg: Leg, index: int) -> None:
        """One of the leg's audio streams ends (hangup or media change): add its RTP figures to the leg's."""
        try:
            leg.rtp = add_stats(leg.rtp, stream_stats(leg.getStreamStat(index)))
        except pj.Error as exc:
            log.info("leg %s: no stream statistics: %s", leg.leg_id, error_text(exc))

    def on_refer(self, leg: Leg, rdata: pj.SipRxData) -> None:
        """A REFER on `leg` (in `onCallTsxState`): accepted here when the leg takes transfers, else left to pjsua,
        which asks `onCallTransferRequest` (refused).  See `switch.worker.refer`."""
        accepted = self.transfers.take(leg.leg_id, str(rdata.wholeMsg), int(rdata.pjRxData)) if leg.answered else None
        if accepted is not None:
            self.emit(accepted)

    def on_dtmf(self, leg: Leg, digit: str) -> None:
        """Report a digit, and relay it to the bridged leg: the conference bridge does not carry RFC 2833."""
        self.emit(DtmfReceived(leg=leg.leg_id, digit=sip_text(digit), t=time.time()))
        peer = self.legs.get(self.media.bridges.get(leg.leg_id, ""))
        if peer is not None:
            try:
                peer.dialDtmf(digit)
            except pj.Error as exc:
                log.info("leg %s: DTMF relay failed: %s", leg.leg_id, error_text(exc))

    def on_leg_state(self, leg: Leg) -> None:
        ci = leg.getInfo()
        state = ci.state
        now = time.time()
        if state == pj.PJSIP_INV_STATE_EARLY and ci.role == pj.PJSIP_ROLE_UAC:
            code = ci.lastStatusCode
            if code != leg.last_progress:
                leg.last_progress = code
                has_media = any(m.status == pj.PJSUA_CALL_MEDIA_ACTIVE for m in ci.media)
                self.emit(Progress(leg=leg.leg_id, code=code, reason=sip_text(ci.lastReason),
                                   sdp=bool(has_media or code == 183), t=now))
        elif state == pj.PJSIP_INV_STATE_CONFIRMED and not leg.answered:
            leg.answered = True
            self.emit(Answered(leg=leg.leg_id, code=200, t=now))
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            # Stop its media, then drop our reference now, synchronously (see module docstring).
            self.media.leg_gone(leg.leg_id)
            self.transfers.leg_gone(leg.leg_id)
            self.legs.pop(leg.leg_id, None)
            self.emit(Ended(leg=leg.leg_id, code=int(ci.lastStatusCode), reason=sip_text(ci.lastReason),
                            answered=leg.answered, t=now, rtp=leg.rtp))
