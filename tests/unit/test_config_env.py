"""Unit tests of the environment overrides (`apply_environment`) and `[server] drain_seconds`."""

from __future__ import annotations

from pathlib import Path

import pytest

from switch.cli import _config_from_args, build_parser
from switch.core.config import Config, load_config
from switch.core.config_env import apply_environment
from switch.core.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "softswitch.toml"
    path.write_text(text)
    return path


def test_media_variables_override_the_file(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, '[media]\naddress = "127.0.0.1"\nrtp_ports = "10000-10100"\n'
                                       'external_address = "198.51.100.1"\n'))
    env = {"SOFTSWITCH_MEDIA_ADDRESS": "0.0.0.0", "SOFTSWITCH_RTP_PORTS": "40000-40999",
           "SOFTSWITCH_EXTERNAL_ADDRESS": "203.0.113.7", "SOFTSWITCH_DRAIN_SECONDS": "12.5"}
    assert apply_environment(cfg, env) is cfg
    assert (cfg.media_address, cfg.rtp_ports, cfg.external_address, cfg.drain_seconds) == (
        "0.0.0.0", (40000, 40999), "203.0.113.7", 12.5)


def test_unset_or_empty_variables_leave_the_file_alone(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, '[server]\ndrain_seconds = 5\n[media]\nrtp_ports = "10000-10100"\n'))
    apply_environment(cfg, {"SOFTSWITCH_RTP_PORTS": "", "SOFTSWITCH_MEDIA_ADDRESS": ""})
    assert (cfg.media_address, cfg.rtp_ports, cfg.external_address, cfg.drain_seconds) == (
        None, (10000, 10100), None, 5.0)
    assert Config().drain_seconds == 30.0  # the default


@pytest.mark.parametrize(("name", "value", "says"), [
    ("SOFTSWITCH_MEDIA_ADDRESS", "my-host", "SOFTSWITCH_MEDIA_ADDRESS: media.address: expected an IP address"),
    ("SOFTSWITCH_RTP_PORTS", "20000", "SOFTSWITCH_RTP_PORTS: media.rtp_ports: expected FIRST-LAST"),
    ("SOFTSWITCH_RTP_PORTS", "2000-1000", "SOFTSWITCH_RTP_PORTS: media.rtp_ports: expected FIRST-LAST"),
    ("SOFTSWITCH_EXTERNAL_ADDRESS", "0.0.0.0", "SOFTSWITCH_EXTERNAL_ADDRESS: media.external_address"),
    ("SOFTSWITCH_DRAIN_SECONDS", "soon", "SOFTSWITCH_DRAIN_SECONDS must be a number of seconds from 0 to 86400"),
    ("SOFTSWITCH_DRAIN_SECONDS", "-1", "SOFTSWITCH_DRAIN_SECONDS must be a number of seconds"),
])
def test_a_bad_variable_is_one_error_naming_it(name: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        apply_environment(Config(), {name: value})
    assert str(err.value).startswith(says), str(err.value)


@pytest.mark.parametrize("value", ['"soon"', "-3", "true", "100000"])
def test_drain_seconds_in_the_file_is_checked(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"softswitch.toml: server\.drain_seconds must be a number"):
        load_config(_write(tmp_path, f"[server]\ndrain_seconds = {value}\n"))


def test_drain_seconds_zero_is_allowed(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, "[server]\ndrain_seconds = 0\n")).drain_seconds == 0.0


def test_the_command_line_puts_the_environment_between_file_and_flags(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, '[server]\nsip = "127.0.0.1:5060"\n[media]\nrtp_ports = "10000-10100"\n')
    monkeypatch.setenv("SOFTSWITCH_RTP_PORTS", "30000-30099")
    monkeypatch.setenv("SOFTSWITCH_MEDIA_ADDRESS", "127.0.0.2")
    args = build_parser().parse_args(["serve", "--config", str(path), "--sip", "127.0.0.1:5080"])
    cfg = _config_from_args(args)
    assert (cfg.rtp_ports, cfg.media_address, cfg.sip_port) == ((30000, 30099), "127.0.0.2", 5080)
