"""`softswitch bench`'s check of the capacity issue's limits (issue 14, section 4) on a run's figures."""

from __future__ import annotations

from typing import Any

from switch.tools.bench.report import capacity_targets, evaluate_targets


def _report(inbound_s: float, bridged_s: float, ratio: float, ringing: float, answered: float, pdd: float,
            edge_cps: float) -> dict[str, Any]:
    return {"switch": {"control_plane_cpu_s_per_call": inbound_s},
            "bridged_cpu": {"control_plane_cpu_s": bridged_s, "ratio_vs_baseline": ratio},
            "callback_latency_ms": {"ringing": {"p50": ringing}, "answered": {"p50": answered}},
            "post_dial_delay_ms": {"p50": pdd}, "edge": {"max_inbound_cps_zero_failures": edge_cps}}


def test_each_limit_is_checked_at_its_edge() -> None:
    met = capacity_targets(_report(0.001, 0.003, 1.5, 2.0, 2.0, 2.0, 300))
    assert {name: t["pass"] for name, t in met.items()} == {
        "capacity_control_plane_cpu_per_inbound_call": True, "capacity_control_plane_cpu_per_bridged_call": True,
        "capacity_cpu_per_bridged_call": True, "capacity_callback_latency": True, "capacity_post_dial_delay": True,
        "capacity_edge_inbound_cps": True}
    missed = capacity_targets(_report(0.0028, 0.0072, 2.63, 2.32, 2.04, 3.07, 250))
    assert [t["pass"] for t in missed.values()] == [False] * 6
    assert missed["capacity_control_plane_cpu_per_inbound_call"]["ms"] == 2.8
    assert missed["capacity_control_plane_cpu_per_bridged_call"]["ms"] == 7.2


def test_one_late_callback_fails_the_latency_target() -> None:
    targets = capacity_targets(_report(0.001, 0.003, 1.5, 1.9, 2.1, 2.0, 300))
    assert targets["capacity_callback_latency"]["pass"] is False


def test_what_a_run_did_not_measure_is_neither_pass_nor_fail() -> None:
    targets = evaluate_targets({})
    assert all(targets[name]["pass"] is None for name in targets if name.startswith("capacity_"))
    assert len([name for name in targets if name.startswith("capacity_")]) == 6
