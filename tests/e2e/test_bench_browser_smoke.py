"""Smoke run of the bench's browser phase (`switch.tools.bench.browser_bench`) at tiny counts: aiortc browsers on
the client WebSocket of a one-worker switch, a bridged browser-to-browser call timed against two direct peers,
browser calls and sipp calls held for the CPU figures, and a two-rung call ladder, real processes on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from switch.tools.bench.browser_bench import browser_phase
from switch.tools.bench.common import TwimlApp, WebhookReceiver
from switch.tools.bench.report import _browser_lines

pytestmark = pytest.mark.e2e

CALLS = 2
LADDER = (1, 2)


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


async def test_browser_phase_reports_latency_cpu_and_ladder(
        servers: tuple[WebhookReceiver, TwimlApp], tmp_path: Path) -> None:
    _, app = servers
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        report = await browser_phase(session, app, tmp_path, calls=CALLS, bursts=3, ladder=LADDER,
                                     sample_s=1.0, window_s=1.5)
    assert time.monotonic() - started < 60  # ~35 s on 2 CPUs; the margin is for a loaded machine
    for codec in ("opus", "pcmu"):
        figures = report["mouth_to_ear_ms"][codec]
        for way in ("switch", "direct"):
            assert figures[way]["heard"] >= 2, figures
            assert _positive(figures[way]["ms"]["p50"]) and _positive(figures[way]["ms"]["max"]), figures
        assert figures["switch"]["callee_status"] == "completed", figures
        assert isinstance(figures["added_ms"], float), figures
    cpu = report["cpu"]
    browser, sip = cpu["browser"], cpu["sip"]
    assert browser["all_hearing"] and browser["answered"] == CALLS, browser
    assert browser["end_statuses"] == {"completed": CALLS}, browser
    assert sip["all_up_together"] and sip["sipp"]["successful"] == CALLS and sip["sipp"]["failed"] == 0, sip
    cost = cpu["cpu_ms_per_call_second"]
    assert _positive(cost["browser"]["total"]) and _positive(cost["browser"]["control_plane"]), cost
    assert cost["sip_with_rtp"]["total"] is not None and _positive(cpu["browser_vs_sip"]["total"]), cpu
    assert _positive(browser["bench_client_cpu_s_per_s"]), browser
    ladder = report["ladder"]
    assert [s["calls"] for s in ladder["steps"]][:1] == [LADDER[0]], ladder
    assert report["most_concurrent_clean_calls"] >= LADDER[0], ladder
    assert report["switch_log"]["tracebacks"] == 0, report["switch_log"]
    summary = "\n".join(_browser_lines({"browser": report}))
    assert "mouth-to-ear" in summary and "most simultaneous browser calls" in summary
