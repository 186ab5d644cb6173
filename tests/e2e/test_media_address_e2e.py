"""`[media]` end to end: where RTP binds and what the SDP and Contact of our INVITE carry.

A switch with `[media] address` and `rtp_ports` calls a sipp peer; the INVITE sipp received must offer
`c=IN IP4 <address>` and an audio port inside the range; with `external_address` the SDP, the Contact and the
From carry that address instead.  A `To` or `<Sip>` URI without a host is refused before any worker sees it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from twilio.base.exceptions import TwilioRestException

from tests.peers.harness import SwitchProcess, WebhookSink
from tests.peers.phone import PhoneProcess
from tests.peers.sipp_peer import SipMessage, SippPeer

FIRST, LAST = 23000, 23100


@dataclass
class MediaSwitch(SwitchProcess):
    """A switch whose config has a `[media]` table."""

    media: str = ""

    def write_config(self) -> Path:
        path = super().write_config()
        path.write_text(path.read_text() + "[media]\n" + self.media + "\n")
        return path


def _start(tmp_path_factory: pytest.TempPathFactory, name: str, media: str) -> MediaSwitch:
    proc = MediaSwitch(tmp_path_factory.mktemp(name), workers=1, media=media)
    proc.start()
    return proc


@pytest.fixture(scope="module")
def bound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaSwitch]:
    proc = _start(tmp_path_factory, "media", f'address = "127.0.0.1"\nrtp_ports = "{FIRST}-{LAST}"')
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def natted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaSwitch]:
    proc = _start(tmp_path_factory, "nat", f'address = "127.0.0.1"\nexternal_address = "127.0.0.9"\n'
                                           f'rtp_ports = "{FIRST + 200}-{LAST + 200}"')
    yield proc
    assert proc.stop() == 0, proc.log()


def _invite_to_sipp(switch: SwitchProcess, sink: WebhookSink) -> SipMessage:
    """Place a call to a sipp peer that answers, hang it up, and return the INVITE sipp received."""
    with SippPeer("uas_answer.xml", timeout=20) as far:
        call = switch.client().calls.create(to=f"sip:bob@{far.uri_host}", from_="+15550199",
                                            twiml="<Response><Pause length='30'/></Response>",
                                            status_callback=sink.url("/media-status"),
                                            status_callback_event=["answered", "completed"])
        sink.wait_statuses("/media-status", call.sid, 1)
        switch.client().calls(call.sid).update(status="completed")
        sink.wait_statuses("/media-status", call.sid, 2)
        assert far.wait_sync(10) == 0, far.describe()
        invites = [m for m in far.messages(include_retransmissions=False)
                   if m.direction == "received" and m.first_line.startswith("INVITE ")]
    assert len(invites) == 1
    return invites[0]


def _header(message: SipMessage, name: str) -> str:
    found = re.search(rf"^{name}:\s*(.*?)\r?$", message.raw, re.MULTILINE | re.IGNORECASE)
    assert found is not None, message.raw
    return found.group(1)


def _sdp(message: SipMessage) -> tuple[str, int]:
    """The SDP's connection address and audio port."""
    conn = re.search(r"^c=IN IP4 (\S+)\r?$", message.raw, re.MULTILINE)
    audio = re.search(r"^m=audio (\d+) ", message.raw, re.MULTILINE)
    assert conn is not None and audio is not None, message.raw
    return conn.group(1), int(audio.group(1))


def test_sdp_carries_the_media_address_and_a_port_in_range(bound: MediaSwitch, sink: WebhookSink) -> None:
    invite = _invite_to_sipp(bound, sink)
    address, port = _sdp(invite)
    assert address == "127.0.0.1"
    assert FIRST <= port <= LAST
    assert re.search(rf"@127\.0\.0\.1:{bound.sip_port}\b", _header(invite, "Contact"))
    assert re.search(r"^<?sip:\+15550199@127\.0\.0\.1[:;>]", _header(invite, "From"))


def test_external_address_in_sdp_contact_and_from(natted: MediaSwitch, sink: WebhookSink) -> None:
    invite = _invite_to_sipp(natted, sink)
    address, port = _sdp(invite)
    assert address == "127.0.0.9"
    assert FIRST + 200 <= port <= LAST + 200
    assert re.search(rf"@127\.0\.0\.9:{natted.sip_port}\b", _header(invite, "Contact"))
    assert re.search(r"^<?sip:\+15550199@127\.0\.0\.9[:;>]", _header(invite, "From"))
    assert "0.0.0.0" not in invite.raw


@pytest.mark.parametrize("to", ["sip:bob", "sip:bob@", "sip:@"])
def test_sip_uri_without_host_is_a_400_and_the_worker_lives(bound: MediaSwitch, to: str) -> None:
    with pytest.raises(TwilioRestException) as info:
        bound.client().calls.create(to=to, from_="+15550199", twiml="<Response><Hangup/></Response>")
    assert (info.value.status, info.value.code) == (400, 21211)
    assert "no host" in info.value.msg
    status, health = bound.healthz()
    assert status == 200 and [w["restarts"] for w in health["workers"]] == [0]


def test_sips_is_a_400_saying_tls_is_missing(bound: MediaSwitch) -> None:
    with pytest.raises(TwilioRestException) as info:
        bound.client().calls.create(to="sips:bob@127.0.0.1:5061", from_="+15550199",
                                    twiml="<Response><Hangup/></Response>")
    assert (info.value.status, info.value.code) == (400, 21211)
    assert "TLS" in info.value.msg


def test_dial_to_sip_without_host_or_sips_fails_with_notifications(bound: MediaSwitch, sink: WebhookSink) -> None:
    sink.twiml("/dial-nohost", '<Response><Dial action="/dial-nohost-done"><Sip>sip:bob</Sip>'
                               '<Sip>sips:bob@127.0.0.1:5061</Sip></Dial></Response>')
    sink.twiml("/dial-nohost-done", "<Response/>")
    with PhoneProcess(["--answer", "auto"]) as caller:
        sid = str(bound.client().calls.create(to=caller.uri("alice"), from_="+15550199",
                                              url=sink.url("/dial-nohost")).sid)
        sink.wait_for(lambda hs: any(h.path == "/dial-nohost-done" and h.params.get("CallSid") == sid for h in hs))
    action = next(h for h in sink.for_path("/dial-nohost-done") if h.params.get("CallSid") == sid).params
    assert action["DialCallStatus"] == "failed"
    assert "DialCallSid" not in action
    notes = bound.client().calls(sid).notifications.list()
    assert sorted((n.error_code, "no host" in n.message_text, "TLS" in n.message_text) for n in notes) == [
        ("21211", False, True), ("21211", True, False)]
    status, health = bound.healthz()
    assert status == 200 and [w["restarts"] for w in health["workers"]] == [0]
