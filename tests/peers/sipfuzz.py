"""A deterministic corpus of malformed SIP messages, and a bounded loopback sender for it (issue 13, section 2).

Every message mutates a real one (an INVITE with SDP, a re-INVITE, BYE, CANCEL, ACK, OPTIONS, REGISTER, or a
180, 183 with SDP, 200 with SDP, 486: :mod:`tests.peers.sipfuzz_messages`) in one way named by its ``kind``
(:mod:`tests.peers.sipfuzz_mutations`, :mod:`tests.peers.sipfuzz_sdp`), or is random bytes::

    messages = corpus(seed=1, port=sip_port, via_port=my_port)        # >= 1,000 Fuzzed, the same bytes every run
    report = send_corpus(messages, "127.0.0.1", sip_port, local_port=my_port)

A test that holds a live dialog passes it as ``dialog=`` (for an outbound call, read it from the INVITE the
switch sent with :func:`dialog_from_invite`): the kinds whose ``Kind.aims`` is true (SDP, non-UTF-8, wrong tags
and CSeq, ``200-no-to-tag``, ``forked-200``, ``replaces``) then reuse its Call-ID and tags in re-INVITEs, in-dialog
requests and responses, which carry the switch's Via so that they land in its INVITE transaction.  Every other
message gets a made-up dialog that the switch does not know (see :class:`Kind` for why).  No message ends a
dialog on purpose: a BYE or CANCEL carries a fresh Call-ID, a wrong tag or a CSeq that cannot parse, and
in-dialog requests carry the dialog's own far-end Contact so that its target never moves.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from tests.peers import sipfuzz_mutations as mut, sipfuzz_sdp as sdp
from tests.peers.sipfuzz_messages import (
    ALL,
    BASES,
    IN_DIALOG,
    RESPONSES,
    WITH_SDP,
    Ctx,
    Dialog,
    dialog_from_invite,
    made_up_dialog,
    parse,
    uri_of,
)

__all__ = ["KINDS", "Dialog", "Fuzzed", "Kind", "SendReport", "answer_for", "corpus", "dialog_from_invite",
           "send_corpus"]

UDP_MAX = 65507  # the largest datagram: a longer message can only go over TCP


@dataclass(frozen=True)
class Fuzzed:
    """One malformed message: how it was made (``kind``, mutating ``base``), where it can go, its bytes.

    ``transport`` is ``"udp"`` (only meaningful as a datagram: empty), ``"tcp"`` (longer than a datagram) or
    ``"any"``.
    """

    kind: str
    transport: str
    data: bytes
    base: str


class Kind(NamedTuple):
    """A kind of malformed message: does it aim at the caller's dialog, which bases it mutates (one message each
    per round), how.

    Only kinds whose messages stay answerable aim at a live dialog: a re-INVITE with a broken Via or framing that
    pjsip accepts but cannot answer holds the dialog's INVITE transaction, and every later re-INVITE gets 500
    for ~32 s, so such kinds get a made-up dialog each (and test the 481 paths).
    """

    aims: bool
    bases: tuple[str, ...]
    mutate: mut.Mutation


KINDS: dict[str, Kind] = {
    "random-bytes": Kind(False, ("none",) * 3, mut.random_bytes),
    "random-text": Kind(False, ("none",) * 3, mut.random_text),
    "flip-bytes": Kind(False, ALL, mut.flip_bytes),
    "truncate": Kind(False, ALL, mut.truncate),
    "missing-header": Kind(False, ALL, mut.missing_header),
    "duplicate-header": Kind(False, ALL, mut.duplicate_header),
    "content-length-big": Kind(False, ALL, mut.content_length(None, (1, 10000))),
    "content-length-small": Kind(False, ALL, mut.content_length(None, (-50, 0))),
    "content-length-negative": Kind(False, ALL, mut.content_length((b"-1", b"-100000", b"-0", b"- 5"), None)),
    "content-length-nan": Kind(False, ALL, mut.content_length(
        (b"abc", b"", b"1e3", b"0x10", b"99999999999999999999", b"12 34", b"+5", b"\xff"), None)),
    "huge-header": Kind(False, ALL, mut.huge_header),
    "many-headers": Kind(False, ALL, mut.many_headers),
    "via-no-branch": Kind(False, ALL, mut.via_no_branch),
    "via-bad-host": Kind(False, ALL, mut.via_bad_host),
    "via-ipv6": Kind(False, ALL, mut.via_ipv6),
    "via-huge": Kind(False, ALL, mut.via_huge),
    "bad-start-line": Kind(False, ALL, mut.bad_start_line),
    "bad-uri": Kind(False, ALL, mut.bad_uri),
    "line-endings": Kind(False, ALL, mut.line_endings),
    "nul-bytes": Kind(False, ALL, mut.nul_bytes),
    "non-utf8-display": Kind(True, ALL, mut.non_utf8_display),
    "non-utf8-call-id": Kind(False, ALL, mut.non_utf8_call_id),
    "non-utf8-header": Kind(True, ALL, mut.non_utf8_header),
    "non-utf8-reason": Kind(True, RESPONSES, mut.non_utf8_reason),
    "non-utf8-sdp": Kind(True, WITH_SDP, sdp.non_utf8_sdp),
    "sdp-missing-v": Kind(True, WITH_SDP, sdp.sdp_drop(b"v=")),
    "sdp-missing-o": Kind(True, WITH_SDP, sdp.sdp_drop(b"o=")),
    "sdp-missing-c": Kind(True, WITH_SDP, sdp.sdp_drop(b"c=")),
    "sdp-missing-m": Kind(True, WITH_SDP, sdp.sdp_drop(b"m=")),
    "sdp-c-ip4-ipv6-address": Kind(True, WITH_SDP, sdp.sdp_connection(sdp.SDP_C_IP4_V6)),
    "sdp-c-ip6-ipv4-address": Kind(True, WITH_SDP, sdp.sdp_connection(sdp.SDP_C_IP6_V4)),
    "sdp-bad-c": Kind(True, WITH_SDP, sdp.sdp_connection(sdp.SDP_C_BAD)),
    "sdp-bad-port": Kind(True, WITH_SDP, sdp.sdp_media(sdp.SDP_BAD_PORTS)),
    "sdp-no-codecs": Kind(True, WITH_SDP, sdp.sdp_media(sdp.SDP_NO_CODECS)),
    "sdp-bad-attribute": Kind(True, WITH_SDP, sdp.sdp_bad_attribute),
    "sdp-huge": Kind(True, WITH_SDP, sdp.sdp_huge),
    "sdp-garbage": Kind(True, WITH_SDP, sdp.sdp_garbage),
    "wrong-to-tag": Kind(True, IN_DIALOG, mut.wrong_tag(b"To")),
    "wrong-from-tag": Kind(True, IN_DIALOG, mut.wrong_tag(b"From")),
    "wrong-cseq": Kind(True, ALL, mut.wrong_cseq),
    "200-no-to-tag": Kind(True, ("200",), mut.no_to_tag_200),
    "forked-200": Kind(True, ("200",), mut.forked_200),
    "replaces": Kind(True, ("INVITE",), mut.replaces),
}


def corpus(
    seed: int = 0, count: int = 1200, *, host: str = "127.0.0.1", port: int = 5060, via_host: str = "127.0.0.1",
    via_port: int = 5099, number: str = "+15550100", dialog: Dialog | None = None,
) -> list[Fuzzed]:
    """``count`` malformed messages, the same for the same arguments: rounds of every kind on each of its bases.

    ``host:port`` is where the Request-URIs point (the switch), ``via_host:via_port`` where its answers go (the
    sender's socket), ``number`` the user of new INVITEs' Request-URI.  ``count`` of at least one round (~300)
    holds every kind.
    """
    rng = random.Random(seed)
    counter = [0]
    made: list[Fuzzed] = []
    while len(made) < count:
        for kind, (aims, bases, mutate) in KINDS.items():
            for base in bases:
                aim = dialog if dialog is not None and aims else made_up_dialog(
                    rng, via_host.encode(), via_port, host.encode(), port)
                ctx = Ctx(rng, aim, host.encode(), port, via_host.encode(), via_port, number.encode(), counter)
                out = mutate(ctx, BASES[base](ctx), base)
                data = out if isinstance(out, bytes) else out.render()
                hint = "udp" if not data else "tcp" if len(data) > UDP_MAX else "any"
                made.append(Fuzzed(kind, hint, data, base))
    return made[:count]


# -- sending ------------------------------------------------------------------------------------------------------

@dataclass
class SendReport:
    """What :func:`send_corpus` did; ``stopped`` says why it ended early ("count", "deadline", "stop"), if it did."""

    udp: int = 0
    tcp: int = 0
    pipelined: int = 0  # messages sent back to back on shared TCP connections
    refused: int = 0  # TCP connections refused: nothing listens (a dead worker)
    reset: int = 0  # TCP connections closed under us
    responses: int = 0  # SIP messages the switch sent back
    answered: int = 0  # 2xx to an INVITE: ACKed, then hung up unless it is the kept dialog
    stopped: str = ""


def answer_for(data: bytes, local: str, keep_call_id: bytes = b"", report: SendReport | None = None) -> list[bytes]:
    """What to send back for one message from the switch: ACK a final response to an INVITE (and hang up a 2xx
    with a BYE unless it is the kept dialog), 200 a BYE or OPTIONS.  Unanswered, the switch would retransmit for
    32 s, and an INVITE transaction left open there answers every later re-INVITE of its dialog with 500."""
    report = report if report is not None else SendReport()
    try:
        start, headers = parse(data)
        call_id, cseq = headers[b"call-id"][0], headers[b"cseq"][0].split()
        report.responses += 1
        if start.startswith(b"SIP/2.0 ") and start[8:9] != b"1" and cseq[1] == b"INVITE":
            target = uri_of(headers[b"contact"][0]) if b"contact" in headers else b"sip:" + local.encode()
            common = b"Max-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\n" % (
                headers[b"from"][0], headers[b"to"][0], call_id)
            if start[8:9] != b"2":  # a non-2xx is ACKed in its own transaction: the same Via
                via = headers[b"via"][0].split(b",")[0]
                return [b"ACK %s SIP/2.0\r\nVia: %s\r\n%sCSeq: %s ACK\r\nContent-Length: 0\r\n\r\n"
                        % (target, via, common, cseq[0])]
            report.answered += 1
            methods = [(b"ACK", int(cseq[0]))] + ([] if call_id == keep_call_id else [(b"BYE", int(cseq[0]) + 1)])
            return [b"%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;rport;branch=z9hG4bK%x\r\n%sCSeq: %d %s\r\n"
                    b"Content-Length: 0\r\n\r\n" % (method, target, local.encode(), random.getrandbits(48), common,
                                                   number, method) for method, number in methods]
        if start.split(b" ")[0] in (b"BYE", b"OPTIONS"):
            vias = b"".join(b"Via: %s\r\n" % v for v in headers[b"via"])
            return [b"SIP/2.0 200 OK\r\n%sFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n"
                    % (vias, headers[b"from"][0], headers[b"to"][0], call_id, b" ".join(cseq))]
    except (KeyError, IndexError, ValueError):
        return []  # not a message we can answer (the switch only sends well-formed ones)
    return []


def _frames(buffer: bytearray) -> list[bytes]:
    """Cut whole SIP messages off the front of a TCP stream buffer."""
    out = []
    while (end := buffer.find(b"\r\n\r\n")) >= 0:
        _, headers = parse(bytes(buffer[:end]))
        length = (headers.get(b"content-length") or [b"0"])[0]
        size = end + 4 + (int(length) if length.isdigit() else 0)
        if len(buffer) < size:
            break
        out.append(bytes(buffer[:size]))
        del buffer[:size]
    return out


def send_corpus(
    messages: Sequence[Fuzzed], host: str, port: int, *, udp: bool = True, tcp: bool = True, local_port: int = 0,
    udp_interval: float = 0.005, tcp_interval: float = 0.02, tcp_linger: float = 0.2, pipelined: int = 4,
    pipeline_size: int = 8, max_messages: int = 5000, max_seconds: float = 90.0, settle: float = 0.5,
    keep_call_id: bytes = b"", stop: Callable[[], bool] | None = None,
) -> SendReport:
    """Send ``messages`` to ``host:port`` (a loopback address) over UDP, then over TCP one connection each, then
    ``pipelined`` TCP connections with ``pipeline_size`` messages back to back; paced, and bounded by
    ``max_messages`` and ``max_seconds``.  A 2xx to an INVITE is ACKed, then hung up with a BYE unless its
    Call-ID is ``keep_call_id`` (a live dialog aimed at); BYE and OPTIONS from the switch get 200.  TCP waits
    up to ``tcp_linger`` for the final response of an INVITE.  ``stop()`` is asked before each message
    (e.g. "has the worker died?").  The UDP socket binds ``local_port`` (give the corpus's ``via_port``).

    The pacing is gentle on purpose.  With the PyPI engine (select ioqueue, 64 handles, a closed socket held
    ~500 ms) TCP connect/close churn with no SIP aborts a worker somewhere between 120 and 200 connections/s
    (``pj_ioqueue_register_sock2``), and so does a run of short calls (each answered INVITE opens RTP and RTCP
    sockets): 20 ms between TCP connections and 5 ms between datagrams stay well below that.  The engine has
    4 call slots: INVITEs that the switch answers are hung up at once so that later ones reach the SDP code.
    """
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"sipfuzz only sends to loopback addresses, not {host}")
    report = SendReport()
    deadline = time.monotonic() + max_seconds
    budget = [max_messages]

    def go_on() -> bool:
        if budget[0] <= 0 or time.monotonic() > deadline:
            report.stopped = report.stopped or ("count" if budget[0] <= 0 else "deadline")
            return False
        if stop is not None and stop():
            report.stopped = "stop"
            return False
        budget[0] -= 1
        return True

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as usock:
        usock.bind((host, local_port))
        usock.setblocking(False)
        local = "{}:{}".format(*usock.getsockname()[:2])

        def drain_udp() -> None:
            while True:
                try:
                    data, addr = usock.recvfrom(UDP_MAX)
                except BlockingIOError:
                    return
                for answer in answer_for(data, local, keep_call_id, report):
                    usock.sendto(answer, addr)

        for fuzzed in (m for m in messages if udp and m.transport != "tcp"):
            if not go_on():
                break
            usock.sendto(fuzzed.data, (host, port))
            report.udp += 1
            drain_udp()
            time.sleep(udp_interval)
        streams = [[m] for m in messages if tcp and m.transport != "udp"]
        step = max(1, len(messages) // max(1, pipelined))
        streams += [list(messages[i:i + pipeline_size]) for i in range(0, step * pipelined, step)] if tcp else []
        for stream in streams:
            if report.stopped or not go_on():
                break
            _send_tcp(stream, host, port, tcp_linger, local, keep_call_id, report)
            drain_udp()
            time.sleep(tcp_interval)
        end = time.monotonic() + settle
        while time.monotonic() < end:
            drain_udp()
            time.sleep(0.01)
    return report


def _send_tcp(stream: list[Fuzzed], host: str, port: int, linger: float, local: str, keep_call_id: bytes,
              report: SendReport) -> None:
    """One TCP connection carrying ``stream``; waits for an INVITE's final response (ACKing a 2xx) if one was sent."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as conn:
            conn.sendall(b"".join(m.data for m in stream))
            if len(stream) > 1:
                report.pipelined += len(stream)
            else:
                report.tcp += 1
            if not any(m.base in ("INVITE", "re-INVITE") for m in stream):
                return
            buffer = bytearray()
            end = time.monotonic() + linger
            while (left := end - time.monotonic()) > 0:
                conn.settimeout(left)
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    return
                if not chunk:
                    return
                buffer += chunk
                for frame in _frames(buffer):
                    for answer in answer_for(frame, local, keep_call_id, report):
                        conn.sendall(answer)
                    if frame.startswith(b"SIP/2.0 ") and frame[8:9] != b"1":
                        return
    except ConnectionRefusedError:
        report.refused += 1
    except OSError:
        report.reset += 1
