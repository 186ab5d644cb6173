"""`softswitch bench`: the switch under sipp load on 127.0.0.1, measured next to bare pjsua2 baselines.

Nothing in the report is asserted; every figure is measured in the run that writes it.  The parts live in
`switch/bench_*.py`: common helpers and the bench's HTTP servers (`bench_common`), sipp (`bench_sipp`), the
processes (`bench_procs`), load runs and REST measurements (`bench_load`), bridged calls (`bench_twiml`),
media timings (`bench_media`) and the report (`bench_report`).

1. **Baseline** — `python -m switch.worker.baseline`, a bare pjsua2 UAS set up like a media worker,
   driven by sipp's built-in `uac` scenario at the same rate, call count and hold time as the switch.
   CPU is the utime+stime delta of the process (`/proc/PID/stat`) divided by the calls completed; RSS is
   `VmRSS`/`VmHWM` from `/proc/PID/status`.  The same rate ladder as the switch's gives its top rate.
2. **Bare B2BUA** — `python -m switch.worker.baseline --b2bua URI`: every inbound call bridged to a new call
   to a sipp uas (answered when that one answers, audio both ways), driven by the same traced load as the
   switch's `<Dial>` run below: the yardstick of CPU per bridged call and of post-dial delay.
3. **Switch** — `python -m switch serve` with a temporary config (1 worker, then `workers`) with two
   `[[numbers]]`: one without voice_url (answered and held) whose status callback points at a webhook
   receiver in this process, and one whose voice_url is the bench's TwiML app answering `<Dial><Sip>` (all
   four child callback events) with the number's StatusCallback.  CPU per call is (control plane + every
   worker) / calls, and the call-carrying worker 0 alone; both as ratios to the baseline; each fixed-rate
   run also net of idle CPU (threads' schedstat time minus the rate measured over 2 s at rest).
   - 1 worker: the fixed-rate inbound run; the answer delay of the plain number; the traced `<Dial>` run
     (post-dial delay, TwiML fetch overhead, CPU per bridged call: see `bench_twiml`); then the bridged-call
     ladder on worker 0.
   - `workers` workers: the fixed-rate run; callback latency and API dial delay (REST calls to a tracing
     sipp uas); capacity; REST redirect to the first frame of new audio (the lab phone, see
     `bench_media`); the inbound rate ladder (10, 20, 30 ... cps, hold shrunk so the offered concurrency
     stays near 2 of worker 0's 4 slots); last the bridged-call ladder with every worker taking INVITEs on
     its own port (inbound INVITEs to the configured address all land on worker 0).
   A ladder step is clean when sipp counts every call successful, no measured process died, and the
   switch sent every expected callback (and fetch), freed every call slot and restarted no worker.
4. **Say cache** — `media.speech.Speech.synthesize` of a cached text, in this process.
5. **Edge** — the inbound rate ladder again, through Kamailio to every worker: see
   `switch.tools.bench.edge_bench`.
   **Concurrent calls** — `concurrent_calls` (500 by default; 0 skips it) bridged calls held up together through
   Kamailio with RTP both ways: CPU, memory per leg (RSS and PSS) and the RTP the workers counted per leg, see
   `switch.tools.bench.concurrent`.
   **Observability** — the cost of metrics and call events per call: the same inbound load with each on, both
   and neither (`observability_calls` calls per run; 0 skips it), see `switch.tools.bench.observability`.
   **Media Streams** — `streams_calls` (20 by default; 0 skips it) calls on `<Connect><Stream>` to a bot in this
   process, sipp echoing RTP: the bot -> caller -> bot round trip, frames, CPU per stream-second against the same
   calls held with `<Pause>`, see `switch.tools.bench.streams_bench`.
   **Conference and queue** — `conference_participants` (20 by default; 0 skips it) callers with RTP in one
   `<Dial><Conference>` room on one worker and spread on two: CPU per participant-second against the same calls
   held with `<Pause>`; the largest room with 0 dropped frames (built engine, then the PyPI wheel); `<Dial><Queue>`
   to the caller's audio at the agent, see `switch.tools.bench.conference_bench`.
   **Browsers** — `browser_calls` (20 by default; 0 skips it) browser calls (aiortc stand-ins on the client
   WebSocket) on one worker: mouth-to-ear latency browser -> switch -> browser against the same two peers wired
   directly (Opus and PCMU), CPU per browser call-second against the same number of SIP calls with RTP, and the
   most simultaneous browser calls that all hear a played tone cleanly, see `switch.tools.bench.browser_bench`.
6. **Recording** — a dual-channel recording of a bridged call for `recording_seconds` (10 minutes by default;
   0 skips it) next to a bare pjsua2 bridge tapped by two Python ports: see `switch.tools.bench.recording`.

Every load loop is bounded in calls and seconds; sipp gets `-timeout` and is killed if it overstays.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from switch.tools.bench.browser_bench import BROWSER_CALLS, NOTE as BROWSER_NOTE, browser_phase
from switch.tools.bench.common import (
    CLK_TCK,
    SIPP,
    Json,
    TwimlApp,
    WebhookReceiver,
    idle_cpu_rates,
    ratio,
)
from switch.tools.bench.concurrent import CONCURRENT_RATE, concurrent_phase
from switch.tools.bench.conference_bench import PARTICIPANTS, conference_phase
from switch.tools.bench.edge_bench import edge_phase
from switch.tools.bench.load import (
    TARGET_CONCURRENCY,
    SwitchChecks,
    callback_latency,
    capacity_check,
    ladder_rates,
    measure_load,
    rate_ladder,
)
from switch.tools.bench.media_bench import redirect_latency, say_cache
from switch.tools.bench.observability import observability_phase
from switch.tools.bench.procs import Baseline, SwitchUnderTest
from switch.tools.bench.recording import run_recording_bench
from switch.tools.bench.report import evaluate_targets, format_summary
from switch.tools.bench.streams_bench import STREAM_CALLS, streams_phase
from switch.tools.bench.twiml_bench import (
    B2BUA_CONCURRENCY,
    B2BUA_MIN_HOLD_MS,
    b2bua_ladder,
    b2bua_rates,
    baseline_b2bua_phase,
    bridged_phase,
    number_entries,
)
from switch.workers.pool import START_LIMIT, START_WINDOW

IDLE_SECONDS = 2.0  # at rest before each fixed-rate run, for the idle-corrected CPU figures
# A started switch rests this long first: longer than a worker takes to stop its idle media clock
# (switch.worker.media_clock.IDLE_S, 2 s), so "at rest" is a worker at rest (section 4: idle CPU per worker).
REST_SECONDS = 3.0

NOTES = {
    "post_dial_delay_ms": (
        "INVITE in = the caller's INVITE as logged sent by sipp uac (-trace_msg); INVITE out = the <Dial> child's "
        "INVITE as logged received by sipp uas; both stamped by sipp with the wall clock to the microsecond "
        "when it logs the message (after sending / after reading it), the same clock as the app's time.time() "
        "stamps. The app's time (handler start -> response written) is subtracted per call; what is left "
        "includes the switch's HTTP client round trip on 127.0.0.1, the TwiML parse, answering the caller "
        "(<Dial> without answerOnBridge answers first, for ringback, and waits for its media) and placing the "
        "child. The baseline is the bare pjsua2 B2BUA's INVITE in -> INVITE out under the same load."),
    "twiml_fetch_overhead_ms": (
        "(caller's answer delay for the <Dial> number - the app's time) minus the answer delay of the number "
        "without voice_url, both on the same switch and load: what fetching and parsing TwiML adds before the "
        "caller is answered, beyond the app itself. p50 and p99 are differences of the two distributions' "
        "quantiles, not quantiles of per-call differences."),
    "b2bua_cps": (
        f"Each bridged call holds 2 of a worker's 4 legs (pjsua2 PJSUA_MAX_CALLS = 4), so a worker bridges at "
        f"most 2 calls at once; the ladder's hold time is shrunk so about {B2BUA_CONCURRENCY:g} bridged call "
        f"per worker is offered at once (at least {B2BUA_MIN_HOLD_MS} ms). The per-worker call-start guard in "
        f"switch/workers/pool.py (START_LIMIT = {START_LIMIT} new legs per {START_WINDOW:g} s) counts only legs the "
        "switch places (the <Dial> children), not the inbound legs a worker accepts, although both take media "
        "sockets from the same 64-handle ioqueue. Inbound INVITEs to the configured SIP address all land on "
        "worker 0; every worker does accept INVITEs on its own port (base + i), which is how the all-workers "
        "ladder spreads them (one sipp per worker), as a SIP load balancer in front would."),
    "redirect_to_audio_ms": (
        "Latency = wall time of the first sample of the new tone in the lab phone's recording - time.time() "
        "just before the REST POST. Error of the measurement itself: the recording's sample clock is tied to "
        "wall time by watching the WAV file grow (first tick to about mapping_error_ms, checked against the "
        "20 ms bracket the phone's 'answered'/'hangup' events give, see recording_start); the onset is located "
        "to about 1 ms. What is measured includes, as for any far end: the switch's bridge handing audio out "
        "in 20 ms frames (a new player waits up to a frame for the next tick: the POSTs fall at random phases, "
        "so this spreads the figures over ~20 ms), RTP on 127.0.0.1, the phone's adaptive jitter buffer "
        "(typically one frame or two) and the phone's own 20 ms bridge tick."),
    "machine": (
        "All processes (switch, baselines, sipp on both ends, the lab phone and this bench with its two HTTP "
        "servers) share the machine's CPUs; other work on the machine during the run shows in the figures "
        "(see machine.loadavg_at_start and loadavg_at_end)."),
    "browser": BROWSER_NOTE,
}


@dataclass(frozen=True)
class BenchParams:
    """Everything a bench run is parameterised by."""

    calls: int
    rate: float
    workers: int
    hold_ms: int = 100
    max_rate: float = 300.0
    step_seconds: float = 2.5
    ladder_budget_s: float = 40.0
    latency_calls: int = 100
    latency_rate: float = 10.0
    pdd_calls: int = 50
    pdd_rate: float = 5.0
    plain_calls: int = 30
    bridge_answer_calls: int = 20
    b2bua_max_rate: float = 30.0
    b2bua_budget_s: float = 25.0
    redirects: int = 10
    say_iterations: int = 1000
    recording_seconds: float = 600.0
    edge_budget_s: float = 60.0
    concurrent_calls: int = 500
    concurrent_rate: float = CONCURRENT_RATE
    observability_calls: int = 200
    streams_calls: int = STREAM_CALLS
    conference_participants: int = PARTICIPANTS
    browser_calls: int = BROWSER_CALLS

    def as_json(self) -> Json:
        return {"calls": self.calls, "rate_cps": self.rate, "hold_ms": self.hold_ms, "workers": self.workers,
                "ladder": {"rates_cps": ladder_rates(self.max_rate), "seconds_per_step": self.step_seconds,
                           "budget_s": self.ladder_budget_s,
                           "hold_ms": f"min({self.hold_ms}, 1000 * {TARGET_CONCURRENCY:g} / rate)"},
                "latency_calls": self.latency_calls, "latency_rate_cps": self.latency_rate,
                "pdd_calls": self.pdd_calls, "pdd_rate_cps": self.pdd_rate, "plain_calls": self.plain_calls,
                "bridge_answer_calls": self.bridge_answer_calls,
                "b2bua_ladder": {"rates_cps_per_worker": b2bua_rates(self.b2bua_max_rate),
                                 "seconds_per_step": self.step_seconds, "budget_s": self.b2bua_budget_s,
                                 "hold_ms": f"max({B2BUA_MIN_HOLD_MS}, min({self.hold_ms}, "
                                            f"1000 * {B2BUA_CONCURRENCY:g} / rate))"},
                "redirects": self.redirects, "say_iterations": self.say_iterations,
                "recording_seconds": self.recording_seconds, "concurrent_calls": self.concurrent_calls,
                "concurrent_rate_cps": self.concurrent_rate, "observability_calls": self.observability_calls,
                "streams_calls": self.streams_calls, "conference_participants": self.conference_participants,
                "browser_calls": self.browser_calls}


def _tool_version(args: list[str], pattern: str) -> str | None:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, out, re.M)
    return match.group(1) if match else None


def machine_info() -> Json:
    """CPU count and model, kernel, Python, pjsua2 (asked of the baseline module) and sipp versions."""
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace") if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    return {
        "nproc": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model.group(1) if model else platform.processor(), "kernel": platform.release(),
        "python": platform.python_version(),
        "pjsua2": _tool_version([sys.executable, "-m", "switch.worker.baseline", "--version"],
                                r"^pjsua2 (\S+)"),
        "sipp": _tool_version([SIPP, "-v"], r"(SIPp v\S+)"), "clk_tck": CLK_TCK,
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


async def _phase(report: Json, name: str, work: Awaitable[Any]) -> Any:
    """Run one phase; a failure is recorded in the report and the next phase still runs."""
    try:
        return await work
    except Exception as exc:  # the report says what broke; the other phases still measure
        report["errors"].append({"phase": name, "error": f"{type(exc).__name__}: {exc}"[:2000]})
        return None


async def baseline_phase(workdir: Path, p: BenchParams) -> Json:
    """The bare pjsua2 UAS: the fixed-rate run, then its rate ladder."""
    workdir.mkdir(parents=True, exist_ok=True)
    base = await Baseline(workdir).start()
    try:
        pids = {"baseline": base.pid}
        idle = await idle_cpu_rates(pids, IDLE_SECONDS)
        run = await measure_load(pids, base.target, p.calls, p.rate, p.hold_ms, workdir, "fixed", idle=idle)
        ladder = await rate_ladder(pids, base.target, workdir, "ladder", p.hold_ms, p.max_rate,
                                   p.step_seconds, p.ladder_budget_s)
    finally:
        await base.stop()
    memory = run["memory"].get("baseline", {})
    return {"process": "python -m switch.worker.baseline", "cpu_s_per_call": run["cpu_s_per_call"],
            "cpu_s_per_call_net_of_idle": (run.get("net_of_idle") or {}).get("cpu_s_per_call"),
            "exit_status": base.proc.returncode if base.proc is not None else None,
            "crash_output": base.crash_output(),
            "rss_mb": memory.get("rss_mb"), "rss_peak_mb": memory.get("rss_peak_mb"),
            "max_cps_zero_failures": ladder["max_cps_zero_failures"], "run": run, "ladder": ladder}


def _switch_figures(run: Json, workers: int, baseline: Json | None) -> Json:
    """Per-call CPU (everything, control plane, worker 0) and RSS per process from one fixed run."""
    per = run["cpu_s_per_call_by_process"]
    base_cpu = baseline.get("cpu_s_per_call") if baseline else None
    base_net = baseline.get("cpu_s_per_call_net_of_idle") if baseline else None
    net = run.get("net_of_idle") or {}
    net_per = net.get("cpu_s_per_call_by_process", {})
    memory = run["memory"]
    return {
        "workers": workers, "cpu_s_per_call": run["cpu_s_per_call"],
        "control_plane_cpu_s_per_call": per.get("control_plane"), "worker_cpu_s_per_call": per.get("worker0"),
        "cpu_ratio_vs_baseline": ratio(run["cpu_s_per_call"], base_cpu),
        "worker_cpu_ratio_vs_baseline": ratio(per.get("worker0"), base_cpu),
        "net_of_idle": {
            "cpu_s_per_call": net.get("cpu_s_per_call"),
            "control_plane_cpu_s_per_call": net_per.get("control_plane"),
            "worker_cpu_s_per_call": net_per.get("worker0"),
            "cpu_ratio_vs_baseline": ratio(net.get("cpu_s_per_call"), base_net),
            "worker_cpu_ratio_vs_baseline": ratio(net_per.get("worker0"), base_net)},
        "rss_mb_per_worker": [memory.get(f"worker{i}", {}).get("rss_mb") for i in range(workers)],
        "rss_peak_mb_per_worker": [memory.get(f"worker{i}", {}).get("rss_peak_mb") for i in range(workers)],
        "rss_mb_control_plane": memory.get("control_plane", {}).get("rss_mb"),
    }


@dataclass
class Context:
    """What every switch phase shares."""

    report: Json
    params: BenchParams
    receiver: WebhookReceiver
    app: TwimlApp
    session: aiohttp.ClientSession
    baseline: Json | None
    b2bua_baseline: Json | None


async def switch_phase(ctx: Context, workdir: Path, workers: int, full: bool) -> Json:
    """Start the switch with `workers` workers, run its fixed-rate load and then its own measurements (see the
    module doc: the bridged ones without `full`, the REST, media and ladder ones with it); each measurement
    that fails is recorded in the report and the next still runs."""
    p, session, receiver, app = ctx.params, ctx.session, ctx.receiver, ctx.app
    workdir.mkdir(parents=True, exist_ok=True)
    switch = SwitchUnderTest(workdir, workers, number_entries(app, receiver, receiver.url("/inbound")))
    await switch.start(session)
    out: Json = {}
    name = f"switch-{workers}-worker{'s' if workers > 1 else ''}"

    async def step(label: str, make: Callable[[], Awaitable[Any]]) -> Any:
        async def run() -> Any:
            await switch.refresh(session)  # a worker a ladder broke is up again, and its pid noted
            return await make()

        return await _phase(ctx.report, f"{name}/{label}", run())

    try:
        checks = SwitchChecks(switch, receiver, session)
        await asyncio.sleep(REST_SECONDS)  # start-up CPU settles, the workers come to rest
        idle = await idle_cpu_rates(switch.pids(), IDLE_SECONDS)
        run = await measure_load(switch.pids(), switch.target(), p.calls, p.rate, p.hold_ms, workdir, "fixed",
                                 checks, idle)
        out = {**_switch_figures(run, workers, ctx.baseline), "run": run,
               "idle_cpu_s_per_s_by_worker": {name: rate for name, rate in idle.items() if name.startswith("worker")}}
        if not full:
            out["bridged"] = await step("bridged", lambda: bridged_phase(
                switch, receiver, app, session, workdir, calls=p.pdd_calls, rate=p.pdd_rate, hold_ms=p.hold_ms,
                plain_calls=p.plain_calls, bridge_answer_calls=p.bridge_answer_calls, idle=idle,
                baseline=ctx.b2bua_baseline))
            out["b2bua_ladder"] = await step("b2bua-ladder", lambda: b2bua_ladder(
                switch, receiver, app, session, workdir, "b2bua-w0", [0], hold_ms=p.hold_ms,
                step_seconds=p.step_seconds, budget_s=p.b2bua_budget_s, max_rate=p.b2bua_max_rate))
            return out
        out["rest"] = await step("rest", lambda: callback_latency(switch, receiver, session, workdir,
                                                                  p.latency_calls, p.latency_rate))
        out["capacity"] = await step("capacity", lambda: capacity_check(switch, receiver, session, workdir))
        out["redirect"] = await step("redirect", lambda: redirect_latency(switch, receiver, app, session, workdir,
                                                                          p.redirects))
        # The ladders go last: they push until something breaks, and a broken worker is restarted.
        ladder = await step("ladder", lambda: rate_ladder(switch.pids(), switch.target(), workdir, "ladder",
                                                          p.hold_ms, p.max_rate, p.step_seconds,
                                                          p.ladder_budget_s, checks))
        if ladder is not None:
            out = {**out, "max_cps_zero_failures": ladder["max_cps_zero_failures"], "ladder": ladder}
        out["b2bua_ladder"] = await step("b2bua-ladder", lambda: b2bua_ladder(
            switch, receiver, app, session, workdir, "b2bua-all", list(range(workers)), hold_ms=p.hold_ms,
            step_seconds=p.step_seconds, budget_s=p.b2bua_budget_s, max_rate=p.b2bua_max_rate))
    finally:
        await switch.stop()
        out["switch_log"] = switch.log_findings()
    return out


def _assemble(report: Json, p: BenchParams, single: Json | None, full: Json | None) -> None:
    """Lift each measurement from the phase that made it to its place in the report."""
    if single is not None:
        bridged = single.pop("bridged", None) or {}
        report["post_dial_delay_ms"] = bridged.get("post_dial_delay_ms")
        report["twiml_fetch_overhead_ms"] = bridged.get("twiml_fetch_overhead_ms")
        report["bridged_cpu"] = bridged.get("bridged_cpu")
        report["bridged_runs"] = bridged.get("runs")
    b2bua: Json = {"per_worker": (single or {}).pop("b2bua_ladder", None),
                   "all_workers": (full or {}).pop("b2bua_ladder", None), "workers": p.workers}
    report["b2bua_cps"] = b2bua if b2bua["per_worker"] or b2bua["all_workers"] else None
    if full is not None:
        rest = full.pop("rest", None) or {}
        report["capacity"] = full.pop("capacity", None)
        report["redirect_to_audio_ms"] = full.pop("redirect", None)
        report["callback_latency_ms"] = rest.get("callback_latency_ms")
        report["api_dial_delay_ms"] = rest.get("api_dial_delay_ms")
        report["rest_calls"] = rest.get("details")
        report["switch"] = {"workers": p.workers, **full, "single_worker": single}
    elif single is not None:
        report["switch"] = {"workers": p.workers, "single_worker": single}


async def _bench(p: BenchParams, workdir: Path) -> Json:
    started = time.monotonic()
    report: Json = {"machine": machine_info(), "parameters": p.as_json(), "baseline": None, "baseline_b2bua": None,
                    "switch": None, "callback_latency_ms": None, "api_dial_delay_ms": None,
                    "post_dial_delay_ms": None, "twiml_fetch_overhead_ms": None, "bridged_cpu": None,
                    "b2bua_cps": None, "redirect_to_audio_ms": None, "say_cache_ms": None, "capacity": None,
                    "recording": None, "edge": None, "concurrent": None, "streams": None, "conference": None,
                    "browser": None,
                    "notes": dict(NOTES), "errors": []}
    receiver: WebhookReceiver = WebhookReceiver().start()
    app: TwimlApp = TwimlApp().start()
    single = full = None
    try:
        async with aiohttp.ClientSession() as session:
            base = await _phase(report, "baseline", baseline_phase(workdir / "baseline", p))
            report["baseline"] = base
            b2bua = await _phase(report, "baseline-b2bua", baseline_b2bua_phase(
                workdir / "baseline-b2bua", p.pdd_calls, p.pdd_rate, p.hold_ms, IDLE_SECONDS))
            report["baseline_b2bua"] = b2bua
            ctx = Context(report, p, receiver, app, session, base, b2bua)
            single = await _phase(report, "switch-1-worker", switch_phase(ctx, workdir / "switch-1", 1, False))
            full = await _phase(report, f"switch-{p.workers}-workers",
                                switch_phase(ctx, workdir / f"switch-{p.workers}-full", p.workers, True))
            report["edge"] = await _phase(report, "edge", edge_phase(
                session, receiver, app, workdir / "edge", p.workers, p.hold_ms, p.step_seconds, p.edge_budget_s,
                (base or {}).get("max_cps_zero_failures")))
            if p.concurrent_calls > 0:
                report["concurrent"] = await _phase(report, "concurrent", concurrent_phase(
                    session, receiver, app, workdir / "concurrent", p.workers, calls=p.concurrent_calls,
                    rate=p.concurrent_rate))
            if p.observability_calls > 0:
                report["observability"] = await _phase(report, "observability", observability_phase(
                    session, receiver, app, workdir / "observability", p.observability_calls, p.rate, p.hold_ms))
            if p.streams_calls > 0:
                report["streams"] = await _phase(report, "streams", streams_phase(
                    session, receiver, app, workdir / "streams", 1, calls=p.streams_calls, ladder=3))
            if p.conference_participants > 0:
                report["conference"] = await _phase(report, "conference", conference_phase(
                    session, app, workdir / "conference", participants=p.conference_participants))
            if p.browser_calls > 0:
                report["browser"] = await _phase(report, "browser", browser_phase(
                    session, app, workdir / "browser", calls=p.browser_calls))
            report["say_cache_ms"] = await _phase(report, "say-cache", say_cache(workdir / "say", p.say_iterations))
            if p.recording_seconds > 0:
                report["recording"] = await _phase(report, "recording", run_recording_bench(
                    p.recording_seconds, workdir / "recording"))
    finally:
        receiver.stop()
        app.stop()
    _assemble(report, p, single, full)
    report["targets"] = evaluate_targets(report)
    report["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    report["duration_s"] = round(time.monotonic() - started, 1)
    return report


def run_bench(output: Path, calls: int, rate: float, workers: int, *, hold_ms: int = 100,
              max_rate: float = 300.0, step_seconds: float = 2.5, ladder_budget_s: float = 40.0,
              latency_calls: int | None = None, latency_rate: float = 10.0, pdd_calls: int = 50,
              pdd_rate: float = 5.0, plain_calls: int = 30, bridge_answer_calls: int = 20,
              b2bua_max_rate: float = 30.0,
              b2bua_budget_s: float = 25.0, redirects: int = 10, say_iterations: int = 1000,
              recording_seconds: float = 600.0, concurrent_calls: int = 500,
              concurrent_rate: float = CONCURRENT_RATE, observability_calls: int = 200,
              streams_calls: int = STREAM_CALLS, conference_participants: int = PARTICIPANTS,
              browser_calls: int = BROWSER_CALLS, keep_dir: Path | None = None) -> int:
    """Measure, print the summary, write the JSON report to `output`.

    Exit status 0 when every phase ran (whatever the targets say; they are in the report), 1 when a phase
    could not run, 2 for unusable arguments.  `keep_dir` keeps sipp logs, configs and the switch's log.
    """
    if calls < 1 or rate <= 0 or workers < 1 or shutil.which(SIPP) is None or pdd_calls < 1 or redirects < 1:
        print("softswitch bench: need calls >= 1, rate > 0, workers >= 1 and sipp on PATH", file=sys.stderr)
        return 2
    params = BenchParams(calls=calls, rate=rate, workers=workers, hold_ms=hold_ms, max_rate=max_rate,
                         step_seconds=step_seconds, ladder_budget_s=ladder_budget_s,
                         latency_calls=latency_calls if latency_calls is not None else min(100, calls),
                         latency_rate=latency_rate, pdd_calls=pdd_calls, pdd_rate=pdd_rate,
                         plain_calls=plain_calls, bridge_answer_calls=bridge_answer_calls,
                         b2bua_max_rate=b2bua_max_rate, b2bua_budget_s=b2bua_budget_s,
                         redirects=redirects, say_iterations=say_iterations,
                         recording_seconds=recording_seconds, concurrent_calls=concurrent_calls,
                         concurrent_rate=concurrent_rate, observability_calls=observability_calls,
                         streams_calls=streams_calls, conference_participants=conference_participants,
                         browser_calls=browser_calls)
    with tempfile.TemporaryDirectory(prefix="softswitch-bench-") as tmp:
        workdir = keep_dir if keep_dir is not None else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        report = asyncio.run(_bench(params, workdir))
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(format_summary(report), flush=True)
    print(f"report written to {output}", flush=True)
    return 1 if report["errors"] else 0
