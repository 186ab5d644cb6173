"""The SDP mutations of :mod:`tests.peers.sipfuzz`: missing lines, address families that disagree, bad ports,
no codecs, bad attributes, huge and garbage bodies, bytes that are not UTF-8."""

from __future__ import annotations

from tests.peers.sipfuzz_messages import Ctx, Message
from tests.peers.sipfuzz_mutations import Mutation


def non_utf8_sdp(ctx: Ctx, msg: Message, base: str) -> Message:
    assert msg.sdp is not None
    bad = ctx.bad()
    i = ctx.rng.randrange(len(msg.sdp))
    line = msg.sdp[i]
    if line.startswith(b"o="):
        msg.sdp[i] = b"o=" + bad + line[line.index(b" "):]
    elif line.startswith((b"c=", b"m=")):
        msg.sdp[i] = line + bad
    else:
        msg.sdp[i] = line[:2] + bad + line[2:]
    if ctx.rng.random() < 0.5:
        msg.sdp.insert(3, ctx.pick([b"i=", b"u=http://", b"e=", b"p=", b"a=tool:"]) + bad)
    return msg


def sdp_drop(prefix: bytes) -> Mutation:
    def mutate(ctx: Ctx, msg: Message, base: str) -> Message:
        assert msg.sdp is not None
        msg.sdp = [line for line in msg.sdp if not line.startswith(prefix)]
        if prefix == b"c=" and ctx.rng.random() < 0.5:  # also drop the attributes that follow m=
            msg.sdp = [line for line in msg.sdp if not line.startswith(b"a=")]
        return msg
    return mutate


def sdp_connection(values: tuple[bytes, ...]) -> Mutation:
    """Replace the c= line, at session level or only at media level (after m=), with a bad one."""

    def mutate(ctx: Ctx, msg: Message, base: str) -> Message:
        assert msg.sdp is not None
        line = ctx.pick(values)
        if ctx.rng.random() < 0.5:
            msg.sdp = [line if x.startswith(b"c=") else x for x in msg.sdp]
        else:
            msg.sdp.insert(next(i for i, x in enumerate(msg.sdp) if x.startswith(b"m=")) + 1, line)
        if ctx.rng.random() < 0.3:
            msg.sdp.append(b"a=rtcp:4001 " + line[2:])
        return msg
    return mutate


def sdp_media(values: tuple[bytes, ...]) -> Mutation:
    def mutate(ctx: Ctx, msg: Message, base: str) -> Message:
        assert msg.sdp is not None
        msg.sdp = [ctx.pick(values) if x.startswith(b"m=") else x for x in msg.sdp]
        if ctx.rng.random() < 0.5:
            msg.sdp = [x for x in msg.sdp if not x.startswith((b"a=rtpmap", b"a=fmtp"))]
        return msg
    return mutate


SDP_C_IP4_V6 = (b"c=IN IP4 ::1", b"c=IN IP4 ::ffff:127.0.0.1", b"c=IN IP4 fe80::1", b"c=IN IP4 [::1]",
                b"c=IN IP4 2001:db8::1")
SDP_C_IP6_V4 = (b"c=IN IP6 127.0.0.1", b"c=IN IP6 0.0.0.0", b"c=IN IP6 [127.0.0.1]", b"c=IN IP6 localhost")
SDP_C_BAD = (b"c=IN IP4", b"c=IN IP4 999.0.0.1", b"c=IN IP4 127.0.0.1/300/2", b"c=XX IP4 127.0.0.1",
             b"c=IN IPX 127.0.0.1", b"c=IN IP4 host.invalid", b"c=", b"c=IN IP4 0.0.0.0", b"c=IN IP4 224.0.0.1/1",
             b"c=IN IP4 127.0.0.1 extra", b"c=IN IP6 ::1", b"c=IN IP6 ::")
SDP_BAD_PORTS = (b"m=audio 70000 RTP/AVP 0", b"m=audio -1 RTP/AVP 0", b"m=audio abc RTP/AVP 0",
                 b"m=audio 0 RTP/AVP 0", b"m=audio 65536 RTP/AVP 0", b"m=audio  RTP/AVP 0",
                 b"m=audio 4000/99999 RTP/AVP 0", b"m=audio 99999999999999999999 RTP/AVP 0", b"m=audio 1 RTP/AVP 0")
SDP_NO_CODECS = (b"m=audio 4000 RTP/AVP", b"m=audio 4000 RTP/AVP ", b"m=audio 4000 RTP/AVP 255 300 abc",
                 b"m=audio 4000 RTP/AVP 101", b"m=audio 4000 RTP/SAVP 0", b"m=audio 4000 UDP/TLS/RTP/SAVPF 111",
                 b"m=video 4000 RTP/AVP 96", b"m=audio 4000", b"m=audio", b"m=audio 4000 RTP/AVP 98")
SDP_BAD_ATTRIBUTES = (b"a=rtpmap:abc PCMU/8000", b"a=rtpmap:0", b"a=rtpmap:0 PCMU/0", b"a=rtpmap:0 PCMU/-8000",
                      b"a=fmtp:101", b"a=fmtp:abc 0-16", b"a=ptime:-1", b"a=ptime:0", b"a=maxptime:99999999",
                      b"a=rtcp:99999", b"a=rtcp:4001 IN IP4 ::1", b"a=rtcp:4001 IN IP6 127.0.0.1", b"a=rtcp:",
                      b"a=inactive", b"a=sendonly", b"a=recvonly", b"a=rtpmap:96 opus/48000/2",
                      b"a=rtpmap:0 PCMU/8000/99", b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x", b"a=ice-ufrag:",
                      b"a=candidate:1 1 UDP 1 ::1 4000 typ host", b"a=ssrc:abc", b"a=rtcp-mux", b"a=",
                      b"a=" + b"x" * 2000)


def sdp_bad_attribute(ctx: Ctx, msg: Message, base: str) -> Message:
    assert msg.sdp is not None
    for _ in range(ctx.rng.randrange(1, 4)):
        msg.sdp.append(ctx.pick(SDP_BAD_ATTRIBUTES))
    return msg


def sdp_huge(ctx: Ctx, msg: Message, base: str) -> Message:
    assert msg.sdp is not None
    n = int(ctx.pick([b"50", b"400", b"3000"]))
    way = ctx.rng.randrange(4)
    if way == 0:
        msg.sdp += [b"a=x-fuzz:%d" % i for i in range(n)]
    elif way == 1:  # many media lines
        msg.sdp += [b"m=audio %d RTP/AVP 0" % (4000 + 2 * i) for i in range(n // 4)]
    elif way == 2:  # many payload types
        msg.sdp = [x + b" %d" % 96 * n if x.startswith(b"m=") else x for x in msg.sdp]
    else:
        msg.sdp[2] = b"s=" + b"S" * (n * 20)
    return msg


def sdp_garbage(ctx: Ctx, msg: Message, base: str) -> Message:
    assert msg.sdp is not None
    way = ctx.rng.randrange(6)
    if way == 0:
        ctx.rng.shuffle(msg.sdp)
    elif way == 1:
        msg.sdp = [x.replace(b"=", b" ", 1) for x in msg.sdp]
    elif way == 2:
        msg.sdp, msg.body = None, ctx.rng.randbytes(ctx.rng.randrange(1, 600))
    elif way == 3:
        msg.sdp, msg.body = None, b""  # Content-Type says SDP, no body
    elif way == 4:
        msg.body = b"\n".join(msg.sdp) + b"\n"  # bare LF line ends
        msg.sdp = None
    else:
        msg.sdp.insert(ctx.rng.randrange(len(msg.sdp)), ctx.pick([b"v=1", b"v=0", b"x=unknown", b"=", b"  ", b"t=a b"]))
    return msg


