"""Unit tests of the strict config loader (switch.core.config_schema through `load_config`): every table's
unknown key and wrong type, bad URLs, methods and numbers, each one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from switch.core.config import load_config
from switch.core.config_schema import ARRAYS, SECTIONS
from switch.core.errors import ConfigError

SVC = 'sid = "IS0123456789abcdef0123456789abcdef"\n'

CASES = [
    # a key above every table, a misspelt table, a misspelt key
    ('htttp = "127.0.0.1:8080"\n', "unknown key htttp (did you mean server.http, under [server]?)"),
    ('[sever]\nhttp = "127.0.0.1:8080"\n', "unknown table [sever] (did you mean [server]?)"),
    ('[server]\nhtttp = "x"\n', "unknown key server.htttp (did you mean server.http?)"),
    ('[server]\nworkers = "two"\n', "server.workers must be \"auto\" or a whole number, not 'two'"),
    ("[server]\nworkers = true\n", 'server.workers must be "auto" or a whole number, not true'),
    ("[server]\npj_log_level = 9\n", "server.pj_log_level must be from 0 (none) to 6 (everything), not 9"),
    ('[server]\nlog_level = "loud"\n', "server.log_level must be one of debug, info, warning, error, not 'loud'"),
    ('[server]\nlog_format = "xml"\n', "server.log_format must be one of text, json, not 'xml'"),
    ('[server]\npublic_url = "switch.example.com"\n',
     "server.public_url must be an absolute http:// or https:// URL, not 'switch.example.com'"),
    ('[workers]\nmin = "1"\n', "workers.min must be a whole number, not '1'"),
    ('[workers]\nmax_call = 10\n', "unknown key workers.max_call (did you mean workers.max_calls?)"),
    ('[account]\ntoken = "x"\n', "unknown key account.token (did you mean account.auth_token?)"),
    ("[account]\nsid = 5\n", "account.sid must be a string, not 5"),
    ('[exotel]\napi_secret = "x"\n',
     "unknown key exotel.api_secret (known: exotel.api_key, exotel.api_token, exotel.sid)"),
    ("[exotel]\nsid = 1\n", "exotel.sid must be a string, not 1"),
    ('[twiml]\nfetch_timeout = "15"\n', "twiml.fetch_timeout must be a number, not '15'"),
    ("[twiml]\ntimeout = 15\n", "unknown key twiml.timeout (did you mean twiml.fetch_timeout?)"),
    ("[webhooks]\nretries = 2.5\n", "webhooks.retries must be a whole number, not 2.5"),
    ("[webhooks]\nretry = 2\n", "unknown key webhooks.retry (did you mean webhooks.retries?)"),
    ('[recordings]\npublic = "yes"\n', "recordings.public must be true or false, not 'yes'"),
    ("[recordings]\npublik = true\n", "unknown key recordings.publik (did you mean recordings.public?)"),
    ('[speech]\ntimeout = "long"\n', "speech.timeout must be a number, not 'long'"),
    ("[speech]\nengin = \"http\"\n", "unknown key speech.engin (did you mean speech.engine?)"),
    ("[media]\nrtp_ports = 10000\n", "media.rtp_ports must be a string, not 10000"),
    ('[media]\nports = "1-2"\n', "unknown key media.ports (did you mean media.rtp_ports?)"),
    ('[edge]\nenabled = "yes"\n', "edge.enabled must be true or false, not 'yes'"),
    ("[edge]\nmax_cp = 5\n", "unknown key edge.max_cp (did you mean edge.max_cps?)"),
    ('[[trunks]]\nuri = "sip:a"\nprefix = ["+1"]\n',
     "unknown key trunks[0].prefix (did you mean trunks[0].prefixes?)"),
    ('[[trunks]]\nuri = "sip:a"\nprefixes = "+1"\n', "trunks[0].prefixes must be a list of strings, not '+1'"),
    ('[[trunks]]\nuri = "sip:a"\nprefixes = ["+1x"]\n',
     "trunks[0].prefixes[0] must be digits (optionally after +), not '+1x'"),
    ('[[trunks]]\nname = "a"\n', "trunks[0]: uri is missing"),
    ('[trunks]\nuri = "sip:a"\n', "trunks must be [[trunks]] tables, not {'uri': 'sip:a'}"),
    ('[[numbers]]\nnumber = "+1555"\n[[numbers]]\nnumber = "+1556"\nvoice_uri = "http://x"\n',
     "unknown key numbers[1].voice_uri (did you mean numbers[1].voice_url?)"),
    ("[[numbers]]\nnumber = 15550100\n", "numbers[0].number must be a string, not 15550100"),
    ('[[numbers]]\nnumber = "+1555"\nvoice_url = "/voice"\n',
     "numbers[0].voice_url must be an absolute http:// or https:// URL, not '/voice'"),
    ('[[numbers]]\nnumber = "+1555"\nstatus_callback = "ftp://x/y"\n',
     "numbers[0].status_callback must be an absolute http:// or https:// URL, not 'ftp://x/y'"),
    ('[[numbers]]\nnumber = "+1555"\nvoice_method = "PUT"\n', "numbers[0].voice_method must be GET or POST, not 'PUT'"),
    ('[[numbers]]\nnumber = "555 0100"\n',
     "numbers[0].number must be a phone number (+ and up to 15 digits) or a SIP user name, not '555 0100'"),
    ('[[numbers]]\nnumber = "+1555"\n[[numbers]]\nnumber = "+1555"\n', "numbers: +1555 is listed twice"),
    ('[[numbers]]\nvoice_url = "http://x/v"\n', "numbers[0]: number is missing"),
    (f'[[conversation_services]]\n{SVC}route_url = "http://x"\n',
     "unknown key conversation_services[0].route_url (did you mean conversation_services[0].routing_url?)"),
    (f'[[conversation_services]]\n{SVC}pool = "alice"\n',
     "conversation_services[0].pool must be a list of strings, not 'alice'"),
    (f"[[conversation_services]]\n{SVC}workers = {{ alice = 5 }}\n",
     "conversation_services[0].workers must be a table of strings, not {'alice': 5}"),
    (f'[[conversation_services]]\n{SVC}routing_url = "x"\n',
     "conversation_services[0].routing_url must be an absolute http:// or https:// URL, not 'x'"),
]


@pytest.mark.parametrize(("text", "message"), CASES)
def test_each_mistake_is_one_line_naming_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "softswitch.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: {message}"


def test_every_table_has_an_unknown_key_and_a_wrong_type_case() -> None:
    tables = {text.split("]")[0].strip("[") for text, _ in CASES if text.startswith("[")}
    assert tables >= set(SECTIONS) | set(ARRAYS)


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "softswitch.toml"
    path.write_text('[server]\nhttp = "127.0.0.1:8081"\npj_log_level = 3\nlog_level = "debug"\nlog_format = "json"\n'
                    'public_url = "https://switch.example.com/"\n'
                    '[[numbers]]\nnumber = "+15550100"\nvoice_url = "https://app.example.com/v"\nvoice_method = "GET"\n'
                    '[[numbers]]\nnumber = "alice"\n[[trunks]]\nuri = "sip:gw.example.com"\nprefixes = ["+1", ""]\n')
    cfg = load_config(path)
    assert (cfg.http_port, cfg.pj_log_level, cfg.log_level, cfg.log_format) == (8081, 3, "debug", "json")
    assert [n.number for n in cfg.numbers] == ["+15550100", "alice"]
    assert cfg.trunks[0].prefixes == ("+1", "")
