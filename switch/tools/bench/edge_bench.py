"""The bench's SIP edge phase: inbound calls through Kamailio to every worker, stepped up until a step fails.

The switch runs with `[edge] enabled = true` (Kamailio on the configured address, `workers` workers behind it,
`max_cps` well above the ladder so the edge's own limit is not what is measured).  sipp calls the plain number
(answered and held) through the edge at 50, 100, 150 ... cps with a `uac` scenario that follows the
Record-Route; the hold time shrinks so the offered concurrency stays near `EDGE_CONCURRENCY` (or half the
switch's call legs, if fewer).  A step is clean as in the rest of the bench: sipp counts every call successful,
no measured process died (control plane, workers, Kamailio's processes), every `completed` callback came, every
slot is free again and no worker was restarted.  The report has the top clean rate, what stopped the ladder,
and per step the CPU per call of each process, Kamailio's included, next to the bare pjsua2 baseline's top
rate measured in the same run.
"""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp

from switch.tools.bench.common import Json, TwimlApp, WebhookReceiver
from switch.tools.bench.load import SwitchChecks, ladder, measure, step_record
from switch.tools.bench.procs import SwitchUnderTest
from switch.tools.bench.sipp import run_sipp_uac
from switch.tools.bench.twiml_bench import number_entries

EDGE_LADDER = (50, 100, 150, 200, 250, 300, 350, 400, 500)
EDGE_CONCURRENCY = 40  # offered calls in their hold phase, at most


def process_group(leader: int) -> dict[str, int]:
    """Every process whose process group is `leader` (Kamailio's main process and its children), by name."""
    found: dict[str, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == leader:  # field 5 of stat: pgrp (after the state and the ppid)
            found[f"kamailio{len(found)}"] = int(entry)
    return found


async def edge_phase(session: aiohttp.ClientSession, receiver: WebhookReceiver, app: TwimlApp, workdir: Path,
                     workers: int, hold_ms: int, step_seconds: float, budget_s: float,
                     baseline_max_cps: float | None) -> Json:
    """Start the switch behind the edge with `workers` workers and run the inbound rate ladder through it."""
    workdir.mkdir(parents=True, exist_ok=True)
    switch = SwitchUnderTest(workdir, workers, number_entries(app, receiver, receiver.url("/inbound")), edge=True)
    await switch.start(session)
    try:
        health = await switch.healthz(session)
        legs = sum(int(w.get("capacity", 0)) for w in health.get("workers", []))
        concurrency = max(2.0, min(EDGE_CONCURRENCY, legs / 2))
        edge_pid = int(health.get("edge", {}).get("pid") or 0)
        checks = SwitchChecks(switch, receiver, session)

        async def step(rate: float) -> Json:
            await switch.refresh(session)
            pids = {**switch.pids(), **process_group(edge_pid)}
            hold = min(hold_ms, int(1000 * concurrency / rate))
            calls = max(50, round(rate * step_seconds))
            # a scenario that follows the Record-Route (sipp's built-in `uac` sends its ACK and BYE without it)
            result = await measure(pids, lambda: run_sipp_uac(switch.public_target, calls, rate, hold, workdir,
                                                              f"edge-{rate:g}cps", from_prefix="edge"), checks)
            return step_record(rate, calls, hold, result)

        found = await ladder([float(r) for r in EDGE_LADDER], budget_s, step)
        engines = sorted({str(w.get("engine", "?")) for w in health.get("workers", [])})
        best = found["max_cps_zero_failures"]
        return {"workers": workers, "engines": engines, "call_legs": legs, "offered_concurrency": concurrency,
                "max_inbound_cps_zero_failures": best,
                "vs_baseline_max_cps": round(best / baseline_max_cps, 2) if baseline_max_cps else None,
                "ladder": found, "switch_log": switch.log_findings()}
    finally:
        await switch.stop()
