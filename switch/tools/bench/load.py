"""Load runs of `softswitch bench`: one sipp run with the CPU every measured process spent on it, the rate
ladder, and the REST-driven measurements (callback latency, API dial delay, capacity)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import aiohttp

from switch.tools.bench.common import (
    CALLBACK_EVENTS,
    HOST,
    SLOTS_PER_WORKER,
    Hook,
    Json,
    WebhookReceiver,
    cpu_or_none,
    memory_mb,
    per_call,
    summarize,
    wait_until,
)
from switch.tools.bench.procs import SwitchUnderTest
from switch.tools.bench.sipp import PeerTimes, SippRun, SippUas, parse_sipp_messages, peer_times, run_sipp_uac

FILL_LIMIT = 64  # legs the capacity check fills with REST calls, at most
TARGET_CONCURRENCY = 2.0  # offered calls in the hold phase during the inbound rate ladder
RATE_LADDER = (10, 20, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300)
# REST calls that must stay up until the bench hangs them up: an empty <Response/> would hang up at once
HOLD_TWIML = '<Response><Pause length="30"/></Response>'


class Checks(Protocol):
    """The switch's side of a load run: `begin` before sipp starts, `end` once it is done."""

    async def begin(self) -> None: ...

    async def end(self, run: SippRun) -> Json: ...


async def settle(switch: SwitchUnderTest, session: aiohttp.ClientSession, timeout: float = 5.0) -> Json:
    """/healthz once no slot is in use and no call is live (or after `timeout`)."""
    health: Json = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = await switch.healthz(session)
        if health.get("in_use") == 0 and health.get("live_calls") == 0:
            break
        await asyncio.sleep(0.1)
    return health


def restarts(health: Json) -> int:
    return sum(int(w.get("restarts", 0)) for w in health.get("workers", []))


class SwitchChecks:
    """Inbound calls to the plain number: a `completed` callback per call, no slot left in use, no worker
    restarted."""

    def __init__(self, switch: SwitchUnderTest, receiver: WebhookReceiver, session: aiohttp.ClientSession,
                 path: str = "/inbound") -> None:
        self.switch, self.receiver, self.session, self.path = switch, receiver, session, path
        self._before = 0
        self._restarts = 0

    async def begin(self) -> None:
        self._before = self.receiver.count(self.path)
        self._restarts = restarts(await self.switch.healthz(self.session))

    async def end(self, run: SippRun) -> Json:
        expected = self._before + run.successful
        hooks_in = await wait_until(lambda: self.receiver.count(self.path) >= expected, 10.0)
        health = await settle(self.switch, self.session)
        statuses: dict[str, int] = {}
        for hook in self.receiver.select(self.path)[self._before:]:
            statuses[hook.status] = statuses.get(hook.status, 0) + 1
        restarted = restarts(health) - self._restarts
        consistent = (hooks_in and statuses.get("completed", 0) == run.successful and restarted == 0
                      and health.get("in_use") == 0 and health.get("live_calls") == 0
                      and health.get("status") == "ok")
        return {"callbacks": statuses, "slots_in_use_after": health.get("in_use"),
                "live_calls_after": health.get("live_calls"), "healthy": health.get("status") == "ok",
                "worker_restarts": restarted, "consistent": consistent}


async def measure(pids: dict[str, int], work: Callable[[], Awaitable[SippRun]], checks: Checks | None = None,
                  idle: dict[str, float] | None = None) -> Json:
    """Run `work` (sipp load) with the CPU each process in `pids` spent on it.

    The CPU window runs from just before sipp starts until sipp has exited and, for the switch, every
    callback is in and every slot is free, so deferred work (webhooks, store writes) is counted.  The
    figures are utime+stime deltas; with `idle` (CPU s/s at rest, see `idle_cpu_rates`) the report also
    has the schedstat delta minus what the processes would have burnt idle over the same window.  A
    process that dies during the run makes the run unclean and is listed in `died`.
    """
    if checks is not None:
        await checks.begin()
    before = {name: cpu_or_none(pid) for name, pid in pids.items()}
    started = time.monotonic()
    run = await work()
    switch_side = await checks.end(run) if checks is not None else {}
    after = {name: cpu_or_none(pid) for name, pid in pids.items()}
    window = time.monotonic() - started
    died = sorted(name for name in pids if before[name] is None or after[name] is None)
    cpu: dict[str, float] = {}
    sched: dict[str, float] = {}
    for name in pids:
        first, last = before[name], after[name]
        if first is not None and last is not None:
            cpu[name] = round(last[0] - first[0], 3)
            sched[name] = last[1] - first[1]
    memory: Json = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            memory[name] = memory_mb(pid)
    clean = run.clean and not died and bool(switch_side.get("consistent", True))
    total = sum(cpu.values())
    result: Json = {
        "sipp": run.as_json(), "clean": clean, "died": died, "window_s": round(window, 2), "cpu_s": cpu,
        "cpu_s_total": round(total, 3), "cpu_s_per_call": None if died else per_call(total, run.successful),
        "cpu_s_per_call_by_process": {name: per_call(v, run.successful) for name, v in cpu.items()},
        "memory": memory, "switch_checks": switch_side or None}
    if idle is not None and not died:
        net = {name: max(0.0, sched[name] - idle.get(name, 0.0) * window) for name in pids}
        result["net_of_idle"] = {
            "idle_cpu_s_per_s": {name: round(v, 5) for name, v in idle.items()},
            "cpu_s_per_call": per_call(sum(net.values()), run.successful),
            "cpu_s_per_call_by_process": {name: per_call(v, run.successful) for name, v in net.items()}}
    return result


async def measure_load(pids: dict[str, int], target: str, calls: int, rate: float, hold_ms: int,
                       workdir: Path, tag: str, checks: Checks | None = None,
                       idle: dict[str, float] | None = None) -> Json:
    """One run of sipp's built-in `uac` against `target`, measured by :func:`measure`."""
    return await measure(pids, lambda: run_sipp_uac(target, calls, rate, hold_ms, workdir, tag), checks, idle)


def step_record(rate: float, calls: int, hold: int, step: Json) -> Json:
    """The ladder's summary of one measured step."""
    sipp = step["sipp"]
    return {"offered_cps": rate, "achieved_cps": sipp["achieved_cps"], "calls": calls, "hold_ms": hold,
            "successful": sipp["successful"], "failed": sipp["failed"], "clean": step["clean"],
            "processes_died": step["died"], "cpu_s_per_call": step["cpu_s_per_call"],
            "cpu_s_per_call_by_process": step["cpu_s_per_call_by_process"],
            "last_error": sipp["last_error"], "switch_checks": step["switch_checks"]}


async def ladder(rates: list[float], budget_s: float, step: Callable[[float], Awaitable[Json]]) -> Json:
    """Step the offered rate up until a step is not clean, the ladder's top or the time budget.

    `step(rate)` measures one step and returns its :func:`step_record`, whose `offered_cps` (the rate
    offered in all) is what the ladder reports."""
    steps: list[Json] = []
    best = 0.0
    stopped = "ladder top"
    deadline = time.monotonic() + budget_s
    for rate in rates:
        if time.monotonic() >= deadline:
            stopped = "time budget"
            break
        record = await step(rate)
        steps.append(record)
        if not record["clean"]:
            died = f" ({', '.join(record['processes_died'])} died)" if record["processes_died"] else ""
            stopped = f"not clean at {record['offered_cps']:g} cps{died}"
            break
        best = record["offered_cps"]
        await asyncio.sleep(0.3)
    return {"max_cps_zero_failures": best, "stopped_by": stopped, "steps": steps}


def ladder_rates(max_rate: float) -> list[float]:
    return [float(r) for r in RATE_LADDER if r <= max_rate]


async def rate_ladder(pids: dict[str, int], target: str, workdir: Path, tag: str, hold_ms: int,
                      max_rate: float, step_seconds: float, budget_s: float,
                      checks: Checks | None = None) -> Json:
    """Inbound calls (sipp's `uac`), hold time shrunk so the offered concurrency stays near
    TARGET_CONCURRENCY, stepped up until a step is not clean."""

    async def step(rate: float) -> Json:
        hold = min(hold_ms, int(1000 * TARGET_CONCURRENCY / rate))
        calls = max(20, round(rate * step_seconds))
        result = await measure_load(pids, target, calls, rate, hold, workdir, f"{tag}-{rate:g}cps", checks)
        return step_record(rate, calls, hold, result)

    return await ladder(ladder_rates(max_rate), budget_s, step)


# -- REST-driven measurements --------------------------------------------------------------------------
def call_form(to: str, from_: str, callback: str, twiml: str = HOLD_TWIML) -> list[tuple[str, str]]:
    form = [("To", to), ("From", from_), ("Twiml", twiml), ("StatusCallback", callback)]
    return form + [("StatusCallbackEvent", event) for event in CALLBACK_EVENTS]


async def place_call(session: aiohttp.ClientSession, switch: SwitchUnderTest,
                     form: list[tuple[str, str]]) -> tuple[int, Json, float, float]:
    """POST a call: (HTTP status, JSON body, wall time sent, wall time answered)."""
    sent = time.time()
    async with session.post(switch.calls_url, data=form, headers=switch.auth_headers) as resp:
        body: Json = await resp.json(content_type=None)
        return resp.status, body, sent, time.time()


async def update_call(session: aiohttp.ClientSession, switch: SwitchUnderTest, sid: str,
                      form: dict[str, str]) -> int:
    """POST Calls/{sid}.json with `form`; the HTTP status."""
    async with session.post(switch.call_url(sid), data=form, headers=switch.auth_headers) as resp:
        await resp.read()
        return resp.status


async def hang_up(session: aiohttp.ClientSession, switch: SwitchUnderTest, sid: str) -> int:
    """REST update Status=completed; the HTTP status."""
    return await update_call(session, switch, sid, {"Status": "completed"})


def terminal_sids(receiver: WebhookReceiver, path: str) -> set[str]:
    terminal = {"completed", "busy", "no-answer", "failed", "canceled"}
    return {h.sid for h in receiver.select(path) if h.status in terminal}


async def callback_latency(switch: SwitchUnderTest, receiver: WebhookReceiver, session: aiohttp.ClientSession,
                           workdir: Path, calls: int, rate: float) -> Json:
    """REST calls to a tracing sipp uas; SIP message times against callback arrival and POST times."""
    uas = await SippUas(workdir, "latency", calls, trace=True).start(budget=calls / rate + 40)
    loop = asyncio.get_running_loop()
    hangups: list[asyncio.Task[int]] = []

    def start_hangup(sid: str) -> None:  # event loop
        hangups.append(loop.create_task(hang_up(session, switch, sid)))

    def on_hook(hook: Hook) -> None:  # receiver thread
        if hook.status == "in-progress":
            loop.call_soon_threadsafe(start_hangup, hook.sid)

    receiver.listeners["/latency"] = on_hook
    placed: dict[str, tuple[str, float, float]] = {}  # sid -> (From, POST sent, response in)
    refused: list[Json] = []
    to = f"sip:bob@{HOST}:{uas.port}"
    started = time.monotonic()
    try:
        for i in range(calls):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            from_ = f"+1555{1000000 + i}"
            status, body, sent, answered = await place_call(session, switch,
                                                            call_form(to, from_, receiver.url("/latency")))
            if status == 201:
                placed[str(body["sid"])] = (from_, sent, answered)
            else:
                refused.append({"http": status, "body": body})
        await wait_until(lambda: placed.keys() <= terminal_sids(receiver, "/latency"), 20.0)
        codes = await asyncio.gather(*hangups)
        sipp_exit = await uas.finish(10.0)
    finally:
        receiver.listeners.pop("/latency", None)
        await uas.kill()
    text = uas.message_log.read_text(errors="replace") if uas.message_log.exists() else ""
    return _latency_report(receiver, placed, peer_times(parse_sipp_messages(text)), refused,
                           [c for c in codes if c != 200], sipp_exit)


def _latency_report(receiver: WebhookReceiver, placed: dict[str, tuple[str, float, float]],
                    peers: dict[str, PeerTimes], refused: list[Json], bad_hangups: list[int],
                    sipp_exit: int) -> Json:
    """Pair each call's peer-side SIP times with its callbacks and its REST POST."""
    arrivals: dict[str, dict[str, float]] = {}
    for hook in receiver.select("/latency"):
        arrivals.setdefault(hook.sid, {}).setdefault(hook.status, hook.t)
    pairs: dict[str, list[float]] = {"ringing": [], "answered": [], "completed": [], "initiated": []}
    dial: list[float] = []
    api: list[float] = []
    unmatched = 0
    for sid, (from_, sent, answered) in placed.items():
        peer, got = peers.get(from_), arrivals.get(sid, {})
        api.append((answered - sent) * 1000)
        if peer is None or peer.invite_in is None:
            unmatched += 1
            continue
        dial.append((peer.invite_in - sent) * 1000)
        for name, sip_time, status in (("initiated", peer.invite_in, "initiated"),
                                       ("ringing", peer.ringing_out, "ringing"),
                                       ("answered", peer.ok_out, "in-progress"),
                                       ("completed", peer.bye_ok_out, "completed")):
            if sip_time is not None and status in got:
                pairs[name].append((got[status] - sip_time) * 1000)
    latency: Json = {name: summarize(values) for name, values in pairs.items() if name != "initiated"}
    latency["initiated_vs_invite_at_peer"] = summarize(pairs["initiated"])
    latency["calls"] = len(placed)
    latency["timing_source"] = (
        "sipp uas -trace_msg -message_file: each message is stamped with the local wall-clock time to the "
        "microsecond when sipp logs it; callbacks are stamped with time.time() when the receiver's handler "
        "starts. ringing = 180 sent -> 'ringing' callback; answered = 200 (INVITE) sent -> 'in-progress'; "
        "completed = 200 (BYE) sent -> 'completed'. The calls run "
        f"{HOLD_TWIML!r} and are hung up by REST Status=completed on their 'in-progress' callback.")
    dial_delay = summarize(dial)
    dial_delay["definition"] = "REST POST sent (client clock) -> INVITE logged by the sipp uas"
    dial_delay["api_response_ms"] = summarize(api)
    return {"callback_latency_ms": latency, "api_dial_delay_ms": dial_delay,
            "details": {"placed": len(placed), "refused": refused[:5], "refused_count": len(refused),
                        "unmatched_in_sipp_log": unmatched, "hangup_errors": bad_hangups[:10],
                        "sipp_uas_exit": sipp_exit}}


async def capacity_check(switch: SwitchUnderTest, receiver: WebhookReceiver, session: aiohttp.ClientSession,
                         workdir: Path) -> Json:
    """Fill every slot with answered REST calls, check one more gets 429, hang everything up.  A pool larger
    than FILL_LIMIT legs (the built engine: 1,024 per worker) is not filled; the report says so."""
    before = await switch.healthz(session)
    slots = sum(int(w.get("capacity", 0)) for w in before.get("workers", [])) or switch.workers * SLOTS_PER_WORKER
    if slots > FILL_LIMIT:
        return {"slots_expected": slots, "skipped": f"{slots} call legs: more than the {FILL_LIMIT} the bench fills"}
    uas = await SippUas(workdir, "capacity", slots + 1).start(budget=60)
    try:
        return await _fill_and_empty(switch, receiver, session, uas, slots, before)
    finally:
        await uas.kill()


async def _fill_and_empty(switch: SwitchUnderTest, receiver: WebhookReceiver, session: aiohttp.ClientSession,
                          uas: SippUas, slots: int, before: Json) -> Json:
    """The capacity check proper, against a running sipp uas."""
    to = f"sip:bob@{HOST}:{uas.port}"
    url = receiver.url("/capacity")
    results = await asyncio.gather(*(place_call(session, switch, call_form(to, f"+1555{2000000 + i}", url))
                                     for i in range(slots)))
    accepted = [str(body["sid"]) for status, body, _, _ in results if status == 201]

    def answered() -> set[str]:
        return {h.sid for h in receiver.select("/capacity", "in-progress")}

    await wait_until(lambda: set(accepted) <= answered(), 10.0)
    reached = len(set(accepted) & answered())
    full = await switch.healthz(session)
    extra_status, extra_body, _, _ = await place_call(session, switch,
                                                      call_form(to, f"+1555{2000000 + slots}", url))
    if extra_status == 201:
        accepted.append(str(extra_body["sid"]))
    hangup_codes = await asyncio.gather(*(hang_up(session, switch, sid) for sid in accepted))
    ended = await wait_until(lambda: set(accepted) <= terminal_sids(receiver, "/capacity"), 10.0)
    after = await settle(switch, session)
    return {
        "workers": switch.workers, "slots_expected": slots, "capacity_reported": before.get("capacity"),
        "placed": slots, "accepted_201": sum(1 for r in results if r[0] == 201),
        "reached_in_progress": reached,
        "in_use_when_full": [w.get("in_use") for w in full.get("workers", [])],
        "extra_call_http_status": extra_status, "extra_call_error_code": extra_body.get("code"),
        "extra_refused_429": extra_status == 429,
        "hangup_http_statuses": sorted(set(hangup_codes)), "all_ended": ended,
        "in_use_after_hangup": after.get("in_use"),
    }
