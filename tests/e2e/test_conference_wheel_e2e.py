"""Issue 16 §3: a conference larger than one worker, on the PyPI wheel (4 call legs per worker).

The switch runs as a real process on the wheel (`SOFTSWITCH_ENGINE=wheel`) with 3 workers: 12 legs, so 10 calls
into one room must spread over all three workers (asserted from /healthz), and the room is mixed across them by
the control plane's links.  Each of the 10 lab phones plays its own tone (300..2100 Hz, 200 Hz apart: the ±20 Hz
bands never overlap, and no tone is another's harmonic within the band) and records what it hears.  After all are
in, every phone must hear the other nine, each with a fair share of the energy, and not itself.

The tones are quiet (`AMPLITUDE` of full scale, from WAV files played with `--play`): nine of them summed stay
below full scale, so neither the bridges nor the mixer's μ-law links clip and smear energy into other bands.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest

from media.audio import read_wav, write_wav
from media.tones import band_energy_ratio, rms, sine
from tests.peers.harness import SwitchProcess, wait_until
from tests.peers.phone import PhoneProcess

pytestmark = pytest.mark.e2e

RATE = 8000
TONES = tuple(float(hz) for hz in range(300, 2101, 200))  # 10 phones
AMPLITUDE = 0.08  # nine of these summed peak at 0.72 of full scale
WORKERS = 3  # x 4 legs on the wheel = 12 >= 10
TWIML = '<Response><Dial><Conference beep="false">big</Conference></Dial></Response>'
SETTLE = 2.5  # seconds after the last answer before the window (joins, links, jitter queues)
WINDOW = 2.0  # seconds measured


@pytest.fixture(scope="module")
def wheel_switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwitchProcess]:
    """The switch on the wheel with a fixed pool of 3 workers ([server] workers = 3)."""
    proc = SwitchProcess(tmp_path_factory.mktemp("conf-wheel"), workers=WORKERS,
                         extra_env={"SOFTSWITCH_ENGINE": "wheel"})
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()


def _start_phone(tmp_path: Path, index: int, hz: float) -> PhoneProcess:
    tone = write_wav(tmp_path / f"tone-{int(hz)}.wav", sine(hz, 10.0, rate=RATE, amplitude=AMPLITUDE), RATE)
    phone = PhoneProcess(["--answer", "auto", "--play", str(tone), "--record", str(tmp_path / f"heard-{index}.wav")],
                         commands=True, max_seconds=60.0)
    return phone.start()


def _assert_hears(samples: np.ndarray, own: float, what: str) -> None:
    """Every tone but `own` has a fair share of `samples` (a ninth is 0.111), `own` none, together nearly all."""
    others = [hz for hz in TONES if hz != own]
    shares = {hz: band_energy_ratio(samples, RATE, hz) for hz in TONES}
    detail = f"{what}: rms {rms(samples):.0f}, shares {({int(k): round(v, 3) for k, v in shares.items()})}"
    assert rms(samples) > 300, detail
    assert all(shares[hz] > 0.75 / len(others) for hz in others), detail
    assert shares[own] < 0.01, detail
    assert sum(shares[hz] for hz in others) > 0.85, detail


def test_ten_phones_on_three_wheel_workers_each_hear_the_other_nine(wheel_switch: SwitchProcess,
                                                                    tmp_path: Path) -> None:
    _, health = wheel_switch.healthz()
    assert [("(wheel)" in w["engine"], w["capacity"]) for w in health["workers"]] == [(True, 4)] * WORKERS, health
    client = wheel_switch.client()
    with ExitStack() as stack, ThreadPoolExecutor(len(TONES)) as pool:
        phones = list(pool.map(lambda item: _start_phone(tmp_path, *item), enumerate(TONES)))
        for phone in phones:
            stack.callback(phone.stop)
        sids = []
        for phone in phones:  # one at a time: the pool puts each on the worker with most free legs
            sids.append(client.calls.create(to=phone.uri("conf"), from_="+15550123", twiml=TWIML).sid)
            phone.wait_for("answered", 15)
        answered = [phone.wait_for("answered", 1)["t"] for phone in phones]
        conf = client.conferences.list(friendly_name="big", status="in-progress")[0]
        wait_until(lambda: len(client.conferences(conf.sid).participants.list()) == len(TONES), 10,
                   "ten participants")
        _, health = wheel_switch.healthz()
        placed = [w["in_use"] for w in health["workers"]]
        assert sorted(placed) == [3, 3, 4], placed  # the room spans every worker
        time.sleep(SETTLE + WINDOW)
        end = time.time() - 0.2
        start = end - WINDOW
        for phone in phones:
            phone.command("hangup")
        heard = []
        for phone in phones:
            event = phone.wait_for("hangup", 10)
            samples, rate = read_wav(Path(event["recording"]))
            assert rate == RATE
            heard.append(samples)
    for index, hz in enumerate(TONES):
        a, b = int((start - answered[index]) * RATE), int((end - answered[index]) * RATE)
        assert a >= 0 and b <= len(heard[index]), (index, a, b, len(heard[index]))
        _assert_hears(heard[index][a:b], hz, f"phone {index} ({hz:g} Hz)")
