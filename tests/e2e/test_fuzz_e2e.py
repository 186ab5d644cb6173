"""1,200 malformed SIP messages to every worker while calls are live: no worker dies, no call is lost (issue 13, §2).

Two calls stay live through the whole run, both placed by REST with a long `<Pause>`:
- one answered by the lab phone (a real pjsua2 UA);
- one answered by a raw UDP peer, whose dialog (`dialog_from_invite`) the corpus aims at: re-INVITEs, in-dialog
  requests with wrong tags and CSeqs, 180/183/200/486 carrying its Call-ID, tags and the switch's own Via.
The corpus (`tests.peers.sipfuzz.corpus`, seed 1: random bytes, truncation, missing and duplicated headers, bad
Content-Length, huge and numerous headers, odd Via, non-UTF-8 in every field, broken SDP, 2xx without a To tag,
Replaces, ...) goes to each worker's SIP port over UDP, then TCP (a connection per message, then pipelined), one
sender thread per worker, in parallel.  Throughout, `/healthz` stays 200; afterwards both workers have their pids,
the log never says a worker was lost, and each live call, hung up by REST, ends with its whole callback sequence.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import INBOUND_NUMBER
from tests.peers.harness import SwitchProcess, WebhookSink, wait_until
from tests.peers.phone import PhoneProcess
from tests.peers.sipfuzz import SendReport, corpus, dialog_from_invite, send_corpus
from tests.peers.sipfuzz_peer import PEER_TAG, RawPeer, reply, sdp_with
from tests.peers.sipp_peer import free_udp_port

ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]
LIVE = "<Response><Pause length='300'/></Response>"
SEED = 1
COUNT = 1200


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, sink: WebhookSink) -> Iterator[SwitchProcess]:
    """Two workers; the fuzz INVITEs call a number whose app answers (SDP is only negotiated on an answer)."""
    workdir: Path = tmp_path_factory.mktemp("switch")
    voice = sink.twiml("/voice", "<Response><Pause length='5'/></Response>")
    proc = SwitchProcess(workdir, workers=2, numbers=[
        {"number": INBOUND_NUMBER, "voice_url": voice, "status_callback": sink.url("/inbound-status")}])
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, f"switch exited with {code}:\n{proc.log()}"


def _live_call(switch: SwitchProcess, sink: WebhookSink, to: str, path: str) -> str:
    call = switch.client().calls.create(to=to, from_="+15550199", twiml=LIVE, status_callback=sink.url(path),
                                        status_callback_event=ALL_EVENTS)
    return str(call.sid)


def test_fuzz_corpus_to_every_worker_with_live_calls(switch: SwitchProcess, sink: WebhookSink) -> None:
    started = time.monotonic()
    status, health = switch.healthz()
    assert status == 200
    pids = {int(w["worker"]): int(w["pid"]) for w in health["workers"]}
    ports = [int(w["sip"].rpartition(":")[2]) for w in health["workers"]]
    assert len(ports) == 2

    with PhoneProcess(["--answer", "auto", "--max-seconds", "170"]) as phone:
        phone_sid = _live_call(switch, sink, phone.uri(), "/phone")
        phone.wait_for("answered", timeout=15)
        wait_until(lambda: switch.client().calls(phone_sid).fetch().status == "in-progress", what="phone call up")

        # The raw peer answers, hands its dialog to the corpus, and lends its port to the sender of worker 0.
        with RawPeer() as peer:
            peer_port = peer.port
            raw_sid = _live_call(switch, sink, f"sip:peer@{peer.local}", "/raw")
            invite, addr = peer.expect(b"INVITE", timeout=15)
            peer.send(reply(invite, 180, b"Ringing", contact=peer.contact), addr)
            peer.send(reply(invite, 200, b"OK", contact=peer.contact, sdp=sdp_with(rtp_port=free_udp_port())), addr)
            peer.expect(b"ACK", timeout=10)
        dialog = dialog_from_invite(invite, local_tag=PEER_TAG, local_contact=b"<sip:peer@127.0.0.1:%d>" % peer_port)
        wait_until(lambda: switch.client().calls(raw_sid).fetch().status == "in-progress", what="raw call up")

        reports: dict[int, SendReport] = {}
        errors: list[BaseException] = []

        def fuzz(index: int, port: int, local_port: int) -> None:
            try:
                messages = corpus(SEED, COUNT, port=port, via_port=local_port, dialog=dialog)
                reports[index] = send_corpus(messages, "127.0.0.1", port, local_port=local_port,
                                             keep_call_id=dialog.call_id, max_seconds=85)
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)

        senders = [threading.Thread(target=fuzz, args=(i, port, peer_port if i == 0 else free_udp_port()),
                                    name=f"fuzz-{i}") for i, port in enumerate(ports)]
        for sender in senders:
            sender.start()
        unhealthy = []
        while any(s.is_alive() for s in senders):
            code, body = switch.healthz()
            if code != 200:
                unhealthy.append(body)
            time.sleep(0.5)
        assert not errors, errors
        assert not unhealthy, unhealthy[:3]
        for index in range(2):
            report = reports[index]
            assert report.stopped == "", report  # every message went out, in time
            assert report.udp + report.tcp + report.pipelined >= 2 * 1000, report
            assert report.refused == 0, report  # a worker that listens the whole time

        status, health = switch.healthz()
        assert status == 200, health
        assert {int(w["worker"]): int(w["pid"]) for w in health["workers"]} == pids
        assert " lost: " not in switch.log(), switch.log()[-4000:]

        # Both live calls went on; they end, with their whole callback sequence.
        assert switch.client().calls(phone_sid).fetch().status == "in-progress"
        assert switch.client().calls(raw_sid).fetch().status == "in-progress"
        with RawPeer(peer_port) as peer:
            switch.client().calls(raw_sid).update(status="completed")
            bye, addr = peer.expect(b"BYE", timeout=10)
            peer.send(reply(bye, 200, b"OK", contact=peer.contact), addr)
        switch.client().calls(phone_sid).update(status="completed")
        phone.wait_for("hangup", timeout=10)

    for path, sid in (("/phone", phone_sid), ("/raw", raw_sid)):
        hooks = sink.wait_statuses(path, sid, 4, timeout=15)
        assert [h.params["CallStatus"] for h in hooks] == ["initiated", "ringing", "in-progress", "completed"], path
    assert time.monotonic() - started < 120
