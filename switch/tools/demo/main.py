"""`softswitch demo` (what `make demo` runs): one whole customer call on this machine, printed as a timeline.

Nothing outside the project is needed: no trunk, no account, no internet.  In one process the demo starts

- the switch on embedded defaults: a temporary data dir (SQLite), one media worker, generated credentials;
- the customer's TwiML web app (`switch.tools.demo.app`) on 127.0.0.1;

and two lab phones as subprocesses (`switch.tools.demo.phone`): phone A, "the customer", plays a 600 Hz tone and
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
import logging
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt

from media.audio import read_wav, write_wav
from media.tones import band_energy_ratio, dominant_frequency, sine
from switch.app import Switch, start_switch
from switch.core.config import Config, EdgeConfig
from switch.tools.demo.app import CALLBACK_PATHS, TWIML_PATHS, AppRequest, DemoApp
from switch.tools.demo.phone import DemoPhone, PhoneEvent, PhoneFailure
from switch.tools.demo.plot import timeline_png, waveforms_png
from switch.tools.demo.timeline import SipWatcher, Timeline, describe_twiml, short_sid
from switch.tools.ports import free_port_block, free_tcp_port

TONE_A = 600.0  # the customer's phone plays this into the call...
TONE_B = 1000.0  # ...and the agent's this, so each recording channel can be told apart by FFT
CUSTOMER_ANSWER_AFTER = 0.3  # phone A rings this long, so that its ringing shows on the timeline
DIGIT_AFTER = 2.2  # seconds after answering that phone A presses 1
AGENT_ANSWER_AFTER = 1.0  # phone B rings this long before answering
AGENT_TALK = 3.0  # and hangs up this long after answering
HOLD_SECONDS = 2.5  # hold music before the REST redirect
TIME_LIMIT = 28.0  # seconds for the whole demo; stopping everything after a timeout takes about one more
CALL_BUDGET = 22.0  # seconds for the call itself; start-up, pictures and shutdown share the rest
STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
STATUSES = ["initiated", "ringing", "in-progress", "completed"]
HEADER = ("softswitch demo: the switch calls lab phone A (the customer) for a small TwiML app, which greets A,\n"
          "gathers a digit, connects A to lab phone B (the agent) with a two-channel recording, puts A on hold\n"
          "music, and a REST redirect ends with a goodbye -- all on this machine.")
LEGEND = ("Each line: ms since start, lane, call leg (A = the switch's call to phone A, B = its <Dial> call to\n"
          "phone B), event.  Lanes: REST = twilio client -> switch; SIP = switch <-> phones, from the switch's\n"
          "call events; callback = status callbacks as the app receives them (sig ok: X-Twilio-Signature\n"
          "validated with twilio's RequestValidator); TwiML = documents the switch fetched from the app;\n"
          "media = digits, recording, hold music.")


class DemoFailure(Exception):
    """Something the demo waits for did not happen as it should; the message says what."""


class ChecksFailed(DemoFailure):
    """The call ran to its end, but some checks of what it did failed (listed above the message)."""


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
        add = self.timeline.add
        if req.path in ("/status", "/agent-status"):
            status = p.get("CallStatus", "?")
            add("callback", f"{req.path:<13} {status:<11}  CallSid={short_sid(p.get('CallSid'))} "
                            f"ParentCallSid={short_sid(p.get('ParentCallSid')):<12} "
                            f"SequenceNumber={p.get('SequenceNumber')}  {sig}", status, leg, req.t)
        elif req.path == "/recording-status":
            status = p.get("RecordingStatus", "?")
            add("callback", f"/recording-status {status:<11}  RecordingSid={short_sid(p.get('RecordingSid'))} "
                            f"RecordingChannels={p.get('RecordingChannels')}  {sig}", f"recording {status}", "",
                req.t)
        elif req.path in TWIML_PATHS:
            extra = {"/gathered": f"Digits={p.get('Digits')}  ",
                     "/dialed": f"DialCallStatus={p.get('DialCallStatus')} DialCallDuration="
                                f"{p.get('DialCallDuration')} RecordingSid={short_sid(p.get('RecordingSid'))}  "
                     }.get(req.path, "")
            add("TwiML", f"{req.method} {req.path:<10} {extra}{sig} -> {describe_twiml(req.response)}", req.path,
                leg, req.t)
        elif req.path == "/hold.wav":
            add("media", f"hold music: the switch fetched {req.method} /hold.wav and loops it", "hold music", "A",
                req.t)
        else:
            add("callback", f"{req.method} {req.path} (unexpected)  {sig}", req.path, "", req.t)

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
    sent = time.time()
    call = await asyncio.to_thread(
        client.calls.create, to=phone_a.uri("customer"), from_="+15550100", url=app.url("/voice"),
        status_callback=app.url("/status"), status_callback_event=STATUS_EVENTS)
    demo.parent = str(call.sid)
    tl.add("REST", f"POST Calls.json To=sip:customer@{phone_a.sip} Url=/voice, 4 StatusCallbackEvents -> 201 "
                   f"{call.sid} {call.status}", "create call", "A", sent)
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
    tl.add("REST", f"POST Calls/{parent}.json Url=/goodbye -> 200 {updated.status} (the app takes A off hold)",
           "redirect", "A", demo.redirect_at)
    await _wait(app, "the caller's completed callback", 10, lambda rs: any(
        r.path == "/status" and r.call_sid == parent and r.params.get("CallStatus") == "completed" for r in rs))
    try:
        await asyncio.gather(*(phone.wait_for("hangup", 5) for phone in demo.phones.values()))
    except PhoneFailure as exc:
        raise DemoFailure(str(exc)) from None


def _check_callbacks(demo: Demo, path: str, sid: str, parent: str | None, who: str) -> None:
    assert demo.app is not None
    hooks = _requests(demo.app, path, sid)
    got = [f"{h.params.get('CallStatus')}#{h.params.get('SequenceNumber')}" for h in hooks]
    want = [f"{status}#{n}" for n, status in enumerate(STATUSES)]
    parents = sorted({h.params.get("ParentCallSid") or "none" for h in hooks})
    demo.check(got == want, f"{who}: callbacks {' '.join(got) or 'none'} (status#SequenceNumber)"
                            + ("" if got == want else f"; expected {' '.join(want)}"))
    demo.check(parents == [parent or "none"], f"{who}: ParentCallSid {', '.join(parents)}"
                                              + ("" if parents == [parent or "none"] else f"; expected {parent}"))


def _first_t(reqs: list[AppRequest]) -> float:
    return reqs[0].t if reqs else float("inf")


def _check_flow(demo: Demo, child: str | None) -> None:
    """The whole conversation, as the app saw it."""
    assert demo.app is not None
    app, parent = demo.app, demo.parent
    _check_callbacks(demo, "/status", parent, None, "caller leg A")
    if demo.check(child is not None, f"the <Dial> made agent leg B {child or '(none)'}") and child:
        _check_callbacks(demo, "/agent-status", child, parent, "agent leg B")
    fetched = [r.path for r in app.requests if r.path in TWIML_PATHS and r.call_sid == parent]
    demo.check(fetched == list(TWIML_PATHS), f"TwiML fetched in order: {' '.join(fetched)}")
    gathered = _requests(app, "/gathered", parent)
    digits = gathered[0].params.get("Digits") if gathered else None
    demo.check(digits == "1", f"phone A's digit reached the app: Digits={digits}")
    dialed = _requests(app, "/dialed", parent)
    status = dialed[0].params.get("DialCallStatus") if dialed else None
    demo.check(status == "completed", f"the <Dial> action got DialCallStatus={status}")
    child_hooks = _requests(app, "/agent-status", child) if child else []
    in_order = (_first_t(gathered) < _first_t(child_hooks) <= child_hooks[-1].t < _first_t(dialed)
                < (demo.redirect_at or 0) < _first_t(_requests(app, "/goodbye", parent))
                < _first_t([r for r in _requests(app, "/status", parent)
                            if r.params.get("CallStatus") == "completed"])) if child_hooks else False
    demo.check(in_order, "in order: digit, agent leg's callbacks, <Dial> action, REST redirect, goodbye, "
                         "caller leg completed")
    signed = [r for r in app.requests if r.path in (*CALLBACK_PATHS, *TWIML_PATHS)]
    bad = [f"{r.path} ({r.params.get('CallStatus') or r.params.get('RecordingStatus') or ''})"
           for r in signed if not r.signature_valid]
    demo.check(not bad, f"X-Twilio-Signature valid on {len(signed) - len(bad)} of {len(signed)} callbacks and "
                        "TwiML requests" + (f"; INVALID: {', '.join(bad)}" if bad else ""))


def _print_calls(demo: Demo, calls: list[Any]) -> str | None:
    """The summary table; returns the child's SID."""
    print("\ncalls (from GET Calls.json):")
    print(f"  leg  {'sid':<34}  {'parent':<12}  {'direction':<13}  {'to':<32}  {'status':<10}  duration")
    child = None
    for c in sorted(calls, key=lambda c: (c.parent_call_sid is not None, c.date_created)):
        print(f"  {demo.leg(c.sid):<3}  {c.sid:<34}  {short_sid(c.parent_call_sid):<12}  {c.direction:<13}  "
              f"{c.to:<32}  {c.status:<10}  {c.duration} s")
        if c.parent_call_sid == demo.parent:
            child = str(c.sid)
    parent = next((c for c in calls if c.sid == demo.parent), None)
    demo.check(parent is not None and parent.status == "completed",
               f"caller leg A ended {parent.status if parent else '(missing)'}")
    kids = [c for c in calls if c.parent_call_sid == demo.parent]
    demo.check(len(kids) == 1 and kids[0].status == "completed",
               f"agent leg B ended {', '.join(c.status for c in kids) or '(missing)'}")
    return child


def _channel_shares(channel: npt.NDArray[np.int16]) -> tuple[float, float, float]:
    """(dominant Hz, share of TONE_A, share of TONE_B) over the channel's audible 20 ms frames."""
    frames = channel[: len(channel) // 160 * 160].reshape(-1, 160)
    loud = frames[np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) > 300].reshape(-1)
    if loud.size < 800:
        return 0.0, 0.0, 0.0
    return (dominant_frequency(loud, 8000), band_energy_ratio(loud, 8000, TONE_A),
            band_energy_ratio(loud, 8000, TONE_B))


@dataclass(frozen=True)
class Fetched:
    """The <Dial>'s recording, downloaded over REST."""

    sid: str
    source: str
    wav: Path


async def _fetch_recording(demo: Demo, client: Any) -> Fetched | str:
    """Find the call's recording over REST and download its WAV; or say why there is none."""
    assert demo.switch is not None
    recs = await asyncio.to_thread(client.recordings.list, call_sid=demo.parent)
    demo.timeline.add("REST", f"GET Recordings.json?CallSid={demo.parent} -> {len(recs)} recording(s)",
                      "list recordings")
    done = [r for r in recs if r.status == "completed"]
    if not done:
        return ", ".join(f"{r.sid} is {r.status}" for r in recs) or "the call has none"
    rec = done[0]
    url = f"{demo.switch.base_url}{rec.uri.removesuffix('.json')}.wav"
    creds = demo.switch.credentials
    async with aiohttp.ClientSession(auth=aiohttp.BasicAuth(creds.account_sid, creds.auth_token)) as session, \
            session.get(url) as resp:
        body = await resp.read()
    demo.timeline.add("REST", f"GET Recordings/{rec.sid}.wav -> {resp.status}, {len(body)} bytes",
                      "get recording")
    if resp.status != 200:
        return f"GET {url} answered HTTP {resp.status}"
    wav = demo.out / f"{rec.sid}.wav"
    wav.write_bytes(body)
    return Fetched(str(rec.sid), str(rec.source), wav)


async def _show_recording(demo: Demo, fetched: Fetched | str) -> Path | None:
    """Say whose voice is on which channel (by FFT) and draw the waveforms next to the WAV."""
    if isinstance(fetched, str):
        print(f"\nrecording: none ({fetched})")
        demo.check(False, f"the <Dial> made a completed recording ({fetched})")
        return None
    samples, rate = read_wav(fetched.wav)
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    seconds = samples.shape[0] / rate
    print(f"\nrecording {fetched.sid} ({fetched.source}, {channels} channel(s), {rate} Hz, {seconds:.1f} s):\n"
          f"  {fetched.wav}")
    if not demo.check(channels == 2 and rate == 8000,
                      f"the recording is two-channel 8 kHz ({channels} channel(s), {rate} Hz)"):
        return None
    owners = [("the caller, phone A", TONE_A), ("the agent, phone B", TONE_B)]
    dominant: list[float] = []
    for ch, (who, tone) in enumerate(owners):
        peak, share_a, share_b = _channel_shares(samples[:, ch])
        dominant.append(peak)
        mine, theirs = (share_a, share_b) if tone == TONE_A else (share_b, share_a)
        ok = abs(peak - tone) < 15 and mine > 0.5 and theirs < 0.2
        print(f"  channel {ch + 1}: {peak:4.0f} Hz dominates ({mine:.0%} of its energy at {tone:.0f} Hz, "
              f"{theirs:.0%} at the other phone's tone): {who}")
        demo.check(ok, f"recording channel {ch + 1} is {who} ({tone:.0f} Hz) by FFT")
    png = fetched.wav.with_suffix(".png")
    await asyncio.to_thread(
        waveforms_png, png, samples, rate,
        [f"channel 1: the caller (phone A plays {TONE_A:.0f} Hz)",
         f"channel 2: the agent (phone B plays {TONE_B:.0f} Hz)"], dominant,
        f'{fetched.sid}: <Dial record="record-from-answer-dual">, {seconds:.1f} s, from the agent\'s answer '
        "to the agent's hang-up", [(TONE_A, "A"), (TONE_B, "B")])
    return png


def _spans(demo: Demo) -> None:
    """Bars for the picture: each leg's talk time, and the stretches of the conversation."""
    assert demo.switch is not None and demo.app is not None and demo.sip is not None
    tl, app, parent = demo.timeline, demo.app, demo.parent
    for sid, leg in demo.sip.legs.items():
        call = demo.switch.store.get_call(sid)
        if call is not None and call.answer_time is not None and call.end_time is not None:
            tl.span("SIP", call.answer_time.timestamp(), call.end_time.timestamp(),
                    f"leg {leg} up (phone {leg} answered)", leg)
    first = {path: _first_t(_requests(app, path, parent)) for path in TWIML_PATHS}
    child_up = [r.t for r in app.requests if r.path == "/agent-status" and r.params.get("CallStatus") in
                ("in-progress", "completed")]
    ended = demo.switch.store.get_call(parent)
    end = ended.end_time.timestamp() if ended is not None and ended.end_time is not None else None
    tl.span("media", first["/voice"], first["/gathered"], "greeting + <Gather>", "A")
    if len(child_up) == 2:
        tl.span("media", child_up[0], child_up[1], "A ↔ B bridged and recorded")
    tl.span("media", first["/dialed"], demo.redirect_at, "hold music", "A")
    tl.span("media", first["/goodbye"], end, "goodbye <Say>", "A")


def _tone_file(path: Path, hz: float) -> str:
    """A long tone for a phone's --play: the phone's own --tone loops a 1 s file, and its player leaves one
    silent 20 ms frame at every loop, which would show in the recording as a dropout each second."""
    write_wav(path, sine(hz, 40.0, 8000, 0.5), 8000)
    return str(path)


async def _start_phones(demo: Demo) -> None:
    demo.data.mkdir(parents=True, exist_ok=True)
    started = await asyncio.gather(
        DemoPhone.start("A", ["--answer", "auto", "--answer-after", f"{CUSTOMER_ANSWER_AFTER:g}",
                              "--play", _tone_file(demo.data / "tone-a.wav", TONE_A),
                              "--dtmf", "1", "--dtmf-after", f"{DIGIT_AFTER:g}", "--exit-after-calls", "1"],
                        demo.on_phone),
        DemoPhone.start("B", ["--answer", "auto", "--answer-after", f"{AGENT_ANSWER_AFTER:g}",
                              "--play", _tone_file(demo.data / "tone-b.wav", TONE_B),
                              "--hangup-after", f"{AGENT_TALK:g}", "--exit-after-calls", "1"],
                        demo.on_phone),
        return_exceptions=True)
    for name, phone in zip("AB", started, strict=True):
        if isinstance(phone, DemoPhone):
            demo.phones[name] = phone
    for name, phone in zip("AB", started, strict=True):
        if isinstance(phone, BaseException):
            raise DemoFailure(f"phone {name} did not start: {phone}")


async def _demo(demo: Demo) -> int:
    from twilio.rest import Client

    tl = demo.timeline
    if shutil.which("espeak-ng") is None:
        raise DemoFailure("espeak-ng is missing (the app's <Say>); run `make demo` (it installs it) or "
                          "`apt-get install espeak-ng`")
    print(HEADER)
    print(LEGEND + "\n", flush=True)
    sip_port = free_port_block(2)  # the SIP edge (Kamailio) there, the media worker on the next port
    config = Config(http_port=free_tcp_port(), sip_port=sip_port, data_dir=demo.data, workers=1,
                    edge=EdgeConfig(enabled=True, worker_port=sip_port + 1))
    demo.tasks.append(asyncio.get_running_loop().create_task(_ticker(demo)))
    switch, _ = await asyncio.gather(start_switch(config), _start_phones(demo))
    demo.switch = switch
    demo.sip = SipWatcher(switch, tl)
    demo.app = await DemoApp(switch.credentials.auth_token, demo.phones["B"].uri("agent"), demo.on_request).start()
    creds = switch.credentials
    tl.add("setup", f"switch: REST {switch.base_url}, SIP 127.0.0.1:{config.sip_port} (Kamailio, the edge), "
                    f"1 media worker behind it on {config.sip_port + 1}, data in {demo.data}")
    tl.add("setup", f"switch: generated account {creds.account_sid} and auth token")
    tl.add("setup", f"app:    TwiML app on {demo.app.url('/')} (/voice /gathered /dialed /goodbye, 3 callbacks)")
    tl.add("setup", f"phone A (the customer) sip:customer@{demo.phones['A'].sip}: answers after "
                    f"{CUSTOMER_ANSWER_AFTER:g} s, plays {TONE_A:g} Hz, "
                    f"presses 1 after {DIGIT_AFTER:g} s")
    tl.add("setup", f"phone B (the agent)    sip:agent@{demo.phones['B'].sip}: answers after "
                    f"{AGENT_ANSWER_AFTER:g} s, plays {TONE_B:g} Hz, hangs up after {AGENT_TALK:g} s")
    client = Client(creds.account_sid, creds.auth_token)
    client.api.base_url = switch.base_url
    try:
        await asyncio.wait_for(_run_call(demo, client), CALL_BUDGET)
    except TimeoutError:
        raise DemoFailure(f"the call did not finish within {CALL_BUDGET:g} s") from None
    calls = await asyncio.to_thread(client.calls.list, limit=20)
    tl.add("REST", f"GET Calls.json -> {len(calls)} calls", "list calls")
    fetched = await _fetch_recording(demo, client)
    await asyncio.sleep(Timeline.HOLD + 0.05)
    demo.sip.poll()
    tl.flush(everything=True)
    child = _print_calls(demo, calls)
    _check_flow(demo, child)
    recording_png = await _show_recording(demo, fetched)
    _spans(demo)
    timeline = demo.out / "timeline.png"
    await asyncio.to_thread(
        timeline_png, timeline, tl.marks, tl.spans,
        f"softswitch demo: leg A {demo.parent} (switch → phone A, the customer), leg B {child} "
        "(<Dial> → phone B, the agent)")
    print("\npictures:")
    print(f"  timeline   {timeline}")
    if recording_png is not None:
        print(f"  recording  {recording_png}")
    print("\nchecks:")
    for ok, text in demo.checks:
        print(f"  {'ok  ' if ok else 'FAIL'}  {text}")
    failed = [text for ok, text in demo.checks if not ok]
    if failed:
        raise ChecksFailed("; ".join(failed))
    print(f"\nsoftswitch demo: OK in {tl.now():.1f} s; the pictures and the recording stay in {demo.out}")
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
        if demo.sip is not None:
            demo.sip.poll()
        demo.timeline.flush(everything=True)
        print(f"softswitch demo: FAILED: {exc}", flush=True)
        if not isinstance(exc, PhoneFailure | ChecksFailed):
            for phone in demo.phones.values():
                print(phone.describe(), flush=True)
        return 1
    except Exception as exc:  # anything else (an HTTP error from the REST API, a bug) is a failure too
        demo.timeline.flush(everything=True)
        traceback.print_exc()
        print(f"softswitch demo: FAILED: {type(exc).__name__}: {exc}", flush=True)
        return 1
    finally:
        demo.timeline.flush(everything=True)
        await _shutdown(demo)


def run_demo() -> int:
    # The timeline is the demo's output; library chatter (twilio's request dumps, INFO logs) would bury it.
    logging.getLogger().setLevel(logging.WARNING)
    started = time.monotonic()
    try:
        return asyncio.run(asyncio.wait_for(_main(), TIME_LIMIT))
    except TimeoutError:
        print(f"softswitch demo: FAILED: did not finish in {TIME_LIMIT:g} s (stopped after "
              f"{time.monotonic() - started:.0f} s)", flush=True)
        return 1
