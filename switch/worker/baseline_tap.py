"""Bare pjsua2 yardstick of the dual-recording bench: two calls bridged, tapped by two Python ports.

    python -m switch.worker.baseline_tap --sip 127.0.0.1:PORT --call sip:a@H:P --call sip:b@H:P

The Endpoint is set up like `switch.worker.engine` sets up a media worker (one thread, `threadCnt = 0`,
`mainThreadOnly = True`, null audio device, 8 kHz bridge, no echo canceller, no VAD, the same codec order,
`libHandleEvents(10)`), and nothing else runs in it: no IPC, no bookkeeping.  It reads one command per line
on stdin (a reader thread queues them; the pjsua thread runs them between polls, as the worker does) and
prints one JSON object per line on stdout:

- ``call``: place the two calls (From ``sip:baseline@<our address>``); once both are confirmed with active
  audio, bridge them both ways (``startTransmit``) and print ``{"event": "bridged"}``.
- ``tap``: attach one sink ``AudioMediaPort`` per call, fed by that call's incoming audio, as the worker's
  dual tap is.  Each 20 ms frame is copied out of pjsua2 with the fast copy
  (`switch.worker.pjmedia.frame_bytes`) and appended to the port's ``bytearray`` (silence for an empty
  frame): "a bare pjsua2 bridge with two Python ports".  Prints ``{"event": "tapping"}``.
- ``untap``: detach and destroy the ports; prints ``{"event": "untapped", "frames": [n0, n1], "bytes": [...]}``.
- ``quit`` (or SIGTERM, SIGINT, end of stdin): hang up, destroy the library, print ``{"event": "exit"}``.

It prints ``{"event": "ready", "pid": N, "sip": "H:P"}`` once it listens, ``{"event": "ended", ...}`` when
a call ends by itself, and ``{"event": "error", "message": ...}`` when a command fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import sys
import threading
import time
from types import FrameType
from typing import IO, Any

from switch.worker.pjengine import pj
from switch.worker.pjmedia import (
    FRAME_BYTES,
    destroy,
    error_text,
    frame_bytes,
    local_account_config,
    pcm_format,
    start_endpoint,
)

_POLL_MS = 10
_SILENCE = bytes(FRAME_BYTES)
_events: list[IO[str]] = []  # where events go: fd 1 as it was at start (pjlib's own prints go to stderr)


def _emit(event: str, **fields: Any) -> None:
    stream = _events[0] if _events else sys.stdout
    stream.write(json.dumps({"event": event, **fields, "t": time.time()}) + "\n")
    stream.flush()


class CopyPort(pj.AudioMediaPort):  # type: ignore[misc]
    """A sink port that copies every frame it receives into a bytearray (clock thread: nothing else)."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.frames = 0

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        try:
            chunk = frame_bytes(frame) if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO else b""
        except Exception:  # never raise into the clock thread
            chunk = b""
        self.data += chunk if len(chunk) == FRAME_BYTES else _SILENCE
        self.frames += 1

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        pass  # a sink only


class TapLeg(pj.Call):  # type: ignore[misc]
    """One of the two outgoing calls."""

    def __init__(self, owner: TapBridge, account: pj.Account, index: int) -> None:
        super().__init__(account)
        self.owner = owner
        self.index = index
        self.audio: pj.AudioMedia | None = None
        self.confirmed = False
        self.ended = False

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.confirmed = True
            self.owner.maybe_bridge()
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.ended = True
            self.audio = None
            self.owner.on_ended(self, int(info.lastStatusCode), str(info.lastReason))

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()  # keep the CallInfo alive while reading its media vector (SWIG)
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.audio = self.getAudioMedia(media.index)
                break
        self.owner.maybe_bridge()


class TapBridge:
    """The two calls, their bridge and (while tapping) their two copy ports; pjsua thread only."""

    def __init__(self, account: pj.Account, uris: list[str], local: str) -> None:
        self.account = account
        self.uris = uris
        self.local = local
        self.legs: list[TapLeg] = []
        self.ports: list[CopyPort] = []
        self.bridged = False

    def call(self) -> None:
        if self.legs:
            raise RuntimeError("already called")
        for index, uri in enumerate(self.uris):
            leg = TapLeg(self, self.account, index)
            self.legs.append(leg)  # referenced before makeCall: a collected Call misbehaves
            prm = pj.CallOpParam(True)
            prm.txOption.localUri = f"sip:baseline@{self.local}"
            leg.makeCall(uri, prm)

    def maybe_bridge(self) -> None:
        if self.bridged or len(self.legs) != 2:
            return
        a, b = self.legs
        if not (a.confirmed and b.confirmed) or a.audio is None or b.audio is None:
            return
        a.audio.startTransmit(b.audio)
        b.audio.startTransmit(a.audio)
        self.bridged = True
        _emit("bridged")

    def tap(self) -> None:
        if not self.bridged or self.ports:
            raise RuntimeError("not bridged, or already tapping")
        fmt = pcm_format()
        for leg in self.legs:
            port = CopyPort()
            port.createPort(f"copy-{leg.index}", fmt)
            self.ports.append(port)
        for leg, port in zip(self.legs, self.ports, strict=True):
            assert leg.audio is not None
            leg.audio.startTransmit(port)
        _emit("tapping")

    def untap(self) -> None:
        if not self.ports:
            raise RuntimeError("not tapping")
        for leg, port in zip(self.legs, self.ports, strict=True):
            if leg.audio is not None:
                with contextlib.suppress(pj.Error):
                    leg.audio.stopTransmit(port)
        frames = [port.frames for port in self.ports]
        sizes = [len(port.data) for port in self.ports]
        for port in self.ports:
            destroy(port)
        self.ports = []
        _emit("untapped", frames=frames, bytes=sizes)

    def on_ended(self, leg: TapLeg, code: int, reason: str) -> None:
        _emit("ended", leg=leg.index, code=code, reason=reason)

    def hangup(self) -> None:
        for leg in self.legs:
            if not leg.ended:
                with contextlib.suppress(pj.Error):
                    leg.hangup(pj.CallOpParam(True))


def _start(ep: pj.Endpoint, host: str, port: int, log_level: int) -> pj.Account:
    start_endpoint(ep, "softswitch-baseline-tap", log_level, host, port)
    acfg = local_account_config(f"sip:baseline@{host}:{port}", host)
    account = pj.Account()
    account.create(acfg, True)
    return account


def _read_commands(commands: queue.Queue[str]) -> None:
    """Reader thread: stdin lines onto the queue; end of input means quit."""
    for line in sys.stdin:
        if line.strip():
            commands.put(line.strip())
    commands.put("quit")


def main(argv: list[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n", 1)[0]
    parser = argparse.ArgumentParser(prog="softswitch-baseline-tap", description=summary)
    parser.add_argument("--sip", default="127.0.0.1:5094", help="HOST:PORT to bind UDP and TCP")
    parser.add_argument("--call", action="append", required=True, metavar="URI", help="a call to place (twice)")
    parser.add_argument("--pj-log-level", type=int, default=0)
    args = parser.parse_args(argv)
    if len(args.call) != 2:
        parser.error("give --call exactly twice")
    host, _, port = str(args.sip).rpartition(":")
    sys.stdout.flush()
    _events.append(os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1))
    os.dup2(2, 1)  # pjlib prints its log on C stdout: keep stdout for events
    commands: queue.Queue[str] = queue.Queue()

    def _stop(signum: int, frame: FrameType | None) -> None:
        commands.put("quit")

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    ep = pj.Endpoint()
    account = _start(ep, host, int(port), args.pj_log_level)
    bridge = TapBridge(account, list(args.call), f"{host}:{port}")
    threading.Thread(target=_read_commands, args=(commands,), name="stdin", daemon=True).start()
    _emit("ready", pid=os.getpid(), sip=f"{host}:{port}")
    actions = {"call": bridge.call, "tap": bridge.tap, "untap": bridge.untap}
    running = True
    while running:
        ep.libHandleEvents(_POLL_MS)
        while running:
            try:
                command = commands.get_nowait()
            except queue.Empty:
                break
            if command == "quit":
                running = False
            elif command in actions:
                try:
                    actions[command]()
                except (pj.Error, RuntimeError) as exc:
                    _emit("error", message=error_text(exc) if isinstance(exc, pj.Error) else str(exc))
            else:
                _emit("error", message=f"unknown command {command!r}")
    if bridge.ports:
        bridge.untap()
    bridge.hangup()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and not all(leg.ended for leg in bridge.legs):
        ep.libHandleEvents(_POLL_MS)
    bridge.legs.clear()
    account.shutdown()
    ep.libDestroy()
    _emit("exit")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
