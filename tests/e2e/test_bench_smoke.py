"""Smoke test of `softswitch bench`: a tiny run end to end, checking the report is complete and measured.

It runs the real thing (baseline UAS and B2BUA, the switch with 1 and 2 workers, sipp, the TwiML app, the
lab phone, espeak-ng) with small numbers for every section, so it takes ~70 s; it checks shape and that
every figure is a real measurement, not any performance target.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from switch.tools.bench.main import run_bench

TOP_KEYS = {"machine", "parameters", "baseline", "baseline_b2bua", "switch", "callback_latency_ms",
            "api_dial_delay_ms", "post_dial_delay_ms", "twiml_fetch_overhead_ms", "bridged_cpu", "b2bua_cps",
            "redirect_to_audio_ms", "say_cache_ms", "capacity", "recording", "targets", "notes", "errors"}
SWITCH_KEYS = {"workers", "max_cps_zero_failures", "cpu_s_per_call", "worker_cpu_s_per_call",
               "cpu_ratio_vs_baseline", "rss_mb_per_worker", "single_worker", "ladder", "run"}
TARGET_KEYS = {"post_dial_delay", "twiml_fetch_overhead", "callback_latency", "zero_failures_at_reported_capacity",
               "bridged_calls_zero_failures", "cpu_per_call", "cpu_per_bridged_call", "redirect_to_audio",
               "say_cache_hit", "recording_cpu_per_recorded_second", "recording_cpu_vs_baseline",
               "recording_dropped_frames", "recording_skew"}
PDD_CALLS, PLAIN_CALLS, REDIRECTS, SAY_ITERATIONS, RECORDING_SECONDS = 10, 6, 3, 50, 3.0


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    status = run_bench(out, calls=20, rate=10, workers=2, max_rate=20, step_seconds=2.0, ladder_budget_s=10,
                       latency_calls=10, pdd_calls=PDD_CALLS, pdd_rate=5, plain_calls=PLAIN_CALLS,
                       bridge_answer_calls=4, b2bua_max_rate=4, b2bua_budget_s=10, redirects=REDIRECTS,
                       say_iterations=SAY_ITERATIONS, recording_seconds=RECORDING_SECONDS,
                       concurrent_calls=0,  # tests/e2e/test_bench_concurrent_smoke.py runs that phase,
                       observability_calls=0,  # tests/e2e/test_bench_observability_smoke.py this one
                       streams_calls=0,  # tests/e2e/test_bench_streams_smoke.py the Media Streams one
                       conference_participants=0,  # tests/e2e/test_bench_conference_smoke.py conferences
                       browser_calls=0)  # and tests/e2e/test_bench_browser_smoke.py browsers
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
    for section in ("post_dial_delay_ms", "twiml_fetch_overhead_ms", "redirect_to_audio_ms", "say_cache_ms"):
        assert {"p50", "p99"} <= report[section].keys()
    assert {"post_dial_delay_ms", "redirect_to_audio_ms", "b2bua_cps"} <= report["notes"].keys()


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


def test_post_dial_delay_is_measured_through_twiml(report: dict[str, Any]) -> None:
    pdd = report["post_dial_delay_ms"]
    for name in ("post_dial_delay", "twiml_app_ms", "added_beyond_fetch", "baseline_b2bua_post_dial_delay"):
        assert pdd[name]["n"] == PDD_CALLS, name
        assert _positive(pdd[name]["p50"]), name
    assert pdd["unmatched_calls"] == 0
    assert pdd["p50"] == pdd["added_beyond_fetch"]["p50"]
    # the app's time is taken out of the post-dial delay call by call
    assert pdd["added_beyond_fetch"]["p50"] < pdd["post_dial_delay"]["p50"]
    assert pdd["answer_on_bridge"]["added_beyond_fetch"]["n"] == 4
    assert _positive(pdd["added_vs_baseline_pdd"]["p50"])
    fetch = report["twiml_fetch_overhead_ms"]
    assert fetch["answer_delay_plain_number"]["n"] == PLAIN_CALLS
    assert fetch["answer_delay_with_twiml_minus_app"]["n"] == PDD_CALLS
    assert _number(fetch["p50"]) and _number(fetch["p99"])
    dial = report["bridged_runs"]["dial"]
    assert dial["clean"] and dial["sipp"]["successful"] == PDD_CALLS
    checks = dial["switch_checks"]
    assert checks["twiml_fetches"] == PDD_CALLS
    assert checks["parent_callbacks"] == {"completed": PDD_CALLS}
    assert checks["child_callbacks"] == {s: PDD_CALLS for s in ("initiated", "ringing", "in-progress", "completed")}


def test_bridged_cpu_and_cps(report: dict[str, Any]) -> None:
    cpu = report["bridged_cpu"]
    assert _positive(cpu["cpu_s_per_bridged_call"])
    assert _positive(cpu["baseline_b2bua_cpu_s"])
    assert _positive(cpu["ratio_vs_baseline"])
    assert _positive(cpu["net_of_idle"]["cpu_s_per_bridged_call"])
    assert report["baseline_b2bua"]["run"]["sipp"]["successful"] == PDD_CALLS
    cps = report["b2bua_cps"]
    assert cps["per_worker"]["max_cps_zero_failures"] == 4
    assert cps["all_workers"]["workers_taking_invites"] == [0, 1]
    assert cps["all_workers"]["max_cps_zero_failures"] == 8  # 4 per worker, each on its own port
    for ladder in (cps["per_worker"], cps["all_workers"]):
        step = ladder["steps"][0]
        assert step["clean"] and step["successful"] == step["calls"]
        assert step["switch_checks"]["child_callbacks"]["completed"] == step["calls"]


def test_redirect_and_say_cache(report: dict[str, Any]) -> None:
    redirect = report["redirect_to_audio_ms"]
    assert redirect["detected"] == REDIRECTS
    assert redirect["http_statuses"] == [200]
    assert 0 < redirect["p50"] < 1000
    assert _positive(redirect["cold_first_redirect_ms"])
    assert redirect["recording_start"]["method"] == "file growth"
    assert 0 < redirect["mapping_error_ms"] < 5
    say = report["say_cache_ms"]
    assert say["memory_hit_ms"]["n"] == SAY_ITERATIONS
    assert _positive(say["p50"]) and _positive(say["disk_hit_ms"]["p50"])
    assert say["cold_synthesis_ms"] > say["p99"]  # the first call really ran espeak-ng


def test_recording_is_measured_in_the_same_run(report: dict[str, Any]) -> None:
    recording = report["recording"]
    assert recording["seconds"] == RECORDING_SECONDS
    assert _positive(recording["switch"]["cpu_s_per_recorded_second"])
    assert _positive(recording["baseline"]["cpu_s_per_second"])
    assert recording["frames"]["written"] > 100 and recording["skew_samples"] == 0
    assert report["targets"]["recording_skew"]["pass"] is True


def test_capacity_check(report: dict[str, Any]) -> None:
    capacity = report["capacity"]
    if "skipped" in capacity:  # the built engine: 1,024 legs per worker, too many to fill
        assert capacity["slots_expected"] >= 2000, capacity
        return
    assert capacity["slots_expected"] == 8
    assert capacity["reached_in_progress"] == 8
    assert capacity["extra_call_http_status"] == 429
    assert capacity["in_use_after_hangup"] == 0


def test_targets_are_booleans_or_null(report: dict[str, Any]) -> None:
    for target in report["targets"].values():
        assert target["pass"] in (True, False, None)
    for name in ("cpu_per_call", "callback_latency", "post_dial_delay", "twiml_fetch_overhead",
                 "redirect_to_audio", "say_cache_hit", "cpu_per_bridged_call"):
        assert isinstance(report["targets"][name]["pass"], bool), name


def test_unusable_arguments_exit_2_without_a_report(tmp_path: Path) -> None:
    status = run_bench(tmp_path / "x.json", calls=0, rate=10, workers=1)
    assert status == 2
    assert not (tmp_path / "x.json").exists()
