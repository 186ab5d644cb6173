"""Graceful drain, end to end: `softswitch serve` gets SIGTERM with a live call from a lab phone.

- through the SIP edge: a new inbound call (sipp) gets 503 with Retry-After from Kamailio (every worker listed
  inactive), a REST Calls.create gets 503 / 20503, the live call keeps its audio (the tone measured on the phone's
  recording) until the phone hangs up by itself; the switch then exits 0 and the call is `completed`, with its
  callback, as a restarted switch shows;
- [server] drain_seconds runs out: the switch hangs the call up (BYE), `completed` with its callback, exit 0;
- without the edge, the worker itself answers a new INVITE 503 with Retry-After, and a second SIGTERM ends the
  live call at once.
"""

from __future__ import annotations

import io
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import soundfile as sf
from twilio.base.exceptions import TwilioRestException

from media.audio import read_wav
from media.tones import band_energy_ratio, rms, sine
from tests.peers.harness import SwitchProcess, WebhookSink, wait_until
from tests.peers.phone import PhoneProcess
from tests.peers.sipp_peer import SippPeer

NUMBER = "+15550191"
TONE = 700.0


@dataclass
class DrainingSwitch(SwitchProcess):
    """The harness's switch, signalled and awaited by the test itself."""

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def exit_code(self, timeout: float) -> int:
        """Wait for the switch to exit by itself (no signal sent)."""
        assert self.proc is not None
        code = self.proc.wait(timeout)
        self.proc = None
        return code


@pytest.fixture(scope="module")
def play_url(app: WebhookSink) -> str:
    data = io.BytesIO()
    sf.write(data, sine(TONE, 1.0, rate=8000), 8000, format="WAV", subtype="PCM_16")
    body = data.getvalue()
    app.responses["/drain-tone.wav"] = lambda _h: (200, body, "audio/wav")
    return app.twiml("/drain-play", f'<Response><Play loop="0">{app.url("/drain-tone.wav")}</Play></Response>')


def _switch(tmp_path: Path, app: WebhookSink, play_url: str, drain: float, edge: bool) -> DrainingSwitch:
    number = {"number": NUMBER, "voice_url": play_url, "status_callback": app.url(f"/drain-status-{tmp_path.name}")}
    return DrainingSwitch(tmp_path, workers=1, numbers=[number], edge={} if edge else None, drain_seconds=drain)


@pytest.fixture
def cleanup() -> Iterator[list[DrainingSwitch]]:
    started: list[DrainingSwitch] = []
    yield started
    for proc in started:
        proc.stop(signal.SIGKILL)


def _draining(switch: SwitchProcess) -> bool:
    status, body = switch.healthz()
    return status == 503 and body.get("status") == "draining" and body.get("draining") is True


def _completed(app: WebhookSink, path: str) -> dict[str, str]:
    """The call's only status callback, which must be `completed`."""
    hooks = app.wait_for(lambda hs: any(h.path == path for h in hs), 10)
    mine = [h for h in hooks if h.path == path]
    assert [h.params["CallStatus"] for h in mine] == ["completed"], [h.params for h in mine]
    return mine[0].params


def _refused_invite(switch: SwitchProcess, reason: str) -> None:
    """A new inbound call (sipp) gets 503 with Retry-After, with `reason`."""
    with SippPeer("uac_inbound_503.xml", remote=switch.sip_uri_host, service=NUMBER, timeout=10) as caller:
        assert caller.wait_sync(12) == 0, caller.describe()
    finals = [m for m in caller.messages() if m.is_response and (m.status_code or 0) >= 200]
    assert [m.status_code for m in finals][:1] == [503] and {m.status_code for m in finals} == {503}
    assert finals[0].reason == reason and finals[0].header("Retry-After") == "5", str(finals[0])


def _rest_refused(switch: SwitchProcess, url: str) -> None:
    with pytest.raises(TwilioRestException) as err:
        switch.client().calls.create(to="sip:nobody@127.0.0.1:9", from_="+15550100", url=url)
    assert err.value.status == 503 and err.value.code == 20503, err.value
    assert "shutting down" in str(err.value.msg)


def _tone_share(path: Path, start: float, end: float) -> float:
    samples, rate = read_wav(path)
    part = samples[int(start * rate):int(end * rate)]
    return band_energy_ratio(part, rate, TONE) if len(part) > rate // 2 and rms(part) > 1000 else 0.0


def test_sigterm_refuses_new_calls_and_lets_the_live_one_finish(tmp_path: Path, app: WebhookSink, play_url: str,
                                                                cleanup: list[DrainingSwitch]) -> None:
    switch = _switch(tmp_path, app, play_url, drain=20, edge=True)
    cleanup.append(switch.start())
    record = tmp_path / "live.wav"
    with PhoneProcess(["--call", f"sip:{NUMBER}@{switch.sip_uri_host}", "--record", str(record),
                       "--hangup-after", "7"], max_seconds=30) as phone:
        phone.wait_for("answered", timeout=10)
        time.sleep(1.5)
        switched = int(switch.healthz()[1]["edge"]["state_changes"])
        switch.signal(signal.SIGTERM)
        signalled = time.monotonic()
        wait_until(lambda: _draining(switch), 5, "/healthz draining")
        # every worker switched inactive in Kamailio's dispatcher (in place: the worker set is the same)
        wait_until(lambda: int(switch.healthz()[1]["edge"]["state_changes"]) > switched, 5, "the workers inactive")
        assert switch.proc is not None and switch.proc.poll() is None
        _refused_invite(switch, "All Workers Busy")  # Kamailio's own answer: no worker is listed active
        _rest_refused(switch, play_url)
        end = phone.wait_for("hangup", timeout=15)
        assert switch.exit_code(10) == 0, switch.log()
    assert end["by"] == "local" and end["code"] == 200 and float(end["duration"]) > 6.5, end
    assert time.monotonic() - signalled < 12  # it exited once the call had ended, not at the drain limit
    assert "while draining: 503" not in switch.log()  # the new call never reached a worker
    params = _completed(app, f"/drain-status-{tmp_path.name}")
    assert int(params["CallDuration"]) >= 6, params
    for second in range(1, 6):  # signalled at about 1.5 s: audio before and after it
        assert _tone_share(record, second, second + 1.0) > 0.8, f"the live call's audio at {second} s"
    # restarted on the same store: the call is completed, not closed as left live by a crash
    switch.start()
    call = switch.client().calls(params["CallSid"]).fetch()
    assert call.status == "completed" and int(call.duration or 0) >= 6
    assert "calls left live" not in switch.log()
    assert switch.stop() == 0


def test_drain_time_over_ends_the_call_with_its_callback(tmp_path: Path, app: WebhookSink, play_url: str,
                                                         cleanup: list[DrainingSwitch]) -> None:
    switch = _switch(tmp_path, app, play_url, drain=2, edge=True)
    cleanup.append(switch.start())
    with PhoneProcess(["--call", f"sip:{NUMBER}@{switch.sip_uri_host}", "--hangup-after", "30"],
                      max_seconds=40) as phone:
        phone.wait_for("answered", timeout=10)
        time.sleep(1.0)
        switch.signal(signal.SIGTERM)
        signalled = time.monotonic()
        end = phone.wait_for("hangup", timeout=10)
        ended = time.monotonic() - signalled
        assert switch.exit_code(10) == 0, switch.log()
    assert end["by"] == "remote", end  # the switch's BYE
    assert 1.8 < ended < 4.0, ended
    params = _completed(app, f"/drain-status-{tmp_path.name}")
    assert 2 <= int(params["CallDuration"]) <= 5, params
    assert "drain time (2 s) over: ending 1 live calls" in switch.log()


def test_second_sigterm_ends_live_calls_at_once_without_the_edge(tmp_path: Path, app: WebhookSink, play_url: str,
                                                                 cleanup: list[DrainingSwitch]) -> None:
    switch = _switch(tmp_path, app, play_url, drain=30, edge=False)
    cleanup.append(switch.start())
    with PhoneProcess(["--call", f"sip:{NUMBER}@{switch.sip_uri_host}", "--hangup-after", "30"],
                      max_seconds=40) as phone:
        phone.wait_for("answered", timeout=10)
        switch.signal(signal.SIGTERM)
        wait_until(lambda: _draining(switch), 5, "/healthz draining")
        _refused_invite(switch, "Service Unavailable")  # the worker's own 503
        _rest_refused(switch, play_url)
        time.sleep(0.5)
        assert "hangup" not in phone.names() and switch.proc is not None and switch.proc.poll() is None
        switch.signal(signal.SIGTERM)
        signalled = time.monotonic()
        end = phone.wait_for("hangup", timeout=10)
        ended = time.monotonic() - signalled
        assert switch.exit_code(10) == 0, switch.log()
    assert end["by"] == "remote" and ended < 1.5, (end, ended)
    _completed(app, f"/drain-status-{tmp_path.name}")
    assert "while draining: 503" in switch.log()
    assert "signalled again: ending 1 live calls now" in switch.log()
