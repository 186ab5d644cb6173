"""What `softswitch.toml` may hold: every table and key with its type, checked before anything is read.

`SECTIONS` lists the `[table]`s and `ARRAYS` the `[[array of tables]]`, each key with its `Kind`.  A key not
listed, a table not listed or a value of the wrong kind is a `ConfigError` of one line naming the file and the
dotted key (`softswitch.toml: unknown key server.htttp (did you mean server.http?)`).  A new setting is one line
here (plus the code in `switch.core.config` that reads it); the finer checks of values (ranges, host:port, URLs)
stay in `switch.core.config`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from switch.core.errors import ConfigError


@dataclass(frozen=True)
class Kind:
    """A TOML value's expected type: `name` completes "must be ..." in the error."""

    name: str
    check: Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


STR = Kind("a string", lambda v: isinstance(v, str))
INT = Kind("a whole number", _is_int)
NUMBER = Kind("a number", lambda v: _is_int(v) or isinstance(v, float))
BOOL = Kind("true or false", lambda v: isinstance(v, bool))
STR_LIST = Kind("a list of strings", lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v))
STR_TABLE = Kind("a table of strings", lambda v: isinstance(v, dict) and all(isinstance(i, str) for i in v.values()))
AUTO_OR_INT = Kind('"auto" or a whole number', lambda v: v == "auto" or _is_int(v))

SECTIONS: dict[str, dict[str, Kind]] = {
    "server": {"http": STR, "sip": STR, "workers": AUTO_OR_INT, "data_dir": STR, "public_url": STR,
               "pj_log_level": INT, "log_level": STR, "log_format": STR, "drain_seconds": NUMBER,
               "metrics": BOOL, "metrics_auth": BOOL, "call_events": BOOL, "sip_trace": BOOL},
    "workers": {"min": INT, "max": AUTO_OR_INT, "max_calls": INT, "spare_calls": INT, "idle_timeout": NUMBER},
    "account": {"sid": STR, "auth_token": STR},
    "exotel": {"sid": STR, "api_key": STR, "api_token": STR},
    "twiml": {"fetch_timeout": NUMBER},
    "webhooks": {"timeout": NUMBER, "retries": INT},
    "recordings": {"public": BOOL},
    "speech": {"engine": STR, "url": STR, "model": STR, "api_key": STR, "timeout": NUMBER, "preload": BOOL},
    "media": {"address": STR, "external_address": STR, "rtp_ports": STR, "webrtc_addresses": STR_LIST},
    "edge": {"enabled": BOOL, "worker_port": INT, "max_cps": INT, "per_source_rps": INT, "max_message_bytes": INT,
             "worker_timeout_ms": INT, "tls_certificate": STR, "tls_private_key": STR, "tls_port": INT},
}
ARRAYS: dict[str, dict[str, Kind]] = {
    "trunks": {"name": STR, "uri": STR, "username": STR, "password": STR, "prefixes": STR_LIST, "register": BOOL,
               "registrar": STR, "expires": INT, "addresses": STR_LIST},
    "numbers": {"number": STR, "voice_url": STR, "voice_method": STR, "voice_fallback_url": STR,
                "voice_fallback_method": STR, "status_callback": STR, "status_callback_method": STR},
    "conversation_services": {"sid": STR, "friendly_name": STR, "routing_url": STR, "pool": STR_LIST,
                              "workers": STR_TABLE},
}
REQUIRED: dict[str, tuple[str, ...]] = {"trunks": ("uri",), "numbers": ("number",), "conversation_services": ("sid",)}

HTTP_METHODS = ("GET", "POST")
NUMBER_RE = re.compile(r"^\+?[0-9]{1,15}$")
SIP_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*$")
PREFIX_RE = re.compile(r"^\+?[0-9]*$")


def show(value: Any) -> str:
    """`value` as TOML writes it (true, not True), for error messages."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _unknown(what: str, known: list[str], prefix: str) -> str:
    close = difflib.get_close_matches(what, known, n=1)
    hint = f"did you mean {prefix}{close[0]}?" if close else "known: " + ", ".join(prefix + k for k in known)
    return f"unknown key {prefix}{what} ({hint})"


def _check_table(table: dict[str, Any], keys: dict[str, Kind], where: str) -> None:
    for key, value in table.items():
        kind = keys.get(key)
        if kind is None:
            raise ConfigError(_unknown(key, sorted(keys), f"{where}."))
        if not kind.check(value):
            raise ConfigError(f"{where}.{key} must be {kind.name}, not {show(value)}")


def check_document(raw: dict[str, Any]) -> None:
    """Every table and key of a parsed `softswitch.toml` known and of its kind; else one ConfigError."""
    known = sorted([*SECTIONS, *ARRAYS])
    for name, value in raw.items():
        if name in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"[{name}] must be a table, not {value!r}")
            _check_table(value, SECTIONS[name], name)
        elif name in ARRAYS:
            if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
                raise ConfigError(f"{name} must be [[{name}]] tables, not {value!r}")
            for i, entry in enumerate(value):
                where = f"{name}[{i}]"
                _check_table(entry, ARRAYS[name], where)
                for key in REQUIRED.get(name, ()):
                    if key not in entry:
                        raise ConfigError(f"{where}: {key} is missing")
        elif isinstance(value, dict | list):
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean [{close[0]}]?" if close else "known tables: " + ", ".join(known)
            raise ConfigError(f"unknown table [{name}] ({hint})")
        else:  # a key above every table: `http = ...` meant under [server]
            keys = {key: f"{table}.{key}" for table, kinds in reversed(SECTIONS.items()) for key in kinds}
            close = difflib.get_close_matches(name, list(keys), n=1)
            hint = f"did you mean {keys[close[0]]}, under [{keys[close[0]].split('.')[0]}]?" if close else \
                "every key belongs under a [table]"
            raise ConfigError(f"unknown key {name} ({hint})")
    _check_values(raw)


URL_KEYS = ("voice_url", "voice_fallback_url", "status_callback", "routing_url")
METHOD_KEYS = ("voice_method", "voice_fallback_method", "status_callback_method")


def _check_values(raw: dict[str, Any]) -> None:
    """URLs, webhook methods, numbers and trunk prefixes, in a document `check_document` found well typed."""
    check_url(raw.get("server", {}).get("public_url"), "server.public_url")
    for name in ARRAYS:
        for i, entry in enumerate(raw.get(name, [])):
            where = f"{name}[{i}]"
            for key in URL_KEYS:
                check_url(entry.get(key), f"{where}.{key}")
            for key in METHOD_KEYS:
                if key in entry:
                    check_method(entry[key], f"{where}.{key}")
            if name == "numbers":
                check_number(entry["number"], f"{where}.number")
            for j, prefix in enumerate(entry.get("prefixes", []) if name == "trunks" else []):
                check_prefix(prefix, f"{where}.prefixes[{j}]")
    numbers = [e["number"] for e in raw.get("numbers", [])]
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    if twice:
        raise ConfigError(f"numbers: {twice[0]} is listed twice")


def check_url(value: str | None, key: str) -> None:
    """An absolute http(s) URL with a host (what Twilio accepts for a webhook), or None."""
    if value is None:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key} must be an absolute http:// or https:// URL, not {value!r}")


def check_method(value: str, key: str) -> None:
    """GET or POST, the methods Twilio uses for webhooks."""
    if value.upper() not in HTTP_METHODS:
        raise ConfigError(f"{key} must be GET or POST, not {value!r}")


def check_number(value: str, key: str) -> None:
    """A phone number (`+` and up to 15 digits, E.164) or a SIP user name (letters, digits, `._~-`)."""
    if not (NUMBER_RE.match(value) or SIP_USER_RE.match(value)):
        raise ConfigError(f"{key} must be a phone number (+ and up to 15 digits) or a SIP user name, not {value!r}")


def check_prefix(value: str, key: str) -> None:
    """A number prefix: digits, optionally after `+`."""
    if not PREFIX_RE.match(value):
        raise ConfigError(f"{key} must be digits (optionally after +), not {value!r}")
