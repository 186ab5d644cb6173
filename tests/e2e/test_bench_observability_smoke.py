"""The bench's observability phase, small: four switches (metrics and call events on, each alone, off) under the
same 12 inbound calls; every run clean, and the store writes per call differ by exactly what each feature writes."""

from __future__ import annotations

import asyncio

import pytest

from switch.tools.bench.observability import _main

pytestmark = pytest.mark.e2e


def test_observability_phase_measures_each_variant() -> None:
    report = asyncio.run(_main(calls=12, rate=12.0, hold_ms=200))
    variants = report["variants"]
    assert list(variants) == ["all_off", "metrics_only", "events_only", "all_on"]
    for name, v in variants.items():
        assert v["clean"] and v["calls"] == 12, (name, v)
        assert v["switch_checks"]["callbacks"] == {"completed": 12}
        assert v["cpu_ms_per_call"] > 0
    assert "scrape" not in variants["all_off"] and "scrape" not in variants["events_only"]
    assert variants["all_on"]["scrape"]["count"] == 20 and variants["all_on"]["scrape"]["bytes"] > 1000
    cost = report["cost_per_call"]
    assert cost["metrics_only"]["store_writes"] == 0.0  # metrics never write to the store
    # call events: one row per request the call made, its TwiML fetch and its status callback
    assert cost["events_only"]["store_writes"] == 2.0
    assert cost["all_on"]["store_writes"] == 2.0
    hooks = report["metrics_hooks"]
    assert 0 < hooks["cpu_us_per_call"] < 1000 and hooks["exposition_bytes"] > 1000
