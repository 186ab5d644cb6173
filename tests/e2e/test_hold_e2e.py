"""Issue 13 §1: the lab phone holds and unholds (and re-INVITEs with PCMA) mid-call; the audio comes back.

The phone holds with a re-INVITE whose audio is ``sendonly`` and goes silent while it holds; the switch answers
``recvonly`` and sends it nothing.  pjsua gives the switch's leg a new audio port at each of these changes: the
worker must re-make the leg's player, bridge and recording tap on it (switch/worker/media.py), or the audio never
comes back after the unhold.  Every check is a measurement of a recording (FFT and level over windows placed by
the phones' own event times): the tone before, silence while held, the tone again after.
"""

from __future__ import annotations

import io
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from twilio.twiml.voice_response import Dial, VoiceResponse

from media.audio import read_wav
from media.tones import band_energy_ratio, rms, sine
from tests.peers.harness import SwitchProcess, WebhookSink
from tests.peers.phone import Event, PhoneProcess

RATE = 8000
PLAY_HZ, CALLER_HZ, CALLEE_HZ = 1200.0, 440.0, 1000.0
STEP = 1.5  # seconds between the changes
EDGE = 0.3  # seconds left out after each change (the re-INVITE's round trip, the jitter buffer)
EVENTS = ["initiated", "ringing", "answered", "completed"]
HOLD_EVENTS = ("held by the far end", "taken off hold")


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("hold"), workers=1)
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def tone_url(app: WebhookSink) -> str:
    data = io.BytesIO()
    sf.write(data, sine(PLAY_HZ, 1.5, rate=16000), 16000, format="WAV", subtype="PCM_16")
    body = data.getvalue()
    app.responses["/tone-hold.wav"] = lambda _h: (200, body, "audio/wav")
    return app.url("/tone-hold.wav")


# -- measuring ----------------------------------------------------------------------------------------------
def _window(samples: np.ndarray, start: float, end: float) -> np.ndarray:
    assert end - start >= 0.5, f"window {start:.2f}-{end:.2f} s is too short to measure"
    return samples[int(start * RATE):int(end * RATE)]


def _assert_tone(samples: np.ndarray, start: float, end: float, hz: float, what: str) -> None:
    part = _window(samples, start, end)
    assert len(part) >= int((end - start) * RATE) - 1, f"{what}: the recording ends at {len(samples) / RATE:.2f} s"
    level, share = rms(part), band_energy_ratio(part, RATE, hz)
    assert level > 1000 and share > 0.8, f"{what} ({start:.2f}-{end:.2f} s): rms {level:.0f}, {hz:g} Hz {share:.2f}"


def _assert_silent(samples: np.ndarray, start: float, end: float, what: str) -> None:
    part = _window(samples, start, end)
    assert rms(part) < 100, f"{what} ({start:.2f}-{end:.2f} s): rms {rms(part):.0f}, not silence"


@dataclass(frozen=True)
class Hold:
    """When the holding phone sent its hold and unhold re-INVITEs and when each was negotiated (its `command` and
    `media` events), in seconds after `t0`.  The holder goes silent somewhere in [sent, held] (its old stream
    ends with the 200 OK, its player is taken off at `held`) and sounds again at `unheld`."""

    sent: float
    held: float
    unhold_sent: float
    unheld: float

    @classmethod
    def of(cls, phone: PhoneProcess, t0: float) -> Hold:
        sent = {e["command"]: e["t"] - t0 for e in phone.events("command")}
        held, unheld = (e["t"] - t0 for e in phone.events("media")[:2])
        return cls(sent["hold"], held, sent["unhold"], unheld)

    def check(self, samples: np.ndarray, hz: float, what: str, start: float = 0.0, end: float | None = None) -> None:
        """`samples` (heard from the holder, or heard by it) have the tone from `start` until the hold is sent,
        silence from the negotiated hold until the unhold is sent, and the tone from the unhold to `end`."""
        end = len(samples) / RATE if end is None else end
        _assert_tone(samples, start + EDGE, self.sent - 0.1, hz, f"{what}, before the hold")
        _assert_silent(samples, self.held + EDGE, self.unhold_sent - 0.1, f"{what}, while held")
        _assert_tone(samples, self.unheld + EDGE, end - 0.1, hz, f"{what}, after the unhold")


def _hold_cycle(phone: PhoneProcess, seconds: float = STEP) -> None:
    """Hold the phone's call for `seconds`, then take it off hold."""
    held = phone.hold()
    time.sleep(seconds)
    unheld = phone.unhold()
    assert (held["state"], held["dir"]) == ("local_hold", "sendonly"), phone.describe()
    assert (unheld["state"], unheld["dir"], unheld["codec"]) == ("active", "sendrecv", "PCMU"), phone.describe()


def _sip_events(switch: SwitchProcess, sid: str) -> list[str]:
    """The call's `sip` events as the store has them (the REST API has no Events resource)."""
    with sqlite3.connect(f"file:{switch.workdir / 'data' / 'softswitch.db'}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute(
            "SELECT detail FROM call_events WHERE call_sid = ? AND kind = 'sip' ORDER BY id", (sid,))]


def _assert_hold_events(switch: SwitchProcess, sid: str) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len([e for e in _sip_events(switch, sid) if e in HOLD_EVENTS]) < 2:
        time.sleep(0.1)
    assert [e for e in _sip_events(switch, sid) if e in HOLD_EVENTS] == list(HOLD_EVENTS)


def _recording(event: Event) -> tuple[np.ndarray, float]:
    samples, rate = read_wav(Path(event["recording"]))
    assert rate == RATE
    return samples, len(samples) / rate


# -- the lab phone's commands, phone to phone (no switch) -----------------------------------------------------
def test_lab_phone_holds_unholds_and_changes_codec_on_command(tmp_path: Path) -> None:
    """The commands themselves: bad ones are errors; hold/unhold/reinvite are re-INVITEs that both phones report
    in `media` events; the held phone hears nothing from the holder."""
    with PhoneProcess(["--answer", "auto", "--tone", str(CALLEE_HZ), "--record", str(tmp_path / "b.wav")],
                      commands=True) as b:
        b.command("hold")  # no call yet
        b.command("frobnicate")
        errors = [b.wait_for("error", 5, count=n)["message"] for n in (1, 2)]
        with PhoneProcess(["--call", b.uri("bob"), "--tone", str(CALLER_HZ)], commands=True) as a:
            a.wait_for("answered", 10)
            answered = b.wait_for("answered", 10)
            time.sleep(1.0)
            _hold_cycle(a, 1.0)
            pcma = a.reinvite("PCMA")
            time.sleep(1.0)
            a.command("reinvite G729")
            assert "unknown codec" in a.wait_for("error", 5)["message"], a.describe()
            a.command("hangup")
            a.wait_for("exit", 10)
            hangup = b.wait_for("hangup", 10)
    assert errors == ["hold: no answered call",
                      "unknown command 'frobnicate' (expected one of hold, unhold, reinvite, dtmf, hangup, call, "
                      "register, unregister)"]
    assert (pcma["state"], pcma["dir"], pcma["codec"]) == ("active", "sendrecv", "PCMA"), a.describe()
    assert [(e["state"], e["dir"], e["codec"]) for e in b.events("media")] == [
        ("remote_hold", "recvonly", "PCMU"), ("active", "sendrecv", "PCMU"), ("active", "sendrecv", "PCMA")]
    assert [e["command"] for e in a.events("command")] == ["hold", "unhold", "reinvite PCMA", "hangup"]
    heard, _ = _recording(hangup)
    Hold.of(a, answered["t"]).check(heard, CALLER_HZ, "the held phone")


# -- a plain call -------------------------------------------------------------------------------------------
def test_hold_unhold_and_codec_change_of_a_plain_call(switch: SwitchProcess, app: WebhookSink, tone_url: str,
                                                       tmp_path: Path) -> None:
    """The switch plays a tone (<Play loop="0">); the phone hears it, then nothing while it holds, then the tone
    again after the unhold and after its re-INVITE that offers only PCMA."""
    with PhoneProcess(["--answer", "auto", "--tone", str(CALLER_HZ), "--record", str(tmp_path / "heard.wav")],
                      commands=True) as phone:
        sid = switch.client().calls.create(
            to=phone.uri("bob"), from_="+15550199", twiml=f'<Response><Play loop="0">{tone_url}</Play></Response>',
            status_callback=app.url("/hold-plain"), status_callback_event=EVENTS).sid
        answered = phone.wait_for("answered", 15)
        time.sleep(STEP)
        _hold_cycle(phone)
        time.sleep(STEP)
        pcma = phone.reinvite("PCMA")
        time.sleep(STEP)
        phone.command("hangup")
        hangup = phone.wait_for("hangup", 10)
        hooks = app.wait_statuses("/hold-plain", sid, 4)
    assert [h.params["CallStatus"] for h in hooks] == ["initiated", "ringing", "in-progress", "completed"]
    assert (pcma["state"], pcma["dir"], pcma["codec"]) == ("active", "sendrecv", "PCMA"), phone.describe()
    assert phone.names() == ["ready", "incoming", "answered", "command", "media", "command", "media", "command",
                             "media", "hangup", "command", "exit"], phone.describe()
    assert hangup["by"] == "local" and hangup["code"] == 200
    _assert_hold_events(switch, sid)

    heard, seconds = _recording(hangup)
    t0 = answered["t"]  # the recording starts with the call's media, at the answer
    codec, end = pcma["t"] - t0, hangup["t"] - t0
    assert abs(seconds - end) < 0.3, f"{seconds:.2f} s recorded of a {end:.2f} s call"
    Hold.of(phone, t0).check(heard, PLAY_HZ, "the phone", end=codec)
    _assert_tone(heard, codec + EDGE, end - 0.1, PLAY_HZ, "the phone, after its re-INVITE with PCMA")


# -- a <Dial> bridge ----------------------------------------------------------------------------------------
def _dial(switch: SwitchProcess, app: WebhookSink, caller: PhoneProcess, callee: PhoneProcess, path: str,
          **attrs: Any) -> str:
    response = VoiceResponse()
    dial = Dial(action=f"{path}-done", **attrs)
    dial.sip(callee.uri("bob"))
    response.append(dial)
    app.twiml(path, str(response))
    app.twiml(f"{path}-done", str(VoiceResponse()))  # the action ends the call
    return str(switch.client().calls.create(to=caller.uri("alice"), from_="+15550199", url=app.url(path)).sid)


def _dial_action(app: WebhookSink, path: str, sid: str) -> dict[str, str]:
    hooks = app.wait_for(lambda hs: any(h.path == f"{path}-done" and h.params.get("CallSid") == sid for h in hs), 20)
    return next(h.params for h in hooks if h.path == f"{path}-done" and h.params.get("CallSid") == sid)


@dataclass(frozen=True)
class HeldDial:
    """A <Dial> whose callee held and unheld: the Dial action's parameters and both phones' events."""

    action: dict[str, str]
    caller: PhoneProcess
    callee: PhoneProcess

    def t(self, who: PhoneProcess, name: str) -> float:
        return float(who.events(name)[0]["t"])


def _held_dial(switch: SwitchProcess, app: WebhookSink, tmp_path: Path, path: str, **attrs: Any) -> HeldDial:
    """A <Dial> from the caller (CALLER_HZ) to the callee (CALLEE_HZ), which holds and unholds, then hangs up."""
    with PhoneProcess(["--answer", "auto", "--tone", str(CALLEE_HZ), "--record", str(tmp_path / "callee.wav")],
                      commands=True) as callee, \
         PhoneProcess(["--answer", "auto", "--tone", str(CALLER_HZ), "--record", str(tmp_path / "caller.wav"),
                       "--exit-after-calls", "1"]) as caller:
        sid = _dial(switch, app, caller, callee, path, **attrs)
        caller.wait_for("answered", 15)
        callee.wait_for("answered", 15)
        time.sleep(STEP)
        _hold_cycle(callee)
        time.sleep(STEP)
        callee.command("hangup")
        callee.wait_for("hangup", 10)
        caller.wait_for("hangup", 10)
        action = _dial_action(app, path, sid)
    assert action["DialCallStatus"] == "completed", action
    assert callee.names() == ["ready", "incoming", "answered", "command", "media", "command", "media", "hangup",
                              "command", "exit"], callee.describe()
    assert caller.names() == ["ready", "incoming", "answered", "hangup", "exit"], caller.describe()
    _assert_hold_events(switch, action["DialCallSid"])  # the held leg is the dialed one
    return HeldDial(action, caller, callee)


def test_hold_and_unhold_across_a_dial_bridge(switch: SwitchProcess, app: WebhookSink, tmp_path: Path) -> None:
    """Each phone hears the other before the callee holds and after it unholds, and nothing while it holds."""
    dial = _held_dial(switch, app, tmp_path, "/hold-dial")
    bridged, end = dial.t(dial.callee, "answered"), dial.t(dial.callee, "hangup")
    callee_heard, callee_seconds = _recording(dial.callee.events("hangup")[0])
    assert abs(callee_seconds - (end - bridged)) < 0.3
    Hold.of(dial.callee, bridged).check(callee_heard, CALLER_HZ, "the callee")
    caller_heard, _ = _recording(dial.caller.events("hangup")[0])
    t0 = dial.t(dial.caller, "answered")  # the caller was answered first and heard ringback until the bridge
    Hold.of(dial.callee, t0).check(caller_heard, CALLEE_HZ, "the caller", start=bridged - t0, end=end - t0)


def _frame_levels(channel: np.ndarray) -> np.ndarray:
    """The RMS of each 20 ms frame."""
    frames = channel[:len(channel) // 160 * 160].astype(np.float64).reshape(-1, 160)
    levels: np.ndarray = np.sqrt(np.mean(frames ** 2, axis=1))
    return levels


def test_dual_recording_across_a_hold(switch: SwitchProcess, app: WebhookSink, tmp_path: Path) -> None:
    """<Dial record="record-from-answer-dual">: channel 2 (the callee) has its tone, silence for the time it held,
    then its tone; channel 1 (the caller, who never stopped) has its tone throughout, frame by frame; the file is
    as long as the bridged call, and the one silent stretch of channel 2 sits where the hold was."""
    dial = _held_dial(switch, app, tmp_path, "/hold-rec", record="record-from-answer-dual")
    data, rate = switch.recording(dial.action["RecordingUrl"])
    assert rate == RATE and data.shape[1] == 2
    seconds = len(data) / rate
    bridged, end = dial.t(dial.callee, "answered"), dial.t(dial.callee, "hangup")
    assert abs(seconds - (end - bridged)) < 0.4, f"{seconds:.2f} s recorded of a {end - bridged:.2f} s bridge"
    caller, callee = data[:, 0], data[:, 1]
    hold = Hold.of(dial.callee, bridged)  # the recording starts at the bridge
    hold.check(callee, CALLEE_HZ, "channel 2 (callee)", end=end - bridged)
    _assert_tone(caller, EDGE, end - bridged - 0.1, CALLER_HZ, "channel 1 (caller), the whole call")
    assert band_energy_ratio(callee, RATE, CALLER_HZ) < 0.05 and band_energy_ratio(caller, RATE, CALLEE_HZ) < 0.05
    # Frame by frame (20 ms), from EDGE to the callee's last loud frame (the file goes on a little after its BYE):
    levels = _frame_levels(callee)
    last = int(np.flatnonzero(levels > 1000)[-1])
    assert len(levels) - last <= 25, f"channel 2 silent for its last {(len(levels) - last) / 50:.2f} s"
    quiet = np.flatnonzero(levels[int(EDGE * 50):last] < 100) + int(EDGE * 50)
    assert quiet.size, "channel 2 never went silent"
    assert quiet.size == quiet[-1] - quiet[0] + 1, "channel 2 has more than one silent stretch"
    start, stop = quiet[0] / 50, (quiet[-1] + 1) / 50
    assert hold.sent - 0.2 <= start <= hold.held + 0.2, f"silent from {start:.2f} s; hold sent {hold.sent:.2f} s"
    assert hold.unhold_sent - 0.2 <= stop <= hold.unheld + 0.2, f"silent until {stop:.2f} s; unheld {hold.unheld:.2f}"
    loud = _frame_levels(caller)[int(EDGE * 50):last]
    assert (loud > 1000).all(), f"channel 1 dropped at {(np.argmin(loud) + int(EDGE * 50)) / 50:.2f} s"
