"""Smoke test of `softswitch bench`: a tiny run end to end, checking the report is complete and measured.

It runs the real thing (baseline UAS, the switch with 1 and 2 workers, sipp) with small numbers, so it
takes ~30-40 s; it checks shape and that every figure is a real measurement, not any performance target.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from switch.bench import run_bench

TOP_KEYS = {"machine", "parameters", "baseline", "switch", "callback_latency_ms", "api_dial_delay_ms",
            "post_dial_delay_ms", "capacity", "targets", "notes", "errors"}
SWITCH_KEYS = {"workers", "max_cps_zero_failures", "cpu_s_per_call", "worker_cpu_s_per_call",
               "cpu_ratio_vs_baseline", "rss_mb_per_worker", "single_worker", "ladder", "run"}
TARGET_KEYS = {"post_dial_delay", "callback_latency", "zero_failures_at_reported_capacity", "cpu_per_call"}


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    status = run_bench(out, calls=20, rate=10, workers=2, max_rate=20, step_seconds=2.0, latency_calls=10)
    assert status == 0, out.read_text() if out.exists() else "no report written"
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_report_has_every_key(report: dict[str, Any]) -> None:
    assert report.keys() >= TOP_KEYS
    assert report["errors"] == []
    assert {"nproc", "python", "pjsua2"} <= report["machine"].keys()
    assert report["machine"]["pjsua2"]
    assert report["switch"].keys() >= SWITCH_KEYS
    assert report["targets"].keys() >= TARGET_KEYS
    for name in ("ringing", "answered"):
        assert {"p50", "p99"} <= report["callback_latency_ms"][name].keys()
    assert {"p50", "p99"} <= report["api_dial_delay_ms"].keys()


def test_post_dial_delay_is_null_with_a_reason(report: dict[str, Any]) -> None:
    assert report["post_dial_delay_ms"] is None
    assert "<Dial>" in report["notes"]["post_dial_delay_ms"]
    assert report["targets"]["post_dial_delay"]["pass"] is None


def test_numbers_are_measurements(report: dict[str, Any]) -> None:
    baseline, switch = report["baseline"], report["switch"]
    assert baseline["run"]["sipp"]["successful"] == 20
    assert _positive(baseline["cpu_s_per_call"])
    assert _positive(baseline["rss_mb"])
    assert _positive(switch["max_cps_zero_failures"])
    assert _positive(switch["cpu_s_per_call"])
    assert _positive(switch["worker_cpu_s_per_call"])
    assert _positive(switch["cpu_ratio_vs_baseline"])
    assert len(switch["rss_mb_per_worker"]) == 2
    assert all(_positive(rss) for rss in switch["rss_mb_per_worker"])
    assert _positive(switch["single_worker"]["cpu_s_per_call"])
    for name in ("ringing", "answered"):
        stats = report["callback_latency_ms"][name]
        assert stats["n"] == 10
        assert _positive(stats["p50"]) and stats["p99"] >= stats["p50"]
    assert report["api_dial_delay_ms"]["n"] == 10
    assert _positive(report["api_dial_delay_ms"]["p50"])


def test_capacity_check(report: dict[str, Any]) -> None:
    capacity = report["capacity"]
    assert capacity["slots_expected"] == 8
    assert capacity["reached_in_progress"] == 8
    assert capacity["extra_call_http_status"] == 429
    assert capacity["in_use_after_hangup"] == 0


def test_targets_are_booleans_or_null(report: dict[str, Any]) -> None:
    for target in report["targets"].values():
        assert target["pass"] in (True, False, None)
    assert isinstance(report["targets"]["cpu_per_call"]["pass"], bool)
    assert isinstance(report["targets"]["callback_latency"]["pass"], bool)


def test_unusable_arguments_exit_2_without_a_report(tmp_path: Path) -> None:
    status = run_bench(tmp_path / "x.json", calls=0, rate=10, workers=1)
    assert status == 2
    assert not (tmp_path / "x.json").exists()
