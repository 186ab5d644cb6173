"""The conference bridge's clock of an idle worker (switch.worker.media_clock), end to end: the switch in-process,
the lab phone as the far end, audio checked by FFT.

The clock is pjmedia's master-port thread, named "clock" in /proc.  It stops once the worker has held nothing
for IDLE_S, runs again for the next call, keeps running through a call that only holds (`<Pause>`, nothing
connected in the bridge) so that its audio still flows, and stops again after the last call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from media.audio import write_wav
from media.tones import sine
from switch.app import Switch, start_switch
from switch.worker.media_clock import IDLE_S
from tests.peers.inprocess import answered_call, assert_heard_second_of_tone, in_process_config, play_and_hang_up
from tests.peers.phone import PhoneProcess


@pytest.fixture
async def switch(tmp_path: Path) -> AsyncIterator[Switch]:
    running = await start_switch(in_process_config(tmp_path))
    yield running
    await running.stop()


def clock_thread(pid: int) -> bool:
    """Whether the worker process `pid` has pjmedia's clock thread."""
    tasks = Path(f"/proc/{pid}/task")
    names = []
    for task in tasks.iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # the thread ended while we looked
            continue
    return "clock" in names


async def clock_becomes(pid: int, running: bool, within: float) -> float:
    """Wait until the clock thread is (or is not) there; the seconds it took."""
    started = time.monotonic()
    while clock_thread(pid) is not running:
        assert time.monotonic() - started < within, f"the clock thread is still {'absent' if running else 'there'}"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_an_idle_workers_clock_stops_and_runs_again_for_the_next_call(switch: Switch, tmp_path: Path) -> None:
    pid = switch.pool.workers[0].pid
    assert pid is not None
    await clock_becomes(pid, False, IDLE_S + 3)
    tone = write_wav(tmp_path / "tone.wav", sine(700.0, 1.0))
    heard = tmp_path / "heard.wav"
    with PhoneProcess(["--answer", "auto", "--record", str(heard), "--exit-after-calls", "1"]) as phone:
        sid = await answered_call(switch, phone)  # held by a <Pause>: nothing connected in the bridge
        assert clock_thread(pid)
        await asyncio.sleep(IDLE_S + 1)
        assert clock_thread(pid)  # a live call keeps it, connected or not
        await play_and_hang_up(switch, phone, sid, tone)
    assert_heard_second_of_tone(heard, 700.0)
    took = await clock_becomes(pid, False, IDLE_S + 3)
    assert took >= IDLE_S - 0.5  # not before the worker was quiet for IDLE_S
