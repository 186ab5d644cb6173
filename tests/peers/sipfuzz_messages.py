"""The real SIP messages that :mod:`tests.peers.sipfuzz` mutates, and the dialog they may aim at.

A :class:`Message` keeps its start line, ordered headers and SDP lines apart so that a mutation can drop, repeat
or rewrite one of them; :meth:`Message.render` writes the bytes, with a true Content-Length unless a mutation set
one.  :func:`dialog_from_invite` reads a live outbound dialog out of the INVITE the switch sent, so that a test
can aim in-dialog requests and responses at it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

CRLF = b"\r\n"

# Not UTF-8: a lone 0xff, a reversed BOM, a truncated sequence, a lone continuation byte, an overlong '/', a
# UTF-16 surrogate, a five-byte form, Latin-1 text.
NON_UTF8 = (b"\xff", b"\xfe\xff", b"\xc3\x28", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
            b"caf\xe9", b"\xe2\x28\xa1", b"M\xfcller")


@dataclass(frozen=True)
class Dialog:
    """A dialog to aim at, seen from the fuzzer's side (the far end); ``remote_*`` is the switch's side."""

    call_id: bytes
    local_uri: bytes
    local_tag: bytes
    remote_uri: bytes
    remote_tag: bytes
    remote_target: bytes  # Request-URI of in-dialog requests: the switch's Contact
    local_contact: bytes  # Contact of in-dialog requests: the far end's real one, so the target never moves
    cseq: int = 1  # the last CSeq the far end used
    invite_cseq: int = 1  # the CSeq of the switch's INVITE, for responses
    invite_via: bytes = b""  # the switch's top Via: responses that carry it land in its INVITE transaction


@dataclass
class Message:
    """A SIP message being mutated: start line, ordered headers, SDP lines or a raw body."""

    start: bytes
    headers: list[tuple[bytes, bytes]]
    sdp: list[bytes] | None = None
    body: bytes = b""
    content_length: bytes | None = None  # None: the payload's true length
    eol: bytes = CRLF

    def payload(self) -> bytes:
        return self.body if self.sdp is None else CRLF.join(self.sdp) + CRLF

    def render(self) -> bytes:
        payload = self.payload()
        length = str(len(payload)).encode() if self.content_length is None else self.content_length
        lines = [self.start, *(name + b": " + value for name, value in self.headers)]
        if self.content_length != b"<none>":
            lines.append(b"Content-Length: " + length)
        return self.eol.join(lines) + self.eol + self.eol + payload

    def index(self, name: bytes) -> int:
        """The position of the first header called ``name`` (case-insensitive), or -1."""
        return next((i for i, (n, _) in enumerate(self.headers) if n.lower() == name.lower()), -1)

    def get(self, name: bytes) -> bytes:
        i = self.index(name)
        return self.headers[i][1] if i >= 0 else b""

    def set(self, name: bytes, value: bytes) -> None:
        i = self.index(name)
        if i >= 0:
            self.headers[i] = (self.headers[i][0], value)
        else:
            self.headers.append((name, value))


@dataclass
class Ctx:
    """What a base or a mutation builds with: the seeded random source, the dialog, the addresses."""

    rng: random.Random
    dialog: Dialog
    host: bytes
    port: int
    via_host: bytes
    via_port: int
    number: bytes  # the Request-URI user of new INVITEs
    counter: list[int] = field(default_factory=lambda: [0])  # shared by a whole corpus

    def seq(self) -> int:
        """A number that grows through the corpus: unique tokens, and in-dialog CSeqs that rise in sending order."""
        self.counter[0] += 1
        return self.counter[0]

    def token(self, n: int = 10) -> bytes:
        return b"%x%s" % (self.seq(), bytes(self.rng.choice(b"abcdefghijkmnopqrstuvwxyz0123456789") for _ in range(n)))

    def pick(self, options: tuple[bytes, ...] | list[bytes]) -> bytes:
        return options[self.rng.randrange(len(options))]

    def bad(self) -> bytes:
        """A few bytes that are not UTF-8."""
        return self.pick(NON_UTF8)

    def via(self, branch: bytes | None = None) -> bytes:
        return b"SIP/2.0/UDP %s:%d;rport;branch=z9hG4bK%s" % (self.via_host, self.via_port, branch or self.token())

    def sdp(self) -> list[bytes]:
        port = self.rng.randrange(10000, 20000, 2)
        session = self.rng.randrange(1, 2**31)
        return [b"v=0", b"o=fuzz %d %d IN IP4 127.0.0.1" % (session, session), b"s=sipfuzz",
                b"c=IN IP4 127.0.0.1", b"t=0 0", b"m=audio %d RTP/AVP 0 8 101" % port, b"a=rtpmap:0 PCMU/8000",
                b"a=rtpmap:8 PCMA/8000", b"a=rtpmap:101 telephone-event/8000", b"a=fmtp:101 0-16", b"a=sendrecv"]


def made_up_dialog(rng: random.Random, via_host: bytes, via_port: int, host: bytes, port: int) -> Dialog:
    """A dialog no switch knows: in-dialog messages aimed at it test the 481 paths."""
    tag = b"%08x" % rng.getrandbits(32)
    return Dialog(
        call_id=b"%016x@sipfuzz" % rng.getrandbits(64), local_uri=b"<sip:+15550199@%s>" % via_host,
        local_tag=tag, remote_uri=b"<sip:+15550100@%s>" % host, remote_tag=b"%08x" % rng.getrandbits(32),
        remote_target=b"sip:%s:%d" % (host, port), local_contact=b"<sip:fuzz@%s:%d>" % (via_host, via_port),
        cseq=rng.randrange(2, 100), invite_cseq=rng.randrange(1, 100),
    )


# -- the real messages mutated ------------------------------------------------------------------------------------

def request(ctx: Ctx, method: bytes, *, in_dialog: bool, sdp: bool) -> Message:
    d = ctx.dialog
    if in_dialog:
        uri, contact, call_id = d.remote_target, d.local_contact, d.call_id
        from_v, to_v = d.local_uri + b";tag=" + d.local_tag, d.remote_uri + b";tag=" + d.remote_tag
        cseq = d.cseq + ctx.seq()
    else:
        uri = b"sip:%s@%s:%d" % (ctx.number, ctx.host, ctx.port)
        contact = b"<sip:fuzz@%s:%d>" % (ctx.via_host, ctx.via_port)
        from_v = b'"Fuzz Caller" <sip:+15550199@%s>;tag=%s' % (ctx.via_host, ctx.token(8))
        to_v, call_id, cseq = b"<%s>" % uri, ctx.token(16) + b"@sipfuzz", ctx.rng.randrange(1, 1000)
    if method == b"ACK" and in_dialog:
        cseq = d.cseq
    if method == b"REGISTER":
        uri, to_v = b"sip:%s:%d" % (ctx.host, ctx.port), b"<sip:fuzz@%s>" % ctx.host
    headers = [(b"Via", ctx.via()), (b"Max-Forwards", b"70"), (b"From", from_v), (b"To", to_v),
               (b"Call-ID", call_id), (b"CSeq", b"%d %s" % (cseq, method)), (b"Contact", contact),
               (b"User-Agent", b"sipfuzz"), (b"Subject", b"fuzz")]
    if method in (b"INVITE", b"OPTIONS"):
        headers.append((b"Allow", b"INVITE, ACK, CANCEL, BYE, OPTIONS"))
    if method == b"REGISTER":
        headers.append((b"Expires", b"60"))
    message = Message(method + b" " + uri + b" SIP/2.0", headers)
    if sdp:
        message.headers.append((b"Content-Type", b"application/sdp"))
        message.sdp = ctx.sdp()
    return message


def response(ctx: Ctx, code: int, reason: bytes, *, sdp: bool) -> Message:
    d = ctx.dialog
    via = d.invite_via if d.invite_via else ctx.via()
    headers = [(b"Via", via), (b"From", d.remote_uri + b";tag=" + d.remote_tag),
               (b"To", d.local_uri + b";tag=" + d.local_tag), (b"Call-ID", d.call_id),
               (b"CSeq", b"%d INVITE" % d.invite_cseq), (b"Contact", d.local_contact), (b"Server", b"sipfuzz")]
    message = Message(b"SIP/2.0 %d %s" % (code, reason), headers)
    if sdp:
        message.headers.append((b"Content-Type", b"application/sdp"))
        message.sdp = ctx.sdp()
    return message


BaseBuilder = Callable[[Ctx], Message]
BASES: dict[str, BaseBuilder] = {
    "INVITE": lambda c: request(c, b"INVITE", in_dialog=False, sdp=True),
    "re-INVITE": lambda c: request(c, b"INVITE", in_dialog=True, sdp=True),
    "BYE": lambda c: request(c, b"BYE", in_dialog=False, sdp=False),
    "CANCEL": lambda c: request(c, b"CANCEL", in_dialog=False, sdp=False),
    "ACK": lambda c: request(c, b"ACK", in_dialog=True, sdp=False),
    "OPTIONS": lambda c: request(c, b"OPTIONS", in_dialog=False, sdp=False),
    "REGISTER": lambda c: request(c, b"REGISTER", in_dialog=False, sdp=False),
    "180": lambda c: response(c, 180, b"Ringing", sdp=False),
    "183": lambda c: response(c, 183, b"Session Progress", sdp=True),
    "200": lambda c: response(c, 200, b"OK", sdp=True),
    "486": lambda c: response(c, 486, b"Busy Here", sdp=False),
    "none": lambda c: Message(b"", []),
}
ALL = ("INVITE", "re-INVITE", "BYE", "CANCEL", "ACK", "OPTIONS", "REGISTER", "180", "183", "200", "486")
RESPONSES = ("180", "183", "200", "486")
WITH_SDP = ("INVITE", "re-INVITE", "183", "200")
IN_DIALOG = ("re-INVITE", "BYE", "ACK", "CANCEL")



# -- reading messages back (the switch's INVITE, its responses) --------------------------------------------------

COMPACT = {b"i": b"call-id", b"f": b"from", b"t": b"to", b"v": b"via", b"m": b"contact", b"l": b"content-length",
           b"c": b"content-type"}


def parse(data: bytes) -> tuple[bytes, dict[bytes, list[bytes]]]:
    """The start line and the headers (lower-case full names, in order) of a well-formed SIP message."""
    lines = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    headers: dict[bytes, list[bytes]] = {}
    last = b""
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and last:
            headers[last][-1] += b" " + line.strip()
            continue
        name, sep, value = line.partition(b":")
        if sep:
            last = COMPACT.get(name.strip().lower(), name.strip().lower())
            headers.setdefault(last, []).append(value.strip())
    return lines[0], headers


def tag_of(value: bytes) -> bytes:
    """The tag parameter of a From or To value (b"" without one)."""
    for param in value.split(b">")[-1].split(b";")[1:]:
        name, _, tag = param.partition(b"=")
        if name.strip().lower() == b"tag":
            return tag.strip()
    return b""


def without_tag(value: bytes) -> bytes:
    """A From or To value without its tag parameter."""
    end = value.rfind(b">") + 1 or len(value.split(b";", 1)[0])
    head, params = value[:end], value[end:]
    kept = [p for p in params.split(b";")[1:] if not p.strip().lower().startswith(b"tag=")]
    return head + b"".join(b";" + p for p in kept)


def uri_of(value: bytes) -> bytes:
    """The URI of a name-addr (inside <>) or of an addr-spec (before its parameters)."""
    if b"<" in value:
        return value.split(b"<", 1)[1].split(b">", 1)[0]
    return value.split(b";", 1)[0].strip()


def dialog_from_invite(invite: bytes, *, local_tag: bytes, local_contact: bytes) -> Dialog:
    """The dialog of an INVITE the switch sent to a test's peer, which answers with ``local_tag`` and
    ``local_contact`` (a name-addr, e.g. ``b"<sip:peer@127.0.0.1:5099>"``)."""
    _, headers = parse(invite)
    from_value, to_value = headers[b"from"][0], headers[b"to"][0]
    return Dialog(
        call_id=headers[b"call-id"][0], local_uri=without_tag(to_value), local_tag=local_tag,
        remote_uri=without_tag(from_value), remote_tag=tag_of(from_value), remote_target=uri_of(headers[b"contact"][0]),
        local_contact=local_contact, cseq=1, invite_cseq=int(headers[b"cseq"][0].split()[0]),
        invite_via=headers[b"via"][0].split(b",")[0].strip(),
    )
