"""The checks of switch.worker.guard on raw SDP and raw SIP messages (issue 13, section 2: K1, K2, REGISTER)."""

from __future__ import annotations

import pytest

from switch.worker.guard import (
    NewCallRate,
    bad_connection_address,
    drop_message,
    header_tag,
    new_invite_call_id,
    parse_raw,
    refuse_request,
)

BODY = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\n{c}t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n{mc}a=rtpmap:0 PCMU/8000\r\n"


@pytest.mark.parametrize("c", ["IN IP4 ::1", "IN IP4 fe80::1", "IN IP4 2001:db8::1", "IN IP6 127.0.0.1",
                               "IN IP4 ::ffff:127.0.0.1", "IN IP4 [::1]"])
def test_wrong_family_is_refused_at_session_and_media_level(c: str) -> None:
    assert bad_connection_address(BODY.format(c=f"c={c}\r\n", mc=""))
    assert bad_connection_address(BODY.format(c="c=IN IP4 127.0.0.1\r\n", mc=f"c={c}\r\n"))


@pytest.mark.parametrize("c", ["IN IP4 127.0.0.1", "IN IP6 ::1", "IN IP4 224.2.1.1/127", "IN IP4 host.example",
                               "IN IP6 2001:db8::1"])
def test_matching_family_passes(c: str) -> None:
    assert not bad_connection_address(BODY.format(c=f"c={c}\r\n", mc=""))
    assert not bad_connection_address(BODY.format(c=f"c={c}\n", mc="").replace("\r", ""))


def test_no_sdp_passes() -> None:
    assert not bad_connection_address("")


# -- raw messages: what the worker's pjsip module (switch.worker.rxguard) refuses or drops -------------------------

SDP = b"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=%s\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def _message(start: bytes, to: bytes, cseq: bytes, body: bytes = b"", eol: bytes = b"\r\n") -> bytes:
    lines = [start, b"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKx", b"From: <sip:a@127.0.0.1>;tag=ours",
             b"To: " + to, b"Call-ID: c1@x", b"CSeq: " + cseq, b"Content-Length: %d" % len(body)]
    return eol.join(lines) + eol + eol + body


def test_register_is_refused_405() -> None:
    assert refuse_request(_message(b"REGISTER sip:127.0.0.1 SIP/2.0", b"<sip:a@127.0.0.1>", b"1 REGISTER")) == 405
    assert refuse_request(_message(b"register sip:127.0.0.1 SIP/2.0", b"<sip:a@h>", b"1 register")) == 405


@pytest.mark.parametrize("c", [b"IN IP4 ::1", b"IN IP4 fe80::1", b"IN IP6 127.0.0.1"])
def test_new_invite_with_a_wrong_family_is_refused_488(c: bytes) -> None:
    invite = _message(b"INVITE sip:+15550100@127.0.0.1 SIP/2.0", b"<sip:+15550100@127.0.0.1>", b"1 INVITE", SDP % c)
    assert refuse_request(invite) == 488
    assert refuse_request(invite.replace(b"\r\n", b"\n")) == 488  # bare LF line ends parse the same


def test_good_requests_and_re_invites_pass() -> None:
    good = _message(b"INVITE sip:+15550100@127.0.0.1 SIP/2.0", b"<sip:b@h>", b"1 INVITE", SDP % b"IN IP4 127.0.0.1")
    assert refuse_request(good) == 0 and drop_message(good) == ""
    # a re-INVITE (To tag) is refused in the dialog by Leg.onCallRxReinvite, not statelessly here
    reinvite = _message(b"INVITE sip:x@h SIP/2.0", b"<sip:b@h>;tag=theirs", b"2 INVITE", SDP % b"IN IP4 ::1")
    assert refuse_request(reinvite) == 0 and drop_message(reinvite) == ""
    assert refuse_request(_message(b"OPTIONS sip:h SIP/2.0", b"<sip:b@h>", b"1 OPTIONS")) == 0
    assert refuse_request(b"\xff\xfe garbage") == 0 and drop_message(b"") == ""


@pytest.mark.parametrize("to", [b"<sip:b@127.0.0.1>", b"sip:b@127.0.0.1", b'"x" <sip:b@h;tag=inside>',
                                b"<sip:b@h>;tag=", b"<sip:b@h>;TAG"])
def test_2xx_to_invite_without_a_to_tag_is_dropped(to: bytes) -> None:
    ok = _message(b"SIP/2.0 200 OK", to, b"1 INVITE", SDP % b"IN IP4 127.0.0.1")
    assert drop_message(ok) == "2xx to INVITE without a To tag"
    assert drop_message(_message(b"SIP/2.0 202 Accepted", to, b"1 INVITE")) != ""
    compact = ok.replace(b"To: ", b"t: ").replace(b"CSeq: 1 INVITE", b"CSeq: 1   invite")
    assert drop_message(compact) == "2xx to INVITE without a To tag"


@pytest.mark.parametrize("to", [b"<sip:b@h>;tag=theirs", b"sip:b@h;tag=theirs", b"<sip:b@h> ; tag = theirs"])
def test_tagged_2xx_and_tagless_provisional_or_other_methods_pass(to: bytes) -> None:
    assert drop_message(_message(b"SIP/2.0 200 OK", to, b"1 INVITE")) == ""
    assert drop_message(_message(b"SIP/2.0 180 Ringing", b"<sip:b@h>", b"1 INVITE")) == ""
    assert drop_message(_message(b"SIP/2.0 486 Busy Here", b"<sip:b@h>", b"1 INVITE")) == ""
    assert drop_message(_message(b"SIP/2.0 200 OK", b"<sip:b@h>", b"2 BYE")) == ""
    assert drop_message(_message(b"SIP/2.0 200 OK", b"<sip:b@h>", b"2 OPTIONS")) == ""


@pytest.mark.parametrize("start,cseq", [(b"SIP/2.0 183 Session Progress", b"1 INVITE"),
                                        (b"SIP/2.0 200 OK", b"1 INVITE"), (b"SIP/2.0 200 OK", b"3 UPDATE"),
                                        (b"ACK sip:x@h SIP/2.0", b"1 ACK"), (b"PRACK sip:x@h SIP/2.0", b"2 PRACK")])
def test_sdp_answers_with_a_wrong_family_are_dropped(start: bytes, cseq: bytes) -> None:
    message = _message(start, b"<sip:b@h>;tag=theirs", cseq, SDP % b"IN IP4 ::1")
    assert drop_message(message) == "SDP c= address of the wrong family"
    assert drop_message(_message(start, b"<sip:b@h>;tag=theirs", cseq, SDP % b"IN IP4 127.0.0.1")) == ""


def test_header_tag_reads_pjsip_style() -> None:
    assert header_tag("<sip:b@h>;tag=abc") == "abc"
    assert header_tag('"J\xf6rg" <sip:b@h;tag=no>;x=1;tag=yes') == "yes"
    assert header_tag("sip:b@h;tag=abc") == "abc"
    assert header_tag("<sip:b@h;tag=abc>") == ""


def test_parse_raw_reads_folded_and_non_utf8_headers() -> None:
    raw = (b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP h;branch=z9hG4bKx\r\nTo: <sip:b@h>\r\n ;tag=folded\r\n"
           b"Subject: \xff\xfe\r\nCSeq: 7 INVITE\r\n\r\nbody")
    message = parse_raw(raw)
    assert message is not None
    assert (message.method, message.code, message.body) == ("INVITE", 200, "body")
    assert header_tag(message.headers["to"][0]) == "folded"
    assert "via" in message.headers
    assert parse_raw(b"SIP/2.0 abc Bad\r\n\r\n") is None


def test_new_call_rate_admits_a_window_full_then_refuses_until_it_slides() -> None:
    rate = NewCallRate(limit=3, window=0.5)
    assert [rate.admit(f"c{i}", 10.0 + i * 0.01) for i in range(5)] == [True, True, True, False, False]
    assert rate.admit("c1", 10.2)  # a retransmission of an admitted call is the same call
    assert not rate.admit("c9", 10.49)
    assert rate.admit("c9", 10.51)  # c0 left the window
    assert [rate.admit(f"d{i}", 20.0) for i in range(4)] == [True, True, True, False]


def test_new_invite_call_id_is_only_for_new_invites() -> None:
    new = _message(b"INVITE sip:+15550100@h SIP/2.0", b"<sip:b@h>", b"1 INVITE", SDP % b"IN IP4 127.0.0.1")
    assert new_invite_call_id(new) == "c1@x"
    assert new_invite_call_id(new.replace(b"Call-ID: c1@x", b"i: c2@x")) == "c2@x"
    assert new_invite_call_id(new.replace(b"<sip:b@h>", b"<sip:b@h>;tag=t")) == ""  # a re-INVITE
    assert new_invite_call_id(_message(b"SIP/2.0 200 OK", b"<sip:b@h>", b"1 INVITE")) == ""
    assert new_invite_call_id(_message(b"BYE sip:h SIP/2.0", b"<sip:b@h>", b"2 BYE")) == ""
