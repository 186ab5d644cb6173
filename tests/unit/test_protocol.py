"""Unit tests of the typed control plane <-> worker protocol (`switch.workers.protocol`) and the worker's outbox."""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
import threading
import time
from collections.abc import Iterator

import msgspec
import pytest

from switch.worker.channel import BlockingChannel
from switch.worker.outbox import Outbox
from switch.workers import protocol
from switch.workers.protocol import (
    COMMANDS,
    EVENTS,
    MAX_MESSAGE,
    PROTOCOL_VERSION,
    Command,
    Event,
    EventsDropped,
    Fatal,
    Hello,
    LegEvent,
    Log,
    MediaResult,
    Message,
    ProtocolError,
    VersionMismatch,
    as_dict,
    decode_command,
    decode_event,
    decode_hello,
    encode,
    sip_text,
)
from switch.workers.stream import read_event, read_hello

P = protocol
# One of each message, with every optional field set away from its default somewhere.
SAMPLES: list[Message] = [
    P.Dial(leg="CA1", uri="sip:bob@127.0.0.1:5070", from_uri="sip:+1555@127.0.0.1:5060", auth=("u", "p")),
    P.Dial(leg="CA2", uri="sip:carol@127.0.0.1"),
    P.Ring(leg="in0-1"),
    P.Answer(leg="in0-1"),
    P.Hangup(leg="CA1", code=487),
    P.SendDtmf(leg="CA1", digits="12#*"),
    P.AllowRefer(leg="CA1"),
    P.ReferNotify(leg="CA1", code=200),
    P.Play(id="w0:p1", leg="CA1", path="/tmp/tone.wav", loop=True),
    P.StopPlay(id="w0:p1"),
    P.Record(id="w0:r2", base="/data/recordings/RE1", legs=("CA1", "CA2"), slots=2, mirror=("CA1", 1),
             level_ms=100),
    P.RecordAttach(id="w0:r2", index=1, leg="CA3"),
    P.PauseRecord(id="w0:r2", paused=True),
    P.StopRecord(id="w0:r2"),
    P.Bridge(id="w0:b3", a="CA1", b="CA2"),
    P.Unbridge(a="CA1"),
    P.Shutdown(),
    P.TapStart(id="w0:t1", leg="CA1", tracks=("inbound", "outbound"), inject=True),
    P.TapStop(id="w0:t1"),
    P.TapSend(id="w0:t1", payload=b"\xff\x7f" * 80),
    P.TapMark(id="w0:t1", name="greeting"),
    P.TapClear(id="w0:t1"),
    P.ConfJoin(conf="CF1", leg="CA1", muted=True),
    P.ConfMute(conf="CF1", leg="CA1", muted=False),
    P.ConfLeave(conf="CF1", leg="CA1"),
    P.ConfLink(conf="CF1", id="w0:L4"),
    P.ConfPlay(conf="CF1", id="w0:cp5", path="/tmp/beep.wav"),
    P.ConfRecord(conf="CF1", id="w0:cr6", path="/tmp/conf.wav"),
    P.PortOpen(leg="CA9"),
    P.PortSignal(leg="CA9", state="ended", code=603, digits=""),
    Hello(version=PROTOCOL_VERSION, worker=1, capacity=4, sip="127.0.0.1:5061", pid=4242),
    Fatal(message="worker 1 could not start on 127.0.0.1:5061: address in use"),
    Log(level="warning", message="héllo ☎ \n \"quoted\""),
    EventsDropped(total=17),
    P.Incoming(leg="in0-1", from_uri='"José" <sip:alice@127.0.0.1>', to_uri="<sip:+1555@127.0.0.1>",
               request_uri="sip:+1555@127.0.0.1:5060", call_id="abc@127.0.0.1", t=1.5),
    P.InviteSent(leg="CA1", call_id="xyz", t=2.0),
    P.DialFailed(leg="CA1", code=500, reason="Invalid URI", status=171039),
    P.Progress(leg="CA1", code=183, reason="Session Progress", sdp=True, t=2.1),
    P.Answered(leg="CA1", t=3.0),
    P.Ended(leg="CA1", code=200, reason="Normal call clearing", answered=True, t=9.0),
    P.Ended(leg="CA2", code=200, reason="Normal call clearing", answered=True, t=9.5, rtp=P.RtpStats(
        streams=2, rx_packets=498, rx_lost=1, rx_discarded=2, rx_reordered=3, rx_duplicates=4, rx_jitter_max_us=875,
        tx_packets=500, jb_lost=5, jb_discarded=6, jb_empty=7)),
    P.MediaReady(leg="CA1", t=3.0),
    P.HoldChanged(leg="CA1", held=True, t=3.5),
    P.DialogChanged(leg="CA1", dialog=P.Dialog(
        inbound=False, call_id="xyz", local="<sip:+1555@127.0.0.1>;tag=a1", remote="<sip:bob@127.0.0.1>;tag=b2",
        request_uri="sip:bob@127.0.0.1:5070", target="sip:bob@127.0.0.1:5070;transport=udp",
        routes=("<sip:127.0.0.2;lr>",), vias=("SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bK1",), cseq=4711,
        transport="tcp", peer="127.0.0.1:5070", answered=True)),
    P.ReferReceived(leg="CA1", refer_to="<sip:carol@127.0.0.1?X-Ctx=1>", referred_by="<sip:bob@127.0.0.1>",
                    headers=(("X-Ctx", "42"),), t=3.6),
    P.ReferRefused(leg="CA1", refer_to="<sip:carol@127.0.0.1>", code=403, t=3.7),
    P.DtmfReceived(leg="CA1", digit="5", t=4.0),
    P.SipMessage(leg="CA1", direction="sent", peer="127.0.0.1:5070", text="SIP/2.0 180 Ringing\r\n\r\n", t=4.1),
    P.RingFailed(leg="in0-1", error="INVITE session already terminated"),
    P.AnswerFailed(leg="in0-1", error="INVITE session already terminated"),
    P.HangupFailed(leg="CA1", code=486, error="bad state"),
    P.DtmfFailed(leg="CA1", digits="12", error="no telephone-event"),
    P.PlayDone(id="w0:p1", leg="CA1", reason="eof"),
    P.PlayFailed(id="w0:p1", leg="CA1", error="leg CA1 has no active audio"),
    P.RecordDone(id="w0:r2", frames=250, reason="stopped", lost_frames=3),
    P.RecordFailed(id="w0:r2", error="leg CA1 has no active audio"),
    P.RecordAttached(id="w0:r2", index=1, leg="CA3"),
    P.RecordAttachFailed(id="w0:r2", index=1, leg="CA3", error="leg CA3 has no active audio"),
    P.TapLevel(id="w0:r2", rms=812.5, t=5.0),
    P.Bridged(id="w0:b3", a="CA1", b="CA2"),
    P.BridgeFailed(id="w0:b3", a="CA1", b="CA2", error="leg CA2 has no active audio"),
    P.TapStarted(id="w0:t1", leg="CA1"),
    P.TapFailed(id="w0:t1", leg="CA1", error="leg CA1 has no active audio"),
    P.TapAudio(id="w0:t1", track="inbound", seq=7, ms=140, payload=bytes(range(160))),
    P.TapMarkPlayed(id="w0:t1", name="greeting", cleared=True),
    P.TapEnded(id="w0:t1", reason="hangup"),
    P.ConfJoined(conf="CF1", leg="CA1"),
    P.ConfFailed(conf="CF1", leg="CA2", error="leg CA2 is bridged: unbridge it first"),
    P.ConfLeft(conf="CF1", leg="CA1", reason="hangup"),
    P.ConfSpeaking(conf="CF1", leg="CA1", speaking=True, t=6.0),
    P.PortFailed(leg="CA9", error="too many conference ports"),
]


def header(length: int) -> bytes:
    return struct.pack(">I", length)


def frame(body: bytes) -> bytes:
    return header(len(body)) + body


def reader_with(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def decode(body: bytes, kind: type[Command] | type[Event]) -> Message:
    return decode_command(body) if kind is Command else decode_event(body)


# -- the message list ---------------------------------------------------------------------------


def test_samples_cover_every_message_and_the_lists_are_disjoint() -> None:
    assert {type(m) for m in SAMPLES} == set(COMMANDS) | set(EVENTS)
    assert all(issubclass(c, Command) for c in COMMANDS) and all(issubclass(e, Event) for e in EVENTS)
    assert len(set(COMMANDS)) == len(COMMANDS) and len(set(EVENTS)) == len(EVENTS)


def test_tags_are_unique_across_commands_and_events() -> None:
    tags = [cls.__struct_config__.tag for cls in (*COMMANDS, *EVENTS)]
    assert len(tags) == len(set(tags)) == len(COMMANDS) + len(EVENTS)
    assert all(isinstance(tag, str) and tag.islower() for tag in tags)


@pytest.mark.parametrize("cls", [*COMMANDS, *EVENTS], ids=lambda c: c.__name__)
def test_every_message_is_documented_frozen_and_keyword_only(cls: type[Message]) -> None:
    assert cls.__doc__ and len(cls.__doc__.strip()) > 20
    sample = next(m for m in SAMPLES if type(m) is cls)
    for name in cls.__struct_fields__:
        with pytest.raises(AttributeError):
            setattr(sample, name, getattr(sample, name))
    if cls.__struct_fields__:
        with pytest.raises(TypeError):
            cls(*[getattr(sample, f) for f in cls.__struct_fields__])  # positional arguments are refused


def test_routing_unions_partition_the_call_and_media_events() -> None:
    legs = {e for e in EVENTS if isinstance(next(m for m in SAMPLES if type(m) is e), LegEvent)}
    media = {e for e in EVENTS if isinstance(next(m for m in SAMPLES if type(m) is e), MediaResult)}
    assert not legs & media
    # SipMessage names a leg but goes to the SIP ladder (switch.core.call_events), not to the leg's call
    assert set(EVENTS) - legs - media == {Hello, Fatal, Log, EventsDropped, P.Incoming, P.SipMessage}
    assert all("leg" in e.__struct_fields__ for e in legs)
    assert all("id" in e.__struct_fields__ or "conf" in e.__struct_fields__ for e in media)  # conferences: by conf


# -- encoding and decoding ---------------------------------------------------------------------------


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: Message) -> None:
    data = encode(message)
    (length,) = struct.unpack(">I", data[:4])
    assert length == len(data) - 4
    kind = Command if isinstance(message, Command) else Event
    assert decode(data[4:], kind) == message
    # the tag names the type on the wire
    tag_field = "op" if kind is Command else "ev"
    assert as_dict(message)[tag_field] == type(message).__struct_config__.tag


def test_encode_layout() -> None:
    body = b'{"op":"ring","leg":"L1"}'
    assert encode(P.Ring(leg="L1")) == frame(body)


def test_commands_and_events_do_not_decode_as_each_other() -> None:
    with pytest.raises(ProtocolError):
        decode_event(encode(P.Ring(leg="L1"))[4:])
    with pytest.raises(ProtocolError):
        decode_command(encode(P.Answered(leg="L1", t=1.0))[4:])


@pytest.mark.parametrize("body", [
    b'{"op":"teleport","leg":"L1"}',  # unknown tag
    b'{"leg":"L1"}',  # no tag
    b'{"op":"hangup"}',  # a required field missing
    b'{"op":"hangup","leg":7}',  # a field of the wrong type
    b'{"op":"hangup","leg":"L1","code":"486"}',
    b'{"op":"hangup","leg":"L1","colour":"red"}',  # an unknown field
    b'{"op":"record","id":"r","base":"b","mirror":["L1"]}',  # a tuple of the wrong length
    b"[1,2,3]", b'"text"', b"42", b"null", b"true", b"{}",
    b"{not json", b"", b"\xff\xfe{}", b'{"op":"ring","leg":"L1"}trailing',
])
def test_malformed_commands_raise_protocol_error(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_command(body)


def test_encode_too_large() -> None:
    with pytest.raises(ProtocolError, match="exceeds"):
        encode(Log(level="info", message="x" * MAX_MESSAGE))


def test_unencodable_text_raises_protocol_error_and_sip_text_makes_it_encodable() -> None:
    raw = "José \udcff \ud800 end"  # an undecodable byte (surrogate escape) and a lone surrogate
    with pytest.raises(ProtocolError, match="encode"):
        encode(P.Progress(leg="L1", code=180, reason=raw, sdp=False, t=0.0))
    cleaned = sip_text(raw)
    assert cleaned == "José \ufffd \ufffd end"
    event = P.Progress(leg="L1", code=180, reason=cleaned, sdp=False, t=0.0)
    assert decode_event(encode(event)[4:]) == event


def test_sip_text_restores_escaped_utf8_and_replaces_the_rest() -> None:
    escaped = "Jos\udcc3\udca9".encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    assert sip_text(escaped) == "José"
    assert sip_text("plain ☎") == "plain ☎"
    assert sip_text("\udc80\udc80") == "\ufffd\ufffd"


# -- the hello and its version -------------------------------------------------------------------------


def test_hello_of_our_version_and_fatal_are_accepted() -> None:
    hello = Hello(version=PROTOCOL_VERSION, worker=0, capacity=4, sip="127.0.0.1:5060", pid=1)
    assert decode_hello(encode(hello)[4:]) == hello
    fatal = Fatal(message="cannot bind")
    assert decode_hello(encode(fatal)[4:]) == fatal


@pytest.mark.parametrize("body", [
    b'{"ev":"hello","version":1,"worker":0,"capacity":8,"sip":"127.0.0.1:5062","pid":1234}',  # the dict protocol
    b'{"ev":"hello","version":2,"worker":0,"capacity":8,"sip":"127.0.0.1:5062","pid":1234}',  # without dialogs
    b'{"ev":"hello","version":3,"worker":0,"capacity":8,"sip":"127.0.0.1:5062","pid":1234}',  # without Ended.rtp
    b'{"ev":"hello","version":4,"worker":0,"capacity":8,"sip":"127.0.0.1:5062","pid":1234}',  # no SipMessage
    b'{"ev":"hello","version":5,"worker":0,"capacity":8,"sip":"127.0.0.1:5062","pid":1234}',  # no Incoming.headers
    b'{"ev":"hello","version":6,"worker":0,"capacity":8,"sip":"127.0.0.1:5062","pid":1234}',  # no audio taps
    b'{"ev":"hello","version":7,"worker":0,"capacity":8,"sip":"127.0.0.1:5062","pid":1234}',  # no conferences
    b'{"ev":"hello","version":8,"worker":0,"capacity":8,"sip":"127.0.0.1:5062","pid":1234}',  # no port legs
    b'{"ev":"hello","version":10,"worker":0,"capacity":8,"sip":"h:1","pid":1,"zone":"eu"}',  # a newer one
    b'{"ev":"hello"}',
])
def test_another_version_is_refused(body: bytes) -> None:
    with pytest.raises(VersionMismatch, match=f"we speak {PROTOCOL_VERSION}"):
        decode_hello(body)


@pytest.mark.parametrize("first", [
    encode(P.Answered(leg="L1", t=1.0))[4:],  # a valid event, but not a hello
    encode(P.Ring(leg="L1"))[4:],  # a command
    b"[]", b"{bad",
])
def test_a_first_message_other_than_hello_is_refused(first: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_hello(first)


async def test_read_hello_then_events() -> None:
    hello = Hello(version=PROTOCOL_VERSION, worker=0, capacity=4, sip="127.0.0.1:5060", pid=1)
    events = [m for m in SAMPLES if isinstance(m, Event) and not isinstance(m, Hello | Fatal)]
    reader = reader_with(encode(hello) + b"".join(encode(e) for e in events))
    assert await read_hello(reader) == hello
    assert [await read_event(reader) for _ in events] == events
    assert await read_event(reader) is None
    assert await read_hello(reader_with(b"")) is None


# -- framing ----------------------------------------------------------------------------------------------


async def test_events_fed_byte_by_byte() -> None:
    events = [m for m in SAMPLES if isinstance(m, Event)]
    data = b"".join(encode(m) for m in events)
    reader = asyncio.StreamReader()

    async def feed() -> None:
        for i in range(len(data)):
            reader.feed_data(data[i:i + 1])
            if i % 7 == 0:
                await asyncio.sleep(0)
        reader.feed_eof()

    feeder = asyncio.create_task(feed())
    got = [await read_event(reader) for _ in events]
    await feeder
    assert got == events
    assert await read_event(reader) is None


@pytest.mark.parametrize("partial", [b"\x00", b"\x00\x00\x00"])
async def test_truncated_header(partial: bytes) -> None:
    with pytest.raises(ProtocolError, match="header"):
        await read_event(reader_with(partial))


async def test_truncated_body() -> None:
    with pytest.raises(ProtocolError, match="body"):
        await read_event(reader_with(encode(P.MediaReady(leg="L1", t=0.0))[:-3]))


async def test_oversized_length_is_refused_without_waiting_for_the_body() -> None:
    reader = reader_with(header(MAX_MESSAGE + 1), eof=False)
    with pytest.raises(ProtocolError, match="exceeds"):
        await asyncio.wait_for(read_event(reader), 2)


async def test_a_well_framed_bad_event_raises() -> None:
    with pytest.raises(ProtocolError):
        await read_event(reader_with(frame(b'{"ev":"answered","leg":"L1"}')))


# -- BlockingChannel (the worker's end) ----------------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    yield a, b
    a.close()
    b.close()


def test_blocking_round_trip_of_every_command(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    sender, receiver = BlockingChannel(a), BlockingChannel(b)
    commands = [m for m in SAMPLES if isinstance(m, Command)]
    for m in commands:
        sender.send(m)
    assert [receiver.receive_command() for _ in commands] == commands
    sender.close()
    assert receiver.receive_command() is None


def test_blocking_message_split_across_sends(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    first, second = SAMPLES[0], SAMPLES[8]
    data = encode(first) + encode(second)
    cuts = [0, 1, 3, 4, 9, len(data) // 2, len(data) - 1, len(data)]

    def writer() -> None:
        for start, end in itertools.pairwise(cuts):
            a.sendall(data[start:end])
            time.sleep(0.005)

    thread = threading.Thread(target=writer)
    thread.start()
    receiver = BlockingChannel(b)
    assert receiver.receive_command() == first
    assert receiver.receive_command() == second
    thread.join(5)


@pytest.mark.parametrize("cut", [2, 6])
def test_blocking_truncated(pair: tuple[socket.socket, socket.socket], cut: int) -> None:
    a, b = pair
    a.sendall(encode(P.Ring(leg="L1"))[:cut])
    a.shutdown(socket.SHUT_WR)
    with pytest.raises(ProtocolError):
        BlockingChannel(b).receive_command()


def test_blocking_oversized(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.sendall(header(MAX_MESSAGE + 1))
    with pytest.raises(ProtocolError, match="exceeds"):
        BlockingChannel(b).receive_frame()


def test_blocking_bad_bodies_keep_the_framing(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.sendall(frame(b"[1]") + frame(b"{x}}") + encode(P.Shutdown()))
    channel = BlockingChannel(b)
    with pytest.raises(ProtocolError, match="not a protocol message"):
        channel.receive_command()
    with pytest.raises(ProtocolError, match="JSON"):
        channel.receive_command()
    assert channel.receive_command() == P.Shutdown()


def test_blocking_concurrent_senders_do_not_interleave(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    sender = BlockingChannel(a)
    pad = "y" * 50_000
    per_thread = 20

    def spam(n: int) -> None:
        for i in range(per_thread):
            sender.send(Log(level=f"{n}:{i}", message=pad))

    threads = [threading.Thread(target=spam, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    got = []
    receiver = BlockingChannel(b)  # one reader: it buffers what it has read ahead
    for _ in range(4 * per_thread):
        body = receiver.receive_frame()
        assert body is not None
        got.append(decode_event(body))
    for t in threads:
        t.join(5)
    seen: dict[str, list[int]] = {}
    for m in got:
        assert isinstance(m, Log) and m.message == pad
        n, i = m.level.split(":")
        seen.setdefault(n, []).append(int(i))
    assert seen == {str(n): list(range(per_thread)) for n in range(4)}


# -- the worker's outbox ------------------------------------------------------------------------------------


def _drain(channel: BlockingChannel, count: int) -> list[Event]:
    """The next `count` events on `channel` (one channel a socket: it buffers what it reads ahead)."""
    out = []
    for _ in range(count):
        body = channel.receive_frame()
        assert body is not None
        out.append(decode_event(body))
    return out


def test_outbox_sends_in_order(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    reader = BlockingChannel(b)
    outbox = Outbox(BlockingChannel(a), worker=0)
    outbox.start()
    events = [P.DtmfReceived(leg="L1", digit=str(i), t=float(i)) for i in range(50)]
    for e in events:
        outbox.emit(e)
    assert _drain(reader, 50) == events
    outbox.close()
    assert (outbox.sent, outbox.dropped) == (50, 0)


def test_outbox_never_blocks_the_emitter_and_counts_what_it_drops(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    reader = BlockingChannel(b)
    outbox = Outbox(BlockingChannel(a), worker=3, size=8)
    # Nobody reads `b` yet: the writer thread soon blocks in sendall and the queue fills up.
    big = "z" * 200_000
    started = time.monotonic()
    for i in range(40):
        outbox.emit(Log(level=str(i), message=big))
    assert time.monotonic() - started < 0.5  # put_nowait only: the emitter never waited for the socket
    outbox.start()
    assert outbox.dropped == 40 - 8
    got = _drain(reader, 9)
    assert got[-1] == EventsDropped(total=32)  # reported with the first write the writer could make
    assert [e.level for e in got if isinstance(e, Log)] == [str(i) for i in range(8)]
    outbox.emit(Log(level="after", message=""))
    assert _drain(reader, 1) == [Log(level="after", message="")]
    outbox.close()
    assert (outbox.sent, outbox.dropped) == (9, 32)


def test_outbox_writes_what_is_queued_at_once_in_one_write(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    reader = BlockingChannel(b)
    writes: list[int] = []

    class Counting(BlockingChannel):
        def send_frames(self, frames: list[bytes]) -> None:
            writes.append(len(frames))
            super().send_frames(frames)

    outbox = Outbox(Counting(a), worker=0)
    events = [P.DtmfReceived(leg="L1", digit=str(i % 10), t=float(i)) for i in range(70)]
    for e in events:
        outbox.emit(e)
    outbox.start()  # all 70 queued before the writer runs: at most 64 a write
    assert _drain(reader, 70) == events
    outbox.emit(events[0])
    assert _drain(reader, 1) == [events[0]]
    outbox.close()
    assert writes == [64, 6, 1] and outbox.sent == 71


@pytest.fixture
def blocking_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A socket pair in blocking mode, as the worker's control socket (no timeout: `try_send` may write)."""
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_the_owner_thread_writes_its_events_itself_in_order(blocking_pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = blocking_pair
    reader = BlockingChannel(b)
    outbox = Outbox(BlockingChannel(a), worker=0)
    outbox.own()  # no writer thread is started: only the owner's own writes can reach the reader
    events = [P.DtmfReceived(leg="L1", digit=str(i % 10), t=float(i)) for i in range(50)]
    for e in events:
        outbox.emit(e)
    assert _drain(reader, 50) == events
    assert outbox.sent == 50
    other = threading.Thread(target=outbox.emit, args=(Log(level="info", message="from another thread"),))
    other.start()
    other.join()
    assert outbox.sent == 50  # another thread's event waits in the queue for the writer thread
    outbox.start()
    assert _drain(reader, 1) == [Log(level="info", message="from another thread")]
    outbox.close()
    assert (outbox.sent, outbox.dropped) == (51, 0)


def test_the_owner_never_waits_for_a_full_socket_and_nothing_overtakes_or_tears(
        blocking_pair: tuple[socket.socket, socket.socket]) -> None:
    """The reader is stopped: the owner's writes fill the socket, the last one only in part; what follows
    queues behind it.  Once the reader reads, every event arrives whole and in the order it was emitted, the
    owner's and another thread's interleaved as they were queued."""
    a, b = blocking_pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    reader = BlockingChannel(b)

    class Recording(BlockingChannel):
        partial = 0  # writes the socket took only the start of

        def try_send(self, frame: bytes) -> bool:
            written = super().try_send(frame)
            self.partial += written and self.unwritten
            return written

    channel = Recording(a)
    outbox = Outbox(channel, worker=0)
    outbox.own()
    outbox.start()
    big = "y" * 50_000
    emitted: list[Event] = []
    started = time.monotonic()
    for i in range(40):
        event = Log(level=str(i), message=big)
        outbox.emit(event)
        emitted.append(event)
    assert time.monotonic() - started < 0.5  # the owner never waited for the socket
    assert outbox.sent < 40  # the socket took only some of them at once: the rest queued
    assert channel.partial == 1  # the last one it took, in part: the writer thread finishes it
    late = Log(level="owner-late", message="")
    outbox.emit(late)
    emitted.append(late)
    got = _drain(reader, len(emitted))
    assert got == emitted
    outbox.emit(Log(level="after", message=""))  # written by the owner, or queued if the writer is still busy
    assert _drain(reader, 1) == [Log(level="after", message="")]
    outbox.close()
    assert (outbox.sent, outbox.dropped) == (42, 0)


def test_outbox_survives_an_unencodable_event(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    reader = BlockingChannel(b)
    outbox = Outbox(BlockingChannel(a), worker=0)
    outbox.start()
    outbox.emit(Log(level="info", message="\ud800"))  # a bug upstream: not sip_text-cleaned
    outbox.emit(Log(level="info", message="next"))
    assert _drain(reader, 1) == [Log(level="info", message="next")]
    outbox.close()


def test_structs_are_msgspec_structs() -> None:
    # the wire format is msgspec's JSON; a plain dataclass slipping into the lists would not encode the same way
    assert all(issubclass(cls, msgspec.Struct) for cls in (*COMMANDS, *EVENTS))


# -- Ended.rtp: optional, nested, strict ----------------------------------------------------------------------


def test_ended_carries_rtp_as_a_nested_object_and_decodes_without_it() -> None:
    rtp = P.RtpStats(rx_packets=250, tx_packets=251, rx_lost=0)
    body = encode(P.Ended(leg="CA1", code=200, reason="OK", answered=True, t=1.0, rtp=rtp))[4:]
    wire = msgspec.json.decode(body)
    assert wire["ev"] == "ended"
    assert wire["rtp"] == {"streams": 1, "rx_packets": 250, "rx_lost": 0, "rx_discarded": 0, "rx_reordered": 0,
                           "rx_duplicates": 0, "rx_jitter_max_us": 0, "tx_packets": 251, "jb_lost": 0,
                           "jb_discarded": 0, "jb_empty": 0}
    assert decode_event(body) == P.Ended(leg="CA1", code=200, reason="OK", answered=True, t=1.0, rtp=rtp)
    # An Ended as a worker before protocol 4 sent it (no rtp), and one of a leg that never had audio (null).
    older = b'{"ev":"ended","leg":"CA1","code":487,"reason":"Request Terminated","answered":false,"t":2.0}'
    assert decode_event(older) == P.Ended(leg="CA1", code=487, reason="Request Terminated", answered=False, t=2.0)
    assert decode_event(older[:-1] + b',"rtp":null}').rtp is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("rtp", [b'{"rx_packets":"many"}', b'{"rx_packets":1,"mos":4.2}', b'[1,2]', b'7'])
def test_a_malformed_rtp_of_ended_is_a_protocol_error(rtp: bytes) -> None:
    body = b'{"ev":"ended","leg":"CA1","code":200,"reason":"OK","answered":true,"t":2.0,"rtp":' + rtp + b"}"
    with pytest.raises(ProtocolError, match="not a protocol message"):
        decode_event(body)
