"""Fakes for the fast tier: a scripted worker pool, the app's TwiML, speech and audio, and a switch made of them.

`FakeSwitch` (switch.py) runs the real call engine, recordings, voice engine, interpreter and verbs on
`FakePool` (pool.py), whose far ends follow `Script`s (script.py); `FakeFetcher`, `FakeSpeech` and `FakeAudio`
(app.py) stand in for HTTP and espeak-ng.  Tests run on looptime's virtual clock: ring timeouts, Pause, Gather
timeouts and time limits take no real time.  A test module says so with `pytestmark = virtual_time`.
"""

import pytest

from tests.unit.fakes.app import FakeAudio, FakeFetcher, FakeSpeech, Request
from tests.unit.fakes.legs import FakeLeg
from tests.unit.fakes.pool import FakePool
from tests.unit.fakes.script import (
    Script,
    answer,
    busy,
    decline,
    dial_fails,
    early_media,
    hang_up,
    no_answer,
    press,
    refer,
    ring,
    speak,
    wait,
)
from tests.unit.fakes.switch import ACCOUNT, BASE_URL, FakeSwitch

# Virtual event-loop time for the test; a test whose loop waits on nothing at all (a deadlock: no timer, no
# thread, and no I/O exists in this tier) fails after one real second instead of hanging until pytest-timeout.
virtual_time = pytest.mark.looptime(idle_timeout=1.0)

__all__ = [
    "ACCOUNT",
    "BASE_URL",
    "FakeAudio",
    "FakeFetcher",
    "FakeLeg",
    "FakePool",
    "FakeSpeech",
    "FakeSwitch",
    "Request",
    "Script",
    "answer",
    "busy",
    "decline",
    "dial_fails",
    "early_media",
    "hang_up",
    "no_answer",
    "press",
    "refer",
    "ring",
    "speak",
    "virtual_time",
    "wait",
]
