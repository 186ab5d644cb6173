"""The bench's conference and queue phase: what mixing costs, the largest clean room, and `<Dial><Queue>` to audio.

The switch runs with 2 workers and no edge, so each worker takes INVITEs on its own port and the bench decides
where every participant lands.  Callers are sipp uacs streaming a looped 400 Hz tone (`rtp_sipp`) to numbers on
the bench's TwiML app.  CPU is the schedstat time of the control plane and both workers over a window while every
call is up, net of the same processes at rest (`idle_cpu_rates`), per participant and second.

- **Mixing CPU.**  N callers to a number answering `<Dial><Conference beep="false">room</Conference></Dial>`,
  then (the baseline, same run) the same N to one answering `<Pause length="600"/>`: ms of CPU per
  participant-second, mixed and held, and their ratio.  Twice: all N on worker 0 (mixed on its pjsua bridge),
  and spread over both workers (each mixes its own, the control plane mixes the two links every 20 ms).
- **Largest clean room.**  Rooms of `ladder` sizes (10, 20, 40, 80 by default) spread over both workers, each
  until one is not clean or the time budget is spent.  Dropped frames are what the workers' legs count
  (/healthz, `switch.worker.rtpstat`: RTP packets lost or discarded, jitter-buffer frames lost or discarded,
  received packets under 95 % of 50/s of each leg's hold) and the control plane mixer's late ticks (/healthz
  `conference_mixer`); sipp 3.6.1 never reads its RTP socket, so the callers cannot count what they hear.
  Clean also means sipp counts every call successful and all N were in the room together (the Participants API).
  A room that is not clean is run once more, and counts only if that run is clean (`clean_room`).
  Then the same on the PyPI wheel (`SOFTSWITCH_ENGINE=wheel`, 4 legs per worker): one room filling every leg of
  `wheel_workers` workers.
- **`<Dial><Queue>` to bridged audio.**  A caller (sipp, the tone) runs `<Enqueue>`; once the Queues API shows it
  waiting, an agent (sipp, tracing its messages) calls a number answering `<Dial><Queue>`; the agent's SDP names
  a UDP socket in this process (`ToneEar`) that stamps, with `time.time()`, the first RTP packet and the first one
  carrying the caller's tone (the 400 Hz DFT bin holds over 30 % of a frame's energy, RMS over 300).  From the
  TwiML app's receipt of the agent's document request (same clock) and from the agent's INVITE as sipp logged it
  (wall clock, microseconds) to that packet: what includes answering the agent, the handoff, the bridge (same
  worker) or the two-member mixer room (caller and agent on different workers), and one 20 ms frame of packet
  timing.  `queue_reps` repetitions each way, p50 and max.

Bounded: every sipp gets `-timeout` and is killed if it overstays; the ladder stops at its time budget.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import aiohttp
import numpy as np

from media.ulaw import ulaw_decode
from switch.tools.bench.common import HOST, Json, TwimlApp, idle_cpu_rates, ratio, summarize
from switch.tools.bench.concurrent import RTP_KEYS, rtp_totals
from switch.tools.bench.procs import SwitchUnderTest
from switch.tools.bench.rtp_sipp import PACKETS_PER_SECOND, TONE_HZ, uac_rtp_scenario, write_tone
from switch.tools.bench.sipp import SippRun, combine_runs, read_messages, run_sipp_uac, uac_scenario

PARTICIPANTS = 20
RATE = 20.0  # calls set up per second (shared by the sipps of a run)
LADDER = (10, 20, 40, 80)
LADDER_BUDGET_S = 120.0
QUEUE_REPS = 5
WHEEL_WORKERS = 2
SAMPLE_S = 4.0  # CPU window with every call up
SETTLE_S = 0.5  # after the last one is up, before the window
UP_MARGIN_S = 4.0  # the most the last call may take to be up after the ramp
TAIL_S = 0.5  # calls held past the CPU window
IDLE_S = 2.0
CALLER_HOLD_MS = 4000
AGENT_HOLD_MS = 1500
ONE_CALL_RATE = 20.0  # sipp places its first call 1/rate s after it starts
ROOM, QUEUE = "bench-room", "bench-queue"
ROOM_NUMBER, HELD_NUMBER, CALLER_NUMBER, AGENT_NUMBER = "+15550160", "+15550161", "+15550162", "+15550163"
PATHS = {ROOM_NUMBER: "/conf-room", HELD_NUMBER: "/conf-held", CALLER_NUMBER: "/queue-caller",
         AGENT_NUMBER: "/queue-agent"}
DOCUMENTS = {
    ROOM_NUMBER: f'<Response><Dial><Conference beep="false">{ROOM}</Conference></Dial></Response>',
    HELD_NUMBER: '<Response><Pause length="600"/></Response>',
    CALLER_NUMBER: f'<Response><Enqueue>{QUEUE}</Enqueue><Pause length="60"/></Response>',
    AGENT_NUMBER: f"<Response><Dial><Queue>{QUEUE}</Queue></Dial></Response>",
}
DROP_KEYS = ("rx_lost", "rx_discarded", "jb_lost", "jb_discarded")
# A held call's audio is played to nobody: its jitter buffer is never read and discards what overflows it.
HELD_DROP_KEYS = ("rx_lost", "rx_discarded")


@dataclass
class Bench:
    """One switch under test and what every run on it shares."""

    switch: SwitchUnderTest
    session: aiohttp.ClientSession
    app: TwimlApp
    workdir: Path
    tone: Path
    idle: dict[str, float]
    rate: float
    sample_s: float
    up_margin_s: float = UP_MARGIN_S

    async def rest(self, resource: str, key: str, **params: str) -> list[Json]:
        """GET one page of `resource` (Conferences.json, ...) of the switch's account: its `key` list."""
        url = self.switch.calls_url.removesuffix("Calls.json") + resource
        try:
            async with self.session.get(url, params={"PageSize": "1000", **params}, headers=self.switch.auth_headers,
                                        timeout=aiohttp.ClientTimeout(total=3)) as resp:
                return cast(list[Json], (await resp.json()).get(key, []))
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return []

    async def room_size(self) -> int:
        """Participants of the live room now."""
        rooms = await self.rest("Conferences.json", "conferences", FriendlyName=ROOM, Status="in-progress")
        if not rooms:
            return 0
        return len(await self.rest(f"Conferences/{rooms[0]['sid']}/Participants.json", "participants"))

    async def queue_size(self) -> int:
        queues = await self.rest("Queues.json", "queues")
        return sum(int(q.get("current_size", 0)) for q in queues if q.get("friendly_name") == QUEUE)


def _mixer(health: Json) -> dict[str, int]:
    mixer = health.get("conference_mixer") or {}
    return {"ticks": int(mixer.get("ticks", 0)), "late_ticks": int(mixer.get("late_ticks", 0))}


def _spread(n: int, workers: list[int]) -> list[int]:
    """`n` calls over `workers` as evenly as they go (the first ones get one more)."""
    return [n // len(workers) + (i < n % len(workers)) for i in range(len(workers))]


async def hold_calls(b: Bench, number: str, n: int, workers: list[int], tag: str) -> Json:
    """`n` calls to `number` spread over `workers` (one sipp per worker's port), all held together: CPU over the
    window once every one is up (in the room, or answered), then their legs' RTP and the mixer's ticks."""
    await b.switch.refresh(b.session)
    before = await b.switch.healthz(b.session)
    fetched = b.app.count(PATHS[number])
    shares = _spread(n, workers)
    each_rate = b.rate / len(workers)
    ramp_s = max(shares) / each_rate
    hold_ms = int(1000 * (ramp_s + b.up_margin_s + SETTLE_S + b.sample_s + TAIL_S))
    sipps = [asyncio.create_task(run_sipp_uac(
        b.switch.target(w), k, each_rate, hold_ms, b.workdir, f"{tag}-w{w}", service=number,
        scenario_text=uac_rtp_scenario(f"{tag}w{w}x", b.tone))) for w, k in zip(workers, shares, strict=True) if k]
    started = time.monotonic()

    async def count_up() -> int:
        if number == ROOM_NUMBER:
            return await b.room_size()
        health = await b.switch.healthz(b.session)
        return min(int(health.get("in_use", 0)), b.app.count(PATHS[number]) - fetched)

    up = 0
    while time.monotonic() - started < ramp_s + b.up_margin_s and up < n:
        await asyncio.sleep(0.2)
        up = await count_up()
    waited = time.monotonic() - started
    cpu: dict[str, float] = {}
    if up >= n:
        await asyncio.sleep(SETTLE_S)
        cpu = await idle_cpu_rates(b.switch.pids(), b.sample_s)
        up = min(up, await count_up())  # still all there at the end of the window
    run = combine_runs(list(await asyncio.gather(*sipps)))
    rtp0, mix0 = rtp_totals(before), _mixer(before)
    await asyncio.sleep(0.3)
    for _ in range(25):  # the legs' RTP is counted when their Ended reaches the control plane
        after = await b.switch.healthz(b.session)
        if rtp_totals(after)["legs"] - rtp0["legs"] >= run.successful:
            break
        await asyncio.sleep(0.2)
    rtp = {k: rtp_totals(after)[k] - rtp0[k] for k in RTP_KEYS}
    late = _mixer(after)["late_ticks"] - mix0["late_ticks"]
    expected = run.successful * PACKETS_PER_SECOND * hold_ms / 1000
    dropped = sum(rtp[k] for k in (DROP_KEYS if number == ROOM_NUMBER else HELD_DROP_KEYS)) + late
    net = sum(cpu.values()) - sum(b.idle.values()) if cpu else None
    return {
        "participants": n, "workers": workers, "per_worker": shares, "hold_ms": hold_ms,
        "all_up_together": up >= n, "seconds_to_all_up": round(waited, 2), "sipp": run.as_json(),
        "cpu_s_per_s": {k: round(v, 4) for k, v in cpu.items()},
        "cpu_ms_per_participant_second": round(net * 1000 / n, 3) if net is not None else None,
        "rtp": {**rtp, "expected_rx_packets": round(expected),
                "rx_vs_expected": round(rtp["rx_packets"] / expected, 4) if expected else None},
        "mixer_ticks": _mixer(after)["ticks"] - mix0["ticks"], "mixer_late_ticks": late, "dropped_frames": dropped,
        "clean": run.clean and up >= n and dropped == 0 and rtp["rx_packets"] >= 0.95 * expected,
    }


async def mixed_vs_held(b: Bench, n: int, workers: list[int], tag: str) -> Json:
    """The same `n` calls held with `<Pause>`, then in one room: CPU per participant-second of each, the ratio."""
    held = await hold_calls(b, HELD_NUMBER, n, workers, f"{tag}-held")
    mixed = await hold_calls(b, ROOM_NUMBER, n, workers, f"{tag}-room")
    h, m = held["cpu_ms_per_participant_second"], mixed["cpu_ms_per_participant_second"]
    return {"participants": n, "workers": workers, "held": held, "mixed": mixed,
            "cpu_ms_per_participant_second": {"held": h, "mixed": m,
                                              "mixing_only": round(m - h, 3) if m is not None and h is not None
                                              else None},
            "mixed_vs_held": ratio(m, h), "clean": bool(held["clean"] and mixed["clean"])}


async def clean_room(b: Bench, n: int, workers: list[int], tag: str) -> Json:
    """A room of `n` over `workers`; one that is not clean is run once more (a frame lost to another program's
    burst on a shared machine is not the switch's limit) and counts only if that run is clean."""
    first = await hold_calls(b, ROOM_NUMBER, n, workers, tag)
    if first["clean"]:
        return first | {"attempts": 1}
    again = await hold_calls(b, ROOM_NUMBER, n, workers, f"{tag}-again")
    return again | {"attempts": 2, "first_attempt_dropped_frames": first["dropped_frames"]}


async def room_ladder(b: Bench, steps: tuple[int, ...], workers: list[int], budget_s: float) -> Json:
    """Rooms of each size in `steps` over `workers` until one is not clean or `budget_s` is spent."""
    started = time.monotonic()
    done: list[Json] = []
    stopped_by = "every step clean"
    for n in steps:
        if time.monotonic() - started > budget_s:
            stopped_by = f"time budget ({budget_s:g} s)"
            break
        step = await clean_room(b, n, workers, f"ladder-{n}")
        done.append({k: step[k] for k in ("participants", "clean", "attempts", "all_up_together", "dropped_frames",
                                          "mixer_late_ticks", "cpu_ms_per_participant_second")}
                    | {"first_attempt_dropped_frames": step.get("first_attempt_dropped_frames"),
                       "sipp_ok": step["sipp"]["successful"], "sipp_failed": step["sipp"]["failed"],
                       "rx_vs_expected": step["rtp"]["rx_vs_expected"],
                       **{k: step["rtp"][k] for k in DROP_KEYS}})
        if not step["clean"]:
            stopped_by = f"{n} not clean"
            break
    return {"workers": workers, "steps": done, "stopped_by": stopped_by,
            "largest_clean": max((s["participants"] for s in done if s["clean"]), default=0),
            "seconds": round(time.monotonic() - started, 1)}


class ToneEar(asyncio.DatagramProtocol):
    """The agent's RTP: wall-clock arrival of the first packet, and of the first carrying the caller's tone."""

    def __init__(self) -> None:
        self.packets = 0
        self.first_packet: float | None = None
        self.first_tone: float | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.time()
        self.packets += 1
        if self.first_packet is None:
            self.first_packet = now
        if self.first_tone is None and len(data) > 12 and is_tone(data[12:]):
            self.first_tone = now


def is_tone(payload: bytes) -> bool:
    """Whether a μ-law frame is mostly the callers' `TONE_HZ` tone."""
    samples = np.frombuffer(ulaw_decode(payload), dtype=np.int16).astype(np.float64)
    if len(samples) < 80 or float(np.sqrt(np.mean(samples ** 2))) < 300:
        return False
    power = np.abs(np.fft.rfft(samples)) ** 2
    tone_bin = round(TONE_HZ * len(samples) / 8000)
    return bool(power[tone_bin - 1:tone_bin + 2].sum() > 0.3 * power.sum())


def _ear_sdp(port: int) -> str:
    return f"""      v=0
      o=sipp 2000 1 IN IP4 {HOST}
      s=softswitch-bench-agent
      c=IN IP4 {HOST}
      t=0 0
      m=audio {port} RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=ptime:20
      a=sendrecv
"""


async def queue_once(b: Bench, caller_worker: int, agent_worker: int,
                     tag: str) -> tuple[Json, asyncio.Task[SippRun]]:
    """One caller waiting, one agent taking it (module doc); returns the figures and the caller's sipp (still
    holding: its call goes on with `<Pause>` after the agent hangs up)."""
    caller = asyncio.create_task(run_sipp_uac(
        b.switch.target(caller_worker), 1, ONE_CALL_RATE, CALLER_HOLD_MS, b.workdir, f"{tag}-caller",
        service=CALLER_NUMBER, scenario_text=uac_rtp_scenario(f"{tag}c", b.tone)))
    deadline = time.monotonic() + 8.0
    while time.monotonic() < deadline and await b.queue_size() < 1:
        await asyncio.sleep(0.05)
    transport, ear = await asyncio.get_running_loop().create_datagram_endpoint(ToneEar, local_addr=(HOST, 0))
    try:
        fetched = b.app.count(PATHS[AGENT_NUMBER])
        agent = await run_sipp_uac(
            b.switch.target(agent_worker), 1, ONE_CALL_RATE, AGENT_HOLD_MS, b.workdir, f"{tag}-agent",
            service=AGENT_NUMBER, trace=True,
            scenario_text=uac_scenario(f"{tag}a", sdp=_ear_sdp(transport.get_extra_info("sockname")[1]),
                                       name="softswitch bench queue agent"))
    finally:
        transport.close()
    fetches = b.app.select(PATHS[AGENT_NUMBER])[fetched:]
    invites = [m.t for m in read_messages(agent.message_log) if m.sent and m.first_line.startswith("INVITE ")]

    def since(t0: float | None, t1: float | None) -> float | None:
        return round((t1 - t0) * 1000, 3) if t0 is not None and t1 is not None else None

    fetch_t = fetches[0].t_request if fetches else None
    invite_t = invites[0] if invites else None
    return {"agent_ok": agent.clean, "packets": ear.packets, "fetch_to_tone_ms": since(fetch_t, ear.first_tone),
            "invite_to_tone_ms": since(invite_t, ear.first_tone), "invite_to_fetch_ms": since(invite_t, fetch_t),
            "fetch_to_first_rtp_ms": since(fetch_t, ear.first_packet)}, caller


async def queue_latency(b: Bench, reps: int, caller_worker: int, agent_worker: int, tag: str) -> Json:
    """`reps` callers taken one after another by as many agents: from the agent's TwiML fetch (and INVITE) to the
    caller's tone at the agent."""
    tries: list[Json] = []
    callers: list[asyncio.Task[SippRun]] = []
    for i in range(reps):
        one, caller = await queue_once(b, caller_worker, agent_worker, f"{tag}{i}")
        tries.append(one)
        callers.append(caller)
    runs = await asyncio.gather(*callers)
    callers_ok = sum(r.clean for r in runs)
    heard = [t for t in tries if t["fetch_to_tone_ms"] is not None]
    return {"caller_worker": caller_worker, "agent_worker": agent_worker, "repetitions": reps,
            "bridged_audio_heard": len(heard), "agents_ok": sum(t["agent_ok"] for t in tries),
            "callers_ok": callers_ok,
            **{key: summarize(t[key] for t in tries if t[key] is not None)
               for key in ("fetch_to_tone_ms", "invite_to_tone_ms", "invite_to_fetch_ms", "fetch_to_first_rtp_ms")},
            "clean": len(heard) == reps and callers_ok == reps and all(t["agent_ok"] for t in tries)}


async def _start(session: aiohttp.ClientSession, app: TwimlApp, workdir: Path, workers: int,
                 timing: tuple[float, float, float], env: dict[str, str] | None = None) -> Bench:
    """The switch with `workers` workers and the phase's numbers; `timing` is (rate, sample_s, up_margin_s)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for number, path in PATHS.items():
        app.documents[path] = DOCUMENTS[number]
    numbers = [{"number": number, "voice_url": app.url(path)} for number, path in PATHS.items()]
    switch = SwitchUnderTest(workdir, workers, numbers, env=env or {})
    await switch.start(session)
    await asyncio.sleep(0.5)  # let start-up CPU settle
    idle = await idle_cpu_rates(switch.pids(), IDLE_S)
    return Bench(switch, session, app, workdir, write_tone(workdir / "tone.ul"), idle, *timing)


async def _wheel(session: aiohttp.ClientSession, app: TwimlApp, workdir: Path, workers: int,
                 timing: tuple[float, float, float]) -> Json:
    """One room filling every leg of `workers` workers on the PyPI wheel (4 legs each), members spread evenly."""
    b = await _start(session, app, workdir, workers, timing, {"SOFTSWITCH_ENGINE": "wheel"})
    try:
        health = await b.switch.healthz(session)
        engines = sorted({str(w.get("engine", "?")) for w in health.get("workers", [])})
        legs = sum(int(w.get("capacity", 0)) for w in health.get("workers", []))
        room = await clean_room(b, legs, list(range(workers)), "wheel")
    finally:
        await b.switch.stop()
    return {"workers": workers, "engines": engines, "call_legs": legs, "room": room,
            "largest_clean": legs if room["clean"] else 0, "switch_log": b.switch.log_findings()}


async def conference_phase(session: aiohttp.ClientSession, app: TwimlApp, workdir: Path,
                           participants: int = PARTICIPANTS, rate: float = RATE, ladder: tuple[int, ...] = LADDER,
                           ladder_budget_s: float = LADDER_BUDGET_S, queue_reps: int = QUEUE_REPS,
                           wheel_workers: int = WHEEL_WORKERS, sample_s: float = SAMPLE_S,
                           up_margin_s: float = UP_MARGIN_S) -> Json:
    """The whole phase (module doc) on a 2-worker switch, then the wheel's room (`wheel_workers` 0 skips it)."""
    started = time.monotonic()
    timing = (rate, sample_s, up_margin_s)
    b = await _start(session, app, workdir / "built", 2, timing)
    try:
        health = await b.switch.healthz(session)
        engines = sorted({str(w.get("engine", "?")) for w in health.get("workers", [])})
        one = await mixed_vs_held(b, participants, [0], "one")
        two = await mixed_vs_held(b, participants, [0, 1], "two")
        steps = await room_ladder(b, ladder, [0, 1], ladder_budget_s)
        same = await queue_latency(b, queue_reps, 0, 0, "qsame")
        cross = await queue_latency(b, queue_reps, 0, 1, "qcross")
    finally:
        await b.switch.stop()
    wheel: Json = ({"skipped": "wheel_workers = 0"} if wheel_workers < 1 else
                   await _wheel(session, app, workdir / "wheel", wheel_workers, timing))
    return {"participants": participants, "workers": 2, "engines": engines,
            "idle_cpu_s_per_s": {k: round(v, 4) for k, v in b.idle.items()},
            "one_worker": one, "two_workers": two,
            "two_workers_vs_one_mixed_cpu": ratio(two["cpu_ms_per_participant_second"]["mixed"],
                                                  one["cpu_ms_per_participant_second"]["mixed"]),
            "ladder": steps, "largest_clean_room": steps["largest_clean"], "wheel": wheel,
            "queue_to_audio": {"same_worker": same, "cross_worker": cross},
            "clean": bool(one["clean"] and two["clean"] and same["clean"] and cross["clean"]),
            "seconds": round(time.monotonic() - started, 1), "switch_log": b.switch.log_findings()}
