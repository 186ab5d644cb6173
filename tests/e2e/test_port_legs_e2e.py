"""Port legs end to end: a real worker, driven through the control plane's `WorkerPool`, audio measured by FFT.

A port leg is a browser's call leg (`switch.worker.port_legs`): one bridge port whose audio the control plane
relays.  Driven by `Dial` to a `webrtc:` URI, `PortOpen`, `PortSignal` and the usual leg commands, the worker
reports the same leg events a SIP leg gives, in the same order; what the switch sends the leg comes out as
`TapAudio` (track outbound, 50 frames a second, numbered without gaps), and `TapSend` to the leg is what the leg
says: a leg bridged to it, a conference and a tap hear it, a recording of it holds it, and at most ~200 ms of
it waits.  Signals for legs the worker does not hold are ignored; shutdown ends port legs.  Loopback only.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from media.audio import to_pcm16, write_wav
from media.tones import band_energy_ratio, dominant_frequency, rms, sine
from media.ulaw import ulaw_decode, ulaw_encode
from switch.tools.ports import free_port_block
from switch.workers import protocol as p
from switch.workers.pool import WorkerPool

pytestmark = pytest.mark.e2e

RATE = 8000
FRAME = 160  # μ-law bytes (and samples) per 20 ms


@dataclass
class Worker:
    """One real worker behind a `WorkerPool`, and every event it sent (TapAudio with its arrival time)."""

    pool: WorkerPool | None = None
    events: list[p.Event] = field(default_factory=list)
    audio: dict[str, list[tuple[float, p.TapAudio]]] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)

    def on_event(self, _index: int, event: p.Event) -> None:
        if isinstance(event, p.TapAudio):
            self.audio.setdefault(event.id, []).append((time.monotonic(), event))
        else:
            self.events.append(event)

    def send(self, command: p.Command) -> None:
        assert self.pool is not None and self.pool.send(0, command), f"cannot send {command}"

    def of_leg(self, leg: str) -> list[p.Event]:
        return [e for e in self.events if getattr(e, "leg", None) == leg]

    async def wait(self, what: str, predicate: Callable[[], object], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; events: {self.events[-20:]}")
            await asyncio.sleep(0.01)

    async def wait_event(self, kind: type[p.Event], timeout: float = 10.0, **fields: object) -> p.Event:
        def found() -> p.Event | None:
            return next((e for e in self.events if isinstance(e, kind)
                         and all(getattr(e, k) == v for k, v in fields.items())), None)

        await self.wait(f"{kind.__name__} {fields}", found, timeout)
        event = found()
        assert event is not None
        return event

    def pcm(self, leg: str, since: float = 0.0) -> np.ndarray:
        """What the leg was sent (its TapAudio, decoded) from `since` (monotonic) on."""
        data = b"".join(ulaw_decode(a.payload) for t, a in self.audio.get(leg, []) if t >= since)
        return np.frombuffer(data, dtype=np.int16)


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    w = Worker()
    w.pool = WorkerPool(1, "127.0.0.1", free_port_block(1), w.on_event, lambda _i, why: w.lost.append(why))
    await w.pool.start()
    yield w
    lost = list(w.lost)
    await w.pool.close()
    assert not lost, f"the worker died: {lost}"


def _leg() -> str:
    return "CA" + secrets.token_hex(16)


def _kinds(events: list[p.Event]) -> list[str]:
    return [type(e).__name__ for e in events]


async def _open_answered(worker: Worker) -> str:
    """A browser-placed port leg the switch answered: its id, once `MediaReady` came."""
    leg = _leg()
    worker.send(p.PortOpen(leg=leg))
    worker.send(p.Answer(leg=leg))
    await worker.wait_event(p.MediaReady, leg=leg)
    return leg


async def test_a_dialed_port_leg_reports_the_leg_events_of_a_sip_call_in_order(worker: Worker) -> None:
    leg = _leg()
    worker.send(p.Dial(leg=leg, uri="webrtc:alice", from_uri="sip:+15550100@switch.test"))
    sent = await worker.wait_event(p.InviteSent, leg=leg)
    assert isinstance(sent, p.InviteSent) and sent.call_id == f"webrtc-{leg}"
    await asyncio.sleep(0.3)
    assert _kinds(worker.of_leg(leg)) == ["InviteSent"], "no ringing before the browser was told"

    worker.send(p.PortSignal(leg=leg, state="ringing"))
    progress = await worker.wait_event(p.Progress, leg=leg)
    assert isinstance(progress, p.Progress)
    assert (progress.code, progress.reason, progress.sdp) == (180, "Ringing", False)
    worker.send(p.Ring(leg=leg))  # nothing on a port leg
    worker.send(p.PortSignal(leg=leg, state="answered"))
    await worker.wait_event(p.MediaReady, leg=leg)
    worker.send(p.SendDtmf(leg=leg, digits="9"))  # ignored: a browser takes no digits
    worker.send(p.PortSignal(leg=leg, state="dtmf", digits="12#"))
    worker.send(p.PortSignal(leg=leg, state="ended"))
    ended = await worker.wait_event(p.Ended, leg=leg)

    events = worker.of_leg(leg)
    assert _kinds(events) == ["InviteSent", "Progress", "Answered", "MediaReady", "DtmfReceived", "DtmfReceived",
                              "DtmfReceived", "Ended"]
    assert [e.digit for e in events if isinstance(e, p.DtmfReceived)] == ["1", "2", "#"]
    assert isinstance(ended, p.Ended) and (ended.code, ended.answered) == (200, True)

    rejected = _leg()  # the browser refuses the call: the code it gave
    worker.send(p.Dial(leg=rejected, uri="WebRTC:bob"))
    worker.send(p.PortSignal(leg=rejected, state="ringing"))
    worker.send(p.PortSignal(leg=rejected, state="ended", code=603))
    declined = await worker.wait_event(p.Ended, leg=rejected)
    assert _kinds(worker.of_leg(rejected)) == ["InviteSent", "Progress", "Ended"]
    assert isinstance(declined, p.Ended) and (declined.code, declined.reason, declined.answered) == (
        603, "Decline", False)


async def test_a_play_to_a_port_leg_comes_out_as_its_outbound_audio_50_frames_a_second(
        worker: Worker, tmp_path: Path) -> None:
    tone = write_wav(tmp_path / "tone.wav", sine(700.0, 3.0))
    leg = _leg()
    worker.send(p.PortOpen(leg=leg))
    await worker.wait("outbound audio before the answer", lambda: len(worker.audio.get(leg, [])) >= 5)
    assert rms(worker.pcm(leg)) < 50, "nothing plays yet: silence"
    worker.send(p.Answer(leg=leg))
    await worker.wait_event(p.MediaReady, leg=leg)

    worker.send(p.Play(id="w0:p1", leg=leg, path=str(tone)))
    await asyncio.sleep(0.5)
    since = time.monotonic()
    await asyncio.sleep(2.0)
    heard = worker.pcm(leg, since)
    assert abs(dominant_frequency(heard, RATE) - 700.0) < 5, dominant_frequency(heard, RATE)
    assert band_energy_ratio(heard, RATE, 700.0) > 0.9
    assert rms(heard) > 3000

    frames = worker.audio[leg]
    assert [a.seq for _, a in frames] == list(range(len(frames))), "numbered from 0 without gaps"
    assert all(a.track == "outbound" and a.ms == a.seq * 20 and len(a.payload) == FRAME for _, a in frames)
    window = [(t, a) for t, a in frames if t >= since]
    span = window[-1][0] - window[0][0]
    rate = (window[-1][1].seq - window[0][1].seq) / span
    assert 45 <= rate <= 55, f"{rate:.1f} frames/s"

    worker.send(p.Hangup(leg=leg, code=200))
    await worker.wait_event(p.PlayDone, id="w0:p1")
    ended = await worker.wait_event(p.Ended, leg=leg)
    assert isinstance(ended, p.Ended) and (ended.code, ended.reason, ended.answered) == (200, "hangup", True)
    done = next(e for e in worker.events if isinstance(e, p.PlayDone))
    assert worker.events.index(done) < worker.events.index(ended), "the player stops before the leg's Ended"
    count = len(worker.audio[leg])
    await asyncio.sleep(0.2)
    assert len(worker.audio[leg]) == count, "no audio after the leg ended"


async def _say(worker: Worker, leg: str, pcm: np.ndarray, chunk_frames: int = 5) -> None:
    """Send `pcm` into the port leg as the control plane relays a browser: μ-law, in real time, a chunk at a time."""
    ulaw = ulaw_encode(to_pcm16(pcm).tobytes())
    step = chunk_frames * FRAME
    start = time.monotonic()
    for index, offset in enumerate(range(0, len(ulaw), step)):
        worker.send(p.TapSend(id=leg, payload=ulaw[offset:offset + step]))
        await asyncio.sleep(max(0.0, start + (index + 1) * chunk_frames * 0.02 - time.monotonic()))


async def test_what_a_port_leg_says_reaches_the_port_leg_bridged_to_it_and_a_recording(
        worker: Worker, tmp_path: Path) -> None:
    a, b = await _open_answered(worker), await _open_answered(worker)
    worker.send(p.Bridge(id="w0:b1", a=a, b=b))
    await worker.wait_event(p.Bridged, id="w0:b1")
    base = tmp_path / "rec" / "a"
    worker.send(p.Record(id="w0:r1", base=str(base), legs=(a,)))
    await asyncio.sleep(0.2)

    since = time.monotonic()
    await _say(worker, a, sine(1000.0, 2.0))
    heard = worker.pcm(b, since)
    assert abs(dominant_frequency(heard, RATE) - 1000.0) < 5, dominant_frequency(heard, RATE)
    assert band_energy_ratio(heard, RATE, 1000.0) > 0.9
    assert rms(heard) > 3000
    assert rms(worker.pcm(a, since)) < 50, "b says nothing: a hears silence"

    worker.send(p.StopRecord(id="w0:r1"))
    await worker.wait_event(p.RecordDone, id="w0:r1")
    recorded = np.fromfile(f"{base}.leg0.raw", dtype=np.int16)
    assert abs(dominant_frequency(recorded, RATE) - 1000.0) < 5
    loud = [rms(recorded[i:i + FRAME]) > 3000 for i in range(0, recorded.size - FRAME + 1, FRAME)]
    assert 90 <= sum(loud) <= 101, f"{sum(loud)} loud frames of 100 sent"

    worker.send(p.PortSignal(leg=a, state="ended", code=486))
    ended = await worker.wait_event(p.Ended, leg=a)
    assert isinstance(ended, p.Ended) and (ended.code, ended.reason) == (486, "Busy Here")


async def test_at_most_200_ms_of_what_a_port_leg_says_waits(worker: Worker) -> None:
    a, b = await _open_answered(worker), await _open_answered(worker)
    worker.send(p.Bridge(id="w0:b2", a=a, b=b))
    await worker.wait_event(p.Bridged, id="w0:b2")
    since = time.monotonic()
    tone = ulaw_encode(sine(500.0, 2.0).tobytes())
    worker.send(p.TapSend(id=a, payload=tone + tone[:FRAME // 2]))  # 2 s at once, and half a frame more
    await asyncio.sleep(1.0)
    heard = worker.pcm(b, since)
    loud = sum(rms(heard[i:i + FRAME]) > 3000 for i in range(0, heard.size - FRAME + 1, FRAME))
    assert 8 <= loud <= 13, f"{loud} frames of the 2 s burst played: the oldest should have been dropped"
    assert abs(dominant_frequency(heard, RATE) - 500.0) < 10


async def test_port_legs_meet_in_a_conference_and_a_tap_hears_what_one_says(worker: Worker) -> None:
    a, b = await _open_answered(worker), await _open_answered(worker)
    for leg in (a, b):
        worker.send(p.ConfJoin(conf="CF1", leg=leg))
        await worker.wait_event(p.ConfJoined, conf="CF1", leg=leg)
    worker.send(p.TapStart(id="w0:t1", leg=a, tracks=("inbound",)))
    await worker.wait_event(p.TapStarted, id="w0:t1")
    await asyncio.sleep(0.2)

    since = time.monotonic()
    await _say(worker, a, sine(1200.0, 1.5))
    heard = worker.pcm(b, since)
    assert abs(dominant_frequency(heard, RATE) - 1200.0) < 5 and rms(heard) > 3000
    tapped = worker.pcm("w0:t1", since)
    assert abs(dominant_frequency(tapped, RATE) - 1200.0) < 5 and rms(tapped) > 3000
    assert rms(worker.pcm(a, since)) < 50, "a member does not hear itself"

    worker.send(p.Hangup(leg=a, code=200))
    await worker.wait_event(p.Ended, leg=a)
    left = await worker.wait_event(p.ConfLeft, conf="CF1", leg=a)
    tap_ended = await worker.wait_event(p.TapEnded, id="w0:t1")
    assert isinstance(left, p.ConfLeft) and left.reason == "hangup"
    assert isinstance(tap_ended, p.TapEnded) and tap_ended.reason == "hangup"


async def test_hangup_before_the_answer_ends_with_its_code_and_the_switch_answers_a_browser_call(
        worker: Worker) -> None:
    dialed = _leg()
    worker.send(p.Dial(leg=dialed, uri="webrtc:carol"))
    worker.send(p.PortSignal(leg=dialed, state="ringing"))
    await worker.wait_event(p.Progress, leg=dialed)
    worker.send(p.Hangup(leg=dialed, code=487))
    canceled = await worker.wait_event(p.Ended, leg=dialed)
    assert _kinds(worker.of_leg(dialed)) == ["InviteSent", "Progress", "Ended"]
    assert isinstance(canceled, p.Ended) and (canceled.code, canceled.answered) == (487, False)

    inbound = _leg()
    worker.send(p.PortOpen(leg=inbound))
    await asyncio.sleep(0.3)
    assert worker.of_leg(inbound) == [], "PortOpen answers nothing: the control plane made the call"
    worker.send(p.Answer(leg=inbound))
    await worker.wait_event(p.MediaReady, leg=inbound)
    worker.send(p.Answer(leg=inbound))  # answered already: nothing more
    worker.send(p.Hangup(leg=inbound, code=200))
    ended = await worker.wait_event(p.Ended, leg=inbound)
    assert _kinds(worker.of_leg(inbound)) == ["Answered", "MediaReady", "Ended"]
    assert isinstance(ended, p.Ended) and (ended.code, ended.answered) == (200, True)

    worker.send(p.Hangup(leg=inbound, code=200))  # gone: ignored, as for a SIP leg
    worker.send(p.Play(id="w0:p9", leg=inbound, path="/nonexistent.wav"))
    failed = await worker.wait_event(p.PlayFailed, id="w0:p9")
    assert isinstance(failed, p.PlayFailed) and "no active audio" in failed.error


async def test_signals_for_unknown_legs_are_ignored_and_the_worker_goes_on(worker: Worker) -> None:
    nobody = _leg()
    for state in ("ringing", "answered", "dtmf", "ended", "bogus"):
        worker.send(p.PortSignal(leg=nobody, state=state, code=486, digits="5"))
    worker.send(p.TapSend(id=nobody, payload=bytes(FRAME)))

    leg = _leg()
    worker.send(p.PortOpen(leg=leg))
    worker.send(p.PortOpen(leg=leg))  # the same leg twice: the second fails
    failed = await worker.wait_event(p.PortFailed, leg=leg)
    assert isinstance(failed, p.PortFailed) and "exists" in failed.error
    worker.send(p.PortSignal(leg=leg, state="bogus"))  # an unknown state on a known leg: ignored too
    worker.send(p.Dial(leg=leg, uri="webrtc:dave"))  # a leg id in use: DialFailed
    dial_failed = await worker.wait_event(p.DialFailed, leg=leg)
    assert isinstance(dial_failed, p.DialFailed) and dial_failed.code == 500

    await asyncio.sleep(0.3)
    assert worker.of_leg(nobody) == []
    assert worker.pool is not None and worker.pool.workers[0].up and not worker.lost
    assert _kinds(worker.of_leg(leg)) == ["PortFailed", "DialFailed"]


async def test_port_legs_end_with_the_worker_shutting_down(worker: Worker) -> None:
    ringing, answered = _leg(), await _open_answered(worker)
    worker.send(p.Dial(leg=ringing, uri="webrtc:erin"))
    await worker.wait_event(p.InviteSent, leg=ringing)
    assert worker.pool is not None and not worker.lost
    await worker.pool.close()
    worker.lost.clear()  # the pool's own close: the channel closes as the worker exits
    ends = {e.leg: (e.code, e.reason) for e in worker.events if isinstance(e, p.Ended)}
    assert ends == {ringing: (503, "shutdown"), answered: (200, "shutdown")}
