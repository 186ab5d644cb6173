"""SIP over TLS at the edge: `[edge] tls_certificate` makes Kamailio listen for TLS on `tls_port` too.

baresip (libre's TLS client, trusting the test's self-signed certificate) calls a number over TLS; the number's
TwiML dials a lab phone over UDP behind the edge.  Audio is measured both ways, the lab phone hangs up, and the
switch's BYE reaches baresip over the TLS connection it opened (the edge aliases it to baresip's Via address).
A configuration naming a certificate that is not there is one clear error.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from twilio.twiml.voice_response import Dial, VoiceResponse

from media.audio import read_wav
from media.tones import band_energy_ratio, dominant_frequency, rms
from switch.core.config import load_config
from switch.core.errors import ConfigError
from tests.peers.baresip_peer import BaresipPeer
from tests.peers.harness import SwitchProcess, WebhookSink, free_port_block
from tests.peers.phone import PhoneProcess

pytestmark = pytest.mark.e2e

NUMBER = "+15550171"
EVENTS = ["initiated", "ringing", "answered", "completed"]


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl, installed by `make`), valid for a day."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, app: WebhookSink,
           tls: tuple[Path, Path]) -> Iterator[SwitchProcess]:
    cert, key = tls
    numbers = [{"number": NUMBER, "voice_url": app.url("/tls-call"), "status_callback": app.url("/tls-status")}]
    proc = SwitchProcess(tmp_path_factory.mktemp("edge-tls"), workers=1, numbers=numbers,
                         edge={"tls_certificate": str(cert), "tls_private_key": str(key),
                               "tls_port": free_port_block(1)})
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()


def _loud(samples: npt.NDArray[np.int16], rate: int) -> npt.NDArray[np.int16]:
    """The 20 ms frames that carry sound (silence before the answer and after the hang-up left out)."""
    frame = rate // 50
    frames = [samples[i:i + frame] for i in range(0, len(samples) - frame + 1, frame)]
    loud = [f for f in frames if rms(f) > 1000]
    return np.concatenate(loud) if loud else np.zeros(0, dtype=samples.dtype)


def test_a_call_over_tls_is_bridged_with_audio_both_ways_and_ended_over_tls(
        switch: SwitchProcess, app: WebhookSink, tls: tuple[Path, Path], tmp_path: Path) -> None:
    tls_port = int((switch.edge or {})["tls_port"])
    phone_heard = tmp_path / "phone.wav"
    # rings 0.3 s: a 180 sent with the 200 can be overtaken by it in Kamailio, and the ringing callback is asserted
    with PhoneProcess(["--answer", "auto", "--answer-after", "0.3", "--tone", "1000", "--record", str(phone_heard),
                       "--hangup-after", "3"]) as phone:
        response = VoiceResponse()
        dial = Dial(action="/tls-dialed")
        dial.sip(phone.uri("agent"), status_callback="/tls-child", status_callback_event=" ".join(EVENTS))
        response.append(dial)
        app.twiml("/tls-call", str(response))
        app.twiml("/tls-dialed", str(VoiceResponse()))
        with BaresipPeer(tmp_path / "baresip", tone=440, cafile=tls[0],
                         dial=f"sip:{NUMBER}@127.0.0.1:{tls_port};transport=tls") as peer:
            action = app.wait_for(lambda hs: any(h.path == "/tls-dialed" for h in hs), 30)
            heard, rate = read_wav(peer.heard())  # waits for baresip's "terminated": the BYE came over TLS
            log = peer.log()
        phone.wait_for("hangup", timeout=10)
    params = next(h.params for h in action if h.path == "/tls-dialed")
    assert params["DialCallStatus"] == "completed"
    assert app.statuses("/tls-child", params["DialCallSid"]) == ["initiated", "ringing", "in-progress", "completed"]
    assert "Call established" in log and "transport=tls" in log
    tone = _loud(heard, rate)
    assert len(tone) >= 2 * rate and abs(dominant_frequency(tone, rate) - 1000.0) < 10  # the phone, at baresip
    samples, phone_rate = read_wav(phone_heard)
    assert band_energy_ratio(_loud(samples, phone_rate), phone_rate, 440.0) > 0.8  # baresip, at the phone
    parent = switch.client().calls(params["CallSid"]).fetch()
    assert (parent.status, parent.direction) == ("completed", "inbound")
    assert app.statuses("/tls-status", params["CallSid"]) == ["completed"]


def test_a_missing_certificate_is_one_clear_error(tmp_path: Path, tls: tuple[Path, Path]) -> None:
    config = tmp_path / "softswitch.toml"
    config.write_text(f'[edge]\ntls_certificate = "{tls[0]}"\ntls_private_key = "{tmp_path / "nope.pem"}"\n')
    with pytest.raises(ConfigError, match=r"edge\.tls_private_key: cannot read .*nope\.pem: No such file"):
        load_config(config)
    config.write_text(f'[edge]\ntls_certificate = "{tls[0]}"\n')
    with pytest.raises(ConfigError, match="give both or neither"):
        load_config(config)
