"""SIP domains at the edge, without processes: the `sipdom` rows, the edge's trusted headers and Twilio's SIP
parameters, `client:` routing, and the X- headers a worker hands over."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path

import pytest

from switch.core.errors import InvalidArgument
from switch.core.sip_calls import ClientRouter, domain_call, inbound_app
from switch.core.sip_domains import SipDomainRoute
from switch.workers.edge_db import DOMAIN_SCHEMAS, EDGE_SCHEMAS, prepare_database, replace_htable
from switch.workers.edge_domains import EdgeDomain, ha1, htable_rows
from switch.workers.protocol import Incoming
from switch.workers.sipmsg import x_headers

pytestmark = pytest.mark.unit

ACCOUNT = "AC" + "1" * 32


def _route(name: str = "acme.sip.localhost", registration: bool = True, account: str = ACCOUNT) -> SipDomainRoute:
    return SipDomainRoute(sid="SD" + "2" * 32, account_sid=account, domain_name=name, voice_url="http://app/voice",
                          voice_method="POST", voice_fallback_url=None, voice_fallback_method="POST",
                          voice_status_callback_url="http://app/status", voice_status_callback_method="GET",
                          sip_registration=registration, registration_users={}, call_users={}, call_networks=())


def test_ha1_is_md5_of_user_realm_password() -> None:
    assert ha1("alice", "acme.sip.localhost", "pw") == hashlib.md5(b"alice:acme.sip.localhost:pw").hexdigest()


def test_htable_rows_hold_sids_hashes_and_networks_never_passwords() -> None:
    domain = EdgeDomain("Acme.SIP.localhost", "SD1", registration=True, registration_users={"alice": "Secret123456"},
                        call_users={"pbx": "Other1234567"}, call_networks=("127.0.0.2/32", "10.0.0.0/8"))
    rows = htable_rows([domain, EdgeDomain("ops.sip.localhost", "SD2")])
    assert rows == {
        "d:acme.sip.localhost": "SD1",
        "g:acme.sip.localhost": "1",
        "r:acme.sip.localhost:alice": ha1("alice", "acme.sip.localhost", "Secret123456"),
        "cc:acme.sip.localhost": "1",
        "c:acme.sip.localhost:pbx": ha1("pbx", "acme.sip.localhost", "Other1234567"),
        "n:acme.sip.localhost:0": "127.0.0.2/32",
        "n:acme.sip.localhost:1": "10.0.0.0/8",
        "d:ops.sip.localhost": "SD2",
    }
    assert not any("Secret123456" in v or "Other1234567" in v for v in rows.values())


def test_a_domain_without_registration_has_no_registration_keys() -> None:
    rows = htable_rows([EdgeDomain("a.example", "SD1", registration=False, registration_users={"u": "p"})])
    assert rows == {"d:a.example": "SD1"}


def test_the_edge_databases_are_made_from_kamailios_schemas_and_keep_only_the_latest_rows(tmp_path: Path) -> None:
    edge, keys = tmp_path / "edge" / "edge.sqlite", tmp_path / "edge" / "domains.sqlite"
    for _ in range(2):  # a second start changes nothing
        prepare_database(edge, EDGE_SCHEMAS)
        prepare_database(keys, DOMAIN_SCHEMAS)
    replace_htable(keys, {"d:a.example": "SD1", "d:b.example": "SD2"})
    replace_htable(keys, {"d:b.example": "SD2"})
    found = {}
    for path in (edge, keys):
        with sqlite3.connect(path) as db:
            found[path.name] = (db.execute("PRAGMA journal_mode").fetchone()[0],
                                set(dict(db.execute("SELECT table_name, table_version FROM version"))))
    # WAL: Kamailio's driver waits for no lock, and a reader of the rollback journal locks its writers out
    assert found == {"edge.sqlite": ("wal", {"version", "location", "location_attrs", "uacreg"}),
                     "domains.sqlite": ("wal", {"version", "htable"})}
    with sqlite3.connect(keys) as db:
        assert db.execute("SELECT key_name, key_value FROM htable").fetchall() == [("d:b.example", "SD2")]


def _incoming(headers: dict[str, str]) -> Incoming:
    return Incoming(leg="L1", from_uri='"Alice" <sip:alice@acme.sip.localhost>;tag=x',
                    to_uri="<sip:bob@acme.sip.localhost>", request_uri="sip:bob@acme.sip.localhost;transport=tcp",
                    call_id="abc@1", t=0.0, headers=headers)


def test_a_domain_call_carries_twilios_sip_parameters() -> None:
    headers = {"X-Softswitch-Domain": "acme.sip.localhost", "X-Softswitch-Source": "127.0.0.2",
               "X-Softswitch-Auth": "credentials", "X-Softswitch-User": "pbx", "X-Customer": "42"}
    route = _route()
    number, sip = inbound_app(_incoming(headers), True, {"acme.sip.localhost": route}.get, lambda n: None)
    assert sip is not None and number is not None
    assert (sip.from_, sip.to) == ("sip:alice@acme.sip.localhost", "sip:bob@acme.sip.localhost")
    assert sip.params == {"SipDomain": "acme.sip.localhost", "SipDomainSid": route.sid, "SipCallId": "abc@1",
                          "SipSourceIp": "127.0.0.2", "SipUsername": "pbx", "SipHeader_X-Customer": "42"}
    assert (number.voice_url, number.status_callback, number.status_callback_method) == (
        "http://app/voice", "http://app/status", "GET")


def test_edge_headers_are_not_believed_without_the_edge_nor_for_a_deleted_domain() -> None:
    headers = {"X-Softswitch-Domain": "acme.sip.localhost"}
    assert inbound_app(_incoming(headers), False, {"acme.sip.localhost": _route()}.get, lambda n: None) == (
        None, None)
    assert domain_call(headers, "sip:bob@acme.sip.localhost", "sip:a@b", "c", lambda name: None) is None


def test_a_client_rings_where_it_is_registered_else_on_the_first_domain() -> None:
    domains = [_route("one.example"), _route("two.example"), _route("off.example", registration=False),
               _route("other.example", account="AC" + "9" * 32)]

    async def contacts(aor: str) -> list[str]:
        return ["sip:alice@127.0.0.1:5070"] if aor == "alice@two.example" else []

    router = ClientRouter(lambda: domains, contacts)
    assert asyncio.run(router.route("client:alice", ACCOUNT)).uri == "sip:alice@two.example"
    assert asyncio.run(router.route("client:nobody", ACCOUNT)).uri == "sip:nobody@one.example"
    with pytest.raises(InvalidArgument, match="sip_registration"):
        asyncio.run(ClientRouter(lambda: domains[2:3], contacts).route("client:alice", ACCOUNT))
    with pytest.raises(InvalidArgument, match="SIP edge"):
        asyncio.run(ClientRouter(lambda: domains, None).route("client:alice", ACCOUNT))


def test_x_headers_keep_their_names_and_the_first_value() -> None:
    message = ("INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nX-Customer-Id: 42\r\nx-lower: a\r\n"
               "X-Customer-Id: 43\r\nSubject: s\r\n\r\nX-Body: no\r\n")
    assert x_headers(message) == {"X-Customer-Id": "42", "x-lower": "a"}
    assert x_headers("") == {}
