"""End to end: capacity across workers, a worker killed mid-call, the switch killed and restarted,
webhooks that fail and come back, and trunk routing with digest auth."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from twilio.base.exceptions import TwilioRestException

from tests.peers.harness import SwitchProcess, WebhookSink, wait_until
from tests.peers.sipp_peer import SippPeer

EVENTS = ["initiated", "ringing", "answered", "completed"]


@pytest.fixture
def own_sink() -> Iterator[WebhookSink]:
    hooks = WebhookSink().start()
    yield hooks
    hooks.stop()


def _statuses(sink: WebhookSink, sid: str, path: str = "/status") -> list[str]:
    return sink.statuses(path, sid)


def test_capacity_spreads_over_workers_and_refuses_beyond(tmp_path: Path, own_sink: WebhookSink) -> None:
    # Full workers need a small limit: the PyPI wheel's 4 legs each (the built engine holds 1,024).
    switch = SwitchProcess(tmp_path, workers=2, extra_env={"SOFTSWITCH_ENGINE": "wheel"}).start()
    try:
        health = switch.healthz()[1]
        assert [w["capacity"] for w in health["workers"]] == [4, 4]
        assert health["capacity"] == 8
        client = switch.client()
        with SippPeer("uas_answer.xml", calls=8, timeout=30) as far:
            sids = [
                client.calls.create(to=f"sip:bob@{far.uri_host}", from_="+15550199", url=own_sink.url("/voice"),
                                    status_callback=own_sink.url("/status"), status_callback_event=EVENTS).sid
                for _ in range(8)
            ]
            for sid in sids:
                own_sink.wait_statuses("/status", sid, 3)
            in_use = [w["in_use"] for w in switch.healthz()[1]["workers"]]
            assert in_use == [4, 4]
            with pytest.raises(TwilioRestException) as info:
                client.calls.create(to=f"sip:bob@{far.uri_host}", from_="+15550199", url=own_sink.url("/voice"))
            assert info.value.status == 429
            assert info.value.code == 20429
            assert "capacity" in str(info.value.msg)
            for sid in sids:  # the refused call disturbed nothing
                assert client.calls(sid).fetch().status == "in-progress"
                client.calls(sid).update(status="completed")
            for sid in sids:
                own_sink.wait_statuses("/status", sid, 4)
                assert _statuses(own_sink, sid) == ["initiated", "ringing", "in-progress", "completed"]
            assert far.wait_sync(15) == 0, far.describe()
        assert len(client.calls.list()) == 8  # the refused call left no record
        wait_until(lambda: switch.healthz()[1]["in_use"] == 0, what="all slots free")
    finally:
        assert switch.stop() == 0


def test_four_workers_add_up_their_capacity(tmp_path: Path) -> None:
    switch = SwitchProcess(tmp_path, workers=4).start()
    try:
        status, health = switch.healthz()
        assert status == 200
        each = health["workers"][0]["capacity"]  # 4 on the wheel, 1,024 on the built engine
        assert each in (4, 1024) and [w["capacity"] for w in health["workers"]] == [each] * 4
        assert health["capacity"] == 4 * each
        assert len({w["pid"] for w in health["workers"]}) == 4
        assert [w["sip"] for w in health["workers"]] == [f"127.0.0.1:{switch.sip_port + i}" for i in range(4)]
    finally:
        assert switch.stop() == 0


def test_worker_killed_mid_call(tmp_path: Path, own_sink: WebhookSink) -> None:
    switch = SwitchProcess(tmp_path, workers=2).start()
    try:
        client = switch.client()
        with SippPeer("uas_answer.xml", calls=2, timeout=30) as far:
            sids = [client.calls.create(to=f"sip:bob@{far.uri_host}", from_="+15550199", url=own_sink.url("/v"),
                                        status_callback=own_sink.url("/status"), status_callback_event=EVENTS).sid
                    for _ in range(2)]
            for sid in sids:
                own_sink.wait_statuses("/status", sid, 3)
            workers = switch.healthz()[1]["workers"]
            assert [w["in_use"] for w in workers] == [1, 1]  # spread: one call on each worker
            victim = workers[0]
            os.kill(victim["pid"], signal.SIGKILL)
            # Exactly one call dies with the worker; the other goes on.
            wait_until(lambda: sum(client.calls(s).fetch().status == "failed" for s in sids) == 1,
                       what="the killed worker's call to fail")
            dead = next(s for s in sids if client.calls(s).fetch().status == "failed")
            alive = next(s for s in sids if s != dead)
            assert client.calls(alive).fetch().status == "in-progress"
            own_sink.wait_statuses("/status", dead, 4)
            assert _statuses(own_sink, dead) == ["initiated", "ringing", "in-progress", "failed"]
            hook = own_sink.for_path("/status")[-1]
            assert WebhookSink.valid(hook)
            # A new worker takes the old one's place and health recovers.
            wait_until(lambda: switch.healthz()[0] == 200, timeout=15, what="/healthz to recover")
            new = switch.healthz()[1]["workers"][0]
            assert new["pid"] != victim["pid"] and new["up"] and new["restarts"] == 1
            assert new["in_use"] == 0
            client.calls(alive).update(status="completed")
            own_sink.wait_statuses("/status", alive, 4)
            assert _statuses(own_sink, alive) == ["initiated", "ringing", "in-progress", "completed"]
            far.stop()
        # The restarted worker places calls again.
        with SippPeer("uas_busy.xml", calls=1, timeout=20) as far2:
            sid = client.calls.create(to=f"sip:bob@{far2.uri_host}", from_="+15550199", url=own_sink.url("/v"),
                                      status_callback=own_sink.url("/after")).sid
            own_sink.wait_statuses("/after", sid, 1)
            assert far2.wait_sync(10) == 0
        assert own_sink.statuses("/after", sid) == ["busy"]
    finally:
        assert switch.stop() == 0


def test_switch_killed_then_restarted_closes_live_calls(tmp_path: Path, own_sink: WebhookSink) -> None:
    switch = SwitchProcess(tmp_path, workers=1).start()
    with SippPeer("uas_answer.xml", timeout=30) as far:
        sid = switch.client().calls.create(
            to=f"sip:bob@{far.uri_host}", from_="+15550199", url=own_sink.url("/v"),
            status_callback=own_sink.url("/status"), status_callback_event=EVENTS).sid
        own_sink.wait_statuses("/status", sid, 3)
        assert switch.proc is not None
        pids = [w["pid"] for w in switch.healthz()[1]["workers"]]
        switch.proc.kill()  # no chance to clean up
        switch.proc.wait()
        # Its worker notices the control plane is gone and hangs up (BYE) by itself.
        assert far.wait_sync(15) == 0, far.describe()
        assert far.methods_received() == ["INVITE", "ACK", "BYE"]
        wait_until(lambda: not any(os.path.exists(f"/proc/{p}") for p in pids), what="worker to exit")
    switch.proc = None
    switch.start()
    try:
        own_sink.wait_statuses("/status", sid, 4)
        assert _statuses(own_sink, sid) == ["initiated", "ringing", "in-progress", "failed"]
        assert [h.params["SequenceNumber"] for h in own_sink.for_path("/status")] == ["0", "1", "2", "3"]
        call = switch.client().calls(sid).fetch()
        assert call.status == "failed"
    finally:
        assert switch.stop() == 0


def test_failing_webhook_is_retried_in_order(tmp_path: Path, own_sink: WebhookSink) -> None:
    attempts: dict[str, int] = {}

    def flaky(hook: object) -> tuple[int, str, str]:
        status = getattr(hook, "params")["CallStatus"]  # noqa: B009
        attempts[status] = attempts.get(status, 0) + 1
        return (500, "boom", "text/plain") if attempts[status] == 1 else (204, "", "text/plain")

    own_sink.responses["/flaky"] = flaky
    switch = SwitchProcess(tmp_path, workers=1).start()
    try:
        with SippPeer("uas_busy.xml", timeout=20) as far:
            sid = switch.client().calls.create(
                to=f"sip:bob@{far.uri_host}", from_="+15550199", url=own_sink.url("/v"),
                status_callback=own_sink.url("/flaky"), status_callback_event=EVENTS).sid
            own_sink.wait_statuses("/flaky", sid, 6, timeout=20)
            assert far.wait_sync(10) == 0
        # each callback failed once and was retried before the next one was sent
        assert _statuses(own_sink, sid, "/flaky") == ["initiated", "initiated", "ringing", "ringing", "busy", "busy"]
        seqs = [h.params["SequenceNumber"] for h in own_sink.for_path("/flaky")]
        assert seqs == ["0", "0", "1", "1", "2", "2"]
    finally:
        assert switch.stop() == 0


def test_webhooks_pending_at_shutdown_are_sent_after_restart(tmp_path: Path) -> None:
    down = WebhookSink()  # not started yet: its port refuses connections
    switch = SwitchProcess(tmp_path, workers=1).start()
    try:
        with SippPeer("uas_busy.xml", timeout=20) as far:
            sid = switch.client().calls.create(
                to=f"sip:bob@{far.uri_host}", from_="+15550199", url=down.url("/v"),
                status_callback=down.url("/status"), status_callback_event=EVENTS).sid
            assert far.wait_sync(10) == 0
        wait_until(lambda: switch.client().calls(sid).fetch().status == "busy", what="busy")
        assert switch.proc is not None
        switch.proc.kill()
        switch.proc.wait()
        switch.proc = None
        down.start()
        switch.start()
        down.wait_statuses("/status", sid, 3, timeout=20)
        assert down.statuses("/status", sid) == ["initiated", "ringing", "busy"]
        assert all(WebhookSink.valid(h) for h in down.for_path("/status"))
    finally:
        assert switch.stop() == 0
        down.stop()


def test_phone_number_goes_through_trunk_with_auth(tmp_path: Path, own_sink: WebhookSink) -> None:
    with SippPeer("uas_auth407.xml", timeout=30, auth=("trunkuser", "trunkpass")) as trunk:
        switch = SwitchProcess(tmp_path, workers=1, trunks=[
            {"name": "lab", "uri": f"sip:{trunk.uri_host}", "username": "trunkuser", "password": "trunkpass",
             "prefixes": ["+1"]}]).start()
        try:
            sid = switch.client().calls.create(
                to="+15551230000", from_="+15550199", url=own_sink.url("/v"),
                status_callback=own_sink.url("/status"), status_callback_event=EVENTS).sid
            own_sink.wait_statuses("/status", sid, 3)
            switch.client().calls(sid).update(status="completed")
            own_sink.wait_statuses("/status", sid, 4)
            assert trunk.wait_sync(10) == 0, trunk.describe()
        finally:
            assert switch.stop() == 0
    assert _statuses(own_sink, sid) == ["initiated", "ringing", "in-progress", "completed"]
    invite = trunk.first("received", "INVITE")
    assert invite is not None and invite.request_uri == f"sip:+15551230000@{trunk.uri_host}"
    assert trunk.codes_sent() == [407, 100, 180, 200, 200]
    assert trunk.verify_digest("trunkuser", "trunkpass")
    time.sleep(0)
