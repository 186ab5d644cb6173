"""`[[trunks]]`: the SIP trunks numbers are sent to, and the registrations the edge keeps with them.

The keys are documented with the others in `switch.core.config` (which re-exports `Trunk`); their types are
checked by `switch.core.config_schema` first, the values here.  A trunk with `register = true` needs `username`
and `password` (the REGISTER's digest credentials) and the SIP edge (Kamailio registers,
`switch.workers.edge_trunks`); `registrar`, `expires` and `addresses` belong to registering trunks only.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from switch.core.errors import ConfigError
from switch.workers.edge_trunks import MAX_EXPIRES, MIN_EXPIRES, registration_uuid
from switch.workers.sipmsg import is_ip

HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$")
# a SIP user part without the characters Kamailio's script strings or the registered address cannot carry
USER_RE = re.compile(r"^[A-Za-z0-9._~!&'()*+,;=%?/-]+$")
REGISTRATION_KEYS = ("registrar", "expires", "addresses")


@dataclass(frozen=True)
class Trunk:
    """A SIP trunk that phone numbers are sent to."""

    name: str
    uri: str  # sip:host[:port]
    username: str | None = None
    password: str | None = None
    prefixes: tuple[str, ...] = ()
    register: bool = False  # the edge keeps a registration with the trunk (switch.workers.edge_trunks)
    registrar: str | None = None  # host[:port] the REGISTERs go to; None: the uri's host:port
    expires: int = 3600  # the registration's lifetime asked for, in seconds
    addresses: tuple[str, ...] = ()  # networks (CIDR) allowed to send calls to the registration; empty: any

    @property
    def hostport(self) -> str:
        rest = self.uri.split(":", 1)[1] if ":" in self.uri else self.uri
        return rest.split("@", 1)[-1].split(";", 1)[0]

    @property
    def registrar_hostport(self) -> str:
        """Where the registration goes: `registrar`, else the uri's host:port."""
        return self.registrar or self.hostport

    def matches(self, number: str) -> bool:
        return not self.prefixes or any(number.startswith(p) for p in self.prefixes)


def load_trunks(entries: list[dict[str, Any]], edge_enabled: bool) -> list[Trunk]:
    """The `[[trunks]]` entries (well typed by `check_document`) as Trunks, every value checked."""
    try:
        trunks = [
            Trunk(name=str(t.get("name", f"trunk{i}")), uri=str(t["uri"]), username=t.get("username"),
                  password=t.get("password"), prefixes=tuple(str(p) for p in t.get("prefixes", ())),
                  register=bool(t.get("register", False)), registrar=t.get("registrar"),
                  expires=int(t.get("expires", Trunk.expires)),
                  addresses=tuple(str(a) for a in t.get("addresses", ())))
            for i, t in enumerate(entries)
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"bad [[trunks]] entry: {exc}") from exc
    checked = []
    for trunk, entry in zip(trunks, entries, strict=True):
        if not trunk.uri.startswith(("sip:", "sips:")):
            raise ConfigError(f"trunk {trunk.name}: uri must start with sip:, got {trunk.uri!r}")
        if not trunk.hostport or trunk.hostport.startswith(":"):
            raise ConfigError(f"trunk {trunk.name}: uri has no host, got {trunk.uri!r}")
        checked.append(_registration(trunk, entry, edge_enabled))
    uuids = [registration_uuid(t.name) for t in checked if t.register]
    twice = sorted({u for u in uuids if uuids.count(u) > 1})
    if twice:
        raise ConfigError(f"[[trunks]]: two registering trunks' names both read {twice[0]!r} in lower-case "
                          "letters, digits and dashes (their registrations' Contact user): rename one")
    return checked


def _registration(trunk: Trunk, entry: dict[str, Any], edge_enabled: bool) -> Trunk:
    """`trunk` with its registration keys checked (and `addresses` normalized to networks)."""
    where = f"trunk {trunk.name}"
    if not trunk.register:
        extra = [key for key in REGISTRATION_KEYS if key in entry]
        if extra:
            raise ConfigError(f"{where}: {', '.join(extra)} only apply with register = true")
        return trunk
    if not edge_enabled:
        raise ConfigError(f"{where}: register = true needs the SIP edge ([edge] enabled = true): it registers")
    if not trunk.username or not trunk.password:
        raise ConfigError(f"{where}: register = true needs username and password (the REGISTER's credentials)")
    if not USER_RE.match(trunk.username):
        raise ConfigError(f"{where}: username {trunk.username!r} has characters a registered address cannot carry "
                          "(spaces, quotes, backslashes, @, <, >, $, :)")
    check_registrar(trunk.registrar_hostport, f"{where}: registrar" if trunk.registrar else f"{where}: uri")
    if not MIN_EXPIRES <= trunk.expires <= MAX_EXPIRES:
        raise ConfigError(f"{where}: expires must be from {MIN_EXPIRES} to {MAX_EXPIRES} seconds, "
                          f"not {trunk.expires}")
    networks = []
    for i, address in enumerate(trunk.addresses):
        try:
            networks.append(str(ipaddress.ip_network(address, strict=False)))
        except ValueError:
            raise ConfigError(f"{where}: addresses[{i}]: expected an IP address or a network like "
                              f"203.0.113.0/24, got {address!r}") from None
    return Trunk(trunk.name, trunk.uri, trunk.username, trunk.password, trunk.prefixes, trunk.register,
                 trunk.registrar, trunk.expires, tuple(networks))


def check_registrar(value: str, what: str) -> None:
    """`host` or `host:port` (an IPv6 address in brackets): where REGISTERs can be sent."""
    host, port = value, ""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest and not rest.startswith(":"):
            host = ""
        port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    ok = bool(host) and (is_ip(host) or (HOST_RE.match(host) is not None and not value.startswith("[")))
    if port:
        ok = ok and port.isdigit() and 0 < int(port) < 65536
    if not ok or (value.count(":") > 1 and not value.startswith("[")):
        raise ConfigError(f"{what}: expected the registrar as HOST or HOST:PORT (like sip.example.com:5060), "
                          f"got {value!r}")
