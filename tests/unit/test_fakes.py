"""The fake worker pool answers each command as the protocol's table says a worker does (so the fast tier tests
the engine against the real protocol, not against a fake's own idea of it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from switch.workers import protocol as p
from tests.unit.fakes import FakePool, answer, early_media, hang_up, speak, virtual_time
from tests.unit.fakes.app import write_silence
from tests.unit.fakes.pool import HANDLED

pytestmark = virtual_time


def test_the_fake_handles_every_command_of_the_protocol() -> None:
    assert set(HANDLED) == set(p.COMMANDS)


def _pool() -> tuple[FakePool, list[p.Event], list[int]]:
    pool = FakePool()
    events: list[p.Event] = []
    lost: list[int] = []
    pool.connect(lambda _worker, event: events.append(event), lost.append)
    return pool, events, lost


def _kinds(events: list[p.Event]) -> list[str]:
    return [type(e).__name__ for e in events]


async def test_a_dialed_leg_follows_its_script() -> None:
    pool, events, _ = _pool()
    pool.far_end("bob", early_media(after=1) + answer(after=2) + hang_up(after=3))
    pool.send(0, p.Dial(leg="L1", uri="sip:bob@b.test"))
    await asyncio.sleep(10)
    assert _kinds(events) == ["InviteSent", "MediaReady", "Progress", "Answered", "Ended"]
    progress, ended = events[2], events[-1]
    assert isinstance(progress, p.Progress) and (progress.code, progress.sdp, progress.t) == (183, True, 1.0)
    assert isinstance(ended, p.Ended) and (ended.code, ended.answered, ended.t) == (200, True, 6.0)


async def test_our_hangup_before_the_answer_is_a_487() -> None:
    pool, events, _ = _pool()
    pool.send(0, p.Dial(leg="L1", uri="sip:bob@b.test"))  # no script: rings forever
    await asyncio.sleep(1)
    pool.send(0, p.Hangup(leg="L1", code=487))
    await asyncio.sleep(0)
    assert _kinds(events) == ["InviteSent", "Progress", "Ended"]
    assert isinstance(events[-1], p.Ended) and events[-1].code == 487


async def test_plays_end_at_eof_on_stop_or_with_their_leg(tmp_path: Path) -> None:
    pool, events, _ = _pool()
    wav = str(write_silence(tmp_path / "two.wav", 2.0))
    pool.incoming("caller", "+15550100")
    pool.send(0, p.Answer(leg="caller"))
    pool.send(0, p.Play(id="p1", leg="caller", path=wav))
    pool.send(0, p.Play(id="p2", leg="caller", path=str(tmp_path / "missing.wav")))
    pool.send(0, p.Play(id="p3", leg="caller", path=wav, loop=True))
    pool.send(0, p.Play(id="p4", leg="caller", path=wav, loop=True))
    await asyncio.sleep(3)
    pool.send(0, p.StopPlay(id="p3"))
    pool.send(0, p.Hangup(leg="caller", code=200))
    await asyncio.sleep(0)
    media = [(type(e).__name__, getattr(e, "id", ""), getattr(e, "reason", "")) for e in events
             if isinstance(e, p.PlayDone | p.PlayFailed | p.Ended)]
    assert media == [("PlayFailed", "p2", ""), ("PlayDone", "p1", "eof"), ("PlayDone", "p3", "stopped"),
                     ("PlayDone", "p4", "hangup"), ("Ended", "", "Normal call clearing")]


async def test_a_recording_writes_what_the_far_end_said(tmp_path: Path) -> None:
    pool, events, _ = _pool()
    pool.far_end("bob", answer(after=0) + speak(1, after=1.1))
    pool.send(0, p.Dial(leg="L1", uri="sip:bob@b.test"))
    await asyncio.sleep(0)
    base = str(tmp_path / "rec")
    pool.send(0, p.Record(id="r1", base=base, legs=("L1",), level_ms=500))
    await asyncio.sleep(3)
    pool.send(0, p.StopRecord(id="r1"))
    await asyncio.sleep(0)
    done = events[-1]
    assert isinstance(done, p.RecordDone) and (done.frames, done.reason) == (150, "stopped")
    levels = [round(e.rms) for e in events if isinstance(e, p.TapLevel)]
    assert levels == [0, 0, 2121, 2121, 0]  # every half second until the stop; sound from 1.1 s to 2.1 s
    samples = np.fromfile(f"{base}.leg0.raw", dtype="<i2")
    loud = np.abs(samples.reshape(-1, 160)).max(axis=1) > 1000
    assert len(loud) == 150 and loud.sum() == 50 and loud[55:105].all()


async def test_a_bridge_needs_audio_on_both_legs_and_may_be_made_to_fail() -> None:
    pool, events, _ = _pool()
    pool.far_end("bob", answer())
    pool.send(0, p.Dial(leg="L1", uri="sip:bob@b.test"))
    pool.send(0, p.Dial(leg="L2", uri="sip:carol@c.test"))
    await asyncio.sleep(1)
    pool.send(0, p.Bridge(id="b1", a="L1", b="L2"))  # carol has no audio yet
    pool.fail_bridges = "no slot"
    pool.send(0, p.Bridge(id="b2", a="L1", b="L1"))
    await asyncio.sleep(0)
    failures = [(e.id, e.error) for e in events if isinstance(e, p.BridgeFailed)]
    assert failures == [("b1", "a leg has no audio"), ("b2", "no slot")]


async def test_a_dead_worker_says_nothing_more_and_takes_no_commands() -> None:
    pool, events, lost = _pool()
    pool.far_end("bob", answer(after=5))
    pool.send(0, p.Dial(leg="L1", uri="sip:bob@b.test"))
    await asyncio.sleep(1)
    pool.kill(0)
    await asyncio.sleep(10)
    assert _kinds(events) == ["InviteSent", "Progress"]
    assert lost == [0]
    assert pool.send(0, p.Hangup(leg="L1", code=200)) is False
    assert pool.trace == ["dial bob"]


async def test_failures_on_demand(tmp_path: Path) -> None:
    pool, events, _ = _pool()
    pool.far_end("bob", answer(after=0))
    pool.send(0, p.Dial(leg="L1", uri="sip:bob@b.test"))
    await asyncio.sleep(0)
    pool.fail_records = "disk full"
    pool.send(0, p.Record(id="r1", base=str(tmp_path / "a"), legs=("L1",)))
    pool.fail_records, pool.fail_attaches, pool.lost_frames = None, "no audio", 7
    pool.send(0, p.Record(id="r2", base=str(tmp_path / "b"), legs=("L1",), slots=2))
    pool.send(0, p.RecordAttach(id="r2", index=1, leg="L1"))
    await asyncio.sleep(1)
    pool.send(0, p.StopRecord(id="r2"))
    await asyncio.sleep(0)
    answers = [e for e in events if isinstance(e, p.RecordFailed | p.RecordAttachFailed | p.RecordDone)]
    assert answers == [p.RecordFailed(id="r1", error="disk full"),
                       p.RecordAttachFailed(id="r2", index=1, leg="L1", error="no audio"),
                       p.RecordDone(id="r2", frames=50, reason="stopped", lost_frames=7)]
