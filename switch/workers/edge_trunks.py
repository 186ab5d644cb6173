"""Trunk registrations kept by the SIP edge: Kamailio's `uac` module registers, softswitch writes and watches.

A `[[trunks]]` entry with `register = true` becomes one row of the `uacreg` table in the edge's SQLite database
(`switch.workers.edge_db`), rewritten whole at every start of Kamailio.  Kamailio's `uac` module reads the table
when it starts and keeps each registration by itself: `REGISTER sip:REGISTRAR` with To and From
`sip:USERNAME@REGISTRAR`, Contact `sip:UUID@EDGE` (UUID: `trunk-` and the trunk's name in lower-case letters,
digits and dashes), answering a 401/407 challenge with the trunk's credentials, and refreshing it before it
expires (`reg_timer_interval`, a quarter of the shortest `expires`, at most 30 s).  A failed registration is
tried again after `RETRY_S` seconds, never in a tight loop.

What the script adds (the fragments below, placed by `switch.workers.edge_config`):

- `route[TRUNK_INBOUND]`, called for every new INVITE from outside before it is dispatched: an INVITE whose
  Request-URI user is a registration's UUID (the provider calling the Contact it was given) is refused with 403
  when the trunk lists `addresses` and the source address is in none of them; otherwise `uac_reg_lookup`
  rewrites its Request-URI to `sip:USERNAME@EDGE_HOST`, and the call is routed like any other inbound call
  (by the Request-URI's user when that is a number of the switch, else by the To user: the dialed number);
- `reply_route` and `event_route[tm:local-request]`: the registrar's last answer to each registration's REGISTER
  (0 while one is unanswered) in the shared hash table `uacreg`, keyed by the To URI, because `uac.reg_dump`
  reports only flags.

The control plane polls `uac.reg_dump` and `htable.dump uacreg` (`read_registrations`) and a
`RegistrationWatch` turns them into each trunk's state for `/healthz` (`registered`, `failed`, `disabled`,
`waiting`) and a log line at every change.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from switch.workers.edge_db import connect

log = logging.getLogger("switch.workers.edge")

MODULES = ("db_sqlite", "htable", "ipops", "uac")  # loaded after tm and rr, which uac needs
CODES_TABLE = "uacreg"  # the shared hash table of the registrars' last answers
ROUTE = "TRUNK_INBOUND"
UUID_PREFIX = "trunk-"
RETRY_S = 60  # a failed registration is tried again after about this long
GC_S = 5  # uac.reg_reload is refused within this many seconds of the last one
MIN_EXPIRES, MAX_EXPIRES = 10, 86400
TIMER_MAX_S = 30
POLL_S = 2.0  # how often the control plane reads the registrations' states

# uac's flags (uac_reg.c)
DISABLED, ONGOING, ONLINE, AUTHSENT, INIT = 1, 2, 4, 8, 16

REGISTERED, FAILED, WAIT, OFF = "registered", "failed", "waiting", "disabled"


@dataclass(frozen=True)
class TrunkRegistration:
    """One registering trunk, as the edge needs it (`switch.app` builds these from the `[[trunks]]` entries)."""

    name: str
    registrar: str  # host[:port]: where the REGISTERs go, and the domain of the registered address
    username: str
    password: str
    expires: int = 3600  # the registration's lifetime asked of the registrar, in seconds
    addresses: tuple[str, ...] = ()  # networks (CIDR) allowed to send calls to the registration; empty: any

    @property
    def uuid(self) -> str:
        """The Contact's user: how Kamailio and the script name this registration."""
        return registration_uuid(self.name)

    @property
    def aor(self) -> str:
        """The registered address (To and From of the REGISTERs)."""
        return f"sip:{self.username}@{self.registrar}"


def registration_uuid(name: str) -> str:
    """`trunk-` and `name` in lower-case letters, digits and dashes (a SIP user and a script string as is)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unnamed"
    return (UUID_PREFIX + slug)[:64]


def timer_interval(trunks: Sequence[TrunkRegistration]) -> int:
    """uac's timer (seconds): it refreshes a registration with less than this + 3 s left, so a quarter of the
    shortest lifetime keeps every one refreshed in time, however the ticks fall."""
    shortest = min((t.expires for t in trunks), default=3600)
    return max(1, min(TIMER_MAX_S, shortest // 4))


def local_host(host: str, advertise: str | None) -> str:
    """The host of the registrations' Contact: the advertised address, else the one the edge binds, else (a
    wildcard) the address of the interface the default route leaves by."""
    if advertise:
        return advertise
    if host not in ("0.0.0.0", "::", ""):
        return host
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only routed, nothing is sent
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def uri_host(host: str) -> str:
    """`host` as a SIP URI carries it (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def contact_address(host: str, port: int) -> str:
    """`host:port` for the registrations' Contact."""
    return f"{uri_host(host)}:{port}"


def uac_modparams(db_url: str, contact_addr: str, trunks: Sequence[TrunkRegistration]) -> str:
    """The `uac` and `htable` module parameters for `trunks`, the rows in the database at `db_url`, the Contact
    at `contact_addr` (`host:port`)."""
    interval = timer_interval(trunks)
    # uac retries a failure once its retry time is within the timer + 3 s: ask for that much more
    params = [("uac", "reg_db_url", f'"{db_url}"'), ("uac", "reg_contact_addr", f'"{contact_addr}"'),
              ("uac", "reg_timer_interval", str(interval)), ("uac", "reg_retry_interval", str(RETRY_S + interval + 3)),
              ("uac", "reg_gc_interval", str(GC_S)), ("htable", "htable", f'"{CODES_TABLE}=>size=4;"')]
    return "".join(f'modparam("{module}", "{name}", {value})\n' for module, name, value in params)


def inbound_route(trunks: Sequence[TrunkRegistration]) -> str:
    """`route[TRUNK_INBOUND]`: a new INVITE from outside to a registration's Contact user is refused (403) from
    a source outside the trunk's `addresses`, else rewritten to `sip:USERNAME@EDGE_HOST` (`uac_reg_lookup`)."""
    blocks = []
    for trunk in trunks:
        check = ""
        if trunk.addresses:
            allowed = " || ".join(f'is_in_subnet("$si", "{network}")' for network in trunk.addresses)
            check = (f"        if (!({allowed})) {{\n"
                     f'            xlog("L_WARN", "edge: INVITE for trunk {trunk.uuid} from $si, not one of its '
                     'addresses: 403\\n");\n'
                     '            sl_send_reply("403", "Forbidden");\n'
                     "            exit;\n"
                     "        }\n")
        blocks.append(f'    if ($rU == "{trunk.uuid}") {{\n{check}'
                      '        if (!uac_reg_lookup("$rU", "$ru")) {\n'
                      f'            xlog("L_WARN", "edge: INVITE for trunk {trunk.uuid}, which is not loaded\\n");\n'
                      "        }\n"
                      "        return;\n"
                      "    }\n")
    return f"route[{ROUTE}] {{\n{''.join(blocks)}}}\n"


def reply_routes(trunks: Sequence[TrunkRegistration]) -> str:
    """`reply_route` and `event_route[tm:local-request]`: the registrar's last answer to each registration's
    REGISTER, 0 while one is unanswered, in the hash table `uacreg` under the To URI."""
    ours = " || ".join(f'$tu == "{trunk.aor}"' for trunk in trunks) or "0"
    return (f"reply_route {{\n"
            f'    if ($rm == "REGISTER" && ({ours})) {{\n'
            f"        $sht({CODES_TABLE}=>$tu) = $rs;\n"
            f"    }}\n"
            f"}}\n\n"
            f"event_route[tm:local-request] {{\n"
            f'    if ($rm == "REGISTER" && ({ours})) {{\n'
            f"        $sht({CODES_TABLE}=>$tu) = 0;\n"
            f"    }}\n"
            f"}}\n")


@dataclass(frozen=True)
class TrunkScript:
    """What the registering trunks add to the Kamailio script (all empty without any)."""

    modules: tuple[str, ...] = ()  # to load after the script's own
    modparams: str = ""
    invite: str = ""  # the call of route[TRUNK_INBOUND] for a new INVITE from outside, before it is dispatched
    routes: str = ""


def trunk_script(trunks: Sequence[TrunkRegistration], loaded: Sequence[str], db_url: str, host: str,
                 advertise: str | None, port: int) -> TrunkScript:
    """The script's parts for `trunks`, with the modules in `loaded` already loaded; the registrations' rows are
    in the database at `db_url`, their Contact is the edge's address (`local_host`, `port`)."""
    if not trunks:
        return TrunkScript()
    return TrunkScript(tuple(m for m in MODULES if m not in loaded),
                       uac_modparams(db_url, contact_address(local_host(host, advertise), port), trunks),
                       f"        route({ROUTE});\n", "\n" + inbound_route(trunks) + "\n" + reply_routes(trunks))


UACREG_COLUMNS = ("l_uuid", "l_username", "l_domain", "r_username", "r_domain", "realm", "auth_username",
                  "auth_password", "auth_ha1", "auth_proxy", "expires", "flags", "reg_delay", "contact_addr",
                  "socket")


def registration_rows(trunks: Iterable[TrunkRegistration], host: str) -> list[tuple[str | int, ...]]:
    """The `uacreg` rows for `trunks` (columns `UACREG_COLUMNS`); `host` (the edge's) is the domain of the rewritten
    Request-URI of their inbound calls.  uac refuses empty columns but realm, auth_ha1, contact_addr (the
    module's `reg_contact_addr` then) and socket: the outbound proxy is the registrar itself."""
    return [(t.uuid, t.username, uri_host(host), t.username, t.registrar, "", t.username, t.password, "",
             f"sip:{t.registrar}", t.expires, 0, 0, "", "") for t in trunks]


def write_registrations(database: Path, trunks: Iterable[TrunkRegistration], host: str) -> None:
    """Make `trunks` the whole `uacreg` table of the edge's database, in one transaction."""
    rows = registration_rows(trunks, host)
    placeholders = ", ".join("?" for _ in UACREG_COLUMNS)
    with connect(database) as db:
        db.execute("DELETE FROM uacreg")
        db.executemany(f"INSERT INTO uacreg ({', '.join(UACREG_COLUMNS)}) VALUES ({placeholders})", rows)


class Rpc(Protocol):
    """What `read_registrations` needs of `switch.workers.edge.EdgeRpc`."""

    async def call(self, method: str, *params: Any) -> Any: ...


def parse_codes(dump: Any) -> dict[str, int]:
    """`htable.dump uacreg` (a list of slots, each with its items) as {To URI: last answer}."""
    codes: dict[str, int] = {}
    for slot in dump if isinstance(dump, list) else []:
        items = slot.get("slot", []) if isinstance(slot, dict) else []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                try:
                    codes[item["name"]] = int(item.get("value", 0))
                except (TypeError, ValueError):
                    continue
    return codes


async def read_registrations(rpc: Rpc) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The registrations Kamailio holds (`uac.reg_dump`) and the registrars' last answers (`parse_codes`)."""
    dump = await rpc.call("uac.reg_dump")
    records = [r for r in dump if isinstance(r, dict)] if isinstance(dump, list) else []
    return records, parse_codes(await rpc.call("htable.dump", CODES_TABLE))


async def reload_registrations(rpc: Rpc, watch: RegistrationWatch) -> list[tuple[int, str]]:
    """Have Kamailio read the `uacreg` table again (rewritten by `write_registrations`), then read the states
    into `watch`; its log lines (level, message) are returned.  Kamailio refuses a reload within `GC_S` of the
    last one (an error of the RPC)."""
    await rpc.call("uac.reg_reload")
    records, codes = await read_registrations(rpc)
    return watch.update(records, codes)


@dataclass
class TrunkState:
    """One registration's state as `/healthz` shows it (`as_dict`)."""

    name: str
    registrar: str
    contact: str
    state: str = WAIT  # registered, failed (code says why: None is no answer), disabled or waiting
    code: int | None = None  # the registrar's last answer to a REGISTER; None: none yet, or it did not answer
    expires: int = 0  # the lifetime asked for (uac takes a 423's Min-Expires)
    expires_in: int | None = None  # registered: seconds until it lapses; failed: until the next attempt
    registrations: int = 0  # successful registrations and refreshes seen since the switch started
    until: int = 0  # uac's timer_expires (epoch seconds) of the current registration

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "registrar": self.registrar, "contact": self.contact, "state": self.state,
                "code": self.code, "expires": self.expires, "expires_in": self.expires_in,
                "registrations": self.registrations}


def _classify(flags: int, previous: TrunkState, until: int, now: float) -> str:
    if flags & DISABLED:
        return OFF
    if flags & ONLINE:
        return REGISTERED
    if flags & ONGOING:  # a refresh is on its way: still registered until the last one lapses
        return REGISTERED if previous.state == REGISTERED and previous.until > now else WAIT
    return FAILED if flags & INIT else WAIT


class RegistrationWatch:
    """The trunks' registration states, updated from what Kamailio reports, with a log line for each change."""

    def __init__(self, trunks: Sequence[TrunkRegistration], contact_addr: str) -> None:
        self.trunks = tuple(trunks)
        self.states = {t.uuid: TrunkState(t.name, t.registrar, f"sip:{t.uuid}@{contact_addr}", expires=t.expires)
                       for t in self.trunks}
        self._lead = timer_interval(self.trunks) + 3  # uac acts on a timer this long before it falls due

    def update(self, records: Iterable[dict[str, Any]], codes: dict[str, int],
               now: float | None = None) -> list[tuple[int, str]]:
        """Take a `read_registrations` answer; return the log lines (level, message) of what changed."""
        now = time.time() if now is None else now
        by_uuid = {str(r.get("l_uuid")): r for r in records}
        lines: list[tuple[int, str]] = []
        for trunk in self.trunks:
            old = self.states[trunk.uuid]
            record = by_uuid.get(trunk.uuid)
            if record is None:  # not (yet) loaded by Kamailio
                new = TrunkState(old.name, old.registrar, old.contact, WAIT, codes.get(trunk.aor), trunk.expires,
                                 None, old.registrations)
            else:
                flags, until = _int(record.get("flags")), _int(record.get("timer_expires"))
                state = _classify(flags, old, until, now)
                code = codes.get(trunk.aor) or None
                left = {REGISTERED: max(0, until - int(now)), FAILED: max(0, until - self._lead - int(now))}.get(state)
                if state == REGISTERED and not flags & ONLINE:  # refreshing: the last registration's lifetime
                    until, left = old.until, max(0, old.until - int(now))
                fresh = state == REGISTERED and (old.state != REGISTERED or until > old.until)
                new = TrunkState(old.name, old.registrar, old.contact, state, code,
                                 _int(record.get("expires")) or trunk.expires, left,
                                 old.registrations + (1 if fresh else 0), until if state == REGISTERED else 0)
            lines += _changes(trunk, old, new)
            self.states[trunk.uuid] = new
        return lines

    def status(self) -> list[dict[str, Any]]:
        """Each trunk's state, in configuration order."""
        return [self.states[t.uuid].as_dict() for t in self.trunks]

    async def poll(self, rpc: Rpc, up: Callable[[], bool]) -> None:
        """Read the states every `POLL_S` while Kamailio is `up()`, logging every change, until cancelled."""
        while True:
            await asyncio.sleep(POLL_S)
            if not up():
                continue
            try:
                records, codes = await read_registrations(rpc)
            except Exception as exc:  # the edge's RPC errors (EdgeError, timeouts): the next poll tries again
                log.debug("SIP edge: trunk registrations not read (%s)", exc)
                continue
            for level, message in self.update(records, codes):
                log.log(level, message)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _changes(trunk: TrunkRegistration, old: TrunkState, new: TrunkState) -> list[tuple[int, str]]:
    where = f"SIP edge: trunk {trunk.name} at {trunk.registrar}"
    if new.state == REGISTERED and new.registrations > old.registrations:
        again = "re-registered" if old.state == REGISTERED else "registered"
        return [(logging.INFO, f"{where}: {again} as {trunk.aor} (expires in {new.expires_in} s)")]
    if new.state == FAILED and (old.state != FAILED or new.code != old.code):
        why = f"answered {new.code}" if new.code else "no answer"
        return [(logging.WARNING, f"{where}: registration failed ({why}); next attempt in {new.expires_in} s")]
    if new.state == OFF and old.state != OFF:
        return [(logging.WARNING, f"{where}: registration disabled")]
    if new.state == WAIT and old.state == REGISTERED:
        return [(logging.INFO, f"{where}: registering again")]
    return []
