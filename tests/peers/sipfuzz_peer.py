"""A raw SIP peer on a loopback UDP socket: sends exactly the bytes a test builds, reads back what the switch sends.

The malformed-input tests of issue 13 need messages no SIP stack will send (a reason phrase that is not UTF-8, a
200 without a To tag, ``c=IN IP4 ::1``), one at a time, at a known moment of a call::

    with RawPeer() as peer:
        ...  # make the switch dial sip:bob@127.0.0.1:{peer.port}
        invite, addr = peer.expect(b"INVITE", timeout=10)
        peer.send(reply(invite, 486, b"Besetzt \\xfc", contact=peer.contact), addr)

:meth:`RawPeer.expect` answers what a far end must answer while it waits (an ACK is absorbed, a BYE, CANCEL or
OPTIONS gets 200, a CANCEL then also 487 for its INVITE), so a test only writes the interesting messages.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import time
from types import TracebackType
from typing import Self

from tests.peers.sipfuzz_messages import parse, tag_of, uri_of

__all__ = ["GOOD_SDP", "PEER_TAG", "RawPeer", "invite", "reply", "request_in_dialog", "sdp_with"]

GOOD_SDP = (b"v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            b"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
            b"a=sendrecv\r\n")
PEER_TAG = b"rawpeer1"


def sdp_with(connection: bytes = b"c=IN IP4 127.0.0.1", rtp_port: int = 40000) -> bytes:
    """The peer's SDP with its `c=` line replaced."""
    return (GOOD_SDP % rtp_port).replace(b"c=IN IP4 127.0.0.1", connection)


def _branch() -> bytes:
    return b"z9hG4bK%012x" % random.getrandbits(48)


def reply(request: bytes, code: int, reason: bytes, *, contact: bytes, tag: bytes | None = PEER_TAG,
          sdp: bytes = b"") -> bytes:
    """A response to `request` (bytes the switch sent): its Vias, From, Call-ID and CSeq; the To tag `tag`
    (None: none), or the request's own To tag when it has one."""
    _, h = parse(request)
    vias = b"".join(b"Via: %s\r\n" % v for v in h[b"via"])
    to = h[b"to"][0]
    if tag is not None and not tag_of(to):
        to += b";tag=" + tag
    head = (b"SIP/2.0 %d %s\r\n%sFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\nContact: %s\r\n"
            % (code, reason, vias, h[b"from"][0], to, h[b"call-id"][0], h[b"cseq"][0], contact))
    if sdp:
        head += b"Content-Type: application/sdp\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(sdp) + sdp


def invite(target: str, local: str, *, from_value: bytes, call_id: bytes, sdp: bytes, cseq: int = 1,
           extra: bytes = b"") -> bytes:
    """A new INVITE to `target` (host:port) for the user in `from_value`'s absence: `sip:+15550100@target`."""
    uri = b"sip:+15550100@%s" % target.encode()
    return (b"INVITE %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;rport;branch=%s\r\nMax-Forwards: 70\r\nFrom: %s\r\n"
            b"To: <%s>\r\nCall-ID: %s\r\nCSeq: %d INVITE\r\nContact: <sip:raw@%s>\r\n%s"
            b"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s"
            % (uri, local.encode(), _branch(), from_value, uri, call_id, cseq, local.encode(), extra, len(sdp), sdp))


def request_in_dialog(method: bytes, response: bytes, local: str, cseq: int) -> bytes:
    """ACK or BYE from the caller of a dialog, built from the 2xx the switch answered its INVITE with."""
    _, h = parse(response)
    target = uri_of(h[b"contact"][0])
    return (b"%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;rport;branch=%s\r\nMax-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\n"
            b"Call-ID: %s\r\nCSeq: %d %s\r\nContent-Length: 0\r\n\r\n"
            % (method, target, local.encode(), _branch(), h[b"from"][0], h[b"to"][0], h[b"call-id"][0], cseq,
               method))


class RawPeer:
    """One UDP socket on 127.0.0.1 (port `port`, or a free one); every message it sent or received is kept."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError("the raw peer only binds loopback addresses")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        self.received: list[bytes] = []
        self.sent: list[bytes] = []

    @property
    def local(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def contact(self) -> bytes:
        return b"<sip:peer@%s>" % self.local.encode()

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append(data)
        self.sock.sendto(data, addr)

    def recv(self, timeout: float) -> tuple[bytes, tuple[str, int]] | None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, addr = self.sock.recvfrom(65535)
        except TimeoutError:
            return None
        if data.strip():
            self.received.append(data)
        return data, addr

    def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        """What a far end must answer while it waits for something else."""
        method = data.split(b" ", 1)[0]
        if method in (b"BYE", b"CANCEL", b"OPTIONS"):
            self.send(reply(data, 200, b"OK", contact=self.contact), addr)
        if method == b"CANCEL":
            cancelled = next((m for m in reversed(self.received) if m.startswith(b"INVITE ")
                              and parse(m)[1][b"call-id"] == parse(data)[1][b"call-id"]), None)
            if cancelled is not None:
                self.send(reply(cancelled, 487, b"Request Terminated", contact=self.contact), addr)

    def expect(self, start: bytes, timeout: float = 10.0) -> tuple[bytes, tuple[str, int]]:
        """The next message whose start line begins with `start` (a method, or b"SIP/2.0 486"); what comes
        before it is answered as a far end must.  Raises AssertionError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = self.recv(left)
            if got is None:
                break
            data, addr = got
            if data.startswith(start):
                return data, addr
            self._answer(data, addr)
        seen = [m.split(b"\r\n", 1)[0] for m in self.received]
        raise AssertionError(f"no {start!r} in {timeout} s; received {seen}")

    def serve(self, seconds: float) -> None:
        """Answer what arrives for `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            got = self.recv(left)
            if got is None:
                return
            self._answer(*got)

    def starts(self) -> list[bytes]:
        """The start lines of everything received, in order."""
        return [m.split(b"\r\n", 1)[0] for m in self.received]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
