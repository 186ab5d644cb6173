"""Unit tests of the control plane <-> worker wire protocol (`switch.workers.protocol`)."""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from switch.workers.protocol import MAX_MESSAGE, BlockingChannel, Message, ProtocolError, encode, read_message

MESSAGES: list[Message] = [
    {"op": "dial", "leg": "L1", "uri": "sip:bob@example.com", "from_uri": "sip:a@h:5060", "auth": ["u", "p"]},
    {"ev": "hello", "version": 1, "worker": 0, "capacity": 8, "sip": "127.0.0.1:5062", "pid": 1234},
    {"ev": "log", "level": "info", "message": "héllo ☎ \n \"quoted\""},
    {"op": "shutdown"},
    {},
]


def header(length: int) -> bytes:
    return struct.pack(">I", length)


def reader_with(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def test_encode_layout() -> None:
    data = encode({"op": "ring", "leg": "L1"})
    body = b'{"op":"ring","leg":"L1"}'
    assert data == header(len(body)) + body


def test_encode_too_large() -> None:
    with pytest.raises(ProtocolError):
        encode({"blob": "x" * MAX_MESSAGE})


async def test_round_trip() -> None:
    reader = reader_with(b"".join(encode(m) for m in MESSAGES))
    for expected in MESSAGES:
        assert await read_message(reader) == expected
    assert await read_message(reader) is None


async def test_round_trip_fed_byte_by_byte() -> None:
    reader = asyncio.StreamReader()
    data = b"".join(encode(m) for m in MESSAGES)

    async def feed() -> None:
        for i in range(len(data)):
            reader.feed_data(data[i:i + 1])
            if i % 7 == 0:
                await asyncio.sleep(0)
        reader.feed_eof()

    feeder = asyncio.create_task(feed())
    got = [await read_message(reader) for _ in MESSAGES]
    await feeder
    assert got == MESSAGES
    assert await read_message(reader) is None


async def test_clean_eof() -> None:
    assert await read_message(reader_with(b"")) is None


@pytest.mark.parametrize("partial", [b"\x00", b"\x00\x00\x00"])
async def test_truncated_header(partial: bytes) -> None:
    with pytest.raises(ProtocolError, match="header"):
        await read_message(reader_with(partial))


async def test_truncated_body() -> None:
    data = encode({"op": "answer", "leg": "L1"})
    with pytest.raises(ProtocolError, match="body"):
        await read_message(reader_with(data[:-3]))


async def test_header_without_body() -> None:
    with pytest.raises(ProtocolError):
        await read_message(reader_with(header(10)))


async def test_oversized_length() -> None:
    # no body follows: the length alone must be refused, not waited for
    reader = reader_with(header(MAX_MESSAGE + 1), eof=False)
    with pytest.raises(ProtocolError, match="exceeds"):
        await asyncio.wait_for(read_message(reader), 2)


@pytest.mark.parametrize("body", [b"[1,2,3]", b'"text"', b"42", b"null", b"true"])
async def test_non_object_json(body: bytes) -> None:
    with pytest.raises(ProtocolError, match="object"):
        await read_message(reader_with(header(len(body)) + body))


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe{}", b'{"a":1}trailing'])
async def test_invalid_json(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        await read_message(reader_with(header(len(body)) + body))


# -- BlockingChannel --------------------------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    yield a, b
    a.close()
    b.close()


def test_blocking_round_trip(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    sender, receiver = BlockingChannel(a), BlockingChannel(b)
    for m in MESSAGES:
        sender.send(m)
    assert [receiver.receive() for _ in MESSAGES] == MESSAGES
    receiver.send({"ev": "ack"})
    assert sender.receive() == {"ev": "ack"}
    sender.close()
    assert receiver.receive() is None


def test_blocking_message_split_across_sends(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    receiver = BlockingChannel(b)
    data = encode(MESSAGES[0]) + encode(MESSAGES[2])
    cuts = [0, 1, 3, 4, 9, len(data) // 2, len(data) - 1, len(data)]

    def writer() -> None:
        for start, end in itertools.pairwise(cuts):
            a.sendall(data[start:end])
            time.sleep(0.005)

    thread = threading.Thread(target=writer)
    thread.start()
    assert receiver.receive() == MESSAGES[0]
    assert receiver.receive() == MESSAGES[2]
    thread.join(5)


def test_blocking_reads_what_asyncio_side_wrote(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.sendall(encode({"op": "dtmf", "leg": "L9", "digits": "12#"}))
    assert BlockingChannel(b).receive() == {"op": "dtmf", "leg": "L9", "digits": "12#"}


def test_blocking_clean_eof(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.close()
    assert BlockingChannel(b).receive() is None


@pytest.mark.parametrize("cut", [2, 6])
def test_blocking_truncated(pair: tuple[socket.socket, socket.socket], cut: int) -> None:
    a, b = pair
    a.sendall(encode({"op": "ring", "leg": "L1"})[:cut])
    a.shutdown(socket.SHUT_WR)
    with pytest.raises(ProtocolError):
        BlockingChannel(b).receive()


def test_blocking_header_then_eof(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.sendall(header(5))
    a.shutdown(socket.SHUT_WR)
    with pytest.raises(ProtocolError):
        BlockingChannel(b).receive()


def test_blocking_oversized(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.sendall(header(MAX_MESSAGE + 1))
    with pytest.raises(ProtocolError, match="exceeds"):
        BlockingChannel(b).receive()


def test_blocking_bad_json(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.sendall(header(3) + b"[1]" + header(4) + b"{x}}")
    channel = BlockingChannel(b)
    with pytest.raises(ProtocolError, match="object"):
        channel.receive()
    with pytest.raises(ProtocolError, match="JSON"):
        channel.receive()


def test_blocking_concurrent_senders_do_not_interleave(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    sender = BlockingChannel(a)
    big = "y" * 50_000
    per_thread = 20

    def spam(n: int) -> None:
        for i in range(per_thread):
            sender.send({"t": n, "i": i, "pad": big})

    threads = [threading.Thread(target=spam, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    receiver = BlockingChannel(b)
    got = [receiver.receive() for _ in range(4 * per_thread)]
    for t in threads:
        t.join(5)
    seen: dict[int, list[int]] = {}
    for m in got:
        assert m is not None and m["pad"] == big
        seen.setdefault(m["t"], []).append(m["i"])
    assert seen == {n: list(range(per_thread)) for n in range(4)}
