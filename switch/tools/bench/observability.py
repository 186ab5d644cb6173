"""The cost of observability per call: the same inbound load with metrics and call events on, each alone, and off.

Each variant is its own switch (1 worker, no edge) with `[server] metrics` and `call_events` set for it, and one
number whose TwiML (`<Pause>`) answers the call and whose status callback goes to the bench's receiver, so a call
makes one TwiML request and one webhook, the work both features observe.  sipp's built-in `uac` places `calls`
calls at `rate`, each held `hold_ms`; the CPU window is `switch.tools.bench.load.measure`'s (until every callback
is in and every slot is free); `metrics_hooks` times the metrics' own work per call in this process, which
those CPU figures cannot resolve.  Store writes are the switch's own count of SQLite statements that wrote
(`/healthz` store.writes) over the run, per call.  With metrics on, `scrapes` GETs of /metrics are timed after the
run (the exposition's size and latency on 127.0.0.1).

The cost of a feature is its variant's figure minus the all-off one's; CPU figures of separate runs carry the
machine's noise (see `spread`: the variants' CPU per call ran in the order given, on a shared machine).

    python -m switch.tools.bench.observability --calls 200 --rate 20 --output obs.json
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from switch.core.events import CallStatusChanged
from switch.core.metrics import Metrics
from switch.core.model import Call, Direction
from switch.core.status import CallStatus
from switch.core.store import PendingWebhook
from switch.tools.bench.common import NUMBER, Json, TwimlApp, WebhookReceiver
from switch.tools.bench.load import SwitchChecks, measure_load
from switch.tools.bench.procs import SwitchUnderTest

# name -> ([server] metrics, [server] call_events)
VARIANTS: dict[str, tuple[bool, bool]] = {
    "all_off": (False, False), "metrics_only": (True, False), "events_only": (False, True), "all_on": (True, True),
}
PAUSE_PATH = "/obs-pause"
SCRAPES = 20
HOOK_CALLS = 20000


def metrics_hooks_cost(calls: int = HOOK_CALLS) -> Json:
    """The metrics' own work per call, timed in this process (the run's CPU figures cannot resolve it): what an
    inbound call of the load above makes the hooks do (created, three status changes with RTP at the end, one
    TwiML request, one webhook attempt), `calls` times over."""
    metrics = Metrics(process=False)
    rtp = {"streams": 1, "rx_packets": 10, "rx_lost": 0, "rx_jitter_max_us": 900, "tx_packets": 10}
    call = Call(sid="CA" + "0" * 32, account_sid="AC" + "0" * 32, to=NUMBER, from_="sipp",
                direction=Direction.INBOUND, status=CallStatus.RINGING)
    now = dt.datetime.now(dt.UTC)
    steps = [CallStatusChanged(dataclasses.replace(call, status=s, media_quality=rtp if s.terminal else None),
                               CallStatus.RINGING, now) for s in (CallStatus.IN_PROGRESS, CallStatus.COMPLETED)]
    hook = PendingWebhook(1, call.sid, "http://127.0.0.1:9/cb", "POST", [], 0)
    started = time.process_time()
    for _ in range(calls):
        metrics.on_call_created(call)
        for step in steps:
            metrics.on_call_event(step)
        metrics.on_twiml_fetch(0.002, None)
        metrics.on_webhook_attempt(hook, 204, None, 0.001)
    spent = time.process_time() - started
    scrape = time.process_time()
    size = len(metrics.exposition())
    return {"calls": calls, "cpu_us_per_call": round(spent / calls * 1e6, 2),
            "exposition_bytes": size, "exposition_cpu_ms": round((time.process_time() - scrape) * 1000, 3)}


async def _scrapes(session: aiohttp.ClientSession, url: str, count: int) -> Json:
    times, size = [], 0
    for _ in range(count):
        started = time.perf_counter()
        async with session.get(url) as resp:
            body = await resp.read()
        times.append((time.perf_counter() - started) * 1000)
        size = len(body)
    return {"count": count, "bytes": size, "p50_ms": round(statistics.median(times), 3),
            "max_ms": round(max(times), 3)}


async def run_variant(session: aiohttp.ClientSession, receiver: WebhookReceiver, app: TwimlApp, workdir: Path,
                      name: str, calls: int, rate: float, hold_ms: int) -> Json:
    """One switch with variant `name`'s switches, under the load; its CPU and store writes per call."""
    metrics, events = VARIANTS[name]
    path = f"/obs-{name}"
    workdir.mkdir(parents=True, exist_ok=True)
    switch = SwitchUnderTest(workdir, 1, [{"number": NUMBER, "voice_url": app.url(PAUSE_PATH),
                                           "status_callback": receiver.url(path)}],
                             server={"metrics": metrics, "call_events": events})
    await switch.start(session)
    try:
        await asyncio.sleep(1.0)  # start-up's own writes and CPU settle
        before = (await switch.healthz(session)).get("store", {}).get("writes")
        run = await measure_load(switch.pids(), switch.target(), calls, rate, hold_ms, workdir, name,
                                 SwitchChecks(switch, receiver, session, path))
        after = (await switch.healthz(session)).get("store", {}).get("writes")
        done = run["sipp"]["successful"]
        result: Json = {
            "metrics": metrics, "call_events": events, "clean": run["clean"], "calls": done,
            "cpu_ms_per_call": _ms(run["cpu_s_per_call"]),
            "cpu_ms_per_call_by_process": {k: _ms(v) for k, v in run["cpu_s_per_call_by_process"].items()},
            "store_writes_per_call": (round((after - before) / done, 2)
                                      if done and isinstance(before, int) and isinstance(after, int) else None),
            "switch_checks": run["switch_checks"]}
        if metrics:
            result["scrape"] = await _scrapes(session, switch.base_url + "/metrics", SCRAPES)
        return result
    finally:
        await switch.stop()


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _cost(variants: dict[str, Json], name: str, key: str) -> float | None:
    on, off = variants.get(name, {}).get(key), variants.get("all_off", {}).get(key)
    return None if on is None or off is None else round(on - off, 3)


async def observability_phase(session: aiohttp.ClientSession, receiver: WebhookReceiver, app: TwimlApp,
                              workdir: Path, calls: int, rate: float, hold_ms: int) -> Json:
    """Every variant in turn (`VARIANTS`), then the costs: each variant minus all-off."""
    app.documents[PAUSE_PATH] = '<Response><Pause length="30"/></Response>'
    variants: dict[str, Json] = {}
    for name in VARIANTS:
        variants[name] = await run_variant(session, receiver, app, workdir / name, name, calls, rate, hold_ms)
    cpu = [v["cpu_ms_per_call"] for v in variants.values() if v["cpu_ms_per_call"] is not None]
    return {
        "calls": calls, "rate_cps": rate, "hold_ms": hold_ms, "variants": variants,
        "metrics_hooks": metrics_hooks_cost(),
        "cost_per_call": {name: {"cpu_ms": _cost(variants, name, "cpu_ms_per_call"),
                                 "store_writes": _cost(variants, name, "store_writes_per_call")}
                          for name in VARIANTS if name != "all_off"},
        "spread": {"cpu_ms_per_call_min": min(cpu, default=None), "cpu_ms_per_call_max": max(cpu, default=None)},
    }


async def _main(calls: int, rate: float, hold_ms: int) -> Json:
    receiver, app = WebhookReceiver(), TwimlApp()
    receiver.start()
    app.start()
    try:
        with tempfile.TemporaryDirectory(prefix="softswitch-obs-") as tmp:
            async with aiohttp.ClientSession() as session:
                return await observability_phase(session, receiver, app, Path(tmp), calls, rate, hold_ms)
    finally:
        receiver.stop()
        app.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--hold-ms", type=int, default=200)
    parser.add_argument("--output", default="bench-observability.json")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.rate <= 0:
        print("need --calls >= 1 and --rate > 0", file=sys.stderr)
        return 2
    report = asyncio.run(_main(args.calls, args.rate, args.hold_ms))
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"cost_per_call": report["cost_per_call"], "metrics_hooks": report["metrics_hooks"]}, indent=2))
    return 0 if all(v["clean"] for v in report["variants"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
