"""Worker media end to end: the switch in-process, the lab phone as the far end, audio checked by FFT.

Plays a tone file to the phone (the phone's own recording must hold that tone), taps the leg while the phone
plays its tone (the tap must hold the phone's tone), interrupts a looping player, and reads the raw tap
after the worker is killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from media.audio import write_wav
from media.recording import finalize, read_raw
from media.tones import dominant_frequency, rms, sine
from switch.app import Switch, start_switch
from switch.core.service import CallUpdate
from switch.core.status import CallStatus
from switch.workers.protocol import RecordDone
from tests.peers.inprocess import answered_call, assert_heard_second_of_tone, in_process_config, play_and_hang_up
from tests.peers.phone import PhoneProcess


@pytest.fixture
async def switch(tmp_path: Path) -> AsyncIterator[Switch]:
    running = await start_switch(in_process_config(tmp_path))
    yield running
    await running.stop()


async def test_play_reaches_the_far_end(switch: Switch, tmp_path: Path) -> None:
    tone = write_wav(tmp_path / "tone.wav", sine(700.0, 1.0))
    heard = tmp_path / "heard.wav"
    with PhoneProcess(["--answer", "auto", "--record", str(heard), "--exit-after-calls", "1"]) as phone:
        sid = await answered_call(switch, phone)
        await play_and_hang_up(switch, phone, sid, tone)
    assert_heard_second_of_tone(heard, 700.0)


async def test_tap_records_the_caller_and_a_looping_player_stops_at_once(switch: Switch, tmp_path: Path) -> None:
    tone = write_wav(tmp_path / "tone.wav", sine(500.0, 0.5))
    with PhoneProcess(["--answer", "auto", "--tone", "1200", "--exit-after-calls", "1"]) as phone:
        sid = await answered_call(switch, phone)
        base = tmp_path / "rec" / "tap"
        rec_id, done = switch.calls.media.start_recording([sid], str(base), level_ms=100)
        levels = switch.calls.media.levels(rec_id)
        player = asyncio.create_task(switch.calls.media.play(sid, str(tone), loop=True))
        await asyncio.sleep(1.5)
        assert not player.done()  # a looping player keeps going past the file's end
        loop = asyncio.get_running_loop()
        started = loop.time()
        player.cancel()
        with pytest.raises(asyncio.CancelledError):
            await player
        switch.calls.media.stop_recording(rec_id)
        result = await asyncio.wait_for(done, 5)
        assert loop.time() - started < 0.5
        await switch.calls.update_call(sid, CallUpdate(status=CallStatus.COMPLETED))
        await phone.event("hangup", timeout=10)
    assert isinstance(result, RecordDone) and result.reason == "stopped" and result.lost_frames == 0
    assert result.frames > 60  # ~1.5 s of 20 ms frames
    heard = [levels.get_nowait() for _ in range(levels.qsize())]
    assert heard[-1] is None  # the tap's end closes its levels
    assert abs(len(heard) - 1 - result.frames // 5) <= 1  # one TapLevel per 100 ms of written frames
    assert all(level is not None and level > 1000 for level in heard[1:-1])  # the phone's tone, every 100 ms
    raw = read_raw(Path(f"{base}.leg0.raw"))
    assert raw is not None and len(raw) == result.frames * 160
    assert abs(dominant_frequency(raw[4000:], 8000) - 1200.0) < 10
    info = finalize(base, tmp_path / "tap.wav", channels=1)
    assert info.samples == len(raw)


async def test_tap_survives_a_killed_worker(switch: Switch, tmp_path: Path) -> None:
    with PhoneProcess(["--answer", "auto", "--tone", "900", "--exit-after-calls", "1"]) as phone:
        sid = await answered_call(switch, phone)
        base = tmp_path / "crash" / "tap"
        rec_id, done = switch.calls.media.start_recording([sid], str(base))
        await asyncio.sleep(1.2)
        pid = switch.pool.workers[0].pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        result = await asyncio.wait_for(done, 5)
        assert result == RecordDone(id=rec_id, frames=0, reason="worker_lost")  # it ended with the worker
        for _ in range(100):
            if sid not in switch.calls.live:
                break
            await asyncio.sleep(0.05)
        assert switch.calls.get_call(sid) is not None
        assert switch.calls.get_call(sid).status is CallStatus.FAILED  # type: ignore[union-attr]
    raw = read_raw(Path(f"{base}.leg0.raw"))
    assert raw is not None and len(raw) >= 8000 * 0.8  # what was recorded up to the kill is on disk
    assert rms(raw[2000:]) > 1000
    assert abs(dominant_frequency(raw[2000:], 8000) - 900.0) < 10
