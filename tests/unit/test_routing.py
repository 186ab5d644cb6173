"""Unit tests of outbound routing (`switch.core.routing`)."""

from __future__ import annotations

import pytest

from switch.core.config import Trunk
from switch.core.errors import InvalidArgument, Problem
from switch.core.routing import Route, from_uri, is_sip_uri, route, sip_uri_problem
from switch.dialects.errors import twilio_error

US = Trunk(name="us", uri="sip:us.example.com:5070", username="alice", password="s3cret", prefixes=("+1", "1"))
UK = Trunk(name="uk", uri="sip:uk.example.com", prefixes=("+44",))
ANY = Trunk(name="any", uri="sips:gw@any.example.com:5061;transport=tls", username="gw")
TRUNKS = [US, UK, ANY]


@pytest.mark.parametrize("uri", ["sip:bob@example.com", "sip:bob@example.com:5061",
                                 "sip:+15550100@10.0.0.1:5080;transport=udp"])
def test_sip_uri_dialed_as_is(uri: str) -> None:
    assert route(uri, TRUNKS) == Route(uri, None, None)


def test_sip_uri_with_explicit_auth() -> None:
    r = route("sip:bob@example.com", TRUNKS, auth_username="bob", auth_password="pw")
    assert r == Route("sip:bob@example.com", ("bob", "pw"), None)


def test_sip_uri_with_username_only_gets_empty_password() -> None:
    r = route("sip:bob@example.com", [], auth_username="bob")
    assert r.auth == ("bob", "")


def test_sip_uri_password_without_username_is_ignored() -> None:
    assert route("sip:bob@example.com", [], auth_password="pw").auth is None


def test_phone_number_to_first_matching_trunk_with_its_credentials() -> None:
    r = route("+15550100", TRUNKS)
    assert r == Route("sip:+15550100@us.example.com:5070", ("alice", "s3cret"), "us")


def test_phone_number_second_trunk_by_prefix() -> None:
    r = route("+442071234567", TRUNKS)
    assert r == Route("sip:+442071234567@uk.example.com", None, "uk")


def test_phone_number_falls_through_to_catch_all_trunk() -> None:
    r = route("+33123456789", TRUNKS)
    # a catch-all trunk with only a username answers digest with an empty password
    assert r == Route("sip:+33123456789@any.example.com:5061", ("gw", ""), "any")


def test_first_match_wins_in_list_order() -> None:
    r = route("+15550100", [ANY, US])
    assert r.trunk == "any"


def test_number_without_plus_matches_prefix() -> None:
    assert route("15550100", TRUNKS).trunk == "us"


def test_spaces_and_dashes_are_stripped() -> None:
    r = route("+1 555-0100", TRUNKS)
    assert r.uri == "sip:+15550100@us.example.com:5070"
    assert r.trunk == "us"


def test_explicit_auth_overrides_trunk_credentials() -> None:
    r = route("+15550100", TRUNKS, auth_username="override", auth_password="pw2")
    assert r.auth == ("override", "pw2")
    assert r.trunk == "us"


def test_trunk_without_credentials_gets_explicit_auth() -> None:
    assert route("+442071234567", TRUNKS, auth_username="u", auth_password="p").auth == ("u", "p")


@pytest.mark.parametrize("trunks", [[], [UK]])
def test_no_trunk_is_21215(trunks: list[Trunk]) -> None:
    with pytest.raises(InvalidArgument) as info:
        route("+15550100", trunks)
    assert info.value.problem is Problem.NO_ROUTE
    assert (twilio_error(info.value).http_status, twilio_error(info.value).code) == (400, 21215)
    assert "+15550100" in info.value.message


def test_client_is_21211() -> None:
    with pytest.raises(InvalidArgument) as info:
        route("client:alice", TRUNKS)
    assert info.value.problem is Problem.INVALID_TO
    assert (twilio_error(info.value).http_status, twilio_error(info.value).code) == (400, 21211)
    assert "client:alice" in info.value.message


@pytest.mark.parametrize("to", ["hello", "", "+", "1", "+1555abc", "bob@example.com", "tel:+15550100",
                                "+123456789012345678901"])
def test_garbage_is_21211(to: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        route(to, TRUNKS)
    assert info.value.problem is Problem.INVALID_TO
    assert (twilio_error(info.value).http_status, twilio_error(info.value).code) == (400, 21211)


def test_is_sip_uri() -> None:
    assert is_sip_uri("sip:a@b")
    assert is_sip_uri("sips:a@b")
    assert is_sip_uri("SIP:a@b")
    assert not is_sip_uri("+15550100")
    assert not is_sip_uri("client:alice")


def test_from_uri_bare_number_gets_our_host() -> None:
    assert from_uri("+15550100", None, "10.0.0.5", 5060) == "sip:+15550100@10.0.0.5:5060"


def test_from_uri_sip_uri_as_is() -> None:
    assert from_uri("sip:alice@example.com", None, "h", 5060) == "sip:alice@example.com"


def test_from_uri_caller_id_wins() -> None:
    assert from_uri("+15550100", "+15550199", "h", 5070) == "sip:+15550199@h:5070"
    assert from_uri("+15550100", "sips:ceo@example.com", "h", 5070) == "sips:ceo@example.com"


def test_from_uri_empty_caller_id_falls_back_to_from() -> None:
    assert from_uri("+15550100", "", "h", 5060) == "sip:+15550100@h:5060"


def test_from_uri_client_prefix_stripped() -> None:
    assert from_uri("client:alice", None, "h", 5060) == "sip:alice@h:5060"


@pytest.mark.parametrize(("to", "why"), [
    ("sip:bob", "no host"),
    ("sip:bob@", "no host"),
    ("sip:@", "no host"),
    ("sip:", "no host"),
    ("sip:bob@;transport=udp", "no host"),
    ("sip:@example.com", "no user"),
    ("sip:bob@exa mple.com", "not a host"),
    ("sip:bob@example.com:0", "port 0 is out of range"),
    ("sip:bob@example.com:70000", "port 70000 is out of range"),
    ("sip:bob@example.com:", "not a host"),
])
def test_sip_uri_without_a_usable_host_is_21211(to: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        route(to, TRUNKS)
    assert info.value.problem is Problem.INVALID_TO
    assert (twilio_error(info.value).http_status, twilio_error(info.value).code) == (400, 21211)
    assert info.value.message.startswith(f"Invalid SIP URI {to}: ")
    assert why in info.value.message


@pytest.mark.parametrize("to", ["sips:bob@example.com:5061", "SIPS:bob@example.com"])
def test_sips_is_21211_until_tls(to: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        route(to, TRUNKS)
    assert (twilio_error(info.value).http_status, twilio_error(info.value).code) == (400, 21211)
    assert info.value.message == (f"Invalid SIP URI {to}: sips: needs SIP over TLS, which softswitch does not "
                                  "support yet; dial a sip: URI")


@pytest.mark.parametrize("uri", ["sip:example.com", "sip:127.0.0.1:5070", "sip:localhost", "sip:bob@[::1]:5060",
                                 "sip:bob@host?Subject=hi", "sip:+1555;phone-context=x@gw.example.com",
                                 "SIP:bob@example.com", "sip:bob@gw"])
def test_hosts_that_dial(uri: str) -> None:
    assert sip_uri_problem(uri) is None
    assert route(uri, []).uri == uri
