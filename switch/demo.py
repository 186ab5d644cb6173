"""`softswitch demo` (what `make demo` runs): one whole customer call on this machine, printed as a timeline.

Nothing outside the project is needed: no trunk, no account, no internet.  In one process the demo starts

- the switch on embedded defaults: a temporary data dir (SQLite), one media worker, generated credentials;
- the customer's TwiML web app (`switch.demo_app`) on 127.0.0.1;

and two lab phones as subprocesses (`switch.demo_phone`): phone A, "the customer", plays a 600 Hz tone and
presses 1; phone B, "the agent", plays 1000 Hz and hangs up after three seconds of talk.

The script: the official `twilio` client asks the switch (POST Calls.json) to call phone A with all four
StatusCallbackEvents.  The app greets A and <Gather>s one digit; A presses 1; the app <Dial>s phone B with
record="record-from-answer-dual" and the agent leg's own status callbacks.  When B hangs up, the <Dial>
action puts A on hold music (<Play loop="0">), and the client moves A off it with a REST redirect
(POST Calls/{sid}.json Url=/goodbye) to a goodbye <Say> and <Hangup>.

Every event is printed as it happens (ms since start, lane, what), then the checks (callbacks complete and in
order with valid signatures, TwiML fetched in order, the digit, the redirect, each recording channel's
owner by FFT), a summary of the calls, and two pictures: the timeline and the recording's waveforms.  Any
failed check, error or timeout ends the demo with status 1 and the reason.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import shutil
import socket
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt

from media.audio import read_wav
from media.tones import band_energy_ratio, dominant_frequency, rms
from switch.app import Switch, start_switch
from switch.config import Config
from switch.demo_app import CALLBACK_PATHS, TWIML_PATHS, AppRequest, DemoApp
from switch.demo_phone import DemoPhone, PhoneEvent, PhoneFailure
from switch.demo_plot import Mark, Span, timeline_png, waveforms_png
from switch.store import CallEvent

TONE_A = 600.0  # the customer's phone plays this into the call...
TONE_B = 1000.0  # ...and the agent's this, so each recording channel can be told apart by FFT
DIGIT_AFTER = 2.2  # seconds after answering that phone A presses 1
AGENT_ANSWER_AFTER = 1.0  # phone B rings this long before answering
AGENT_TALK = 3.0  # and hangs up this long after answering
HOLD_SECONDS = 2.5  # hold music before the REST redirect
CALL_BUDGET = 24.0  # seconds for the call itself; start-up, pictures and shutdown share the rest of 30
STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
STATUSES = ["initiated", "ringing", "in-progress", "completed"]
HEADER = ("softswitch demo: the switch calls lab phone A (the customer) for a small TwiML app, which greets A,\n"
          "gathers a digit, connects A to lab phone B (the agent) with a two-channel recording, puts A on hold\n"
          "music, and a REST redirect ends with a goodbye -- all on this machine.")
LEGEND = ("legend: ms since start | lane | event.  REST: twilio client -> switch.  SIP: switch <-> phones, from\n"
          "the switch's call events (A = caller leg to phone A, B = agent leg to phone B).  callback: status\n"
          "callbacks as the app receives them (sig ok = X-Twilio-Signature valid per RequestValidator).\n"
          "TwiML: documents the switch fetched from the app.  media: digits, recording, hold music.")


class DemoFailure(Exception):
    """Something the demo checks did not happen as it should; the message says what."""


def _short(sid: str | None) -> str:
    return f"{sid[:10]}.." if sid else "-"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def describe_twiml(document: str) -> str:
    """`<Response><Gather ..><Say>..</Say></Gather><Say/></Response>` -> `Gather(Say), Say`."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError:
        return "(not XML)"

    def one(el: ET.Element) -> str:
        attrs = {k: v for k, v in el.attrib.items() if k in ("loop", "record", "numDigits")}
        inner = ", ".join(one(child) for child in el)
        text = el.tag + "".join(f" {k}={v}" for k, v in attrs.items())
        return f"{text}({inner})" if inner else text

    return ", ".join(one(child) for child in root) or "(empty)"


class Timeline:
    """Events with their times: printed in time order a moment after they happen, kept for the picture."""

    HOLD = 0.2  # seconds a line waits, so that events seen a little late still print in order

    def __init__(self) -> None:
        self.t0 = time.time()
        self.marks: list[Mark] = []
        self.spans: list[Span] = []
        self._pending: list[tuple[float, int, str]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return time.time() - self.t0

    def add(self, lane: str, text: str, label: str | None = None, leg: str = "", at: float | None = None) -> None:
        """An event in `lane` (at wall-clock time `at`, default now); `label` is its short name in the picture."""
        t = (time.time() if at is None else at) - self.t0
        if label is not None:
            self.marks.append(Mark(t, lane, label, leg))
        heapq.heappush(self._pending, (t, next(self._seq), f"{t * 1000:7.0f} ms  {lane:<8}  {text}"))

    def span(self, lane: str, start: float | None, end: float | None, label: str, leg: str = "") -> None:
        if start is not None and end is not None and end > start:
            self.spans.append(Span(start - self.t0, end - self.t0, lane, label, leg))

    def flush(self, everything: bool = False) -> None:
        limit = float("inf") if everything else self.now() - self.HOLD
        while self._pending and self._pending[0][0] <= limit:
            print(heapq.heappop(self._pending)[2], flush=True)


class SipWatcher:
    """Polls the switch's call events (`store.events`) of every call it has seen live, as timeline lines."""

    def __init__(self, switch: Switch, timeline: Timeline) -> None:
        self.switch = switch
        self.timeline = timeline
        self.legs: dict[str, str] = {}  # call SID -> "A" (the REST call to phone A) or "B" (the <Dial> leg)
        self._seen: dict[str, int] = {}
        self._bye_sent: set[str] = set()

    def poll(self) -> None:
        for sid, call in list(self.switch.calls.live.items()):
            if sid not in self.legs:
                self.legs[sid] = "B" if call.parent_call_sid else "A"
                self._seen[sid] = 0
        for sid in self.legs:
            events = self.switch.store.events(sid)
            for event in events[self._seen[sid]:]:
                self._show(sid, event)
            self._seen[sid] = len(events)

    def _show(self, sid: str, event: CallEvent) -> None:
        leg = self.legs[sid]
        at = event.at.timestamp()
        add = self.timeline.add
        detail = event.detail
        if event.kind == "sip":
            if detail == "INVITE sent":
                add("SIP", f"INVITE        switch -> {leg}", f"INVITE →{leg}", leg, at)
            elif detail.startswith("hangup requested"):
                self._bye_sent.add(sid)
                add("SIP", f"BYE           switch -> {leg}  (the switch hangs up)", f"BYE →{leg}", leg, at)
            elif detail.startswith("ended"):
                code = event.sip_code or 0
                if sid in self._bye_sent:
                    add("SIP", f"{code} OK        {leg} -> switch  (to the switch's BYE: leg over)",
                        f"{code} ←{leg}", leg, at)
                else:
                    add("SIP", f"BYE           {leg} -> switch  (phone {leg} hangs up; switch answers 200)",
                        f"BYE ←{leg}", leg, at)
            elif event.sip_code is not None:
                note = "  (answered; switch ACKs)" if event.sip_code == 200 else ""
                add("SIP", f"{detail:<13} {leg} -> switch{note}", f"{event.sip_code} ←{leg}", leg, at)
            else:
                add("SIP", f"{detail}  ({leg})", detail, leg, at)
        elif event.kind == "recording":
            rec_sid, _, rest = detail.partition(" ")
            add("media", f"recording {_short(rec_sid)} {rest}", f"recording {rest.split(' (')[0]}", "", at)
        elif event.kind == "twiml":
            path = detail.rsplit("/", 1)[-1] if "http" in detail else detail
            add("TwiML", f"{detail.replace(self._app_base(detail), '')}  (leg {leg}: the switch drops the "
                         "current verb)", f"redirect → /{path}", leg, at)
        elif event.kind == "error":
            add("SIP", f"error on leg {leg}: {detail}", "error", leg, at)

    @staticmethod
    def _app_base(text: str) -> str:
        start = text.find("http://")
        if start < 0:
            return "\0"
        end = text.find("/", start + len("http://"))
        return text[start:end] if end > 0 else text[start:]


@dataclass
class Demo:
    """State of one run: what was started, and what it saw."""

    timeline: Timeline = field(default_factory=Timeline)
    out: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="softswitch-demo-")))
    switch: Switch | None = None
    app: DemoApp | None = None
    phones: dict[str, DemoPhone] = field(default_factory=dict)
    sip: SipWatcher | None = None
    parent: str = ""
    redirect_at: float | None = None
    checks: list[tuple[bool, str]] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.out / "data"

    def leg(self, sid: str) -> str:
        if self.sip is not None and sid in self.sip.legs:
            return self.sip.legs[sid]
        return "A" if sid == self.parent else "B"

    # -- what the app and the phones report -----------------------------------------------------------
    def on_request(self, req: AppRequest) -> None:
        sig = "sig ok" if req.signature_valid else ("unsigned" if req.signature is None else "sig INVALID")
        leg = self.leg(req.call_sid) if req.call_sid else ""
        p = req.params
        if req.path in ("/status", "/agent-status"):
            status = p.get("CallStatus", "?")
            self.timeline.add(
                "callback", f"{req.path:<14} {status:<12} leg {leg}  CallSid={_short(p.get('CallSid'))} "
                            f"ParentCallSid={_short(p.get('ParentCallSid'))} SequenceNumber={p.get('SequenceNumber')}"
                            f"  {sig}", f"{status}", leg, req.t)
        elif req.path == "/recording-status":
            status = p.get("RecordingStatus", "?")
            self.timeline.add(
                "callback", f"{req.path:<14} {status:<12} RecordingSid={_short(p.get('RecordingSid'))} "
                            f"channels={p.get('RecordingChannels')} source={p.get('RecordingSource')}  {sig}",
                f"recording {status}", "", req.t)
        elif req.path in TWIML_PATHS:
            extra = {"/gathered": f" Digits={p.get('Digits')}",
                     "/dialed": f" DialCallStatus={p.get('DialCallStatus')} "
                                f"DialCallDuration={p.get('DialCallDuration')} "
                                f"RecordingSid={_short(p.get('RecordingSid'))}"}.get(req.path, "")
            self.timeline.add("TwiML", f"{req.method} {req.path:<10} leg {leg}{extra}  {sig}  -> "
                                       f"{describe_twiml(req.response)}", req.path, leg, req.t)
        elif req.path == "/hold.wav":
            self.timeline.add("media", f"hold music: the switch fetched {req.method} /hold.wav and loops it "
                                       f"to A", "hold music", "A", req.t)
        else:
            self.timeline.add("callback", f"{req.method} {req.path} (unexpected)  {sig}", req.path, "", req.t)

    def on_phone(self, phone: DemoPhone, event: PhoneEvent) -> None:
        name = event.get("event")
        at = float(event.get("t", time.time()))
        if name == "dtmf_sent":
            self.timeline.add("media", f"phone {phone.name} presses {event.get('digits')} "
                                       f"({event.get('method', '').upper()} DTMF)",
                              f"digit {event.get('digits')}", phone.name, at)
        elif name == "dtmf":
            self.timeline.add("media", f"phone {phone.name} hears digit {event.get('digit')}",
                              f"heard {event.get('digit')}", phone.name, at)
        elif name == "error":
            self.timeline.add("media", f"phone {phone.name} error: {event.get('message')}", "phone error",
                              phone.name, at)

    # -- checks -----------------------------------------------------------------------------------
    def check(self, ok: bool, text: str) -> bool:
        self.checks.append((ok, text))
        return ok


async def _ticker(demo: Demo) -> None:
    """Polls the switch's SIP events and prints what is due, every 40 ms, until cancelled."""
    while True:
        if demo.sip is not None:
            demo.sip.poll()
        demo.timeline.flush()
        await asyncio.sleep(0.04)


def _requests(app: DemoApp, path: str, sid: str | None = None) -> list[AppRequest]:
    return [r for r in app.requests if r.path == path and (sid is None or r.call_sid == sid)]


async def _wait(app: DemoApp, what: str, timeout: float, predicate: Callable[[list[AppRequest]], bool]) -> None:
    try:
        await app.wait_for(predicate, timeout, what)
    except TimeoutError as exc:
        raise DemoFailure(str(exc)) from None


async def _run_call(demo: Demo, client: Any) -> None:
    """Place the call and drive it to its end; DemoFailure says which step did not come."""
    assert demo.app is not None
    app, tl = demo.app, demo.timeline
    phone_a = demo.phones["A"]
    call = await asyncio.to_thread(
        client.calls.create, to=phone_a.uri("customer"), from_="+15550100", url=app.url("/voice"),
        status_callback=app.url("/status"), status_callback_event=STATUS_EVENTS)
    demo.parent = str(call.sid)
    tl.add("REST", f"POST Calls.json  To=sip:customer@{phone_a.sip} Url=/voice StatusCallbackEvent="
                   f"{'+'.join(STATUS_EVENTS)}  -> 201 {call.sid} ({call.status})", "create call", "A")
    parent = demo.parent
    await _wait(app, "the call answered (/voice fetched)", 8, lambda rs: any(
        r.path == "/voice" and r.call_sid == parent for r in rs))
    await _wait(app, "phone A's digit (/gathered)", 10, lambda rs: any(
        r.path == "/gathered" and r.call_sid == parent for r in rs))
    await _wait(app, "the agent answering (/agent-status in-progress)", 10, lambda rs: any(
        r.path == "/agent-status" and r.params.get("CallStatus") == "in-progress" for r in rs))
    await _wait(app, "the <Dial> action after the agent hung up (/dialed)", AGENT_TALK + 8, lambda rs: any(
        r.path == "/dialed" and r.call_sid == parent for r in rs))
    await asyncio.sleep(HOLD_SECONDS)
    demo.redirect_at = time.time()
    updated = await asyncio.to_thread(client.calls(parent).update, url=app.url("/goodbye"), method="POST")
    tl.add("REST", f"POST Calls/{_short(parent)}.json  Url=/goodbye  -> 200 ({updated.status}): the app "
                   "moves the caller off hold", "redirect", "A", demo.redirect_at)
    await _wait(app, "the caller's completed callback", 10, lambda rs: any(
        r.path == "/status" and r.call_sid == parent and r.params.get("CallStatus") == "completed" for r in rs))
    try:
        await asyncio.gather(*(phone.wait_for("hangup", 5) for phone in demo.phones.values()))
    except PhoneFailure as exc:
        raise DemoFailure(str(exc)) from None


def _check_callbacks(demo: Demo, path: str, sid: str, parent: str | None, who: str) -> None:
    assert demo.app is not None
    hooks = _requests(demo.app, path, sid)
    statuses = [h.params.get("CallStatus") for h in hooks]
    seqs = [h.params.get("SequenceNumber") for h in hooks]
    parents = {h.params.get("ParentCallSid") for h in hooks}
    demo.check(statuses == STATUSES and seqs == ["0", "1", "2", "3"],
               f"{who} callbacks {', '.join(str(s) for s in statuses)} with SequenceNumber {', '.join(map(str, seqs))}"
               f" (expected {', '.join(STATUSES)} with 0, 1, 2, 3)")
    demo.check(parents == {parent}, f"{who} callbacks carry ParentCallSid {', '.join(map(str, parents))} "
                                    f"(expected {parent or 'none'})")


def _first_t(reqs: list[AppRequest]) -> float:
    return reqs[0].t if reqs else float("inf")


def _check_flow(demo: Demo, child: str | None) -> None:
    """The whole conversation, as the app saw it."""
    assert demo.app is not None
    app, parent = demo.app, demo.parent
    _check_callbacks(demo, "/status", parent, None, "caller leg (A)")
    if demo.check(child is not None, f"the <Dial> created the agent leg {child or '(none)'}") and child:
        _check_callbacks(demo, "/agent-status", child, parent, "agent leg (B)")
    fetched = [r.path for r in app.requests if r.path in TWIML_PATHS and r.call_sid == parent]
    demo.check(fetched == list(TWIML_PATHS), f"TwiML fetched in order: {' '.join(fetched)}")
    gathered = _requests(app, "/gathered", parent)
    digits = gathered[0].params.get("Digits") if gathered else None
    demo.check(digits == "1", f"the digit phone A pressed reached the app as Digits={digits}")
    dialed = _requests(app, "/dialed", parent)
    status = dialed[0].params.get("DialCallStatus") if dialed else None
    demo.check(status == "completed", f"the <Dial> action says DialCallStatus={status}")
    child_hooks = _requests(app, "/agent-status", child) if child else []
    in_order = (_first_t(gathered) < _first_t(child_hooks) <= child_hooks[-1].t < _first_t(dialed)
                < (demo.redirect_at or 0) < _first_t(_requests(app, "/goodbye", parent))
                < _first_t([r for r in _requests(app, "/status", parent)
                            if r.params.get("CallStatus") == "completed"])) if child_hooks else False
    demo.check(in_order, "in order: digit -> agent leg's callbacks -> <Dial> action -> REST redirect -> "
                         "goodbye -> caller completed")
    signed = [r for r in app.requests if r.path in (*CALLBACK_PATHS, *TWIML_PATHS)]
    bad = [f"{r.path} ({r.params.get('CallStatus') or r.params.get('RecordingStatus') or ''})"
           for r in signed if not r.signature_valid]
    demo.check(not bad, f"{len(signed) - len(bad)} of {len(signed)} signed requests to the app have a valid "
                        f"X-Twilio-Signature" + (f"; INVALID: {', '.join(bad)}" if bad else ""))


def _print_calls(demo: Demo, calls: list[Any]) -> str | None:
    """The summary table; returns the child's SID."""
    print("\ncalls (GET Calls.json):")
    print(f"  {'sid':<34}  {'parent':<12}  {'direction':<13}  {'to':<32}  {'status':<10}  duration")
    child = None
    for c in sorted(calls, key=lambda c: (c.parent_call_sid is not None, c.date_created)):
        print(f"  {c.sid:<34}  {_short(c.parent_call_sid):<12}  {c.direction:<13}  {c.to:<32}  "
              f"{c.status:<10}  {c.duration} s")
        if c.parent_call_sid == demo.parent:
            child = str(c.sid)
    parent = next((c for c in calls if c.sid == demo.parent), None)
    demo.check(parent is not None and parent.status == "completed",
               f"the caller leg {demo.parent} ended {parent.status if parent else 'missing'}")
    kids = [c for c in calls if c.parent_call_sid == demo.parent]
    demo.check(len(kids) == 1 and kids[0].status == "completed",
               f"one agent leg, ended {', '.join(c.status for c in kids) or 'missing'}")
    return child


def _channel_shares(channel: npt.NDArray[np.int16]) -> tuple[float, float, float]:
    """(dominant Hz, share of TONE_A, share of TONE_B) over the channel's audible 20 ms frames."""
    frames = channel[: len(channel) // 160 * 160].reshape(-1, 160)
    loud = frames[np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) > 300].reshape(-1)
    if loud.size < 800:
        return 0.0, 0.0, 0.0
    return (dominant_frequency(loud, 8000), band_energy_ratio(loud, 8000, TONE_A),
            band_energy_ratio(loud, 8000, TONE_B))


async def _recording(demo: Demo, client: Any) -> Path | None:
    """Find the <Dial>'s recording over REST, download it, say whose voice is on which channel, draw it."""
    assert demo.switch is not None
    recs = await asyncio.to_thread(client.recordings.list, call_sid=demo.parent)
    demo.timeline.add("REST", f"GET Recordings.json?CallSid={_short(demo.parent)}  -> {len(recs)} recording(s)",
                      "list recordings")
    done = [r for r in recs if r.status == "completed"]
    if not done:
        demo.timeline.flush(everything=True)
        print("\nrecording: not available yet (no completed recording of the call; "
              f"{', '.join(f'{r.sid} {r.status}' for r in recs) or 'none made'})")
        return await _phones_heard(demo)
    rec = done[0]
    url = f"{demo.switch.base_url}{rec.uri.removesuffix('.json')}.wav"
    creds = demo.switch.credentials
    async with aiohttp.ClientSession(auth=aiohttp.BasicAuth(creds.account_sid, creds.auth_token)) as session, \
            session.get(url) as resp:
        body = await resp.read()
        demo.timeline.add("REST", f"GET Recordings/{_short(rec.sid)}.wav  -> {resp.status} ({len(body)} bytes)",
                          "get recording")
    if not demo.check(resp.status == 200, f"recording media downloads (HTTP {resp.status})"):
        return None
    wav = demo.out / f"{rec.sid}.wav"
    wav.write_bytes(body)
    samples, rate = read_wav(wav)
    demo.timeline.flush(everything=True)
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    print(f"\nrecording {rec.sid} (source {rec.source}, {channels} channel(s), {samples.shape[0] / rate:.1f} s):"
          f"\n  {wav}")
    if not demo.check(channels == 2 and rate == 8000, f"the recording is dual-channel 8 kHz "
                                                      f"({channels} channel(s), {rate} Hz)"):
        return None
    owners = [("the caller, phone A", TONE_A), ("the agent, phone B", TONE_B)]
    dominant: list[float] = []
    for ch, (who, tone) in enumerate(owners):
        peak, share_a, share_b = _channel_shares(samples[:, ch])
        dominant.append(peak)
        mine, theirs = (share_a, share_b) if tone == TONE_A else (share_b, share_a)
        verdict = "ok" if abs(peak - tone) < 15 and mine > 0.5 and theirs < 0.2 else "WRONG"
        print(f"  channel {ch + 1}: {peak:6.0f} Hz dominates ({mine:.0%} of the energy at {tone:.0f} Hz, "
              f"{theirs:.0%} at the other phone's tone) -> {who}  [{verdict}]")
        demo.check(verdict == "ok", f"recording channel {ch + 1} is {who} ({tone:.0f} Hz) by FFT")
    png = wav.with_suffix(".png")
    await asyncio.to_thread(
        waveforms_png, png, samples, rate,
        [f"channel 1: the caller (phone A, plays {TONE_A:.0f} Hz)",
         f"channel 2: the agent (phone B, plays {TONE_B:.0f} Hz)"], dominant,
        f"{rec.sid}: <Dial record=\"record-from-answer-dual\">, {samples.shape[0] / rate:.1f} s from the "
        "agent's answer to the agent's hang-up")
    return png


async def _phones_heard(demo: Demo) -> Path | None:
    """Without the switch's recording: draw what each phone heard instead (their own --record files)."""
    heard = [demo.data / "phone-a-heard.wav", demo.data / "phone-b-heard.wav"]
    if not all(p.is_file() for p in heard):
        return None
    legs = [read_wav(p)[0] for p in heard]
    length = max(len(x) for x in legs)
    samples = np.stack([np.pad(x, (0, length - len(x))) for x in legs], axis=1).astype(np.int16)
    dominant = [_channel_shares(samples[:, ch])[0] if rms(samples[:, ch]) > 0 else 0.0 for ch in (0, 1)]
    png = demo.out / "phones-heard.png"
    await asyncio.to_thread(
        waveforms_png, png, samples, 8000, ["what phone A (the caller) heard", "what phone B (the agent) heard"],
        dominant, "no switch recording yet: each lab phone's own recording of what it heard")
    print(f"  showing what the phones heard instead: {png}")
    return png


def _spans(demo: Demo) -> None:
    """Bars for the picture: each leg's talk time, and the stretches of the conversation."""
    assert demo.switch is not None and demo.app is not None and demo.sip is not None
    tl, app, parent = demo.timeline, demo.app, demo.parent
    for sid, leg in demo.sip.legs.items():
        call = demo.switch.store.get_call(sid)
        if call is not None and call.answer_time is not None and call.end_time is not None:
            tl.span("SIP", call.answer_time.timestamp(), call.end_time.timestamp(),
                    f"leg {leg} talking", leg)
    first = {path: _first_t(_requests(app, path, parent)) for path in TWIML_PATHS}
    child_up = [r.t for r in app.requests if r.path == "/agent-status" and r.params.get("CallStatus") in
                ("in-progress", "completed")]
    ended = demo.switch.store.get_call(parent)
    end = ended.end_time.timestamp() if ended is not None and ended.end_time is not None else None
    tl.span("media", first["/voice"], first["/gathered"], "greeting + <Gather>", "A")
    if len(child_up) == 2:
        tl.span("media", child_up[0], child_up[1], "A ↔ B bridged, recorded")
    tl.span("media", first["/dialed"], demo.redirect_at, "hold music", "A")
    tl.span("media", first["/goodbye"], end, "goodbye <Say>", "A")


async def _demo(demo: Demo) -> int:
    from twilio.rest import Client

    tl = demo.timeline
    if shutil.which("espeak-ng") is None:
        raise DemoFailure("espeak-ng is missing (the app's <Say>); run `make demo` (it installs it) or "
                          "`apt-get install espeak-ng`")
    print(HEADER)
    print(LEGEND + "\n", flush=True)
    config = Config(http_port=_free_tcp_port(), sip_port=_free_udp_port(), data_dir=demo.data, workers=1)
    ticker = asyncio.get_running_loop().create_task(_ticker(demo))
    demo.tasks.append(ticker)
    switch_up, phone_a, phone_b = await asyncio.gather(
        start_switch(config),
        DemoPhone.start("A", ["--answer", "auto", "--tone", f"{TONE_A:g}", "--dtmf", "1",
                              "--dtmf-after", f"{DIGIT_AFTER:g}", "--record", str(demo.data / "phone-a-heard.wav"),
                              "--exit-after-calls", "1"], demo.on_phone),
        DemoPhone.start("B", ["--answer", "auto", "--answer-after", f"{AGENT_ANSWER_AFTER:g}",
                              "--tone", f"{TONE_B:g}", "--hangup-after", f"{AGENT_TALK:g}",
                              "--record", str(demo.data / "phone-b-heard.wav"), "--exit-after-calls", "1"],
                        demo.on_phone),
        return_exceptions=True)
    for name, started in (("switch", switch_up), ("phone A", phone_a), ("phone B", phone_b)):
        if isinstance(started, Switch):
            demo.switch = started
        elif isinstance(started, DemoPhone):
            demo.phones[started.name] = started
        elif isinstance(started, BaseException):
            raise DemoFailure(f"{name} did not start: {started}")
    switch = demo.switch
    assert switch is not None
    demo.sip = SipWatcher(switch, tl)
    demo.app = await DemoApp(switch.credentials.auth_token, demo.phones["B"].uri("agent"), demo.on_request).start()
    creds = switch.credentials
    tl.add("setup", f"switch: REST {switch.base_url}  SIP 127.0.0.1:{config.sip_port}  1 worker  "
                    f"data {demo.data}")
    tl.add("setup", f"switch: generated account {creds.account_sid} (auth token in credentials.json)")
    tl.add("setup", f"app:    TwiML app on {demo.app.url('/')} (/voice /gathered /dialed /goodbye, callbacks)")
    tl.add("setup", f"phones: A (customer) sip:customer@{demo.phones['A'].sip} plays {TONE_A:g} Hz, presses 1; "
                    f"B (agent) sip:agent@{demo.phones['B'].sip} plays {TONE_B:g} Hz")
    client = Client(creds.account_sid, creds.auth_token)
    client.api.base_url = switch.base_url
    try:
        await asyncio.wait_for(_run_call(demo, client), CALL_BUDGET)
    except TimeoutError:
        raise DemoFailure(f"the call did not finish within {CALL_BUDGET:g} s") from None
    calls = await asyncio.to_thread(client.calls.list, limit=20)
    tl.add("REST", f"GET Calls.json  -> {len(calls)} calls", "list calls")
    await asyncio.sleep(Timeline.HOLD + 0.1)  # the last SIP events
    demo.sip.poll()
    tl.flush(everything=True)
    child = _print_calls(demo, calls)
    _check_flow(demo, child)
    recording_png = await _recording(demo, client)
    if recording_png is None:
        demo.check(False, "the recording picture was drawn")
    _spans(demo)
    timeline = demo.out / "timeline.png"
    tl.flush(everything=True)
    await asyncio.to_thread(
        timeline_png, timeline, tl.marks, tl.spans,
        f"softswitch demo: caller leg A ({_short(demo.parent)}) to phone A, agent leg B ({_short(child)}) "
        "to phone B, with a <Dial> recording, hold music and a REST redirect")
    print("\npictures:")
    print(f"  timeline   {timeline}")
    if recording_png is not None:
        print(f"  recording  {recording_png}")
    print("\nchecks:")
    for ok, text in demo.checks:
        print(f"  {'ok  ' if ok else 'FAIL'}  {text}")
    failed = [text for ok, text in demo.checks if not ok]
    if failed:
        raise DemoFailure("; ".join(failed))
    print(f"\nsoftswitch demo: OK in {tl.now():.1f} s (pictures, the recording and phone logs stay in {demo.out})")
    return 0


async def _shutdown(demo: Demo) -> None:
    for task in demo.tasks:
        task.cancel()
    await asyncio.gather(*(phone.stop() for phone in demo.phones.values()), return_exceptions=True)
    if demo.switch is not None:
        await demo.switch.stop()
    if demo.app is not None:
        await demo.app.stop()
    shutil.rmtree(demo.data, ignore_errors=True)


async def _main() -> int:
    demo = Demo()
    try:
        return await _demo(demo)
    except (DemoFailure, PhoneFailure) as exc:
        demo.timeline.flush(everything=True)
        print(f"softswitch demo: FAILED: {exc}", flush=True)
        if not isinstance(exc, PhoneFailure):
            for phone in demo.phones.values():
                print(phone.describe(), flush=True)
        return 1
    finally:
        await _shutdown(demo)


def run_demo() -> int:
    # The timeline is the demo's output; library chatter (twilio's request dumps, INFO logs) would bury it.
    logging.getLogger().setLevel(logging.WARNING)
    started = time.monotonic()
    try:
        return asyncio.run(asyncio.wait_for(_main(), 30))
    except TimeoutError:
        print(f"softswitch demo: FAILED: did not finish in 30 s ({time.monotonic() - started:.0f} s)", flush=True)
        return 1
