"""The bench's concurrent-calls phase: N bridged calls up at once through the SIP edge, RTP both ways.

The switch runs behind Kamailio (`[edge] enabled = true`, `workers` workers).  The `<Dial>` number's voice_url
answers `<Dial><Sip>` to a sipp uas; a sipp uac calls it N times at `rate` calls per second and holds every call
until all N are up and `plateau_s` more seconds have passed (hold = N / rate + plateau).  Both sipps stream a
looped tone (`switch.tools.bench.rtp_sipp`: one 20 ms PCMU packet every 20 ms per call), so each of the 2N legs
receives 50 packets a second and the switch's bridge sends them on to the other leg.

Measured:
- at rest, before any call: RSS and PSS (`/proc/PID/smaps_rollup`) and CPU per second of the control plane, every
  worker and every Kamailio process;
- with all N calls bridged (every child answered, 2N legs in use): the same over `sample_s` seconds, whence the
  memory per leg ((PSS or RSS of the workers with the calls - at rest) / 2N; the control plane's and Kamailio's
  per call);
- after the calls end: sipp's counts, the switch's callbacks and fetches (as in every bridged run), and the RTP
  the workers counted for the legs that ended (/healthz, per worker: `switch.worker.rtpstat`): packets received
  against the expected 50/s for every leg's hold time, lost (sequence gaps), discarded, and the jitter buffers'
  lost and discarded frames.

Clean means: sipp counts every call successful, all N were established together, the callbacks are all in, every
slot is free again, no process died or was restarted, and no RTP packet or frame was lost or discarded.
Bounded: sipp gets `-timeout` (N / rate + hold + 15 s) and is killed if it overstays.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp

from switch.tools.bench.common import TWIML_NUMBER, Json, TwimlApp, WebhookReceiver, cpu_or_none, idle_cpu_rates
from switch.tools.bench.edge_bench import process_group
from switch.tools.bench.procs import SwitchUnderTest
from switch.tools.bench.rtp_sipp import PACKETS_PER_SECOND, uac_rtp_scenario, uas_rtp_scenario, write_tone
from switch.tools.bench.sipp import SippRun, SippUas, run_sipp_uac
from switch.tools.bench.twiml_bench import CHILD_HOOKS, DIAL_PATH, BridgeChecks, dial_document, number_entries

CONCURRENT_CALLS = 500
CONCURRENT_RATE = 25.0  # calls per second while they are set up (and, by the hold, torn down)
PLATEAU_S = 10.0  # every call up together for this long
SAMPLE_S = 5.0  # CPU window inside the plateau
IDLE_S = 3.0
RTP_KEYS = ("legs", "rx_packets", "rx_lost", "rx_discarded", "tx_packets", "jb_lost", "jb_discarded")


def smaps_rollup(pid: int) -> Json:
    """RSS and PSS of process `pid` in MB, from /proc/PID/smaps_rollup."""
    values: Json = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            values[f"{key.lower()}_mb"] = round(int(rest.split()[0]) / 1024, 2)
    return values


def memory_of(pids: dict[str, int]) -> dict[str, Json]:
    """RSS and PSS of each named process (a process that is gone is left out)."""
    found: dict[str, Json] = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError, ValueError, IndexError):
            found[name] = smaps_rollup(pid)
    return found


def group_sum(per_process: dict[str, Json], prefix: str, key: str) -> float:
    """`key` summed over the processes whose name starts with `prefix` (worker0, worker1 ...; kamailio0 ...)."""
    return round(sum(float(v.get(key, 0.0)) for n, v in per_process.items() if n.startswith(prefix)), 3)


def rtp_totals(health: Json) -> dict[str, int]:
    """The RTP of ended legs, summed over every worker in a /healthz body."""
    totals = dict.fromkeys(RTP_KEYS, 0)
    for worker in health.get("workers", []):
        for key in RTP_KEYS:
            totals[key] += int((worker.get("rtp") or {}).get(key, 0))
    return totals


def memory_figures(idle: dict[str, Json], loaded: dict[str, Json], calls: int) -> Json:
    """Per group (workers, control plane, Kamailio): PSS and RSS at rest and loaded, and per leg (workers) or
    per call (the others)."""
    out: Json = {}
    for group, prefix, per in (("workers", "worker", 2 * calls), ("control_plane", "control_plane", calls),
                               ("kamailio", "kamailio", calls)):
        figures: Json = {}
        for key in ("pss_mb", "rss_mb"):
            rest, busy = group_sum(idle, prefix, key), group_sum(loaded, prefix, key)
            figures[f"{key}_idle"], figures[f"{key}_loaded"] = rest, busy
            unit = "per_leg" if group == "workers" else "per_call"
            figures[f"{key.removesuffix('_mb')}_kb_{unit}"] = round((busy - rest) * 1024 / per, 1) if per else None
        out[group] = figures
    return out


def cpu_figures(idle: dict[str, float], loaded: dict[str, float]) -> Json:
    """CPU seconds per second (share of one core) per process group, at rest and with every call up."""
    out: Json = {}
    for group in ("worker", "control_plane", "kamailio"):
        rest = round(sum(v for n, v in idle.items() if n.startswith(group)), 4)
        busy = round(sum(v for n, v in loaded.items() if n.startswith(group)), 4)
        out[group if group != "worker" else "workers"] = {"idle": rest, "loaded": busy}
    out["per_worker_loaded"] = {n: round(v, 4) for n, v in loaded.items() if n.startswith("worker")}
    return out


async def _established(receiver: WebhookReceiver, switch: SwitchUnderTest, session: aiohttp.ClientSession,
                       children_before: int, calls: int, timeout: float) -> tuple[int, Json, float]:
    """Wait until `calls` children answered (their `in-progress` callbacks) and 2 x `calls` legs are in use;
    returns the calls up (answered and not completed), the last /healthz and the seconds waited."""
    started = time.monotonic()
    while True:
        hooks = receiver.select(CHILD_HOOKS)[children_before:]
        up = sum(h.status == "in-progress" for h in hooks) - sum(h.status == "completed" for h in hooks)
        health = await switch.healthz(session)
        if (up >= calls and int(health.get("in_use", 0)) >= 2 * calls) or time.monotonic() - started >= timeout:
            return up, health, round(time.monotonic() - started, 2)
        await asyncio.sleep(0.25)


async def concurrent_phase(session: aiohttp.ClientSession, receiver: WebhookReceiver, app: TwimlApp, workdir: Path,
                           workers: int, calls: int = CONCURRENT_CALLS, rate: float = CONCURRENT_RATE,
                           plateau_s: float = PLATEAU_S, sample_s: float = SAMPLE_S) -> Json:
    """Start the switch behind the edge and hold `calls` bridged calls up together (see the module doc)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ramp_s = calls / rate
    hold_ms = int(1000 * (ramp_s + plateau_s))
    tone = write_tone(workdir / "tone.ul")
    (workdir / "uas-rtp.xml").write_text(uas_rtp_scenario(tone))
    switch = SwitchUnderTest(workdir, workers, number_entries(app, receiver, receiver.url("/inbound")), edge=True)
    await switch.start(session)
    uas: SippUas | None = None
    try:
        health = await switch.healthz(session)
        pids = {**switch.pids(), **process_group(int(health.get("edge", {}).get("pid") or 0))}
        legs_capacity = sum(int(w.get("capacity", 0)) for w in health.get("workers", []))
        await asyncio.sleep(0.5)  # let start-up CPU settle
        idle_memory = memory_of(pids)
        idle_cpu = await idle_cpu_rates(pids, IDLE_S)
        rtp_before = rtp_totals(await switch.healthz(session))
        budget = ramp_s + hold_ms / 1000 + 15
        uas = await SippUas(workdir, "concurrent-far", calls, scenario=workdir / "uas-rtp.xml").start(budget + 10)
        app.documents[DIAL_PATH] = dial_document(uas.uri, receiver.url(CHILD_HOOKS))
        checks = BridgeChecks(switch, receiver, app, session)
        await checks.begin()
        children_before = receiver.count(CHILD_HOOKS)
        cpu_before = {name: cpu_or_none(pid) for name, pid in pids.items()}
        started = time.monotonic()
        caller = asyncio.create_task(run_sipp_uac(
            switch.public_target, calls, rate, hold_ms, workdir, f"concurrent-{calls}", service=TWIML_NUMBER,
            scenario_text=uac_rtp_scenario("conc", tone)))
        # All N up by the end of the ramp, give or take the set-up of the last one; the first ends at `hold_ms`.
        up, loaded_health, waited = await _established(receiver, switch, session, children_before, calls,
                                                       timeout=ramp_s + min(plateau_s / 2, 5.0))
        all_up = up >= calls
        window = max(1.0, min(sample_s, hold_ms / 1000 - (time.monotonic() - started) - 1.0))
        loaded_cpu = await idle_cpu_rates(pids, window)
        loaded_memory = memory_of(pids)
        up_after, _, _ = await _established(receiver, switch, session, children_before, calls, timeout=0)
        run: SippRun = await caller
        switch_side = await checks.end(run)
        cpu_after = {name: cpu_or_none(pid) for name, pid in pids.items()}
        finished = time.monotonic() - started
        far_exit = await uas.finish(10.0)
        rtp = {k: v - rtp_before[k] for k, v in rtp_totals(await switch.healthz(session)).items()}
    finally:
        if uas is not None:
            await uas.kill()
        await switch.stop()
    died = sorted(n for n in pids if cpu_before.get(n) is None or cpu_after.get(n) is None)
    expected_rx = 2 * run.successful * PACKETS_PER_SECOND * hold_ms / 1000
    rtp_clean = (rtp["legs"] == 2 * run.successful and rtp["rx_lost"] == 0 and rtp["rx_discarded"] == 0
                 and rtp["jb_lost"] == 0 and rtp["jb_discarded"] == 0
                 and rtp["rx_packets"] >= 0.95 * expected_rx)
    clean = run.clean and all_up and bool(switch_side.get("consistent")) and not died and rtp_clean
    engines = sorted({str(w.get("engine", "?")) for w in health.get("workers", [])})
    return {
        "calls": calls, "rate_cps": rate, "hold_ms": hold_ms, "workers": workers, "engines": engines,
        "call_legs_capacity": legs_capacity, "clean": clean,
        "established_together": up, "established_at_end_of_sample": up_after, "all_established": all_up,
        "seconds_to_all_established": waited, "legs_in_use_loaded": loaded_health.get("in_use"),
        "sample_seconds": round(window, 2),
        "cpu_s_per_s": cpu_figures(idle_cpu, loaded_cpu),
        "memory": memory_figures(idle_memory, loaded_memory, calls),
        "memory_by_process": {"idle": idle_memory, "loaded": loaded_memory},
        "sipp": run.as_json(), "far_end_exit": far_exit, "switch": switch_side, "processes_died": died,
        "rtp": {**rtp, "expected_rx_packets": round(expected_rx), "rx_vs_expected": round(
            rtp["rx_packets"] / expected_rx, 4) if expected_rx else None, "clean": rtp_clean},
        "seconds": round(finished, 1), "switch_log": switch.log_findings(),
    }
