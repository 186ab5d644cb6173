"""Conference mixing end to end: the switch in-process, three lab phones each sending its own tone, audio by FFT.

Each phone plays a tone and records what it hears.  The test marks, while the calls run, how many samples each
phone's recording holds (the lab phone's WAV is valid after every write), so every phase of a test (everyone in,
one muted, a conference play, one gone) is cut out of each recording and measured on its own: a member must hear
the other members' tones and not its own.  Members on one worker are mixed by its conference bridge; members on
two or three workers (`workers=N`, calls spread by the pool's most-free-slots choice, asserted) through the
control plane's links and its 20 ms mix-minus ticker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from media.audio import read_wav, write_wav
from media.tones import band_energy_ratio, sine
from switch.app import Switch, start_switch
from switch.core.service import CallUpdate
from switch.core.status import CallStatus
from switch.tools.ports import free_port_block
from switch.workers.conference_mix import ConferenceMixer
from switch.workers.protocol import RecordDone
from tests.peers.inprocess import answered_call, in_process_config
from tests.peers.phone import PhoneProcess

pytestmark = pytest.mark.e2e

TONES = (440.0, 700.0, 1100.0)  # one per phone: whole cycles per second, no common harmonics
PLAYED = 300.0  # the conference play
RATE = 8000
HEARD = 0.15  # a tone's share of a segment's energy when it is heard (two or three tones share it)
ABSENT = 0.02  # ... when it is not
GUARD = 0.5  # seconds left out at a segment's start (cross-worker latency, mute taking effect)


@contextlib.asynccontextmanager
async def running_switch(tmp_path: Path, workers: int) -> AsyncIterator[Switch]:
    config = dataclasses.replace(in_process_config(tmp_path), workers=workers, sip_port=free_port_block(workers + 1))
    switch = await start_switch(config)
    try:
        yield switch
    finally:
        await switch.stop()


@contextlib.contextmanager
def tone_phones(tmp_path: Path) -> Iterator[list[PhoneProcess]]:
    """Three phones, each playing its tone of TONES and recording what it hears into heard-<i>.wav."""
    with contextlib.ExitStack() as stack:
        phones = []
        for index, freq in enumerate(TONES):
            tone = write_wav(tmp_path / f"tone-{index}.wav", sine(freq, 2.0, amplitude=0.3))
            args = ["--answer", "auto", "--play", str(tone), "--record", str(tmp_path / f"heard-{index}.wav")]
            phones.append(stack.enter_context(PhoneProcess(args)))
        yield phones


async def three_calls(switch: Switch, phones: list[PhoneProcess]) -> list[str]:
    return list(await asyncio.gather(*(answered_call(switch, phone) for phone in phones)))


def marks(tmp_path: Path) -> list[int]:
    """How many samples each phone's recording holds now."""
    return [max(0, (tmp_path / f"heard-{i}.wav").stat().st_size - 44) // 2 for i in range(len(TONES))]


def segment(tmp_path: Path, index: int, start: list[int], end: list[int]) -> np.ndarray:
    samples, rate = read_wav(tmp_path / f"heard-{index}.wav")
    assert rate == RATE
    piece = samples[start[index] + int(GUARD * RATE):end[index]]
    assert len(piece) > 0.5 * RATE, (index, start, end)
    return piece


def bands(samples: np.ndarray) -> dict[float, float]:
    return {freq: round(band_energy_ratio(samples, RATE, freq), 3) for freq in (*TONES, PLAYED)}


def assert_hears(samples: np.ndarray, heard: set[float], absent: set[float], what: str) -> None:
    share = bands(samples)
    assert all(share[f] > HEARD for f in heard), f"{what}: {share}"
    assert all(share[f] < ABSENT for f in absent), f"{what}: {share}"


def assert_mesh(tmp_path: Path, start: list[int], end: list[int], present: set[int], what: str) -> None:
    """Every phone in `present` hears the tones of the others in `present` and not its own."""
    for index in present:
        others = {TONES[i] for i in present if i != index}
        assert_hears(segment(tmp_path, index, start, end), others, {TONES[index]}, f"{what}, phone {index}")


async def hang_up(switch: Switch, sids: list[str], phones: list[PhoneProcess]) -> None:
    for sid in sids:
        await switch.calls.update_call(sid, CallUpdate(status=CallStatus.COMPLETED))
    for phone in phones:
        await phone.event("hangup", timeout=10)


async def test_three_members_on_one_worker(tmp_path: Path) -> None:
    """Mesh, mute, conference play, recording, speaking events and leave, all on one worker's bridge."""
    played = write_wav(tmp_path / "played.wav", sine(PLAYED, 1.2, amplitude=0.3))
    async with running_switch(tmp_path, workers=1) as switch:
        mixer: ConferenceMixer = switch.calls.media.conferences
        speaking: list[tuple[str, str, bool]] = []
        mixer.on_speaking = lambda conf, sid, on: speaking.append((conf, sid, on))
        left: list[tuple[str, str, str]] = []
        mixer.on_left = lambda conf, sid, reason: left.append((conf, sid, reason))
        with tone_phones(tmp_path) as phones:
            sids = await three_calls(switch, phones)
            assert {switch.calls.live[sid].worker for sid in sids} == {0}
            for sid in sids:
                await mixer.join("room", sid)
            assert sorted(mixer.members("room")) == sorted(sids) and mixer.workers("room") == [0]
            rec_id = await mixer.start_recording("room", str(tmp_path / "rec" / "room.wav"))
            t0 = marks(tmp_path)
            await asyncio.sleep(1.5)
            t1 = marks(tmp_path)
            result = await mixer.stop_recording(rec_id)
            mixer.mute("room", sids[2], True)
            await asyncio.sleep(1.5)
            t2 = marks(tmp_path)
            mixer.mute("room", sids[2], False)
            reason = await mixer.play("room", str(played))
            t3 = marks(tmp_path)
            await mixer.leave("room", sids[1])
            assert sorted(mixer.members("room")) == sorted([sids[0], sids[2]])
            await asyncio.sleep(1.5)
            t4 = marks(tmp_path)
            await hang_up(switch, sids, phones)
            for _ in range(100):
                if not mixer.members("room"):
                    break
                await asyncio.sleep(0.02)
    # (a) everyone hears exactly the two others
    assert_mesh(tmp_path, t0, t1, {0, 1, 2}, "all in")
    # (b) muted: phone 2's tone is gone for the others, and phone 2 still hears them
    for index in (0, 1):
        assert_hears(segment(tmp_path, index, t1, t2), {TONES[1 - index]}, {TONES[index], TONES[2]}, f"mute, {index}")
    assert_hears(segment(tmp_path, 2, t1, t2), {TONES[0], TONES[1]}, {TONES[2]}, "mute, the muted one")
    # (e) the conference play reaches every member
    assert reason == "eof"
    for index in range(3):
        assert bands(segment(tmp_path, index, t2, t3))[PLAYED] > HEARD, index
    # (d) phone 1 left: the others hear only each other, phone 1 hears nobody
    assert_mesh(tmp_path, t3, t4, {0, 2}, "after the leave")
    assert max(bands(segment(tmp_path, 1, t3, t4))[f] for f in (TONES[0], TONES[2])) < ABSENT
    # (f) the recording holds all three tones
    assert isinstance(result, RecordDone) and result.reason == "stopped" and result.frames >= 60, result
    recorded, rate = read_wav(tmp_path / "rec" / "room.wav")
    assert abs(len(recorded) - result.frames * 160) <= 160 and rate == RATE
    share = bands(recorded[int(0.2 * RATE):])
    assert all(share[f] > HEARD for f in TONES), share
    # (g) each member that sends a tone is reported speaking, once, soon after joining
    assert {sid for conf, sid, on in speaking if on and conf == "room"} == set(sids)
    assert ("room", sids[1], "left") in left and {r for _, _, r in left} <= {"left", "hangup"}


@pytest.mark.parametrize("workers", [2, 3])
async def test_members_on_several_workers(tmp_path: Path, workers: int) -> None:
    """Members spread over workers hear each other once through the links; a leave shrinks and then ends them."""
    async with running_switch(tmp_path, workers=workers) as switch:
        mixer: ConferenceMixer = switch.calls.media.conferences
        with tone_phones(tmp_path) as phones:
            sids = []
            for phone in phones:  # one at a time: the pool puts each on the worker with most free slots
                sids.append(await answered_call(switch, phone))
            placed = [switch.calls.live[sid].worker for sid in sids]
            assert len(set(placed)) == workers, placed
            for sid in sids:
                await mixer.join("spread", sid)
            assert mixer.workers("spread") == list(range(workers))
            rec_id = await mixer.start_recording("spread", str(tmp_path / "rec" / "spread.wav"))
            t0 = marks(tmp_path)
            await asyncio.sleep(2.0)
            t1 = marks(tmp_path)
            result = await mixer.stop_recording(rec_id)
            ticks, late = mixer.ticks, mixer.late_ticks
            # phone 2 leaves: with 2 workers, phones 0 and 1 are on two workers still; with 3 too
            await mixer.leave("spread", sids[2])
            await asyncio.sleep(1.5)
            t2 = marks(tmp_path)
            await mixer.leave("spread", sids[1])  # one member left: no link any more
            members_left, links_left = mixer.workers("spread"), mixer.links("spread")
            await hang_up(switch, sids, phones)
    assert_mesh(tmp_path, t0, t1, {0, 1, 2}, f"{workers} workers")
    assert_mesh(tmp_path, t1, t2, {0, 1}, f"{workers} workers, after a leave")
    assert max(bands(segment(tmp_path, 2, t1, t2))[f] for f in TONES[:2]) < ABSENT
    assert members_left == [placed[0]] and links_left == []
    assert isinstance(result, RecordDone) and result.frames >= 80, result
    recorded, _ = read_wav(tmp_path / "rec" / "spread.wav")
    share = bands(recorded[int(0.3 * RATE):])
    assert all(share[f] > HEARD for f in TONES), share  # one worker's recording hears the others through its link
    assert ticks >= 80 and late <= ticks // 10, (ticks, late)
