"""Issue 13 §1: a re-INVITE without SDP mid-call (a delayed offer).  The switch offers SDP in its 200 OK, the far
end answers in the ACK, and the call keeps its audio.

sipp plays the far end (`uas_reinvite_no_sdp.xml`): its first answer sends RTP to one UDP socket of this test;
the answer in the ACK moves it to a second socket and to PCMA, which makes pjsua give the leg a new audio port.
The test decodes the RTP that arrives on each socket and measures the `<Play loop="0">` tone by FFT before and
after.  Without the worker re-making the player's connection on the new port, the second socket gets silence.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
import soundfile as sf

from media.tones import band_energy_ratio, sine
from tests.e2e.test_media_change_e2e import RtpSink
from tests.peers.harness import SwitchProcess, WebhookSink
from tests.peers.sipp_peer import SippPeer, free_udp_port_pair

RATE = 8000
TONE = 900.0
PCMU, PCMA = 0, 8


@pytest.fixture(scope="module")
def tone_url(app: WebhookSink) -> str:
    data = io.BytesIO()
    sf.write(data, sine(TONE, 1.5, rate=16000), 16000, format="WAV", subtype="PCM_16")
    body = data.getvalue()
    app.responses["/tone-no-sdp.wav"] = lambda _h: (200, body, "audio/wav")
    return app.url("/tone-no-sdp.wav")


@pytest.fixture
def rtp_sinks() -> Iterator[tuple[RtpSink, RtpSink]]:
    first, second = RtpSink(free_udp_port_pair()), RtpSink(free_udp_port_pair())
    yield first, second
    first.close()
    second.close()


def _tone_seconds(samples: np.ndarray, what: str) -> float:
    """Seconds of audio in `samples`, after checking that (past its first 100 ms) it is the loud TONE."""
    assert len(samples) >= RATE // 2, f"{what}: only {len(samples) / RATE:.2f} s of RTP"
    steady = samples[RATE // 10:].astype(np.float64)
    assert np.sqrt(np.mean(steady ** 2)) > 1000, f"{what}: silence"
    assert band_energy_ratio(steady, RATE, TONE) > 0.8, f"{what}: not the {TONE:.0f} Hz tone"
    return len(samples) / RATE


def test_reinvite_without_sdp_is_offered_and_the_audio_goes_on(switch: SwitchProcess, sink: WebhookSink,
                                                                tone_url: str,
                                                                rtp_sinks: tuple[RtpSink, RtpSink]) -> None:
    first, second = rtp_sinks
    with SippPeer("uas_reinvite_no_sdp.xml", timeout=20,
                  keywords={"rtp1": str(first.port), "rtp2": str(second.port)}) as far:
        sid = switch.client().calls.create(
            to=f"sip:bob@{far.uri_host}", from_="+15550199",
            twiml=f'<Response><Play loop="0">{tone_url}</Play></Response>',
            status_callback=sink.url("/no-sdp"),
            status_callback_event=["initiated", "ringing", "answered", "completed"]).sid
        hooks = sink.wait_statuses("/no-sdp", sid, 4, timeout=20)
        assert far.wait_sync(10) == 0, far.describe()
    assert [h.params["CallStatus"] for h in hooks] == ["initiated", "ringing", "in-progress", "completed"]
    assert far.methods_sent() == ["INVITE", "ACK", "BYE"]  # the re-INVITE, its ACK, the hang-up
    assert far.methods_received() == ["INVITE", "ACK"]
    assert far.codes_sent() == [100, 180, 200]
    assert far.codes_received() == [200, 200]  # the re-INVITE's, then the BYE's

    # The signalling: the re-INVITE had no body, the switch's 200 OK to it is an SDP offer, the ACK the answer.
    reinvite = [m for m in far.messages(include_retransmissions=False)
                if m.direction == "sent" and m.method == "INVITE"]
    assert len(reinvite) == 1 and reinvite[0].body.strip() == ""
    offer = next(m for m in far.messages(include_retransmissions=False)
                 if m.direction == "received" and m.status_code == 200 and m.cseq_method == "INVITE"
                 and (m.header("CSeq") or "").split()[0] == "2")
    assert (offer.header("Content-Type") or "").startswith("application/sdp")
    audio = [line for line in offer.body.splitlines() if line.startswith("m=audio ")]
    assert len(audio) == 1, offer.body
    port, formats = int(audio[0].split()[1]), audio[0].split()[3:]
    assert port > 0 and "0" in formats and "8" in formats, audio[0]
    assert "a=sendrecv" in offer.body or not any(
        line in offer.body for line in ("a=sendonly", "a=recvonly", "a=inactive")), offer.body
    ack = next(m for m in far.messages() if m.direction == "sent" and m.method == "ACK"
               and (m.header("CSeq") or "").split()[0] == "2")
    assert f"m=audio {second.port} RTP/AVP 8" in ack.body

    # The audio: PCMU to the first socket before (1.5 s), PCMA to the second after the ACK's answer (2 s).
    before = _tone_seconds(first.audio(PCMU), "before the re-INVITE")
    after = _tone_seconds(second.audio(PCMA), "after the answer in the ACK")
    assert 1.0 <= before <= 2.0, f"{before:.2f} s before the re-INVITE"
    assert 1.4 <= after <= 2.5, f"{after:.2f} s after the answer in the ACK"
    assert not first.audio(PCMA).size and not second.audio(PCMU).size, "a codec or port mixed up"
    assert max(t for t, _, _ in first.packets) <= min(t for t, _, _ in second.packets) + 0.1
