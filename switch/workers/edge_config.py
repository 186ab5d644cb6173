"""The SIP edge's configuration: a Kamailio script and its dispatcher list, written from softswitch.toml.

Kamailio owns the public SIP address (UDP and TCP, and TLS on its own port when `[edge]` names a certificate)
and the workers listen on loopback ports behind it (ARCHITECTURE.md); requests that came over TCP or TLS make
their connection an alias of the sender's Via address, so the in-dialog requests toward it reuse it.
What the script does, in order, for every request:

1. size (`max_message_bytes`, else 513), Max-Forwards (483) and `sanity` checks (sanity answers by itself);
2. requests that do not come from a worker pass `pike`, a per-source-address rate limit (503 + Retry-After);
3. in-dialog requests follow their Route set (`loose_route`), CANCEL and ACK their transaction;
4. new requests from a worker (outbound legs) are record-routed and relayed to their Request-URI: one address
   faces trunks and phones, and their in-dialog requests come back through the edge;
5. new requests from outside: INVITEs over the global `max_cps` (the `ratelimit` module) get 503 + Retry-After;
   the rest are record-routed and dispatched round robin to the active workers (dispatcher set 1; the control
   plane marks a worker inactive while it has no free leg, `switch.workers.edge`).  A worker that answers 503 or
   sends nothing within `worker_timeout_ms` is skipped for the next one; when none is left the caller gets
   503 with Retry-After.  An INVITE to the Contact of a trunk's registration first passes `route[TRUNK_INBOUND]`
   (the trunk's `addresses`, else 403; `switch.workers.edge_trunks`, which also keeps the registrations).

The worker set is a file (`dispatcher.list`) the control plane rewrites; over Kamailio's JSON-RPC datagram
socket it reloads the file when a worker comes or goes (`reload_delta`: at most once a second) and switches a
worker active or inactive in place when its free legs change.  Nothing here starts a process: that is
`switch.workers.edge`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from switch.workers.edge_db import db_url
from switch.workers.edge_domains import (
    DOMAIN_MODULES,
    HEADER_PREFIX,
    RegistrarSettings,
    domain_modparams,
    domain_routes,
)
from switch.workers.edge_trunks import TrunkRegistration, trunk_script

MODULES = ("jsonrpcs", "kex", "corex", "tm", "tmx", "sl", "rr", "pv", "maxfwd", "textops", "siputils", "xlog",
           "sanity", "pike", "dispatcher", "ratelimit", *DOMAIN_MODULES)
WORKER_SET = 1
INACTIVE = 1  # the dispatcher list's flags column: DS_INACTIVE_DST


@dataclass(frozen=True)
class EdgeSettings:
    """What the edge is told by softswitch.toml's `[edge]` table (defaults in `switch.core.config`)."""

    host: str  # the public SIP address Kamailio binds (UDP and TCP)
    port: int
    advertise: str | None = None  # the address Record-Route and Via carry behind NAT
    max_cps: int = 400  # new inbound INVITEs per second for the whole switch, beyond it 503
    per_source_rps: int = 2000  # requests per second from one source address (pike), beyond it 503
    max_message_bytes: int = 16384
    worker_timeout_ms: int = 2000  # a worker that sends no response within this is skipped for the next one
    retry_after_s: int = 5
    # Kamailio's receiver processes.  UDP: one, so each transaction's responses are relayed in the order they
    # came (two could relay a worker's 200 before the 180 sent a millisecond earlier, and tm then drops the 180:
    # about 1 call in 300 lost its ringing).  One process relays 500 calls/s on this machine at a fraction of a
    # core.  TCP: a connection is read by one process at a time, so two keep order and share the connections.
    udp_children: int = 1
    tcp_children: int = 2
    tcp_max_connections: int = 4096
    tls_port: int = 0  # SIP over TLS on host:tls_port (0: none), with these PEM files
    tls_certificate: str = ""
    tls_private_key: str = ""
    registrar: RegistrarSettings = field(default_factory=RegistrarSettings)
    trunks: tuple[TrunkRegistration, ...] = ()  # the trunks the edge registers with (switch.workers.edge_trunks)


@dataclass(frozen=True)
class EdgeFiles:
    """Where the edge's files live: the data dir's `edge/`, and the RPC sockets in `sockets` (a short path of
    its own: a unix socket's path is limited to 107 bytes, and data dirs can be deep)."""

    directory: Path
    sockets: Path | None = None

    @property
    def script(self) -> Path:
        return self.directory / "kamailio.cfg"

    @property
    def dispatcher(self) -> Path:
        return self.directory / "dispatcher.list"

    @property
    def rpc_socket(self) -> Path:
        return (self.sockets or self.directory) / "rpc.sock"

    @property
    def log(self) -> Path:
        return self.directory / "kamailio.log"

    @property
    def tls_config(self) -> Path:
        return self.directory / "tls.cfg"

    @property
    def database(self) -> Path:
        """Registrations and trunk registrations (`switch.workers.edge_db`)."""
        return self.directory / "edge.sqlite"

    @property
    def domains_database(self) -> Path:
        """The SIP domains' keys (`switch.workers.edge_db`)."""
        return self.directory / "domains.sqlite"

    @property
    def pid(self) -> Path:
        """Kamailio's process group while it runs: a switch that was killed leaves it for the next start."""
        return self.directory / "kamailio.pid"


def tls_config(settings: EdgeSettings) -> str:
    """The tls module's profiles: the edge's certificate for every TLS connection it accepts; clients are not
    asked for one (phones and trunks authenticate in SIP), and peers the edge connects to are not verified
    (they are reached at the addresses their own requests came from)."""
    return f"""# written by softswitch from softswitch.toml on every start: edit [edge] there, not this file
[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
certificate = {settings.tls_certificate}
private_key = {settings.tls_private_key}

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
"""


def worker_uri(host: str, port: int) -> str:
    """The dispatcher destination of a worker listening on `host:port`: UDP, named, so that `ds_is_from_list`
    (which compares the protocol too) knows the worker's own requests."""
    return f"sip:{host}:{port};transport=udp"


def dispatcher_list(workers: Iterable[tuple[str, bool]]) -> str:
    """The dispatcher list for `workers` ((uri, has a free leg) pairs): one line each in set 1; a worker without
    a free leg is listed inactive, so round robin passes it by while `ds_is_from_list` still knows it."""
    lines = ["# written by softswitch: the workers behind the SIP edge (set, uri, flags, priority)"]
    lines += [f"{WORKER_SET} {uri} {0 if active else INACTIVE} 0" for uri, active in workers]
    return "\n".join(lines) + "\n"


def kamailio_script(settings: EdgeSettings, files: EdgeFiles, module_path: str, secret: str = "") -> str:
    """The Kamailio configuration for `settings`, its files in `files`, modules loaded from `module_path`;
    `secret` signs the digest nonces (random for each start, so no nonce outlives its edge)."""
    s = settings
    host = s.advertise or s.host
    advertise = f" advertise {s.advertise}:{s.port}" if s.advertise else ""
    # tls first: it sets up OpenSSL's memory before any other module can touch it
    trunks = trunk_script(s.trunks, MODULES, db_url(files.database), s.host, s.advertise, s.port)
    loads = "\n".join(f'loadmodule "{name}.so"' for name in (("tls",) if s.tls_port else ()) + MODULES + trunks.modules)
    tls_listen = (f"enable_tls=yes\nlisten=tls:{s.host}:{s.tls_port}"
                  f"{f' advertise {s.advertise}:{s.tls_port}' if s.advertise else ''}\n" if s.tls_port else "")
    tls_params = f'modparam("tls", "config", "{files.tls_config}")\n' if s.tls_port else ""
    pike_unit = 2
    return f"""#!KAMAILIO
# written by softswitch from softswitch.toml on every start: edit [edge] there, not this file

debug=2
log_stderror=yes
log_prefix="{{$mt $hdr(CSeq) $ci}} "
memdbg=5
memlog=5
children={s.udp_children}
tcp_children={s.tcp_children}
auto_aliases=no
listen=udp:{s.host}:{s.port}{advertise}
listen=tcp:{s.host}:{s.port}{advertise}
{tls_listen}tcp_max_connections={s.tcp_max_connections}
tcp_connection_lifetime=3605
tcp_accept_no_cl=yes
dns=no
rev_dns=no
use_dns_cache=no
server_header="Server: softswitch-edge"
user_agent_header="User-Agent: softswitch-edge"
run_dir="{files.directory}"

mpath="{module_path}"
{loads}

{tls_params}modparam("jsonrpcs", "transport", 4)
modparam("jsonrpcs", "dgram_socket", "{files.rpc_socket}")
modparam("tm", "failure_reply_mode", 3)
modparam("tm", "auto_inv_100", 1)
modparam("rr", "enable_full_lr", 0)
modparam("rr", "append_fromtag", 1)
modparam("sanity", "autodrop", 1)
modparam("pike", "sampling_time_unit", {pike_unit})
modparam("pike", "reqs_density_per_unit", {s.per_source_rps * pike_unit})
modparam("pike", "remove_latency", 4)
modparam("ratelimit", "timer_interval", 1)
modparam("ratelimit", "pipe", "1:TAILDROP:{s.max_cps}")
modparam("dispatcher", "list_file", "{files.dispatcher}")
modparam("dispatcher", "flags", 2)
modparam("dispatcher", "ds_ping_interval", 0)
modparam("dispatcher", "reload_delta", 1)
{domain_modparams(db_url(files.database), db_url(files.domains_database), host, secret or "softswitch",
                  s.registrar)}{trunks.modparams}
request_route {{
    if ($ml > {s.max_message_bytes}) {{
        sl_send_reply("513", "Message Too Large");
        exit;
    }}
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (!sanity_check("17895", "7")) {{
        xlog("L_NOTICE", "edge: malformed $rm from $si:$sp dropped or refused by sanity\\n");
        exit;
    }}
    $var(worker) = 0;
    if (ds_is_from_list("{WORKER_SET}", "0")) {{
        $var(worker) = 1;
    }}
    if ($var(worker) == 0 && (proto == TCP || proto == TLS)) {{
        force_tcp_alias();  # requests to the sender's Via address (its Contact) reuse this connection
    }}
    if ($var(worker) == 0 && !pike_check_req()) {{
        xlog("L_WARN", "edge: $si is over {s.per_source_rps} requests/s: $rm refused\\n");
        if (!is_method("ACK")) {{
            append_to_reply("Retry-After: {s.retry_after_s}\\r\\n");
            sl_send_reply("503", "Rate Limited");
        }}
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            route(RELAY);
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not Here");
        exit;
    }}
    t_check_trans();
    $var(dom) = $(rd{{s.tolower}});
    if ($var(worker) == 1) {{
        loose_route();
        if (is_method("INVITE") && $sht(sipdom=>d:$var(dom)) != $null) {{
            route(TO_PHONES);
        }}
        if (is_method("INVITE|SUBSCRIBE|REFER")) {{
            record_route();
        }}
        route(RELAY);
        exit;
    }}
    if (loose_route()) {{
        sl_send_reply("403", "No Relaying");
        exit;
    }}
    if (is_method("ACK")) {{
        exit;
    }}
    remove_hf_re("^{HEADER_PREFIX}");
    if ($sht(sipdom=>d:$var(dom)) != $null) {{
        route(DOMAIN);
    }}
    if (is_method("INVITE")) {{
        if (!rl_check("1")) {{
            xlog("L_WARN", "edge: over {s.max_cps} new calls/s: INVITE from $si refused\\n");
            append_to_reply("Retry-After: {s.retry_after_s}\\r\\n");
            sl_send_reply("503", "Over Capacity");
            exit;
        }}
{trunks.invite}        record_route();
    }}
    route(DISPATCH);
}}

route[DISPATCH] {{
    if (!ds_select_dst("{WORKER_SET}", "4")) {{
        xlog("L_WARN", "edge: no worker has a free leg: $rm from $si refused\\n");
        append_to_reply("Retry-After: {s.retry_after_s}\\r\\n");
        send_reply("503", "All Workers Busy");
        exit;
    }}
    t_set_fr(0, {s.worker_timeout_ms});
    t_on_failure("NEXT_WORKER");
    route(RELAY);
}}

{domain_routes()}{trunks.routes}
route[RELAY] {{
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}

failure_route[NEXT_WORKER] {{
    if (t_is_canceled()) {{
        exit;
    }}
    if (t_check_status("503") || (t_branch_timeout() && !t_branch_replied())) {{
        if (ds_next_dst()) {{
            xlog("L_NOTICE", "edge: worker $T_rpl($rs) or silent: $rm tried on $du\\n");
            t_set_fr(0, {s.worker_timeout_ms});
            t_on_failure("NEXT_WORKER");
            route(RELAY);
            exit;
        }}
        append_to_reply("Retry-After: {s.retry_after_s}\\r\\n");
        t_reply("503", "All Workers Busy");
    }}
}}
"""
