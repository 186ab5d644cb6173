"""Media timings of `softswitch bench`: REST redirect to the first frame of new audio, and `<Say>`'s cache.

**Redirect.**  A REST call to the lab phone (`--answer auto --record FILE`) runs `<Play loop="0">` of tone
A (700 Hz) from the bench's TwiML app.  Every `interval` seconds (plus a random part of a 20 ms frame, so
the POSTs fall at random phases of the media ticks) the bench POSTs `Calls/{sid}.json` with `Url=` a
document that plays the other tone (1300 Hz), looped; the first redirect (to tone B, whose WAV is not in
the switch's audio cache yet) is reported apart as "cold".  After the call, the recording is scanned in
5 ms windows every 0.5 ms: each tone's amplitude (one DFT bin; 700 and 1300 Hz sit on each other's
spectral nulls, so the other tone does not leak in) crosses half its steady level where the new tone
starts.  That sample index becomes wall time through the recording's own clock: the phone's recorder takes
one 20 ms frame per tick of its bridge and its main loop appends what arrived to the WAV file at every
turn, so while the call is up the bench watches the file grow (a thread stats it every 0.5 ms).  Each
observation "n frames on disk at time t" bounds the tick of the first frame from above by
t - (n - 1) * 20 ms; the lowest bound within a second of each redirect (hundreds of writes at random
phases to the ticks) is that tick to about a millisecond, and taking it locally absorbs any drift of the
phone's media clock.  The coarse cross-check is the phone's own events: the recorder is attached when the
call's media starts, just before `answered`, and stops at `hangup`, so the first tick lies within 20 ms
after `answered` (less the ACK's delay) and within 20 ms after `hangup - length`.

**Say cache.**  `media.speech.Speech.synthesize` of one text: the first call runs espeak-ng, later calls
on the same instance hit its in-memory map (what a running switch sees), and calls on a fresh instance hit
the file on disk (what a restarted switch sees).
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import numpy as np
import numpy.typing as npt

from media.audio import encode, read_wav
from media.speech import Speech
from media.tones import sine
from switch.tools.bench.common import Json, TwimlApp, WebhookReceiver, summarize
from switch.tools.bench.load import hang_up, place_call, update_call
from switch.tools.bench.procs import LabPhone, SwitchUnderTest

TONES = {"a": 700.0, "b": 1300.0}
WINDOW = 40  # samples (5 ms at 8 kHz): 700 and 1300 Hz are 3 bins apart, on each other's nulls
HOP = 4  # samples (0.5 ms)
FRAME_MS = 20.0
SAY_TEXT = "Thank you for calling. Your call is important to us; please hold."


def tone_amplitudes(samples: npt.NDArray[np.int16], rate: int) -> dict[str, npt.NDArray[np.float64]]:
    """Per window (WINDOW samples, every HOP), the amplitude of each tone (one DFT bin)."""
    data = samples.astype(np.float64)
    if len(data) < WINDOW:
        return {name: np.zeros(0) for name in TONES}
    frames = np.lib.stride_tricks.sliding_window_view(data, WINDOW)[::HOP]
    n = np.arange(WINDOW)
    out: dict[str, npt.NDArray[np.float64]] = {}
    for name, hz in TONES.items():
        basis = np.exp(-2j * np.pi * hz * n / rate)
        out[name] = np.abs(frames @ basis) * 2 / WINDOW
    return out


def _crossing(amplitude: npt.NDArray[np.float64], start: int, stop: int, level: float,
              rising: bool) -> int | None:
    """First window in [start, stop) where `amplitude` is >= `level` (rising) or the last before it falls."""
    part = amplitude[max(0, start):max(0, stop)]
    if rising:
        hits = np.nonzero(part >= level)[0]
        return int(hits[0]) + max(0, start) if len(hits) else None
    below = np.nonzero(part < level)[0]
    return int(below[0]) + max(0, start) if len(below) else None


def find_changes(samples: npt.NDArray[np.int16], rate: int, posts: list[tuple[float, str]],
                 start_of: Callable[[float], float], interval: float) -> list[Json]:
    """For each redirect (wall time of the POST, new tone), where the new tone starts and the old one stops
    in the recording, as sample indexes and as milliseconds after the POST; `start_of(t)` is the wall time
    of the recording's first sample as measured around wall time t."""
    amps = tone_amplitudes(samples, rate)
    found: list[Json] = []
    for t_post, tone in posts:
        t0 = start_of(t_post)
        old = "a" if tone == "b" else "b"
        s_post = (t_post - t0) * rate
        first = int((s_post - 0.05 * rate) / HOP)
        last = int((s_post + interval * rate) / HOP)  # the next POST is at least `interval` later
        new_amp, old_amp = amps[tone], amps[old]
        steady = new_amp[max(0, last - int(0.2 * rate / HOP)):max(0, last - int(0.05 * rate / HOP))]
        before = old_amp[max(0, first - int(0.2 * rate / HOP)):max(0, first)]
        level_new = float(np.median(steady)) / 2 if len(steady) else 0.0
        level_old = float(np.median(before)) / 2 if len(before) else 0.0
        start = _crossing(new_amp, first, last, level_new, rising=True) if level_new > 300 else None
        stop = _crossing(old_amp, first, last, level_old, rising=False) if level_old > 300 else None
        record: Json = {"tone": tone, "post_t": t_post, "recording_start_t": round(t0, 6),
                        "new_tone_start_sample": None, "latency_ms": None, "old_tone_stop_ms": None}
        if start is not None:
            sample = start * HOP + WINDOW // 2
            record["new_tone_start_sample"] = sample
            record["latency_ms"] = round((t0 + sample / rate - t_post) * 1000, 3)
        if stop is not None:
            record["old_tone_stop_ms"] = round((t0 + (stop * HOP + WINDOW // 2) / rate - t_post) * 1000, 3)
        found.append(record)
    return found


WAV_HEADER = 44  # bytes before the samples in the files Python's `wave` writes
FRAME_SAMPLES = 160


class GrowthWatch:
    """Stats a growing WAV file every `period` seconds on a thread; keeps (wall time, samples) at each change."""

    def __init__(self, path: Path, period: float = 0.0005) -> None:
        self.path = path
        self.period = period
        self.seen: list[tuple[float, int]] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-wav-watch")

    def _run(self) -> None:
        last = -1
        deadline = time.monotonic() + 120  # bounded whatever happens
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                size = os.stat(self.path).st_size
            except OSError:
                size = -1
            now = time.time()
            self.polls += 1
            if size != last and size >= WAV_HEADER:
                self.seen.append((now, (size - WAV_HEADER) // 2))
                last = size
            time.sleep(self.period)

    def start(self) -> GrowthWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def first_tick(self, around: float | None = None, span: float = 1.0) -> float | None:
        """Wall time of the first frame's tick: the lowest t - (frames - 1) * 20 ms over the observations
        (within `span` seconds of `around`, when given)."""
        bounds = [t - (n / FRAME_SAMPLES - 1) * FRAME_MS / 1000 for t, n in self.seen
                  if n >= FRAME_SAMPLES and (around is None or abs(t - around) <= span)]
        return min(bounds) if bounds else None


def recording_start(answered_t: float, hangup_t: float, samples: int, rate: int,
                    watched: float | None) -> tuple[float, Json]:
    """The wall time of the recording's first sample: from the file's growth, checked against the bracket
    the phone's events give (or the bracket's midpoint, without growth observations)."""
    from_answer = answered_t
    from_hangup = hangup_t - samples / rate
    low = max(from_answer, from_hangup)
    high = min(from_answer, from_hangup) + FRAME_MS / 1000
    detail: Json = {"from_answered_event": round(from_answer, 6),
                    "from_hangup_event_minus_length": round(from_hangup, 6),
                    "event_bracket_ms": [round((low - from_answer) * 1000, 3), round((high - from_answer) * 1000, 3)],
                    "from_file_growth": None if watched is None else round(watched, 6)}
    if watched is not None:
        detail["file_growth_vs_answered_ms"] = round((watched - from_answer) * 1000, 3)
        detail["method"] = "file growth"
        return watched, detail
    detail["method"] = "event bracket midpoint"
    return (low + high) / 2, detail


async def redirect_latency(switch: SwitchUnderTest, receiver: WebhookReceiver, app: TwimlApp,
                           session: aiohttp.ClientSession, workdir: Path, redirects: int,
                           interval: float = 0.6) -> Json:
    """`redirects` REST redirects (plus one cold) of a call playing a looped tone; see the module doc."""
    rate = 8000
    for name, hz in TONES.items():
        app.files[f"/audio/tone-{name}.wav"] = encode(sine(hz, 1.0, rate), rate)
        app.documents[f"/voice/tone-{name}"] = (f'<Response><Play loop="0">{app.url(f"/audio/tone-{name}.wav")}'
                                                "</Play></Response>")
    recording = workdir / "redirect.wav"
    phone = LabPhone(["--answer", "auto", "--record", str(recording), "--exit-after-calls", "1"], workdir,
                     max_seconds=interval * (redirects + 2) + 20)
    await phone.start()
    watch = GrowthWatch(recording).start()
    posts: list[tuple[float, str, int]] = []
    try:
        form = [("To", phone.uri()), ("From", "+15550199"), ("Url", app.url("/voice/tone-a")),
                ("StatusCallback", receiver.url("/redirect"))]
        status, body, _, _ = await place_call(session, switch, form)
        if status != 201:
            raise RuntimeError(f"redirect: the call was refused: HTTP {status} {body}")
        sid = str(body["sid"])
        answered = await phone.wait_for("answered", 10.0)
        if answered is None:
            raise RuntimeError("redirect: the lab phone never answered")
        await asyncio.sleep(1.0)  # tone A is playing
        for i in range(redirects + 1):
            tone = "b" if i % 2 == 0 else "a"
            sent = time.time()
            code = await update_call(session, switch, sid, {"Url": app.url(f"/voice/tone-{tone}")})
            posts.append((sent, tone, code))
            # a random part of a frame on top, so the POSTs fall at random phases of the 20 ms media ticks
            await asyncio.sleep(interval + random.uniform(0.0, FRAME_MS / 1000))
        await hang_up(session, switch, sid)
        hangup = await phone.wait_for("hangup", 10.0)
    finally:
        watch.stop()
        await phone.stop()
    if hangup is None:
        raise RuntimeError("redirect: no hangup event from the lab phone")
    samples, wav_rate = read_wav(recording)
    t0, mapping = recording_start(float(answered["t"]), float(hangup["t"]), len(samples), wav_rate,
                                  watch.first_tick())

    def start_of(when: float) -> float:
        local = watch.first_tick(when)
        return t0 if local is None else local

    changes = find_changes(samples, wav_rate, [(t, tone) for t, tone, _ in posts], start_of, interval)
    locals_ = [c["recording_start_t"] for c in changes]
    mapping["local_minus_global_ms"] = [round((t - t0) * 1000, 3) for t in locals_]
    bracket = mapping["event_bracket_ms"]
    growth = mapping.get("file_growth_vs_answered_ms")
    mapping["growth_within_event_bracket"] = (None if growth is None
                                              else bool(bracket[0] - 2.0 <= growth <= bracket[1] + 2.0))
    mapping["file_writes_seen"] = len(watch.seen)
    mapping["stat_polls"] = watch.polls
    mapping["stat_period_ms"] = round(watch.period * 1000, 3)
    cold, warm = changes[0], changes[1:]
    latencies = [c["latency_ms"] for c in warm if c["latency_ms"] is not None]
    stops = [c["old_tone_stop_ms"] for c in warm if c["old_tone_stop_ms"] is not None]
    stats = summarize(latencies)
    return {
        "p50": stats["p50"], "p99": stats["p99"], "redirects": redirects, "detected": len(latencies),
        "post_to_new_audio_ms": stats, "post_to_old_audio_gone_ms": summarize(stops),
        "cold_first_redirect_ms": cold["latency_ms"], "http_statuses": sorted({code for _, _, code in posts}),
        "mapping_error_ms": _mapping_error(mapping, watch), "recording_start": mapping,
        "recording_seconds": round(len(samples) / wav_rate, 3), "changes": changes,
        "method": "POST Calls/{sid}.json Url=<Play loop=0> of the other tone; first sample of the new tone in "
                  "the lab phone's recording (5 ms DFT bin amplitude crossing half its steady level), mapped to "
                  "wall time by the recording start (see recording_start); latency = that time - time.time() "
                  "just before the POST",
    }


def _mapping_error(mapping: Json, watch: GrowthWatch) -> float:
    """About how far the recording's mapped start may be off.  With file growth: the stat period plus the
    expected lowest of N random-phase lags (20 ms / N, N = the writes seen within the +-1 s used per
    redirect); without: the event bracket's half-width."""
    if mapping.get("method") != "file growth" or len(watch.seen) < 2:
        low, high = mapping["event_bracket_ms"]
        return round(float(high - low) / 2, 3)
    span = watch.seen[-1][0] - watch.seen[0][0]
    writes = len(watch.seen) / span * 2.0 if span > 0 else 1.0
    return round(watch.period * 1000 + FRAME_MS / max(1.0, writes), 3)


async def say_cache(workdir: Path, iterations: int) -> Json:
    """Time `Speech.synthesize` of a cached text: cold once, then memory hits and disk hits."""
    root = workdir / "speech"
    speech = Speech(root)
    started = time.perf_counter()
    path = await speech.synthesize(SAY_TEXT)
    cold_ms = (time.perf_counter() - started) * 1000
    memory: list[float] = []
    for _ in range(iterations):
        started = time.perf_counter()
        await speech.synthesize(SAY_TEXT)
        memory.append((time.perf_counter() - started) * 1000)
    disk: list[float] = []
    for _ in range(max(1, iterations // 5)):
        fresh = Speech(root)
        started = time.perf_counter()
        await fresh.synthesize(SAY_TEXT)
        disk.append((time.perf_counter() - started) * 1000)
    hit = summarize(memory)
    return {"p50": hit["p50"], "p99": hit["p99"], "memory_hit_ms": hit, "disk_hit_ms": summarize(disk),
            "cold_synthesis_ms": round(cold_ms, 3),
            "hit_vs_cold": round(hit["p50"] / cold_ms, 6) if hit["p50"] is not None and cold_ms else None,
            "wav_bytes": path.stat().st_size, "text": SAY_TEXT,
            "method": "time.perf_counter() around `await Speech.synthesize(text)` in the bench's event loop; "
                      "memory hit = the same instance again (a running switch), disk hit = a fresh instance "
                      "(a restarted switch)"}
