"""Bridged calls in `softswitch bench`: an inbound call whose number's voice_url (the bench's TwiML app) answers
with `<Dial><Sip>` to a sipp uas, against the bare pjsua2 B2BUA (`baseline --b2bua`) in the same run.

- **Post-dial delay**: the caller's INVITE sent (sipp uac `-trace_msg`) to the child's INVITE received
  (sipp uas `-trace_msg`), matched by the caller's From user, which both the switch's `<Dial>` child and
  the bare B2BUA carry over.  The TwiML app times each request itself (handler start -> response written);
  *added* post-dial delay = post-dial delay - that app time.
- **TwiML fetch overhead**: how much later the caller is answered because TwiML was fetched, beyond the
  app's own time: answer delay (INVITE sent -> 200 received at the caller) of the `<Dial>` number minus the
  app time, against the answer delay of a number without voice_url (answered and held), both measured on
  the same switch.  `<Dial>` without answerOnBridge answers the caller first (it hears ringback), so that
  200 follows the fetch and parse directly.
- **CPU per bridged call**: control plane + worker 0 against the bare B2BUA process, same load.
- **Bridged calls per second**: a ladder of `<Dial>` calls with 0 failures, every child with all four
  callbacks and the number's `completed` callback; on worker 0 alone and with every worker taking INVITEs
  on its own port.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import quoteattr

import aiohttp

from switch.tools.bench.common import (
    CALLBACK_EVENTS,
    NUMBER,
    TWIML_NUMBER,
    Fetch,
    Json,
    TwimlApp,
    WebhookReceiver,
    diff,
    idle_cpu_rates,
    ratio,
    summarize,
    wait_until,
)
from switch.tools.bench.load import Checks, SwitchChecks, ladder, measure, restarts, settle, step_record
from switch.tools.bench.procs import Baseline, SwitchUnderTest
from switch.tools.bench.sipp import (
    CallerTimes,
    PeerTimes,
    SippRun,
    SippUas,
    caller_times,
    combine_runs,
    peer_times,
    read_messages,
    run_sipp_uac,
)

DIAL_PATH = "/voice/dial"
PARENT_HOOKS = "/b2bua-parent"
CHILD_HOOKS = "/b2bua-child"
B2BUA_LADDER = (4, 8, 12, 16, 18, 20, 25, 30)  # bridged calls per second per worker
# offered bridged calls in the hold phase during the ladder: 1.5 of a worker's 4 legs, leaving room for call
# set-up and tear-down, which also hold legs (a worker refuses an INVITE with 486 when all 4 are taken)
B2BUA_CONCURRENCY = 0.75
B2BUA_MIN_HOLD_MS = 50
CHILD_STATUSES = ("initiated", "ringing", "in-progress", "completed")


def dial_document(uri: str, child_callback: str, answer_on_bridge: bool = False) -> str:
    """`<Dial>` of one `<Sip>` noun with all four status callback events."""
    events = " ".join(CALLBACK_EVENTS)
    dial = '<Dial answerOnBridge="true">' if answer_on_bridge else "<Dial>"
    return (f"<Response>{dial}<Sip statusCallback={quoteattr(child_callback)} "
            f"statusCallbackEvent={quoteattr(events)}>{uri}</Sip></Dial></Response>")


def number_entries(app: TwimlApp, receiver: WebhookReceiver, plain_callback: str) -> list[dict[str, str]]:
    """The switch's `[[numbers]]`: the plain one (answered and held) and the `<Dial>` one."""
    return [{"number": NUMBER, "status_callback": plain_callback},
            {"number": TWIML_NUMBER, "voice_url": app.url(DIAL_PATH), "status_callback": receiver.url(PARENT_HOOKS)}]


class BridgeChecks:
    """The switch's side of a `<Dial>` run: one TwiML fetch per call, the number's `completed` callback, all
    four child callbacks, every slot free again, no worker restarted."""

    def __init__(self, switch: SwitchUnderTest, receiver: WebhookReceiver, app: TwimlApp,
                 session: aiohttp.ClientSession) -> None:
        self.switch, self.receiver, self.app, self.session = switch, receiver, app, session
        self._fetches = self._parents = self._children = self._restarts = self._log_at = 0

    def _log_size(self) -> int:
        try:
            return self.switch.log_path.stat().st_size
        except OSError:
            return 0

    def _limits_hit(self) -> Json:
        """What the switch logged during the run about refusing or losing legs."""
        with open(self.switch.log_path, "rb") as log:
            log.seek(self._log_at)
            text = log.read().decode(errors="replace")
        return {"rate_guard_20429": text.count("Call rate limit"), "no_free_slot": text.count("free call"),
                "worker_assertions": text.count("Assertion `"), "workers_lost": text.count("lost: control channel")}

    async def begin(self) -> None:
        self._log_at = self._log_size()
        self._fetches = self.app.count(DIAL_PATH)
        self._parents = self.receiver.count(PARENT_HOOKS)
        self._children = self.receiver.count(CHILD_HOOKS)
        self._restarts = restarts(await self.switch.healthz(self.session))

    async def end(self, run: SippRun) -> Json:
        want_parents = self._parents + run.successful
        want_children = self._children + len(CHILD_STATUSES) * run.successful
        hooks_in = await wait_until(lambda: self.receiver.count(PARENT_HOOKS) >= want_parents
                                    and self.receiver.count(CHILD_HOOKS) >= want_children, 10.0)
        health = await settle(self.switch, self.session)
        parents: dict[str, int] = {}
        for hook in self.receiver.select(PARENT_HOOKS)[self._parents:]:
            parents[hook.status] = parents.get(hook.status, 0) + 1
        children: dict[str, int] = {}
        for hook in self.receiver.select(CHILD_HOOKS)[self._children:]:
            children[hook.status] = children.get(hook.status, 0) + 1
        fetches = self.app.count(DIAL_PATH) - self._fetches
        restarted = restarts(health) - self._restarts
        consistent = (hooks_in and fetches == run.calls and parents.get("completed", 0) == run.successful
                      and all(children.get(s, 0) == run.successful for s in CHILD_STATUSES)
                      and restarted == 0 and health.get("in_use") == 0 and health.get("live_calls") == 0
                      and health.get("status") == "ok")
        return {"twiml_fetches": fetches, "parent_callbacks": parents, "child_callbacks": children,
                "limits_hit": self._limits_hit(),
                "slots_in_use_after": health.get("in_use"), "live_calls_after": health.get("live_calls"),
                "healthy": health.get("status") == "ok", "worker_restarts": restarted, "consistent": consistent}


# -- traced runs ---------------------------------------------------------------------------------------
SERIES = ("answer_ms", "pdd_ms", "app_ms", "added_pdd_ms", "answer_minus_app_ms", "invite_to_fetch_ms",
          "fetch_to_invite_out_ms")


def pair_timing(prefix: str, callers: dict[str, CallerTimes], far: dict[str, PeerTimes] | None,
                fetches: list[Fetch] | None) -> Json:
    """Per call (by the caller's From user): answer delay, and with the far end's log and the app's requests
    the post-dial delay, the app's time and what is left of both."""
    by_from = {f.from_: f for f in fetches or []}
    series: dict[str, list[float]] = {name: [] for name in SERIES}
    unmatched = 0
    for user, times in callers.items():
        if not user.startswith(prefix) or times.invite_out is None:
            continue
        if times.ok_in is not None:
            series["answer_ms"].append((times.ok_in - times.invite_out) * 1000)
        peer = far.get(user) if far is not None else None
        fetch = by_from.get(user)
        if (far is not None and (peer is None or peer.invite_in is None)) or (fetches is not None and fetch is None):
            unmatched += 1
            continue
        pdd = (peer.invite_in - times.invite_out) * 1000 if peer is not None and peer.invite_in else None
        if pdd is not None:
            series["pdd_ms"].append(pdd)
        if fetch is None:
            continue
        series["app_ms"].append(fetch.app_ms)
        series["invite_to_fetch_ms"].append((fetch.t_request - times.invite_out) * 1000)
        if times.ok_in is not None:
            series["answer_minus_app_ms"].append((times.ok_in - times.invite_out) * 1000 - fetch.app_ms)
        if pdd is not None and peer is not None and peer.invite_in is not None:
            series["added_pdd_ms"].append(pdd - fetch.app_ms)
            series["fetch_to_invite_out_ms"].append((peer.invite_in - fetch.t_response) * 1000)
    timing: Json = {name: summarize(values) for name, values in series.items() if values}
    timing["unmatched_calls"] = unmatched
    return timing


async def traced_run(pids: dict[str, int], target: str, service: str, calls: int, rate: float, hold_ms: int,
                     workdir: Path, tag: str, checks: Checks | None = None, idle: dict[str, float] | None = None,
                     uas: SippUas | None = None, fetches: Callable[[], list[Fetch]] | None = None) -> Json:
    """Inbound calls from the tracing uac scenario, measured (CPU) and timed call by call.

    With `uas` (the far end of a bridge, tracing) the post-dial delay is paired per call; with `fetches`
    (the TwiML app's requests, read after the run) the app's own time is too."""
    prefix = f"{tag.replace('-', '')}u"
    result = await measure(pids, lambda: run_sipp_uac(target, calls, rate, hold_ms, workdir, tag, service=service,
                                                      from_prefix=prefix, trace=True), checks, idle)
    if uas is not None:
        await uas.finish(5.0)
    callers = caller_times(read_messages(workdir / f"{tag}-messages.log"))
    far = peer_times(read_messages(uas.message_log)) if uas is not None else None
    return {**result, "timing_ms": pair_timing(prefix, callers, far, fetches() if fetches is not None else None)}


async def baseline_b2bua_phase(workdir: Path, calls: int, rate: float, hold_ms: int, idle_s: float) -> Json:
    """The bare pjsua2 B2BUA bridging traced inbound calls to a traced sipp uas."""
    workdir.mkdir(parents=True, exist_ok=True)
    uas = await SippUas(workdir, "b2bua-far", calls, trace=True).start(budget=calls / rate + 40)
    base = Baseline(workdir, b2bua=uas.uri)
    try:
        await base.start()
        pids = {"baseline_b2bua": base.pid}
        idle = await idle_cpu_rates(pids, idle_s)
        run = await traced_run(pids, base.target, TWIML_NUMBER, calls, rate, hold_ms, workdir, "b2bua",
                               idle=idle, uas=uas)
    finally:
        await base.stop()
        await uas.kill()
    timing = run["timing_ms"]
    return {"process": "python -m switch.worker.baseline --b2bua URI",
            "cpu_s_per_bridged_call": run["cpu_s_per_call"],
            "cpu_s_per_bridged_call_net_of_idle": (run.get("net_of_idle") or {}).get("cpu_s_per_call"),
            "post_dial_delay_ms": timing.get("pdd_ms"), "answer_delay_ms": timing.get("answer_ms"),
            "rss_mb": run["memory"].get("baseline_b2bua", {}).get("rss_mb"),
            "exit_status": base.proc.returncode if base.proc is not None else None,
            "crash_output": base.crash_output(), "run": run}


async def bridged_phase(switch: SwitchUnderTest, receiver: WebhookReceiver, app: TwimlApp,
                        session: aiohttp.ClientSession, workdir: Path, *, calls: int, rate: float, hold_ms: int,
                        plain_calls: int, bridge_answer_calls: int, idle: dict[str, float],
                        baseline: Json | None) -> Json:
    """On a running switch: the plain number's answer delay, the traced `<Dial>` run on worker 0, and a
    shorter one with answerOnBridge (the caller is not answered before the child is dialed)."""
    plain = await traced_run(switch.pids([0]), switch.target(0), NUMBER, plain_calls, rate, hold_ms, workdir,
                             "plain", SwitchChecks(switch, receiver, session))

    async def dial_run(tag: str, count: int, answer_on_bridge: bool) -> Json:
        await switch.refresh(session)
        uas = await SippUas(workdir, f"{tag}-far", count, trace=True).start(budget=count / rate + 40)
        app.documents[DIAL_PATH] = dial_document(uas.uri, receiver.url(CHILD_HOOKS), answer_on_bridge)
        try:
            return await traced_run(switch.pids([0]), switch.target(0), TWIML_NUMBER, count, rate, hold_ms,
                                    workdir, tag, BridgeChecks(switch, receiver, app, session), idle, uas=uas,
                                    fetches=lambda: app.select(DIAL_PATH))
        finally:
            await uas.kill()

    dial = await dial_run("dial", calls, False)
    on_bridge = await dial_run("dialaob", bridge_answer_calls, True) if bridge_answer_calls > 0 else None
    return bridged_figures(plain, dial, on_bridge, baseline)


def _stats(timing: Json, name: str) -> Json:
    stats: Json = timing.get(name) or {}
    return stats


def bridged_figures(plain: Json, dial: Json, on_bridge: Json | None, baseline: Json | None) -> Json:
    """Post-dial delay, TwiML fetch overhead and CPU per bridged call, with their ratios to the baselines."""
    base = baseline or {}
    t_dial, t_plain = dial["timing_ms"], plain["timing_ms"]
    base_pdd = base.get("post_dial_delay_ms") or {}
    added = _stats(t_dial, "added_pdd_ms")
    with_fetch = _stats(t_dial, "answer_minus_app_ms")
    plain_answer = _stats(t_plain, "answer_ms")
    per = dial["cpu_s_per_call_by_process"]
    net = dial.get("net_of_idle") or {}
    base_cpu = base.get("cpu_s_per_bridged_call")
    base_net = base.get("cpu_s_per_bridged_call_net_of_idle")
    pdd: Json = {
        "p50": added.get("p50"), "p99": added.get("p99"),
        "definition": "added post-dial delay = (child INVITE received by the far end - caller's INVITE sent) - "
                      "the TwiML app's own time for the request (handler start -> response written)",
        "added_beyond_fetch": added, "post_dial_delay": _stats(t_dial, "pdd_ms"),
        "twiml_app_ms": _stats(t_dial, "app_ms"),
        "invite_in_to_fetch_at_app": _stats(t_dial, "invite_to_fetch_ms"),
        "fetch_written_to_invite_out": _stats(t_dial, "fetch_to_invite_out_ms"),
        "baseline_b2bua_post_dial_delay": base_pdd or None,
        "added_vs_baseline_pdd": {"p50": ratio(added.get("p50"), base_pdd.get("p50")),
                                  "p99": ratio(added.get("p99"), base_pdd.get("p99"))},
        "calls": dial["sipp"]["calls"], "unmatched_calls": t_dial.get("unmatched_calls")}
    if on_bridge is not None:
        t_aob = on_bridge["timing_ms"]
        pdd["answer_on_bridge"] = {
            "what": '<Dial answerOnBridge="true">: the caller is answered only when the child answers, so the '
                    "child's INVITE follows the fetch directly",
            "added_beyond_fetch": _stats(t_aob, "added_pdd_ms"), "post_dial_delay": _stats(t_aob, "pdd_ms"),
            "fetch_written_to_invite_out": _stats(t_aob, "fetch_to_invite_out_ms"),
            "calls": on_bridge["sipp"]["calls"], "clean": on_bridge["clean"]}
    fetch: Json = {
        "p50": diff(with_fetch.get("p50"), plain_answer.get("p50")),
        "p99": diff(with_fetch.get("p99"), plain_answer.get("p99")),
        "definition": "answer delay (INVITE sent -> 200 received at the caller) of the <Dial> number minus the "
                      "app's time, less the answer delay of the number without voice_url (p50 - p50, p99 - p99)",
        "answer_delay_with_twiml_minus_app": with_fetch, "answer_delay_with_twiml": _stats(t_dial, "answer_ms"),
        "answer_delay_plain_number": plain_answer,
        "with_twiml_vs_plain": {"p50": ratio(with_fetch.get("p50"), plain_answer.get("p50")),
                                "p99": ratio(with_fetch.get("p99"), plain_answer.get("p99"))}}
    cpu_cp_w0 = dial["cpu_s_per_call"]
    cpu: Json = {
        "cpu_s_per_bridged_call": cpu_cp_w0, "control_plane_cpu_s": per.get("control_plane"),
        "worker_cpu_s": per.get("worker0"), "baseline_b2bua_cpu_s": base_cpu,
        "ratio_vs_baseline": ratio(cpu_cp_w0, base_cpu),
        "worker_ratio_vs_baseline": ratio(per.get("worker0"), base_cpu),
        "net_of_idle": {"cpu_s_per_bridged_call": net.get("cpu_s_per_call"),
                        "worker_cpu_s": (net.get("cpu_s_per_call_by_process") or {}).get("worker0"),
                        "baseline_b2bua_cpu_s": base_net,
                        "ratio_vs_baseline": ratio(net.get("cpu_s_per_call"), base_net)},
        "what": "switch = control plane + worker 0 (TwiML fetch, <Dial>, 5 webhooks, 2 legs, bridge); "
                "baseline = the bare pjsua2 B2BUA process (2 legs, bridge); same sipp load, same hold time"}
    return {"post_dial_delay_ms": pdd, "twiml_fetch_overhead_ms": fetch, "bridged_cpu": cpu,
            "runs": {"plain": plain, "dial": dial, "dial_answer_on_bridge": on_bridge}}


# -- bridged calls per second --------------------------------------------------------------------------
def b2bua_rates(max_rate: float) -> list[float]:
    return [float(r) for r in B2BUA_LADDER if r <= max_rate]


async def b2bua_ladder(switch: SwitchUnderTest, receiver: WebhookReceiver, app: TwimlApp,
                       session: aiohttp.ClientSession, workdir: Path, tag: str, workers: list[int], *,
                       hold_ms: int, step_seconds: float, budget_s: float, max_rate: float) -> Json:
    """`<Dial>` calls stepped up (the rate is per worker; each worker in `workers` gets its own sipp on its
    own port), hold time shrunk so about B2BUA_CONCURRENCY bridged calls per worker are up at once."""
    pids = switch.pids(workers)
    checks = BridgeChecks(switch, receiver, app, session)

    async def step(rate: float) -> Json:
        hold = max(B2BUA_MIN_HOLD_MS, min(hold_ms, int(1000 * B2BUA_CONCURRENCY / rate)))
        calls = max(10, round(rate * step_seconds))
        uas = await SippUas(workdir, f"{tag}-{rate:g}-far", calls * len(workers)).start(budget=calls / rate + 30)
        app.documents[DIAL_PATH] = dial_document(uas.uri, receiver.url(CHILD_HOOKS))

        async def work() -> SippRun:
            runs = await asyncio.gather(*(run_sipp_uac(switch.target(w), calls, rate, hold, workdir,
                                                       f"{tag}-{rate:g}cps-w{w}", service=TWIML_NUMBER)
                                          for w in workers))
            return combine_runs(list(runs))

        try:
            result = await measure(pids, work, checks)
        finally:
            await uas.kill()
        return step_record(rate * len(workers), calls * len(workers), hold, result)

    started = time.monotonic()
    result = await ladder(b2bua_rates(max_rate), budget_s, step)
    result["workers_taking_invites"] = workers
    result["max_cps_per_worker"] = round(result["max_cps_zero_failures"] / len(workers), 2)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


