"""Audio taps end to end: the switch in-process, a lab phone as the far end, audio measured by FFT.

A tap hands the control plane the phone's audio (inbound) and what the switch plays to the phone (outbound), 20 ms
of μ-law at a time, numbered without gaps; audio sent into an injecting tap reaches the phone's ear in real time,
marks come back once their audio has played, `clear` drops the rest at once, and a tap ends with its call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from media.audio import read_wav, write_wav
from media.tones import band_energy_ratio, dominant_frequency, rms, sine
from media.ulaw import ulaw_decode, ulaw_encode
from switch.app import Switch, start_switch
from switch.core.service import CallUpdate
from switch.core.status import CallStatus
from switch.workers.media_taps import AudioFrame, AudioTap
from tests.peers.inprocess import answered_call, in_process_config
from tests.peers.phone import PhoneProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
async def switch(tmp_path: Path) -> AsyncIterator[Switch]:
    running = await start_switch(in_process_config(tmp_path))
    yield running
    await running.stop()


async def _collect(tap: AudioTap, seconds: float) -> list[AudioFrame]:
    frames: list[AudioFrame] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frame = await asyncio.wait_for(tap.frames.get(), max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        if frame is None:
            break
        frames.append(frame)
    return frames


def _pcm(frames: list[AudioFrame], track: str) -> np.ndarray:
    data = b"".join(ulaw_decode(f.payload) for f in frames if f.track == track)
    return np.frombuffer(data, dtype=np.int16)


async def test_a_tap_hears_both_tracks_in_numbered_frames(switch: Switch, tmp_path: Path) -> None:
    tone = write_wav(tmp_path / "tone.wav", sine(700.0, 3.0))
    with PhoneProcess(["--answer", "auto", "--tone", "440"]) as phone:
        sid = await answered_call(switch, phone)
        tap = await switch.calls.media.tap(sid, ("inbound", "outbound"))
        playing = asyncio.create_task(switch.calls.media.play(sid, str(tone)))
        frames = await _collect(tap, 1.5)
        tap.stop()
        assert await asyncio.wait_for(_collect(tap, 5), 5) is not None
        assert tap.reason == "stopped"
        await switch.calls.update_call(sid, CallUpdate(status=CallStatus.COMPLETED))
        await asyncio.wait_for(playing, 5)
    for track in ("inbound", "outbound"):
        seqs = [f.seq for f in frames if f.track == track]
        assert seqs == list(range(len(seqs))) and len(seqs) >= 60  # 1.5 s of 20 ms frames, no gap
        assert all(len(f.payload) == 160 and f.timestamp == f.seq * 20 for f in frames if f.track == track)
    inbound, outbound = _pcm(frames, "inbound"), _pcm(frames, "outbound")
    assert abs(dominant_frequency(inbound[4000:], 8000) - 440.0) < 10  # the phone
    assert abs(dominant_frequency(outbound[4000:], 8000) - 700.0) < 10  # the switch's player, to the phone


async def test_injected_audio_plays_in_real_time_with_marks_and_clear(switch: Switch, tmp_path: Path) -> None:
    heard = tmp_path / "heard.wav"
    with PhoneProcess(["--answer", "auto", "--record", str(heard)]) as phone:
        sid = await answered_call(switch, phone)
        tap = await switch.calls.media.tap(sid, ("outbound",), inject=True)
        tone = ulaw_encode(sine(1000.0, 1.0).tobytes())
        started = time.monotonic()
        tap.send(tone[:3000])  # odd sizes: the worker cuts whole frames and keeps the rest
        tap.send(tone[3000:])
        tap.mark("one-second")
        assert await asyncio.wait_for(tap.marks.get(), 5) == "one-second"
        elapsed = time.monotonic() - started
        tap.send(ulaw_encode(sine(1000.0, 5.0).tobytes()))
        tap.mark("never-played")
        await asyncio.sleep(0.5)
        while not tap.frames.empty():  # what the tap heard so far: the first second and a half
            tap.frames.get_nowait()
        cleared_at = time.monotonic()
        tap.clear()
        assert await asyncio.wait_for(tap.marks.get(), 5) == "never-played"
        clear_delay = time.monotonic() - cleared_at
        frames = await _collect(tap, 1.0)
        await switch.calls.update_call(sid, CallUpdate(status=CallStatus.COMPLETED))
        await phone.event("hangup", timeout=10)
        assert await asyncio.wait_for(_collect(tap, 5), 5) == [] or tap.ended.is_set()
    assert 0.9 < elapsed < 1.4, elapsed  # paced: one second of audio takes one second
    assert clear_delay < 0.2, clear_delay
    after = [rms(np.frombuffer(ulaw_decode(f.payload), dtype=np.int16)) for f in frames if f.track == "outbound"]
    loud = [i for i, level in enumerate(after) if level > 100]
    assert len(after) > 30 and loud == list(range(len(loud))) and len(loud) <= 2, loud  # cut within 40 ms
    samples, rate = read_wav(heard)
    loud = np.nonzero(np.abs(samples) > 2000)[0]
    assert len(loud) and band_energy_ratio(samples[loud[0]:loud[0] + rate], rate, 1000.0) > 0.8
    assert (loud[-1] - loud[0]) / rate < 2.0  # one second, then at most 0.5 s more before the clear


async def test_a_tap_ends_with_its_call_and_refuses_a_bad_track(switch: Switch) -> None:
    with PhoneProcess(["--answer", "auto", "--tone", "500"]) as phone:
        sid = await answered_call(switch, phone)
        with pytest.raises(Exception, match="tracks"):
            await switch.calls.media.tap(sid, ("sideways",))
        tap = await switch.calls.media.tap(sid)
        await switch.calls.update_call(sid, CallUpdate(status=CallStatus.COMPLETED))
        await asyncio.wait_for(tap.ended.wait(), 5)
    assert tap.reason == "hangup"
