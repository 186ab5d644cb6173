"""The mutations of :mod:`tests.peers.sipfuzz` that apply to any message: framing, headers, Via, URIs, bytes.

Each takes a fresh base message (and the base's name) and returns the mutated message or its final bytes.
In-dialog mutations (wrong tags, wrong CSeq, a 200 OK without a To tag, Replaces) aim at the corpus's dialog.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.peers.sipfuzz_messages import IN_DIALOG, Ctx, Message, request

Mutation = Callable[[Ctx, Message, str], "Message | bytes"]
MANDATORY = (b"Via", b"From", b"To", b"Call-ID", b"CSeq", b"Max-Forwards", b"Contact", b"Content-Type",
             b"Content-Length")


def random_bytes(ctx: Ctx, msg: Message, base: str) -> bytes:
    return ctx.rng.randbytes(int(ctx.pick([b"0", b"1", b"4", b"100", b"1400", b"3999", b"4100", b"20000"])))


def random_text(ctx: Ctx, msg: Message, base: str) -> bytes:
    words = [b"INVITE", b"SIP/2.0", b"sip:", b"Via:", b"\r\n", b":", b";", b"<", b">", b"@", b"=", b" ", b"\r\n\r\n",
             b"Content-Length: 10", b"v=0", b"CSeq: 1 INVITE", b"tag=", b"\t", b"\n", b"%00", b'"', b","]
    return b"".join(ctx.pick(words) for _ in range(ctx.rng.randrange(1, 400)))


def flip_bytes(ctx: Ctx, msg: Message, base: str) -> bytes:
    data = bytearray(msg.render())
    for _ in range(ctx.rng.randrange(1, 9)):
        data[ctx.rng.randrange(len(data))] = ctx.rng.randrange(256)
    return bytes(data)


def truncate(ctx: Ctx, msg: Message, base: str) -> bytes:
    data = msg.render()
    return data[: ctx.rng.randrange(1, len(data))]


def missing_header(ctx: Ctx, msg: Message, base: str) -> Message:
    present = [name for name in MANDATORY if name == b"Content-Length" or msg.index(name) >= 0]
    name = ctx.pick(present)
    if name == b"Content-Length":
        msg.content_length = b"<none>"
    else:
        del msg.headers[msg.index(name)]
    return msg


def duplicate_header(ctx: Ctx, msg: Message, base: str) -> Message:
    name = ctx.pick([b"Via", b"From", b"To", b"Call-ID", b"CSeq", b"Contact", b"Content-Length", b"Max-Forwards",
                     b"Content-Type"])
    if name == b"Content-Length":
        msg.headers.append((name, b"%d" % ctx.rng.randrange(0, 5000)))
    elif name == b"From" or name == b"To":
        msg.headers.append((name, b"<sip:other@127.0.0.2>;tag=" + ctx.token(6)))
    elif name == b"Call-ID":
        msg.headers.append((name, ctx.token(12)))
    elif name == b"CSeq":
        msg.headers.append((name, b"%d %s" % (ctx.rng.randrange(1, 1 << 31), ctx.pick([b"INVITE", b"BYE", b"ACK"]))))
    else:
        msg.headers.append((name, msg.get(name) or b"text/plain"))
    return msg


def content_length(values: tuple[bytes, ...] | None, delta: tuple[int, int] | None) -> Mutation:
    def mutate(ctx: Ctx, msg: Message, base: str) -> Message:
        if not msg.payload():
            msg.body = b"v=0\r\no=junk\r\n"  # something for a short Content-Length to cut into
        size = len(msg.payload())
        if values is not None:
            msg.content_length = ctx.pick(values)
        elif delta is not None:
            msg.content_length = b"%d" % max(0, size + ctx.rng.randrange(*delta))
        return msg
    return mutate


def huge_header(ctx: Ctx, msg: Message, base: str) -> Message:
    size = int(ctx.pick([b"1000", b"3900", b"4100", b"8000", b"30000", b"60000"]))
    name = ctx.pick([b"Subject", b"Call-ID", b"User-Agent", b"X-Fuzz", b"From", b"Contact"])
    filler = bytes(ctx.rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(64)) * (size // 64 + 1)
    if name == b"From":
        msg.set(name, b'"' + filler[:size] + b'" ' + msg.get(name))
    elif name == b"Contact":
        msg.set(name, b"<sip:" + filler[:size] + b"@127.0.0.1>")
    else:
        msg.set(name, filler[:size])
    return msg


def many_headers(ctx: Ctx, msg: Message, base: str) -> Message:
    count = int(ctx.pick([b"100", b"500", b"2000", b"5000"]))
    name = ctx.pick([b"X-Fuzz", b"Record-Route", b"Via", b"Route", b"Supported", b"P-Asserted-Identity"])
    value = {b"Via": ctx.via(), b"Record-Route": b"<sip:127.0.0.1;lr>", b"Route": b"<sip:127.0.0.1;lr>"}.get(
        name, b"fuzz")
    at = max(0, msg.index(b"Max-Forwards"))
    msg.headers[at:at] = [(name, value) for _ in range(count)]
    return msg


def via_no_branch(ctx: Ctx, msg: Message, base: str) -> Message:
    sent_by = b"%s:%d" % (ctx.via_host, ctx.via_port)
    msg.set(b"Via", ctx.pick([b"SIP/2.0/UDP " + sent_by, b"SIP/2.0/UDP %s;rport" % ctx.via_host,
                              b"SIP/2.0/UDP %s;branch=" % sent_by, b"SIP/2.0/UDP %s;branch" % sent_by,
                              b"SIP/2.0/UDP %s;branch=1234" % sent_by]))  # the last: RFC 2543, no magic cookie
    return msg


def via_bad_host(ctx: Ctx, msg: Message, base: str) -> Message:
    host = ctx.pick([b"", b"999.1.1.1", b"-", b"a..b", b"[::1", b"127.0.0.1:99999", b"127.0.0.1:abc",
                     b"127.0.0.1:-1", b"host_with_underscore", b"0.0.0.0:0", b"256.256.256.256:5060", b";", b"@"])
    msg.set(b"Via", b"SIP/2.0/UDP %s;rport;branch=z9hG4bK%s" % (host, ctx.token()))
    return msg


def via_ipv6(ctx: Ctx, msg: Message, base: str) -> Message:
    host = ctx.pick([b"[::1]:5099", b"[::1]", b"::1", b"[::ffff:127.0.0.1]:5099", b"[fe80::1%lo]:5060",
                     b"[2001:db8::1]:5060", b"[::]:0", b"[::1]:99999"])
    msg.set(b"Via", b"SIP/2.0/%s %s;rport;branch=z9hG4bK%s" % (ctx.pick([b"UDP", b"TCP"]), host, ctx.token()))
    return msg


def via_huge(ctx: Ctx, msg: Message, base: str) -> Message:
    n = int(ctx.pick([b"300", b"3900", b"5000", b"40000"]))
    way = ctx.rng.randrange(4)
    if way == 0:
        msg.set(b"Via", b"SIP/2.0/UDP %s:5099;branch=z9hG4bK" % (b"h" * n) + ctx.token())
    elif way == 1:
        msg.set(b"Via", ctx.via(b"x" * n))
    elif way == 2:
        msg.set(b"Via", ctx.via() + b";p=1" * (n // 4))
    else:
        msg.set(b"Via", b", ".join(ctx.via() for _ in range(n // 50)))
    return msg


def bad_start_line(ctx: Ctx, msg: Message, base: str) -> Message:
    if msg.start.startswith(b"SIP/2.0"):
        msg.start = ctx.pick([b"SIP/2.0 99 Low", b"SIP/2.0 1000 High", b"SIP/2.0 abc OK", b"SIP/2.0 200",
                              b"SIP/2.0  200  OK", b"SIP/3.0 200 OK", b"SIP/2.0 -200 OK", b"HTTP/1.1 200 OK",
                              b"SIP/2.0 4294967496 OK", b"SIP/2.0 200 " + b"R" * 5000])
    else:
        method, uri, _ = msg.start.split(b" ", 2)
        msg.start = ctx.pick([method.lower() + b" " + uri + b" SIP/2.0", method + b" " + uri,
                              method + b" " + uri + b" SIP/3.0", method + b"  " + uri + b"  SIP/2.0",
                              method + b" SIP/2.0", b"%s %s SIP/2.0 extra" % (method, uri),
                              b"F\x00O " + uri + b" SIP/2.0", method + b" <" + uri + b"> SIP/2.0", b" " + msg.start])
    return msg


def bad_uri(ctx: Ctx, msg: Message, base: str) -> Message:
    uri = ctx.pick([b"sip:", b"sip:@", b"sip:bob", b"sips:bob@127.0.0.1", b"tel:+1555", b"sip:a@b:99999",
                    b"sip:[::1", b"sip:a@[::1]:5060", b"mailto:a@b", b"sip:a@127.0.0.1;transport=ws",
                    b"sip:a@" + b"b" * 300, b"sip:%00@127.0.0.1", b"<>"])
    where = ctx.pick([b"start", b"From", b"To", b"Contact"])
    if where == b"start" and not msg.start.startswith(b"SIP/2.0"):
        method, _, version = msg.start.split(b" ", 2)
        msg.start = b"%s %s %s" % (method, uri, version)
    else:
        name = b"Contact" if where == b"start" else where
        params = _params(msg.get(name))  # keep the tag: only the URI is bad
        msg.set(name, ctx.pick([b"<%s>" % uri + params, uri + params, b"<%s" % uri + params, b"<%s>" % uri]))
    return msg


def line_endings(ctx: Ctx, msg: Message, base: str) -> bytes | Message:
    way = ctx.rng.randrange(4)
    if way == 0:
        msg.eol = b"\n"
        return msg
    if way == 1:
        return msg.render().replace(b"\r\n", b"\r")
    if way == 2:  # a folded header (legal, rarely seen) and a folded start line (not legal)
        i = ctx.rng.randrange(len(msg.headers)) if msg.headers else 0
        if msg.headers:
            name, value = msg.headers[i]
            msg.headers[i] = (name, value + b"\r\n \t" + value[-3:])
        return msg
    data = msg.render()
    return data.replace(b"\r\n", ctx.pick([b"\r\r\n", b"\n\r", b"\r\n\r\n"]), ctx.rng.randrange(1, 4))


def nul_bytes(ctx: Ctx, msg: Message, base: str) -> Message:
    name = ctx.pick([b"From", b"To", b"Call-ID", b"Subject", b"Contact", b"CSeq"])
    value = msg.get(name)
    at = ctx.rng.randrange(len(value) + 1)
    msg.set(name, value[:at] + b"\x00" * ctx.rng.randrange(1, 4) + value[at:])
    return msg


def _addr(value: bytes) -> bytes:
    """The URI of a From/To/Contact value in angle brackets (an addr-spec gets them)."""
    if b"<" in value:
        return value[value.index(b"<"): value.rfind(b">") + 1]
    return b"<" + value.split(b";", 1)[0] + b">"


def _params(value: bytes) -> bytes:
    """The header parameters (";tag=...") after the URI of a From/To/Contact value."""
    if b">" in value:
        return value[value.rfind(b">") + 1:]
    _, sep, rest = value.partition(b";")
    return sep + rest


def non_utf8_display(ctx: Ctx, msg: Message, base: str) -> Message:
    name = ctx.pick([b"From", b"To", b"Contact"])
    value = msg.get(name)
    display = ctx.pick([b"%s", b"Jos%s", b"%s %s", b"\xe2\x98\x8e %s"]).replace(b"%s", ctx.bad())
    quoted = ctx.pick([b'"' + display + b'"', display])
    msg.set(name, quoted + b" " + _addr(value) + _params(value))  # the tag stays: only the display name is bad
    return msg


def non_utf8_call_id(ctx: Ctx, msg: Message, base: str) -> Message:
    msg.set(b"Call-ID", ctx.pick([ctx.bad(), ctx.token(6) + ctx.bad(), ctx.bad() + b"@" + ctx.token(4),
                                  ctx.token(4) + b"@host" + ctx.bad()]))
    return msg


def non_utf8_reason(ctx: Ctx, msg: Message, base: str) -> Message:
    code = msg.start.split(b" ", 2)[1]
    msg.start = b"SIP/2.0 " + code + b" " + ctx.pick([ctx.bad(), b"Busy " + ctx.bad(), ctx.bad() * 40])
    return msg


def non_utf8_header(ctx: Ctx, msg: Message, base: str) -> Message:
    bad = ctx.bad()
    where = ctx.rng.randrange(9)
    if where == 0:  # the user part of a URI in From, To, Contact or the Request-URI
        name = ctx.pick([b"From", b"To", b"Contact", b"start"])
        if name == b"start" and not msg.start.startswith(b"SIP/2.0"):
            method, uri, version = msg.start.split(b" ", 2)
            msg.start = b"%s %s %s" % (method, uri.replace(b"sip:", b"sip:" + bad, 1), version)
        else:
            name = b"From" if name == b"start" else name  # a response has no Request-URI
            msg.set(name, msg.get(name).replace(b"sip:", b"sip:" + bad, 1))
    elif where == 1:  # a tag
        name = ctx.pick([b"From", b"To"])
        msg.set(name, msg.get(name).split(b";tag=")[0] + b";tag=" + bad + ctx.token(3))
    elif where == 2:
        msg.set(b"Via", ctx.via(ctx.token(4) + bad))
    elif where == 3:
        msg.set(b"CSeq", msg.get(b"CSeq").replace(b" ", b" " + bad, 1))
    else:
        name = ctx.pick([b"Subject", b"User-Agent", b"Server", b"Allow", b"Supported", b"X-Fuzz", b"Organization",
                         b"P-Asserted-Identity", b"Content-Type", b"Max-Forwards"])
        msg.set(name, ctx.pick([bad, b"text " + bad, bad * 100]))
    return msg



# -- in-dialog requests and responses aimed at a dialog ---------------------------------------------------------

def in_dialog(ctx: Ctx, base: str) -> Message:
    method = b"INVITE" if base == "re-INVITE" else base.encode()
    message = request(ctx, method, in_dialog=True, sdp=method == b"INVITE")
    if method == b"CANCEL":
        message.set(b"CSeq", b"%d CANCEL" % ctx.dialog.cseq)
    return message


def wrong_tag(header: bytes) -> Mutation:
    def mutate(ctx: Ctx, msg: Message, base: str) -> Message:
        msg = in_dialog(ctx, base)
        value = msg.get(header).split(b";tag=")[0]
        msg.set(header, ctx.pick([value + b";tag=" + ctx.token(8), value, value + b";tag=", value + b";tag=;tag=x"]))
        if header == b"From" and base == "BYE":  # keep a BYE from ever matching: both tags wrong
            msg.set(b"To", msg.get(b"To").split(b";tag=")[0] + b";tag=" + ctx.token(8))
        return msg
    return mutate


def wrong_cseq(ctx: Ctx, msg: Message, base: str) -> Message:
    method = msg.get(b"CSeq").split(b" ")[-1]
    if base in IN_DIALOG:
        msg = in_dialog(ctx, base)
        method = msg.get(b"CSeq").split(b" ")[-1]
    parse_errors = [b"abc " + method, b"-1 " + method, b"1.5 " + method, method, b"", b"1", b"1 " + method + b" x"]
    if base == "BYE" or base == "CANCEL":  # never a CSeq that could be taken: a BYE with one would end the call
        values = parse_errors
    else:
        d = ctx.dialog
        values = [*parse_errors, b"%d %s" % (max(0, d.cseq - 1), method), b"%d %s" % (d.cseq, method), b"0 " + method,
                  b"4294967296 " + method, b"99999999999999999999 " + method, b"%d BYE" % (d.cseq + 1),
                  b"%d ACK" % d.invite_cseq, b"%d OPTIONS" % (d.invite_cseq + 1)]
    msg.set(b"CSeq", ctx.pick(values))
    return msg


def no_to_tag_200(ctx: Ctx, msg: Message, base: str) -> Message:
    """A 200 OK to the dialog's INVITE, with its Call-ID and From tag but no To tag (pjsip_dlg_fork asserts)."""
    msg.set(b"To", ctx.dialog.local_uri)
    if ctx.rng.random() < 0.5:
        msg.set(b"Via", ctx.via())  # not the INVITE transaction: straight to the dialog layer
    return msg


def forked_200(ctx: Ctx, msg: Message, base: str) -> Message:
    """A 200 OK to the dialog's INVITE from another fork: a new To tag."""
    msg.set(b"To", ctx.dialog.local_uri + b";tag=" + ctx.token(8))
    return msg


def replaces(ctx: Ctx, msg: Message, base: str) -> Message:
    """A new INVITE whose Replaces names the dialog (its Call-ID and tags, both ways round)."""
    d = ctx.dialog
    to_tag, from_tag = (d.remote_tag, d.local_tag) if ctx.rng.random() < 0.5 else (d.local_tag, d.remote_tag)
    value = b"%s;to-tag=%s;from-tag=%s" % (d.call_id, to_tag, from_tag)
    msg.headers.append((b"Replaces", ctx.pick([value, value + b";early-only", d.call_id, value + ctx.bad()])))
    msg.set(b"Supported", b"replaces")
    return msg
