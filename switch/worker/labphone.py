"""The lab phone: a scriptable, headless SIP phone on pjsua2, run as its own process for tests and demos.

    softswitch phone --sip 127.0.0.1:5062 --answer auto --tone 1000 --record heard.wav

It answers (or refuses) calls, or places one, plays a tone or a WAV file, records what it hears from the far
end, sends RFC 2833 (or SIP INFO) digits, holds and unholds and re-INVITEs with another codec when told on
stdin (``--commands``), registers (``--register``, through ``--proxy``; ``register``/``unregister`` on stdin),
and prints one JSON object per line on stdout for every event (the list is in `switch.worker.labphone_io`; the
calls, their mid-call changes and the account are in `switch.worker.labphone_calls`).

Threading follows ARCHITECTURE.md: the main thread owns the Endpoint (``threadCnt = 0``,
``mainThreadOnly = True``) and loops on ``libHandleEvents``; timers (answer, DTMF, hang-up, exit) run
between polls, and so do the commands that a reader thread took from stdin.  Only the recorder's
``onFrameReceived`` runs on the media clock thread, and it does nothing but copy the frame's bytes (straight
from the ``std::vector``'s memory, see :func:`frame_bytes`) onto a deque that the main loop drains into a WAV
file, whose header is rewritten at each write so the file stays valid even if the phone is killed.  pjlib
logs to C stdout; fd 1 is pointed at stderr while the phone runs so that stdout carries nothing but events.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from switch.worker.labphone_calls import (
    PhoneAccount,
    PhoneCall,
    account_config,
    call_op,
    recording_path,
    set_sip_t1,
)
from switch.worker.labphone_io import (
    PHONE_COMMANDS,
    CommandReader,
    EventWriter,
    PhoneOptions,
    Recording,
    add_phone_arguments,
    parse_command,
    prepare_audio_file,
)
from switch.worker.pjengine import pj
from switch.worker.pjmedia import (
    FRAME_MS,
    create_transport,
    destroy as _destroy,
    endpoint_config,
    error_text,
    set_codec_priorities,
)

log = logging.getLogger("switch.labphone")

_POLL_MS = 20
_MEDIA_GRACE_S = 0.5  # let the clock thread finish with a disconnected port, and pjmedia deliver a queued EOF
# (switch.worker.media: pjsua2 calls a destroyed player back for one), before destroying it
_SHUTDOWN_GRACE_S = 1.5
_FINAL_CODES = {"auto": 200, "busy": 486, "reject": 603}


class LabPhone:
    """A headless SIP phone driven by :class:`PhoneOptions`; every method runs on the thread that calls run()."""

    def __init__(self, options: PhoneOptions, emit: EventWriter) -> None:
        self.options = options
        self.emit = emit
        self.ep = pj.Endpoint()
        self.account: PhoneAccount | None = None
        self.calls: dict[int, PhoneCall] = {}
        self.calls_ended = 0
        self.port = options.port
        self._keys = itertools.count(1)
        self._timers: list[tuple[float, int, Callable[[], object]]] = []
        self._timer_seq = itertools.count()
        self._retired: list[tuple[float, pj.AudioMediaPlayer | None, Recording | None]] = []
        self._recordings_made = 0
        self._stop_reason: str | None = None
        self._deadline = 0.0
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._audio_file: str | None = None
        self._started = False
        self._commands: CommandReader | None = None
        self._call_waits_for_registration = bool(options.call and options.register)

    # -- life cycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Create the endpoint, bind SIP, create the account, and say ``ready``."""
        opts = self.options
        self._deadline = time.monotonic() + opts.max_seconds
        self._audio_file, self._tmpdir = prepare_audio_file(opts)
        ep = self.ep
        ep.libCreate()
        self._started = True
        ep.libInit(endpoint_config("softswitch-labphone", opts.pj_log_level, FRAME_MS))
        if opts.sip_t1 is not None:
            set_sip_t1(opts.sip_t1)
        self._create_transports()
        ep.libStart()
        ep.audDevManager().setNullDev()
        set_codec_priorities(ep, other_g711=0)
        self.account = self._make_account()
        self.emit("ready", sip=f"{opts.host}:{self.port}", pid=os.getpid())
        if opts.commands:
            self._commands = CommandReader(sys.stdin).start()
        if opts.call and not self._call_waits_for_registration:  # else on_registration places it
            self._at(0.0, self._place_call)

    def _create_transports(self) -> None:
        """Bind UDP and TCP on one port; with port 0 the OS picks the UDP port and TCP must get the same."""
        attempts = 20 if self.options.port == 0 else 1
        for attempt in range(attempts):
            udp = self._transport(pj.PJSIP_TRANSPORT_UDP, self.options.port)
            port = int(self.ep.transportGetInfo(udp).localName.rpartition(":")[2])
            try:
                self._transport(pj.PJSIP_TRANSPORT_TCP, port)
            except pj.Error:
                if attempt + 1 >= attempts:
                    raise
                self.ep.transportClose(udp)  # that TCP port is taken: let the OS pick another
                continue
            self.port = port
            return

    def _transport(self, kind: int, port: int) -> int:
        return create_transport(self.ep, kind, self.options.host, port)

    def _make_account(self) -> PhoneAccount:
        acc = PhoneAccount(self)
        acc.create(account_config(self.options, self.port), True)
        return acc

    def request_stop(self, reason: str) -> None:
        """Ask the loop to end (first reason wins); safe from a signal handler."""
        if self._stop_reason is None:
            self._stop_reason = reason

    def run(self) -> str:
        """Loop until a stop condition; return the reason (``calls``, ``max-seconds``, ``signal``)."""
        while self._stop_reason is None:
            self.ep.libHandleEvents(self._poll_ms())
            self._run_due_timers()
            self._run_commands()
            self._service_media()
            if time.monotonic() >= self._deadline:
                self.request_stop("max-seconds")
            limit = self.options.exit_after_calls
            if limit is not None and self.calls_ended >= limit:
                self.request_stop("calls")
        return self._stop_reason or "signal"

    def shutdown(self) -> None:
        """Hang up what is left, let the BYEs/CANCELs leave, free media, destroy the library."""
        if not self._started:
            self._cleanup_files()
            return
        # Look calls up by key, never hold one in a local: a Call that outlives libDestroy() asserts in ~Call.
        for key in list(self.calls):
            self._hangup(self.calls[key])
        deadline = time.monotonic() + _SHUTDOWN_GRACE_S
        while self.calls and time.monotonic() < deadline:
            self.ep.libHandleEvents(_POLL_MS)
            self._service_media()
        for key in list(self.calls):  # the far end never answered our BYE/CANCEL
            self._retire(self.calls.pop(key))
        self._pump(3 * FRAME_MS / 1000)  # a few clock ticks for the bridge to let go of detached ports
        self._service_media(final=True)
        if self.account is not None:
            self.account.shutdown()  # sends the un-REGISTER, if registered
            self.account = None
            if self.options.register:
                self._pump(0.3)
        # Without NO_RX_MSG, libDestroy() sleeps ~1 s waiting for responses; the calls are already over.
        self.ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)
        self._started = False
        self._cleanup_files()

    def _pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ep.libHandleEvents(_POLL_MS)

    def _cleanup_files(self) -> None:
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    # -- timers -----------------------------------------------------------------------------------------
    def _at(self, delay: float, action: Callable[[], object]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + max(0.0, delay), next(self._timer_seq), action))

    def _poll_ms(self) -> int:
        if not self._timers:
            return _POLL_MS
        wait = self._timers[0][0] - time.monotonic()
        return max(0, min(_POLL_MS, int(wait * 1000)))

    def _run_due_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, action = heapq.heappop(self._timers)
            try:
                action()
            except pj.Error as exc:
                self.emit("error", message=error_text(exc))
            except Exception as exc:
                log.exception("timer action failed")
                self.emit("error", message=repr(exc))

    def _for_call(self, key: int, action: Callable[[PhoneCall], None]) -> Callable[[], None]:
        """A timer action that runs only if the call is still alive when it fires."""

        def fire() -> None:
            call = self.calls.get(key)
            if call is not None:
                action(call)

        return fire

    # -- actions ----------------------------------------------------------------------------------------
    def _place_call(self, uri: str | None = None) -> bool:
        """Call ``uri`` (default ``--call``): a ``calling`` event, or an ``error`` one (and False)."""
        assert self.account is not None
        uri = uri or self.options.call
        assert uri
        call = PhoneCall(self, next(self._keys), self.account)
        self.calls[call.key] = call
        try:
            call.makeCall(uri, call_op())
        except pj.Error as exc:
            del self.calls[call.key]
            self.calls_ended += 1
            self.emit("error", message=f"call {uri}: {error_text(exc)}")
            return False
        call.call_id = call.getInfo().callIdString
        self.emit("calling", uri=uri, call_id=call.call_id)
        return True

    def _answer(self, call: PhoneCall, code: int) -> None:
        call.answer(call_op(code))

    def _final_answer(self, call: PhoneCall) -> None:
        code = _FINAL_CODES.get(self.options.answer)
        if code is None:  # ignore: ring until the caller gives up
            return
        if code == 200:
            self._answer(call, 200)
        else:
            call.hung_up_locally = True
            call.hangup(call_op(code))

    def _hangup(self, call: PhoneCall) -> None:
        call.hung_up_locally = True
        prm = call_op()
        if not call.outgoing and call.answered_at is None:
            prm.statusCode = 480  # still ringing here: Temporarily Unavailable
        try:
            call.hangup(prm)
        except pj.Error as exc:
            log.info("call %s: hangup: %s", call.call_id, error_text(exc))

    def _send_dtmf(self, call: PhoneCall, digits: str | None = None) -> None:
        digits = digits or self.options.dtmf or ""
        if self.options.dtmf_method == "info":
            prm = pj.CallSendDtmfParam()
            prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO
            prm.digits = digits
            call.sendDtmf(prm)
        else:
            call.dialDtmf(digits)
        self.emit("dtmf_sent", digits=digits, method=self.options.dtmf_method, call_id=call.call_id)

    # -- commands from stdin ----------------------------------------------------------------------------
    def _run_commands(self) -> None:
        if self._commands is None:
            return
        for line in self._commands.take():
            try:
                name, arg = parse_command(line)
            except ValueError as exc:
                self.emit("error", message=str(exc))
                continue
            if name in PHONE_COMMANDS:
                self._command(None, name, arg)
                continue
            calls = [self.calls[key] for key in sorted(self.calls) if self.calls[key].answered_at is not None]
            if not calls:
                self.emit("error", message=f"{name}: no answered call")
            for call in calls:
                self._command(call, name, arg)

    def _command(self, call: PhoneCall | None, name: str, arg: str | None) -> None:
        """One command on ``call`` (None: on the phone: ``call``, ``register``, ``unregister``); then a
        ``command`` event, or an ``error`` event (``call`` reports its own)."""
        where = {} if call is None else {"call_id": call.call_id}
        try:
            if call is None:
                if name == "call":
                    if not self._place_call(arg):
                        return
                elif self.account is None or not self.options.register:
                    raise ValueError("the phone has no registrar (start it with --register)")
                elif name == "register":
                    self.account.register()
                else:
                    self.account.unregister()
            elif name == "hold":
                call.hold()
            elif name == "unhold":
                call.unhold()
            elif name == "reinvite":
                call.reinvite_with(self.ep, arg)
            elif name == "dtmf":
                self._send_dtmf(call, arg)
            else:
                self._hangup(call)
        except pj.Error as exc:
            self.emit("error", message=f"{name}: {error_text(exc)}", **where)
            return
        except ValueError as exc:
            self.emit("error", message=f"{name}: {exc}", **where)
            return
        self.emit("command", command=name if arg is None else f"{name} {arg}", **where)

    # -- callbacks (pjsua thread) -----------------------------------------------------------------------
    def on_incoming(self, prm: pj.OnIncomingCallParam) -> None:
        assert self.account is not None
        call = PhoneCall(self, next(self._keys), self.account, prm.callId)
        self.calls[call.key] = call  # before anything else: a collected Call answers 603
        ci = call.getInfo()
        call.call_id = ci.callIdString
        self.emit("incoming", **{"from": ci.remoteUri, "to": ci.localUri, "call_id": call.call_id})
        if self.options.ring:
            self._answer(call, 180)
        self._at(self.options.answer_after, self._for_call(call.key, self._final_answer))

    def on_registration(self, event: str) -> None:
        """After each registration outcome: ``--call`` with ``--register`` is placed after the first one."""
        if self._call_waits_for_registration:
            self._call_waits_for_registration = False
            self._at(0.0, self._place_call)

    def on_call_state(self, call: PhoneCall) -> None:
        ci = call.getInfo()
        state = ci.state
        if not call.call_id:
            call.call_id = ci.callIdString
        if state == pj.PJSIP_INV_STATE_EARLY and call.outgoing:
            code = int(ci.lastStatusCode)
            if code in (180, 183) and code != call.last_progress:
                call.last_progress = code
                self.emit("ringing", code=code, call_id=call.call_id)
        elif state == pj.PJSIP_INV_STATE_CONFIRMED and call.answered_at is None:
            call.answered_at = time.monotonic()
            self.emit("answered", call_id=call.call_id)
            if self.options.dtmf:
                self._at(self.options.dtmf_after, self._for_call(call.key, self._send_dtmf))
            if self.options.hangup_after is not None:
                self._at(self.options.hangup_after, self._for_call(call.key, self._hangup))
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            # Drop our reference now, synchronously: a late delete hangs up the next call in this slot.
            self.calls.pop(call.key, None)
            duration = time.monotonic() - call.answered_at if call.answered_at is not None else 0.0
            fields: dict[str, Any] = {
                "code": int(ci.lastStatusCode),
                "reason": str(ci.lastReason),
                "duration": round(duration, 3),
                "by": "local" if call.hung_up_locally else "remote",
                "call_id": call.call_id,
            }
            if call.recording is not None:
                fields["recording"] = str(call.recording.path)
            self._retire(call)
            self.calls_ended += 1
            self.emit("hangup", **fields)

    def on_call_media(self, call: PhoneCall) -> None:
        """After every SDP negotiation: make the call's media connections on its port now.  Those after the
        answer (re-INVITEs, UPDATEs) are reported as ``media`` events; the first one is part of ``answered``."""
        new_recording = self._new_recording if self.options.record else None
        fields = call.connect_media(self._audio_file, new_recording)
        if call.answered_at is not None:
            self.emit("media", **fields, call_id=call.call_id)

    def _new_recording(self) -> Recording:
        assert self.options.record
        self._recordings_made += 1
        return Recording(recording_path(self.options.record, self._recordings_made))

    # -- media clean-up ---------------------------------------------------------------------------------
    def _retire(self, call: PhoneCall) -> None:
        """Take a finished call's player and recorder off it; they are destroyed a few clock ticks later.

        Only the media objects are kept: the Call itself must be let go inside onCallState(DISCONNECTED).
        """
        if call.recording is not None:
            call.recording.port.closed = True
        if call.player is not None or call.recording is not None:
            self._retired.append((time.monotonic() + _MEDIA_GRACE_S, call.player, call.recording))
        call.player = None
        call.recording = None
        call.audio = None

    def _service_media(self, final: bool = False) -> None:
        for call in self.calls.values():
            if call.recording is not None:
                call.recording.flush()
        keep: list[tuple[float, pj.AudioMediaPlayer | None, Recording | None]] = []
        now = time.monotonic()
        for due, player, recording in self._retired:
            if final or now >= due:
                # The call's own bridge port went with its media, so nothing transmits any more: destroy.
                if player is not None:
                    _destroy(player)
                if recording is not None:
                    _destroy(recording.port)
                    recording.close()
            else:
                if recording is not None:
                    recording.flush()
                keep.append((due, player, recording))
        self._retired = keep


# -- entry points -----------------------------------------------------------------------------------------
def run_phone(args: argparse.Namespace) -> int:
    """Run the phone from parsed arguments (for ``softswitch phone``); return the exit status."""
    try:
        options = PhoneOptions.from_args(args)
    except ValueError as exc:
        sys.stderr.write(f"softswitch phone: {exc}\n")
        return 2
    # stdout carries events only: keep a private handle on it and point fd 1 (where pjlib prints) at stderr.
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    events_stream = os.fdopen(os.dup(saved_stdout), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    emit = EventWriter(events_stream)
    phone = LabPhone(options, emit)
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        phone.request_stop("signal")

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError):  # not the main thread: no signal handling
            previous[sig] = signal.signal(sig, on_signal)
    status = 0
    reason = "error"
    try:
        phone.start()
        reason = phone.run()
    except pj.Error as exc:
        emit("error", message=error_text(exc))
        status = 1
    except (OSError, RuntimeError) as exc:
        emit("error", message=str(exc))
        status = 1
    finally:
        try:
            phone.shutdown()
        finally:
            emit("exit", reason=reason, calls=phone.calls_ended)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            sys.stdout.flush()
            os.dup2(saved_stdout, 1)
            os.close(saved_stdout)
            events_stream.close()
    return status


def phone_main(argv: list[str] | None = None) -> int:
    """``softswitch phone ...`` as a function: parse ``argv`` and run the phone until it exits."""
    parser = argparse.ArgumentParser(prog="softswitch phone", description="A scriptable headless SIP phone.")
    add_phone_arguments(parser)
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="labphone %(levelname)s %(name)s: %(message)s")
    return run_phone(args)


if __name__ == "__main__":
    sys.exit(phone_main())
