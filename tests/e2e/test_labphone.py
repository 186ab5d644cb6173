"""The lab phone (switch/worker/labphone.py) against real peers: sipp, and another lab phone.

Every phone binds a port the OS picks (``--sip 127.0.0.1:0``) and reports it in its ``ready`` event, so these
tests run beside other SIP tests on the same machine.  Whole event sequences are asserted, and the audio each
phone recorded is checked by its dominant frequency (media/tones.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from media.audio import read_wav, write_wav
from media.tones import band_energy_ratio, dominant_frequency, rms, sine
from tests.peers.phone import PhoneProcess
from tests.peers.sipp_peer import EXIT_OK, SippPeer

SKIP_SECONDS = 0.3  # jitter buffer fill and the first packets: not part of the steady tone


def _tone_at(path: Path) -> tuple[float, float, float, float]:
    """(dominant Hz, share of energy near it, rms, seconds) of a recording, after its first 0.3 s."""
    samples, rate = read_wav(path)
    assert rate == 8000
    steady = samples[int(SKIP_SECONDS * rate) :]
    hz = dominant_frequency(steady, rate)
    return hz, band_energy_ratio(steady, rate, hz), rms(steady), len(samples) / rate


# -- media/tones.py -------------------------------------------------------------------------------------------
def test_sine_is_int16_at_the_asked_level() -> None:
    tone = sine(1000.0, 0.5, rate=8000, amplitude=0.5)
    assert tone.dtype == np.int16 and tone.shape == (4000,)
    assert abs(int(tone.max()) - 16384) < 10
    assert rms(tone) == pytest.approx(16383.5 / np.sqrt(2), rel=0.01)
    with pytest.raises(ValueError):
        sine(1000.0, 1.0, amplitude=1.5)


@pytest.mark.parametrize("hz", [300.0, 440.0, 1000.0, 1633.5, 3400.0])
def test_dominant_frequency_finds_the_tone(hz: float) -> None:
    assert dominant_frequency(sine(hz, 1.0), 8000) == pytest.approx(hz, abs=0.5)
    # a short window still lands within a few hertz thanks to the interpolation
    assert dominant_frequency(sine(hz, 0.1), 8000) == pytest.approx(hz, abs=5.0)


def test_band_energy_ratio_and_mixtures() -> None:
    mix = sine(440.0, 1.0, amplitude=0.4).astype(np.int32) + sine(1000.0, 1.0, amplitude=0.2)
    assert dominant_frequency(mix, 8000) == pytest.approx(440.0, abs=0.5)
    assert band_energy_ratio(mix, 8000, 440.0) == pytest.approx(0.8, abs=0.02)
    assert band_energy_ratio(mix, 8000, 1000.0) == pytest.approx(0.2, abs=0.02)
    assert band_energy_ratio(np.zeros(800, dtype=np.int16), 8000, 440.0) == 0.0
    assert dominant_frequency(np.zeros(800, dtype=np.int16), 8000) == 0.0
    assert rms(np.array([], dtype=np.int16)) == 0.0
    with pytest.raises(ValueError):
        dominant_frequency(np.zeros(1, dtype=np.int16), 8000)


def test_write_wav_round_trip(tmp_path: Path) -> None:
    tone = sine(440.0, 0.25)
    write_wav(tmp_path / "t.wav", tone)
    back, rate = read_wav(tmp_path / "t.wav")
    assert rate == 8000 and np.array_equal(back, tone)


# -- the phone against sipp ------------------------------------------------------------------------------------
async def test_phone_answers_a_sipp_call() -> None:
    with PhoneProcess(["--answer", "auto", "--exit-after-calls", "1"]) as phone:
        peer = SippPeer("uac_inbound.xml", remote=phone.sip, service="phone", variables={"pause_ms": 800},
                        timeout=15)
        async with peer:
            assert await peer.wait(20) == EXIT_OK, peer.describe()
        assert await phone.wait_async(10) == 0, phone.describe()
        assert phone.names() == ["ready", "incoming", "answered", "hangup", "exit"], phone.describe()
        invite = peer.first("sent", "INVITE")
        assert invite is not None
        incoming = phone.events("incoming")[0]
        assert incoming["call_id"] == invite.call_id
        assert "sipp@127.0.0.1" in incoming["from"] and "phone@127.0.0.1" in incoming["to"]
        hangup = phone.events("hangup")[0]
        assert hangup["by"] == "remote" and hangup["code"] == 200
        assert 0.6 < hangup["duration"] < 3.0
        assert phone.events("exit")[0]["reason"] == "calls"
        assert peer.codes_received() == [100, 180, 200, 200], peer.describe()
        assert peer.methods_sent() == ["INVITE", "ACK", "BYE"]
        answer = peer.first("received", 200)
        assert answer is not None and "PCMU/8000" in answer.body and "telephone-event/8000" in answer.body


async def test_phone_calls_sipp_with_early_media() -> None:
    async with SippPeer("uas_early_media.xml", variables={"pause_ms": 300}, timeout=15) as peer:
        with PhoneProcess(["--call", f"sip:callee@{peer.uri_host}", "--hangup-after", "0.5"]) as phone:
            assert await phone.wait_async(10) == 0, phone.describe()
        assert await peer.wait(10) == EXIT_OK, peer.describe()
    assert phone.names() == ["ready", "calling", "ringing", "answered", "hangup", "exit"], phone.describe()
    assert phone.events("ringing")[0]["code"] == 183
    hangup = phone.events("hangup")[0]
    assert (hangup["by"], hangup["code"]) == ("local", 200) and hangup["duration"] == pytest.approx(0.5, abs=0.2)
    assert peer.methods_received() == ["INVITE", "ACK", "BYE"]
    assert peer.codes_sent() == [100, 183, 200, 200]
    invite = peer.first("received", "INVITE")
    assert invite is not None
    # the offer: G.711 first (PCMU, PCMA), telephone-event, nothing else; media on 127.0.0.1
    sdp = invite.body
    m_line = next(line for line in sdp.splitlines() if line.startswith("m=audio"))
    payloads = m_line.split()[3:]
    assert payloads[:2] == ["0", "8"] and len(payloads) == 3, sdp
    assert f"a=rtpmap:{payloads[2]} telephone-event/8000" in sdp
    assert "c=IN IP4 127.0.0.1" in sdp


REGISTRAR = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="registrar: 401 challenge, 200, then the un-REGISTER">
  <recv request="REGISTER" crlf="true" />
  <send>
    <![CDATA[

      SIP/2.0 401 Unauthorized
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]R[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      WWW-Authenticate: Digest realm="softswitch.test", nonce="[pid]n[call_number]", algorithm=MD5
      Content-Length: 0

    ]]>
  </send>
{ok}
{ok}
</scenario>
"""
_REGISTER_OK = """  <recv request="REGISTER" crlf="true" />
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]R[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Contact:]
      Expires: 60
      Content-Length: 0

    ]]>
  </send>"""


async def test_phone_registers_with_digest_and_unregisters(tmp_path: Path) -> None:
    scenario = tmp_path / "registrar.xml"
    scenario.write_text(REGISTRAR.replace("{ok}", _REGISTER_OK))
    async with SippPeer(scenario, timeout=10) as registrar:
        args = ["--register", f"sip:{registrar.uri_host}", "--user", "alice", "--password", "pw-1",
                "--max-seconds", "1"]
        with PhoneProcess(args) as phone:
            assert await phone.wait_async(10) == 0, phone.describe()
        assert await registrar.wait(10) == EXIT_OK, registrar.describe()
    # Account.shutdown() detaches the Python account first, so the un-REGISTER's answer raises no event.
    assert phone.names() == ["ready", "registered", "exit"], phone.describe()
    registered = phone.events("registered")[0]
    assert (registered["code"], registered["reason"], registered["expires"]) == (200, "OK", 60)
    assert registrar.methods_received() == ["REGISTER"] * 3, registrar.describe()
    assert registrar.codes_sent() == [401, 200, 200]
    assert registrar.verify_digest("alice", "pw-1")
    unregister = [m for m in registrar.messages(False) if m.method == "REGISTER"][-1]
    assert unregister.header("Expires") == "0" or "expires=0" in (unregister.header("Contact") or "")
    first = registrar.first("received", "REGISTER")
    assert first is not None and "alice@127.0.0.1" in (first.header("From") or "")


# -- phone to phone --------------------------------------------------------------------------------------------
async def test_phone_to_phone_tones_recordings_and_dtmf(tmp_path: Path) -> None:
    a_wav, b_wav = tmp_path / "a.wav", tmp_path / "b.wav"
    b_args = ["--answer", "auto", "--tone", "1000", "--record", str(b_wav), "--exit-after-calls", "1"]
    with PhoneProcess(b_args) as b:
        a_args = ["--call", b.uri("b"), "--tone", "440", "--record", str(a_wav), "--hangup-after", "3",
                  "--dtmf", "123", "--dtmf-after", "1"]
        with PhoneProcess(a_args) as a:
            assert await a.wait_async(15) == 0, a.describe()
        assert await b.wait_async(10) == 0, b.describe()

    assert a.names() == ["ready", "calling", "ringing", "answered", "dtmf_sent", "hangup", "exit"], a.describe()
    assert b.names() == ["ready", "incoming", "answered", "dtmf", "dtmf", "dtmf", "hangup", "exit"], b.describe()
    call_id = a.events("calling")[0]["call_id"]
    assert {e["call_id"] for e in a.events() + b.events() if "call_id" in e} == {call_id}
    assert a.events("ringing")[0]["code"] == 180
    assert a.events("dtmf_sent")[0]["digits"] == "123"
    assert [(e["digit"], e["method"]) for e in b.events("dtmf")] == [("1", "rfc2833"), ("2", "rfc2833"),
                                                                      ("3", "rfc2833")]
    a_hangup, b_hangup = a.events("hangup")[0], b.events("hangup")[0]
    assert (a_hangup["by"], b_hangup["by"]) == ("local", "remote")
    assert a_hangup["code"] == b_hangup["code"] == 200
    assert a_hangup["duration"] == pytest.approx(3.0, abs=0.3)
    assert (a_hangup["recording"], b_hangup["recording"]) == (str(a_wav), str(b_wav))
    # the first dtmf arrives about --dtmf-after seconds after the answer
    first_digit = b.events("dtmf")[0]["t"] - b.events("answered")[0]["t"]
    assert 0.8 < first_digit < 1.6

    a_hz, a_share, a_rms, a_len = _tone_at(a_wav)  # A heard B's 1000 Hz
    b_hz, b_share, b_rms, b_len = _tone_at(b_wav)  # B heard A's 440 Hz
    assert a_hz == pytest.approx(1000.0, abs=10.0)
    assert b_hz == pytest.approx(440.0, abs=10.0)
    assert a_share > 0.9 and b_share > 0.8  # B's recording has the DTMF gaps in it
    assert a_rms > 5000 and b_rms > 5000  # amplitude 0.5 survives G.711 (rms ~11500)
    assert a_len == pytest.approx(3.0, abs=0.3) and b_len == pytest.approx(3.0, abs=0.3)


@pytest.mark.parametrize(
    ("mode", "ring", "code"),
    [("busy", "--no-ring", 486), ("reject", "--ring", 603)],
)
async def test_phone_refuses_calls(mode: str, ring: str, code: int) -> None:
    with PhoneProcess(["--answer", mode, ring, "--exit-after-calls", "1"]) as b:
        with PhoneProcess(["--call", b.uri("b")]) as a:
            assert await a.wait_async(10) == 0, a.describe()
        assert await b.wait_async(10) == 0, b.describe()
    ringing = ["ringing"] if ring == "--ring" else []
    assert a.names() == ["ready", "calling", *ringing, "hangup", "exit"], a.describe()
    assert b.names() == ["ready", "incoming", "hangup", "exit"], b.describe()
    a_hangup, b_hangup = a.events("hangup")[0], b.events("hangup")[0]
    assert (a_hangup["code"], a_hangup["by"], a_hangup["duration"]) == (code, "remote", 0.0)
    assert (b_hangup["code"], b_hangup["by"]) == (code, "local")


async def test_ignored_call_is_cancelled_when_the_caller_gives_up() -> None:
    with PhoneProcess(["--answer", "ignore", "--exit-after-calls", "1"]) as b:
        with PhoneProcess(["--call", b.uri("b"), "--max-seconds", "1.5"]) as a:
            assert await a.wait_async(10) == 0, a.describe()
        assert await b.wait_async(10) == 0, b.describe()
    assert a.names() == ["ready", "calling", "ringing", "hangup", "exit"], a.describe()
    assert b.names() == ["ready", "incoming", "hangup", "exit"], b.describe()
    assert a.events("exit")[0]["reason"] == "max-seconds"
    assert (a.events("hangup")[0]["code"], a.events("hangup")[0]["by"]) == (487, "local")
    assert (b.events("hangup")[0]["code"], b.events("hangup")[0]["by"]) == (487, "remote")
    assert b.events("exit")[0]["reason"] == "calls"


async def test_sigterm_hangs_up_cleanly_and_sip_info_dtmf_arrives() -> None:
    with PhoneProcess(["--answer", "auto", "--answer-after", "0.3", "--exit-after-calls", "1"]) as b:
        a_args = ["--call", b.uri("b"), "--dtmf", "9*", "--dtmf-after", "0.2", "--dtmf-method", "info"]
        with PhoneProcess(a_args) as a:
            await b.event("dtmf", timeout=10, count=2)
            a.terminate()
            assert await a.wait_async(10) == 0, a.describe()
        assert await b.wait_async(10) == 0, b.describe()
    assert a.names() == ["ready", "calling", "ringing", "answered", "dtmf_sent", "hangup", "exit"], a.describe()
    assert b.names() == ["ready", "incoming", "answered", "dtmf", "dtmf", "hangup", "exit"], b.describe()
    answered_after = a.events("answered")[0]["t"] - a.events("ringing")[0]["t"]
    assert 0.25 < answered_after < 1.0  # --answer-after 0.3
    assert [(e["digit"], e["method"]) for e in b.events("dtmf")] == [("9", "info"), ("*", "info")]
    assert a.events("exit")[0]["reason"] == "signal"
    assert (a.events("hangup")[0]["by"], b.events("hangup")[0]["by"]) == ("local", "remote")
    assert b.events("hangup")[0]["code"] == 200


async def test_play_file_and_bad_arguments(tmp_path: Path) -> None:
    wav = tmp_path / "in.wav"
    write_wav(wav, sine(700.0, 0.5, rate=16000), rate=16000)  # resampled to the 8 kHz bridge by pjmedia
    heard = tmp_path / "heard.wav"
    with PhoneProcess(["--answer", "auto", "--play", str(wav), "--exit-after-calls", "1"]) as b:
        with PhoneProcess(["--call", b.uri(), "--record", str(heard), "--hangup-after", "1.2"]) as a:
            assert await a.wait_async(10) == 0, a.describe()
        assert await b.wait_async(10) == 0, b.describe()
    hz, share, _, seconds = _tone_at(heard)
    assert hz == pytest.approx(700.0, abs=10.0) and share > 0.8
    assert seconds == pytest.approx(1.2, abs=0.3)

    with PhoneProcess(["--play", str(tmp_path / "missing.wav")], ready=False) as bad:
        assert await bad.wait_async(10) == 1, bad.describe()
    assert bad.names() == ["error", "exit"]
    assert "missing.wav" in bad.events("error")[0]["message"]
