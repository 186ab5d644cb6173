"""Issue 13 in a conference: after a member's re-INVITE (hold, unhold, a codec change) its mixing is made again.

pjsua gives a leg a new audio port at each of these changes and the old port's connections go with it, so the
worker's conference (`switch.worker.conference.ConferenceManager.port_changed`) must connect the member's new
port to every other member, to its link and to its meter again.  The switch runs 2 workers: A (440 Hz) and C
(1100 Hz) land on worker 0 and B (700 Hz) on worker 1 (asserted), so B's changes are mixed across workers through
the links and C's inside worker 0's bridge.  Every phase is measured by FFT in each phone's recording: before the
hold everyone hears the two others; while B holds (it sends nothing, the switch answers `recvonly`) A and C hear
only each other and B hears nothing; after the unhold, after B's re-INVITE offering only PCMA and after C's,
everyone hears the two others again, and never itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from media.tones import rms
from tests.e2e.test_conference_e2e import TONES, Member, conference_twiml, dial_in, hears
from tests.peers.harness import SwitchProcess

pytestmark = pytest.mark.e2e

STEP = 2.0  # seconds between the changes
EDGE = 0.5  # seconds left out after each change (the re-INVITE's round trip, the links' queues)


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as phones:
        yield phones


def _mesh(members: list[Member], start: float, end: float, what: str) -> None:
    for member in members:
        others = tuple(m.hz for m in members if m is not member)
        hears(member.window(start, end), others, (member.hz,), f"{what}: the {member.hz:g} Hz phone")


def test_hold_unhold_and_codec_changes_keep_every_member_mixed(switch: SwitchProcess, stack: ExitStack,
                                                               tmp_path: Path) -> None:
    twiml = conference_twiml("reinvites")
    a, b, c = members = [dial_in(switch, stack, tmp_path, hz, twiml) for hz in TONES]
    _, health = switch.healthz()
    assert [w["in_use"] for w in health["workers"]] == [2, 1], health  # A and C on worker 0, B on worker 1
    time.sleep(STEP)
    held = b.phone.hold()
    time.sleep(STEP)
    unheld = b.phone.unhold()
    time.sleep(STEP)
    b_pcma = b.phone.reinvite("PCMA")
    time.sleep(STEP)
    c_pcma = c.phone.reinvite("PCMA")
    time.sleep(STEP)
    end = time.time()
    for member in members:
        member.hang_up()

    assert (held["state"], held["dir"]) == ("local_hold", "sendonly"), b.phone.describe()
    assert (unheld["state"], unheld["dir"], unheld["codec"]) == ("active", "sendrecv", "PCMU"), b.phone.describe()
    for phone, event in ((b.phone, b_pcma), (c.phone, c_pcma)):
        assert (event["state"], event["dir"], event["codec"]) == ("active", "sendrecv", "PCMA"), phone.describe()
    sent = {e["command"]: e["t"] for e in b.phone.events("command")}
    _mesh(members, c.answered + EDGE, sent["hold"] - 0.1, "before the hold")
    hears(a.window(held["t"] + EDGE, sent["unhold"] - 0.1), (c.hz,), (a.hz, b.hz), "A while B holds")
    hears(c.window(held["t"] + EDGE, sent["unhold"] - 0.1), (a.hz,), (b.hz, c.hz), "C while B holds")
    silence = b.window(held["t"] + EDGE, sent["unhold"] - 0.1)
    assert rms(silence) < 100, f"B hears {rms(silence):.0f} rms while it holds"
    _mesh(members, unheld["t"] + EDGE, sent["reinvite PCMA"] - 0.1, "after B's unhold")
    c_sent = next(e["t"] for e in c.phone.events("command") if e["command"] == "reinvite PCMA")
    _mesh(members, b_pcma["t"] + EDGE, c_sent - 0.1, "after B's re-INVITE with PCMA")
    _mesh(members, c_pcma["t"] + EDGE, end - 0.1, "after C's re-INVITE with PCMA")
