"""The SIP edge's configuration: `[edge]` parsing and the Kamailio script and dispatcher list written from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from switch.core.config import Config, load_config
from switch.core.errors import ConfigError
from switch.workers.edge_config import (
    EdgeFiles,
    EdgeSettings,
    dispatcher_list,
    kamailio_script,
    tls_config,
    worker_uri,
)


def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "softswitch.toml"
    path.write_text(text)
    return load_config(path)


def test_edge_is_on_by_default_and_off_puts_worker_0_on_the_public_address(tmp_path: Path) -> None:
    assert load_config(None).edge.enabled is True
    assert load_config(None).worker_sip == ("127.0.0.1", 5160)
    cfg = _load(tmp_path, "[edge]\nenabled = false\n")
    assert cfg.worker_sip == ("127.0.0.1", 5060)


def test_edge_keys_and_where_the_workers_go(tmp_path: Path) -> None:
    cfg = _load(tmp_path, '[server]\nsip = "127.0.0.1:5070"\n[edge]\nenabled = true\nmax_cps = 300\n'
                          'per_source_rps = 900\nworker_timeout_ms = 1500\n')
    assert cfg.edge.enabled and cfg.edge.max_cps == 300 and cfg.edge.per_source_rps == 900
    assert cfg.worker_sip == ("127.0.0.1", 5170)  # the sip port + 100 on loopback
    cfg = _load(tmp_path, '[server]\nsip = "0.0.0.0:5060"\n[edge]\nenabled = true\nworker_port = 7000\n')
    assert cfg.worker_sip == ("127.0.0.1", 7000)


@pytest.mark.parametrize(("text", "message"), [
    ("[edge]\nenabled = 1\n", "edge.enabled must be true or false"),
    ("[edge]\nmax_cps = 0\n", "edge.max_cps must be a whole number from 1"),
    ("[edge]\nworker_port = \"5100\"\n", "edge.worker_port must be a whole number"),
    ("[edge]\nmax_message_bytes = 100\n", "edge.max_message_bytes must be a whole number from 1024"),
    ("[edge]\nlisten = \"x\"\n", "unknown key edge.listen (known: edge.enabled, edge.max_cps,"),
])
def test_bad_edge_values_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert message in str(err.value)


def test_dispatcher_list_marks_full_workers_inactive() -> None:
    text = dispatcher_list([(worker_uri("127.0.0.1", 5161), True), (worker_uri("127.0.0.1", 5162), False)])
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == ["1 sip:127.0.0.1:5161;transport=udp 0 0", "1 sip:127.0.0.1:5162;transport=udp 1 0"]


def test_script_carries_the_settings(tmp_path: Path) -> None:
    settings = EdgeSettings("127.0.0.1", 5090, advertise="203.0.113.7", max_cps=123, per_source_rps=77,
                            max_message_bytes=4096, worker_timeout_ms=900, retry_after_s=9)
    script = kamailio_script(settings, EdgeFiles(tmp_path), "/modules")
    assert "listen=udp:127.0.0.1:5090 advertise 203.0.113.7:5090" in script
    assert "listen=tcp:127.0.0.1:5090 advertise 203.0.113.7:5090" in script
    assert '"1:TAILDROP:123"' in script and '"reqs_density_per_unit", 154' in script
    assert "$ml > 4096" in script and "t_set_fr(0, 900)" in script and "Retry-After: 9" in script
    assert f'"list_file", "{tmp_path / "dispatcher.list"}"' in script


def test_tls_is_off_without_a_certificate_and_listens_on_its_own_port_with_one(tmp_path: Path) -> None:
    files = EdgeFiles(tmp_path / "edge")
    plain = kamailio_script(EdgeSettings("127.0.0.1", 5060), files, "/usr/lib/kamailio")
    assert "enable_tls" not in plain and "listen=tls" not in plain and '"tls.so"' not in plain
    settings = EdgeSettings("127.0.0.1", 5060, advertise="203.0.113.7", tls_port=5061,
                            tls_certificate="/etc/ss/cert.pem", tls_private_key="/etc/ss/key.pem")
    script = kamailio_script(settings, files, "/usr/lib/kamailio")
    assert "enable_tls=yes\nlisten=tls:127.0.0.1:5061 advertise 203.0.113.7:5061\n" in script
    loads = [line for line in script.splitlines() if line.startswith("loadmodule")]
    assert loads[0] == 'loadmodule "tls.so"'  # before any module that may touch OpenSSL
    assert f'modparam("tls", "config", "{files.tls_config}")' in script
    assert "force_tcp_alias();" in script
    profiles = tls_config(settings)
    assert "[server:default]" in profiles and "certificate = /etc/ss/cert.pem" in profiles
    assert "private_key = /etc/ss/key.pem" in profiles and "[client:default]" in profiles


def test_tls_keys_are_checked(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("x")
    key.write_text("y")
    cfg = _load(tmp_path, f'[edge]\ntls_certificate = "{cert}"\ntls_private_key = "{key}"\n')
    assert (cfg.edge.tls, cfg.edge.tls_certificate, cfg.edge.tls_private_key, cfg.edge.tls_port) == \
        (True, cert, key, None)
    cfg = _load(tmp_path, f'[edge]\ntls_certificate = "{cert}"\ntls_private_key = "{key}"\ntls_port = 5071\n')
    assert cfg.edge.tls_port == 5071
    with pytest.raises(ConfigError, match=r"edge\.tls_certificate must be a string, not 5"):
        _load(tmp_path, "[edge]\ntls_certificate = 5\ntls_private_key = \"k\"\n")
    with pytest.raises(ConfigError, match=r"edge\.tls_certificate must be the path of a file"):
        _load(tmp_path, "[edge]\ntls_certificate = \"\"\ntls_private_key = \"k\"\n")
    with pytest.raises(ConfigError, match=r"edge\.tls_port must be a whole number from 1 to 65535"):
        _load(tmp_path, f'[edge]\ntls_certificate = "{cert}"\ntls_private_key = "{key}"\ntls_port = 0\n')
