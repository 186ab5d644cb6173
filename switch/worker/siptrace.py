"""The worker's SIP trace (`--sip-trace`, `[server] sip_trace`): every SIP message its legs send and receive.

pjsua logs each message it sends or receives, whole, at level 4 ("TX 512 bytes Request msg INVITE/cseq=1 (tdta..)
to UDP 127.0.0.1:5060:\\n<message>\\n--end msg--"), from a pjsip module next to the transports: it sees what no
pjsua2 callback shows (the ACK of a 2xx, a retransmission, the 200 to a BYE after the call's end).  With tracing
on, the worker logs at level 4 or more into a `LogWriter`: message lines become `SipMessage` events, the rest is
written to stderr as pjsua would have, up to the configured level.  With tracing off none of this is installed
and pjsua's logging is what it was (the level check in `pj_log` is all a message costs).

A message is matched to its leg by Call-ID.  The first messages of a leg come before the leg has one here (the
INVITE an outbound `makeCall` sends, an inbound INVITE and its 100 before `onIncomingCall`): they wait in
`pending` until `bind` names the Call-ID's leg, then go in order.  Messages of Call-IDs never bound (an OPTIONS
ping, a stray request) are dropped when `pending` is full.  Everything runs on the pjsua thread (pjsua2 hands a
log line from another thread to the main thread).
"""

from __future__ import annotations

import re
import sys
import time
from collections import OrderedDict
from collections.abc import Callable

from switch.worker.pjengine import pj
from switch.workers.protocol import Event, SipMessage, sip_text

TRACE_LEVEL = 4  # pjsua's message log (pjsua_core.c, logging_on_rx_msg / logging_on_tx_msg)
MAX_PENDING = 64  # Call-IDs whose messages wait for their leg
MAX_BOUND = 4096  # Call-IDs remembered (a leg's last messages may follow its end)

_MESSAGE = re.compile(r"(RX|TX) \d+ bytes .*? (?:from|to) \S+ (\S+?):\r?\n(.*?)\r?\n--end msg--", re.DOTALL)
_CALL_ID = re.compile(r"^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


def parse_message(line: str) -> tuple[str, str, str] | None:
    """(direction "sent"/"received", peer host:port, the SIP message) of a pjsua message log line, else None."""
    found = _MESSAGE.search(line)
    if found is None:
        return None
    return ("sent" if found.group(1) == "TX" else "received"), found.group(2), found.group(3)


def call_id(message: str) -> str | None:
    """The Call-ID of a SIP message (or its compact form `i`)."""
    found = _CALL_ID.search(message)
    return None if found is None else found.group(1)


class SipTracer:
    """Turns pjsua's message log into `SipMessage` events of the legs, by Call-ID."""

    def __init__(self, emit: Callable[[Event], None], log_level: int) -> None:
        self._emit = emit
        self._log_level = log_level
        self._legs: OrderedDict[str, str] = OrderedDict()  # Call-ID -> leg id
        self.pending: OrderedDict[str, list[SipMessage]] = OrderedDict()  # Call-ID -> messages before `bind`
        self.writer = _Writer(self)

    def configure(self, cfg: pj.EpConfig) -> None:
        """Route the endpoint's log through the tracer (before `libInit`)."""
        cfg.logConfig.msgLogging = True
        cfg.logConfig.level = max(self._log_level, TRACE_LEVEL)
        cfg.logConfig.consoleLevel = max(self._log_level, TRACE_LEVEL)
        cfg.logConfig.writer = self.writer

    def bind(self, sip_call_id: str, leg_id: str) -> None:
        """`sip_call_id` is `leg_id`'s: send what waited for it, and trace its messages from now on."""
        self._legs[sip_call_id] = leg_id
        while len(self._legs) > MAX_BOUND:
            self._legs.popitem(last=False)
        for waiting in self.pending.pop(sip_call_id, []):
            self._emit(SipMessage(leg=leg_id, direction=waiting.direction, peer=waiting.peer, text=waiting.text,
                                  t=waiting.t))

    def log_line(self, level: int, line: str) -> None:
        """One line of pjsua's log: a traced message, or a line for stderr (when within the configured level)."""
        parsed = parse_message(line) if level == TRACE_LEVEL else None
        if parsed is None:
            if level <= self._log_level:
                sys.stderr.write(line if line.endswith("\n") else line + "\n")
            return
        direction, peer, message = parsed
        cid = call_id(message)
        if cid is None:
            return
        leg = self._legs.get(cid)
        event = SipMessage(leg=leg or "", direction=direction, peer=sip_text(peer), text=sip_text(message),
                           t=time.time())
        if leg is not None:
            self._emit(event)
            return
        self.pending.setdefault(cid, []).append(event)
        while len(self.pending) > MAX_PENDING:
            self.pending.popitem(last=False)


class _Writer(pj.LogWriter):  # type: ignore[misc]  # a SWIG director class
    def __init__(self, tracer: SipTracer) -> None:
        super().__init__()
        self._tracer = tracer

    def write(self, entry: pj.LogEntry) -> None:
        try:
            self._tracer.log_line(int(entry.level), str(entry.msg))
        except Exception as exc:  # an exception must not unwind into pjsua's C stack
            sys.stderr.write(f"sip trace: {type(exc).__name__}: {exc}\n")
