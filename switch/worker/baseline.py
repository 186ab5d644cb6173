"""Bare pjsua2 yardsticks of `softswitch bench`: `python -m switch.worker.baseline --sip H:P [--b2bua URI]`.

It sets the Endpoint up like `switch.worker.engine` does (one thread, `threadCnt = 0`,
`mainThreadOnly = True`, null audio device, 8 kHz, no echo canceller, no VAD, the same codec order), with
no control plane, no IPC and no bookkeeping beyond keeping each `Call` referenced until
`onCallState(DISCONNECTED)`.  Whatever CPU the switch spends per call above this process's is the switch's
own overhead.  Two modes:

- UAS (default): every incoming call is answered with 180 and then 200 straight from `onIncomingCall`.
- B2BUA (`--b2bua URI`): every incoming call gets 180 at once and an outgoing call to URI (From: the
  caller's user at our address, as the switch's `<Dial>` children have); the incoming call is answered
  when the outgoing one is, and the two calls' audio is bridged both ways (`startTransmit`) once both
  have active media.  When either side ends, the other is hung up (CANCEL, BYE, or the outgoing call's
  final code to an unanswered caller).  This is the yardstick of a `<Dial>`-bridged call.

It prints `baseline ready pid=N sip=H:P mode=uas|b2bua` on stdout once it listens and runs
`libHandleEvents(10)` until SIGTERM or SIGINT.  `--version` prints the pjsua2 library version and exits
(the bench records it, and only this package may import pjsua2).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from types import FrameType

from switch.worker.pjengine import pj
from switch.worker.pjmedia import local_account_config, start_endpoint

_POLL_MS = 10


class BaselineCall(pj.Call):  # type: ignore[misc]
    """One answered call; drops its own reference from `calls` when it disconnects."""

    def __init__(self, account: pj.Account, call_id: int, calls: dict[int, BaselineCall]) -> None:
        super().__init__(account, call_id)
        self.key = call_id
        self.calls = calls

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.calls.pop(self.key, None)


class BaselineAccount(pj.Account):  # type: ignore[misc]
    """The only account: no registration; answers every INVITE 180 then 200 at once."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[int, BaselineCall] = {}
        self.answered = 0

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        call = BaselineCall(self, prm.callId, self.calls)
        self.calls[prm.callId] = call
        for code in (180, 200):
            op = pj.CallOpParam(True)
            op.statusCode = code
            call.answer(op)
        self.answered += 1


class BridgeLeg(pj.Call):  # type: ignore[misc]
    """One side of a bridged pair; its callbacks go to the owning :class:`Bridge`."""

    def __init__(self, bridge: Bridge, account: pj.Account, call_id: int = -1) -> None:
        if call_id >= 0:
            super().__init__(account, call_id)
        else:
            super().__init__(account)
        self.bridge = bridge
        self.audio: pj.AudioMedia | None = None
        self.ended = False

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        self.bridge.on_state(self)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        self.bridge.on_media(self)


class Bridge:
    """An incoming call and the outgoing call it caused, bridged once both are up."""

    def __init__(self, key: int, bridges: dict[int, Bridge]) -> None:
        self.key = key
        self.bridges = bridges
        self.inbound: BridgeLeg | None = None
        self.outbound: BridgeLeg | None = None
        self.answered = False
        self.connected = False

    def start(self, account: pj.Account, call_id: int, uri: str, local: str) -> None:
        """Ring the caller (180) and place the outgoing call, From the caller's user at `local` (host:port)."""
        self.inbound = BridgeLeg(self, account, call_id)
        ring = pj.CallOpParam(True)
        ring.statusCode = 180
        self.inbound.answer(ring)
        user = _user_of(self.inbound.getInfo().remoteUri) or "baseline"
        self.outbound = BridgeLeg(self, account)
        prm = pj.CallOpParam(True)
        prm.txOption.localUri = f"sip:{user}@{local}"
        try:
            self.outbound.makeCall(uri, prm)
        except pj.Error:
            self.outbound = None
            self._end_inbound(500)

    def _end_inbound(self, code: int) -> None:
        if self.inbound is not None and not self.inbound.ended:
            prm = pj.CallOpParam(True)
            if not self.answered:
                prm.statusCode = code if 300 <= code < 700 else 480
            with contextlib.suppress(pj.Error):
                self.inbound.hangup(prm)

    def on_state(self, leg: BridgeLeg) -> None:
        info = leg.getInfo()
        state = info.state
        if leg is self.outbound and state == pj.PJSIP_INV_STATE_CONFIRMED and not self.answered:
            self.answered = True
            if self.inbound is not None and not self.inbound.ended:
                prm = pj.CallOpParam(True)
                prm.statusCode = 200
                self.inbound.answer(prm)
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            leg.ended = True
            leg.audio = None
            if leg is self.outbound:
                self._end_inbound(int(info.lastStatusCode))
            elif self.outbound is not None and not self.outbound.ended:
                with contextlib.suppress(pj.Error):
                    self.outbound.hangup(pj.CallOpParam(True))
            if all(side is None or side.ended for side in (self.inbound, self.outbound)):
                # drop the Calls now, inside the callback: a late delete would hang up a reused slot
                self.bridges.pop(self.key, None)

    def on_media(self, leg: BridgeLeg) -> None:
        info = leg.getInfo()
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                leg.audio = leg.getAudioMedia(media.index)
                break
        inbound, outbound = self.inbound, self.outbound
        if self.connected or inbound is None or outbound is None or inbound.audio is None or outbound.audio is None:
            return
        inbound.audio.startTransmit(outbound.audio)
        outbound.audio.startTransmit(inbound.audio)
        self.connected = True


class B2buaAccount(pj.Account):  # type: ignore[misc]
    """The only account in B2BUA mode: each INVITE becomes a :class:`Bridge` to `uri`."""

    def __init__(self, uri: str, local: str) -> None:
        super().__init__()
        self.uri = uri
        self.local = local
        self.bridges: dict[int, Bridge] = {}
        self.answered = 0  # incoming calls taken (the name the UAS account uses for its count)
        self._keys = 0

    @property
    def calls(self) -> dict[int, Bridge]:
        return self.bridges

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self._keys += 1
        bridge = Bridge(self._keys, self.bridges)
        self.bridges[bridge.key] = bridge  # before anything else: a collected Call answers 603
        bridge.start(self, prm.callId, self.uri, self.local)
        self.answered += 1


def _user_of(uri: str) -> str:
    """`"x" <sip:alice@h:p;t=1>` -> `alice`."""
    inner = uri[uri.find("<") + 1: uri.rfind(">")] if "<" in uri else uri
    inner = inner.split(":", 1)[1] if ":" in inner else inner
    return inner.split("@", 1)[0].split(";", 1)[0] if "@" in inner else ""


def _start(ep: pj.Endpoint, host: str, port: int, log_level: int,
           b2bua: str | None = None) -> BaselineAccount | B2buaAccount:
    """Start the library as a media worker does (SIP UDP and TCP on host:port), and make the answering (or
    bridging) account."""
    start_endpoint(ep, "softswitch-baseline", log_level, host, port)
    acfg = local_account_config(f"sip:baseline@{host}:{port}", None if b2bua is None else host)
    account: BaselineAccount | B2buaAccount
    account = BaselineAccount() if b2bua is None else B2buaAccount(b2bua, f"{host}:{port}")
    account.create(acfg, True)
    return account


def pjsua2_version() -> str:
    """The full version string of the loaded pjsua2 library."""
    ep = pj.Endpoint()
    ep.libCreate()
    try:
        return str(ep.libVersion().full)
    finally:
        ep.libDestroy()


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; exit status 0."""
    summary = (__doc__ or "").split("\n", 1)[0]
    parser = argparse.ArgumentParser(prog="softswitch-baseline", description=summary)
    parser.add_argument("--sip", default="127.0.0.1:5090", help="HOST:PORT to bind UDP and TCP")
    parser.add_argument("--b2bua", metavar="URI", help="bridge every incoming call to a new call to URI")
    parser.add_argument("--pj-log-level", type=int, default=0)
    parser.add_argument("--version", action="store_true", help="print the pjsua2 version and exit")
    args = parser.parse_args(argv)
    if args.version:
        version = pjsua2_version()
        print(f"pjsua2 {version}", flush=True)
        return 0
    host, _, port = str(args.sip).rpartition(":")
    stopping = False

    def _stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    ep = pj.Endpoint()
    account = _start(ep, host, int(port), args.pj_log_level, args.b2bua)
    mode = "uas" if args.b2bua is None else "b2bua"
    print(f"baseline ready pid={os.getpid()} sip={host}:{port} mode={mode}", flush=True)
    while not stopping:
        ep.libHandleEvents(_POLL_MS)
    ep.hangupAllCalls()
    for _ in range(30):  # let the BYEs leave, at most 0.3 s
        if not account.calls:
            break
        ep.libHandleEvents(_POLL_MS)
    account.calls.clear()
    print(f"baseline answered {account.answered} calls", file=sys.stderr, flush=True)
    account.shutdown()
    ep.libDestroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
