"""The `softswitch bench` report: pass/fail of each target and the human-readable summary."""

from __future__ import annotations

import re
from typing import Any

from switch.tools.bench.common import Json


def _le(value: Any, limit: float) -> bool | None:
    return None if value is None else bool(value <= limit)


def _both(first: bool | None, second: bool | None) -> bool | None:
    return None if first is None or second is None else first and second


def evaluate_targets(report: Json) -> Json:
    """Pass/fail of each target against the measured figures (None where nothing was measured)."""
    switch = report.get("switch") or {}
    single = switch.get("single_worker") or {}
    latency = report.get("callback_latency_ms") or {}
    dial = report.get("api_dial_delay_ms") or {}
    capacity = report.get("capacity") or {}
    pdd = report.get("post_dial_delay_ms") or {}
    fetch = report.get("twiml_fetch_overhead_ms") or {}
    bridged_cpu = report.get("bridged_cpu") or {}
    b2bua = report.get("b2bua_cps") or {}
    redirect = report.get("redirect_to_audio_ms") or {}
    say = report.get("say_cache_ms") or {}
    recording = report.get("recording") or {}
    concurrent = report.get("concurrent") or {}
    ladder_steps = (switch.get("ladder") or {}).get("steps", [])
    at_max = [s for s in ladder_steps if s["offered_cps"] == switch.get("max_cps_zero_failures")]
    fixed = [(switch.get("run") or {}).get("clean"), (single.get("run") or {}).get("clean")]
    ringing = (latency.get("ringing") or {}).get("p50")
    answered = (latency.get("answered") or {}).get("p50")
    zero_failures = (bool(at_max) and all(s["clean"] for s in at_max) and all(f is True for f in fixed)
                     and (bool(capacity.get("skipped"))
                          or (capacity.get("reached_in_progress") == capacity.get("slots_expected")
                              and capacity.get("extra_refused_429") is True)))
    per_worker = b2bua.get("per_worker") or {}
    dial_run_clean = ((report.get("bridged_runs") or {}).get("dial") or {}).get("clean")
    return {
        "post_dial_delay": {"target": "added post-dial delay beyond the TwiML fetch p50 <= 5 ms, p99 <= 20 ms",
                            "p50": pdd.get("p50"), "p99": pdd.get("p99"),
                            "pass": _both(_le(pdd.get("p50"), 5.0), _le(pdd.get("p99"), 20.0))},
        "twiml_fetch_overhead": {"target": "TwiML fetch overhead p50 <= 5 ms", "p50": fetch.get("p50"),
                                 "p99": fetch.get("p99"), "pass": _le(fetch.get("p50"), 5.0)},
        "api_dial_delay_vs_pdd_limits": {
            "target": "same limits applied to REST POST -> INVITE (a proxy, not the PDD target)",
            "p50": dial.get("p50"), "p99": dial.get("p99"),
            "pass": _both(_le(dial.get("p50"), 5.0), _le(dial.get("p99"), 20.0))},
        "callback_latency": {"target": "p50 <= 5 ms (ringing and answered)", "ringing_p50": ringing,
                             "answered_p50": answered,
                             "pass": None if ringing is None or answered is None
                             else bool(ringing <= 5.0 and answered <= 5.0)},
        "zero_failures_at_reported_capacity": {
            "target": "0 failed calls at the reported max cps, in the fixed-rate runs and when every slot "
                      "is busy (plus 429 for the call beyond)",
            "max_cps": switch.get("max_cps_zero_failures"), "pass": zero_failures if switch else None},
        "bridged_calls_zero_failures": {
            "target": "B2BUA calls through TwiML (fetch + <Dial> + callbacks) with 0 failures: the traced "
                      "<Dial> run clean and a clean ladder step on worker 0",
            "max_cps_per_worker": per_worker.get("max_cps_zero_failures"),
            "pass": None if dial_run_clean is None and not per_worker
            else bool(dial_run_clean) and bool(per_worker.get("max_cps_zero_failures"))},
        "cpu_per_call": {"target": "switch CPU per call <= 2x baseline (control plane + workers)",
                         "ratio": switch.get("cpu_ratio_vs_baseline"),
                         "pass": _le(switch.get("cpu_ratio_vs_baseline"), 2.0)},
        "cpu_per_bridged_call": {
            "target": "no target set by the issue; shown against the 2x per-call limit: switch (control plane "
                      "+ worker) CPU per bridged call <= 2x the bare pjsua2 B2BUA",
            "ratio": bridged_cpu.get("ratio_vs_baseline"), "pass": _le(bridged_cpu.get("ratio_vs_baseline"), 2.0)},
        "redirect_to_audio": {"target": "REST redirect -> first frame of the new audio p50 <= 30 ms",
                              "p50": redirect.get("p50"), "p99": redirect.get("p99"),
                              "mapping_error_ms": redirect.get("mapping_error_ms"),
                              "pass": _le(redirect.get("p50"), 30.0)},
        "say_cache_hit": {"target": "Speech.synthesize of a cached text <= 1 ms (p99 of memory hits)",
                          "p50": say.get("p50"), "p99": say.get("p99"), "pass": _le(say.get("p99"), 1.0)},
        "concurrent_bridged_calls": {
            "target": ">= 500 concurrent bridged calls with RTP both ways on the built engine, 0 failures, "
                      "no dropped frames (no RTP packet lost or discarded, no jitter-buffer frame lost or discarded)",
            "calls": concurrent.get("calls"), "established_together": concurrent.get("established_together"),
            "pass": None if not concurrent else bool(
                concurrent.get("clean") and int(concurrent.get("calls", 0)) >= 500
                and all("(built" in e for e in concurrent.get("engines", [])))},
        "memory_per_leg": {
            "target": "reported (RSS and PSS)",
            "pss_kb_per_leg": ((concurrent.get("memory") or {}).get("workers") or {}).get("pss_kb_per_leg"),
            "rss_kb_per_leg": ((concurrent.get("memory") or {}).get("workers") or {}).get("rss_kb_per_leg"),
            "pass": None if not concurrent else (concurrent.get("memory") or {}).get("workers") is not None},
        **{f"recording_{name}": target for name, target in (recording.get("targets") or {}).items()},
        **capacity_targets(report),
    }


def capacity_targets(report: Json) -> Json:
    """The capacity issue's limits (issue 14, section 4) on what this run measured (pass None: not measured).
    The targets above are an earlier issue's; these are the ones that issue sets on the same figures."""
    switch = report.get("switch") or {}
    cpu = report.get("bridged_cpu") or {}
    latency = report.get("callback_latency_ms") or {}
    pdd = report.get("post_dial_delay_ms") or {}
    edge = report.get("edge") or {}
    inbound, bridged = switch.get("control_plane_cpu_s_per_call"), cpu.get("control_plane_cpu_s")
    ringing = (latency.get("ringing") or {}).get("p50")
    answered = (latency.get("answered") or {}).get("p50")
    edge_cps = edge.get("max_inbound_cps_zero_failures")
    idle = max((v for phase in (switch, switch.get("single_worker") or {})
                for v in (phase.get("idle_cpu_s_per_s_by_worker") or {}).values()), default=None)
    return {
        "capacity_control_plane_cpu_per_inbound_call": {
            "target": "control-plane CPU per inbound call <= 1 ms", "ms": _ms(inbound), "pass": _le(inbound, 0.001)},
        "capacity_control_plane_cpu_per_bridged_call": {
            "target": "control-plane CPU per bridged call <= 3 ms", "ms": _ms(bridged), "pass": _le(bridged, 0.003)},
        "capacity_cpu_per_bridged_call": {
            "target": "CPU per bridged call (control plane + worker) <= 1.5x the bare pjsua2 B2BUA",
            "ratio": cpu.get("ratio_vs_baseline"), "pass": _le(cpu.get("ratio_vs_baseline"), 1.5)},
        "capacity_callback_latency": {
            "target": "callback latency p50 <= 2 ms (ringing and answered)", "ringing_p50": ringing,
            "answered_p50": answered, "pass": _both(_le(ringing, 2.0), _le(answered, 2.0))},
        "capacity_post_dial_delay": {"target": "added post-dial delay p50 <= 2 ms", "p50": pdd.get("p50"),
                                     "pass": _le(pdd.get("p50"), 2.0)},
        "capacity_idle_cpu_per_worker": {
            "target": "idle CPU per worker <= 0.2 % of a core (the busiest at rest)",
            "percent": None if idle is None else round(idle * 100, 3), "pass": _le(idle, 0.002)},
        "capacity_edge_inbound_cps": {
            "target": ">= 300 inbound cps with 0 failures through the SIP edge", "cps": edge_cps,
            "pass": None if edge_cps is None else bool(edge_cps >= 300)},
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _fmt(value: Any, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _step_text(step: Json) -> str:
    """`40:ok` or `60:FAIL(27 failed, worker0 died)` for one ladder step."""
    if step["clean"]:
        return f"{step['offered_cps']:g}:ok"
    why = [f"{step['failed']} failed"] if step["failed"] else []
    why += [f"{name} died" for name in step.get("processes_died", [])]
    checks = step.get("switch_checks") or {}
    if checks.get("worker_restarts"):
        why.append(f"{checks['worker_restarts']} worker restarts")
    codes: dict[str, int] = {}
    for count, code in re.findall(r"(\d+)x got 'SIP/2\.0 (\d{3}[^']*)'", step.get("last_error") or ""):
        codes[code.strip()] = codes.get(code.strip(), 0) + int(count)
    why += [f"{count}x {code}" for code, count in codes.items()]
    limits = checks.get("limits_hit") or {}
    if limits.get("rate_guard_20429"):
        why.append(f"{limits['rate_guard_20429']}x start-rate guard")
    if limits.get("no_free_slot"):
        why.append(f"{limits['no_free_slot']}x no free slot")
    return f"{step['offered_cps']:g}:FAIL({', '.join(why) or 'switch-side check'})"


def _ms_line(name: str, stats: Json | None, extra: str = "") -> str:
    stats = stats or {}
    return (f"  {name:<34} p50 {_fmt(stats.get('p50'))} ms   p99 {_fmt(stats.get('p99'))} ms   "
            f"max {_fmt(stats.get('max'))} ms   (n={stats.get('n', 0)}){extra}")


def _load_lines(report: Json) -> list[str]:
    params = report["parameters"]
    base = report.get("baseline") or {}
    switch = report.get("switch") or {}
    single = switch.get("single_worker") or {}
    lines = [f"inbound load: {params['calls']} calls at {params['rate_cps']:g} cps, held {params['hold_ms']} ms",
             f"  {'':<22}{'ok/failed':>12}{'CPU ms/call':>13}{'ratio':>8}{'worker ms/call':>16}"
             f"{'ratio':>8}{'RSS MB/worker':>16}"]
    runs = [("baseline", base.get("run")), ("switch 1 worker", single.get("run")),
            (f"switch {switch.get('workers', '?')} workers", switch.get("run"))]
    for name, run in runs:
        if not run:
            lines.append(f"  {name:<22}{'(not run)':>12}")
            continue
        figures = base if name == "baseline" else (single if "1 worker" in name else switch)
        worker = None if name == "baseline" else figures.get("worker_cpu_s_per_call")
        rss = [base.get("rss_mb")] if name == "baseline" else figures.get("rss_mb_per_worker", [])
        ratio = None if name == "baseline" else figures.get("cpu_ratio_vs_baseline")
        wratio = None if name == "baseline" else figures.get("worker_cpu_ratio_vs_baseline")
        lines.append(f"  {name:<22}{run['sipp']['successful']:>6}/{run['sipp']['failed']:<5}"
                     f"{_fmt(run['cpu_s_per_call'], 1000):>13}{_times(ratio):>8}{_fmt(worker, 1000):>16}"
                     f"{_times(wratio):>8}{', '.join(_fmt(r, 1, 1) for r in rss):>16}")
    net_parts = [f"baseline {_fmt(base.get('cpu_s_per_call_net_of_idle'), 1000)}"]
    for name, figures in (("1 worker", single), (f"{switch.get('workers', '?')} workers", switch)):
        net = figures.get("net_of_idle") or {}
        net_parts.append(f"switch {name} {_fmt(net.get('cpu_s_per_call'), 1000)} "
                         f"({_fmt(net.get('cpu_ratio_vs_baseline'))}x; worker "
                         f"{_fmt(net.get('worker_cpu_s_per_call'), 1000)}, "
                         f"{_fmt(net.get('worker_cpu_ratio_vs_baseline'))}x)")
    lines.append("  net of idle CPU (schedstat), ms/call: " + "; ".join(net_parts))
    if switch.get("rss_mb_control_plane") is not None:
        lines.append(f"  control plane RSS {switch['rss_mb_control_plane']} MB; "
                     f"control plane CPU {_fmt(switch.get('control_plane_cpu_s_per_call'), 1000)} ms/call")
    many = switch.get("idle_cpu_s_per_s_by_worker") or {}
    idle = {**(single.get("idle_cpu_s_per_s_by_worker") or {}),
            **{f"{name} of {switch.get('workers')}": rate for name, rate in many.items()}}
    if idle:
        lines.append("  idle CPU per worker at rest, % of a core: "
                     + ", ".join(f"{name} {_fmt(rate, 100, 3)}" for name, rate in idle.items()))
    lines.append(f"max cps with 0 failures: baseline {_fmt(base.get('max_cps_zero_failures'), 1, 0)} "
                 f"({(base.get('ladder') or {}).get('stopped_by', '-')}), switch "
                 f"{_fmt(switch.get('max_cps_zero_failures'), 1, 0)} "
                 f"({(switch.get('ladder') or {}).get('stopped_by', '-')})")
    edge = report.get("edge") or {}
    if edge:
        lines.append(f"through the SIP edge (Kamailio, {edge['workers']} workers, {', '.join(edge['engines'])}): "
                     f"max inbound cps with 0 failures {_fmt(edge.get('max_inbound_cps_zero_failures'), 1, 0)} "
                     f"({edge['ladder'].get('stopped_by', '-')}; {_times(edge.get('vs_baseline_max_cps'))} the "
                     "bare pjsua2 baseline's)")
    for name, ladder in (("baseline", base.get("ladder")), ("switch", switch.get("ladder")),
                         ("edge", edge.get("ladder"))):
        if ladder:
            lines.append(f"  {name} ladder: " + "  ".join(_step_text(step) for step in ladder["steps"]))
    return lines


def _bridged_lines(report: Json) -> list[str]:
    params = report["parameters"]
    pdd = report.get("post_dial_delay_ms") or {}
    fetch = report.get("twiml_fetch_overhead_ms") or {}
    cpu = report.get("bridged_cpu") or {}
    b2bua = report.get("b2bua_cps") or {}
    ratios = pdd.get("added_vs_baseline_pdd") or {}
    lines = [f"bridged calls (inbound -> voice_url -> <Dial><Sip>, worker 0; {params['pdd_calls']} calls at "
             f"{params['pdd_rate_cps']:g} cps, held {params['hold_ms']} ms):",
             _ms_line("post-dial delay (INVITE in -> out)", pdd.get("post_dial_delay")),
             _ms_line("  TwiML app's own time", pdd.get("twiml_app_ms")),
             _ms_line("  added beyond the fetch", pdd.get("added_beyond_fetch"),
                      f"  {_times(ratios.get('p50'))} / {_times(ratios.get('p99'))} bare B2BUA PDD"),
             _ms_line("  INVITE in -> request at app", pdd.get("invite_in_to_fetch_at_app")),
             _ms_line("  response written -> INVITE out", pdd.get("fetch_written_to_invite_out")),
             _ms_line("  answerOnBridge: added beyond fetch",
                      (pdd.get("answer_on_bridge") or {}).get("added_beyond_fetch")),
             _ms_line("bare pjsua2 B2BUA post-dial delay", pdd.get("baseline_b2bua_post_dial_delay")),
             _ms_line("answer delay, number w/o voice_url", fetch.get("answer_delay_plain_number")),
             _ms_line("answer delay with TwiML - app time", fetch.get("answer_delay_with_twiml_minus_app")),
             f"  TwiML fetch overhead: p50 {_fmt(fetch.get('p50'))} ms, p99 {_fmt(fetch.get('p99'))} ms "
             f"(with TwiML minus app vs plain: {_times((fetch.get('with_twiml_vs_plain') or {}).get('p50'))} p50)"]
    net = cpu.get("net_of_idle") or {}
    lines.append(f"  CPU per bridged call: switch {_fmt(cpu.get('cpu_s_per_bridged_call'), 1000)} ms (control "
                 f"plane {_fmt(cpu.get('control_plane_cpu_s'), 1000)}, worker {_fmt(cpu.get('worker_cpu_s'), 1000)})"
                 f" vs bare B2BUA {_fmt(cpu.get('baseline_b2bua_cpu_s'), 1000)} ms: "
                 f"{_times(cpu.get('ratio_vs_baseline'))} (worker alone {_times(cpu.get('worker_ratio_vs_baseline'))}"
                 f"); net of idle {_fmt(net.get('cpu_s_per_bridged_call'), 1000)} vs "
                 f"{_fmt(net.get('baseline_b2bua_cpu_s'), 1000)} ms: {_times(net.get('ratio_vs_baseline'))}")
    for name, key in (("worker 0 alone", "per_worker"), ("every worker's own port", "all_workers")):
        ladder = b2bua.get(key)
        if ladder:
            lines.append(f"bridged cps with 0 failures, {name}: {_fmt(ladder['max_cps_zero_failures'], 1, 0)} "
                         f"total, {_fmt(ladder['max_cps_per_worker'], 1, 1)} per worker "
                         f"({ladder['stopped_by']})")
            lines.append("  ladder: " + "  ".join(_step_text(step) for step in ladder["steps"]))
    return lines


def _media_lines(report: Json) -> list[str]:
    lines: list[str] = []
    redirect = report.get("redirect_to_audio_ms")
    if redirect:
        lines.append(f"REST redirect -> first frame of new audio ({redirect['detected']}/{redirect['redirects']} "
                     f"redirects; mapping error +-{_fmt(redirect.get('mapping_error_ms'))} ms, plus 20 ms frames "
                     "and the phone's jitter buffer, see notes):")
        lines.append(_ms_line("POST -> new tone heard", redirect.get("post_to_new_audio_ms"),
                              f"  cold first: {_fmt(redirect.get('cold_first_redirect_ms'))} ms"))
        lines.append(_ms_line("POST -> old tone gone", redirect.get("post_to_old_audio_gone_ms")))
    say = report.get("say_cache_ms")
    if say:
        disk = say.get("disk_hit_ms") or {}
        lines.append(f"<Say> cache hit: memory p50 {_fmt(say.get('p50'), 1000, 1)} us, p99 "
                     f"{_fmt(say.get('p99'), 1000, 1)} us; disk p50 {_fmt(disk.get('p50'), 1000, 1)} us; "
                     f"cold espeak-ng synthesis {_fmt(say.get('cold_synthesis_ms'))} ms "
                     f"(hit = {_fmt(say.get('hit_vs_cold'), 100, 4)} % of cold)")
    return lines


def _concurrent_lines(report: Json) -> list[str]:
    """The concurrent-calls phase: calls up together, CPU and memory with them up, the RTP of their legs."""
    conc = report.get("concurrent") or {}
    if not conc:
        return []
    cpu, memory, rtp, sipp = conc["cpu_s_per_s"], conc["memory"], conc["rtp"], conc["sipp"]
    workers = memory["workers"]
    return [
        f"concurrent bridged calls through the edge ({conc['workers']} workers, {', '.join(conc['engines'])}): "
        f"{conc['established_together']}/{conc['calls']} up together ({'clean' if conc['clean'] else 'NOT clean'}); "
        f"sipp {sipp['successful']} ok / {sipp['failed']} failed, held {conc['hold_ms']} ms",
        f"  CPU with all up (share of a core): workers {_fmt(cpu['workers']['loaded'], 1, 3)} "
        f"(idle {_fmt(cpu['workers']['idle'], 1, 3)}), control plane {_fmt(cpu['control_plane']['loaded'], 1, 3)}, "
        f"Kamailio {_fmt(cpu['kamailio']['loaded'], 1, 3)}",
        f"  memory per leg (workers): PSS {_fmt(workers['pss_kb_per_leg'], 1, 1)} KB, RSS "
        f"{_fmt(workers['rss_kb_per_leg'], 1, 1)} KB (PSS {workers['pss_mb_idle']} -> {workers['pss_mb_loaded']} "
        f"MB); per call: control plane PSS {_fmt(memory['control_plane']['pss_kb_per_call'], 1, 1)} KB, Kamailio "
        f"PSS {_fmt(memory['kamailio']['pss_kb_per_call'], 1, 1)} KB",
        f"  RTP of {rtp['legs']} legs: received {rtp['rx_packets']} of ~{rtp['expected_rx_packets']} expected "
        f"({_fmt(rtp['rx_vs_expected'], 100, 2)} %), lost {rtp['rx_lost']}, discarded {rtp['rx_discarded']}; "
        f"jitter buffers lost {rtp['jb_lost']}, discarded {rtp['jb_discarded']} frames; sent {rtp['tx_packets']}",
    ]


def _streams_lines(report: Json) -> list[str]:
    """The Media Streams phase: the bot's round trip through a call, frames, CPU per stream-second."""
    streams = report.get("streams") or {}
    if not streams:
        return []
    trip, cost = streams["round_trip_ms"], streams["cpu_ms_per_call_second"]
    alone = streams.get("one_call") or {}
    ear, mouth = alone.get("bot_to_caller_ear_ms") or {}, alone.get("caller_mouth_to_bot_ms") or {}
    return [
        f"media stream, one call to an RTP echo: bot -> caller's ear p50 {_fmt(ear.get('p50'), 1, 1)} ms (target 60), "
        f"caller's mouth -> bot p50 {_fmt(mouth.get('p50'), 1, 1)} ms (target 20 + 30)",
        f"media streams ({streams['calls']} calls on <Connect><Stream>, {'clean' if streams['clean'] else 'NOT clean'}"
        f"): bot -> caller -> bot round trip p50 {_fmt(trip.get('p50'), 1, 1)} ms, p99 {_fmt(trip.get('p99'), 1, 1)}"
        f" ms (target for the two halves: {streams['round_trip_target_ms']} ms); inbound frames "
        f"{_fmt(streams['inbound_frames_vs_expected'].get('min'), 100, 1)} % of expected at worst, "
        f"{streams['chunk_gaps']} gaps",
        f"  CPU per call-second: streamed {cost['streamed']} ms, held with <Pause> {cost['held_baseline']} ms "
        f"(x{streams['streamed_vs_held_cpu']}); the stream alone {cost['stream_only']} ms",
        f"  most streams carried cleanly by {streams.get('workers', '?')} worker(s): "
        f"{streams.get('most_clean_streams')} (ladder: " + ", ".join(_ladder_step(s) for s in streams.get("ladder", []))
        + ")",
    ]


def _conference_lines(report: Json) -> list[str]:
    """The conference and queue phase: mixing CPU against held calls, the largest clean room, queue to audio."""
    conf = report.get("conference") or {}
    if not conf:
        return []
    lines = [f"conference ({conf['participants']} participants, {', '.join(conf.get('engines', []))}): CPU ms per "
             "participant-second, mixed in one room vs held with <Pause> (same run)"]
    for name, key in (("all on worker 0", "one_worker"), ("spread on 2 workers", "two_workers")):
        cost = conf[key]["cpu_ms_per_participant_second"]
        lines.append(f"  {name:<20} mixed {_fmt(cost['mixed'], 1, 2)} ms, held {_fmt(cost['held'], 1, 2)} ms: "
                     f"{_times(conf[key]['mixed_vs_held'])} ({'clean' if conf[key]['clean'] else 'NOT clean'})")
    ladder = conf["ladder"]
    steps = ", ".join(f"{s['participants']}:{'ok' if s['clean'] else 'FAIL'}({s['dropped_frames']} dropped"
                      f"{', 2nd try' if s.get('attempts', 1) > 1 else ''})" for s in ladder["steps"])
    lines.append(f"  largest room with 0 dropped frames (2 workers, built engine): {conf['largest_clean_room']} "
                 f"({ladder['stopped_by']}; {steps})")
    wheel = conf.get("wheel") or {}
    if "room" in wheel:
        room = wheel["room"]
        lines.append(f"  PyPI wheel, {wheel['workers']} workers x 4 legs: a room of {room['participants']} "
                     f"{'clean' if room['clean'] else 'NOT clean'} ({room['dropped_frames']} dropped frames, "
                     f"{_fmt(room['cpu_ms_per_participant_second'], 1, 2)} ms per participant-second)")
    for name, key in (("same worker", "same_worker"), ("across workers", "cross_worker")):
        queue = conf["queue_to_audio"][key]
        fetch, invite = queue["fetch_to_tone_ms"], queue["invite_to_tone_ms"]
        lines.append(f"  <Dial><Queue> to the caller's audio, {name}: agent's TwiML fetch -> tone p50 "
                     f"{_fmt(fetch.get('p50'), 1, 1)} ms, max {_fmt(fetch.get('max'), 1, 1)} ms; INVITE -> tone p50 "
                     f"{_fmt(invite.get('p50'), 1, 1)} ms "
                     f"({queue['bridged_audio_heard']}/{queue['repetitions']} heard)")
    return lines


def _browser_lines(report: Json) -> list[str]:
    """The browser phase: mouth-to-ear latency added by the switch, CPU per browser call-second, the call ladder."""
    browser = report.get("browser") or {}
    if not browser:
        return []
    lines = ["browser calls (aiortc in the bench process, 1 worker): mouth-to-ear latency, browser -> switch -> "
             "browser vs the same peers direct"]
    for codec, figures in (browser.get("mouth_to_ear_ms") or {}).items():
        switched, direct = figures["switch"], figures["direct"]
        lines.append(f"  {codec:<5} switch p50 {_fmt(switched['ms']['p50'], 1, 1)} ms (max "
                     f"{_fmt(switched['ms']['max'], 1, 1)}), direct p50 {_fmt(direct['ms']['p50'], 1, 1)} ms (max "
                     f"{_fmt(direct['ms']['max'], 1, 1)}): added {_fmt(figures['added_ms'], 1, 1)} ms "
                     f"({switched['heard']}/{switched['bursts']} bursts heard)")
    cpu = browser.get("cpu") or {}
    if cpu:
        cost, vs = cpu["cpu_ms_per_call_second"], cpu["browser_vs_sip"]
        web, sip = cost["browser"], cost["sip_with_rtp"]
        lines.append(f"  CPU ms per call-second, {cpu['calls']} calls up: browser {_fmt(web['total'])} (control plane "
                     f"{_fmt(web['control_plane'])}, worker {_fmt(web['worker'])}), SIP with RTP {_fmt(sip['total'])} "
                     f"(control plane {_fmt(sip['control_plane'])}, worker {_fmt(sip['worker'])}): "
                     f"{_times(vs['total'])} (worker {_times(vs['worker'])}); the bench's own aiortc "
                     f"{_fmt(cpu['bench_client_cpu_ms_per_call_second'])}; tone in "
                     f"{_fmt(cpu['browser']['tone_frames_share']['min'], 100, 0)} % of frames at worst")
    ladder = browser.get("ladder") or {}
    steps = ", ".join(f"{s['calls']}:{'ok' if s['clean'] else 'FAIL'}(min {_fmt(s['min_tone_frames_share'], 100, 0)} "
                      f"% tone frames; CPU s/s: control plane {_fmt(s['cpu_s_per_s'].get('control_plane'))}, "
                      f"bench {_fmt(s['bench_client_cpu_s_per_s'])}{', 2nd try' if s.get('attempts', 1) > 1 else ''})"
                      for s in ladder.get("steps", []))
    lines.append("  most simultaneous browser calls all hearing the tone: "
                 f"{browser.get('most_concurrent_clean_calls')} ({ladder.get('stopped_by')}; {steps})")
    return lines


def _ladder_step(step: Json) -> str:
    verdict = "clean" if step["clean"] else "NOT clean"
    return f"{step['calls']} {verdict} p50 {_fmt(step['round_trip_ms'].get('p50'), 1, 1)} ms"


def format_summary(report: Json) -> str:
    """The human-readable summary printed at the end of a run."""
    machine = report["machine"]
    switch = report.get("switch") or {}
    single = switch.get("single_worker") or {}
    lines = [f"softswitch bench: {machine['nproc']} CPUs ({machine['cpu_model']}), "
             f"Python {machine['python']}, pjsua2 {machine['pjsua2']}, {machine['sipp']}; "
             f"load average at start {' '.join(machine.get('loadavg_at_start', []))}"]
    lines += _load_lines(report)
    latency = report.get("callback_latency_ms") or {}
    lines.append(f"callback latency, SIP message at the peer -> webhook received ({latency.get('calls', 0)} "
                 "REST calls):")
    for name in ("ringing", "answered", "completed"):
        lines.append(_ms_line(name, latency.get(name)))
    lines.append(_ms_line("API dial delay (POST -> INVITE)", report.get("api_dial_delay_ms")))
    lines += _bridged_lines(report)
    lines += _media_lines(report)
    lines += _concurrent_lines(report)
    lines += _streams_lines(report)
    lines += _conference_lines(report)
    lines += _browser_lines(report)
    cap = report.get("capacity") or {}
    if cap.get("skipped"):
        lines.append(f"capacity: not filled ({cap['skipped']})")
    elif cap:
        lines.append(f"capacity: {cap['reached_in_progress']}/{cap['slots_expected']} calls in-progress "
                     f"at once, call {cap['slots_expected'] + 1} -> HTTP {cap['extra_call_http_status']}; "
                     f"slots in use after hang-up: {cap['in_use_after_hangup']}")
    for name, figures in (("1 worker", single), (f"{switch.get('workers', '?')} workers", switch)):
        found = figures.get("switch_log") or {}
        if found.get("errors") or found.get("assertions") or found.get("tracebacks"):
            lines.append(f"switch log ({name}): {found['errors']} errors, {found['assertions']} assertion "
                         f"failures, {found['tracebacks']} tracebacks; most common:")
            lines += [f"  {m['count']}x {m['message'][:150]}" for m in found["messages"][:3]]
            lines += [f"  traceback: {t[:300]}" for t in found.get("tracebacks_seen", [])]
    lines.append("targets:")
    for name, target in report["targets"].items():
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[target["pass"]]
        lines.append(f"  [{verdict}] {name}: {target['target']}")
    for error in report["errors"]:
        lines.append(f"ERROR in {error['phase']}: {error['error']}")
    return "\n".join(lines)
