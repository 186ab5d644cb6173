"""The lab phone registering at real registrars on 127.0.0.1: sipp plays the registrar (tests/peers/sipp/
uas_phone_registrar.xml, uas_phone_registrar_silent.xml) behind ``--proxy``, as the SIP edge will, for the domain
``acme.sip.localhost`` that resolves nowhere.

Each outcome is one event: ``registered`` (2xx, expires > 0), ``unregistered`` (2xx to Expires: 0) or
``registration-failed`` (anything else), and refused credentials never make the phone loop: what sipp saw is
counted.  Every sipp and phone is bounded in time.
"""

from __future__ import annotations

import time

import pytest

from switch.worker.labphone_calls import registration_event
from tests.peers.phone import PhoneError, PhoneProcess, RegistrationFailed, register_args
from tests.peers.sipp_peer import EXIT_OK, SippPeer

DOMAIN = "acme.sip.localhost"
USER, PASSWORD = "alice", "pw-1"


def _registrar(refuse: int = 403, granted: int = 60, calls: int = 1, open_: bool = False,
               linger_ms: int = 2000) -> SippPeer:
    """sipp as a digest registrar for alice / pw-1 (one registration session per Call-ID, ``calls`` of them)."""
    variables: dict[str, str | int | float] = {"granted": granted, "refuse": refuse, "linger_ms": linger_ms,
                                               "open": int(open_)}
    return SippPeer("uas_phone_registrar.xml", auth=(USER, PASSWORD), calls=calls, variables=variables, timeout=20)


def _registers(registrar: SippPeer) -> list[str]:
    """The Expires header of every REGISTER sipp received (retransmissions left out), in order."""
    return [m.header("Expires") or "" for m in registrar.messages(False)
            if m.direction == "received" and m.method == "REGISTER"]


def test_registration_events_for_each_outcome() -> None:
    assert registration_event(200, "OK", 60, False) == ("registered", {"code": 200, "reason": "OK", "expires": 60})
    assert registration_event(200, "OK", 0, True) == ("unregistered", {"code": 200, "reason": "OK"})
    assert registration_event(200, "OK", 0, False)[0] == "unregistered"  # a 2xx that grants nothing
    for code in (401, 403, 407, 408, 500, 503):
        name, fields = registration_event(code, "x", 0, False)
        assert (name, fields["code"], fields["unregister"]) == ("registration-failed", code, False)
    assert registration_event(408, "Request Timeout", 0, True)[1]["unregister"] is True


async def test_registers_with_a_digest_challenge_unregisters_and_registers_again() -> None:
    # two registration sessions: pjsua starts a new Call-ID after an un-REGISTER
    async with _registrar(granted=45, calls=2) as registrar:
        args = register_args(DOMAIN, USER, PASSWORD, proxy=f"sip:{registrar.uri_host}", expires=120)
        with PhoneProcess(args, commands=True, max_seconds=15) as phone:
            registered = phone.wait_registered(timeout=5)
            unregistered = phone.unregister(timeout=5)
            again = phone.register(timeout=5)
            phone.terminate()  # the un-REGISTER of the second session, at exit
            assert await phone.wait_async(10) == 0, phone.describe()
        assert await registrar.wait(10) == EXIT_OK, registrar.describe()
    assert (registered["code"], registered["reason"], registered["expires"]) == (200, "OK", 45)  # as granted
    assert (unregistered["event"], unregistered["code"]) == ("unregistered", 200)
    assert (again["event"], again["expires"]) == ("registered", 45)
    # Account.shutdown() detaches the Python account first: the last un-REGISTER's answer raises no event.
    assert phone.names() == ["ready", "registered", "command", "unregistered", "command", "registered", "exit"]
    assert [e["command"] for e in phone.events("command")] == ["unregister", "register"]
    assert _registers(registrar) == ["120", "120", "0", "120", "120", "0"], registrar.describe()
    assert registrar.codes_sent() == [401, 200, 200, 401, 200, 200]
    assert registrar.verify_digest(USER, PASSWORD)
    first = registrar.first("received", "REGISTER")
    assert first is not None
    assert first.request_uri == f"sip:{DOMAIN}"
    aor = f"sip:{USER}@{DOMAIN}"
    assert aor in (first.header("To") or "") and aor in (first.header("From") or "")
    assert first.header("Route") == f"<sip:{registrar.uri_host};lr>"
    assert f"{USER}@127.0.0.1:{phone.port}" in (first.header("Contact") or "")
    assert len({m.call_id for m in registrar.messages(False)}) == 2


async def test_registers_without_a_challenge() -> None:
    async with _registrar(open_=True, granted=300) as registrar:
        args = register_args(DOMAIN, USER, proxy=f"sip:{registrar.uri_host}")  # no password: none asked
        with PhoneProcess(args, max_seconds=15) as phone:
            registered = phone.wait_registered(timeout=5)
            phone.terminate()
            assert await phone.wait_async(10) == 0, phone.describe()
        assert await registrar.wait(10) == EXIT_OK, registrar.describe()
    assert (registered["code"], registered["expires"]) == (200, 300)
    assert registrar.codes_sent() == [200, 200]
    assert _registers(registrar) == ["300", "0"]  # --reg-expires defaults to 300


async def test_wrong_password_403_is_reported_once_and_never_retried() -> None:
    async with _registrar(refuse=403, linger_ms=3000) as registrar:
        args = register_args(DOMAIN, USER, "wrong", proxy=f"sip:{registrar.uri_host}")
        with PhoneProcess(args, max_seconds=15) as phone:
            with pytest.raises(RegistrationFailed) as failed:
                phone.wait_registered(timeout=5)
            # sipp lingers 3 s after its 403 and fails the session if another REGISTER comes
            assert await registrar.wait(10) == EXIT_OK, registrar.describe()
            phone.terminate()
            assert await phone.wait_async(10) == 0, phone.describe()
    assert (failed.value.event["code"], failed.value.event["reason"]) == (403, "Forbidden")
    assert phone.names() == ["ready", "registration-failed", "exit"], phone.describe()
    assert registrar.codes_sent() == [401, 403]
    assert len(_registers(registrar)) == 2


async def test_wrong_password_challenged_again_gives_up_after_a_few_401s() -> None:
    """A registrar that answers a wrong digest with a new challenge (new nonce, as Kamailio does) could keep
    pjsua going forever; pjsip stops after PJSIP_MAX_STALE_COUNT (3) fresh nonces and reports the 401."""
    async with _registrar(refuse=401) as registrar:
        args = register_args(DOMAIN, USER, "wrong", proxy=f"sip:{registrar.uri_host}")
        with PhoneProcess(args, max_seconds=15) as phone:
            event = phone.registration(timeout=5)
            # sipp ends the session once no REGISTER came for 3 s
            assert await registrar.wait(10) == EXIT_OK, registrar.describe()
            phone.terminate()
            assert await phone.wait_async(10) == 0, phone.describe()
    assert (event["event"], event["code"], event["reason"]) == ("registration-failed", 401, "Unauthorized")
    assert phone.names() == ["ready", "registration-failed", "exit"], phone.describe()
    assert registrar.codes_sent() == [401] * 4
    assert len(_registers(registrar)) == 4  # the first, then one per challenge, up to 3


async def test_no_answer_fails_with_408_after_64_t1() -> None:
    registrar = SippPeer("uas_phone_registrar_silent.xml", variables={"linger_ms": 9000}, timeout=20)
    async with registrar:
        args = register_args(DOMAIN, USER, PASSWORD, proxy=f"sip:{registrar.uri_host}", t1_ms=100)
        with PhoneProcess(args, max_seconds=20) as phone:
            started = time.time()
            event = phone.registration(timeout=12)
            elapsed = event["t"] - started
            phone.terminate()
            assert await phone.wait_async(10) == 0, phone.describe()
        assert await registrar.wait(15) == EXIT_OK, registrar.describe()
    assert (event["event"], event["code"], event["unregister"]) == ("registration-failed", 408, False)
    assert 5.5 < elapsed < 9.0  # 64 * 100 ms
    assert phone.names() == ["ready", "registration-failed", "exit"], phone.describe()
    assert len(_registers(registrar)) == 1  # one REGISTER (retransmitted), not re-tried (--reg-retry 300)
    assert len(registrar.messages()) > 3  # its retransmissions


async def test_calls_go_through_the_proxy_and_answer_a_407() -> None:
    async with SippPeer("uas_auth407.xml", auth=(USER, PASSWORD), timeout=15) as proxy:
        args = ["--proxy", f"sip:{proxy.uri_host}", "--user", USER, "--password", PASSWORD,
                "--call", f"sip:bob@{DOMAIN}", "--hangup-after", "0.5"]
        with PhoneProcess(args) as phone:
            assert await phone.wait_async(10) == 0, phone.describe()
        assert await proxy.wait(10) == EXIT_OK, proxy.describe()
    assert phone.names() == ["ready", "calling", "ringing", "answered", "hangup", "exit"], phone.describe()
    assert proxy.codes_sent() == [407, 100, 180, 200, 200]
    assert proxy.verify_digest(USER, PASSWORD)
    invite = proxy.first("received", "INVITE")
    assert invite is not None and invite.request_uri == f"sip:bob@{DOMAIN}"
    assert invite.header("Route") == f"<sip:{proxy.uri_host};lr>"


async def test_call_at_start_waits_for_the_registration_and_call_command() -> None:
    async with _registrar(open_=True) as registrar:
        with PhoneProcess(["--answer", "auto", "--exit-after-calls", "2"]) as callee:
            args = [*register_args(f"sip:{registrar.uri_host}", USER), "--call", callee.uri("bob"),
                    "--hangup-after", "0.3", "--exit-after-calls", "2"]
            with PhoneProcess(args, commands=True, max_seconds=15) as phone:
                phone.wait_for("hangup", timeout=5)
                phone.call(callee.uri("carol"))
                assert await phone.wait_async(10) == 0, phone.describe()
            assert await callee.wait_async(10) == 0, callee.describe()
        assert await registrar.wait(10) == EXIT_OK, registrar.describe()
    names = phone.names()
    assert names[:3] == ["ready", "registered", "calling"], phone.describe()
    assert names.count("hangup") == 2 and names[-1] == "exit"
    assert phone.events("command")[0]["command"] == f"call {callee.uri('carol')}"


async def test_bad_registration_options_and_commands() -> None:
    with PhoneProcess(["--register", f"sip:{DOMAIN}"], ready=False) as bad:  # no --user
        assert await bad.wait_async(10) == 2, bad.describe()
        assert "--register needs --user" in bad.log()
    with PhoneProcess(["--answer", "auto"], commands=True) as phone:  # not registering
        phone.command("unregister")
        error = phone.wait_for("error", timeout=5)
        phone.command("call")
        missing = phone.wait_for("error", timeout=5, count=2)
        with pytest.raises(PhoneError):
            phone.wait_registered(timeout=0.5)
    assert "no registrar" in error["message"] and "which SIP URI" in missing["message"]
