"""Where browsers' WebRTC media is offered (`Config.browser_addresses`) and which of a browser's candidates the
switch keeps (`media.webrtc.reachable_candidates`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from media import webrtc
from switch.core.config import load_config
from switch.core.errors import ConfigError

OFFER = "\r\n".join([
    "v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "m=audio 9 UDP/TLS/RTP/SAVPF 111 0",
    "a=candidate:1 1 udp 2122260223 192.0.2.2 50000 typ host",
    "a=candidate:2 1 udp 2122194687 127.0.0.1 50001 typ host",
    "a=candidate:3 1 udp 2122129151 ::1 50002 typ host",
    "a=candidate:4 1 udp 2122063615 3f2a1b9c-aaaa.local 50003 typ host",
    "a=candidate:5 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active",
    "a=rtpmap:111 opus/48000/2", "",
])


@pytest.fixture
def addresses() -> Iterator[None]:
    saved = webrtc._host_addresses
    yield
    webrtc.use_host_addresses(saved)


def _config(tmp_path: Path, media: str) -> Path:
    path = tmp_path / "softswitch.toml"
    path.write_text(f'[server]\nsip = "127.0.0.1:5060"\n[media]\n{media}\n')
    return path


def test_the_default_is_the_rtp_address_when_it_is_one(tmp_path: Path) -> None:
    assert load_config(_config(tmp_path, 'address = "127.0.0.2"')).browser_addresses == ("127.0.0.2",)
    assert load_config(_config(tmp_path, 'address = "0.0.0.0"')).browser_addresses == ()


def test_configured_addresses_win_and_must_be_addresses(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, 'webrtc_addresses = ["192.0.2.10", "::1"]'))
    assert cfg.browser_addresses == ("192.0.2.10", "::1")
    with pytest.raises(ConfigError, match=r"media\.webrtc_addresses"):
        load_config(_config(tmp_path, 'webrtc_addresses = ["switch.example.com"]'))


@pytest.mark.usefixtures("addresses")
def test_loopback_only_keeps_the_browsers_loopback_candidates() -> None:
    webrtc.use_host_addresses(["127.0.0.1"])
    kept = [line.split()[4] for line in webrtc.reachable_candidates(OFFER).splitlines()
            if line.startswith("a=candidate:")]
    assert kept == ["127.0.0.1", "::1", "127.0.0.1"]
    assert "a=rtpmap:111 opus/48000/2" in webrtc.reachable_candidates(OFFER)
    assert webrtc._configured_addresses(True, False) == ["127.0.0.1"]
    assert webrtc._configured_addresses(False, True) == []


@pytest.mark.usefixtures("addresses")
def test_other_addresses_keep_every_candidate() -> None:
    webrtc.use_host_addresses(["192.0.2.10"])
    assert webrtc.reachable_candidates(OFFER) == OFFER
    with pytest.raises(ValueError):
        webrtc.use_host_addresses(["not-an-address"])
    webrtc.use_host_addresses([])
    assert webrtc.aioice.ice.get_host_addresses is webrtc._AIOICE_CHOICE
