"""Unit tests of configuration loading and credential resolution (`switch.core.config`)."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from switch.core.config import (
    Config,
    Number,
    Trunk,
    default_interface_address,
    load_config,
    parse_hostport,
    parse_port_range,
    resolve_credentials,
)
from switch.core.errors import ConfigError

DATA = Path(__file__).parent / "data" / "config"
SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "0123456789abcdef0123456789abcdef"
SID_RE = re.compile(r"^AC[0-9a-f]{32}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_load_full_config() -> None:
    cfg = load_config(DATA / "full.toml")
    assert (cfg.http_host, cfg.http_port) == ("0.0.0.0", 8081)
    assert (cfg.sip_host, cfg.sip_port) == ("127.0.0.1", 5062)
    assert cfg.workers == 3
    assert cfg.data_dir == Path("/tmp/softswitch-test-var")
    assert cfg.public_url == "https://switch.example.com"
    assert cfg.base_url == "https://switch.example.com"
    assert cfg.account_sid == SID
    assert cfg.auth_token == TOKEN
    assert cfg.webhook_timeout == 2.5
    assert cfg.webhook_retries == 5
    assert cfg.trunks == [
        Trunk(name="lab-asterisk", uri="sip:127.0.0.1:5070", username="softswitch", password="secret",
              prefixes=("+1", "1")),
        Trunk(name="trunk1", uri="sips:gw.example.com:5061"),
    ]
    assert cfg.trunks[0].hostport == "127.0.0.1:5070"
    assert cfg.trunks[1].hostport == "gw.example.com:5061"
    assert cfg.trunks[0].matches("+15550100")
    assert not cfg.trunks[0].matches("+445550100")
    assert cfg.trunks[1].matches("+445550100")  # no prefixes: every number
    assert cfg.numbers == [
        Number(number="+15550100", voice_url="http://127.0.0.1:9000/voice", voice_method="GET",
               voice_fallback_url="http://127.0.0.1:9000/fallback",
               status_callback="http://127.0.0.1:9000/status", status_callback_method="GET"),
        Number(number="alice"),
    ]
    assert cfg.numbers[1].voice_method == "POST"


def test_no_path_gives_defaults() -> None:
    cfg = load_config(None)
    assert cfg == Config()
    assert cfg.base_url == "http://127.0.0.1:8080"


def test_empty_file_gives_defaults() -> None:
    assert load_config(DATA / "empty.toml") == Config()


def test_malformed_toml_names_the_path() -> None:
    path = DATA / "malformed.toml"
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_config(path)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_config(path)


def test_trunk_uri_without_sip_scheme() -> None:
    with pytest.raises(ConfigError, match="bad"):
        load_config(DATA / "trunk_no_sip.toml")


def test_trunk_without_uri() -> None:
    path = DATA / "trunk_no_uri.toml"
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_config(path)


def test_unknown_number_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[numbers]]\nnumber = "+1555"\nvoice_uri = "http://x"\n')
    with pytest.raises(ConfigError):
        load_config(path)


@pytest.mark.parametrize("text", ['server = 1\n', '[server]\nhttp = "8080"\n', '[server]\nsip = "h:0"\n',
                                  '[server]\nsip = "h:port"\n', 'webhooks = "x"\n'])
def test_bad_server_values(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path)


def test_parse_hostport() -> None:
    assert parse_hostport("127.0.0.1:5060", "x") == ("127.0.0.1", 5060)
    assert parse_hostport("[::1]:5060", "x") == ("[::1]", 5060)
    for bad in ("", ":5060", "host:", "host:65536", "host"):
        with pytest.raises(ConfigError, match="x"):
            parse_hostport(bad, "x")


# -- credentials -------------------------------------------------------------------------------


def test_config_credentials(tmp_path: Path) -> None:
    creds = resolve_credentials(Config(data_dir=tmp_path, account_sid=SID, auth_token=TOKEN), env={})
    assert (creds.account_sid, creds.auth_token, creds.generated) == (SID, TOKEN, False)
    assert not (tmp_path / "credentials.json").exists()


def test_env_wins_over_config(tmp_path: Path) -> None:
    env_sid = "AC" + "f" * 32
    cfg = Config(data_dir=tmp_path, account_sid=SID, auth_token=TOKEN)
    creds = resolve_credentials(cfg, env={"SOFTSWITCH_ACCOUNT_SID": env_sid, "SOFTSWITCH_AUTH_TOKEN": "envtok"})
    assert (creds.account_sid, creds.auth_token, creds.generated) == (env_sid, "envtok", False)


def test_env_alone(tmp_path: Path) -> None:
    creds = resolve_credentials(
        Config(data_dir=tmp_path), env={"SOFTSWITCH_ACCOUNT_SID": SID, "SOFTSWITCH_AUTH_TOKEN": "t"}
    )
    assert (creds.account_sid, creds.auth_token) == (SID, "t")


def test_process_environment_is_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTSWITCH_ACCOUNT_SID", SID)
    monkeypatch.setenv("SOFTSWITCH_AUTH_TOKEN", "fromenv")
    assert resolve_credentials(Config(data_dir=tmp_path)).auth_token == "fromenv"


@pytest.mark.parametrize(
    ("cfg_sid", "cfg_token", "env"),
    [
        (SID, None, {}),
        (None, TOKEN, {}),
        (None, None, {"SOFTSWITCH_ACCOUNT_SID": SID}),
        (None, None, {"SOFTSWITCH_AUTH_TOKEN": TOKEN}),
    ],
)
def test_only_one_of_sid_and_token(tmp_path: Path, cfg_sid: str | None, cfg_token: str | None,
                                   env: dict[str, str]) -> None:
    cfg = Config(data_dir=tmp_path, account_sid=cfg_sid, auth_token=cfg_token)
    with pytest.raises(ConfigError, match="both"):
        resolve_credentials(cfg, env=env)
    assert not (tmp_path / "credentials.json").exists()


@pytest.mark.parametrize("sid", ["AC0123", "XX0123456789abcdef0123456789abcdef",
                                 "AC0123456789ABCDEF0123456789ABCDEF", "AC0123456789abcdef0123456789abcdef0",
                                 "ac0123456789abcdef0123456789abcdef"])
def test_bad_sid_format(tmp_path: Path, sid: str) -> None:
    with pytest.raises(ConfigError, match="SID"):
        resolve_credentials(Config(data_dir=tmp_path, account_sid=sid, auth_token=TOKEN), env={})
    with pytest.raises(ConfigError, match="SID"):
        resolve_credentials(Config(data_dir=tmp_path),
                            env={"SOFTSWITCH_ACCOUNT_SID": sid, "SOFTSWITCH_AUTH_TOKEN": TOKEN})


def test_generated_once_and_persisted(tmp_path: Path) -> None:
    data_dir = tmp_path / "var" / "nested"  # created on demand
    cfg = Config(data_dir=data_dir)
    first = resolve_credentials(cfg, env={})
    assert first.generated
    assert SID_RE.match(first.account_sid)
    assert HEX32.match(first.auth_token)
    path = data_dir / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"account_sid": first.account_sid, "auth_token": first.auth_token}

    second = resolve_credentials(Config(data_dir=data_dir), env={})
    assert (second.account_sid, second.auth_token) == (first.account_sid, first.auth_token)
    assert not second.generated
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_generated_credentials_differ_between_data_dirs(tmp_path: Path) -> None:
    a = resolve_credentials(Config(data_dir=tmp_path / "a"), env={})
    b = resolve_credentials(Config(data_dir=tmp_path / "b"), env={})
    assert a.account_sid != b.account_sid
    assert a.auth_token != b.auth_token


def test_explicit_credentials_win_over_saved_ones(tmp_path: Path) -> None:
    resolve_credentials(Config(data_dir=tmp_path), env={})
    creds = resolve_credentials(Config(data_dir=tmp_path, account_sid=SID, auth_token=TOKEN), env={})
    assert (creds.account_sid, creds.auth_token) == (SID, TOKEN)


def test_recordings_public_is_a_boolean(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text("[recordings]\npublic = true\n")
    assert load_config(path).recordings_public is True
    assert load_config(None).recordings_public is False
    path.write_text('[recordings]\npublic = "yes"\n')
    with pytest.raises(ConfigError, match=r"recordings\.public"):
        load_config(path)


# -- [media] -------------------------------------------------------------------------------------


def test_media_defaults_follow_the_sip_host() -> None:
    cfg = Config(sip_host="192.0.2.10")
    assert (cfg.media_address, cfg.external_address, cfg.rtp_ports) == (None, None, (10000, 20000))
    assert cfg.rtp_address == "192.0.2.10"
    assert cfg.advertised_host == "192.0.2.10"


def test_media_table(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[server]\nsip = "0.0.0.0:5060"\n'
                    '[media]\naddress = "127.0.0.1"\nexternal_address = "203.0.113.7"\nrtp_ports = "23000-23100"\n')
    cfg = load_config(path)
    assert (cfg.media_address, cfg.external_address, cfg.rtp_ports) == ("127.0.0.1", "203.0.113.7", (23000, 23100))
    assert cfg.rtp_address == "127.0.0.1"
    assert cfg.advertised_host == "203.0.113.7"  # behind NAT the external address wins


def test_external_address_may_be_a_host_name(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[media]\nexternal_address = "sip.example.com"\n')
    assert load_config(path).advertised_host == "sip.example.com"


def test_advertised_host_is_never_a_wildcard() -> None:
    assert Config(sip_host="0.0.0.0", media_address="192.0.2.10").advertised_host == "192.0.2.10"
    fallback = Config(sip_host="0.0.0.0").advertised_host
    assert fallback not in ("0.0.0.0", "::", "")
    assert fallback == default_interface_address()
    assert Config(sip_host="0.0.0.0").rtp_address == "0.0.0.0"  # RTP then binds every interface


@pytest.mark.parametrize(("text", "message"), [
    ('address = "somehost"', r"media\.address: expected an IP address, got 'somehost'"),
    ('address = 5', r"media\.address must be a string, not 5"),
    ('external_address = "0.0.0.0"', r"media\.external_address"),
    ('external_address = "not a host"', r"media\.external_address"),
    ('rtp_ports = "20000-10000"', r"media\.rtp_ports: expected FIRST-LAST"),
    ('rtp_ports = "10000"', r"media\.rtp_ports: expected FIRST-LAST"),
    ('rtp_ports = "0-100"', r"media\.rtp_ports"),
    ('rtp_ports = "10000-70000"', r"media\.rtp_ports"),
    ('rtp_ports = "a-b"', r"media\.rtp_ports"),
    ('ports = "10000-20000"', r"unknown key media\.ports \(did you mean media\.rtp_ports\?\)"),
])
def test_bad_media_values(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(f"[media]\n{text}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_media_must_be_a_table(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('media = "127.0.0.1"\n')
    with pytest.raises(ConfigError, match=r"\[media\] must be a table"):
        load_config(path)


def test_parse_port_range() -> None:
    assert parse_port_range("10000-20000", "x") == (10000, 20000)
    assert parse_port_range(" 1 - 3 ", "x") == (1, 3)
    for bad in ("", "-", "5-5", "10-", "-10", "1-65536", "x-y"):
        with pytest.raises(ConfigError, match="x"):
            parse_port_range(bad, "x")


@pytest.mark.parametrize("uri", ["sip:", "sip:gw@", "sip::5070", "sip:gw@;transport=udp"])
def test_trunk_uri_without_host(tmp_path: Path, uri: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(f'[[trunks]]\nname = "gw"\nuri = "{uri}"\n')
    with pytest.raises(ConfigError, match=f"trunk gw: uri has no host, got '{uri}'"):
        load_config(path)


REGISTERING = '[[trunks]]\nname = "Carrier"\nuri = "sip:gw.example.com:5080"\nusername = "u"\npassword = "p"\n'


def test_trunk_registration_keys(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(REGISTERING + 'register = true\n'
                    '[[trunks]]\nname = "lab"\nuri = "sip:127.0.0.1:5070"\nusername = "alice"\npassword = "s"\n'
                    'register = true\nregistrar = "[::1]:5071"\nexpires = 10\n'
                    'addresses = ["203.0.113.9/24", "198.51.100.7", "2001:db8::/32"]\n'
                    '[[trunks]]\nname = "plain"\nuri = "sip:plain.example.com"\n')
    carrier, lab, plain = load_config(path).trunks
    assert carrier.register and carrier.registrar is None and carrier.registrar_hostport == "gw.example.com:5080"
    assert (carrier.expires, carrier.addresses) == (3600, ())
    assert lab.registrar_hostport == "[::1]:5071" and lab.expires == 10
    assert lab.addresses == ("203.0.113.0/24", "198.51.100.7/32", "2001:db8::/32")  # as networks
    assert plain == Trunk(name="plain", uri="sip:plain.example.com") and not plain.register


@pytest.mark.parametrize(("extra", "message"), [
    ("register = 1", r"trunks\[0\]\.register must be true or false, not 1"),
    ('register = true\nexpires = 9', "trunk Carrier: expires must be from 10 to 86400 seconds, not 9"),
    ('register = true\nexpires = 86401', "trunk Carrier: expires must be from 10 to 86400 seconds, not 86401"),
    ('register = true\nexpires = "60"', r"trunks\[0\]\.expires must be a whole number"),
    ('register = true\naddresses = ["10.0.0.0/33"]', r"trunk Carrier: addresses\[0\]: expected an IP address or a "
                                                     r"network like 203\.0\.113\.0/24, got '10\.0\.0\.0/33'"),
    ('register = true\naddresses = "10.0.0.0/8"', r"trunks\[0\]\.addresses must be a list of strings"),
    ('register = true\nregistrar = "sip:gw.example.com"', "trunk Carrier: registrar: expected the registrar as "
                                                         "HOST or HOST:PORT"),
    ('register = true\nregistrar = "gw.example.com:0"', "trunk Carrier: registrar: expected"),
    ('register = true\nregistrar = "::1"', "trunk Carrier: registrar: expected"),
    ('expires = 60', "trunk Carrier: expires only apply with register = true"),
    ('registrar = "r.example.com"\naddresses = []', "trunk Carrier: registrar, addresses only apply with register"),
    ('register = true\nusername = "a b"', "trunk Carrier: username 'a b' has characters"),
])
def test_bad_trunk_registration_values(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "t.toml"
    text = REGISTERING + extra + "\n"
    if "username =" in extra:
        text = text.replace('username = "u"\n', "", 1)
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_a_registering_trunk_needs_credentials_and_the_edge(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[[trunks]]\nname = "gw"\nuri = "sip:gw.example.com"\nusername = "u"\nregister = true\n')
    with pytest.raises(ConfigError, match="trunk gw: register = true needs username and password"):
        load_config(path)
    path.write_text("[edge]\nenabled = false\n" + REGISTERING + "register = true\n")
    with pytest.raises(ConfigError, match=r"trunk Carrier: register = true needs the SIP edge \(\[edge\] enabled"):
        load_config(path)
    path.write_text(REGISTERING + "register = true\n" + REGISTERING.replace('"Carrier"', '"carrier"') +
                    "register = true\n")
    with pytest.raises(ConfigError, match="two registering trunks' names both read 'trunk-carrier'"):
        load_config(path)
