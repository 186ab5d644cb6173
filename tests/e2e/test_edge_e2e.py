"""The SIP edge (Kamailio) in front of the workers, end to end with real peers on loopback.

- more simultaneous inbound <Dial> calls on one public address than one worker holds, each bridged with its
  audio measured both ways (the PyPI engine: 4 legs per worker, so 3 bridged calls need both workers);
- a storm of short calls and TCP connect/close churn at the public address: every INVITE gets 200 or 503 with
  Retry-After, no worker dies, a live call keeps its audio and ends with its whole callback sequence;
- Kamailio killed with SIGKILL mid-call: restarted, the live call keeps its media and ends through the new edge
  with its callbacks, and a new call works.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf

from media.audio import read_wav
from media.tones import band_energy_ratio, rms, sine
from tests.peers.harness import SwitchProcess, WebhookSink, wait_until
from tests.peers.phone import PhoneProcess
from tests.peers.sipp_peer import SippPeer

NUMBERS = ["+15550131", "+15550132", "+15550133"]
PLAY_NUMBER = "+15550139"
STORM_NUMBER = "+15550138"
EVENTS = ["initiated", "ringing", "answered", "completed"]
TONE = 700.0


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, app: WebhookSink) -> Iterator[SwitchProcess]:
    data = io.BytesIO()
    sf.write(data, sine(TONE, 1.0, rate=8000), 8000, format="WAV", subtype="PCM_16")
    body = data.getvalue()
    app.responses["/edge-tone.wav"] = lambda _h: (200, body, "audio/wav")
    app.twiml("/edge-play", f'<Response><Play loop="0">{app.url("/edge-tone.wav")}</Play></Response>')
    numbers = [{"number": n, "voice_url": app.url(f"/edge-dial-{i}"), "status_callback": app.url("/edge-status")}
               for i, n in enumerate(NUMBERS)]
    numbers.append({"number": PLAY_NUMBER, "voice_url": app.url("/edge-play"),
                    "status_callback": app.url("/edge-live")})
    numbers.append({"number": STORM_NUMBER})  # no app: answered, held until the caller hangs up
    proc = SwitchProcess(tmp_path_factory.mktemp("edge"), workers=2, numbers=numbers,
                         edge={"max_cps": 60, "worker_timeout_ms": 1500},
                         extra_env={"SOFTSWITCH_ENGINE": "wheel"})
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()


def _workers(switch: SwitchProcess) -> list[dict[str, object]]:
    return list(switch.healthz()[1]["workers"])


def _edge(switch: SwitchProcess) -> dict[str, object]:
    return dict(switch.healthz()[1]["edge"])


def _tone_share(path: Path, hz: float, start: float = 0.5, end: float | None = None) -> float:
    samples, rate = read_wav(path)
    part = samples[int(start * rate):int(end * rate) if end else None]
    return band_energy_ratio(part, rate, hz) if len(part) > rate // 2 and rms(part) > 1000 else 0.0


def _statuses(app: WebhookSink, path: str, sid: str) -> list[str]:
    return [h.params["CallStatus"] for h in app.for_path(path) if h.params.get("CallSid") == sid]


def test_more_bridged_calls_on_one_number_than_one_worker_holds(switch: SwitchProcess, app: WebhookSink,
                                                               tmp_path: Path) -> None:
    workers = _workers(switch)
    assert [w["capacity"] for w in workers] == [4, 4]  # the PyPI engine: 2 bridged calls per worker
    callees, callers = [], []
    try:
        for i in range(len(NUMBERS)):
            callee = PhoneProcess(["--answer", "auto", "--tone", str(1000 + 200 * i), "--record",
                                   str(tmp_path / f"callee{i}.wav")]).start()
            callees.append(callee)
            app.twiml(f"/edge-dial-{i}", f"<Response><Dial><Sip>{callee.uri('bob')}</Sip></Dial></Response>")
        for i, number in enumerate(NUMBERS):
            callers.append(PhoneProcess(["--call", f"sip:{number}@{switch.sip_uri_host}", "--tone",
                                         str(300 + 100 * i), "--record", str(tmp_path / f"caller{i}.wav"),
                                         "--hangup-after", "5"]).start())
        wait_until(lambda: sum(int(str(w["in_use"])) for w in _workers(switch)) == 6, 10, "6 legs up")
        in_use = [int(str(w["in_use"])) for w in _workers(switch)]
        assert sorted(in_use) == [2, 4], in_use  # 3 bridged calls over both workers, each call on one
        for caller in callers:
            caller.wait_for("hangup", timeout=15)
    finally:
        for phone in callers + callees:
            phone.stop()
    sids = sorted({h.params["CallSid"] for h in app.for_path("/edge-status")})
    assert len(sids) == 3
    app.wait_for(lambda hs: all("completed" in _statuses(app, "/edge-status", s) for s in sids), 10)
    for i in range(3):
        assert _tone_share(tmp_path / f"caller{i}.wav", 1000 + 200 * i) > 0.5, f"caller {i} heard its callee"
        assert _tone_share(tmp_path / f"callee{i}.wav", 300 + 100 * i) > 0.5, f"callee {i} heard its caller"


def _final_codes(messages: list) -> dict[str, list[int]]:  # type: ignore[type-arg]
    codes: dict[str, list[int]] = defaultdict(list)
    for m in messages:
        if m.is_response and m.cseq_method == "INVITE" and (m.status_code or 0) >= 200:
            codes[m.call_id or ""].append(m.status_code or 0)
    return codes


def _churn(port: int, seconds: float, per_second: int) -> int:
    """Open and close TCP connections to the edge without a byte of SIP, at `per_second` for `seconds`."""
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        tick = time.monotonic()
        for _ in range(per_second // 10):
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                done += 1
        time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
    return done


def test_storm_and_tcp_churn_cost_no_worker_and_no_live_call(switch: SwitchProcess, app: WebhookSink,
                                                            tmp_path: Path) -> None:
    before = {w["worker"]: w["pid"] for w in _workers(switch)}
    edge_pid = _edge(switch)["pid"]
    known = {h.params["CallSid"] for h in app.for_path("/edge-live")}
    record = tmp_path / "live.wav"
    with PhoneProcess(["--call", f"sip:{PLAY_NUMBER}@{switch.sip_uri_host}", "--record", str(record),
                       "--hangup-after", "16"], max_seconds=40) as live:
        live.wait_for("answered", timeout=10)
        storm_start = time.monotonic()
        with SippPeer("uac_storm.xml", remote=("127.0.0.1", switch.sip_port), service=STORM_NUMBER,
                      calls=2000, rate=200, timeout=60, variables={"pause_ms": 100},
                      extra_args=["-trace_msg", "-default_behaviors", "all,-abortunexp"]) as storm:
            churned = _churn(switch.sip_port, 5.0, 200)
            assert storm.wait_sync(45) == 0, storm.describe()
        storm_seconds = time.monotonic() - storm_start
        end = live.wait_for("hangup", timeout=20)
    assert end["by"] == "local" and float(end["duration"]) > 15, end  # not cut off by the storm
    assert churned >= 900
    messages = storm.messages()
    finals = _final_codes(messages)
    invites = {m.call_id for m in messages if m.is_request and m.method == "INVITE"}
    assert len(invites) == 2000 and set(finals) == invites, "every INVITE got a final response"
    codes = [c[0] for c in finals.values()]
    assert set(codes) <= {200, 503}, sorted(set(codes))
    served, refused = codes.count(200), codes.count(503)
    assert served >= 50 and refused >= 200, (served, refused, storm_seconds)  # the wheel: 8 legs in all
    refusals = [m for m in messages if m.is_response and m.status_code == 503]
    assert all(m.header("Retry-After") for m in refusals), "every 503 says when to retry"
    # no worker and no edge died; the live call kept its audio through the storm and ended with its callbacks
    assert {w["worker"]: w["pid"] for w in _workers(switch)} == before
    assert all(w["restarts"] == 0 for w in _workers(switch))
    assert _edge(switch)["pid"] == edge_pid
    app.wait_for(lambda hs: {h.params["CallSid"] for h in app.for_path("/edge-live")} - known != set(), 10)
    (live_sid,) = {h.params["CallSid"] for h in app.for_path("/edge-live")} - known
    assert _statuses(app, "/edge-live", live_sid) == ["completed"]
    for second in range(1, 15, 2):
        assert _tone_share(record, TONE, second, second + 1.0) > 0.8, f"the live call's audio at {second} s"


def test_kamailio_killed_mid_call_is_restarted_and_the_call_goes_on(switch: SwitchProcess, app: WebhookSink,
                                                                    tmp_path: Path) -> None:
    old = _edge(switch)
    known = {h.params["CallSid"] for h in app.for_path("/edge-live")}
    record = tmp_path / "through.wav"
    with PhoneProcess(["--call", f"sip:{PLAY_NUMBER}@{switch.sip_uri_host}", "--record", str(record),
                       "--hangup-after", "6"], max_seconds=30) as phone:
        phone.wait_for("answered", timeout=10)
        time.sleep(1.5)
        os.kill(int(str(old["pid"])), signal.SIGKILL)
        wait_until(lambda: _edge(switch).get("restarts") == int(str(old["restarts"])) + 1
                   and bool(_edge(switch).get("up")), 10, "the edge restarted")
        end = phone.wait_for("hangup", timeout=15)
    # the phone hung up when it meant to, and its BYE reached the worker through the new Kamailio (200)
    assert end["by"] == "local" and end["code"] == 200 and float(end["duration"]) > 5.5, end
    app.wait_for(lambda hs: {h.params["CallSid"] for h in app.for_path("/edge-live")} - known != set(), 10)
    (sid,) = {h.params["CallSid"] for h in app.for_path("/edge-live")} - known
    assert _statuses(app, "/edge-live", sid) == ["completed"]
    call = switch.client().calls(sid).fetch()
    assert call.status == "completed" and int(call.duration or 0) >= 5
    for second in (1, 3, 4.5):
        assert _tone_share(record, TONE, second, second + 1.0) > 0.8, f"audio at {second} s (killed at ~1.5 s)"
    # a new call through the restarted edge
    with PhoneProcess(["--call", f"sip:{PLAY_NUMBER}@{switch.sip_uri_host}", "--hangup-after", "1"]) as again:
        again.wait_for("answered", timeout=10)
        again.wait_for("hangup", timeout=10)


def test_a_killed_switch_leaves_kamailio_and_the_next_start_replaces_it(tmp_path: Path, app: WebhookSink) -> None:
    number = "+15550137"
    (tmp_path / "crash").mkdir()
    crashed = SwitchProcess(tmp_path / "crash", workers=1, edge={},
                            numbers=[{"number": number, "status_callback": app.url("/edge-crash")}]).start()
    try:
        old = int(str(_edge(crashed)["pid"]))
        assert crashed.proc is not None
        crashed.proc.kill()  # SIGKILL: the control plane cannot stop its edge
        crashed.proc.wait()
        crashed.proc = None
        time.sleep(0.5)
        assert Path(f"/proc/{old}").exists()  # Kamailio outlived it, on the public SIP address
        crashed.start()  # the same data dir and address: the stale Kamailio is stopped, a new one starts
        assert int(str(_edge(crashed)["pid"])) != old and not _running(old)
        with PhoneProcess(["--call", f"sip:{number}@{crashed.sip_uri_host}", "--hangup-after", "1"]) as phone:
            phone.wait_for("answered", timeout=10)
            end = phone.wait_for("hangup", timeout=10)
        assert end["by"] == "local" and end["code"] == 200
        app.wait_for(lambda hs: any(h.path == "/edge-crash" for h in hs), 10)
        assert [h.params["CallStatus"] for h in app.for_path("/edge-crash")] == ["completed"]
    finally:
        assert crashed.stop() == 0, crashed.log()
    assert not (tmp_path / "crash" / "data" / "edge" / "kamailio.pid").exists()  # a clean stop leaves no pid file


def _running(pid: int) -> bool:
    """`pid` exists and is not a zombie waiting for its (dead) parent's reaper."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
