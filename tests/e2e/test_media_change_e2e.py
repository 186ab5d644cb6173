"""Issue 13 §1: a far end that holds, unholds to a new RTP port and switches codec keeps hearing the call.

sipp plays the far end's signalling (`uas_media_change.xml`) and points its SDP at two UDP sockets of this test,
which read the RTP the switch sends and decode it (G.711, by its payload type).  pjsua makes a new audio port at
each of these media changes; without the worker re-making the player's connection, the new port sends silence.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
import soundfile as sf

from media.tones import band_energy_ratio, sine
from tests.peers.harness import SwitchProcess, WebhookSink
from tests.peers.phone import PhoneProcess
from tests.peers.sipp_peer import SippPeer, free_udp_port_pair

RATE = 8000
TONE = 1200.0


def _ulaw(data: bytes) -> np.ndarray:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    magnitude = ((((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 7)) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude)


def _alaw(data: bytes) -> np.ndarray:
    a = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    exponent, mantissa = (a >> 4) & 7, a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8,
                         ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(a & 0x80, magnitude, -magnitude)


@dataclass
class RtpSink:
    """A UDP socket on 127.0.0.1 that keeps every RTP packet's payload type and payload, for a bounded time."""

    port: int
    packets: list[tuple[float, int, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 40
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                data = self._sock.recv(2048)
            except TimeoutError:
                continue
            if len(data) < 12 or data[0] >> 6 != 2:
                continue
            offset = 12 + 4 * (data[0] & 0x0F)
            if data[0] & 0x10 and len(data) >= offset + 4:  # header extension
                offset += 4 + 4 * int.from_bytes(data[offset + 2:offset + 4], "big")
            self.packets.append((time.monotonic(), data[1] & 0x7F, data[offset:]))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def audio(self, payload_type: int) -> np.ndarray:
        decode = _ulaw if payload_type == 0 else _alaw
        chunks = [decode(p) for _, pt, p in self.packets if pt == payload_type]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int32)


@pytest.fixture(scope="module")
def tone_url(app: WebhookSink) -> str:
    data = io.BytesIO()
    sf.write(data, sine(TONE, 1.5, rate=16000), 16000, format="WAV", subtype="PCM_16")
    body = data.getvalue()
    app.responses["/tone-media-change.wav"] = lambda _h: (200, body, "audio/wav")
    return app.url("/tone-media-change.wav")


@pytest.fixture
def rtp_sinks() -> Iterator[tuple[RtpSink, RtpSink]]:
    first, second = RtpSink(free_udp_port_pair()), RtpSink(free_udp_port_pair())
    yield first, second
    first.close()
    second.close()


def _assert_tone(samples: np.ndarray, what: str) -> None:
    assert len(samples) >= RATE, f"{what}: only {len(samples) / RATE:.2f} s of RTP"
    steady = samples[RATE // 10:].astype(np.float64)  # skip the first 100 ms after the change
    assert np.sqrt(np.mean(steady ** 2)) > 1000, f"{what}: silence"
    assert band_energy_ratio(steady, RATE, TONE) > 0.8, f"{what}: not the {TONE:.0f} Hz tone"


def test_hold_new_port_and_codec_switch_keep_the_audio(switch: SwitchProcess, sink: WebhookSink, tone_url: str,
                                                      rtp_sinks: tuple[RtpSink, RtpSink]) -> None:
    first, second = rtp_sinks
    with SippPeer("uas_media_change.xml", timeout=30,
                  keywords={"rtp1": str(first.port), "rtp2": str(second.port)}) as far:
        sid = switch.client().calls.create(
            to=f"sip:bob@{far.uri_host}", from_="+15550199",
            twiml=f'<Response><Play loop="0">{tone_url}</Play></Response>',
            status_callback=sink.url("/media-change"),
            status_callback_event=["initiated", "ringing", "answered", "completed"]).sid
        hooks = sink.wait_statuses("/media-change", sid, 4, timeout=30)
        assert far.wait_sync(15) == 0, far.describe()
    assert [h.params["CallStatus"] for h in hooks] == ["initiated", "ringing", "in-progress", "completed"]
    assert far.methods_sent() == ["INVITE", "ACK"] * 3 + ["BYE"]  # hold, unhold to a new port, PCMA; BYE
    assert far.codes_received() == [200, 200, 200, 200]
    # Before the hold: PCMU to the first port.  During it (1.5 s) the switch sends nothing, so the first port
    # gets about 1.5 s of packets, not 3 s.
    _assert_tone(first.audio(0), "before the hold")
    assert len(first.packets) < 110, f"{len(first.packets)} packets: the switch kept sending during the hold"
    # Unheld to a new port: the new audio port plays the same <Play>.
    _assert_tone(second.audio(0), "after the unhold to a new port")
    # The codec switch: PCMA to the second port, still the tone.
    _assert_tone(second.audio(8), "after the switch to PCMA")
    # Order: all PCMU on the second port precedes its PCMA.
    last_pcmu = max(t for t, pt, _ in second.packets if pt == 0)
    first_pcma = min(t for t, pt, _ in second.packets if pt == 8)
    assert last_pcmu <= first_pcma + 0.1


def test_a_dial_bridge_is_remade_after_each_media_change(switch: SwitchProcess, sink: WebhookSink,
                                                        rtp_sinks: tuple[RtpSink, RtpSink]) -> None:
    """The lab phone (440 Hz) is bridged by <Dial> to the sipp far end whose audio moves: the far end keeps
    hearing the phone through the bridge on each new port and codec."""
    first, second = rtp_sinks
    with SippPeer("uas_media_change.xml", timeout=30,
                  keywords={"rtp1": str(first.port), "rtp2": str(second.port)}) as far, \
            PhoneProcess(["--answer", "auto", "--tone", "440"]) as phone:
        twiml = f"<Response><Dial><Sip>sip:bob@{far.uri_host}</Sip></Dial></Response>"
        sid = switch.client().calls.create(to=phone.uri(), from_="+15550199", twiml=twiml,
                                           status_callback=sink.url("/media-change-dial"),
                                           status_callback_event=["initiated", "ringing", "answered",
                                                                  "completed"]).sid
        hooks = sink.wait_statuses("/media-change-dial", sid, 4, timeout=30)
        assert far.wait_sync(15) == 0, far.describe()
    assert [h.params["CallStatus"] for h in hooks] == ["initiated", "ringing", "in-progress", "completed"]
    assert far.methods_sent() == ["INVITE", "ACK"] * 3 + ["BYE"]
    for samples, what in ((first.audio(0), "before the hold"), (second.audio(0), "after the unhold"),
                          (second.audio(8), "after the switch to PCMA")):
        assert len(samples) >= RATE, f"{what}: only {len(samples) / RATE:.2f} s of RTP"
        steady = samples[RATE // 10:].astype(np.float64)
        assert band_energy_ratio(steady, RATE, 440.0) > 0.8, f"{what}: not the phone's 440 Hz through the bridge"
