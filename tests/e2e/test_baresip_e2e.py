"""Interop with baresip, a SIP stack that is not PJSIP: the switch calls it, and it calls the switch through
`<Dial>` to a lab phone with another codec on each side.  Audio is checked by FFT in both directions.
baresip also registers (digest, through an outbound proxy) at a sipp registrar and still answers calls."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from twilio.twiml.voice_response import Dial, VoiceResponse

from media.audio import read_wav
from media.tones import band_energy_ratio, dominant_frequency, rms, sine
from tests.peers.baresip_peer import BaresipPeer, RegistrationFailed
from tests.peers.harness import SwitchProcess, WebhookSink
from tests.peers.phone import PhoneProcess
from tests.peers.sipp_peer import EXIT_OK, SippPeer

NUMBER = "+15550133"
EVENTS = ["initiated", "ringing", "answered", "completed"]


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, app: WebhookSink) -> Iterator[SwitchProcess]:
    data = io.BytesIO()
    sf.write(data, sine(1200.0, 1.5, rate=16000), 16000, format="WAV", subtype="PCM_16")
    body = data.getvalue()
    app.responses["/tone1200.wav"] = lambda _h: (200, body, "audio/wav")
    proc = SwitchProcess(tmp_path_factory.mktemp("baresip"), workers=1,
                         numbers=[{"number": NUMBER, "voice_url": app.url("/from-baresip")}])
    proc.start()
    yield proc
    proc.stop()


def _loud(samples: np.ndarray, rate: int, threshold: float = 1000.0) -> np.ndarray:
    """The 20 ms frames of `samples` that carry sound, end to end."""
    frame = rate // 50
    frames = [samples[i:i + frame] for i in range(0, len(samples) - frame + 1, frame)]
    loud = [f for f in frames if rms(f) > threshold]
    return np.concatenate(loud) if loud else np.zeros(0, dtype=samples.dtype)


def test_the_switch_calls_baresip_plays_to_it_and_records_it(switch: SwitchProcess, app: WebhookSink,
                                                            tmp_path: Path) -> None:
    response = VoiceResponse()
    response.play(app.url("/tone1200.wav"))
    response.record(max_length=2, play_beep=False, action=app.url("/baresip-recorded"), timeout=5)
    app.twiml("/baresip-recorded", str(VoiceResponse()))  # the action ends the call
    with BaresipPeer(tmp_path / "baresip", tone=440, codec="PCMU") as peer:
        sid = switch.client().calls.create(to=peer.uri, from_="+15550199", twiml=str(response),
                                           status_callback=app.url("/baresip-status"),
                                           status_callback_event=EVENTS).sid
        hooks = app.wait_statuses("/baresip-status", sid, 4, timeout=30)
        heard, rate = read_wav(peer.heard())
        log = peer.log()
    assert [h.params["CallStatus"] for h in hooks] == ["initiated", "ringing", "in-progress", "completed"]
    assert [h.params["SequenceNumber"] for h in hooks] == ["0", "1", "2", "3"]
    assert "Call established" in log and "PCMU" in log
    tone = _loud(heard, rate)
    assert len(tone) >= rate  # most of the 1.5 s <Play> arrived
    assert abs(dominant_frequency(tone, rate) - 1200.0) < 10
    action = next(h.params for h in app.for_path("/baresip-recorded") if h.params["CallSid"] == sid)
    recorded, rec_rate = switch.recording(action["RecordingUrl"])
    assert 1.5 <= len(recorded) / rec_rate <= 2.5 and int(action["RecordingDuration"]) >= 1
    assert abs(dominant_frequency(recorded[:, 0], rec_rate) - 440.0) < 10  # baresip's tone, recorded
    call = switch.client().calls(sid).fetch()
    assert (call.status, call.direction, call.to) == ("completed", "outbound-api", peer.uri)


def test_baresip_calls_a_number_that_dials_a_lab_phone_across_codecs(switch: SwitchProcess, app: WebhookSink,
                                                                      tmp_path: Path) -> None:
    phone_heard = tmp_path / "phone.wav"
    with PhoneProcess(["--answer", "auto", "--tone", "1000", "--record", str(phone_heard),
                       "--hangup-after", "3"]) as phone:
        response = VoiceResponse()
        dial = Dial(action="/baresip-dialed")
        dial.sip(phone.uri("agent"), status_callback="/baresip-child", status_callback_event=" ".join(EVENTS))
        response.append(dial)
        app.twiml("/from-baresip", str(response))
        app.twiml("/baresip-dialed", str(VoiceResponse()))
        # baresip offers A-law only; the lab phone takes mu-law: the switch's bridge transcodes.
        with BaresipPeer(tmp_path / "baresip", tone=440, codec="PCMA",
                         dial=f"sip:{NUMBER}@{switch.sip_uri_host}") as peer:
            action = app.wait_for(lambda hs: any(h.path == "/baresip-dialed" for h in hs), 30)
            heard, rate = read_wav(peer.heard())
            log = peer.log()
        phone.wait_for("hangup", timeout=10)
    params = next(h.params for h in action if h.path == "/baresip-dialed")
    assert params["DialCallStatus"] == "completed" and params["From"].startswith("bot")
    child = params["DialCallSid"]
    assert app.statuses("/baresip-child", child) == ["initiated", "ringing", "in-progress", "completed"]
    assert "PCMA" in log and "Call established" in log
    tone = _loud(heard, rate)
    assert len(tone) >= 2 * rate and abs(dominant_frequency(tone, rate) - 1000.0) < 10  # the phone, at baresip
    samples, phone_rate = read_wav(phone_heard)
    assert band_energy_ratio(_loud(samples, phone_rate), phone_rate, 440.0) > 0.8  # baresip, at the phone
    parent = switch.client().calls(params["CallSid"]).fetch()
    assert (parent.status, parent.direction) == ("completed", "inbound")


# -- baresip registered at a registrar (sipp, tests/peers/sipp/uas_phone_registrar.xml) ------------------------
DOMAIN = "acme.sip.localhost"


def _registrar(refuse: int = 403) -> SippPeer:
    """sipp as a digest registrar for alice / pw-1: 401, then 200 (granting 60 s) or ``refuse``."""
    return SippPeer("uas_phone_registrar.xml", auth=("alice", "pw-1"), timeout=30,
                    variables={"granted": 60, "refuse": refuse, "linger_ms": 2000})


async def test_baresip_registers_after_a_challenge_answers_a_call_and_unregisters(tmp_path: Path) -> None:
    phone_heard = tmp_path / "phone.wav"
    async with _registrar() as registrar:
        with BaresipPeer(tmp_path / "alice", user="alice", tone=440, domain=DOMAIN, password="pw-1",
                         outbound=f"sip:{registrar.uri_host}", seconds=20) as peer:
            assert peer.wait_registered(timeout=5) == 200
            assert peer.registration() == ("registered", 200)
            # still a far end as before: a lab phone calls it (directly), both ways' audio is measured
            with PhoneProcess(["--call", peer.uri, "--tone", "1000", "--record", str(phone_heard),
                               "--hangup-after", "2"]) as phone:
                assert await phone.wait_async(15) == 0, phone.describe()
            heard, rate = read_wav(peer.heard())
        assert await registrar.wait(10) == EXIT_OK, registrar.describe()  # the un-REGISTER came at exit
    assert registrar.codes_sent() == [401, 200, 200]
    assert registrar.verify_digest("alice", "pw-1")
    registers = [m for m in registrar.messages(False) if m.direction == "received" and m.method == "REGISTER"]
    first, last = registers[0], registers[-1]
    assert first.request_uri == f"sip:{DOMAIN}" and f"sip:alice@{DOMAIN}" in (first.header("To") or "")
    assert f"<sip:{registrar.uri_host};lr>" in (first.header("Route") or "")  # the outbound proxy
    assert "expires=0" in (last.header("Contact") or "") or last.header("Expires") == "0"
    assert phone.names() == ["ready", "calling", "ringing", "answered", "hangup", "exit"], phone.describe()
    tone = _loud(heard, rate)
    assert len(tone) >= rate and abs(dominant_frequency(tone, rate) - 1000.0) < 10  # the phone, at baresip
    samples, phone_rate = read_wav(phone_heard)
    assert band_energy_ratio(_loud(samples, phone_rate), phone_rate, 440.0) > 0.8  # baresip, at the phone


def test_baresip_with_a_wrong_password_reports_the_403(tmp_path: Path) -> None:
    with _registrar(refuse=403) as registrar:
        with BaresipPeer(tmp_path / "alice", user="alice", domain=DOMAIN, password="wrong",
                         outbound=f"sip:{registrar.uri_host}", seconds=10) as peer:
            with pytest.raises(RegistrationFailed) as failed:
                peer.wait_registered(timeout=5)
            assert peer.registration() == ("failed", 403)
        assert registrar.wait_sync(10) == EXIT_OK, registrar.describe()  # no other REGISTER for 2 s
    assert (failed.value.code, failed.value.reason) == (403, "Forbidden")
    assert registrar.codes_sent() == [401, 403]
