"""The sipp harness and scenarios, proved by pairing sipp against sipp (no switch involved).

Each UAS scenario in tests/peers/sipp/ is played against a sipp UAC (a scenario of ours, or a
small one written here), and the whole message sequence each side saw is asserted.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.peers.sipp_peer import (
    EXIT_FAILED,
    EXIT_FATAL,
    EXIT_OK,
    SCENARIO_DIR,
    SipMessage,
    SippPeer,
    digest_response_ok,
    free_udp_port,
    parse_message_log,
)

USER, PASSWORD = "alice", "s3cret-pw"

# --------------------------------------------------------------------------- inline UACs

_INVITE = """
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "test" <sip:test@[local_ip]:[local_port]>;tag=[pid]T[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:test@[local_ip]:[local_port]>
      {auth}
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=test 1 1 IN IP4 [media_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
"""

_ACK_NON_2XX = """
  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""

_ACK_BYE = """
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "test" <sip:test@[local_ip]:[local_port]>;tag=[pid]T[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "test" <sip:test@[local_ip]:[local_port]>;tag=[pid]T[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {bye_cseq} BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" />
"""


def _write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(
        f'<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="{name}">\n{body}</scenario>\n'
    )
    return path


def uac_rejected(tmp_path: Path, code: int) -> Path:
    """UAC: INVITE, optional 100/180/183, final ``code``, ACK."""
    body = (
        _INVITE.format(cseq=1, auth="")
        + '  <recv response="100" optional="true" />\n'
        + '  <recv response="180" optional="true" />\n'
        + '  <recv response="183" optional="true" />\n'
        + f'  <recv response="{code}" />\n'
        + _ACK_NON_2XX.format(cseq=1)
    )
    return _write(tmp_path, f"uac_rejected_{code}.xml", body)


def uac_challenged(tmp_path: Path, challenge: int, final: int = 200) -> Path:
    """UAC: INVITE, ``challenge`` (401/407) answered with [authentication], then ``final``."""
    body = (
        _INVITE.format(cseq=1, auth="")
        + f'  <recv response="{challenge}" auth="true" />\n'
        + _ACK_NON_2XX.format(cseq=1)
        + _INVITE.format(cseq=2, auth="[authentication]")
        + '  <recv response="100" optional="true" />\n'
        + '  <recv response="180" optional="true" />\n'
    )
    if final == 200:
        body += '  <recv response="200" rrs="true" />\n' + _ACK_BYE.format(cseq=2, bye_cseq=3)
    else:
        body += f'  <recv response="{final}" />\n' + _ACK_NON_2XX.format(cseq=2)
    return _write(tmp_path, f"uac_challenged_{challenge}_{final}.xml", body)


# --------------------------------------------------------------------------- helpers


async def run_pair(uas: SippPeer, uac_scenario: str | Path, **uac_kwargs: Any) -> SippPeer:
    """Start ``uas``, then a UAC playing ``uac_scenario`` against it; wait for both; return the UAC."""
    uas.start()
    try:
        uac = SippPeer(uac_scenario, remote=("127.0.0.1", uas.port), **uac_kwargs)
        uac.start()
        try:
            await asyncio.gather(uac.wait(15), uas.wait(15))
        finally:
            uac.stop()
    finally:
        uas.stop()
    return uac


def to_tag(message: SipMessage) -> str | None:
    """The tag parameter of the To header."""
    value = message.header("To") or ""
    for param in value.split(";")[1:]:
        key, _, tag = param.strip().partition("=")
        if key.lower() == "tag":
            return tag
    return None


def assert_ok(*peers: SippPeer) -> None:
    """Every peer exited 0."""
    for peer in peers:
        assert peer.returncode == EXIT_OK, peer.describe()


# --------------------------------------------------------------------------- unit tests


def test_free_udp_port_is_bindable() -> None:
    port = free_udp_port()
    assert 0 < port < 65536
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_parse_message_log_format() -> None:
    invite = "INVITE sip:bob@127.0.0.1:5080 SIP/2.0\r\nCSeq: 1 INVITE\r\nContent-Length: 4\r\n\r\nv=0\r\n"
    ringing = "SIP/2.0 180 Ringing\r\nCSeq: 1 INVITE\r\nTo: <sip:bob@x>;tag=abc\r\nContent-Length: 0\r\n\r\n"
    sep = "-" * 47
    log = (
        f"{sep} 2026-01-02 03:04:05.250000\nUDP message received [86] bytes :\n\n{invite}\n"
        f"{sep} 2026-01-02 03:04:05.500000\nUDP message sent (80 bytes):\n\n{ringing}\n\n"
        f"{sep} 2026-01-02 03:04:06.000000\nUDP message sent (80 bytes):\n\n{ringing}\n\n"
    )
    messages = parse_message_log(log)
    assert [m.direction for m in messages] == ["received", "sent", "sent"]
    assert [m.first_line for m in messages] == [
        "INVITE sip:bob@127.0.0.1:5080 SIP/2.0",
        "SIP/2.0 180 Ringing",
        "SIP/2.0 180 Ringing",
    ]
    assert [m.retransmission for m in messages] == [False, False, True]
    assert messages[1].timestamp - messages[0].timestamp == pytest.approx(0.25)
    assert messages[0].method == "INVITE" and messages[0].status_code is None
    assert messages[0].body == "v=0\r"
    assert messages[1].status_code == 180 and messages[1].cseq_method == "INVITE"
    assert to_tag(messages[1]) == "abc"
    assert messages[0].raw == invite
    assert messages[1].raw == ringing


def test_digest_response_ok_matches_rfc2617_example() -> None:
    # RFC 2617 section 3.5 (qop=auth).
    header = (
        'Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", '
        'response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert digest_response_ok(header, "GET", "Mufasa", "Circle Of Life")
    assert not digest_response_ok(header, "GET", "Mufasa", "wrong")
    assert not digest_response_ok(header, "GET", "Simba", "Circle Of Life")


def test_all_scenarios_present() -> None:
    expected = {
        "uas_answer.xml",
        "uas_answer_bye.xml",
        "uas_busy.xml",
        "uas_noanswer.xml",
        "uas_404.xml",
        "uas_early_media.xml",
        "uas_auth.xml",
        "uas_auth407.xml",
        "uac_inbound.xml",
        "uac_inbound_404.xml",
        "uac_inbound_cancel.xml",
        "uac_inbound_wait_bye.xml",
    }
    assert expected <= {path.name for path in SCENARIO_DIR.glob("*.xml")}


# --------------------------------------------------------------------------- sipp vs sipp


async def test_uas_answer_with_uac_inbound(tmp_path: Path) -> None:
    uas = SippPeer("uas_answer.xml", workdir=tmp_path)
    uac = await run_pair(
        uas,
        uac_scenario="uac_inbound.xml",
        service="+15550001111",
        variables={"pause_ms": 100},
        workdir=tmp_path,
    )
    assert_ok(uas, uac)

    assert uas.methods_received() == ["INVITE", "ACK", "BYE"]
    assert uas.codes_sent() == [100, 180, 200, 200]
    assert uac.methods_sent() == ["INVITE", "ACK", "BYE"]
    assert uac.codes_received() == [100, 180, 200, 200]
    assert [m.direction for m in uas.messages()] == [
        "received",
        "sent",
        "sent",
        "sent",
        "received",
        "received",
        "sent",
    ]

    invite = uas.first("received", "INVITE")
    assert invite is not None and invite.request_uri == f"sip:+15550001111@127.0.0.1:{uas.port}"
    assert f"m=audio {uac.media_port} RTP/AVP 0 101" in invite.body
    trying, ringing, ok = (uas.first("sent", code) for code in (100, 180, 200))
    assert trying is not None and ringing is not None and ok is not None
    assert to_tag(trying) is None
    assert to_tag(ringing) and to_tag(ringing) == to_tag(ok)
    assert ok.header("Content-Type") == "application/sdp"
    assert f"m=audio {uas.media_port} RTP/AVP 0" in ok.body and "a=rtpmap:0 PCMU/8000" in ok.body
    ack = uas.first("received", "ACK")
    assert ack is not None and to_tag(ack) == to_tag(ok)
    times = [m.timestamp for m in uas.messages()]
    assert times == sorted(times) and abs(times[0] - time.time()) < 60


async def test_uas_answer_bye_hangs_up_after_pause(tmp_path: Path) -> None:
    uas = SippPeer("uas_answer_bye.xml", variables={"pause_ms": 300}, workdir=tmp_path)
    uac = await run_pair(uas, uac_scenario="uac_inbound_wait_bye.xml", workdir=tmp_path)
    assert_ok(uas, uac)

    assert uas.methods_received() == ["INVITE", "ACK"]
    assert uas.codes_sent() == [100, 180, 200]
    assert uas.methods_sent() == ["BYE"]
    assert uas.codes_received() == [200]
    assert uac.codes_received() == [100, 180, 200]
    assert uac.methods_received() == ["BYE"]
    assert uac.codes_sent() == [200]

    ack, bye = uas.first("received", "ACK"), uas.first("sent", "BYE")
    invite, ok = uas.first("received", "INVITE"), uas.first("sent", 200)
    assert ack is not None and bye is not None and invite is not None and ok is not None
    assert 0.25 <= bye.timestamp - ack.timestamp < 2.0
    # In-dialog BYE: to the caller's Contact, From/To swapped, the dialog's tags and Call-ID.
    assert bye.request_uri == f"sip:sipp@127.0.0.1:{uac.port};transport=UDP"
    assert invite.header("Contact") == f"<{bye.request_uri}>"
    assert bye.header("From") == ok.header("To")
    assert bye.header("To") == invite.header("From")
    assert bye.call_id == invite.call_id


async def test_uas_answer_bye_default_pause_is_one_second(tmp_path: Path) -> None:
    uas = SippPeer("uas_answer_bye.xml", workdir=tmp_path)
    await run_pair(uas, uac_scenario="uac_inbound_wait_bye.xml", workdir=tmp_path)
    ack, bye = uas.first("received", "ACK"), uas.first("sent", "BYE")
    assert ack is not None and bye is not None, uas.describe()
    assert 0.95 <= bye.timestamp - ack.timestamp < 2.5


async def test_uas_busy(tmp_path: Path) -> None:
    uas = SippPeer("uas_busy.xml", workdir=tmp_path)
    uac = await run_pair(uas, uac_scenario=uac_rejected(tmp_path, 486), workdir=tmp_path)
    assert_ok(uas, uac)
    assert uas.methods_received() == ["INVITE", "ACK"]
    assert uas.codes_sent() == [100, 180, 486]
    assert uac.codes_received() == [100, 180, 486]
    busy = uas.first("sent", 486)
    assert busy is not None and busy.first_line == "SIP/2.0 486 Busy Here"


async def test_uas_404_with_uac_inbound_404(tmp_path: Path) -> None:
    uas = SippPeer("uas_404.xml", workdir=tmp_path)
    uac = await run_pair(uas, uac_scenario="uac_inbound_404.xml", service="404", workdir=tmp_path)
    assert_ok(uas, uac)
    assert uas.methods_received() == ["INVITE", "ACK"]
    assert uas.codes_sent() == [404]
    assert uac.codes_received() == [404]
    assert uac.methods_sent() == ["INVITE", "ACK"]
    # ACK of a non-2xx answer: same transaction (Via branch) as the INVITE.
    invite, ack = uas.first("received", "INVITE"), uas.first("received", "ACK")
    assert invite is not None and ack is not None
    assert invite.header("Via") == ack.header("Via")


async def test_uas_noanswer_with_uac_inbound_cancel(tmp_path: Path) -> None:
    uas = SippPeer("uas_noanswer.xml", workdir=tmp_path)
    uac = await run_pair(
        uas, uac_scenario="uac_inbound_cancel.xml", variables={"pause_ms": 200}, workdir=tmp_path
    )
    assert_ok(uas, uac)
    assert uas.methods_received() == ["INVITE", "CANCEL", "ACK"]
    assert uas.codes_sent() == [100, 180, 200, 487]
    assert uac.methods_sent() == ["INVITE", "CANCEL", "ACK"]
    assert uac.codes_received() == [100, 180, 200, 487]
    ok, terminated = uas.first("sent", 200), uas.first("sent", 487)
    assert ok is not None and terminated is not None
    assert ok.cseq_method == "CANCEL" and terminated.cseq_method == "INVITE"
    invite, cancel = uas.first("received", "INVITE"), uas.first("received", "CANCEL")
    assert invite is not None and cancel is not None
    assert invite.header("Via") == cancel.header("Via")
    assert 0.15 <= cancel.timestamp - invite.timestamp < 2.0


async def test_uas_early_media_with_uac_inbound(tmp_path: Path) -> None:
    uas = SippPeer("uas_early_media.xml", variables={"pause_ms": 200}, workdir=tmp_path)
    uac = await run_pair(uas, uac_scenario="uac_inbound.xml", variables={"pause_ms": 100}, workdir=tmp_path)
    assert_ok(uas, uac)
    assert uas.methods_received() == ["INVITE", "ACK", "BYE"]
    assert uas.codes_sent() == [100, 183, 200, 200]
    assert uac.codes_received() == [100, 183, 200, 200]
    progress, ok = uas.first("sent", 183), uas.first("sent", 200)
    assert progress is not None and ok is not None
    assert progress.header("Content-Type") == "application/sdp"
    assert f"m=audio {uas.media_port} RTP/AVP 0" in progress.body
    assert to_tag(progress) == to_tag(ok)
    assert ok.timestamp - progress.timestamp >= 0.15


@pytest.mark.parametrize(("scenario", "challenge"), [("uas_auth.xml", 401), ("uas_auth407.xml", 407)])
async def test_uas_auth_accepts_right_credentials(tmp_path: Path, scenario: str, challenge: int) -> None:
    uas = SippPeer(scenario, auth=(USER, PASSWORD), workdir=tmp_path)
    uac = await run_pair(
        uas, uac_scenario=uac_challenged(tmp_path, challenge), auth=(USER, PASSWORD), workdir=tmp_path
    )
    assert_ok(uas, uac)
    assert uas.methods_received() == ["INVITE", "ACK", "INVITE", "ACK", "BYE"]
    assert uas.codes_sent() == [challenge, 100, 180, 200, 200]
    assert uac.codes_received() == [challenge, 100, 180, 200, 200]

    challenge_msg = uas.first("sent", challenge)
    assert challenge_msg is not None
    header = "WWW-Authenticate" if challenge == 401 else "Proxy-Authenticate"
    value = challenge_msg.header(header)
    assert value is not None and value.startswith("Digest ") and 'realm="softswitch.test"' in value
    second_invite = [m for m in uas.messages() if m.method == "INVITE"][1]
    credentials = "Authorization" if challenge == 401 else "Proxy-Authorization"
    assert second_invite.header(credentials) is not None
    assert uas.verify_digest(USER, PASSWORD)
    assert not uas.verify_digest(USER, "not-the-password")


async def test_uas_auth_rejects_wrong_password_with_403(tmp_path: Path) -> None:
    uas = SippPeer("uas_auth.xml", auth=(USER, PASSWORD), workdir=tmp_path)
    uac = await run_pair(
        uas, uac_scenario=uac_challenged(tmp_path, 401, final=403), auth=(USER, "wrong"), workdir=tmp_path
    )
    assert uac.returncode == EXIT_OK, uac.describe()
    assert uas.returncode == EXIT_FAILED, uas.describe()
    assert uas.codes_sent() == [401, 403]
    assert uas.methods_received() == ["INVITE", "ACK", "INVITE", "ACK"]
    assert "digest authentication failed" in uas.errors()


async def test_uas_auth407_rejects_wrong_user_and_harness_catches_wrong_password(tmp_path: Path) -> None:
    wrong_user = SippPeer("uas_auth407.xml", auth=(USER, PASSWORD), workdir=tmp_path / "user")
    uac = await run_pair(
        wrong_user,
        uac_scenario=uac_challenged(tmp_path, 407, final=403),
        auth=("mallory", PASSWORD),
        workdir=tmp_path,
    )
    assert uac.returncode == EXIT_OK, uac.describe()
    assert wrong_user.returncode == EXIT_FAILED, wrong_user.describe()
    assert wrong_user.codes_sent() == [407, 403]

    # sipp cannot check a Proxy-Authorization digest itself: the call goes through,
    # and the harness is what notices the wrong password.
    wrong_password = SippPeer("uas_auth407.xml", auth=(USER, PASSWORD), workdir=tmp_path / "password")
    await run_pair(
        wrong_password, uac_scenario=uac_challenged(tmp_path, 407), auth=(USER, "wrong"), workdir=tmp_path
    )
    assert wrong_password.codes_sent() == [407, 100, 180, 200, 200]
    assert not wrong_password.verify_digest(USER, PASSWORD)


async def test_timeout_bounds_a_lonely_peer(tmp_path: Path) -> None:
    started = time.monotonic()
    async with SippPeer("uas_answer.xml", timeout=1.0, workdir=tmp_path) as uas:
        code = await uas.wait(10)
    assert code == EXIT_FATAL, uas.describe()
    assert time.monotonic() - started < 5
    assert uas.messages() == []


def test_sync_context_manager_and_stop(tmp_path: Path) -> None:
    with SippPeer("uas_busy.xml", timeout=20, workdir=tmp_path) as uas:
        assert uas.running
    assert not uas.running
    assert uas.returncode is not None
    assert uas.wait_sync(1) == uas.returncode


def test_uac_and_uas_sync_wait(tmp_path: Path) -> None:
    with SippPeer("uas_404.xml", workdir=tmp_path) as uas:
        with SippPeer("uac_inbound_404.xml", remote=f"127.0.0.1:{uas.port}", workdir=tmp_path) as uac:
            assert uac.wait_sync(10) == EXIT_OK, uac.describe()
        assert uas.wait_sync(10) == EXIT_OK, uas.describe()
    assert uas.codes_sent() == [404]


def test_digest_helper_agrees_with_hashlib() -> None:
    ha1 = hashlib.md5(b"alice:softswitch.test:pw").hexdigest()
    ha2 = hashlib.md5(b"INVITE:sip:bob@127.0.0.1").hexdigest()
    response = hashlib.md5(f"{ha1}:abc:{ha2}".encode()).hexdigest()
    header = (
        'Digest username="alice",realm="softswitch.test",nonce="abc",'
        f'uri="sip:bob@127.0.0.1",response="{response}"'
    )
    assert digest_response_ok(header, "INVITE", "alice", "pw")
    assert not digest_response_ok(header, "BYE", "alice", "pw")
