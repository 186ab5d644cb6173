"""`softswitch bench`'s check of the capacity issue's limits (issue 14, section 4) on a run's figures."""

from __future__ import annotations

from typing import Any

from switch.tools.bench.report import capacity_targets, evaluate_targets


def _report(inbound_s: float, bridged_s: float, ratio: float, ringing: float, answered: float, pdd: float,
            edge_cps: float, idle: tuple[float, float] = (0.002, 0.0015)) -> dict[str, Any]:
    """`idle`: s/s at rest of the single worker and of the busiest of the full pool's."""
    return {"switch": {"control_plane_cpu_s_per_call": inbound_s,
                       "idle_cpu_s_per_s_by_worker": {"worker0": idle[1] / 2, "worker1": idle[1]},
                       "single_worker": {"idle_cpu_s_per_s_by_worker": {"worker0": idle[0]}}},
            "bridged_cpu": {"control_plane_cpu_s": bridged_s, "ratio_vs_baseline": ratio},
            "callback_latency_ms": {"ringing": {"p50": ringing}, "answered": {"p50": answered}},
            "post_dial_delay_ms": {"p50": pdd}, "edge": {"max_inbound_cps_zero_failures": edge_cps}}


def test_each_limit_is_checked_at_its_edge() -> None:
    met = capacity_targets(_report(0.001, 0.003, 1.5, 2.0, 2.0, 2.0, 300))
    assert {name: t["pass"] for name, t in met.items()} == {
        "capacity_control_plane_cpu_per_inbound_call": True, "capacity_control_plane_cpu_per_bridged_call": True,
        "capacity_cpu_per_bridged_call": True, "capacity_callback_latency": True, "capacity_post_dial_delay": True,
        "capacity_idle_cpu_per_worker": True, "capacity_edge_inbound_cps": True}
    missed = capacity_targets(_report(0.0028, 0.0072, 2.63, 2.32, 2.04, 3.07, 250, (0.0012, 0.0044)))
    assert [t["pass"] for t in missed.values()] == [False] * 7
    assert missed["capacity_idle_cpu_per_worker"]["percent"] == 0.44  # the busiest worker at rest, either phase
    assert missed["capacity_control_plane_cpu_per_inbound_call"]["ms"] == 2.8
    assert missed["capacity_control_plane_cpu_per_bridged_call"]["ms"] == 7.2


def test_one_late_callback_fails_the_latency_target() -> None:
    targets = capacity_targets(_report(0.001, 0.003, 1.5, 1.9, 2.1, 2.0, 300))
    assert targets["capacity_callback_latency"]["pass"] is False


def test_what_a_run_did_not_measure_is_neither_pass_nor_fail() -> None:
    targets = evaluate_targets({})
    assert all(targets[name]["pass"] is None for name in targets if name.startswith("capacity_"))
    assert len([name for name in targets if name.startswith("capacity_")]) == 7


def test_the_bench_measures_a_worker_at_rest_after_its_media_clock_stopped() -> None:
    """The bench may not import the worker (import-linter): its rest before the idle measure is its own constant."""
    from switch.tools.bench.main import REST_SECONDS
    from switch.worker.media_clock import IDLE_S

    assert REST_SECONDS >= IDLE_S + 0.5
