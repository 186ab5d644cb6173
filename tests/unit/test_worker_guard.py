"""The raw SDP checks of switch.worker.guard (issue 13, section 2, K2)."""

from __future__ import annotations

import pytest

from switch.worker.guard import bad_connection_address

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
