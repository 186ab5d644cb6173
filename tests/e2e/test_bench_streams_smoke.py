"""Smoke run of the bench's Media Streams phase (`switch.tools.bench.streams_bench`) at 4 calls: the switch behind
Kamailio answering `<Connect><Stream>` to the bench's bot, sipp echoing RTP, real processes on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest

from switch.tools.bench.common import TwimlApp, WebhookReceiver
from switch.tools.bench.report import _streams_lines
from switch.tools.bench.streams_bench import streams_phase

pytestmark = pytest.mark.e2e

CALLS = 4


async def test_streams_phase_reports_round_trips_frames_and_cpu(servers: tuple[WebhookReceiver, TwimlApp],
                                                                tmp_path: Path) -> None:
    receiver, app = servers
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        report = await streams_phase(session, receiver, app, tmp_path, workers=1, calls=CALLS, rate=4.0,
                                     plateau_s=4.0, sample_s=2.0, ladder=1)
    assert time.monotonic() - started < 120
    assert [step["calls"] for step in report["ladder"]] == [2 * CALLS]
    assert report["most_clean_streams"] in (CALLS, 2 * CALLS) and report["workers"] == 1
    assert "most streams carried cleanly by 1 worker(s)" in "\n".join(_streams_lines({"streams": report}))
    assert report["streams_seen"] == CALLS and report["chunk_gaps"] == 0, report
    alone = report["one_call"]
    assert alone["clean"] and alone["echoed_packets"] > 100, alone
    ear, mouth = alone["bot_to_caller_ear_ms"], alone["caller_mouth_to_bot_ms"]
    assert ear["n"] >= 3 and mouth["n"] >= 3 and 0 < ear["p50"] < 500 and 0 < mouth["p50"] < 500, alone
    assert report["sipp"]["held"]["successful"] == CALLS and report["sipp"]["streamed"]["successful"] == CALLS
    trips = report["round_trip_ms"]
    assert report["round_trips"] >= 3 * CALLS and 0 < trips["p50"] < 1000, report  # one blip a second, echoed
    assert report["inbound_frames_vs_expected"]["min"] > 0.9, report
    cost = report["cpu_ms_per_call_second"]
    assert cost["held_baseline"] is not None and cost["streamed"] > 0, report
