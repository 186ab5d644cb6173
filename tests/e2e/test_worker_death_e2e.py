"""End to end: a media worker killed (SIGKILL) mid-call; every far end of its calls is told within 2 s (issue 13
section 3) and every such call ends `failed` with a notification that says why.

The worker reports each leg's dialog to the control plane; when it dies, `switch.workers.reaper` sends from its
SIP port: BYE on answered legs, CANCEL on our unanswered INVITEs (their 487 ACKed), 503 to a caller not answered
yet (ACKed by the caller).  Real peers check what they get: sipp scenarios that wait for the BYE, the CANCEL or
the 503 (each fails on anything else), and the lab phone on both sides of a call.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.harness import ACCOUNT_SID, SwitchProcess, WebhookSink, wait_until
from tests.peers.phone import PhoneProcess
from tests.peers.sipp_peer import SipMessage, SippPeer

NUMBER = "+15550177"
SLOW_NUMBER = "+15550178"
EVENTS = ["initiated", "ringing", "answered", "completed"]
PAUSE = "<Response><Pause length='60'/></Response>"
DEADLINE = 2.0  # seconds from the kill to the far end's BYE/CANCEL/503
WORKER_LOST = 12400  # Twilio's "Internal Failure"


@pytest.fixture(scope="module")
def hooks() -> Iterator[WebhookSink]:
    sink = WebhookSink().start()
    sink.twiml("/pause", PAUSE)
    sink.twiml("/slow", PAUSE)
    sink.delays["/slow"] = 8.0  # the caller keeps ringing while the app thinks
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, hooks: WebhookSink) -> Iterator[SwitchProcess]:
    """One worker: every call of a test is on the worker it kills."""
    proc = SwitchProcess(tmp_path_factory.mktemp("death"), workers=1, numbers=[
        {"number": NUMBER, "voice_url": hooks.url("/pause"), "status_callback": hooks.url("/in-status")},
        {"number": SLOW_NUMBER, "voice_url": hooks.url("/slow"), "status_callback": hooks.url("/in-status")},
    ])
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()


def _kill_worker(switch: SwitchProcess) -> tuple[int, float]:
    """SIGKILL worker 0; (its pid, when)."""
    worker = switch.healthz()[1]["workers"][0]
    killed = time.time()
    os.kill(worker["pid"], signal.SIGKILL)
    return worker["pid"], killed


def _recovered(switch: SwitchProcess, pid: int) -> None:
    wait_until(lambda: switch.healthz()[0] == 200, timeout=15, what="/healthz to recover")
    worker = switch.healthz()[1]["workers"][0]
    assert worker["pid"] != pid and worker["up"] and worker["in_use"] == 0


def _notes(switch: SwitchProcess, sid: str) -> list[tuple[int, str]]:
    body = json.loads(switch.get(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}/Notifications.json"))
    return [(int(n["error_code"]), str(n["message_text"])) for n in body["notifications"]]


def _tag(value: str | None) -> str:
    assert value is not None
    return value.split(";tag=", 1)[1].split(";", 1)[0]


def _branch(message: SipMessage) -> str:
    via = message.header("Via")
    assert via is not None
    return via.split("branch=", 1)[1].split(";", 1)[0]


def _assert_lost(switch: SwitchProcess, sid: str, ending: str) -> None:
    call = switch.client().calls(sid).fetch()
    assert call.status == "failed"
    notes = _notes(switch, sid)
    assert len(notes) == 1, notes
    code, text = notes[0]
    assert code == WORKER_LOST
    assert "media worker" in text and "killed by signal 9 (SIGKILL)" in text and ending in text, text


def test_outbound_legs_get_bye_and_cancel(switch: SwitchProcess, hooks: WebhookSink) -> None:
    client = switch.client()
    with SippPeer("uas_answer.xml", timeout=30) as answering, SippPeer("uas_noanswer.xml", timeout=30) as ringing:
        up = client.calls.create(to=f"sip:bob@{answering.uri_host}", from_="+15550199", twiml=PAUSE,
                                 status_callback=hooks.url("/out"), status_callback_event=EVENTS).sid
        hooks.wait_statuses("/out", up, 3)
        rung = client.calls.create(to=f"sip:carol@{ringing.uri_host}", from_="+15550199", twiml=PAUSE, timeout=60,
                                   status_callback=hooks.url("/out"), status_callback_event=EVENTS).sid
        hooks.wait_statuses("/out", rung, 2)
        pid, killed = _kill_worker(switch)
        assert answering.wait_sync(10) == 0, answering.describe()
        assert ringing.wait_sync(10) == 0, ringing.describe()
    # The answered leg: a BYE in its dialog (Call-ID, both tags), within 2 s, answered 200 by sipp.
    invite, bye = answering.first("received", "INVITE"), answering.first("received", "BYE")
    ok = answering.first("sent", 200)
    assert invite is not None and bye is not None and ok is not None
    assert bye.timestamp - killed < DEADLINE, bye.timestamp - killed
    assert answering.methods_received() == ["INVITE", "ACK", "BYE"]
    assert bye.call_id == invite.call_id
    assert _tag(bye.header("From")) == _tag(invite.header("From"))
    assert _tag(bye.header("To")) == _tag(ok.header("To"))
    assert bye.request_uri == f"sip:sipp@{answering.uri_host};transport=UDP"  # its Contact
    assert bye.header("Reason") == 'Q.850;cause=41;text="media worker lost"'
    # The ringing leg: a CANCEL of the INVITE (same branch, CSeq number, Request-URI), its 487 ACKed.
    invite, cancel = ringing.first("received", "INVITE"), ringing.first("received", "CANCEL")
    assert invite is not None and cancel is not None
    assert cancel.timestamp - killed < DEADLINE, cancel.timestamp - killed
    assert ringing.methods_received() == ["INVITE", "CANCEL", "ACK"]
    assert ringing.codes_sent() == [100, 180, 200, 487]
    assert _branch(cancel) == _branch(invite) and cancel.request_uri == invite.request_uri
    assert (cancel.header("CSeq") or "").split()[0] == (invite.header("CSeq") or "").split()[0]
    # Each call: its whole callback sequence, one `failed`, and the notification that says why.
    hooks.wait_statuses("/out", up, 4)
    hooks.wait_statuses("/out", rung, 3)
    assert hooks.statuses("/out", up) == ["initiated", "ringing", "in-progress", "failed"]
    assert hooks.statuses("/out", rung) == ["initiated", "ringing", "failed"]
    _assert_lost(switch, up, "BYE")
    _assert_lost(switch, rung, "CANCEL")
    _recovered(switch, pid)


def test_lab_phones_on_both_sides_get_bye(switch: SwitchProcess, hooks: WebhookSink) -> None:
    """A phone that called the switch (inbound, answered) and one the switch called (outbound, answered)."""
    with PhoneProcess(["--answer", "auto", "--exit-after-calls", "1"]) as callee, \
            PhoneProcess(["--call", f"sip:{NUMBER}@{switch.sip_uri_host}", "--exit-after-calls", "1"]) as caller:
        caller.wait_for("answered", timeout=15)
        out = switch.client().calls.create(to=callee.uri("dave"), from_="+15550199", twiml=PAUSE,
                                           status_callback=hooks.url("/phone"), status_callback_event=EVENTS).sid
        callee.wait_for("answered", timeout=15)
        hooks.wait_statuses("/phone", out, 3)
        pid, killed = _kill_worker(switch)
        for phone in (caller, callee):
            hangup = phone.wait_for("hangup", timeout=10)
            assert hangup["by"] == "remote", phone.describe()
            assert hangup["t"] - killed < DEADLINE, (hangup["t"] - killed, phone.describe())
    inbound = [c for c in switch.client().calls.list(to=NUMBER) if c.direction == "inbound"]
    assert len(inbound) == 1
    hooks.wait_statuses("/in-status", inbound[0].sid, 1)
    assert hooks.statuses("/in-status", inbound[0].sid) == ["failed"]
    hooks.wait_statuses("/phone", out, 4)
    assert hooks.statuses("/phone", out) == ["initiated", "ringing", "in-progress", "failed"]
    _assert_lost(switch, inbound[0].sid, "BYE")
    _assert_lost(switch, out, "BYE")
    _recovered(switch, pid)


def test_a_caller_still_ringing_gets_503(switch: SwitchProcess, hooks: WebhookSink, tmp_path: Path) -> None:
    with SippPeer("uac_inbound_ring_503.xml", remote=switch.sip_uri_host, service=SLOW_NUMBER, timeout=30) as caller:
        wait_until(lambda: caller.first("received", 180) is not None, what="the caller to hear 180")
        pid, killed = _kill_worker(switch)
        assert caller.wait_sync(10) == 0, caller.describe()
    invite, final = caller.first("sent", "INVITE"), caller.first("received", 503)
    assert invite is not None and final is not None
    assert final.timestamp - killed < DEADLINE, final.timestamp - killed
    assert [c for c in caller.codes_received() if c >= 180] == [180, 503]
    assert caller.methods_sent() == ["INVITE", "ACK"]
    assert final.call_id == invite.call_id and _branch(final) == _branch(invite)
    assert final.header("Reason") == 'Q.850;cause=41;text="media worker lost"'
    calls = [c for c in switch.client().calls.list(to=SLOW_NUMBER) if c.direction == "inbound"]
    assert len(calls) == 1
    hooks.wait_statuses("/in-status", calls[0].sid, 1)
    assert hooks.statuses("/in-status", calls[0].sid) == ["failed"]
    _assert_lost(switch, calls[0].sid, "503")
    _recovered(switch, pid)


def test_a_tcp_leg_gets_its_bye_on_a_new_connection(switch: SwitchProcess, hooks: WebhookSink) -> None:
    """The worker's TCP connection died with it; the lab phone keeps the dialog and takes the BYE on a new one.
    (sipp cannot play this far end: with `-t t1` a call dies with its connection.)"""
    with PhoneProcess(["--answer", "auto", "--exit-after-calls", "1"]) as callee:
        sid = switch.client().calls.create(
            to=f"{callee.uri('erin')};transport=tcp", from_="+15550199", twiml=PAUSE,
            status_callback=hooks.url("/tcp"), status_callback_event=EVENTS).sid
        callee.wait_for("answered", timeout=15)
        hooks.wait_statuses("/tcp", sid, 3)
        pid, killed = _kill_worker(switch)
        hangup = callee.wait_for("hangup", timeout=10)
        assert hangup["by"] == "remote", callee.describe()
        assert hangup["t"] - killed < DEADLINE, (hangup["t"] - killed, callee.describe())
    hooks.wait_statuses("/tcp", sid, 4)
    assert hooks.statuses("/tcp", sid) == ["initiated", "ringing", "in-progress", "failed"]
    _assert_lost(switch, sid, "BYE")
    _recovered(switch, pid)
    assert "ended from the control plane: BYE answered 200" in switch.log()
