"""The lab phone's command line, its commands on stdin, its JSON event output and its WAV recorder (see
`switch.worker.labphone`).

The phone prints one JSON object per line on stdout for every event, each
with ``"event"`` and ``"t"`` (``time.time()``)::

    {"event": "ready", "sip": "127.0.0.1:5062", "t": ...}
    {"event": "incoming", "from": "<sip:a@...>", "to": "<sip:b@...>", "call_id": "...", "t": ...}
    {"event": "calling", "uri": "sip:b@...", "call_id": "...", "t": ...}
    {"event": "ringing", "code": 180, "call_id": "...", "t": ...}             (outgoing calls)
    {"event": "answered", "call_id": "...", "t": ...}
    {"event": "dtmf", "digit": "5", "method": "rfc2833", "call_id": "...", "t": ...}
    {"event": "dtmf_sent", "digits": "123", "method": "rfc2833", "call_id": "...", "t": ...}
    {"event": "media", "state": "active"|"local_hold"|"remote_hold"|"none"|"error",
     "dir": "sendrecv"|"sendonly"|"recvonly"|"inactive", "codec": "PCMU", "call_id": "...", "t": ...}
                                                  (each SDP negotiation after the answer: re-INVITE, UPDATE)
    {"event": "command", "command": "hold", "call_id": "...", "t": ...}     (a stdin command, once sent)
    {"event": "hangup", "code": 200, "reason": "...", "duration": 3.02, "by": "local"|"remote",
     "call_id": "...", "recording": "path.wav", "t": ...}                    (recording: with --record)
    {"event": "registered", "code": 200, "reason": "OK", "expires": 300, "t": ...}   (a 2xx, expires > 0)
    {"event": "unregistered", "code": 200, "reason": "OK", "t": ...}      (a 2xx to the REGISTER with Expires: 0)
    {"event": "registration-failed", "code": 403, "reason": "Forbidden", "unregister": false, "t": ...}
                             (any other outcome: 408 no answer, 401/407 credentials refused, 403, 5xx...)
    {"event": "error", "message": "...", "t": ...}
    {"event": "exit", "reason": "calls"|"max-seconds"|"signal"|"error", "calls": N, "t": ...}

With ``--commands`` the phone also reads one command per line on stdin, for every answered call:
``hold`` (re-INVITE, sendonly; the phone stops sending its audio), ``unhold`` (re-INVITE, sendrecv),
``reinvite [CODEC]`` (a re-INVITE whose offer has only CODEC, e.g. ``PCMA``; it also unholds), ``dtmf DIGITS``
and ``hangup``.  Each is answered by a ``command`` event once its request is sent (the ``media`` event follows
with the negotiated result), or by an ``error`` event.  Three more act on the phone rather than its calls:
``call SIP-URI`` places a call (as ``--call`` does at start), ``unregister`` sends the REGISTER with Expires: 0
(``unregistered`` follows) and ``register`` registers again (``registered`` or ``registration-failed``); each
is answered by a ``command`` event (without ``call_id``) or an ``error`` event.

Registration (``--register``): the account is ``sip:USER@DOMAIN`` (the AoR: ``--user`` at the ``--register``
URI's host), it authenticates with ``--user``/``--password`` for any realm, and every request (REGISTER and
calls, which answer a 401/407 with the same credentials) goes through ``--proxy`` when given, because a lab
domain such as ``acme.sip.localhost`` resolves nowhere.  Refused credentials (a 403, or 401/407 again: pjsip
answers at most 3 fresh challenges) end in one ``registration-failed`` and pjsua does not try again by itself;
a timeout (408) or a 5xx is retried after ``--reg-retry`` seconds (default 300, so a test sees one failure).
``--sip-t1`` shortens SIP timer T1, and with it the 64*T1 after which an unanswered request fails with 408.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import queue
import tempfile
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from media.audio import write_wav
from media.tones import sine
from switch.worker.pjengine import pj
from switch.worker.pjmedia import CLOCK_RATE, FRAME_BYTES, FRAME_MS, frame_bytes

log = logging.getLogger("switch.labphone")

ANSWER_MODES = ("auto", "busy", "reject", "ignore")
CALL_COMMANDS = ("hold", "unhold", "reinvite", "dtmf", "hangup")  # act on every answered call
PHONE_COMMANDS = ("call", "register", "unregister")  # act on the phone
COMMANDS = CALL_COMMANDS + PHONE_COMMANDS
REG_RETRY_S = 300  # pjsua's own default: a failed registration is tried again this long after


# -- options ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PhoneOptions:
    """Everything the phone is told on its command line (see :func:`add_phone_arguments`)."""

    host: str = "127.0.0.1"
    port: int = 5062
    answer: str = "auto"
    answer_after: float = 0.0
    ring: bool = True
    play: str | None = None
    tone: float | None = None
    record: str | None = None
    dtmf: str | None = None
    dtmf_after: float = 1.0
    dtmf_method: str = "rfc2833"
    call: str | None = None
    hangup_after: float | None = None
    register: str | None = None
    user: str | None = None
    password: str | None = None
    proxy: str | None = None
    reg_expires: int = 300
    reg_retry: int = REG_RETRY_S
    sip_t1: int | None = None
    exit_after_calls: int | None = None
    max_seconds: float = 60.0
    pj_log_level: int = 1
    commands: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PhoneOptions:
        """Build options from the namespace produced by a parser set up with :func:`add_phone_arguments`."""
        host, sep, port = str(args.sip).rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"--sip: expected HOST:PORT, got {args.sip!r}")
        exit_after = args.exit_after_calls
        if exit_after is None and args.call:
            exit_after = 1
        register = _sip_uri(args.register, "--register") if args.register else None
        if register and not args.user:
            raise ValueError("--register needs --user (the AoR is sip:USER@DOMAIN)")
        proxy = _sip_uri(args.proxy, "--proxy") if args.proxy else None
        if proxy and ";lr" not in proxy:
            proxy += ";lr"  # a loose route: the Request-URI stays the far end's
        if args.reg_expires < 1 or args.reg_retry < 0:
            raise ValueError("--reg-expires must be at least 1 and --reg-retry at least 0")
        if args.sip_t1 is not None and not 10 <= args.sip_t1 <= 5000:
            raise ValueError(f"--sip-t1: expected 10..5000 ms, got {args.sip_t1}")
        return cls(
            host=host,
            port=int(port),
            answer=args.answer,
            answer_after=args.answer_after,
            ring=args.ring,
            play=args.play,
            tone=args.tone,
            record=args.record,
            dtmf=args.dtmf,
            dtmf_after=args.dtmf_after,
            dtmf_method=args.dtmf_method,
            call=args.call,
            hangup_after=args.hangup_after,
            register=register,
            user=args.user,
            password=args.password,
            proxy=proxy,
            reg_expires=args.reg_expires,
            reg_retry=args.reg_retry,
            sip_t1=args.sip_t1,
            exit_after_calls=exit_after,
            max_seconds=args.max_seconds,
            pj_log_level=args.pj_log_level,
            commands=args.commands,
        )


def add_phone_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the lab phone's options to ``parser`` (used by ``softswitch phone``)."""
    parser.add_argument("--sip", default="127.0.0.1:5062",
                        help="HOST:PORT to bind UDP and TCP (port 0: any free port, reported in 'ready')")
    parser.add_argument("--answer", choices=ANSWER_MODES, default="auto",
                        help="incoming calls: auto=200, busy=486, reject=603, ignore=never answer (default auto)")
    parser.add_argument("--answer-after", type=float, default=0.0, metavar="SECONDS",
                        help="delay before the final answer to an incoming call (default 0)")
    parser.add_argument("--ring", action=argparse.BooleanOptionalAction, default=True,
                        help="send 180 Ringing first to incoming calls (default on)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--play", metavar="FILE", help="WAV file to play into every call, looped")
    source.add_argument("--tone", type=float, metavar="HZ", help="play a continuous sine of HZ into every call")
    parser.add_argument("--record", metavar="FILE",
                        help="record what the far end sends as 8 kHz 16-bit mono WAV (later calls: FILE-2.wav, ...)")
    parser.add_argument("--dtmf", metavar="DIGITS", help="digits to send once a call is answered")
    parser.add_argument("--dtmf-after", type=float, default=1.0, metavar="SECONDS",
                        help="delay after the answer before sending --dtmf (default 1)")
    parser.add_argument("--dtmf-method", choices=("rfc2833", "info"), default="rfc2833",
                        help="how to send --dtmf (default rfc2833)")
    parser.add_argument("--call", metavar="SIP-URI", help="place a call to SIP-URI at start")
    parser.add_argument("--hangup-after", type=float, metavar="SECONDS",
                        help="hang up every call this long after it is answered")
    parser.add_argument("--register", metavar="URI",
                        help="REGISTER at this registrar, e.g. sip:acme.sip.localhost: the AoR and account is "
                             "sip:USER@<its host> (needs --user; with --call, the call waits for the outcome)")
    parser.add_argument("--user", help="user name (From/Contact user, and for digest authentication)")
    parser.add_argument("--password", help="password for digest authentication (any realm), also for calls (407)")
    parser.add_argument("--proxy", metavar="URI",
                        help="outbound proxy for every request, REGISTER and calls, e.g. 'sip:127.0.0.1:5060;lr' "
                             "(';lr' is added when missing): the edge, when the domain does not resolve")
    parser.add_argument("--reg-expires", type=int, default=300, metavar="SECONDS",
                        help="Expires asked for in REGISTER (default 300; the registrar may grant less)")
    parser.add_argument("--reg-retry", type=int, default=REG_RETRY_S, metavar="SECONDS",
                        help="after a registration fails with a timeout or 5xx, try again this much later "
                             "(default 300; 0: never); refused credentials (401/407/403) are never retried")
    parser.add_argument("--sip-t1", type=int, metavar="MS",
                        help="SIP timer T1 in ms (default pjsip's 500); a request with no answer fails with 408 "
                             "after 64*T1, e.g. 6.4 s with --sip-t1 100 (for tests)")
    parser.add_argument("--exit-after-calls", type=int, metavar="N",
                        help="exit once N calls have ended (default 1 with --call, else unlimited)")
    parser.add_argument("--max-seconds", type=float, default=60.0,
                        help="exit after this long whatever happens (default 60)")
    parser.add_argument("--pj-log-level", type=int, default=1, help="pjsip log level on stderr (default 1)")
    parser.add_argument("--commands", action="store_true",
                        help="read commands on stdin, one a line: hold, unhold, reinvite [CODEC], dtmf DIGITS, hangup "
                             "(answered calls); call SIP-URI, register, unregister (the phone)")


def _sip_uri(value: str, option: str) -> str:
    """``acme.sip.localhost`` -> ``sip:acme.sip.localhost``; a ``sip:``/``sips:`` URI is kept as it is."""
    value = value.strip()
    if not value:
        raise ValueError(f"{option}: empty URI")
    if value.lower().startswith(("sip:", "sips:")):
        return value
    if "@" in value:
        raise ValueError(f"{option}: expected a SIP URI such as sip:example.org, got {value!r}")
    return f"sip:{value}"


# -- events -----------------------------------------------------------------------------------------------
class EventWriter:
    """Writes one JSON object per line, flushed at once; safe to call from any thread."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: str, **fields: Any) -> None:
        record: dict[str, Any] = {"event": event, **fields, "t": time.time()}
        line = json.dumps(record, separators=(", ", ": ")) + "\n"
        with self._lock:
            try:
                self._stream.write(line)
                self._stream.flush()
            except (OSError, ValueError):  # reader gone: keep running, the phone exits by itself anyway
                log.warning("cannot write event %s", event)


# -- commands ---------------------------------------------------------------------------------------------
class CommandReader:
    """Reads command lines from a stream on a thread of its own; the phone's loop takes them with :meth:`take`.

    The thread never touches pjsua; end of input just ends the thread (the phone goes on).
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="labphone-commands", daemon=True)

    def start(self) -> CommandReader:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for line in self._stream:
                if line.strip():
                    self._lines.put(line.strip())
        except (OSError, ValueError):  # stdin closed under us: no more commands
            log.info("command input closed")

    def take(self) -> list[str]:
        """The lines read since the last call (owner thread)."""
        lines: list[str] = []
        while True:
            try:
                lines.append(self._lines.get_nowait())
            except queue.Empty:
                return lines


def parse_command(line: str) -> tuple[str, str | None]:
    """``"reinvite PCMA"`` -> ``("reinvite", "PCMA")``; ValueError for an unknown command or a missing argument."""
    name, _, arg = line.strip().partition(" ")
    name, arg = name.lower(), arg.strip()
    if name not in COMMANDS:
        raise ValueError(f"unknown command {name!r} (expected one of {', '.join(COMMANDS)})")
    if name == "dtmf" and not arg:
        raise ValueError("dtmf: which digits?")
    if name == "call" and not arg:
        raise ValueError("call: which SIP URI?")
    if name in ("hold", "unhold", "hangup", "register", "unregister") and arg:
        raise ValueError(f"{name} takes no argument")
    return name, arg or None


# -- media ------------------------------------------------------------------------------------------------
class RecorderPort(pj.AudioMediaPort):  # type: ignore[misc]
    """A sink on the conference bridge that keeps every 20 ms frame it is given, in order.

    ``onFrameReceived`` runs on the media clock thread: it only copies the bytes onto a deque (appends are
    atomic); the owner thread drains them with :meth:`take`.  Frames without audio become silence so that the
    recording keeps real time.
    """

    def __init__(self) -> None:
        super().__init__()
        self.chunks: collections.deque[bytes] = collections.deque()
        self.closed = False

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        if self.closed:
            return
        try:
            data = frame_bytes(frame) if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO else b""
        except Exception:  # never let an exception into the clock thread; keep time with silence
            data = b""
        self.chunks.append(data or bytes(FRAME_BYTES))

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        pass  # a sink only: it sends nothing

    def take(self) -> bytes:
        """Everything received since the last call (owner thread)."""
        parts: list[bytes] = []
        while True:
            try:
                parts.append(self.chunks.popleft())
            except IndexError:
                return b"".join(parts)


def prepare_audio_file(opts: PhoneOptions) -> tuple[str | None, tempfile.TemporaryDirectory[str] | None]:
    """The file the phone plays into calls (``--play``, or ``--tone`` written to a temporary directory, returned
    too for the clean-up); ``(None, None)`` for silence.  FileNotFoundError for a missing ``--play`` file."""
    if opts.play:
        if not Path(opts.play).is_file():
            raise FileNotFoundError(f"--play: no such file {opts.play!r}")
        return str(Path(opts.play).resolve()), None
    if opts.tone is None:
        return None, None
    tmpdir = tempfile.TemporaryDirectory(prefix="labphone-")
    # A whole number of cycles loops without a click (whole hertz: any whole second).  pjmedia's file
    # player leaves one silent frame at each wrap, so the file is long enough to wrap rarely.
    seconds = 60.0
    path = Path(tmpdir.name) / f"tone-{opts.tone:g}.wav"
    write_wav(path, sine(opts.tone, seconds, CLOCK_RATE), CLOCK_RATE)
    return str(path), tmpdir


class Recording:
    """A WAV file fed from a :class:`RecorderPort`; valid on disk after every write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._wav: wave.Wave_write | None = wave.open(str(path), "wb")  # noqa: SIM115 - closed in close()
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(CLOCK_RATE)
        self.port = RecorderPort()
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, CLOCK_RATE, 1, FRAME_MS * 1000, 16)
        self.port.createPort(f"rec-{path.name}", fmt)

    def flush(self) -> None:
        """Write what the port collected (wave rewrites the header's lengths on every write)."""
        data = self.port.take()
        if data and self._wav is not None:
            self._wav.writeframes(data)

    def close(self) -> None:
        """Write the rest and close the file (after the port is detached from the bridge)."""
        self.flush()
        if self._wav is not None:
            self._wav.close()
            self._wav = None
