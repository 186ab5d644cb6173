"""Checks on what a peer sends, made before pjsip acts on it (issue 13, sections 2 and 5).

The checks are pure functions of text or raw bytes; `switch.worker.rxguard` (a pjsip module at priority 15,
ahead of the transaction layer, registered through ctypes) and the pjsua2 callbacks of `switch.worker.engine`
apply them.  They are written so that the SIP edge of issue 14 (Kamailio) can apply the same rules.

Where each input is stopped:
- REGISTER: `405 Method Not Allowed` with the endpoint's `Allow` header, stateless, in the module
  (`refuse_request`); pjsua drops a REGISTER without any answer.  Until the softphone issue's registrar.
- a new INVITE whose SDP has a `c=` line whose address is not of the family the line names (`c=IN IP4 ::1`):
  `488`, stateless, in the module, before pjsua makes a call of it (pjsip would abort in `pj_sockaddr_get_len`
  when the switch answers); `LocalAccount.onIncomingCall` checks again (`RxGuard.refuse_call`) in case the
  module runs uncalibrated.  The control plane never sees the INVITE.
- a re-INVITE or UPDATE offer with such SDP: `488` in `Leg.onCallRxReinvite` / `Leg.onCallRxOffer`.
- a 183 or 2xx to our INVITE (or to an UPDATE), an ACK or a PRACK whose SDP has such a `c=`: dropped in the
  module (`drop_message`): no pjsua2 callback runs before pjsip negotiates an answer.  The far end retransmits a
  dropped 2xx until its timer ends; the call rings on until it is cancelled or times out.
- a 2xx to INVITE without a To tag (RFC 3261 requires one): dropped in the module.  Carrying a confirmed
  dialog's Call-ID and From tag it would make pjsip abort in `pjsip_dlg_fork` (`to->tag.slen != 0`), on the
  INVITE transaction's branch or any other; no pjsua2 callback runs before the dialog layer.  A To tag inside
  the URI's angle brackets is a URI parameter and counts as none, as in pjsip (`header_tag`).
- more than 25 new INVITEs in 0.5 s (by Call-ID): `503`, stateless, in the module (`NewCallRate`): with the PyPI
  engine's select ioqueue (64 keys, a closed socket's key held ~500 ms) a storm of short calls at 100/s aborts
  pjlib (`pj_ioqueue_register_sock2`), as every call opens an RTP and an RTCP socket.
- an INVITE with `Replaces:` naming a live leg: `403` in `Leg.onCallReplaceRequest`.  The switch cannot
  honestly replace a leg (the control plane would have to move the leg's call, bridges and recordings to the new
  dialog), so it never lets pjsua answer the new INVITE on its own; the live call goes on.
- a REFER on a live leg: see `switch.worker.refer` (refused `403` unless the leg takes transfers).
- non-UTF-8 bytes in a display name, Call-ID, reason phrase or header: pjsua2 hands them over as surrogate
  escapes; every event text passes through `switch.workers.protocol.sip_text` (U+FFFD), so the store, the
  webhooks and the worker channel only ever see valid UTF-8.

Not stopped in the worker: TCP connect/close churn with no SIP at ~200 connections/s still empties the select
ioqueue (each accepted connection takes a key before any message exists, and pjsua2 has no accept hook; 100/s
is fine).  The built engine of the capacity issue (epoll, 8,192 keys) removes the cause; until then the SIP edge
of issue 14 must limit TCP connection rates (Kamailio's pike or ratelimit, or a firewall rule).  If the module
cannot find the message in `pjsip_rx_data` at start (it logs an error), the response and SDP checks are off and
only REGISTER, the `onIncomingCall` check and the Leg callbacks remain: the edge then has to drop a tagless 2xx
(`$tt` empty in `onreply_route`) and SDP with a mismatched `c=` (sdpops) itself.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

SDP_REFUSED = 488
REPLACES_REFUSED = 403
REFER_REFUSED = 403


def _family_mismatch(line: str) -> bool:
    """True when one `c=` value names a family its address does not have (or an address that is no IP)."""
    parts = line.split()
    if len(parts) < 3 or parts[0] != "IN":
        return False
    family, address = parts[1], parts[2].split("/", 1)[0]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        # A host name: pjsip resolves it; an IPv6 literal in brackets is refused by pjsip itself.
        return family == "IP4" and ":" in address
    return (family == "IP4") != (ip.version == 4)


def bad_connection_address(sdp: str) -> bool:
    """True when any `c=` line of `sdp` (session or media level) would make pjsip abort."""
    for raw in sdp.replace("\r", "\n").split("\n"):
        line = raw.strip()
        if line.startswith("c=") and _family_mismatch(line[2:]):
            return True
    return False


# -- checks on a raw message, for the pjsip module of `switch.worker.rxguard` (and the SIP edge of issue 14) ------

REGISTER_REFUSED = 405  # no registrar yet (the softphone issue): every REGISTER gets a final answer
_COMPACT = {"i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact", "l": "content-length",
            "c": "content-type"}


@dataclass(frozen=True)
class RawMessage:
    """The parts of a raw SIP message the checks need; text is Latin-1, so that any byte reads as one char."""

    method: str  # a request's method, or the CSeq method of a response
    code: int  # a response's status code, 0 for a request
    headers: dict[str, list[str]]  # lower-case full names (compact forms expanded) -> values in order
    body: str


def parse_raw(data: bytes) -> RawMessage | None:
    """Read the start line, headers and body of one SIP message (None: not a message this module reads)."""
    text = data.decode("latin-1")
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    lines = head.lstrip("\n").split("\n")
    start = lines[0].split(" ")
    headers: dict[str, list[str]] = {}
    last = ""
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and last:
            headers[last][-1] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if sep:
            last = name.strip().lower()
            last = _COMPACT.get(last, last)
            headers.setdefault(last, []).append(value.strip())
    cseq = (headers.get("cseq") or [""])[0].split()
    if start[0] == "SIP/2.0":
        if len(start) < 2 or not start[1].isdigit():
            return None
        return RawMessage(cseq[1].upper() if len(cseq) > 1 else "", int(start[1]), headers, body)
    return RawMessage(start[0].upper(), 0, headers, body)


def _parsed(data: bytes | RawMessage) -> RawMessage | None:
    """A message the caller parsed once already (the module checks each message three ways), or `data` parsed."""
    return data if isinstance(data, RawMessage) else parse_raw(data)


def header_tag(value: str) -> str:
    """The tag of a From or To value as pjsip reads it: a header parameter, so after `>` for a name-addr (a tag
    inside the brackets is a URI parameter and does not count)."""
    params = value.rsplit(">", 1)[1] if "<" in value else value
    for param in params.split(";")[1:]:
        name, _, tag = param.partition("=")
        if name.strip().lower() == "tag":
            return tag.strip()
    return ""


def refuse_request(data: bytes | RawMessage) -> int:
    """The status code to answer a request with before pjsip sees it (0: let it through).

    - REGISTER: 405 (pjsua drops a REGISTER without answering it);
    - a new INVITE (no To tag) whose SDP has a `c=` of the wrong family: 488 (pjsip aborts answering it).
    """
    message = _parsed(data)
    if message is None or message.code:
        return 0
    if message.method == "REGISTER":
        return REGISTER_REFUSED
    if message.method == "INVITE" and not header_tag((message.headers.get("to") or [""])[0]) \
            and bad_connection_address(message.body):
        return SDP_REFUSED
    return 0


def drop_message(data: bytes | RawMessage) -> str:
    """Why pjsip must never see this message (empty: let it through).

    - a 2xx to INVITE without a To tag: if it carries a confirmed dialog's Call-ID and From tag, pjsip takes it
      for a fork and aborts (`pjsip_dlg_fork`: `rdata->msg_info.to->tag.slen != 0`); RFC 3261 requires the tag;
    - a response to INVITE or UPDATE (18x with early media, 2xx), an ACK or a PRACK whose SDP has a `c=` of the
      wrong family: pjsip aborts negotiating it (`pj_sockaddr_get_len`), and no pjsua2 callback runs before.
    A dropped 2xx is retransmitted by its sender and times out: the call ends `failed` (or `no-answer`) instead
    of the worker dying with every call on it.
    """
    message = _parsed(data)
    if message is None:
        return ""
    if message.code and message.method == "INVITE" and 200 <= message.code < 300 \
            and not header_tag((message.headers.get("to") or [""])[0]):
        return "2xx to INVITE without a To tag"
    sdp_carrier = message.method in ("INVITE", "UPDATE") if message.code else message.method in ("ACK", "PRACK")
    if sdp_carrier and bad_connection_address(message.body):
        return "SDP c= address of the wrong family"
    return ""


NEW_CALLS_REFUSED = 503
NEW_CALLS_PER_WINDOW = 25  # new INVITEs admitted per window: 50 calls/s, the rate `softswitch bench` found clean
# The built engine (epoll, 8,192 handles) has no such cliff: its limit only keeps one worker from taking a whole
# storm; the SIP edge spreads calls and refuses beyond [edge] max_cps before this is reached.
NEW_CALLS_PER_WINDOW_BUILT = 250
NEW_CALLS_WINDOW = 0.5  # seconds: how long pjlib's select ioqueue keeps a closed socket's key (64 keys in all)


class NewCallRate:
    """Admits at most `limit` new INVITEs (by Call-ID: a retransmission is the same call) per `window` seconds.

    With the PyPI engine every call opens RTP and RTCP sockets, and a closed socket's key stays taken for ~500 ms;
    a storm of short calls (100/s) empties the select ioqueue's 64 keys and pjlib aborts
    (`pj_ioqueue_register_sock2`).  The worker answers INVITEs beyond the rate 503 before pjsua opens anything.
    """

    def __init__(self, limit: int = NEW_CALLS_PER_WINDOW, window: float = NEW_CALLS_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._admitted: dict[str, float] = {}  # Call-ID -> when it was first admitted, oldest first

    def seen(self, call_id: str) -> bool:
        """Whether `call_id` was admitted within the window (a retransmission, not a new call)."""
        return call_id in self._admitted

    def admit(self, call_id: str, now: float) -> bool:
        for old, when in list(self._admitted.items()):
            if now - when < self.window:
                break
            del self._admitted[old]
        if call_id in self._admitted:
            return True
        if len(self._admitted) >= self.limit:
            return False
        self._admitted[call_id] = now
        return True


def new_invite_call_id(data: bytes | RawMessage) -> str:
    """The Call-ID of a new INVITE (a request with no To tag), or "" for anything else."""
    message = _parsed(data)
    if message is None or message.code or message.method != "INVITE":
        return ""
    if header_tag((message.headers.get("to") or [""])[0]):
        return ""
    return (message.headers.get("call-id") or [""])[0] or "-"
