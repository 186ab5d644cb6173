"""Twilio's SIP API (CredentialLists, IpAccessControlLists, Domains and their auth mappings) driven by the official
`twilio` client against a real `SipDirectory` on a real SQLite store.

The aiohttp application runs as in `test_api_twilio` (a background thread on 127.0.0.1).  Raw requests check what
the client hides: every field of a resource, and that no response ever carries a password.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from switch.core.sip_domains import SipDirectory
from switch.core.store import Store
from switch.dialects.errors import error_middleware
from switch.dialects.twilio.sip import add_twilio_sip_routes
from tests.functional.test_api_twilio import Server

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "sip-api-token"
PASSWORDS = ("IWasAtSignal2018", "AnotherGood1Password", "ChangedPassw0rd")
DOMAIN_FIELDS = {
    "account_sid", "api_version", "auth_type", "date_created", "date_updated", "domain_name", "friendly_name",
    "sid", "uri", "voice_fallback_method", "voice_fallback_url", "voice_method", "voice_status_callback_method",
    "voice_status_callback_url", "voice_url", "subresource_uris", "sip_registration", "emergency_calling_enabled",
    "secure", "byoc_trunk_sid", "emergency_caller_sid",
}  # fmt: skip
CREDENTIAL_FIELDS = {"sid", "account_sid", "credential_list_sid", "username", "date_created", "date_updated", "uri"}
AUTH_MAPPING_FIELDS = {"account_sid", "date_created", "date_updated", "friendly_name", "sid"}


@dataclass(frozen=True)
class Account:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN


class Switch:
    """The SIP API over a store in `path`; `restart` closes everything and opens it again on the same file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.heard = 0  # route changes the directory announced
        self._start()

    def _start(self) -> None:
        self.store = Store(self.path)
        self.directory = SipDirectory(self.store, ACCOUNT_SID)
        self.directory.subscribe(self._changed)
        app = web.Application(middlewares=[error_middleware])
        add_twilio_sip_routes(app, Account(), self.directory, "https://pbx.example.com/")
        self.server = Server(app).__enter__()
        self.client = Client(ACCOUNT_SID, AUTH_TOKEN)
        self.client.api.base_url = self.server.base_url
        self.http = requests.Session()
        self.http.trust_env = False  # never route 127.0.0.1 through a proxy from the environment
        self.http.auth = (ACCOUNT_SID, AUTH_TOKEN)

    def _changed(self) -> None:
        self.heard += 1

    def stop(self) -> None:
        self.http.close()
        self.server.__exit__()
        self.store.close()

    def restart(self) -> None:
        self.stop()
        self._start()

    def raw(self, method: str, uri: str, **kwargs: Any) -> requests.Response:
        """A request to a path as the API gives it ("/2010-04-01/...")."""
        return self.http.request(method, self.server.base_url + uri, timeout=5, **kwargs)

    def sip_path(self, rest: str) -> str:
        return f"/2010-04-01/Accounts/{ACCOUNT_SID}/SIP/{rest}"


@pytest.fixture
def switch(tmp_path: Path) -> Iterator[Switch]:
    running = Switch(tmp_path / "switch.db")
    yield running
    running.stop()


def _rest_error(call: Callable[[], Any]) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as info:
        call()
    return info.value


def _not_found(switch: Switch, rest: str) -> None:
    """A list under an unknown parent is a 404 (the client raises a plain TwilioException for a list page)."""
    response = switch.raw("GET", switch.sip_path(rest))
    assert (response.status_code, response.json()["code"]) == (404, 20404)


def _no_password(text: str) -> None:
    for password in PASSWORDS:
        assert password not in text
    assert "password" not in text.lower()


def test_credential_lists_and_credentials_never_show_a_password(switch: Switch) -> None:
    client = switch.client
    staff = client.sip.credential_lists.create(friendly_name="staff")
    assert staff.sid.startswith("CL") and len(staff.sid) == 34 and staff.friendly_name == "staff"
    assert staff.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/SIP/CredentialLists/{staff.sid}.json"
    assert staff.subresource_uris == {"credentials": staff.uri.removesuffix(".json") + "/Credentials.json"}
    alice = client.sip.credential_lists(staff.sid).credentials.create(username="alice", password=PASSWORDS[0])
    bob = client.sip.credential_lists(staff.sid).credentials.create(username="bob", password=PASSWORDS[1])
    assert alice.sid.startswith("CR") and (alice.username, alice.credential_list_sid) == ("alice", staff.sid)
    assert [c.username for c in client.sip.credential_lists(staff.sid).credentials.list(page_size=1)] == [
        "alice", "bob"]
    updated = client.sip.credential_lists(staff.sid).credentials(bob.sid).update(password=PASSWORDS[2])
    assert updated.username == "bob"
    assert switch.directory.credential(staff.sid, bob.sid).password == PASSWORDS[2]  # type: ignore[union-attr]

    # Raw JSON of every way a credential is rendered: create, fetch, list, update.
    credentials = switch.sip_path(f"CredentialLists/{staff.sid}/Credentials")
    made = switch.raw("POST", f"{credentials}.json", data={"Username": "carol", "Password": PASSWORDS[0]})
    assert made.status_code == 201 and set(made.json()) == CREDENTIAL_FIELDS
    assert made.headers["Location"] == "https://pbx.example.com" + made.json()["uri"]
    for response in (made, switch.raw("GET", f"{credentials}/{alice.sid}.json"),
                     switch.raw("GET", f"{credentials}.json"),
                     switch.raw("POST", f"{credentials}/{alice.sid}.json", data={"Password": PASSWORDS[2]})):
        assert response.status_code in (200, 201)
        _no_password(response.text)

    for password, missing in (("Short1a", "at least 12"), ("alllowercase123", "upper case"),
                              ("NoDigitsAtAllHere", "digit")):
        err = _rest_error(functools.partial(client.sip.credential_lists(staff.sid).credentials.create,
                                            username="dave", password=password))
        assert (err.status, err.code) == (400, 21243) and missing in err.msg, err.msg
    err = _rest_error(lambda: client.sip.credential_lists(staff.sid).credentials(alice.sid).update(password="weak"))
    assert (err.status, err.code) == (400, 21243)
    err = _rest_error(lambda: client.sip.credential_lists(staff.sid).credentials.create(username="alice",
                                                                                       password=PASSWORDS[0]))
    assert (err.status, err.code) == (400, 21243) and "alice" in err.msg
    err = _rest_error(lambda: client.sip.credential_lists.create(friendly_name="staff"))
    assert (err.status, err.code) == (400, 21240)

    renamed = client.sip.credential_lists(staff.sid).update(friendly_name="everyone")
    assert renamed.friendly_name == "everyone" and client.sip.credential_lists(staff.sid).fetch().friendly_name == (
        "everyone")
    assert client.sip.credential_lists(staff.sid).credentials(alice.sid).delete() is True
    err = _rest_error(client.sip.credential_lists(staff.sid).credentials(alice.sid).fetch)
    assert (err.status, err.code) == (404, 20404)
    assert client.sip.credential_lists(staff.sid).delete() is True
    for call in (client.sip.credential_lists(staff.sid).fetch,
                 client.sip.credential_lists(staff.sid).credentials(bob.sid).fetch):
        err = _rest_error(call)
        assert (err.status, err.code) == (404, 20404)
    _not_found(switch, f"CredentialLists/{staff.sid}/Credentials.json")
    assert client.sip.credential_lists.list() == []


def test_ip_access_control_lists_and_addresses(switch: Switch) -> None:
    client = switch.client
    office = client.sip.ip_access_control_lists.create(friendly_name="office")
    assert office.sid.startswith("AL") and office.subresource_uris == {
        "ip_addresses": office.uri.removesuffix(".json") + "/IpAddresses.json"}
    ips = client.sip.ip_access_control_lists(office.sid).ip_addresses
    desk = ips.create(friendly_name="desk", ip_address="192.0.2.10")
    lan = ips.create(friendly_name="lan", ip_address="10.1.2.3", cidr_prefix_length=24)
    assert desk.sid.startswith("IP") and (desk.ip_address, desk.cidr_prefix_length) == ("192.0.2.10", 32)
    assert (lan.ip_access_control_list_sid, lan.cidr_prefix_length) == (office.sid, 24)
    assert [i.sid for i in ips.list()] == [desk.sid, lan.sid]
    moved = ips(desk.sid).update(ip_address="192.0.2.11")
    assert (moved.ip_address, moved.friendly_name, moved.cidr_prefix_length) == ("192.0.2.11", "desk", 32)
    for kwargs in ({"friendly_name": "x", "ip_address": "300.1.1.1"}, {"friendly_name": "x", "ip_address": "::1"},
                   {"friendly_name": "x", "ip_address": "10.0.0.1", "cidr_prefix_length": 33},
                   {"friendly_name": "", "ip_address": "10.0.0.1"}):
        err = _rest_error(functools.partial(ips.create, **kwargs))
        assert (err.status, err.code) == (400, 20001), kwargs
    assert client.sip.ip_access_control_lists(office.sid).update(friendly_name="hq").friendly_name == "hq"
    assert ips(lan.sid).delete() is True
    assert [i.sid for i in ips.list()] == [desk.sid]
    _not_found(switch, f"IpAccessControlLists/AL{'0' * 32}/IpAddresses.json")


def test_domains_and_their_mappings(switch: Switch) -> None:
    client = switch.client
    staff = client.sip.credential_lists.create(friendly_name="staff")
    client.sip.credential_lists(staff.sid).credentials.create(username="alice", password=PASSWORDS[0])
    phones = client.sip.credential_lists.create(friendly_name="phones")
    client.sip.credential_lists(phones.sid).credentials.create(username="desk1", password=PASSWORDS[1])
    office = client.sip.ip_access_control_lists.create(friendly_name="office")
    client.sip.ip_access_control_lists(office.sid).ip_addresses.create(friendly_name="lan", ip_address="10.1.2.3",
                                                                      cidr_prefix_length=24)

    domain = client.sip.domains.create(domain_name="PBX.Example.com", voice_url="https://app.example.com/voice",
                                       voice_method="GET", sip_registration=True, friendly_name="front")
    assert domain.sid.startswith("SD") and domain.domain_name == "pbx.example.com"
    assert (domain.voice_url, domain.voice_method, domain.voice_fallback_method) == (
        "https://app.example.com/voice", "GET", "POST")
    assert (domain.sip_registration, domain.auth_type, domain.secure) == (True, "", False)
    raw = switch.raw("GET", domain.uri).json()
    assert set(raw) == DOMAIN_FIELDS
    assert raw["subresource_uris"] == {
        "ip_access_control_list_mappings": domain.uri.removesuffix(".json") + "/IpAccessControlListMappings.json",
        "credential_list_mappings": domain.uri.removesuffix(".json") + "/CredentialListMappings.json"}

    auth = client.sip.domains(domain.sid).auth
    mapped = auth.calls.credential_list_mappings.create(credential_list_sid=staff.sid)
    assert (mapped.sid, mapped.friendly_name) == (staff.sid, "staff")
    auth.calls.ip_access_control_list_mappings.create(ip_access_control_list_sid=office.sid)
    auth.registrations.credential_list_mappings.create(credential_list_sid=phones.sid)
    assert client.sip.domains(domain.sid).fetch().auth_type == "IP_ACL,CREDENTIAL_LIST"
    assert [m.sid for m in auth.calls.credential_list_mappings.list()] == [staff.sid]
    assert auth.calls.ip_access_control_list_mappings(office.sid).fetch().friendly_name == "office"
    assert auth.registrations.credential_list_mappings(phones.sid).fetch().sid == phones.sid
    listed = switch.raw("GET", switch.sip_path(f"Domains/{domain.sid}/Auth/Calls/CredentialListMappings.json"))
    assert set(listed.json()["contents"][0]) == AUTH_MAPPING_FIELDS
    # The legacy mappings are the Calls auth's.
    legacy = client.sip.domains(domain.sid).credential_list_mappings.list()
    assert [(m.sid, m.domain_sid) for m in legacy] == [(staff.sid, domain.sid)]
    assert [m.sid for m in client.sip.domains(domain.sid).ip_access_control_list_mappings.list()] == [office.sid]

    route = switch.directory.route_named("pbx.example.com")
    assert route is not None
    assert (dict(route.call_users), dict(route.registration_users), route.call_networks) == (
        {"alice": PASSWORDS[0]}, {"desk1": PASSWORDS[1]}, ("10.1.2.0/24",))
    _no_password(switch.raw("GET", switch.sip_path("Domains.json")).text)

    errors = [
        (lambda: client.sip.domains.create(domain_name="pbx.EXAMPLE.com"), 400, 21231),  # taken, in any case
        (lambda: client.sip.domains.create(domain_name="not a host"), 400, 21231),
        (lambda: client.sip.domains.create(domain_name="x.example.com", voice_url="ftp://x"), 400, 21205),
        (lambda: client.sip.domains.create(domain_name="x.example.com", voice_method="PUT"), 400, 21209),
        (lambda: client.sip.domains.create(domain_name="x.example.com", secure=True), 400, 21231),
        (lambda: auth.calls.credential_list_mappings.create(credential_list_sid=staff.sid), 400, 21231),  # twice
        (lambda: auth.calls.credential_list_mappings.create(credential_list_sid="CL" + "0" * 32), 400, 21231),
        (lambda: auth.calls.ip_access_control_list_mappings.create(ip_access_control_list_sid=staff.sid), 400,
         21231),
        (client.sip.domains("SD" + "0" * 32).fetch, 404, 20404),
        (lambda: client.sip.domains("SD" + "0" * 32).update(friendly_name="x"), 404, 20404),
        (auth.calls.credential_list_mappings(phones.sid).fetch, 404, 20404),
    ]
    for call, status, code in errors:
        err = _rest_error(call)
        assert (err.status, err.code) == (status, code), err.msg
    _not_found(switch, f"Domains/SD{'0' * 32}/Auth/Calls/CredentialListMappings.json")

    updated = client.sip.domains(domain.sid).update(voice_fallback_url="https://app.example.com/fallback",
                                                    sip_registration=False, domain_name="Office.Example.com")
    assert (updated.voice_fallback_url, updated.sip_registration, updated.domain_name) == (
        "https://app.example.com/fallback", False, "office.example.com")
    assert updated.voice_url == "https://app.example.com/voice"  # untouched
    assert client.sip.domains(domain.sid).update(voice_fallback_url="").voice_fallback_url is None
    assert switch.directory.route_named("pbx.example.com") is None

    assert client.sip.credential_lists(staff.sid).delete() is True  # unmapped with it
    assert auth.calls.credential_list_mappings.list() == []
    assert client.sip.domains(domain.sid).fetch().auth_type == "IP_ACL"
    assert auth.calls.ip_access_control_list_mappings(office.sid).delete() is True
    assert client.sip.domains(domain.sid).fetch().auth_type == ""
    second = client.sip.domains.create(domain_name="second.example.com")
    assert [d.sid for d in client.sip.domains.list(page_size=1)] == [domain.sid, second.sid]
    assert client.sip.domains(domain.sid).delete() is True
    assert [r.domain_name for r in switch.directory.routes()] == ["second.example.com"]
    # A domain, 3 mappings, 2 updates, a list deleted, an unmapping, another domain, a domain gone; the lists and
    # credentials made before any domain used them changed no route.
    assert switch.heard == 10


def test_everything_survives_a_restart(switch: Switch) -> None:
    client = switch.client
    staff = client.sip.credential_lists.create(friendly_name="staff")
    alice = client.sip.credential_lists(staff.sid).credentials.create(username="alice", password=PASSWORDS[0])
    office = client.sip.ip_access_control_lists.create(friendly_name="office")
    client.sip.ip_access_control_lists(office.sid).ip_addresses.create(friendly_name="gw", ip_address="192.0.2.1")
    domain = client.sip.domains.create(domain_name="pbx.example.com", voice_url="https://app.example.com/voice",
                                       sip_registration=True)
    client.sip.domains(domain.sid).auth.calls.credential_list_mappings.create(credential_list_sid=staff.sid)
    client.sip.domains(domain.sid).auth.calls.ip_access_control_list_mappings.create(
        ip_access_control_list_sid=office.sid)
    client.sip.domains(domain.sid).auth.registrations.credential_list_mappings.create(credential_list_sid=staff.sid)
    before = switch.directory.routes()

    switch.restart()
    client = switch.client
    assert switch.directory.routes() == before
    fetched = client.sip.domains(domain.sid).fetch()
    assert (fetched.domain_name, fetched.voice_url, fetched.sip_registration, fetched.auth_type,
            fetched.date_created) == ("pbx.example.com", "https://app.example.com/voice", True,
                                      "IP_ACL,CREDENTIAL_LIST", domain.date_created)
    assert client.sip.credential_lists(staff.sid).credentials(alice.sid).fetch().username == "alice"
    assert [m.sid for m in client.sip.domains(domain.sid).auth.registrations.credential_list_mappings.list()] == [
        staff.sid]
    route = switch.directory.route_named("PBX.example.com")
    assert route is not None and dict(route.call_users) == {"alice": PASSWORDS[0]}
    assert route.call_networks == ("192.0.2.1/32",)
    err = _rest_error(lambda: client.sip.domains.create(domain_name="pbx.example.com"))
    assert (err.status, err.code) == (400, 21231)
