"""WorkerPool (slots, start rate, the typed protocol at its door) and CallMedia (awaitable answers to media
commands), with no worker process: events are scripted."""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest

from switch.core.legs import Leg, Legs
from switch.core.model import Call, Direction
from switch.core.status import CallStatus
from switch.workers.media import CallMedia, MediaError
from switch.workers.pool import START_LIMIT, NoCapacity, WorkerPool
from switch.workers.protocol import (
    PROTOCOL_VERSION,
    Bridge,
    Bridged,
    BridgeFailed,
    Command,
    DtmfReceived,
    Ended,
    Event,
    EventsDropped,
    Hello,
    MediaReady,
    Message,
    Play,
    PlayDone,
    PlayFailed,
    Record,
    RecordAttach,
    RecordAttached,
    RecordAttachFailed,
    RecordDone,
    RecordFailed,
    RtpStats,
    StopPlay,
    TapLevel,
    encode,
)


def _pool(count: int) -> WorkerPool:
    pool = WorkerPool(count, "127.0.0.1", 5060, lambda i, m: None, lambda i: None)
    for worker in pool.workers:
        worker.up = True
        worker.capacity = 4
    return pool


def test_reserve_spreads_by_free_slots_and_refuses_when_full() -> None:
    pool = _pool(2)
    placed = [pool.reserve(f"leg{i}", now=0.0) for i in range(8)]
    assert sorted(placed) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert placed[:2] == [0, 1]  # alternates while both have room
    with pytest.raises(NoCapacity, match="all 8 call slots on 2 of 2 workers"):
        pool.reserve("leg9", now=0.0)
    pool.release("leg3", placed[3])
    assert pool.reserve("leg9", now=0.0) == placed[3]


def test_down_worker_gets_nothing() -> None:
    pool = _pool(2)
    pool.workers[0].up = False
    assert {pool.reserve(f"l{i}", now=0.0) for i in range(4)} == {1}
    with pytest.raises(NoCapacity, match="4 call slots on 1 of 2 workers"):
        pool.reserve("x", now=0.0)


def test_start_rate_is_capped_per_worker() -> None:
    pool = _pool(1)
    for i in range(START_LIMIT):
        pool.reserve(f"l{i}", now=i * 0.01)
        pool.release(f"l{i}", 0)
    with pytest.raises(NoCapacity, match="rate limit"):
        pool.reserve("over", now=0.5)
    assert pool.reserve("later", now=1.5) == 0  # the window slid on


def test_start_rate_cap_is_for_the_wheel_only() -> None:
    pool = _pool(2)
    pool.workers[0].engine = "pjproject 2.17 (built, epoll)"
    pool.workers[0].capacity = 1024
    pool.workers[1].engine = "pjsua2-python 2.15.1.post1 (wheel)"
    for i in range(3 * START_LIMIT):
        assert pool.reserve(f"b{i}", 0, now=0.0) == 0  # the built engine's epoll ioqueue: no cap
    for i in range(START_LIMIT):
        pool.reserve(f"w{i}", 1, now=0.0)
        pool.release(f"w{i}", 1)
    with pytest.raises(NoCapacity, match="rate limit"):
        pool.reserve("over", 1, now=0.5)
    assert [w["engine"] for w in pool.status()] == ["pjproject 2.17 (built, epoll)",
                                                    "pjsua2-python 2.15.1.post1 (wheel)"]


def test_rate_limited_worker_is_skipped_for_another() -> None:
    pool = _pool(2)
    for i in range(START_LIMIT):
        pool.reserve(f"a{i}", 0, now=0.0)
        pool.release(f"a{i}", 0)
    assert pool.reserve("b", now=0.1) == 1


# -- the typed protocol at the pool's door ------------------------------------------------------------------


class _Writer:
    """Stands in for the asyncio StreamWriter of a worker's connection."""

    def __init__(self) -> None:
        self.closed = False
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def _stream(*messages: Message, raw: bytes = b"") -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(b"".join(encode(m) for m in messages) + raw)
    reader.feed_eof()
    return reader


async def test_pool_refuses_a_worker_of_another_protocol_version(caplog: pytest.LogCaptureFixture) -> None:
    pool = WorkerPool(1, "127.0.0.1", 5060, lambda i, e: None, lambda i: None)
    old_hello = b'{"ev":"hello","version":1,"worker":0,"capacity":4,"sip":"127.0.0.1:5060","pid":7}'
    writer = _Writer()
    with caplog.at_level(logging.ERROR, "switch.workers.pool"):
        await pool._serve(_stream(raw=struct.pack(">I", len(old_hello)) + old_hello), writer)  # type: ignore[arg-type]
    assert not pool.workers[0].up and pool.workers[0].capacity == 0 and writer.closed
    assert f"worker speaks protocol 1, we speak {PROTOCOL_VERSION}" in caplog.text


async def test_pool_routes_typed_events_and_counts_dropped_ones() -> None:
    got: list[tuple[int, Event]] = []
    lost: list[tuple[int, str]] = []
    pool = WorkerPool(2, "127.0.0.1", 5060, lambda i, e: got.append((i, e)), lambda i, why: lost.append((i, why)))
    events = [MediaReady(leg="CA1", t=1.0), EventsDropped(total=5), DtmfReceived(leg="CA1", digit="7", t=2.0)]
    hello = Hello(version=PROTOCOL_VERSION, worker=1, capacity=4, sip="127.0.0.1:5061", pid=99)
    await pool._serve(_stream(hello, *events), _Writer())  # type: ignore[arg-type]
    assert got == [(1, events[0]), (1, events[2])]  # EventsDropped is the pool's own business
    assert pool.workers[1].dropped_events == 5
    assert pool.status()[1]["dropped_events"] == 5
    assert lost == [(1, "control channel closed")]  # the stream ended: the worker is down
    assert not pool.workers[1].up


# -- CallMedia: awaitable answers to commands ----------------------------------------------------------------


class _Sent:
    """The `send` of a CallMedia: records commands per worker; `up` False makes the worker unavailable."""

    def __init__(self) -> None:
        self.commands: list[tuple[int, Command]] = []
        self.up = True

    def __call__(self, worker: int, command: Command) -> bool:
        if self.up:
            self.commands.append((worker, command))
        return self.up

    def last(self) -> Command:
        return self.commands[-1][1]

    async def next(self) -> Command:
        """The next command sent, once the code under test got round to sending it."""
        count = len(self.commands)
        for _ in range(100):
            if len(self.commands) > count:
                return self.commands[count][1]
            await asyncio.sleep(0)
        raise AssertionError("no command was sent")


def _media(*legs: tuple[str, int]) -> tuple[CallMedia, _Sent]:
    sent = _Sent()
    registry = Legs()
    media = CallMedia(sent, registry)
    for sid, worker in legs:
        call = Call(sid=sid, account_sid="AC1", to="+1", from_="+2", direction=Direction.OUTBOUND_API,
                    status=CallStatus.IN_PROGRESS, worker=worker)
        registry.add(Leg(call, f"leg-{sid}", worker))
        media.on_event(sid, MediaReady(leg=f"leg-{sid}", t=0.0))
    return media, sent


async def test_a_failed_record_attach_fails_the_attach_and_not_the_recording() -> None:
    media, sent = _media(("CA1", 0), ("CA2", 0))
    rec_id, done = media.start_recording(["CA1"], "/tmp/rec/RE1", slots=2)
    attach = media.attach_recording(rec_id, 1, "CA2")
    assert [c for _, c in sent.commands] == [
        Record(id=rec_id, base="/tmp/rec/RE1", legs=("leg-CA1",), slots=2),
        RecordAttach(id=rec_id, index=1, leg="leg-CA2"),
    ]
    media.on_event(None, RecordAttachFailed(id=rec_id, index=1, leg="leg-CA2", error="leg has no active audio"))
    with pytest.raises(MediaError, match="leg has no active audio"):
        await attach
    await asyncio.sleep(0)
    assert not done.done()  # the bug: the worker used to answer with play_done, which completed the recording
    end = RecordDone(id=rec_id, frames=120, reason="stopped", lost_frames=2)
    media.on_event(None, end)
    assert await done == end


async def test_a_successful_attach_resolves() -> None:
    media, _ = _media(("CA1", 0), ("CA2", 0))
    rec_id, done = media.start_recording(["CA1"], "/tmp/rec/RE2", slots=2)
    attach = media.attach_recording(rec_id, 1, "CA2")
    media.on_event(None, RecordAttached(id=rec_id, index=1, leg="leg-CA2"))
    assert await attach is None and not done.done()


async def test_bridge_answers() -> None:
    media, sent = _media(("CA1", 0), ("CA2", 0), ("CA3", 1))
    ok = media.bridge("CA1", "CA2")
    command = sent.last()
    assert isinstance(command, Bridge) and (command.a, command.b) == ("leg-CA1", "leg-CA2")
    media.on_event(None, Bridged(id=command.id, a=command.a, b=command.b))
    assert await ok is None
    failing = media.bridge("CA1", "CA2")
    command = sent.last()
    assert isinstance(command, Bridge)
    media.on_event(None, BridgeFailed(id=command.id, a=command.a, b=command.b, error="leg-CA2 has no audio"))
    with pytest.raises(MediaError, match="cannot bridge: leg-CA2 has no audio"):
        await failing
    with pytest.raises(MediaError, match="one worker"):
        media.bridge("CA1", "CA3")
    sent.up = False
    with pytest.raises(MediaError, match="unavailable"):
        await media.bridge("CA1", "CA2")


async def test_play_answers() -> None:
    media, sent = _media(("CA1", 0))
    play = asyncio.create_task(media.play("CA1", "/tmp/a.wav"))
    command = await sent.next()
    assert isinstance(command, Play)
    media.on_event(None, PlayDone(id=command.id, leg="leg-CA1", reason="eof"))
    assert await play == "eof"
    play = asyncio.create_task(media.play("CA1", "/tmp/missing.wav"))
    command = await sent.next()
    assert isinstance(command, Play)
    media.on_event(None, PlayFailed(id=command.id, leg="leg-CA1", error="file not found"))
    with pytest.raises(MediaError, match=r"cannot play /tmp/missing\.wav: file not found"):
        await play
    play = asyncio.create_task(media.play("CA1", "/tmp/a.wav", loop=True))
    command = await sent.next()
    assert isinstance(command, Play) and command.loop
    play.cancel()
    with pytest.raises(asyncio.CancelledError):
        await play
    assert sent.last() == StopPlay(id=command.id)


async def test_tap_levels_arrive_in_order_and_end_with_the_tap() -> None:
    media, sent = _media(("CA1", 0))
    rec_id, done = media.start_recording(["CA1"], "/tmp/rec/RE3", level_ms=100)
    command = sent.last()
    assert isinstance(command, Record) and command.level_ms == 100
    levels = media.levels(rec_id)
    for rms in (12.0, 900.5):
        media.on_event(None, TapLevel(id=rec_id, rms=rms, t=0.0))
    media.on_event(None, RecordDone(id=rec_id, frames=10, reason="hangup"))
    assert [levels.get_nowait() for _ in range(3)] == [12.0, 900.5, None]
    assert (await done).reason == "hangup"
    assert media.levels(rec_id).get_nowait() is None  # asking after the end: ended at once


async def test_a_lost_worker_answers_everything_pending() -> None:
    media, sent = _media(("CA1", 0), ("CA2", 0), ("CA9", 1))
    play = asyncio.create_task(media.play("CA1", "/tmp/a.wav"))
    assert isinstance(await sent.next(), Play)
    rec_id, done = media.start_recording(["CA1"], "/tmp/rec/RE4", slots=2)
    attach = media.attach_recording(rec_id, 1, "CA2")
    bridge = media.bridge("CA1", "CA2")
    other_id, other = media.start_recording(["CA9"], "/tmp/rec/RE5")
    media.worker_lost(0)
    with pytest.raises(MediaError, match="media worker 0 exited"):
        await play
    assert await done == RecordDone(id=rec_id, frames=0, reason="worker_lost")  # what reached the disk is kept
    for pending in (attach, bridge):
        with pytest.raises(MediaError, match="media worker 0 exited"):
            await pending
    assert not other.done() and other_id.startswith("w1:")
    assert media.pending()["waiting"] == 1


async def test_a_recording_that_cannot_be_sent_fails_at_once() -> None:
    media, sent = _media(("CA1", 0))
    sent.up = False
    rec_id, done = media.start_recording(["CA1"], "/tmp/rec/RE6")
    assert await done == RecordFailed(id=rec_id, error="media worker 0 unavailable")


# -- the worker answers a failed attach with its own event -------------------------------------------------


def test_the_worker_answers_a_failed_attach_with_record_attach_failed() -> None:
    from switch.worker.failures import media_failure
    from switch.worker.media import MediaManager

    emitted: list[Event] = []
    manager = MediaManager(emitted.append, lambda command: None)
    manager.attach_record("w0:r7", 1, "CA3")  # no such recording any more
    assert emitted == [RecordAttachFailed(id="w0:r7", index=1, leg="CA3", error="no such recording (it ended)")]
    # a leg without audio: the engine answers each media command with its own failure
    assert media_failure(RecordAttach(id="w0:r7", index=1, leg="CA3"), "no audio") == RecordAttachFailed(
        id="w0:r7", index=1, leg="CA3", error="no audio")
    assert media_failure(Bridge(id="w0:b1", a="A", b="B"), "no audio") == BridgeFailed(
        id="w0:b1", a="A", b="B", error="no audio")
    assert media_failure(Record(id="w0:r8", base="/x"), "no audio") == RecordFailed(id="w0:r8", error="no audio")
    assert media_failure(Play(id="w0:p1", leg="A", path="/x.wav"), "no audio") == PlayFailed(
        id="w0:p1", leg="A", error="no audio")
    assert media_failure(StopPlay(id="w0:p1"), "no audio") is None


def test_one_leg_record_is_what_media_and_the_engine_share() -> None:
    registry = Legs()
    call = Call(sid="CA9", account_sid="AC1", to="+1", from_="+2", direction=Direction.INBOUND,
                status=CallStatus.RINGING, worker=1)
    leg = registry.add(Leg(call, "in-7", 1))
    assert registry["CA9"] is leg and registry.by_id("in-7") is leg and not leg.answered
    leg.answer_sent = True
    assert leg.answered
    media = CallMedia(_Sent(), registry)
    media.on_event("CA9", MediaReady(leg="in-7", t=0.0))
    assert leg.media_ready.is_set()
    assert registry.remove("CA9") is leg
    assert leg.gone and "CA9" not in registry and registry.by_id("in-7") is None


async def test_pool_sums_the_rtp_of_ended_legs_per_worker_for_healthz() -> None:
    got: list[tuple[int, Event]] = []
    pool = WorkerPool(2, "127.0.0.1", 5060, lambda i, e: got.append((i, e)), lambda i, why: None)
    a = RtpStats(rx_packets=250, rx_lost=2, rx_discarded=1, tx_packets=249, jb_lost=3, jb_discarded=4)
    b = RtpStats(streams=2, rx_packets=100, tx_packets=101)
    events = [Ended(leg="in1-1", code=200, reason="OK", answered=True, t=1.0, rtp=a),
              Ended(leg="in1-2", code=487, reason="Request Terminated", answered=False, t=2.0),  # never had audio
              Ended(leg="in1-3", code=200, reason="OK", answered=True, t=3.0, rtp=b)]
    hello = Hello(version=PROTOCOL_VERSION, worker=1, capacity=4, sip="127.0.0.1:5061", pid=99)
    await pool._serve(_stream(hello, *events), _Writer())  # type: ignore[arg-type]
    assert [e for _, e in got] == events  # still routed to the call engine
    status = pool.status()
    assert status[1]["rtp"] == {"legs": 2, "rx_packets": 350, "rx_lost": 2, "rx_discarded": 1, "tx_packets": 350,
                                "jb_lost": 3, "jb_discarded": 4}
    assert status[0]["rtp"]["legs"] == 0


def test_the_worker_sums_a_legs_streams() -> None:
    from types import SimpleNamespace as NS

    from switch.worker.rtpstat import add_stats, stream_stats

    def stat(rx: int, lost: int, jitter_n: int, jitter_max: int, tx: int) -> NS:
        rtcp = NS(rxStat=NS(pkt=rx, loss=lost, discard=1, reorder=0, dup=0, jitterUsec=NS(n=jitter_n, max=jitter_max)),
                  txStat=NS(pkt=tx))
        return NS(rtcp=rtcp, jbuf=NS(lost=0, discard=2, empty=9))

    first = stream_stats(stat(200, 1, 10, 1500, 201))
    assert first == RtpStats(rx_packets=200, rx_lost=1, rx_discarded=1, rx_jitter_max_us=1500, tx_packets=201,
                             jb_discarded=2, jb_empty=9)
    assert stream_stats(stat(0, 0, 0, -1, 5)).rx_jitter_max_us == 0  # no jitter sample: pjmedia's max is unset
    total = add_stats(add_stats(None, first), stream_stats(stat(50, 0, 3, 900, 49)))
    assert (total.streams, total.rx_packets, total.rx_lost, total.tx_packets, total.rx_jitter_max_us,
            total.jb_empty) == (2, 250, 1, 250, 1500, 18)
