"""Trunk registration through the SIP edge, end to end: sipp plays the trunk's registrar on loopback.

- `register = true`: Kamailio's uac sends REGISTER, answers the 401 challenge with the trunk's credentials, gets
  200 with a short lifetime and refreshes it before it lapses; `/healthz` shows the trunk registered and counts
  the refreshes, and the log says so;
- the trunk calls the Contact it was given: from one of its `addresses` the call is routed by its To number
  like any inbound call; from another source address (127.0.0.2) it gets 403;
- Kamailio killed: the restarted edge reads the registration again and registers at once;
- a wrong password (the registrar answers 403): `/healthz` shows the trunk failed with 403, the log says so once,
  and the next attempt waits (no REGISTER loop).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.peers.harness import SwitchProcess, WebhookSink, wait_until
from tests.peers.sipp_peer import SippPeer, digest_response_ok

EXPIRES = 10  # seconds: uac refreshes with less than its timer (a quarter of this) + 3 s left
NUMBER = "+15550161"
UUID = "trunk-lab-carrier"  # the registration's Contact user: the trunk's name, slugged


def _trunk(switch: SwitchProcess) -> dict[str, Any]:
    (trunk,) = switch.healthz()[1]["edge"]["trunks"]
    return dict(trunk)


def _switch(tmp_path: Path, registrar: SippPeer, password: str, app: WebhookSink) -> SwitchProcess:
    trunk = {"name": "Lab Carrier", "uri": f"sip:{registrar.uri_host}", "username": "alice", "password": password,
             "register": True, "expires": EXPIRES, "addresses": ["127.0.0.1"]}
    return SwitchProcess(tmp_path, workers=1, edge={}, trunks=[trunk],
                         numbers=[{"number": NUMBER, "status_callback": app.url("/trunk-status")}])


def test_registers_refreshes_and_takes_calls_from_its_addresses(tmp_path: Path, app: WebhookSink) -> None:
    with SippPeer("uas_registrar.xml", auth=("alice", "s3cret"), keywords={"reg_expires": str(EXPIRES)},
                  calls=50, timeout=90) as registrar:
        switch = _switch(tmp_path, registrar, "s3cret", app).start()
        try:
            wait_until(lambda: _trunk(switch)["state"] == "registered", 10, "the trunk registered")
            trunk = _trunk(switch)
            assert trunk["code"] == 200 and trunk["registrar"] == registrar.uri_host and trunk["expires"] == EXPIRES
            assert trunk["contact"] == f"sip:{UUID}@127.0.0.1:{switch.sip_port}"
            assert 0 < trunk["expires_in"] <= EXPIRES
            # two refreshes, each before the registration lapsed
            wait_until(lambda: _trunk(switch)["registrations"] >= 3, 3 * EXPIRES, "two refreshes")
            assert _trunk(switch)["state"] == "registered"
            messages = registrar.messages(include_retransmissions=False)
            assert registrar.codes_sent()[:6] == [401, 200, 401, 200, 401, 200], registrar.describe()
            registers = [m for m in messages if m.method == "REGISTER"]
            for challenged, answered in zip(registers[0:6:2], registers[1:6:2], strict=True):
                assert challenged.header("Authorization") is None
                assert challenged.call_id == answered.call_id  # the challenge answered in the same dialog
                auth = answered.header("Authorization") or ""
                assert digest_response_ok(auth, "REGISTER", "alice", "s3cret"), auth
                assert answered.header("Contact") == f"<sip:{UUID}@127.0.0.1:{switch.sip_port}>"
                assert answered.header("Expires") == str(EXPIRES)
                assert answered.header("To") == f"<sip:alice@{registrar.uri_host}>"
                assert answered.request_uri == f"sip:{registrar.uri_host}"
            oks = [m.timestamp for m in messages if m.status_code == 200]
            refreshes = [m.timestamp for m in registers[2:6:2]]
            for granted, refreshed in zip(oks, refreshes, strict=False):
                assert 0 < refreshed - granted < EXPIRES, (granted, refreshed)  # before it lapsed
            log = switch.log()
            assert "SIP edge: trunk Lab Carrier at " in log and f"registered as sip:alice@{registrar.uri_host}" in log
            assert "re-registered as" in log

            # the trunk calls its registration's Contact: routed by the To number like any inbound call
            with SippPeer("uac_trunk_invite.xml", remote=("127.0.0.1", switch.sip_port), service=UUID,
                          keywords={"called": NUMBER}, timeout=20) as caller:
                assert caller.wait_sync(25) == 0, caller.describe()
            assert 200 in caller.codes_received() and 403 not in caller.codes_received()
            app.wait_for(lambda hs: any(h.params.get("CallStatus") == "completed" for h in hs
                                        if h.path == "/trunk-status"), 10)
            (call,) = switch.client().calls.list()
            assert call.to == NUMBER and call.direction == "inbound"

            # the same call from a source outside the trunk's addresses: refused at the edge
            with SippPeer("uac_trunk_invite.xml", remote=("127.0.0.1", switch.sip_port), service=UUID,
                          keywords={"called": NUMBER}, local_ip="127.0.0.2", timeout=20) as stranger:
                assert stranger.wait_sync(25) == 0, stranger.describe()
            assert stranger.codes_received()[-1] == 403
            assert len(switch.client().calls.list()) == 1
            assert "INVITE for trunk trunk-lab-carrier from 127.0.0.2, not one of its addresses: 403" in \
                (tmp_path / "data" / "edge" / "kamailio.log").read_text(errors="replace")

            # a new Kamailio registers again at once (it reads the rows the control plane rewrote)
            edge = switch.healthz()[1]["edge"]
            seen = registrar.codes_sent().count(200)
            os.kill(int(edge["pid"]), signal.SIGKILL)
            wait_until(lambda: switch.healthz()[1]["edge"]["restarts"] == edge["restarts"] + 1, 10, "a restart")
            wait_until(lambda: registrar.codes_sent().count(200) > seen, 5, "a registration from the new edge")
            wait_until(lambda: _trunk(switch)["state"] == "registered", 5, "registered again")
        finally:
            assert switch.stop() == 0, switch.log()


def test_a_wrong_password_fails_with_the_code_and_waits_to_retry(tmp_path: Path, app: WebhookSink) -> None:
    with SippPeer("uas_registrar.xml", auth=("alice", "right"), keywords={"reg_expires": str(EXPIRES)},
                  calls=3, timeout=60) as registrar:
        switch = _switch(tmp_path, registrar, "wrong", app).start()
        try:
            wait_until(lambda: _trunk(switch)["state"] == "failed", 10, "the registration failed")
            failed_at = time.monotonic()
            trunk = _trunk(switch)
            assert trunk["code"] == 403 and trunk["registrations"] == 0
            assert trunk["expires_in"] >= 45, trunk  # the next attempt about a minute later
            assert switch.healthz()[0] == 200  # a trunk's registration does not take the switch out of service
            time.sleep(max(0.0, failed_at + 8 - time.monotonic()))  # four ticks of uac's timer: no new attempt
            assert registrar.methods_received() == ["REGISTER", "REGISTER"], registrar.describe()
            assert registrar.codes_sent() == [401, 403]
            assert _trunk(switch)["state"] == "failed"
            log = switch.log()
            assert log.count("SIP edge: trunk Lab Carrier at ") == 1, log
            assert "registration failed (answered 403); next attempt in" in log
        finally:
            assert switch.stop() == 0, switch.log()
