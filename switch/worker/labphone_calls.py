"""The lab phone's calls and account (see `switch.worker.labphone`), and what it does mid-call: hold, unhold,
and a re-INVITE that offers one codec.

The account (`account_config`) is ``sip:USER@DOMAIN`` when the phone registers, with digest credentials for any
realm (used for REGISTER and for calls alike) and the outbound proxy as its route; `PhoneAccount.onRegState`
turns each registration outcome into one event (`registration_event`): ``registered`` for a 2xx that grants
expires > 0, ``unregistered`` for the 2xx to an un-REGISTER, ``registration-failed`` for anything else.
Wrong credentials never loop: pjsip's digest client gives up at once on a second 401/407 with the nonce it
answered, and after PJSIP_MAX_STALE_COUNT (3) fresh nonces when the registrar challenges again each time (as
Kamailio does); the registration then fails with that 401/407 (or the registrar's 403).  pjsua re-tries a
failed registration by itself only after a timeout, a 5xx or a 6xx (``retryIntervalSec``, ``--reg-retry``),
never after refused credentials, so a wrong password is reported once.

Hold follows RFC 3264 as pjsua does it (``Call.setHold``): a re-INVITE whose audio is ``sendonly``; unhold is a
re-INVITE with ``PJSUA_CALL_UNHOLD`` (``sendrecv``).  A phone on hold sends no audio of its own (its tone or
file is taken off the call: a real phone on hold is silent, the far end's switch plays its music), so what the
far end records of it while held is silence.

pjsua makes a new audio port for the call at each of these changes (ARCHITECTURE.md); `PhoneCall.connect_media`
is called after every SDP negotiation and makes the phone's own connections (player -> call, call -> recorder)
again on whatever port the call has now.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from switch.worker.labphone_io import EventWriter, PhoneOptions, Recording
from switch.worker.pjengine import pj
from switch.worker.pjmedia import CODEC_PRIORITY, error_text

log = logging.getLogger("switch.labphone")

# What the phone reports of a call's audio after each negotiation (the `media` event's `state`).
MEDIA_STATES = {
    pj.PJSUA_CALL_MEDIA_NONE: "none",
    pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local_hold",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote_hold",
    pj.PJSUA_CALL_MEDIA_ERROR: "error",
}
_DIRECTIONS = {
    pj.PJMEDIA_DIR_NONE: "inactive",
    pj.PJMEDIA_DIR_ENCODING: "sendonly",
    pj.PJMEDIA_DIR_DECODING: "recvonly",
    pj.PJMEDIA_DIR_ENCODING_DECODING: "sendrecv",
}
_T2_MS = 4000  # pjsip's PJSIP_T2_TIMEOUT and PJSIP_T4_TIMEOUT, kept when --sip-t1 changes T1
_T4_MS = 5000
_LIVE_MEDIA = (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_LOCAL_HOLD, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD)


def call_op(status_code: int = 0) -> pj.CallOpParam:
    """Call options for the phone's every call operation: audio only.

    pjsua 2.17 (the built engine) also offers and accepts an RFC 4103 text stream by default
    (``pjsua_call_setting_default``: ``txt_cnt = 1``); its clock ticks every 300 ms, and destroying it at each
    media change (every re-INVITE) blocks the pjsua thread for up to 300 ms.  The wheel (2.15) has no text.
    """
    prm = pj.CallOpParam(True)
    if hasattr(prm.opt, "textCount"):
        prm.opt.textCount = 0
    if status_code:
        prm.statusCode = status_code
    return prm


class Phone(Protocol):
    """What calls and the account hand their callbacks to (`switch.worker.labphone.LabPhone`)."""

    emit: EventWriter

    def on_incoming(self, prm: pj.OnIncomingCallParam) -> None: ...

    def on_call_state(self, call: PhoneCall) -> None: ...

    def on_call_media(self, call: PhoneCall) -> None: ...

    def on_registration(self, event: str) -> None: ...


class PhoneCall(pj.Call):  # type: ignore[misc]
    """One call of the phone; its callbacks only hand the event to the phone (a `LabPhone`)."""

    def __init__(self, phone: Phone, key: int, account: pj.Account, call_id: int = -1) -> None:
        if call_id >= 0:
            super().__init__(account, call_id)
        else:
            super().__init__(account)
        self.phone = phone
        self.key = key
        self.call_id = ""
        self.outgoing = call_id < 0
        self.answered_at: float | None = None
        self.last_progress = 0
        self.hung_up_locally = False
        self.audio: pj.AudioMedia | None = None
        self.player: pj.AudioMediaPlayer | None = None
        self.recording: Recording | None = None

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        try:
            self.phone.on_call_state(self)
        except Exception:
            log.exception("call %s: onCallState failed", self.call_id)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        try:
            self.phone.on_call_media(self)
        except Exception:
            log.exception("call %s: onCallMediaState failed", self.call_id)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        try:
            method = "info" if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc2833"
            self.phone.emit("dtmf", digit=prm.digit, method=method, call_id=self.call_id)
        except Exception:
            log.exception("call %s: onDtmfDigit failed", self.call_id)

    # -- media --------------------------------------------------------------------------------------
    def connect_media(self, audio_file: str | None, new_recording: Callable[[], Recording] | None) -> dict[str, Any]:
        """Make the phone's connections on the call's audio port now; return the `media` event's fields.

        The player feeds the call unless the phone holds it; the recorder hears the call in every live state
        (nothing arrives while held).  ``new_recording`` makes the call's recording the first time.
        """
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            fields: dict[str, Any] = {"state": MEDIA_STATES.get(mi.status, str(mi.status)),
                                      "dir": _DIRECTIONS.get(mi.dir, str(mi.dir))}
            if mi.status not in _LIVE_MEDIA or mi.audioConfSlot < 0:
                self.audio = None
                return fields
            with _suppress_pj(f"call {self.call_id}: stream info"):
                fields["codec"] = str(self.getStreamInfo(mi.index).codecName)
            audio = self.getAudioMedia(mi.index)
            self.audio = audio
            if audio_file is not None:
                if self.player is None:
                    self.player = pj.AudioMediaPlayer()
                    self.player.createPlayer(audio_file, 0)  # 0: loop
                if mi.status == pj.PJSUA_CALL_MEDIA_LOCAL_HOLD:
                    with _suppress_pj(f"call {self.call_id}: silence the player"):
                        self.player.stopTransmit(audio)  # a new port has no connection yet: pj.Error, fine
                else:
                    self.player.startTransmit(audio)
            if new_recording is not None:
                if self.recording is None:
                    self.recording = new_recording()
                audio.startTransmit(self.recording.port)
            return fields
        return {"state": "none", "dir": "inactive"}

    # -- mid-call changes ---------------------------------------------------------------------------
    def hold(self) -> None:
        """Send a re-INVITE with ``sendonly`` audio (pj.Error if the call cannot be re-INVITEd now)."""
        self.setHold(call_op())

    def unhold(self) -> None:
        """Send a re-INVITE with ``sendrecv`` audio."""
        prm = call_op()
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        self.reinvite(prm)

    def reinvite_with(self, ep: pj.Endpoint, codec: str | None) -> None:
        """Send a re-INVITE; with ``codec`` (``PCMA``, ``PCMU/8000``...) its offer has only that audio codec.

        pjsua builds the offer from the endpoint's codec priorities inside ``reinvite``: the other G.711 codec
        is disabled for that moment only, and the priorities are restored at once (later offers, and the
        phone's other calls, offer both again).  A re-INVITE of a held call also takes it off hold.
        """
        prm = call_op()
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        if codec is None:
            self.reinvite(prm)
            return
        wanted = codec.upper() if "/" in codec else f"{codec.upper()}/8000"
        others = [cid for cid in CODEC_PRIORITY if not cid.startswith(("telephone-event", wanted))]
        if len(others) == len(CODEC_PRIORITY) - 1:
            raise ValueError(f"unknown codec {codec!r} (the phone offers {', '.join(CODEC_PRIORITY)})")
        try:
            for cid in others:
                ep.codecSetPriority(cid, 0)
            self.reinvite(prm)
        finally:
            for cid in others:
                ep.codecSetPriority(cid, CODEC_PRIORITY[cid])


class PhoneAccount(pj.Account):  # type: ignore[misc]
    """The phone's only account: takes every incoming INVITE, and reports registrations."""

    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone
        self.unregistering = False
        """Set by :meth:`register` (False) and :meth:`unregister` (True): what the next outcome answers."""

    def register(self) -> None:
        """Send a REGISTER now (pj.Error if the account has no registrar or a REGISTER is pending)."""
        self.unregistering = False
        self.setRegistration(True)

    def unregister(self) -> None:
        """Send the REGISTER with Expires: 0 (the binding goes; pj.Error if there is none or one is pending)."""
        self.unregistering = True
        self.setRegistration(False)

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        try:
            self.phone.on_incoming(prm)
        except Exception:
            log.exception("onIncomingCall failed")

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        try:
            reason = str(prm.reason)
            if int(prm.status) != 0 and not reason:  # failed before any answer (transport, DNS...)
                reason = str(pj.Endpoint.instance().utilStrError(int(prm.status)))
            event, fields = registration_event(int(prm.code), reason, int(prm.expiration), self.unregistering)
            self.phone.emit(event, **fields)
            self.phone.on_registration(event)
        except Exception:
            log.exception("onRegState failed")


def registration_event(code: int, reason: str, expires: int, unregistering: bool) -> tuple[str, dict[str, Any]]:
    """The event for one registration outcome: ``registered`` (2xx, expires > 0), ``unregistered`` (a 2xx to the
    un-REGISTER, or one that grants nothing), else ``registration-failed`` (``unregister`` tells which REGISTER)."""
    if 200 <= code < 300:
        if expires > 0 and not unregistering:
            return "registered", {"code": code, "reason": reason, "expires": expires}
        return "unregistered", {"code": code, "reason": reason}
    return "registration-failed", {"code": code, "reason": reason, "unregister": unregistering}


def uri_host(uri: str) -> str:
    """``sip:acme.sip.localhost;transport=tcp`` -> ``acme.sip.localhost`` (a port is kept: ``127.0.0.1:5090``)."""
    rest = uri.split(":", 1)[-1].split(";", 1)[0]
    return rest.rpartition("@")[2]


def account_config(opts: PhoneOptions, port: int) -> pj.AccountConfig:
    """The phone's account: ``sip:USER@DOMAIN`` registering at ``--register`` (else ``sip:USER@HOST:PORT``, no
    registration), credentials for any realm, ``--proxy`` as the route of every request, media on the host."""
    acfg = pj.AccountConfig()
    user = opts.user or "phone"
    reg = acfg.regConfig
    if opts.register:
        acfg.idUri = f"sip:{user}@{uri_host(opts.register)}"
        reg.registrarUri = opts.register
        reg.registerOnAdd = True
        reg.timeoutSec = opts.reg_expires
        reg.retryIntervalSec = opts.reg_retry  # 0: pjsua never re-tries a failed registration
        reg.firstRetryIntervalSec = opts.reg_retry
    else:
        acfg.idUri = f"sip:{user}@{opts.host}:{port}"
        reg.registrarUri = ""
    if opts.proxy:
        acfg.sipConfig.proxies.append(opts.proxy)
    if opts.user and opts.password is not None:
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", opts.user, 0, opts.password))
    tcfg = acfg.mediaConfig.transportConfig
    tcfg.boundAddress = opts.host
    tcfg.publicAddress = opts.host
    if ":" not in opts.host:  # an IPv4 host: no look-up of the machine's own name on each call it places
        acfg.mediaConfig.ipv6Use = pj.PJSUA_IPV6_DISABLED
    return acfg


def set_sip_t1(t1_ms: int) -> None:
    """Set pjsip's transaction timers: T1 = ``t1_ms`` and the timeout (timers B and F) = 64 * T1, T2 and T4 kept
    at their defaults.  pjsua2 has no setting for them, so this calls ``pjsip_tsx_set_timers`` in the loaded
    engine through ctypes (both engines export it); call it after ``libInit``.  Transactions started later use it."""
    lib = ctypes.CDLL(pj._pjsua2.__file__)
    set_timers = lib.pjsip_tsx_set_timers
    set_timers.argtypes = [ctypes.c_uint] * 4
    set_timers.restype = None
    set_timers(t1_ms, _T2_MS, _T4_MS, 64 * t1_ms)


@contextlib.contextmanager
def _suppress_pj(what: str) -> Iterator[None]:
    """Log a pj.Error at info level instead of raising it (a connection that may already be gone)."""
    try:
        yield
    except pj.Error as exc:
        log.info("%s: %s", what, error_text(exc))


def recording_path(base: str, number: int) -> Path:
    """Where the phone's ``number``-th recording goes: ``base``, then ``base-2.wav``, ``base-3.wav``..."""
    path = Path(base)
    return path if number <= 1 else path.with_name(f"{path.stem}-{number}{path.suffix}")
