"""The bench's Media Streams phase: the round trip of audio through `<Connect><Stream>`, and its cost.

The switch runs behind the edge with `workers` workers.  Its TwiML number answers `<Connect><Stream>` to a bot:
a websocket server in this process speaking Twilio's protocol.  A sipp uac calls the number N times at `rate`
calls a second with `-rtp_echo` (every RTP packet it gets goes straight back where it came from) and holds every
call until all are up and `plateau_s` more seconds have passed.

- **The two halves.**  First one call alone, whose far end is an RTP echo in this process (sipp does the SIP, the
  SDP names the echo's port): the bot sends its blips (below), the echo stamps each blip as it arrives and sends
  it straight back, and the bot stamps it again when it comes back in.  Bot -> caller's ear is echo arrival - bot
  send; caller's mouth -> bot is bot arrival - echo arrival; one clock, this process's.  Targets (issue 17): 60 ms
  and 20 + 30 ms.
- **Round trip.**  Each stream's bot sends, in real time (one 20 ms `media` message every 20 ms), silence with one
  frame of a 1 kHz tone every second.  The switch plays it to the caller (sipp), sipp echoes it, and the switch
  streams it back as inbound audio.  The bot finds the tone frame among what it receives (energy over a
  threshold) and notes the time since it sent it: bot -> caller's ear plus caller's mouth -> bot, less sipp's
  echo (microseconds).  Issue 17's targets for the two halves are 60 ms and 20 + 30 ms.
- **Frames.**  Inbound `media` messages per stream against 50 a second of the stream's life, and gaps in their
  `chunk` numbers.
- **Cost.**  CPU seconds per second of the control plane, the workers and Kamailio, at rest and with every stream
  up; per stream-second net of rest, against the same N calls held with `<Pause>` in the same run (the baseline).
- **Ladder.**  Then 2N, 4N ... streams (at twice the call rate) until a run is not clean: the most streams the
  switch carried with every call set up, no gap in any stream's chunks and every frame there (`softswitch bench`
  runs it on one worker: streams per worker).

Bounded: sipp gets `-timeout` and is killed if it overstays; the bot ends with its sockets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import aiohttp
import numpy as np
from aiohttp import web

from media.tones import rms, sine
from media.ulaw import ulaw_decode, ulaw_encode
from switch.tools.bench.common import TWIML_NUMBER, Json, TwimlApp, WebhookReceiver, idle_cpu_rates, summarize
from switch.tools.bench.concurrent import cpu_figures
from switch.tools.bench.edge_bench import process_group
from switch.tools.bench.procs import SwitchUnderTest
from switch.tools.bench.sipp import run_sipp_uac, uac_scenario
from switch.tools.bench.twiml_bench import number_entries
from switch.tools.ports import free_tcp_port

STREAM_CALLS = 20
STREAM_RATE = 10.0
PLATEAU_S = 8.0
SAMPLE_S = 4.0
IDLE_S = 2.0
FRAME_S = 0.02
BLIP_EVERY = 50  # frames: one tone frame a second
SILENT = ulaw_encode(bytes(320))
BLIP = ulaw_encode(sine(1000.0, FRAME_S, amplitude=0.5).tobytes())
STREAM_PATH = "/stream-call"
PAUSE_PATH = "/pause-call"
VOICE_PATH = "/bench-voice"  # the TwiML number's voice_url: the held document, then the streamed one


@dataclass
class StreamStats:
    """What the bot saw of one stream (`blips_sent`/`blips_back`: every blip's send and return times)."""

    started: float = 0.0
    ended: float = 0.0
    inbound: int = 0
    gaps: int = 0
    last_chunk: int = 0
    sent: dict[int, float] = field(default_factory=dict)  # blip number -> when it was sent
    round_trips_ms: list[float] = field(default_factory=list)
    loud: bool = False  # inside a received blip (one blip may span two frames)
    blips_sent: list[float] = field(default_factory=list)
    blips_back: list[float] = field(default_factory=list)


class Bot:
    """The websocket bot: Twilio's Media Streams protocol, one `StreamStats` per stream."""

    def __init__(self) -> None:
        self.port = free_tcp_port()
        self.streams: list[StreamStats] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/bot"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/bot", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        stats = StreamStats(started=time.monotonic())
        self.streams.append(stats)
        sender: asyncio.Task[None] | None = None
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            event = data.get("event")
            if event == "start" and sender is None:
                sender = asyncio.create_task(self._send(ws, data["start"]["streamSid"], stats))
            elif event == "media" and data["media"].get("track", "inbound") == "inbound":
                self._received(stats, data["media"])
            elif event == "stop":
                break
        stats.ended = time.monotonic()
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return ws

    @staticmethod
    async def _send(ws: web.WebSocketResponse, stream_sid: str, stats: StreamStats) -> None:
        start = time.monotonic()
        frame = 0
        while not ws.closed:
            blip = frame % BLIP_EVERY == BLIP_EVERY - 1
            payload = BLIP if blip else SILENT
            await ws.send_str(json.dumps({"event": "media", "streamSid": stream_sid,
                                          "media": {"payload": base64.b64encode(payload).decode()}}))
            if blip:
                stats.sent[frame // BLIP_EVERY] = time.monotonic()
                stats.blips_sent.append(stats.sent[frame // BLIP_EVERY])
            frame += 1
            await asyncio.sleep(max(0.0, start + frame * FRAME_S - time.monotonic()))

    @staticmethod
    def _received(stats: StreamStats, media: Json) -> None:
        now = time.monotonic()
        chunk = int(media.get("chunk", 0))
        if stats.inbound and chunk != stats.last_chunk + 1:
            stats.gaps += 1
        stats.last_chunk = chunk
        stats.inbound += 1
        level = rms(np.frombuffer(ulaw_decode(base64.b64decode(media["payload"])), dtype=np.int16))
        if level > 2000 and not stats.loud:
            stats.blips_back.append(now)
            # the latest blip sent before now that has no round trip yet
            pending = [n for n, t in stats.sent.items() if t <= now]
            if pending:
                blip = max(pending)
                stats.round_trips_ms.append((now - stats.sent.pop(blip)) * 1000)
                for older in [n for n in stats.sent if n < blip]:
                    stats.sent.pop(older)
        stats.loud = level > 2000


class RtpEcho(asyncio.DatagramProtocol):
    """Sends every RTP packet back where it came from at once, and stamps the first packet of each blip."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.blips: list[float] = []
        self.packets = 0
        self._loud = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.monotonic()
        if self.transport is None:
            return
        self.transport.sendto(data, addr)
        self.packets += 1
        if len(data) > 12:
            loud = rms(np.frombuffer(ulaw_decode(data[12:]), dtype=np.int16)) > 2000
            if loud and not self._loud:
                self.blips.append(now)
            self._loud = loud


def _echo_sdp(port: int) -> str:
    return f"""      v=0
      o=sipp 2000 1 IN IP4 127.0.0.1
      s=softswitch-bench-echo
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio {port} RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=ptime:20
      a=sendrecv
"""


def halves(stats: StreamStats, echo: list[float]) -> tuple[list[float], list[float]]:
    """Per blip: (echo arrival - bot send) and (bot arrival - echo arrival), in ms; a blip lost on the way (or
    found more than a second later) is left out."""
    to_ear: list[float] = []
    to_bot: list[float] = []
    for sent in stats.blips_sent:
        arrived = next((t for t in echo if sent <= t < sent + 1.0), None)
        if arrived is None:
            continue
        back = next((t for t in stats.blips_back if arrived <= t < arrived + 1.0), None)
        to_ear.append((arrived - sent) * 1000)
        if back is not None:
            to_bot.append((back - arrived) * 1000)
    return to_ear, to_bot


async def _one_call_halves(switch: SwitchUnderTest, app: TwimlApp, bot: Bot, workdir: Path,
                           seconds: float) -> Json:
    """One streamed call to the RTP echo, alone: the two halves of the round trip (module doc)."""
    loop = asyncio.get_running_loop()
    transport, echo = await loop.create_datagram_endpoint(RtpEcho, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    app.documents[VOICE_PATH] = app.documents[STREAM_PATH]
    bot.streams = []
    try:
        run = await run_sipp_uac(switch.public_target, 1, 1.0, int(seconds * 1000), workdir, "halves",
                                 service=TWIML_NUMBER,
                                 scenario_text=uac_scenario("halves", sdp=_echo_sdp(port), name="bench halves"))
        await asyncio.sleep(1.0)
    finally:
        transport.close()
    to_ear, to_bot = halves(bot.streams[0], echo.blips) if bot.streams else ([], [])
    return {"clean": run.clean and len(bot.streams) == 1, "echoed_packets": echo.packets,
            "bot_to_caller_ear_ms": summarize(to_ear), "caller_mouth_to_bot_ms": summarize(to_bot),
            "targets_ms": {"bot_to_caller_ear": 60, "caller_mouth_to_bot": 20 + 30}}


def _documents(app: TwimlApp, bot: Bot) -> None:
    app.documents[STREAM_PATH] = (f'<Response><Connect><Stream url="{bot.url}" track="inbound_track"/></Connect>'
                                  "</Response>")
    app.documents[PAUSE_PATH] = '<Response><Pause length="600"/></Response>'


async def _held_calls(switch: SwitchUnderTest, app: TwimlApp, pids: dict[str, int], path: str, calls: int,
                      rate: float, workdir: Path, tag: str, plateau_s: float, sample_s: float) -> Json:
    """N calls to the number whose app answers with `path`, all up for `plateau_s`: CPU over `sample_s`."""
    app.documents[VOICE_PATH] = app.documents[path]
    ramp_s = calls / rate
    hold_ms = int(1000 * (ramp_s + plateau_s))
    caller = asyncio.create_task(run_sipp_uac(
        switch.public_target, calls, rate, hold_ms, workdir, tag, service=TWIML_NUMBER,
        scenario_text=uac_scenario(tag, name=f"softswitch bench {tag}"), extra_args=("-rtp_echo",)))
    await asyncio.sleep(ramp_s + min(2.0, plateau_s / 3))
    loaded = await idle_cpu_rates(pids, sample_s)
    run = await caller
    return {"sipp": run.as_json(), "clean": run.clean, "hold_ms": hold_ms, "cpu": loaded}



async def streams_phase(session: aiohttp.ClientSession, receiver: WebhookReceiver, app: TwimlApp, workdir: Path,
                        workers: int, calls: int = STREAM_CALLS, rate: float = STREAM_RATE,
                        plateau_s: float = PLATEAU_S, sample_s: float = SAMPLE_S, ladder: int = 0) -> Json:
    """Start the switch behind the edge; N held calls as the baseline, then N streamed calls (module doc); then,
    with `ladder` > 0, up to `ladder` more runs of twice as many streams each, until one is not clean: the most
    streams this switch carried cleanly (`workers` workers)."""
    workdir.mkdir(parents=True, exist_ok=True)
    bot = Bot()
    await bot.start()
    _documents(app, bot)
    entries = number_entries(app, receiver, receiver.url("/inbound"))
    for entry in entries:
        if entry.get("number") == TWIML_NUMBER:
            entry["voice_url"] = app.url(VOICE_PATH)
    switch = SwitchUnderTest(workdir, workers, entries, edge=True)
    await switch.start(session)
    try:
        health = await switch.healthz(session)
        pids = {**switch.pids(), **process_group(int(health.get("edge", {}).get("pid") or 0))}
        await asyncio.sleep(0.5)
        idle = await idle_cpu_rates(pids, IDLE_S)
        alone = await _one_call_halves(switch, app, bot, workdir, plateau_s + 2)
        held = await _held_calls(switch, app, pids, PAUSE_PATH, calls, rate, workdir, "held", plateau_s, sample_s)
        bot.streams = []
        streamed = await _held_calls(switch, app, pids, STREAM_PATH, calls, rate, workdir, "streamed", plateau_s,
                                     sample_s)
        await asyncio.sleep(1.0)  # the last stops reach the bot
        report = _report(bot.streams, calls, idle, held, streamed)
        steps: list[Json] = []
        count, clean = calls, bool(report["clean"])
        for _ in range(ladder if clean else 0):
            count *= 2
            bot.streams = []
            more = await _held_calls(switch, app, pids, STREAM_PATH, count, 2 * rate, workdir, f"streamed-{count}",
                                     plateau_s, sample_s)
            await asyncio.sleep(1.0)
            step = _report(bot.streams, count, idle, held, more, held_calls=calls)
            steps.append({k: step[k] for k in ("calls", "clean", "round_trip_ms", "inbound_frames_vs_expected",
                                               "chunk_gaps", "cpu_ms_per_call_second")})
            if not step["clean"]:
                break
    finally:
        await switch.stop()
        await bot.stop()
    report["one_call"] = alone
    report["ladder"] = steps
    report["workers"] = workers
    report["most_clean_streams"] = max([calls if report["clean"] else 0,
                                        *(s["calls"] for s in steps if s["clean"])])
    return report


def _total(cpu: dict[str, float]) -> float:
    return sum(cpu.values())


def _report(streams: list[StreamStats], calls: int, idle: dict[str, float], held: Json, streamed: Json,
            held_calls: int | None = None) -> Json:
    """The figures of one streamed run of `calls` calls, against the held run of `held_calls` (default: as many)."""
    trips = [t for s in streams for t in s.round_trips_ms]
    expected = [max(1, round((s.ended - s.started) / FRAME_S)) for s in streams if s.ended]
    received = [s.inbound for s in streams if s.ended]
    rest = _total(idle)
    held_cost = (_total(held["cpu"]) - rest) / (held_calls or calls)
    stream_cost = (_total(streamed["cpu"]) - rest) / calls
    frames_ratio = [round(r / e, 4) for r, e in zip(received, expected, strict=True)]
    clean = (bool(held["clean"]) and bool(streamed["clean"]) and len(streams) == calls
             and all(s.gaps == 0 for s in streams) and all(r >= 0.95 for r in frames_ratio))
    return {
        "calls": calls, "clean": clean, "streams_seen": len(streams),
        "round_trip_ms": summarize(trips), "round_trips": len(trips),
        "round_trip_target_ms": 60 + 20 + 30,
        "inbound_frames_vs_expected": summarize(frames_ratio), "chunk_gaps": sum(s.gaps for s in streams),
        "cpu_s_per_s": {"idle": cpu_figures(idle, idle)["workers"] | {"total": round(rest, 4)},
                        "held": cpu_figures(idle, held["cpu"]), "streamed": cpu_figures(idle, streamed["cpu"])},
        "cpu_ms_per_call_second": {"held_baseline": round(held_cost * 1000, 3),
                                   "streamed": round(stream_cost * 1000, 3),
                                   "stream_only": round((stream_cost - held_cost) * 1000, 3)},
        "streamed_vs_held_cpu": round(stream_cost / held_cost, 3) if held_cost > 0 else None,
        "sipp": {"held": held["sipp"], "streamed": streamed["sipp"]},
    }
