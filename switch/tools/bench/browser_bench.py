"""The bench's browser phase: what the switch adds to a browser call's audio, what a browser call costs, and how
many one worker carries.

Browsers are `webrtc_client.WebRtcClient`s (aiortc stand-ins speaking the client WebSocket) in this process,
signed in with access tokens the bench signs with an API key it creates over REST; their calls go to an
Application on the bench's TwiML app.  Everything runs on 127.0.0.1 (`media.webrtc.use_host_addresses`), the
switch with one worker.

- **Mouth-to-ear latency.**  Browser A calls an Application answering `<Dial><Client>b</Client></Dial>`; browser B
  (identity b) accepts.  A says `bursts` bursts of a 1 kHz tone (100 ms every 600 ms); B finds each burst's onset
  (the first 20 ms frame whose RMS is over `MIN_RMS` and whose 1 kHz DFT bins hold over 30 % of its energy, after
  one that is not).  Latency = when B's track handed over the onset frame - when A's track handed the burst's
  first frame to its encoder, both `time.monotonic()` of this process.  The baseline, same run: the same two
  aiortc peers wired to each other with no switch (`webrtc_client.direct_pair`).  Opus, then PCMU; p50, max and
  "added" = switch p50 - direct p50.
- **CPU per browser call-second.**  `calls` browser calls (PCMU) to an Application answering
  `<Play loop="0">` of a looped tone; once every one hears it, the schedstat CPU of the control plane and of the
  worker over `sample_s` seconds, net of the same processes at rest, per call and second.  The baseline, same run:
  the same number of SIP calls (sipp, streaming a tone with RTP, `rtp_sipp`) to a number answering the same
  document.  Ratios browser / SIP, total and per process.  This process's own CPU (the browsers' aiortc) is
  reported beside, not counted.
- **Concurrent browser calls per process.**  Rungs of `ladder` simultaneous browser calls (PCMU, the looped
  tone) until one is not clean or the time budget is spent; clean: every call hears the tone in at least 95 % of
  the 20 ms frames of the window, and every call ends `completed` when the bench hangs it up over REST.  A rung
  that is not clean is run once more and counts only if that run is clean.

Bounded: every wait has a deadline; sipp gets `-timeout`; the ladder stops at its time budget.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np

from media.audio import encode
from media.tones import sine
from media.webrtc import use_host_addresses
from switch.core.access_tokens import signature
from switch.tools.bench.common import HOST, Json, TwimlApp, idle_cpu_rates, ratio, summarize
from switch.tools.bench.load import hang_up
from switch.tools.bench.procs import SwitchUnderTest
from switch.tools.bench.rtp_sipp import uac_rtp_scenario, write_tone
from switch.tools.bench.sipp import combine_runs, run_sipp_uac
from switch.tools.bench.webrtc_client import FRAME_BYTES, RATE, ClientCall, WebRtcClient, direct_pair

BROWSER_CALLS = 20
LADDER = (5, 10, 20, 40)
LADDER_BUDGET_S = 60.0
BURSTS = 10
BURST_MS = 100
BURST_EVERY_S = 0.6
BURST_HZ = 1000.0
PLAY_HZ = 600.0  # the played tone (whole cycles in its 1 s file: it loops without a seam)
MIN_RMS = 300.0
TONE_SHARE = 0.3
CODECS = ("opus", "pcmu")
SAMPLE_S = 4.0
WINDOW_S = 3.0  # a ladder rung's hearing window
IDLE_S = 2.0
SETTLE_S = 0.5
SETUP_PARALLEL = 8  # browser calls being set up at once
SIP_RATE = 20.0
CLEAN_SHARE = 0.95
PLAY_PATH, DIAL_PATH = "/browser-play", "/browser-dial"
SIP_NUMBER = "+15550170"
DOCUMENTS = {PLAY_PATH: '<Response><Play loop="0">{tone}</Play></Response>',
             DIAL_PATH: "<Response><Dial><Client>b</Client></Dial></Response>"}
NOTE = ("The browsers are aiortc peers in the bench's own process, which shares the machine's CPUs with the switch "
        "(control plane, worker) and sipp: bench_client_cpu_s_per_s is that process's CPU while the calls were up. "
        "A ladder rung can fail because the bench's aiortc runs out of CPU before the switch does. Latency is from "
        "the sending track handing the burst's first frame to its encoder to the receiving track handing over the "
        "onset frame (after aiortc's jitter buffer and decoder), both on this process's monotonic clock. aiortc's "
        "audio jitter buffer holds 4 frames before it hands any over (about 80 ms, most of the direct figure); "
        "through the switch the audio crosses two aiortc receivers (the switch's and the far browser's), so that "
        "part counts twice.")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def access_token(account_sid: str, key_sid: str, secret: str, identity: str, app_sid: str, ttl: int = 3600) -> str:
    """A Voice access token as Twilio's helper makes it (HS256, `cty` twilio-fpa;v=1), incoming allowed."""
    now = int(time.time())
    header = {"typ": "JWT", "alg": "HS256", "cty": "twilio-fpa;v=1"}
    payload = {"jti": f"{key_sid}-{now}-{secrets.token_hex(4)}", "iss": key_sid, "sub": account_sid, "nbf": now,
               "exp": now + ttl, "grants": {"identity": identity, "voice": {
                   "incoming": {"allow": True}, "outgoing": {"application_sid": app_sid}}}}
    signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    return f"{signing}.{_b64(signature(signing.encode('ascii'), secret))}"


def is_tone(pcm: bytes, hz: float) -> bool:
    """Whether 16-bit PCM at 8 kHz is mostly a tone of `hz` (RMS over `MIN_RMS`, the bins about `hz` holding
    over `TONE_SHARE` of the energy)."""
    x = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    if len(x) < 80 or float(np.sqrt(np.mean(x * x))) < MIN_RMS:
        return False
    power = np.abs(np.fft.rfft(x)) ** 2
    k = round(hz * len(x) / RATE)
    return bool(power[max(k - 2, 0):k + 3].sum() > TONE_SHARE * power.sum())


def onsets(heard: list[tuple[float, bytes]], hz: float, gap_s: float) -> list[float]:
    """Arrival times of the frames where a tone of `hz` starts (after a frame without it, `gap_s` after the last)."""
    found: list[float] = []
    before = False
    for t, pcm in heard:
        now = is_tone(pcm, hz)
        if now and not before and (not found or t - found[-1] > gap_s):
            found.append(t)
        before = now
    return found


def burst_latencies(sent: list[float], heard: list[tuple[float, bytes]]) -> list[float]:
    """Per burst sent (its first frame's departure), ms to the first onset heard after it (within the period)."""
    heard_at = onsets(heard, BURST_HZ, BURST_EVERY_S / 2)
    out: list[float] = []
    for s in sent:
        match = next((t for t in heard_at if s < t < s + BURST_EVERY_S), None)
        if match is not None:
            out.append((match - s) * 1000)
    return out


async def say_bursts(call: ClientCall, bursts: int) -> None:
    """`bursts` bursts of `BURST_HZ`, `BURST_MS` long, one every `BURST_EVERY_S` seconds."""
    burst = sine(BURST_HZ, BURST_MS / 1000, RATE, amplitude=0.25).tobytes()
    burst = burst[:len(burst) // FRAME_BYTES * FRAME_BYTES]
    for _ in range(bursts):
        call.send_audio(burst, mark=True)
        await asyncio.sleep(BURST_EVERY_S)
    await asyncio.sleep(BURST_EVERY_S / 2)


async def heard_anything(call: ClientCall, timeout: float) -> bool:
    """Wait (at most `timeout`) until the call hears frames: its media is up."""
    deadline = time.monotonic() + timeout
    while not call.heard and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return bool(call.heard)


@dataclass
class Bench:
    """The switch under test, the browsers' tokens and what every run shares."""

    switch: SwitchUnderTest
    session: aiohttp.ClientSession
    app: TwimlApp
    workdir: Path
    tokens: dict[str, str]
    idle: dict[str, float]

    def client(self, identity: str) -> WebRtcClient:
        return WebRtcClient(self.switch.base_url, self.tokens[identity])

    def pids(self) -> dict[str, int]:
        return {**self.switch.pids(), "bench": os.getpid()}


async def _post(session: aiohttp.ClientSession, switch: SwitchUnderTest, resource: str, form: dict[str, str]) -> Json:
    url = switch.calls_url.removesuffix("Calls.json") + resource
    async with session.post(url, data=form, headers=switch.auth_headers,
                              timeout=aiohttp.ClientTimeout(total=10)) as resp:
        body: Json = await resp.json()
        if resp.status != 201:
            raise RuntimeError(f"POST {resource}: HTTP {resp.status} {body}")
        return body


async def _start(session: aiohttp.ClientSession, app: TwimlApp, workdir: Path) -> Bench:
    workdir.mkdir(parents=True, exist_ok=True)
    app.files["/browser-tone.wav"] = encode(sine(PLAY_HZ, 1.0, RATE), RATE)
    for path, document in DOCUMENTS.items():
        app.documents[path] = document.format(tone=app.url("/browser-tone.wav"))
    switch = SwitchUnderTest(workdir, 1, [{"number": SIP_NUMBER, "voice_url": app.url(PLAY_PATH)}])
    await switch.start(session)
    try:
        key = await _post(session, switch, "Keys.json", {"FriendlyName": "bench"})
        tokens: dict[str, str] = {}
        for name, path in (("play", PLAY_PATH), ("a", DIAL_PATH)):
            made = await _post(session, switch, "Applications.json",
                               {"FriendlyName": f"bench-{name}", "VoiceUrl": app.url(path)})
            tokens[name] = access_token(switch.account_sid, key["sid"], key["secret"], name, made["sid"])
        tokens["b"] = access_token(switch.account_sid, key["sid"], key["secret"], "b", made["sid"])
        await asyncio.sleep(0.5)  # let start-up CPU settle
        idle = await idle_cpu_rates({**switch.pids(), "bench": os.getpid()}, IDLE_S)
    except BaseException:
        await switch.stop()
        raise
    return Bench(switch, session, app, workdir, tokens, idle)


# -- mouth-to-ear --------------------------------------------------------------------------------------------
async def _through_switch(b: Bench, codec: str, bursts: int) -> Json:
    a, bee = b.client("a"), b.client("b")
    try:
        for c in (a, bee):
            ready = await c.connect()
            if ready.get("type") != "ready":
                raise RuntimeError(f"browser not signed in: {ready}")
        caller = await a.call({"To": "client:b"}, codec)
        incoming = await asyncio.wait_for(bee.incoming.get(), 15)
        callee = await bee.accept(incoming["callSid"], codec)
        if not (await heard_anything(callee, 10) and await heard_anything(caller, 10)):
            raise RuntimeError("no audio on the bridged browser call")
        await asyncio.sleep(0.3)
        await say_bursts(caller, bursts)
        latencies = burst_latencies(caller.sent_marks, callee.heard)
        await a.hangup(caller.sid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(callee.ended.wait(), 10)
        return {"bursts": bursts, "heard": len(latencies), "ms": summarize(latencies),
                "callee_status": callee.status}
    finally:
        await a.close()
        await bee.close()


async def _direct(codec: str, bursts: int) -> Json:
    a, bee = await direct_pair(codec)
    try:
        if not (await heard_anything(bee, 10) and await heard_anything(a, 10)):
            raise RuntimeError("no audio between the direct peers")
        await asyncio.sleep(0.3)
        await say_bursts(a, bursts)
        latencies = burst_latencies(a.sent_marks, bee.heard)
        return {"bursts": bursts, "heard": len(latencies), "ms": summarize(latencies)}
    finally:
        await a.close()
        await bee.close()


async def mouth_to_ear(b: Bench, codecs: tuple[str, ...], bursts: int) -> Json:
    out: Json = {}
    for codec in codecs:
        switched = await _through_switch(b, codec, bursts)
        direct = await _direct(codec, bursts)
        sp, dp = switched["ms"]["p50"], direct["ms"]["p50"]
        out[codec] = {"switch": switched, "direct": direct,
                      "added_ms": round(sp - dp, 3) if sp is not None and dp is not None else None}
        await b.switch.refresh(b.session)
    return out


# -- browser calls held, hearing the played tone -------------------------------------------------------------
def _net(cpu: dict[str, float], idle: dict[str, float], names: tuple[str, ...]) -> float:
    return sum(cpu[n] - idle.get(n, 0.0) for n in names)


def _per_call_ms(cpu: dict[str, float], idle: dict[str, float], n: int) -> Json:
    """ms of CPU per call-second (net of idle): total (control plane + worker), and each."""
    if not cpu or n < 1:
        return {"total": None, "control_plane": None, "worker": None}
    return {"total": round(_net(cpu, idle, ("control_plane", "worker0")) * 1000 / n, 3),
            "control_plane": round(_net(cpu, idle, ("control_plane",)) * 1000 / n, 3),
            "worker": round(_net(cpu, idle, ("worker0",)) * 1000 / n, 3)}


async def browser_calls(b: Bench, n: int, window_s: float, tag: str) -> Json:
    """`n` browser calls (PCMU) to the Play application, all up together: CPU over `window_s` once every one hears
    the tone, each call's share of tone frames in the window; then all hung up over REST."""
    await b.switch.refresh(b.session)
    client = b.client("play")
    started = time.monotonic()
    calls: list[ClientCall] = []
    failures: list[str] = []
    try:
        ready = await client.connect()
        if ready.get("type") != "ready":
            raise RuntimeError(f"browser not signed in: {ready}")
        gate = asyncio.Semaphore(SETUP_PARALLEL)

        async def place(i: int) -> None:
            async with gate:
                try:
                    calls.append(await client.call({"To": f"bench-{tag}-{i}"}, "pcmu"))
                except (RuntimeError, TimeoutError) as exc:
                    failures.append(str(exc)[:200])

        await asyncio.gather(*(place(i) for i in range(n)))
        deadline = time.monotonic() + 10 + n * 0.2
        hearing = 0
        while time.monotonic() < deadline:
            hearing = sum(any(is_tone(p, PLAY_HZ) for _, p in c.heard[-5:]) for c in calls)
            if hearing >= n:
                break
            await asyncio.sleep(0.1)
        up_s = time.monotonic() - started
        cpu: dict[str, float] = {}
        shares: list[float] = []
        frames: list[float] = []
        if hearing >= n:
            await asyncio.sleep(SETTLE_S)
            t0 = time.monotonic()
            cpu = await idle_cpu_rates(b.pids(), window_s)
            t1 = time.monotonic()
            expected = (t1 - t0) * RATE / 160
            for c in calls:
                window = [p for t, p in c.heard if t0 <= t < t1]
                shares.append(sum(is_tone(p, PLAY_HZ) for p in window) / expected)
                frames.append(len(window) / expected)
        for call in calls:
            await hang_up(b.session, b.switch, call.sid)
        end_by = time.monotonic() + 10
        while time.monotonic() < end_by and not all(c.ended.is_set() for c in calls):
            await asyncio.sleep(0.05)
    finally:
        await client.close()
    statuses: dict[str, int] = {}
    for call in calls:
        statuses[call.status or "not ended"] = statuses.get(call.status or "not ended", 0) + 1
    completed = statuses.get("completed", 0)
    return {"calls": n, "answered": len(calls), "all_hearing": hearing >= n, "seconds_to_all_hearing": round(up_s, 2),
            "setup_failures": failures[:5], "window_s": window_s,
            "cpu_s_per_s": {k: round(v, 4) for k, v in cpu.items()},
            "cpu_ms_per_call_second": _per_call_ms(cpu, b.idle, n),
            "bench_client_cpu_s_per_s": round(cpu["bench"], 3) if cpu else None,
            "tone_frames_share": summarize(shares), "frames_heard_share": summarize(frames), "end_statuses": statuses,
            "clean": (hearing >= n and len(shares) == n and min(shares, default=0) >= CLEAN_SHARE
                      and completed == n)}


async def sip_calls(b: Bench, n: int, window_s: float, tag: str) -> Json:
    """The baseline: `n` sipp calls streaming a tone over RTP to the number answering the same `<Play>`, all up
    together: CPU over `window_s`."""
    await b.switch.refresh(b.session)
    fetched = b.app.count(PLAY_PATH)
    ramp_s = n / SIP_RATE
    margin = 3.0
    hold_ms = int(1000 * (ramp_s + margin + SETTLE_S + window_s + 0.5))
    tone = write_tone(b.workdir / "sip-tone.ul")
    sipp = asyncio.create_task(run_sipp_uac(
        b.switch.target(0), n, SIP_RATE, hold_ms, b.workdir, tag, service=SIP_NUMBER,
        scenario_text=uac_rtp_scenario(f"{tag}x", tone)))
    started = time.monotonic()
    up = 0
    while time.monotonic() - started < ramp_s + margin and up < n:
        await asyncio.sleep(0.2)
        health = await b.switch.healthz(b.session)
        up = min(int(health.get("in_use", 0)), b.app.count(PLAY_PATH) - fetched)
    cpu: dict[str, float] = {}
    if up >= n:
        await asyncio.sleep(SETTLE_S)
        cpu = await idle_cpu_rates(b.pids(), window_s)
    run = combine_runs([await sipp])
    return {"calls": n, "all_up_together": up >= n, "seconds_to_all_up": round(time.monotonic() - started, 2),
            "sipp": run.as_json(), "cpu_s_per_s": {k: round(v, 4) for k, v in cpu.items()},
            "cpu_ms_per_call_second": _per_call_ms(cpu, b.idle, n), "clean": run.clean and up >= n}


async def cpu_per_call(b: Bench, n: int, sample_s: float) -> Json:
    browser = await browser_calls(b, n, sample_s, "cpu")
    sip = await sip_calls(b, n, sample_s, "cpu-sip")
    bc, sc = browser["cpu_ms_per_call_second"], sip["cpu_ms_per_call_second"]
    return {"calls": n, "browser": browser, "sip": sip,
            "cpu_ms_per_call_second": {"browser": bc, "sip_with_rtp": sc},
            "browser_vs_sip": {k: ratio(bc[k], sc[k]) for k in ("total", "control_plane", "worker")},
            "bench_client_cpu_ms_per_call_second": (round(browser["bench_client_cpu_s_per_s"] * 1000 / n, 3)
                                                    if browser["bench_client_cpu_s_per_s"] is not None else None)}


async def call_ladder(b: Bench, steps: tuple[int, ...], window_s: float, budget_s: float) -> Json:
    started = time.monotonic()
    done: list[Json] = []
    stopped_by = "every step clean"
    for n in steps:
        if time.monotonic() - started > budget_s:
            stopped_by = f"time budget ({budget_s:g} s)"
            break
        step = await browser_calls(b, n, window_s, f"ladder{n}")
        first_share, attempts = step["tone_frames_share"]["min"], 1
        if not step["clean"]:  # once more: a frame lost to another program's burst is not the switch's limit
            step, attempts = await browser_calls(b, n, window_s, f"ladder{n}-again"), 2
        done.append({"attempts": attempts, "first_attempt_min_tone_frames_share": first_share}
                    | {k: step[k] for k in ("calls", "answered", "all_hearing", "seconds_to_all_hearing", "clean",
                                          "end_statuses", "bench_client_cpu_s_per_s", "setup_failures")}
                    | {"min_tone_frames_share": step["tone_frames_share"]["min"],
                       "min_frames_heard_share": step["frames_heard_share"]["min"],
                       "cpu_s_per_s": step["cpu_s_per_s"],
                       "cpu_ms_per_call_second": step["cpu_ms_per_call_second"]["total"]})
        if not step["clean"]:
            stopped_by = f"{n} not clean"
            break
    return {"steps": done, "stopped_by": stopped_by,
            "largest_clean": max((s["calls"] for s in done if s["clean"]), default=0),
            "seconds": round(time.monotonic() - started, 1)}


async def browser_phase(session: aiohttp.ClientSession, app: TwimlApp, workdir: Path, calls: int = BROWSER_CALLS,
                        codecs: tuple[str, ...] = CODECS, bursts: int = BURSTS, ladder: tuple[int, ...] = LADDER,
                        ladder_budget_s: float = LADDER_BUDGET_S, sample_s: float = SAMPLE_S,
                        window_s: float = WINDOW_S) -> Json:
    """The whole phase (module doc) on a 1-worker switch."""
    started = time.monotonic()
    load_at_start = Path("/proc/loadavg").read_text().split()[:3]
    use_host_addresses([HOST])  # the browsers' candidates: loopback, as the switch offers
    b = await _start(session, app, workdir)
    try:
        health = await b.switch.healthz(session)
        engines = sorted({str(w.get("engine", "?")) for w in health.get("workers", [])})
        latency = await mouth_to_ear(b, codecs, bursts)
        cost = await cpu_per_call(b, calls, sample_s)
        steps = await call_ladder(b, ladder, window_s, ladder_budget_s)
    finally:
        await b.switch.stop()
    return {"calls": calls, "workers": 1, "engines": engines,
            "idle_cpu_s_per_s": {k: round(v, 4) for k, v in b.idle.items()},
            "mouth_to_ear_ms": latency, "cpu": cost, "ladder": steps,
            "most_concurrent_clean_calls": steps["largest_clean"], "notes": NOTE,
            "loadavg_at_start": load_at_start, "loadavg_at_end": Path("/proc/loadavg").read_text().split()[:3],
            "seconds": round(time.monotonic() - started, 1), "switch_log": b.switch.log_findings()}
