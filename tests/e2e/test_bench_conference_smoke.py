"""Smoke run of the bench's conference and queue phase (`switch.tools.bench.conference_bench`) at 4 participants:
the switch with 2 workers, sipp callers streaming a tone into one room and into held calls, a one-step room
ladder and one `<Dial><Queue>` each way, real processes on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from switch.tools.bench.common import TwimlApp, WebhookReceiver
from switch.tools.bench.conference_bench import conference_phase
from switch.tools.bench.report import _conference_lines

pytestmark = pytest.mark.e2e

PARTICIPANTS = 4


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


async def test_conference_phase_reports_mixing_cpu_room_ladder_and_queue(
        servers: tuple[WebhookReceiver, TwimlApp], tmp_path: Path) -> None:
    _, app = servers
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        report = await conference_phase(session, app, tmp_path, participants=PARTICIPANTS, rate=10.0, ladder=(6,),
                                        queue_reps=1, wheel_workers=0, sample_s=0.5, up_margin_s=1.5)
    assert time.monotonic() - started < 60  # ~35 s on 2 CPUs; the margin is for a loaded machine
    for key in ("one_worker", "two_workers"):
        pair = report[key]
        for run in (pair["held"], pair["mixed"]):
            assert run["sipp"]["successful"] == PARTICIPANTS and run["sipp"]["failed"] == 0, run
            assert run["all_up_together"] and run["rtp"]["legs"] == PARTICIPANTS, run
            assert run["rtp"]["rx_vs_expected"] > 0.9, run
        cost = pair["cpu_ms_per_participant_second"]
        assert _positive(cost["mixed"]) and cost["held"] is not None, pair
        assert _positive(pair["mixed_vs_held"]), pair
    assert report["one_worker"]["mixed"]["mixer_ticks"] == 0  # mixed on worker 0's bridge alone
    assert report["two_workers"]["mixed"]["mixer_ticks"] > 25  # the control plane mixed the two workers' links
    assert _positive(report["two_workers_vs_one_mixed_cpu"])
    ladder = report["ladder"]
    assert [step["participants"] for step in ladder["steps"]] == [6] and ladder["steps"][0]["sipp_ok"] == 6, ladder
    assert report["largest_clean_room"] in (0, 6)
    for key in ("same_worker", "cross_worker"):
        queue = report["queue_to_audio"][key]
        assert queue["bridged_audio_heard"] == 1 and queue["agents_ok"] == 1 and queue["callers_ok"] == 1, queue
        assert 0 < queue["fetch_to_tone_ms"]["p50"] < 2000 and queue["invite_to_tone_ms"]["p50"] > 0, queue
    assert report["wheel"] == {"skipped": "wheel_workers = 0"}
    summary = "\n".join(_conference_lines({"conference": report}))
    assert "largest room with 0 dropped frames" in summary and "<Dial><Queue>" in summary
