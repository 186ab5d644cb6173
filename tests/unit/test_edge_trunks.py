"""Trunk registrations at the edge (`switch.workers.edge_trunks`): the uac parameters and script fragments, the
uacreg rows, and the states (with their log lines) read back from Kamailio's RPC answers."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from switch.workers import edge_db
from switch.workers.edge import find_kamailio
from switch.workers.edge_config import EdgeFiles, EdgeSettings, kamailio_script
from switch.workers.edge_trunks import (
    RETRY_S,
    RegistrationWatch,
    TrunkRegistration,
    contact_address,
    inbound_route,
    parse_codes,
    read_registrations,
    registration_rows,
    registration_uuid,
    reload_registrations,
    reply_routes,
    timer_interval,
    uac_modparams,
    write_registrations,
)

LAB = TrunkRegistration("Lab Asterisk", "127.0.0.1:5070", "alice", "s3cret", expires=20)
CARRIER = TrunkRegistration("carrier", "sip.example.com", "15550100", "pw", addresses=("203.0.113.0/24",
                                                                                        "198.51.100.7/32"))
NOW = 1_800_000_000


def test_uuid_is_the_name_in_letters_digits_and_dashes() -> None:
    assert LAB.uuid == "trunk-lab-asterisk" and registration_uuid("carrier") == "trunk-carrier"
    assert registration_uuid("  ") == "trunk-unnamed" and len(registration_uuid("x" * 100)) == 64
    assert LAB.aor == "sip:alice@127.0.0.1:5070"
    assert contact_address("::1", 5060) == "[::1]:5060" and contact_address("10.0.0.1", 5060) == "10.0.0.1:5060"


def test_timer_is_a_quarter_of_the_shortest_lifetime_and_at_most_30_s() -> None:
    assert timer_interval([LAB, CARRIER]) == 5
    assert timer_interval([CARRIER]) == 30
    assert timer_interval([TrunkRegistration("t", "h", "u", "p", expires=10)]) == 2
    assert timer_interval([]) == 30


def test_modparams_name_the_database_contact_and_timers() -> None:
    text = uac_modparams("sqlite:///var/edge/edge.sqlite", "127.0.0.1:5060", [LAB, CARRIER])
    lines = text.splitlines()
    assert 'modparam("uac", "reg_db_url", "sqlite:///var/edge/edge.sqlite")' in lines
    assert 'modparam("uac", "reg_contact_addr", "127.0.0.1:5060")' in lines
    assert 'modparam("uac", "reg_timer_interval", 5)' in lines
    assert f'modparam("uac", "reg_retry_interval", {RETRY_S + 5 + 3})' in lines  # uac acts timer + 3 s early
    assert 'modparam("htable", "htable", "uacreg=>size=4;")' in lines


def test_inbound_route_checks_addresses_then_rewrites_the_request_uri() -> None:
    route = inbound_route([LAB, CARRIER])
    assert route.startswith("route[TRUNK_INBOUND] {\n") and route.endswith("}\n")
    lab, carrier = route.split('if ($rU == "trunk-carrier")')
    assert 'if ($rU == "trunk-lab-asterisk")' in lab and "is_in_subnet" not in lab  # no list: from anywhere
    assert 'uac_reg_lookup("$rU", "$ru")' in lab and "return;" in lab
    assert 'if (!(is_in_subnet("$si", "203.0.113.0/24") || is_in_subnet("$si", "198.51.100.7/32"))) {' in carrier
    assert carrier.index('sl_send_reply("403", "Forbidden")') < carrier.index("uac_reg_lookup")
    assert route.count("{") == route.count("}")


def test_reply_routes_keep_the_last_answer_per_registered_address() -> None:
    text = reply_routes([LAB, CARRIER])
    ours = '($tu == "sip:alice@127.0.0.1:5070" || $tu == "sip:15550100@sip.example.com")'
    assert f'reply_route {{\n    if ($rm == "REGISTER" && {ours}) {{\n        $sht(uacreg=>$tu) = $rs;' in text
    assert f'event_route[tm:local-request] {{\n    if ($rm == "REGISTER" && {ours}) {{\n' in text
    assert "$sht(uacreg=>$tu) = 0;" in text


def test_rows_follow_uacs_columns() -> None:
    (row,) = registration_rows([LAB], "198.51.100.1")
    assert row == ("trunk-lab-asterisk", "alice", "198.51.100.1", "alice", "127.0.0.1:5070", "", "alice", "s3cret",
                   "", "sip:127.0.0.1:5070", 20, 0, 0, "", "")
    assert registration_rows([LAB], "2001:db8::1")[0][2] == "[2001:db8::1]"


def test_rows_replace_the_whole_table(tmp_path: Path) -> None:
    database = tmp_path / "edge.sqlite"
    edge_db.prepare_database(database)
    write_registrations(database, [LAB, CARRIER], "127.0.0.1")
    write_registrations(database, [CARRIER], "127.0.0.1")
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT l_uuid, r_username, r_domain, auth_proxy, expires FROM uacreg").fetchall()
    assert rows == [("trunk-carrier", "15550100", "sip.example.com", "sip:sip.example.com", 3600)]


def test_codes_from_htable_dump() -> None:
    dump = [{"entry": 3, "size": 1, "slot": [{"name": "sip:alice@127.0.0.1:5070", "value": 403, "type": "int"}]},
            {"entry": 9, "size": 2, "slot": [{"name": "sip:b@h", "value": 0, "type": "int"},
                                             {"name": "x", "value": "junk", "type": "str"}]}]
    assert parse_codes(dump) == {"sip:alice@127.0.0.1:5070": 403, "sip:b@h": 0}
    assert parse_codes([]) == {} and parse_codes(None) == {}


def _record(trunk: TrunkRegistration, flags: int, until: int, expires: int | None = None) -> dict[str, Any]:
    return {"l_uuid": trunk.uuid, "flags": flags, "timer_expires": until, "expires": expires or trunk.expires,
            "diff_expires": until - NOW}


def test_states_and_their_log_lines_over_a_registrations_life() -> None:
    watch = RegistrationWatch([LAB], "127.0.0.1:5060")
    assert watch.status() == [{"name": "Lab Asterisk", "registrar": "127.0.0.1:5070",
                               "contact": "sip:trunk-lab-asterisk@127.0.0.1:5060", "state": "waiting", "code": None,
                               "expires": 20, "expires_in": None, "registrations": 0}]
    aor = LAB.aor
    assert watch.update([], {}, NOW) == []  # not loaded yet
    assert watch.update([_record(LAB, 16 | 2, NOW)], {aor: 0}, NOW) == []  # the first REGISTER is out
    assert watch.status()[0]["state"] == "waiting"
    lines = watch.update([_record(LAB, 16 | 4, NOW + 20)], {aor: 200}, NOW + 1)
    assert lines == [(logging.INFO, "SIP edge: trunk Lab Asterisk at 127.0.0.1:5070: registered as "
                                    "sip:alice@127.0.0.1:5070 (expires in 19 s)")]
    state = watch.status()[0]
    assert (state["state"], state["code"], state["expires_in"], state["registrations"]) == ("registered", 200, 19, 1)
    assert watch.update([_record(LAB, 16 | 4, NOW + 20)], {aor: 200}, NOW + 5) == []  # nothing new
    # a refresh on its way: uac clears ONLINE, the last registration still holds
    assert watch.update([_record(LAB, 16 | 2, NOW + 14)], {aor: 0}, NOW + 14) == []
    assert watch.status()[0]["state"] == "registered" and watch.status()[0]["expires_in"] == 6
    lines = watch.update([_record(LAB, 16 | 4, NOW + 34)], {aor: 200}, NOW + 15)
    assert lines == [(logging.INFO, "SIP edge: trunk Lab Asterisk at 127.0.0.1:5070: re-registered as "
                                    "sip:alice@127.0.0.1:5070 (expires in 19 s)")]
    assert watch.status()[0]["registrations"] == 2
    # the next refresh is refused: failed with the code, the next attempt RETRY_S later; said once
    lead = timer_interval([LAB]) + 3
    failed = _record(LAB, 16, NOW + 30 + RETRY_S + lead)
    lines = watch.update([failed], {aor: 403}, NOW + 30)
    assert lines == [(logging.WARNING, "SIP edge: trunk Lab Asterisk at 127.0.0.1:5070: registration failed "
                                       f"(answered 403); next attempt in {RETRY_S} s")]
    state = watch.status()[0]
    assert (state["state"], state["code"], state["expires_in"]) == ("failed", 403, RETRY_S)
    assert watch.update([failed], {aor: 403}, NOW + 31) == []
    lines = watch.update([_record(LAB, 16, NOW + 200)], {aor: 0}, NOW + 100)  # the next one got no answer
    assert lines[0][0] == logging.WARNING and "registration failed (no answer)" in lines[0][1]
    assert watch.status()[0]["code"] is None
    lines = watch.update([_record(LAB, 16 | 1, NOW + 200)], {aor: 0}, NOW + 101)
    assert lines == [(logging.WARNING, "SIP edge: trunk Lab Asterisk at 127.0.0.1:5070: registration disabled")]
    assert watch.status()[0]["state"] == "disabled"


def test_a_restarted_edge_registers_again() -> None:
    watch = RegistrationWatch([LAB, CARRIER], "127.0.0.1:5060")
    watch.update([_record(LAB, 20, NOW + 20), _record(CARRIER, 20, NOW + 3600)],
                 {LAB.aor: 200, CARRIER.aor: 200}, NOW)
    assert [s["state"] for s in watch.status()] == ["registered", "registered"]
    lines = watch.update([_record(LAB, 0, 0), _record(CARRIER, 0, 0)], {}, NOW + 2)  # fresh records
    assert [s["state"] for s in watch.status()] == ["waiting", "waiting"]
    assert [level for level, _ in lines] == [logging.INFO, logging.INFO] and "registering again" in lines[0][1]
    watch.update([_record(LAB, 20, NOW + 23), _record(CARRIER, 20, NOW + 3603)], {}, NOW + 3)
    assert [s["registrations"] for s in watch.status()] == [2, 2]


class FakeRpc:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def call(self, method: str, *params: Any) -> Any:
        self.calls.append((method, params))
        return self.answers.get(method)


async def test_reload_then_read() -> None:
    rpc = FakeRpc({"uac.reg_dump": [_record(LAB, 20, NOW + 20), "junk"],
                   "htable.dump": [{"slot": [{"name": LAB.aor, "value": 200}]}]})
    records, codes = await read_registrations(rpc)
    assert [r["l_uuid"] for r in records] == [LAB.uuid] and codes == {LAB.aor: 200}
    rpc.calls.clear()
    watch = RegistrationWatch([LAB], "127.0.0.1:5060")
    lines = await reload_registrations(rpc, watch)
    assert [m for m, _ in rpc.calls] == ["uac.reg_reload", "uac.reg_dump", "htable.dump"]
    assert rpc.calls[2][1] == ("uacreg",)
    assert "registered" in lines[0][1] and watch.status()[0]["state"] == "registered"
    empty = FakeRpc({"uac.reg_dump": None, "htable.dump": None})
    assert await read_registrations(empty) == ([], {})


def test_the_edge_script_registers_only_with_trunks(tmp_path: Path) -> None:
    plain = kamailio_script(EdgeSettings("127.0.0.1", 5060), EdgeFiles(tmp_path), "/modules")
    assert '"uac.so"' not in plain and "TRUNK_INBOUND" not in plain and "reply_route" not in plain
    settings = EdgeSettings("0.0.0.0", 5060, advertise="203.0.113.7", trunks=(LAB, CARRIER))
    script = kamailio_script(settings, EdgeFiles(tmp_path), "/modules")
    loads = [line.split('"')[1] for line in script.splitlines() if line.startswith("loadmodule")]
    assert loads[-1] == "uac.so" and len(loads) == len(set(loads))  # after tm and rr, nothing loaded twice
    assert f'modparam("uac", "reg_db_url", "sqlite://{tmp_path / "edge.sqlite"}")' in script
    assert 'modparam("uac", "reg_contact_addr", "203.0.113.7:5060")' in script  # the advertised address
    invite = script[script.index('    if (is_method("INVITE")) {\n        if (!rl_check'):]
    assert invite.index("route(TRUNK_INBOUND);") < invite.index("record_route();") < invite.index("route(DISPATCH)")
    assert "route[TRUNK_INBOUND] {" in script and "event_route[tm:local-request] {" in script
    assert script.count("{") == script.count("}")


def test_kamailio_accepts_the_script_with_trunks(tmp_path: Path) -> None:
    binary, modules = find_kamailio()  # EdgeError, saying what to install, when make has not installed it
    assert Path(modules, "db_sqlite.so").exists(), "kamailio-sqlite-modules is not installed (make does it)"
    script = tmp_path / "kamailio.cfg"
    settings = EdgeSettings("127.0.0.1", 5060, trunks=(LAB, CARRIER))
    script.write_text(kamailio_script(settings, EdgeFiles(tmp_path), modules, "secret"))
    check = subprocess.run([binary, "-c", "-f", str(script)], capture_output=True, text=True, timeout=20)
    assert check.returncode == 0, check.stdout + check.stderr
