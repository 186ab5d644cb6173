"""A bare pjsua2 UAS, the yardstick of `softswitch bench`: `python -m switch.worker.baseline --sip H:P`.

It sets the Endpoint up like `switch.worker.engine` does (one thread, `threadCnt = 0`,
`mainThreadOnly = True`, null audio device, 8 kHz, no echo canceller, no VAD, the same codec order) and
answers every incoming call with 180 and then 200 straight from `onIncomingCall`, with no control plane,
no IPC and no bookkeeping beyond keeping each `Call` referenced until `onCallState(DISCONNECTED)`.
Whatever CPU the switch spends per call above this process's is the switch's own overhead.

It prints `baseline ready pid=N sip=H:P` on stdout once it listens and runs `libHandleEvents(10)` until
SIGTERM or SIGINT.  `--version` prints the pjsua2 library version and exits (the bench records it, and
only this package may import pjsua2).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

import pjsua2 as pj

_POLL_MS = 10
_CODEC_PRIORITY = {"PCMU/8000/1": 255, "PCMA/8000/1": 254, "telephone-event/8000/1": 253}


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


def _endpoint_config(log_level: int) -> pj.EpConfig:
    """The EpConfig of `switch.worker.engine.Engine.start`, minus the user agent string."""
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = "softswitch-baseline"
    cfg.logConfig.level = log_level
    cfg.logConfig.consoleLevel = log_level
    med = cfg.medConfig
    med.clockRate = 8000
    med.sndClockRate = 8000
    med.ecTailLen = 0
    med.noVad = True
    med.sndAutoCloseTime = -1
    return cfg


def _start(ep: pj.Endpoint, host: str, port: int, log_level: int) -> BaselineAccount:
    """Create the library, bind SIP UDP and TCP on host:port, and make the answering account."""
    ep.libCreate()
    ep.libInit(_endpoint_config(log_level))
    for kind in (pj.PJSIP_TRANSPORT_UDP, pj.PJSIP_TRANSPORT_TCP):
        tcfg = pj.TransportConfig()
        tcfg.port = port
        tcfg.boundAddress = host
        tcfg.publicAddress = host
        ep.transportCreate(kind, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()
    for codec in ep.codecEnum2():
        cid = codec.codecId
        prio = _CODEC_PRIORITY.get(cid, 100 if cid.startswith(("PCMU", "PCMA", "telephone-event")) else 0)
        ep.codecSetPriority(cid, prio)
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:baseline@{host}:{port}"
    acfg.regConfig.registrarUri = ""
    account = BaselineAccount()
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
    account = _start(ep, host, int(port), args.pj_log_level)
    print(f"baseline ready pid={os.getpid()} sip={host}:{port}", flush=True)
    while not stopping:
        ep.libHandleEvents(_POLL_MS)
    ep.hangupAllCalls()
    for _ in range(20):  # let the BYEs leave, at most 0.2 s
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
