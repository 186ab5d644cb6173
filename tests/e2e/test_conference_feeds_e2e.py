"""What a conference member hears is its outbound track; a member cannot be bridged 1:1.

A member's conference audio (the other members on its worker, the link from the other workers, conference
plays) is registered as the leg's feeds (`switch.worker.media.MediaManager.feeds`), so a recording of the
member's call with `RecordingTrack=outbound` (a mirror channel), the outbound channel of a dual recording, and an
audio tap's outbound track hear it.  The switch runs 2 workers: A (440 Hz) and C (1100 Hz) on worker 0, B
(700 Hz) on worker 1, so A hears C inside its worker's bridge and B through the link.  A's recordings must hold
B and C (and never A in the outbound track); after C's re-INVITE (a new port for C) still both; after C is
muted, B alone.

The worker refuses a `Bridge` of a leg that is in a conference with `BridgeFailed` (in-process switch).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest

from media.errors import MediaError
from tests.e2e.test_conference_e2e import RATE, TONES, conference_twiml, dial_in, hears
from tests.e2e.test_conference_mix_e2e import hang_up, running_switch, tone_phones
from tests.peers.harness import ACCOUNT_SID, SwitchProcess
from tests.peers.inprocess import answered_call

pytestmark = pytest.mark.e2e

STEP = 2.0  # seconds per phase
EDGE = 0.5  # seconds left out after each change


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as phones:
        yield phones


def _cut(samples: np.ndarray, start: float, end: float) -> np.ndarray:
    assert end - start >= 0.8, f"window {start:.2f}-{end:.2f} s is too short"
    a, b = int(start * RATE), int(end * RATE)
    assert a >= 0 and b <= len(samples), f"window {a}-{b} outside {len(samples)} samples"
    return samples[a:b]


def test_a_members_outbound_track_is_what_it_hears_in_the_conference(switch: SwitchProcess, stack: ExitStack,
                                                                     tmp_path: Path) -> None:
    client = switch.client()
    a, b, c = [dial_in(switch, stack, tmp_path, hz, conference_twiml("fed")) for hz in TONES]
    _, health = switch.healthz()
    assert [w["in_use"] for w in health["workers"]] == [2, 1], health  # A and C on worker 0, B on worker 1
    conf = client.conferences.list(friendly_name="fed", status="in-progress")[0]
    recordings = client.calls(a.sid).recordings
    outbound = recordings.create(recording_track="outbound", trim="do-not-trim")
    dual = recordings.create(recording_channels="dual", trim="do-not-trim")
    t0 = time.time()  # both recordings start here (within the REST round trips)
    time.sleep(STEP)
    changed = c.phone.reinvite("PCMA")
    time.sleep(STEP)
    muted = time.time()
    assert client.conferences(conf.sid).participants(c.sid).update(muted=True).muted is True
    time.sleep(STEP)
    end = time.time()
    for rec in (outbound, dual):
        assert recordings(rec.sid).update(status="stopped").status == "completed"
    for member in (a, b, c):
        member.hang_up()

    assert (changed["codec"], changed["dir"]) == ("PCMA", "sendrecv"), c.phone.describe()
    url = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/"
    mono, rate = switch.recording(url + outbound.sid)
    stereo, _ = switch.recording(url + dual.sid)
    assert rate == RATE and mono.shape[1] == 1 and stereo.shape[1] == 2, (mono.shape, stereo.shape)
    phases = (
        (EDGE, changed["t"] - t0 - 0.1, (b.hz, c.hz), (a.hz,), "in the room"),
        (changed["t"] - t0 + EDGE, muted - t0 - 0.1, (b.hz, c.hz), (a.hz,), "after C's re-INVITE"),
        (muted - t0 + EDGE, end - t0 - 0.2, (b.hz,), (a.hz, c.hz), "C muted"),
    )
    for start, stop, present, absent, what in phases:
        hears(_cut(mono[:, 0], start, stop), present, absent, f"A's outbound recording, {what}")
        hears(_cut(stereo[:, 1], start, stop), present, absent, f"A's dual recording, outbound channel, {what}")
        hears(_cut(stereo[:, 0], start, stop), (a.hz,), (b.hz, c.hz), f"A's dual recording, inbound channel, {what}")


async def test_a_conference_member_cannot_be_bridged(tmp_path: Path) -> None:
    async with running_switch(tmp_path, workers=1) as switch:
        media = switch.calls.media
        with tone_phones(tmp_path) as phones:
            sids = [await answered_call(switch, phone) for phone in phones[:2]]
            await media.conferences.join("solo", sids[0])
            with pytest.raises(MediaError, match=r"is in conference solo: it must leave the conference"):
                await media.bridge(sids[1], sids[0])
            await media.conferences.leave("solo", sids[0])
            await media.bridge(sids[0], sids[1])  # out of the conference: bridged
            await hang_up(switch, sids, phones[:2])
