"""Smoke run of the dual-recording bench (`switch.tools.bench.recording`): 5 s, real processes on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

from switch.tools.bench.recording import run_recording_bench


async def test_recording_bench_reports_real_figures(tmp_path: Path) -> None:
    started = time.monotonic()
    report = await run_recording_bench(seconds=5, workdir=tmp_path)
    assert time.monotonic() - started < 60

    assert {"seconds", "switch", "baseline", "ratio_vs_baseline", "frames", "skew_samples", "targets",
            "notes"} <= set(report)
    assert report["seconds"] == 5
    switch, baseline = report["switch"], report["baseline"]
    for value in (switch["cpu_s_per_recorded_second"], switch["cpu_s_per_second_bridged_no_recording"],
                  baseline["cpu_s_per_second"], baseline["cpu_s_per_second_bridge_only"]):
        assert isinstance(value, float) and 0 < value < 0.5  # a real measurement, far from a whole core
    assert report["ratio_vs_baseline"] == round(switch["cpu_s_per_recorded_second"] / baseline["cpu_s_per_second"],
                                                3)
    assert 4.9 <= switch["windows"]["recorded"]["wall_s"] < 6.5 and switch["call_up_throughout"]

    frames = report["frames"]
    assert 240 <= frames["expected"] <= 330
    assert frames["written"] == frames["record_done_frames"] > 200, frames
    assert frames["dropped"] == frames["expected"] - frames["written"]
    assert abs(frames["dropped"]) <= 5
    assert report["skew_samples"] == 0 and frames["written_per_leg"][0] == frames["written_per_leg"][1]
    assert baseline["port_frames"][0] > 200

    channels = report["audio"]["channels"]
    heard = [channel["hz"] for channel in channels]
    assert abs(heard[0] - 440) < 10 and abs(heard[1] - 1000) < 10, report  # A on ch1, B on ch2
    assert report["audio"]["final"]["channels"] == 2
    assert report["audio"]["final"]["samples"] == frames["written"] * 160

    targets = report["targets"]
    assert set(targets) == {"cpu_per_recorded_second", "cpu_vs_baseline", "dropped_frames", "skew"}
    assert all(isinstance(t["pass"], bool) for t in targets.values())
    assert targets["skew"]["pass"] and targets["dropped_frames"]["covers_10_minutes"] is False
    assert all(isinstance(note, str) and note for note in report["notes"])
