"""The switch in the test's own process (`start_switch`), for tests that drive the call engine and media directly:
its configuration, a call to a lab phone answered with its media up, and a tone played to it and measured."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from media.audio import read_wav
from media.tones import dominant_frequency
from switch.app import Switch
from switch.core.config import Config
from switch.core.service import CallUpdate, NewCall
from switch.core.status import CallStatus
from tests.peers.harness import free_port_block, free_tcp_port
from tests.peers.phone import PhoneProcess


def in_process_config(tmp_path: Path) -> Config:
    """One worker on free ports, data under `tmp_path`, a fixed account."""
    return Config(http_port=free_tcp_port(), sip_port=free_port_block(2), data_dir=tmp_path / "data", workers=1,
                  account_sid="AC" + "1" * 32, auth_token="t" * 32)


async def answered_call(switch: Switch, phone: PhoneProcess) -> str:
    """A REST-style call to `phone` held by a long `<Pause>`: its CallSid once it is in progress with audio."""
    call = await switch.calls.create_call(NewCall(to=phone.uri("bob"), from_="+15550199",
                                                  twiml="<Response><Pause length='30'/></Response>"))
    await phone.event("answered", timeout=10)
    for _ in range(100):
        if switch.calls.live[call.sid].status is CallStatus.IN_PROGRESS:
            break
        await asyncio.sleep(0.02)
    await switch.calls.media.wait_ready(call.sid)
    return call.sid


async def play_and_hang_up(switch: Switch, phone: PhoneProcess, sid: str, path: Path) -> None:
    """Play `path` to its end on the call, hang the call up, and wait for the phone to see it and exit."""
    assert await switch.calls.media.play(sid, str(path)) == "eof"
    await switch.calls.update_call(sid, CallUpdate(status=CallStatus.COMPLETED))
    await phone.event("hangup", timeout=10)
    await phone.wait_async(10)


def assert_heard_second_of_tone(heard: Path, hz: float) -> None:
    """The phone's recording `heard` holds about a second of loud audio whose dominant frequency is `hz` (FFT)."""
    samples, rate = read_wav(heard)
    loud = samples[np.abs(samples.astype(np.int32)) > 1000]
    assert len(loud) > 0.8 * rate  # about a second of tone arrived
    assert abs(dominant_frequency(samples, rate) - hz) < 10
