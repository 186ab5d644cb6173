"""SIP domains on a real store: the validation rules (passwords, usernames, host names, IPv4 networks), the routes
the SIP edge reads (`SipDirectory.routes`), who hears of a change (`subscribe`), and a restart."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from switch.core.errors import Conflict, InvalidArgument, NotFound
from switch.core.sip_domain_model import (
    MappingKind,
    check_domain_name,
    check_ip_address,
    check_username,
    password_problem,
)
from switch.core.sip_domains import SipDirectory, SipDomainRoute
from switch.core.store import Store

ACCOUNT = "AC" + "a" * 32
OTHER_ACCOUNT = "AC" + "b" * 32
GOOD = "IWasAtSignal2018"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db.sqlite")


@pytest.mark.parametrize(("password", "problem"), [
    (GOOD, None),
    ("Abcdefghijk1", None),  # exactly 12
    ("Abcdefghij1", "at least 12 characters"),
    ("", "required"),
    ("abcdefghijkl1", "an upper case letter"),
    ("ABCDEFGHIJKL1", "a lower case letter"),
    ("Abcdefghijklm", "a digit"),
    ("abcdefghijklm", "a digit, an upper case letter"),
    ("Abcdefghijk1\n", "control characters"),
    ("Ab1" + "x" * 253, "at most 255"),
])  # fmt: skip
def test_password_rules(password: str, problem: str | None) -> None:
    found = password_problem(password)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found


def test_usernames() -> None:
    assert check_username("alice") == "alice"
    assert check_username("+15551234567") == "+15551234567"
    for bad in ("", "a" * 33, "al ice", "alice@example.com", "a:b", "é"):
        with pytest.raises(InvalidArgument):
            check_username(bad)


def test_domain_names_are_any_host_name_in_lower_case() -> None:
    assert check_domain_name("Office.Example.COM") == "office.example.com"
    assert check_domain_name("acme.sip.twilio.com") == "acme.sip.twilio.com"
    assert check_domain_name("localhost") == "localhost"
    assert check_domain_name("a-1.b" + ".c" * 100) == "a-1.b" + ".c" * 100
    too_long = ".".join(["a" * 63] * 4)  # 255 characters
    for bad in ("", " ", "a..b", "-a.com", "a-.com", "foo_bar.com", "1.2.3.4", "a" * 64 + ".com", "a.com.",
                "sip:a.com", "a b.com", too_long):
        with pytest.raises(InvalidArgument):
            check_domain_name(bad)


def test_ip_addresses_are_ipv4_with_a_prefix() -> None:
    assert check_ip_address("10.0.0.7", None) == ("10.0.0.7", 32)
    assert check_ip_address(" 192.168.1.0 ", 24) == ("192.168.1.0", 24)
    for address, prefix in (("10.0.0.256", None), ("::1", None), ("example.com", None), ("", None),
                            ("10.0.0.1", 0), ("10.0.0.1", 33), ("10.0.0.1/24", None)):
        with pytest.raises(InvalidArgument):
            check_ip_address(address, prefix)


def _populated(directory: SipDirectory) -> tuple[str, str, str, str]:
    """A domain with two call credential lists (sharing "bob"), one registration list and one IP list."""
    first = directory.create_credential_list("first")
    second = directory.create_credential_list("second")
    directory.create_credential(first.sid, "alice", "AlicePassword1")
    directory.create_credential(first.sid, "bob", "BobFirstList1")
    directory.create_credential(second.sid, "bob", "BobSecondList1")
    directory.create_credential(second.sid, "carol", "CarolPassword1")
    acl = directory.create_ip_access_control_list("office")
    directory.create_ip_address(acl.sid, "desk", "10.0.0.7", 24)
    directory.create_ip_address(acl.sid, "gateway", "192.0.2.1")
    domain = directory.create_domain("PBX.Example.com", "pbx", "http://app/voice", "GET", sip_registration=True)
    directory.add_mapping(domain.sid, MappingKind.CALL_CREDENTIALS, first.sid)
    directory.add_mapping(domain.sid, MappingKind.CALL_CREDENTIALS, second.sid)
    directory.add_mapping(domain.sid, MappingKind.REGISTRATION_CREDENTIALS, second.sid)
    directory.add_mapping(domain.sid, MappingKind.CALL_NETWORKS, acl.sid)
    return domain.sid, first.sid, second.sid, acl.sid


def test_routes_gather_users_and_networks_and_the_first_mapping_wins(store: Store) -> None:
    directory = SipDirectory(store, ACCOUNT)
    domain_sid, _first, _second, _acl = _populated(directory)
    route = directory.route_named("pbx.EXAMPLE.com")
    assert route == SipDomainRoute(
        domain_sid, ACCOUNT, "pbx.example.com", "http://app/voice", "GET", None, "POST", None, "POST", True,
        registration_users={"bob": "BobSecondList1", "carol": "CarolPassword1"},
        call_users={"alice": "AlicePassword1", "bob": "BobFirstList1", "carol": "CarolPassword1"},
        call_networks=("10.0.0.0/24", "192.0.2.1/32"),
    )
    assert directory.routes() == [route]
    assert directory.auth_type(domain_sid) == "IP_ACL,CREDENTIAL_LIST"
    assert directory.route_named("other.example.com") is None
    with pytest.raises(TypeError):
        route.call_users["mallory"] = "x"  # type: ignore[index]  # read-only for the edge


def test_listeners_hear_every_change_of_the_routes_and_only_those(store: Store,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    directory = SipDirectory(store, ACCOUNT)
    heard: list[list[SipDomainRoute]] = []

    def broken() -> None:
        raise RuntimeError("listener bug")

    directory.subscribe(broken)  # logged, and the others still hear
    directory.subscribe(lambda: heard.append(directory.routes()))
    with caplog.at_level(logging.ERROR, logger="switch.core.sip_domains"):
        domain_sid, first, _second, acl = _populated(directory)
    assert "listener bug" in caplog.text
    # The domain, then each of its four mappings; lists, credentials and addresses of no domain changed nothing.
    assert len(heard) == 5
    assert [len(r[0].call_users) for r in heard] == [0, 2, 3, 3, 3]
    directory.update_credential_list(first, "renamed")  # no route changes
    directory.update_domain(domain_sid, {"friendly_name": "new name"})
    assert len(heard) == 5
    cred = next(c for c in directory.list_credentials(first) if c.username == "bob")
    directory.update_credential(first, cred.sid, "BobNewPassword1")
    assert heard[-1][0].call_users["bob"] == "BobNewPassword1"
    directory.delete_credential_list(first)  # its credentials and its mapping go
    assert heard[-1][0].call_users == {"bob": "BobSecondList1", "carol": "CarolPassword1"}
    assert directory.mapping(domain_sid, MappingKind.CALL_CREDENTIALS, first) is None
    directory.delete_ip_access_control_list(acl)
    assert heard[-1][0].call_networks == ()
    assert directory.auth_type(domain_sid) == "CREDENTIAL_LIST"
    directory.update_domain(domain_sid, {"domain_name": "New.Example.com", "voice_url": None})
    assert directory.route_named("pbx.example.com") is None
    renamed = directory.route_named("new.example.com")
    assert renamed is not None and renamed.voice_url is None
    assert directory.delete_domain(domain_sid) is True and directory.delete_domain(domain_sid) is False
    assert heard[-1] == [] and len(heard) == 10
    assert directory.list_mappings(directory.create_domain("x.example.com").sid,
                                   MappingKind.REGISTRATION_CREDENTIALS) == []


def test_domain_names_are_unique_across_the_switch(store: Store) -> None:
    mine = SipDirectory(store, ACCOUNT)
    theirs = SipDirectory(store, OTHER_ACCOUNT)
    made = mine.create_domain("pbx.example.com")
    for directory in (mine, theirs):
        with pytest.raises(Conflict):
            directory.create_domain("PBX.example.COM")
    other = mine.create_domain("other.example.com")
    with pytest.raises(Conflict):
        mine.update_domain(other.sid, {"domain_name": "Pbx.Example.Com"})
    assert mine.update_domain(made.sid, {"domain_name": "PBX.example.com"}) is not None  # its own name is fine
    assert theirs.routes() == []  # each account sees its own domains
    with pytest.raises(ValueError):
        mine.update_domain(made.sid, {"voice_method": None})


def test_what_cannot_be_stored(store: Store) -> None:
    directory = SipDirectory(store, ACCOUNT)
    cl = directory.create_credential_list("staff")
    with pytest.raises(Conflict):
        directory.create_credential_list("staff")
    with pytest.raises(InvalidArgument):
        directory.create_credential_list("x" * 65)
    directory.create_credential(cl.sid, "alice", GOOD)
    with pytest.raises(Conflict):
        directory.create_credential(cl.sid, "alice", GOOD)
    with pytest.raises(InvalidArgument):
        directory.create_credential(cl.sid, "bob", "weak")
    with pytest.raises(NotFound):
        directory.create_credential("CL" + "0" * 32, "bob", GOOD)
    acl = directory.create_ip_access_control_list("net")
    for n in range(100):
        directory.create_ip_address(acl.sid, f"host {n}", f"10.0.{n}.1")
    with pytest.raises(InvalidArgument, match="100"):
        directory.create_ip_address(acl.sid, "one more", "10.1.0.1")
    domain = directory.create_domain("pbx.example.com")
    with pytest.raises(InvalidArgument):
        directory.add_mapping(domain.sid, MappingKind.CALL_NETWORKS, cl.sid)  # a credential list is no IP list
    with pytest.raises(InvalidArgument):
        directory.add_mapping(domain.sid, MappingKind.CALL_CREDENTIALS, "CL" + "0" * 32)
    directory.add_mapping(domain.sid, MappingKind.CALL_CREDENTIALS, cl.sid)
    with pytest.raises(Conflict):
        directory.add_mapping(domain.sid, MappingKind.CALL_CREDENTIALS, cl.sid)
    assert directory.remove_mapping(domain.sid, MappingKind.CALL_CREDENTIALS, cl.sid) is True
    assert directory.remove_mapping(domain.sid, MappingKind.CALL_CREDENTIALS, cl.sid) is False


def test_everything_survives_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    directory = SipDirectory(store, ACCOUNT)
    _populated(directory)
    before = directory.routes()
    lists = directory.list_credential_lists()
    store.close()
    again = SipDirectory(Store(tmp_path / "db.sqlite"), ACCOUNT)
    assert again.routes() == before
    assert again.list_credential_lists() == lists
    assert [a.network for a in again.list_ip_addresses(again.list_ip_access_control_lists()[0].sid)] == [
        "10.0.0.0/24", "192.0.2.1/32"]
