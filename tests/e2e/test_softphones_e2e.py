"""Softphones on a SIP domain (issue 15): registration at the edge, calls into the domain, `<Dial><Client>`.

One switch with its Kamailio edge; the SIP API (official twilio client) makes the domain `acme.sip.localhost`
with a registration credential list (alice, bob, carol, dave, erin, frank,
natty, ivy, quinn, burst0-3), a calls credential list (pbx) and a calls
IP access control list (127.0.0.2/32).  Lab phones (pjsua2) and sipp speak to the edge on loopback; the domain
name never resolves: the phones use the edge as their outbound proxy, as a softphone behind an SBC would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from twilio.twiml.voice_response import Dial, Pause, VoiceResponse

from media.audio import read_wav
from media.tones import band_energy_ratio, dominant_frequency, rms
from tests.peers.baresip_peer import BaresipPeer
from tests.peers.harness import SwitchProcess, WebhookSink, wait_until
from tests.peers.phone import PhoneProcess
from tests.peers.sipp_peer import SippPeer

pytestmark = pytest.mark.e2e

DOMAIN = "acme.sip.localhost"
OPS = "ops.sip.localhost"
PASSWORD = "Phones4Testing"
PBX_PASSWORD = "Pbx4Testing99"
CHILD_EVENTS = "initiated ringing answered completed"
BURST = ("burst0", "burst1", "burst2", "burst3")  # registered by the burst test alone


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("softphones"), workers=1, edge={})
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def domain(switch: SwitchProcess, app: WebhookSink) -> Any:
    """The domain, its lists and mappings, made through the SIP API with the official client."""
    sip = switch.client().sip
    phones = sip.credential_lists.create(friendly_name="phones")
    for user in ("alice", "bob", "carol", "dave", "erin", "frank", "natty", "ivy", "quinn", *BURST):
        sip.credential_lists(phones.sid).credentials.create(username=user, password=PASSWORD)
    pbx = sip.credential_lists.create(friendly_name="pbx")
    sip.credential_lists(pbx.sid).credentials.create(username="pbx", password=PBX_PASSWORD)
    acl = sip.ip_access_control_lists.create(friendly_name="office")
    sip.ip_access_control_lists(acl.sid).ip_addresses.create(friendly_name="pbx", ip_address="127.0.0.2")
    made = sip.domains.create(domain_name=DOMAIN, voice_url=app.url("/acme"),
                              voice_status_callback_url=app.url("/acme-status"), sip_registration=True)
    auth = sip.domains(made.sid).auth
    auth.registrations.credential_list_mappings.create(credential_list_sid=phones.sid)
    auth.calls.credential_list_mappings.create(credential_list_sid=pbx.sid)
    auth.calls.ip_access_control_list_mappings.create(ip_access_control_list_sid=acl.sid)
    ops = sip.domains.create(domain_name=OPS, voice_url=app.url("/acme"))  # the ACL alone: no challenge
    sip.domains(ops.sid).auth.calls.ip_access_control_list_mappings.create(ip_access_control_list_sid=acl.sid)
    return made


def _phone(switch: SwitchProcess, user: str, *args: str, password: str = PASSWORD,
           register: bool = True, commands: bool = False) -> PhoneProcess:
    proxy = f"sip:127.0.0.1:{switch.sip_port};lr"
    reg = ["--register", f"sip:{DOMAIN}"] if register else []
    return PhoneProcess([*reg, "--user", user, "--password", password, "--proxy", proxy, *args], commands=commands)


def _loud(samples: npt.NDArray[np.int16], rate: int) -> npt.NDArray[np.int16]:
    """The 20 ms frames that carry sound."""
    frame = rate // 50
    frames = [samples[i:i + frame] for i in range(0, len(samples) - frame + 1, frame)]
    loud = [f for f in frames if rms(f) > 1000]
    return np.concatenate(loud) if loud else np.zeros(0, dtype=samples.dtype)


def _dial_client(identity: str, action: str) -> str:
    response = VoiceResponse()
    dial = Dial(action=action, timeout=10)
    dial.client(identity, status_callback="/client-status", status_callback_event=CHILD_EVENTS)
    response.append(dial)
    return str(response)


def test_two_registered_phones_talk_through_dial_client(switch: SwitchProcess, app: WebhookSink, domain: Any,
                                                        tmp_path: Path) -> None:
    alice_heard, bob_heard = tmp_path / "alice.wav", tmp_path / "bob.wav"
    app.twiml("/acme", _dial_client("bob", "/acme-dialed"))
    app.twiml("/acme-dialed", str(VoiceResponse()))
    with _phone(switch, "bob", "--answer", "auto", "--answer-after", "0.3", "--tone", "1000", "--record",
                str(bob_heard), "--hangup-after", "3") as bob:
        assert bob.wait_for("registered", timeout=10)["code"] == 200
        with _phone(switch, "alice", "--tone", "440", "--record", str(alice_heard), "--call",
                    f"sip:bob@{DOMAIN}") as alice:
            assert alice.wait_for("registered", timeout=10)["code"] == 200
            hooks = app.wait_for(lambda hs: any(h.path == "/acme-dialed" for h in hs), 30)
            alice.wait_for("hangup", timeout=10)
        bob.wait_for("hangup", timeout=10)
    first = next(h.params for h in hooks if h.path == "/acme")
    assert (first["From"], first["To"], first["Direction"]) == (f"sip:alice@{DOMAIN}", f"sip:bob@{DOMAIN}",
                                                                 "inbound")
    assert (first["SipDomain"], first["SipDomainSid"], first["SipSourceIp"]) == (DOMAIN, domain.sid, "127.0.0.1")
    assert first["SipCallId"] and "SipUsername" not in first  # allowed as a registered phone, not by credentials
    dialed = next(h.params for h in hooks if h.path == "/acme-dialed")
    assert dialed["DialCallStatus"] == "completed"
    child = dialed["DialCallSid"]
    assert app.statuses("/client-status", child) == ["initiated", "ringing", "in-progress", "completed"]
    child_call = switch.client().calls(child).fetch()
    assert (child_call.to, child_call.direction) == ("client:bob", "outbound-dial")
    assert app.statuses("/acme-status", first["CallSid"]) == ["completed"]
    samples, rate = read_wav(alice_heard)
    tone = _loud(samples, rate)
    assert len(tone) >= rate and abs(dominant_frequency(tone, rate) - 1000.0) < 10  # bob, heard by alice
    samples, rate = read_wav(bob_heard)
    assert band_energy_ratio(_loud(samples, rate), rate, 440.0) > 0.8  # alice, heard by bob


def test_baresip_registers_and_a_lab_phone_reaches_it_through_dial_client(
        switch: SwitchProcess, app: WebhookSink, domain: Any, tmp_path: Path) -> None:
    alice_heard = tmp_path / "alice.wav"
    app.twiml("/acme", _dial_client("frank", "/frank-dialed"))
    app.twiml("/frank-dialed", str(VoiceResponse()))
    with BaresipPeer(tmp_path / "baresip", user="frank", tone=440, domain=DOMAIN, password=PASSWORD,
                     outbound=f"sip:127.0.0.1:{switch.sip_port}") as frank:
        assert frank.wait_registered(timeout=10) == 200
        with _phone(switch, "alice", "--tone", "1000", "--record", str(alice_heard), "--call",
                    f"sip:frank@{DOMAIN}", "--hangup-after", "4") as alice:
            alice.wait_for("hangup", timeout=20)
        hooks = app.wait_for(lambda hs: any(h.path == "/frank-dialed" for h in hs), 15)
        heard, rate = read_wav(frank.heard())
    dialed = next(h.params for h in hooks if h.path == "/frank-dialed")
    assert dialed["DialCallStatus"] == "completed"
    assert app.statuses("/client-status", dialed["DialCallSid"]) == ["initiated", "ringing", "in-progress",
                                                                      "completed"]
    tone = _loud(heard, rate)
    assert len(tone) >= rate and abs(dominant_frequency(tone, rate) - 1000.0) < 10  # alice, heard by baresip
    samples, alice_rate = read_wav(alice_heard)
    assert band_energy_ratio(_loud(samples, alice_rate), alice_rate, 440.0) > 0.8  # baresip, heard by alice


def test_a_client_with_two_phones_rings_both_and_the_first_answer_wins(switch: SwitchProcess, app: WebhookSink,
                                                                       domain: Any) -> None:
    app.twiml("/to-dave", str(VoiceResponse().append(Pause(length=2))))
    with _phone(switch, "dave", "--answer", "ignore") as desk, \
            _phone(switch, "dave", "--answer", "auto", "--answer-after", "0.5") as mobile:
        desk.wait_for("registered", timeout=10)
        mobile.wait_for("registered", timeout=10)
        call = switch.client().calls.create(to="client:dave", from_="+15550100", url=app.url("/to-dave"),
                                            status_callback=app.url("/dave-status"),
                                            status_callback_event=["initiated", "ringing", "answered",
                                                                   "completed"])
        app.wait_statuses("/dave-status", call.sid, 4, timeout=20)
        desk.wait_for("hangup", timeout=10)
        assert "incoming" in desk.names() and "answered" not in desk.names()
        assert desk.events("hangup")[0]["code"] == 487  # cancelled once the mobile answered
        assert "answered" in mobile.names()
    assert app.statuses("/dave-status", call.sid) == ["initiated", "ringing", "in-progress", "completed"]
    fetched = switch.client().calls(call.sid).fetch()
    assert (fetched.to, fetched.status) == ("client:dave", "completed")


def test_an_unregistered_client_is_no_answer(switch: SwitchProcess, app: WebhookSink, domain: Any) -> None:
    app.twiml("/acme", _dial_client("nobody", "/nobody-dialed"))
    app.twiml("/nobody-dialed", str(VoiceResponse()))
    with SippPeer("uac_domain_call.xml", remote=f"127.0.0.1:{switch.sip_port}", service="nobody-test",
                  keywords={"domain": DOMAIN}, local_ip="127.0.0.2") as peer:
        hooks = app.wait_for(lambda hs: any(h.path == "/nobody-dialed" for h in hs), 20)
        peer.wait_sync(15)
    dialed = next(h.params for h in hooks if h.path == "/nobody-dialed")
    assert dialed["DialCallStatus"] == "no-answer"
    assert app.statuses("/client-status", dialed["DialCallSid"]) == ["initiated", "no-answer"]


def test_the_acl_allows_its_address_and_refuses_another(switch: SwitchProcess, app: WebhookSink,
                                                        domain: Any) -> None:
    app.twiml("/acme", str(VoiceResponse().append(Pause(length=5))))
    remote = f"127.0.0.1:{switch.sip_port}"
    with SippPeer("uac_domain_call.xml", remote=remote, service="desk", keywords={"domain": OPS},
                  local_ip="127.0.0.2") as allowed:
        assert allowed.wait_sync(15) == 0, allowed.errors()
    assert [c for c in allowed.codes_received() if c != 100] == [180, 200, 200]
    hooks = [h.params for h in app.for_path("/acme") if h.params.get("To") == f"sip:desk@{OPS}"]
    assert len(hooks) == 1
    params = hooks[0]
    assert (params["From"], params["SipSourceIp"], params["SipHeader_X-Customer-Id"]) == (
        f"sip:pbx@{OPS}", "127.0.0.2", "42")
    assert not any(k.startswith("SipHeader_X-Softswitch") for k in params)  # the forged header never got in
    with SippPeer("uac_domain_refused.xml", remote=remote, service="door", keywords={"domain": OPS},
                  local_ip="127.0.0.3") as refused:
        assert refused.wait_sync(15) == 0, refused.errors()
    assert [c for c in refused.codes_received() if c != 100] == [403]
    assert not any(h.params.get("To") == f"sip:door@{OPS}" for h in app.for_path("/acme"))


def test_calls_credentials_are_challenged_and_named(switch: SwitchProcess, app: WebhookSink, domain: Any) -> None:
    app.twiml("/acme", str(VoiceResponse().append(Pause(length=1))))
    with _phone(switch, "pbx", "--call", f"sip:reception@{DOMAIN}", password=PBX_PASSWORD,
                register=False) as pbx:
        pbx.wait_for("answered", timeout=15)
        pbx.wait_for("hangup", timeout=15)
    params = next(h.params for h in app.for_path("/acme") if h.params.get("To") == f"sip:reception@{DOMAIN}")
    assert (params["SipUsername"], params["SipDomain"]) == ("pbx", DOMAIN)


def test_a_wrong_password_is_refused_once(switch: SwitchProcess, domain: Any) -> None:
    with SippPeer("uac_domain_register_refused.xml", remote=f"127.0.0.1:{switch.sip_port}", service="alice",
                  keywords={"domain": DOMAIN}, auth=("alice", "not-the-password")) as peer:
        assert peer.wait_sync(15) == 0, peer.errors()
    assert peer.methods_sent() == ["REGISTER", "REGISTER"] and peer.codes_received() == [401, 403]
    with _phone(switch, "carol", password="WrongPassword1") as carol:
        failed = carol.wait_for("registration-failed", timeout=10)
        time.sleep(3)  # a phone that looped on challenges would report again (or never stop sending)
        assert failed["code"] == 403 and len(carol.events("registration-failed")) == 1
        assert "registered" not in carol.names()


def _call_client(switch: SwitchProcess, app: WebhookSink, identity: str, path: str) -> str:
    """A REST call to client:`identity`; its terminal status."""
    call = switch.client().calls.create(to=f"client:{identity}", from_="+15550100", url=app.url("/to-dave"),
                                        status_callback=app.url(path), timeout=5)
    hooks = app.wait_statuses(path, call.sid, 1, timeout=20)
    return str(hooks[-1].params["CallStatus"])


def test_registrations_survive_a_restart_of_the_edge_and_of_the_switch(switch: SwitchProcess, app: WebhookSink,
                                                                       domain: Any) -> None:
    app.twiml("/to-dave", str(VoiceResponse().append(Pause(length=1))))
    with contextlib.ExitStack() as phones:
        erin = phones.enter_context(_phone(switch, "erin", "--answer", "auto", "--reg-expires", "300"))
        erin.wait_for("registered", timeout=10)
        # usrloc writes back once a second: a Kamailio killed before that would lose this REGISTER (README)
        wait_until(lambda: "erin" in _registered_on_disk(switch), 5, "erin's registration in edge.sqlite")
        _, health = switch.healthz()
        kamailio = int(health["edge"]["pid"])
        signal_group(kamailio)
        wait_until(lambda: switch.healthz()[1]["edge"].get("pid") not in (None, kamailio)
                   and switch.healthz()[1]["edge"]["up"], 15, "the edge restarted")
        assert _call_client(switch, app, "erin", "/erin-1") == "completed"
        # quinn registers just before a clean stop, likely before the write-back: the stop writes it
        quinn = phones.enter_context(_phone(switch, "quinn", "--answer", "auto", "--reg-expires", "300"))
        quinn.wait_for("registered", timeout=10)
        assert switch.stop() == 0, switch.log()
        switch.start()
        assert _call_client(switch, app, "erin", "/erin-2") == "completed"
        assert _call_client(switch, app, "quinn", "/quinn-1") == "completed"
        for phone, calls in ((erin, 2), (quinn, 1)):  # nothing re-registered: the edge kept them
            assert (phone.names().count("registered"), phone.names().count("answered")) == (1, calls)


def _registered_on_disk(switch: SwitchProcess) -> list[str]:
    """The users of the registrations in the edge's database file (what a new Kamailio would load)."""
    with contextlib.closing(sqlite3.connect(f"file:{switch.workdir / 'data' / 'edge' / 'edge.sqlite'}?mode=ro",
                                            uri=True, timeout=5)) as db:
        return [str(row[0]) for row in db.execute("SELECT username FROM location")]


def signal_group(pid: int) -> None:
    """SIGKILL a Kamailio and its children (its process group), as a crash would."""
    os.killpg(pid, signal.SIGKILL)


def test_an_unregistered_or_expired_phone_is_no_longer_reached(switch: SwitchProcess, app: WebhookSink,
                                                               domain: Any) -> None:
    app.twiml("/to-dave", str(VoiceResponse().append(Pause(length=1))))
    with _phone(switch, "carol", "--answer", "auto") as carol:
        carol.wait_for("registered", timeout=10)
    carol.wait(10)  # it un-REGISTERs as it exits
    assert _call_client(switch, app, "carol", "/carol-1") == "no-answer"
    with _phone(switch, "carol", "--answer", "auto", "--reg-expires", "10") as carol:
        carol.wait_for("registered", timeout=10)
        os.kill(int(carol.wait_for("ready")["pid"]), signal.SIGKILL)  # no un-REGISTER: it has to expire
    time.sleep(16)  # 10 s of expiry and the registrar's 5 s timer
    assert _call_client(switch, app, "carol", "/carol-2") == "no-answer"


def test_a_phone_behind_a_nat_is_reached_at_the_address_it_registered_from(
        switch: SwitchProcess, app: WebhookSink, domain: Any, tmp_path: Path) -> None:
    app.twiml("/to-dave", str(VoiceResponse().append(Pause(length=1))))
    with SippPeer("uac_domain_register_natted.xml", remote=f"127.0.0.1:{switch.sip_port}", service="natty",
                  keywords={"domain": DOMAIN}, auth=("natty", PASSWORD), workdir=tmp_path) as phone:
        assert phone.wait_sync(15) == 0, phone.errors()
    assert phone.codes_received() == [401, 200, 200]
    # the same port, now answering: the phone's NAT binding, as the edge saw it
    with SippPeer("uas_answer.xml", port=phone.port, workdir=tmp_path, name="natty-answers") as answering:
        call = switch.client().calls.create(to=f"sip:natty@{DOMAIN}", from_="+15550100", url=app.url("/to-dave"),
                                            status_callback=app.url("/natty-status"))
        assert answering.wait_sync(20) == 0, answering.errors()
    invite = answering.first("received", "INVITE")
    assert invite is not None and invite.request_uri == "sip:natty@192.168.77.7:5999"
    assert app.wait_statuses("/natty-status", call.sid, 1)[-1].params["CallStatus"] == "completed"


def _refused(phone: PhoneProcess, within: float = 3.0) -> tuple[str, int]:
    """REGISTER until the edge has the change (its reload is asynchronous: a moment at most)."""
    started = time.monotonic()
    outcome = phone.register()
    while outcome["event"] == "registered" and time.monotonic() - started < within:
        outcome = phone.register()
    return outcome["event"], outcome.get("code", 0)


def test_registrations_while_the_credentials_change_all_succeed(switch: SwitchProcess, domain: Any) -> None:
    """Every REGISTER gets its 200 while the credentials change under it (each change rewrites the edge's
    SQLite file and reloads it, while the registrations are written to the same file)."""
    sip = switch.client().sip
    churn = sip.credential_lists.create(friendly_name="churn")
    mapping = sip.domains(domain.sid).auth.registrations.credential_list_mappings.create(
        credential_list_sid=churn.sid)
    stop = threading.Event()
    changes: list[int] = []

    def change_credentials() -> None:
        while not stop.is_set() and len(changes) < 200:
            made = sip.credential_lists(churn.sid).credentials.create(username=f"temp{len(changes)}",
                                                                       password=PASSWORD)
            sip.credential_lists(churn.sid).credentials(made.sid).delete()
            changes.append(2)

    changer = threading.Thread(target=change_credentials, daemon=True)
    with _phone(switch, "ivy", commands=True) as phone:
        assert phone.wait_registered(timeout=10)["code"] == 200
        changer.start()
        try:
            outcomes = [phone.register() for _ in range(40)]
        finally:
            stop.set()
            changer.join(30)
    sip.domains(domain.sid).auth.registrations.credential_list_mappings(mapping.sid).delete()
    assert len(changes) >= 10  # the REGISTERs did meet changes in flight
    assert [(o["event"], o.get("code")) for o in outcomes] == [("registered", 200)] * 40


def test_a_burst_of_registrations_all_succeed(switch: SwitchProcess, domain: Any, tmp_path: Path) -> None:
    """1,200 REGISTERs (with their challenges) from four phones at 100 a second each: every one gets its 200.
    With every Kamailio process writing its own REGISTERs to SQLite, about half got 500 at this rate (their
    writes locked each other out); now one process writes them back (switch.workers.edge_domains)."""
    phones = [SippPeer("uac_domain_register_natted.xml", remote=f"127.0.0.1:{switch.sip_port}", service=user,
                       keywords={"domain": DOMAIN}, auth=(user, PASSWORD), workdir=tmp_path, calls=300, rate=100,
                       name=user, timeout=60) for user in BURST]
    with contextlib.ExitStack() as running:
        for phone in phones:
            running.enter_context(phone)
        for phone in phones:
            assert phone.wait_sync(60) == 0, phone.errors()
    for phone in phones:
        codes = phone.codes_received()
        assert {code: codes.count(code) for code in set(codes)} == {401: 300, 200: 600}  # REGISTER and OPTIONS
    wait_until(lambda: set(BURST) <= set(_registered_on_disk(switch)), 5,
               "the burst's registrations in edge.sqlite")


def test_sip_api_changes_reach_the_edge_at_once(switch: SwitchProcess, domain: Any) -> None:
    sip = switch.client().sip
    temps = sip.credential_lists.create(friendly_name="temps")
    gina = sip.credential_lists(temps.sid).credentials.create(username="gina", password=PASSWORD)
    mapping = sip.domains(domain.sid).auth.registrations.credential_list_mappings.create(
        credential_list_sid=temps.sid)
    with _phone(switch, "gina", commands=True) as phone:
        assert phone.wait_registered(timeout=10)["code"] == 200
        sip.credential_lists(temps.sid).credentials(gina.sid).delete()
        assert _refused(phone) == ("registration-failed", 403)
        sip.credential_lists(temps.sid).credentials.create(username="gina", password="Another4Phone")
        assert _refused(phone) == ("registration-failed", 403)  # not her password any more
    sip.domains(domain.sid).auth.registrations.credential_list_mappings(mapping.sid).delete()


def test_a_registration_on_one_domain_lets_no_call_into_another(switch: SwitchProcess, app: WebhookSink,
                                                                 domain: Any) -> None:
    with _phone(switch, "alice", "--call", f"sip:desk@{OPS}") as alice:
        alice.wait_registered(timeout=10)
        hangup = alice.wait_for("hangup", timeout=10)
    assert hangup["code"] == 403
    assert not any(h.params.get("To") == f"sip:desk@{OPS}" and h.params.get("From") == f"sip:alice@{DOMAIN}"
                   for h in app.for_path("/acme"))
