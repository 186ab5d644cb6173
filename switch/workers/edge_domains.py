"""SIP domains at the edge: softphone registration, who may call into a domain, and calls to registered phones.

Kamailio does all of it (the control plane never sees a REGISTER): `usrloc` and `registrar` keep the contacts in
the edge's database (`switch.workers.edge_db`), `auth` checks digest credentials, `nathelper` remembers the
address each REGISTER came from, `ipops` checks source addresses against the domains' IP access control lists.
What the script knows about the domains is the hash table `sipdom`, which `htable_rows` writes from the SIP API
(`switch.core.sip_domains`) and the edge reloads after every change:

    d:<domain>            the domain's SID (every request to a host that is not a key here is not a domain's)
    g:<domain>            "1" when the domain takes registrations
    r:<domain>:<user>     HA1 of a registration credential, realm = the domain name
    cc:<domain>           "1" when the domain has a calls credential list
    c:<domain>:<user>     HA1 of a calls credential
    n:<domain>:<i>        the i-th network (CIDR) of its calls IP access control lists, i = 0, 1, ...

Requests from outside to a domain (the script's `route[DOMAIN]`):
- REGISTER: digest challenge (401); a right answer saves the contacts (expiry, several per user, Expires: 0
  removes one, `*` all) with the address the REGISTER came from, so that calls reach a phone behind NAT; a wrong
  password or an unknown user is refused with 403, once (a phone retrying with the same wrong password gets 403
  every time, never a new challenge to loop on).  A domain without sip_registration answers 403.
- INVITE: allowed when the source address is in one of the domain's IP access control lists, or the caller is a
  phone registered on this domain (its From) calling from the address it registered from, or it answers a 407
  challenge with a calls credential; anything else gets 403 (or the 407 challenge when the domain has calls
  credentials).  An allowed
  INVITE goes to a worker like any inbound call, carrying `X-Softswitch-Domain`, `-Source` (its IP address),
  `-Auth` (ip, registration or credentials) and `-User` (the digest user); the edge removes these headers from
  every request that comes from outside, so a caller cannot forge them.
- OPTIONS (a phone's keep-alive) is answered 200; other methods 405.

INVITEs from the workers to a domain (`<Dial><Sip>sip:alice@domain`, `<Dial><Client>alice`) fork to every
registered contact of the AoR at once (`lookup` appends a branch per contact; the first 200 wins and the edge
cancels the rest); an AoR with no contact gets 480 Temporarily Unavailable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

HTABLE = "sipdom"
NAT_FLAG = 6  # branch flag: the contact registered from behind a NAT
PING_FLAG = 7  # branch flag: the edge sends it OPTIONS keep-alives
HEADER_PREFIX = "X-Softswitch-"
DOMAIN_MODULES = ("db_sqlite", "htable", "auth", "usrloc", "registrar", "nathelper", "ipops")


@dataclass(frozen=True)
class EdgeDomain:
    """One SIP domain as the edge needs it (passwords are turned into HA1 before they reach Kamailio)."""

    name: str
    sid: str
    registration: bool = False
    registration_users: Mapping[str, str] = field(default_factory=dict)  # username -> password
    call_users: Mapping[str, str] = field(default_factory=dict)
    call_networks: tuple[str, ...] = ()  # "a.b.c.d/nn"


@dataclass(frozen=True)
class RegistrarSettings:
    """The registrar's limits (`[edge]` of softswitch.toml)."""

    min_expires: int = 10
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 10  # contacts per user; a REGISTER that would pass it gets 503
    keepalive_interval: int = 30  # seconds between the edge's OPTIONS pings to contacts behind a NAT


def ha1(username: str, realm: str, password: str) -> str:
    """MD5(username:realm:password), what a digest server keeps instead of the password (RFC 2617)."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()


def htable_rows(domains: Iterable[EdgeDomain]) -> dict[str, str]:
    """The `sipdom` hash table for `domains` (see the module docstring for its keys)."""
    rows: dict[str, str] = {}
    for domain in domains:
        name = domain.name.lower()
        rows[f"d:{name}"] = domain.sid
        if domain.registration:
            rows[f"g:{name}"] = "1"
            for user, password in domain.registration_users.items():
                rows[f"r:{name}:{user}"] = ha1(user, name, password)
        if domain.call_users:
            rows[f"cc:{name}"] = "1"
            for user, password in domain.call_users.items():
                rows[f"c:{name}:{user}"] = ha1(user, name, password)
        for index, network in enumerate(domain.call_networks):
            rows[f"n:{name}:{index}"] = network
    return rows


# usrloc in write-back mode: REGISTERs change memory, and the timer process alone writes them to the file every
# USRLOC_TIMER_S (and at a clean stop).  Write-through (1) had every receiver process write its REGISTER itself, and
# Kamailio's SQLite driver fails a write that meets another's lock at once: 400 REGISTERs a second got ~50 % 500s.
USRLOC_DB_MODE = 2
USRLOC_TIMER_S = 1


def domain_modparams(db_url: str, keys_db_url: str, host: str, secret: str, reg: RegistrarSettings) -> str:
    """The modparam lines of the domain modules: registrations in the database at `db_url`, the domains' keys
    in the one at `keys_db_url`."""
    return f"""modparam("htable", "db_url", "{keys_db_url}")
modparam("htable", "htable", "{HTABLE}=>size=8;dbtable=htable;")
modparam("auth", "secret", "{secret}")
modparam("auth", "nonce_expire", 300)
modparam("usrloc", "db_url", "{db_url}")
modparam("usrloc", "db_mode", {USRLOC_DB_MODE})
modparam("usrloc", "use_domain", 1)
modparam("usrloc", "timer_interval", {USRLOC_TIMER_S})
modparam("usrloc", "nat_bflag", {NAT_FLAG})
modparam("registrar", "min_expires", {reg.min_expires})
modparam("registrar", "max_expires", {reg.max_expires})
modparam("registrar", "default_expires", {reg.default_expires})
modparam("registrar", "max_contacts", {reg.max_contacts})
modparam("registrar", "received_avp", "$avp(RECEIVED)")
modparam("registrar", "xavp_cfg", "regcfg")
modparam("nathelper", "received_avp", "$avp(RECEIVED)")
modparam("nathelper", "natping_interval", {reg.keepalive_interval})
modparam("nathelper", "ping_nated_only", 1)
modparam("nathelper", "sipping_bflag", {PING_FLAG})
modparam("nathelper", "sipping_from", "sip:keepalive@{host}")
"""


def domain_routes() -> str:
    """`route[DOMAIN]` (requests from outside to a domain), `route[REGISTRAR]` and `route[TO_PHONES]` (INVITEs
    from workers to a domain).  `$var(dom)` is the lower-cased Request-URI host, set by the caller."""
    return f"""route[DOMAIN] {{
    force_rport();
    if (is_method("REGISTER")) {{
        route(REGISTRAR);
        exit;
    }}
    if (is_method("OPTIONS")) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (!is_method("INVITE")) {{
        append_to_reply("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER\\r\\n");
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    $var(auth) = "";
    $var(user) = "";
    $var(i) = 0;
    while ($var(auth) == "" && $sht({HTABLE}=>n:$var(dom):$var(i)) != $null) {{
        $var(net) = $sht({HTABLE}=>n:$var(dom):$var(i));
        if (is_in_subnet("$si", "$var(net)")) {{
            $var(auth) = "ip";
        }}
        $var(i) = $var(i) + 1;
    }}
    if ($var(auth) == "") {{
        if (proto == UDP) {{
            $xavp(regcfg=>match_received) = "sip:" + $si + ":" + $sp;
        }} else {{
            $xavp(regcfg=>match_received) = "sip:" + $si + ":" + $sp + ";transport=" + $pr;
        }}
        if ($(fd{{s.tolower}}) == $var(dom) && registered("location", "$fu", "2")) {{
            $var(auth) = "registration";
            $var(user) = $fU;
        }}
    }}
    if ($var(auth) == "" && $sht({HTABLE}=>cc:$var(dom)) != $null) {{
        if (!is_present_hf("Proxy-Authorization")) {{
            proxy_challenge("$var(dom)", "0");
            exit;
        }}
        if ($sht({HTABLE}=>c:$var(dom):$au) == $null) {{
            xlog("L_NOTICE", "edge: INVITE to $var(dom) from $si: unknown calls user '$au': 403\\n");
            sl_send_reply("403", "Forbidden");
            exit;
        }}
        $var(ha1) = $sht({HTABLE}=>c:$var(dom):$au);
        if (!pv_proxy_authenticate("$var(dom)", "$var(ha1)", "1")) {{
            $var(rc) = $rc;
            if ($var(rc) == -4 || $var(rc) == -5 || $var(rc) == -6) {{
                proxy_challenge("$var(dom)", "0");
                exit;
            }}
            xlog("L_NOTICE", "edge: INVITE to $var(dom) from $si: wrong password for '$au' ($var(rc)): 403\\n");
            sl_send_reply("403", "Forbidden");
            exit;
        }}
        $var(auth) = "credentials";
        $var(user) = $au;
        consume_credentials();
    }}
    if ($var(auth) == "") {{
        xlog("L_NOTICE", "edge: INVITE to $var(dom) from $si:$sp: no ACL, registration or credentials: 403\\n");
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    if (nat_uac_test("19")) {{
        fix_nated_contact();
    }}
    append_hf("{HEADER_PREFIX}Domain: $var(dom)\\r\\n");
    append_hf("{HEADER_PREFIX}Source: $si\\r\\n");
    append_hf("{HEADER_PREFIX}Auth: $var(auth)\\r\\n");
    if ($var(user) != "") {{
        append_hf("{HEADER_PREFIX}User: $var(user)\\r\\n");
    }}
}}

route[REGISTRAR] {{
    if ($sht({HTABLE}=>g:$var(dom)) == $null) {{
        xlog("L_NOTICE", "edge: REGISTER for $tu from $si: $var(dom) takes no registrations: 403\\n");
        sl_send_reply("403", "Registration Not Enabled");
        exit;
    }}
    if (!is_present_hf("Authorization")) {{
        www_challenge("$var(dom)", "0");
        exit;
    }}
    if ($sht({HTABLE}=>r:$var(dom):$au) == $null) {{
        xlog("L_NOTICE", "edge: REGISTER for $tu from $si: unknown user '$au': 403\\n");
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    $var(ha1) = $sht({HTABLE}=>r:$var(dom):$au);
    if (!pv_www_authenticate("$var(dom)", "$var(ha1)", "1")) {{
        $var(rc) = $rc;
        if ($var(rc) == -4 || $var(rc) == -5 || $var(rc) == -6) {{
            www_challenge("$var(dom)", "0");
            exit;
        }}
        xlog("L_NOTICE", "edge: REGISTER for $tu from $si: wrong password for '$au' ($var(rc)): 403\\n");
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    if ($au != $tU) {{
        xlog("L_NOTICE", "edge: REGISTER for $tu from $si authenticated as '$au': 403\\n");
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    consume_credentials();
    if (nat_uac_test("19")) {{
        setbflag({NAT_FLAG});
        setbflag({PING_FLAG});
    }}
    fix_nated_register();
    if (!save("location")) {{
        sl_reply_error();
    }}
    exit;
}}

route[TO_PHONES] {{
    if (!lookup("location")) {{
        xlog("L_INFO", "edge: $ru has no registered contact: 480\\n");
        send_reply("480", "Temporarily Unavailable");
        exit;
    }}
    record_route();
    route(RELAY);
}}
"""
