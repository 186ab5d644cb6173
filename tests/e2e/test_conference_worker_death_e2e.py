"""Issue 16 with issue 13's standard: a media worker holding one member of a room is killed (SIGKILL) mid-call.

The room spans 2 workers (A and C on one, B on the other).  When B's worker dies, B's far end is told (the reaper's
BYE), B leaves the room (participant-leave), and A and C go on hearing each other: the room does not end, and the
surviving worker's mix is not disturbed.  The room ends when the last of A and C hangs up.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.e2e.test_conference_e2e import TONES, Member, conference_events, conference_twiml, dial_in, hears
from tests.peers.harness import SwitchProcess, WebhookSink, wait_until


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("conf-death"), workers=2)
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()


def legs_per_worker(switch: SwitchProcess) -> list[int]:
    return [w["in_use"] for w in switch.healthz()[1]["workers"]]


def test_a_dead_worker_takes_its_member_out_and_the_room_goes_on(switch: SwitchProcess, app: WebhookSink,
                                                                  tmp_path: Path) -> None:
    hook = app.url("/conf-death")
    twiml = conference_twiml("survivors", statusCallback=hook, statusCallbackEvent="start end join leave")
    with ExitStack() as phones:
        members: list[Member] = []
        placed: list[int] = []
        for hz in TONES:
            before = legs_per_worker(switch)
            members.append(dial_in(switch, phones, tmp_path, hz, twiml))
            after = legs_per_worker(switch)
            placed.append(next(i for i, (b, a) in enumerate(zip(before, after, strict=True)) if a > b))
        a, b, c = members
        assert placed[0] == placed[2] != placed[1], placed  # A and C share a worker, B is alone on the other
        time.sleep(2.0)
        victim = switch.healthz()[1]["workers"][placed[1]]["pid"]
        killed = time.time()
        os.kill(victim, signal.SIGKILL)
        b.collect(timeout=10)  # B's far end is told its call is over
        time.sleep(2.5)
        end = time.time()
        a.hang_up()
        c.hang_up()
    hears(a.window(killed - 1.5, killed - 0.1), (TONES[1], TONES[2]), (TONES[0],), "A before the kill")
    hears(a.window(killed + 1.0, end - 0.2), (TONES[2],), (TONES[0], TONES[1]), "A after B's worker died")
    hears(c.window(killed + 1.0, end - 0.2), (TONES[0],), (TONES[1], TONES[2]), "C after B's worker died")
    events = conference_events(app, "/conf-death", 8)
    assert [(kind, sid) for kind, sid, _ in events] == [
        ("participant-join", a.sid), ("conference-start", ""), ("participant-join", b.sid),
        ("participant-join", c.sid), ("participant-leave", b.sid), ("participant-leave", a.sid),
        ("participant-leave", c.sid), ("conference-end", "")]
    status = switch.client().calls(b.sid).fetch().status
    assert status in ("completed", "failed"), status
    wait_until(lambda: switch.healthz()[0] == 200, timeout=15, what="the pool to recover")
