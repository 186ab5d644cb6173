"""The malformed-SIP corpus generator (tests/peers/sipfuzz.py) stays what issue 13's CI test needs.

Only the generator and the pure helpers are checked here; sending the corpus to a switch is an e2e matter.
"""

from __future__ import annotations

import collections
import re

import pytest

from tests.peers.sipfuzz import KINDS, UDP_MAX, Dialog, Fuzzed, answer_for, corpus, dialog_from_invite, send_corpus
from tests.peers.sipfuzz_messages import ALL, BASES, parse, tag_of

# What the switch (pjsua) sends when it calls a peer: an addr-spec From/To, as pjsip writes them.
SWITCH_INVITE = (
    b"INVITE sip:peer@127.0.0.1:40000 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKPjSwitchBranch\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: sip:+15550100@127.0.0.1;tag=SwitchTag\r\n"
    b"To: sip:peer@127.0.0.1\r\n"
    b"Contact: <sip:softswitch@127.0.0.1:5060;ob>\r\n"
    b"Call-ID: LiveCallId\r\n"
    b"CSeq: 4711 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)
LIVE = dialog_from_invite(SWITCH_INVITE, local_tag=b"PeerTag", local_contact=b"<sip:peer@127.0.0.1:40000>")


def non_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False


@pytest.fixture(scope="module")
def messages() -> list[Fuzzed]:
    return corpus(seed=1)


@pytest.fixture(scope="module")
def aimed() -> list[Fuzzed]:
    return corpus(seed=1, dialog=LIVE)


def test_at_least_a_thousand_messages_of_bytes(messages: list[Fuzzed]) -> None:
    assert len(messages) == 1200
    assert all(isinstance(m, Fuzzed) and isinstance(m.data, bytes) for m in messages)
    assert {m.transport for m in messages} == {"any", "udp", "tcp"}
    for m in messages:
        expected = "udp" if not m.data else "tcp" if len(m.data) > UDP_MAX else "any"
        assert m.transport == expected, (m.kind, len(m.data))


def test_every_kind_on_every_base_it_names(messages: list[Fuzzed]) -> None:
    made = collections.Counter((m.kind, m.base) for m in messages)
    wanted = {(kind, base) for kind, spec in KINDS.items() for base in spec.bases}
    assert set(made) == wanted
    assert {m.base for m in messages} == {*ALL, "none"} == set(BASES)
    assert len(KINDS) >= 40


def test_deterministic_for_a_seed() -> None:
    assert corpus(seed=7, count=400) == corpus(seed=7, count=400)
    assert corpus(seed=7, count=400) != corpus(seed=8, count=400)
    assert corpus(seed=7, count=1000, dialog=LIVE) == corpus(seed=7, count=1000, dialog=LIVE)


def test_non_utf8_in_every_field_kind(messages: list[Fuzzed]) -> None:
    for m in messages:
        if m.kind.startswith("non-utf8-"):
            assert non_utf8(m.data), (m.kind, m.base, m.data[:200])
    assert sum(non_utf8(m.data) for m in messages) > 150
    reasons = [m.data.split(b"\r\n", 1)[0] for m in messages if m.kind == "non-utf8-reason"]
    assert reasons and all(r.startswith(b"SIP/2.0 ") and non_utf8(r) for r in reasons)


def test_sdp_address_families_that_disagree(messages: list[Fuzzed]) -> None:
    v6_in_ip4 = [m for m in messages if m.kind == "sdp-c-ip4-ipv6-address"]
    assert v6_in_ip4 and all(re.search(rb"c=IN IP4 \[?[0-9a-f]*:", m.data) for m in v6_in_ip4)
    v4_in_ip6 = [m for m in messages if m.kind == "sdp-c-ip6-ipv4-address"]
    assert v4_in_ip6 and all(b"c=IN IP6 " in m.data for m in v4_in_ip6)
    assert any(b"c=IN IP4 ::1\r\n" in m.data for m in v6_in_ip4)


def test_a_200_without_to_tag_reuses_the_dialog(aimed: list[Fuzzed]) -> None:
    found = [m for m in aimed if m.kind == "200-no-to-tag"]
    assert len(found) >= 3
    for m in found:
        start, headers = parse(m.data)
        assert start == b"SIP/2.0 200 OK"
        assert headers[b"call-id"] == [b"LiveCallId"]
        assert tag_of(headers[b"from"][0]) == b"SwitchTag"
        assert tag_of(headers[b"to"][0]) == b""
        assert headers[b"cseq"] == [b"4711 INVITE"]


def test_only_answerable_kinds_aim_at_the_dialog(aimed: list[Fuzzed]) -> None:
    for m in aimed:
        if not KINDS[m.kind].aims:
            assert b"LiveCallId" not in m.data, m.kind
    aimed_kinds = {m.kind for m in aimed if b"LiveCallId" in m.data}
    assert {"wrong-to-tag", "wrong-from-tag", "wrong-cseq", "200-no-to-tag", "forked-200", "replaces",
            "sdp-c-ip4-ipv6-address", "non-utf8-display"} <= aimed_kinds
    reinvites = [m for m in aimed if m.base == "re-INVITE" and m.kind.startswith("sdp-")]
    assert reinvites and all(m.data.startswith(b"INVITE sip:softswitch@127.0.0.1:5060;ob SIP/2.0\r\n")
                             and b"Contact: <sip:peer@127.0.0.1:40000>" in m.data for m in reinvites)


def test_no_bye_or_cancel_can_end_the_dialog(aimed: list[Fuzzed]) -> None:
    for m in aimed:
        if not m.data.startswith((b"BYE ", b"CANCEL ")):
            continue
        _, headers = parse(m.data)
        cseq = (headers.get(b"cseq") or [b""])[0].split()
        matches = (headers.get(b"call-id") == [b"LiveCallId"]
                   and tag_of((headers.get(b"from") or [b""])[0]) == b"PeerTag"
                   and tag_of((headers.get(b"to") or [b""])[0]) == b"SwitchTag"
                   and len(cseq) == 2 and cseq[0].isdigit())
        assert not matches, m.data


def test_dialog_from_the_switchs_invite() -> None:
    assert Dialog(
        call_id=b"LiveCallId", local_uri=b"sip:peer@127.0.0.1", local_tag=b"PeerTag",
        remote_uri=b"sip:+15550100@127.0.0.1", remote_tag=b"SwitchTag",
        remote_target=b"sip:softswitch@127.0.0.1:5060;ob", local_contact=b"<sip:peer@127.0.0.1:40000>",
        cseq=1, invite_cseq=4711, invite_via=b"SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKPjSwitchBranch",
    ) == LIVE


def _response(code: bytes, call_id: bytes = b"c1") -> bytes:
    return (b"SIP/2.0 " + code + b"\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;rport=5099;branch=z9hG4bKmine\r\n"
            b"From: <sip:a@127.0.0.1>;tag=f\r\nTo: <sip:b@127.0.0.1>;tag=t\r\nCall-ID: " + call_id + b"\r\n"
            b"CSeq: 9 INVITE\r\nContact: <sip:sw@127.0.0.1:5060>\r\nContent-Length: 0\r\n\r\n")


def test_answers_for_what_the_switch_sends() -> None:
    ack, bye = answer_for(_response(b"200 OK"), "127.0.0.1:5099")
    assert ack.startswith(b"ACK sip:sw@127.0.0.1:5060 SIP/2.0\r\n") and b"CSeq: 9 ACK\r\n" in ack
    assert bye.startswith(b"BYE sip:sw@127.0.0.1:5060 SIP/2.0\r\n") and b"CSeq: 10 BYE\r\n" in bye
    assert b"To: <sip:b@127.0.0.1>;tag=t\r\n" in ack and b"To: <sip:b@127.0.0.1>;tag=t\r\n" in bye
    assert [a.split(b" ", 1)[0] for a in answer_for(_response(b"200 OK", b"keep"), "127.0.0.1:5099", b"keep")] == [
        b"ACK"]
    (ack_busy,) = answer_for(_response(b"486 Busy Here"), "127.0.0.1:5099")
    assert b"Via: SIP/2.0/UDP 127.0.0.1:5099;rport=5099;branch=z9hG4bKmine\r\n" in ack_busy  # its own transaction
    assert answer_for(_response(b"180 Ringing"), "127.0.0.1:5099") == []
    bye_in = _response(b"200 OK").replace(b"SIP/2.0 200 OK", b"BYE sip:peer@127.0.0.1 SIP/2.0").replace(
        b"9 INVITE", b"3 BYE")
    (ok,) = answer_for(bye_in, "127.0.0.1:5099")
    assert ok.startswith(b"SIP/2.0 200 OK\r\n") and b"CSeq: 3 BYE\r\n" in ok
    assert answer_for(b"\xff\x00garbage", "127.0.0.1:5099") == []


def test_sends_only_to_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        send_corpus(corpus(count=1), "192.0.2.1", 5060)
