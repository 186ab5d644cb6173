"""Configuration: a TOML file, the environment and command-line flags, in that order of precedence.

Example (`softswitch.toml`)::

    [server]
    http = "127.0.0.1:8080"
    sip = "127.0.0.1:5060"
    workers = "auto"          # the default: an elastic pool (tuned by [workers]); or a number: a fixed pool
    data_dir = "./var"
    drain_seconds = 30        # on SIGTERM: no new calls; live ones may go on this long, then are hung up
    metrics = true            # GET /metrics (Prometheus); false: 404, and no counting at all
    metrics_auth = false      # /metrics needs the account's credentials; default: not on a loopback http address
    call_events = true        # record every webhook and TwiML request of a call (its Events.json); false: none
    sip_trace = false         # keep every SIP message of each call: GET .../Calls/{Sid}/SipTrace.json

    [workers]                 # optional, with workers = "auto" (switch.workers.scaling)
    min = 1                   # workers always running (0 .. min-1)
    max = "auto"              # the most workers; auto: one per CPU core, or enough for max_calls legs
    max_calls = 100           # call legs to plan for when max = "auto" (a worker of the PyPI wheel holds 4)
    spare_calls = 2           # start another worker when fewer free legs than this remain
    idle_timeout = 60         # seconds an extra worker may hold no leg before it is stopped

    [account]                 # or SOFTSWITCH_ACCOUNT_SID / SOFTSWITCH_AUTH_TOKEN
    sid = "AC0123456789abcdef0123456789abcdef"
    auth_token = "0123456789abcdef0123456789abcdef"

    [exotel]                  # optional; each defaults to the account SID / auth token above
    sid = "myexotelsid"
    api_key = "key"
    api_token = "token"

    [media]                   # optional: where RTP binds and what SDP and Contact carry
    address = "127.0.0.1"     # RTP's bind address and SDP's c=; default: the [server] sip host
    external_address = "203.0.113.7"  # behind NAT: SDP's c= and Contact carry this instead; default none
    rtp_ports = "10000-20000" # UDP ports for RTP and RTCP, two per call leg (the default)
    webrtc_addresses = ["192.0.2.10"]  # where browsers' WebRTC media is offered (media.webrtc); default: the
                              # address above if it is one IP address, else every interface but loopback

    [edge]                    # Kamailio in front of the workers (switch.workers.edge)
    enabled = true            # false: worker 0 binds the [server] sip address itself, as without an edge
    worker_port = 5160        # workers listen on 127.0.0.1 from this port up (default: the sip port + 100)
    max_cps = 400             # new inbound calls per second for the whole switch; beyond, 503 + Retry-After
    per_source_rps = 2000     # SIP requests per second from one address (pike); beyond, 503 + Retry-After
    max_message_bytes = 16384 # larger requests get 513
    worker_timeout_ms = 2000  # a worker silent this long after an INVITE is passed over for the next one
    tls_certificate = "/etc/softswitch/cert.pem"  # with tls_private_key: SIP over TLS on tls_port too
    tls_private_key = "/etc/softswitch/key.pem"   # (PEM files; the certificate may carry its chain)
    tls_port = 5061           # default: the sip port + 1

    [speech]                  # optional: the recognizer of <Gather input="speech"> and <Record transcribe>
    engine = "pocketsphinx"   # the default (offline, en-US); or "http": an OpenAI-style transcription endpoint
    url = "http://127.0.0.1:8000/v1/audio/transcriptions"  # with engine = "http" (switch.core.config_speech)
    model = "whisper-1"       # the `model` posted with the audio; api_key = "..." is sent as a Bearer token
    timeout = 30              # seconds a transcription request may take

    [[trunks]]
    name = "lab-asterisk"
    uri = "sip:127.0.0.1:5070"
    username = "softswitch"   # optional digest credentials
    password = "secret"
    prefixes = ["+1", "1"]    # numbers routed here; empty or absent means every number
    register = true           # the edge keeps a registration with the trunk (needs username, password and
                              # [edge]; switch.workers.edge_trunks); its state is in /healthz edge.trunks
    registrar = "sip.example.com:5060"  # where the REGISTERs go, host[:port] (UDP); default: the uri's host:port
    expires = 3600            # the registration's lifetime in seconds, 10 to 86400 (refreshed before it ends)
    addresses = ["203.0.113.0/24"]  # with register: calls to the registration only from these networks (CIDR
                              # or single addresses), else 403; empty or absent: from anywhere

    [[numbers]]
    number = "+15550100"
    voice_url = "http://127.0.0.1:9000/voice"
    voice_method = "POST"
    status_callback = "http://127.0.0.1:9000/status"

    [[conversation_services]] # a Frontline-style service for <Connect><Conversation> (switch.core.conversations)
    sid = "IS0123456789abcdef0123456789abcdef"
    friendly_name = "Frontline"
    routing_url = "http://127.0.0.1:9000/routing"   # custom routing; or pool routing:
    # pool = ["alice", "bob"]                       # round robin among these identities not on a call
    workers = { alice = "sip:alice@127.0.0.1:5062", bob = "sip:bob@127.0.0.1:5064" }

The environment overrides the file (switch.core.config_env, applied by the command line before its flags):
SOFTSWITCH_MEDIA_ADDRESS, SOFTSWITCH_EXTERNAL_ADDRESS and SOFTSWITCH_RTP_PORTS stand for [media] address,
external_address and rtp_ports; SOFTSWITCH_DRAIN_SECONDS for [server] drain_seconds.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switch.core.config_edge import EdgeConfig as EdgeConfig, load_edge
from switch.core.config_schema import check_document
from switch.core.config_speech import SpeechConfig, load_speech
from switch.core.config_trunks import Trunk as Trunk, load_trunks
from switch.core.errors import ConfigError
from switch.core.logs import FORMATS, LEVELS
from switch.core.model import new_sid
from switch.workers.scaling import Scaling
from switch.workers.sipmsg import is_ip

ACCOUNT_SID_RE = re.compile(r"^AC[0-9a-f]{32}$")
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$")
WILDCARDS = ("0.0.0.0", "::", "")
SERVICE_SID_RE = re.compile(r"^IS[0-9a-f]{32}$")


def parse_hostport(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what}: expected HOST:PORT, got {value!r}")
    return host, int(port)


def parse_port_range(value: str, what: str) -> tuple[int, int]:
    """`FIRST-LAST` (e.g. "10000-20000") as a pair, FIRST below LAST."""
    first, sep, last = value.replace(" ", "").partition("-")
    if not sep or not first.isdigit() or not last.isdigit() or not 0 < int(first) < int(last) < 65536:
        raise ConfigError(f"{what}: expected FIRST-LAST with 0 < FIRST < LAST < 65536, got {value!r}")
    return int(first), int(last)


def is_wildcard(host: str) -> bool:
    """True for an address that means "every interface" (which no peer can send to)."""
    return host in WILDCARDS


def default_interface_address() -> str:
    """The address of the interface the default route leaves by, 127.0.0.1 without one.

    A UDP socket's connect() only picks a route: nothing is sent.  pjsip picks the same address for its Contact
    when it is bound to every interface.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never reached, only routed
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def _ip_address(value: Any, what: str) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise ConfigError(f"{what}: expected an IP address, got {value!r}") from None


@dataclass(frozen=True)
class Number:
    """A phone number (or SIP user) the switch answers, with the app that handles it."""

    number: str
    voice_url: str | None = None
    voice_method: str = "POST"
    voice_fallback_url: str | None = None
    voice_fallback_method: str = "POST"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    sid: str | None = None  # the IncomingPhoneNumber SID (PN...), once registered


@dataclass(frozen=True)
class ConversationServiceConfig:
    """A `[[conversation_services]]` entry: a Conversations service, its routing and its workers' SIP URIs.

    Routing of autocreated conversations is custom (`routing_url` is POSTed ConversationSid and the customer's
    address; the app adds a worker participant through the REST API) or by pool (`pool`: round robin among
    these identities not on a call), never both.  `workers` maps a worker identity to the SIP URI it is dialed
    at; a participant's attributes `{"sip_uri": ...}` override it.
    """

    sid: str
    friendly_name: str | None = None
    routing_url: str | None = None
    pool: tuple[str, ...] = ()
    workers: dict[str, str] = field(default_factory=dict)


def _conversation_service(entry: Any) -> ConversationServiceConfig:
    if not isinstance(entry, dict):
        raise ConfigError("[[conversation_services]] entries must be tables")
    sid = str(entry.get("sid", ""))
    if not SERVICE_SID_RE.match(sid):
        raise ConfigError(f"conversation service sid must be IS followed by 32 lowercase hex digits, got {sid!r}")
    workers = entry.get("workers", {})
    pool = entry.get("pool", [])
    if not isinstance(workers, dict) or not all(isinstance(v, str) for v in workers.values()):
        raise ConfigError(f"conversation service {sid}: workers must map identities to SIP URIs")
    if not isinstance(pool, list) or not all(isinstance(v, str) for v in pool):
        raise ConfigError(f"conversation service {sid}: pool must be a list of worker identities")
    for identity, uri in workers.items():
        if not uri.startswith(("sip:", "sips:")):
            raise ConfigError(f"conversation service {sid}: worker {identity}: {uri!r} is not a SIP URI")
    missing = [i for i in pool if i not in workers]
    if missing:
        raise ConfigError(f"conversation service {sid}: pool identities without a SIP URI in workers: {missing}")
    routing_url = entry.get("routing_url")
    if routing_url is not None and pool:
        raise ConfigError(f"conversation service {sid}: give routing_url (custom routing) or pool, not both")
    return ConversationServiceConfig(sid=sid, friendly_name=entry.get("friendly_name"),
                                     routing_url=None if routing_url is None else str(routing_url),
                                     pool=tuple(pool), workers=dict(workers))


@dataclass
class Config:
    """Everything `softswitch serve` needs."""

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    workers: int | Scaling = field(default_factory=Scaling)  # an int: a fixed pool of that many workers
    data_dir: Path = Path("var")
    public_url: str | None = None
    drain_seconds: float = 30.0  # [server] drain_seconds: how long live calls may go on after SIGTERM
    metrics: bool = True  # [server] metrics: serve GET /metrics and count (switch.core.metrics)
    metrics_auth: bool | None = None  # [server] metrics_auth; None: only when http is not on a loopback address
    call_events: bool = True  # [server] call_events: record each call's requests (Calls/{Sid}/Events.json)
    sip_trace: bool = False  # [server] sip_trace: the workers report every SIP message (a call's SipTrace.json)
    account_sid: str | None = None
    auth_token: str | None = None
    trunks: list[Trunk] = field(default_factory=list)
    numbers: list[Number] = field(default_factory=list)
    twiml_fetch_timeout: float = 15.0  # Twilio's: a slower app is error 11200
    webhook_timeout: float = 10.0
    webhook_retries: int = 3
    pj_log_level: int = 1  # [server] pj_log_level (0-6) or --pj-log-level: pjsip's own log in the workers
    log_level: str = "info"  # [server] log_level or --log-level: debug, info, warning, error
    log_format: str = "text"  # [server] log_format or --log-format: text, or json (one object a line)
    # [exotel]: the Exotel edge's account SID, API key and token; None means the Twilio account SID/auth token.
    exotel_sid: str | None = None
    exotel_api_key: str | None = None
    exotel_api_token: str | None = None
    # [recordings] public = true: recording media (.wav/.mp3) is served without credentials, as Twilio's is
    # unless "HTTP basic authentication for media" is on; the resources themselves always need them.
    recordings_public: bool = False
    speech: SpeechConfig = field(default_factory=SpeechConfig)  # [speech] (switch.core.config_speech)
    conversation_services: list[ConversationServiceConfig] = field(default_factory=list)
    # [media]: RTP's bind address and SDP's c= (None: the SIP host), the address SDP and Contact carry instead
    # behind NAT (None: no NAT), and the UDP port range RTP and RTCP take.
    media_address: str | None = None
    external_address: str | None = None
    rtp_ports: tuple[int, int] = (10000, 20000)
    webrtc_addresses: tuple[str, ...] | None = None  # [media] webrtc_addresses (see `browser_addresses`)
    edge: EdgeConfig = field(default_factory=EdgeConfig)

    @property
    def browser_addresses(self) -> tuple[str, ...]:
        """Where browsers' WebRTC media is offered: [media] webrtc_addresses, else the RTP address when it is one
        IP address, else () (every interface but loopback)."""
        if self.webrtc_addresses is not None:
            return self.webrtc_addresses
        return () if is_wildcard(self.rtp_address) or not is_ip(self.rtp_address) else (self.rtp_address,)

    @property
    def worker_sip(self) -> tuple[str, int]:
        """Where worker 0 binds SIP (worker i: the port + i): behind the edge, loopback from [edge] worker_port;
        without it, the [server] sip address itself."""
        if not self.edge.enabled:
            return self.sip_host, self.sip_port
        return "127.0.0.1", self.edge.worker_port or self.sip_port + 100

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"

    @property
    def rtp_address(self) -> str:
        """Where RTP binds and what SDP's c= carries (without an external address): [media] address or the SIP
        host.  A wildcard binds every interface, and SDP then carries the default interface's address."""
        return self.media_address or self.sip_host

    @property
    def advertised_host(self) -> str:
        """The host of our From and Contact URIs: the external address, else the SIP host, else the media
        address, else (both wildcards) the default interface's address; never a wildcard."""
        for host in (self.external_address, self.sip_host, self.media_address):
            if host is not None and not is_wildcard(host):
                return host
        return default_interface_address()


def _table(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def parse_workers(value: Any, what: str) -> int | str:
    """`"auto"` or a whole number of workers (at least 1)."""
    if value == "auto":
        return "auto"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ConfigError(f'{what} must be "auto" (an elastic pool) or a whole number of workers from 1, not {value!r}')


_WORKER_INTS = ("min", "max_calls", "spare_calls")


def load_workers(value: Any, tuning: dict[str, Any]) -> int | Scaling:
    """`[server] workers` ("auto" or N) with its `[workers]` tuning, into a fixed count or a `Scaling`."""
    mode = parse_workers(value, "server.workers")
    unknown = set(tuning) - {*_WORKER_INTS, "max", "idle_timeout"}
    if unknown:
        raise ConfigError(f"[workers]: unknown keys {sorted(unknown)}; known: min, max, max_calls, spare_calls, "
                          "idle_timeout")
    if isinstance(mode, int):
        if tuning:
            raise ConfigError(f'[workers] tunes workers = "auto"; with a fixed pool (workers = {mode}) remove it')
        return mode
    args: dict[str, Any] = {}
    for key in _WORKER_INTS:
        if key in tuning:
            if isinstance(tuning[key], bool) or not isinstance(tuning[key], int):
                raise ConfigError(f"workers.{key} must be a whole number, not {tuning[key]!r}")
            args[key] = tuning[key]
    if "max" in tuning and tuning["max"] != "auto":
        args["max"] = parse_workers(tuning["max"], "workers.max")
    if "idle_timeout" in tuning:
        idle = tuning["idle_timeout"]
        if isinstance(idle, bool) or not isinstance(idle, int | float):
            raise ConfigError(f"workers.idle_timeout must be a number of seconds, not {idle!r}")
        args["idle_timeout"] = float(idle)
    try:
        return Scaling(**args)
    except ValueError as exc:
        raise ConfigError(f"[workers]: {exc}") from None


def parse_seconds(value: Any, what: str) -> float:
    """A number of seconds from 0 to a day (a TOML number, or its text from the environment)."""
    try:
        seconds = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 <= seconds <= 86400:
        raise ConfigError(f"{what} must be a number of seconds from 0 to 86400, not {value!r}")
    return seconds


def _load_logging(cfg: Config, server: dict[str, Any]) -> None:
    cfg.pj_log_level = server.get("pj_log_level", cfg.pj_log_level)
    if not 0 <= cfg.pj_log_level <= 6:
        raise ConfigError(f"server.pj_log_level must be from 0 (none) to 6 (everything), not {cfg.pj_log_level}")
    for key, allowed in (("log_level", LEVELS), ("log_format", FORMATS)):
        if server.get(key, getattr(cfg, key)) not in allowed:
            raise ConfigError(f"server.{key} must be one of {', '.join(allowed)}, not {server[key]!r}")
        setattr(cfg, key, server.get(key, getattr(cfg, key)))


def _load_media(cfg: Config, media: dict[str, Any]) -> None:
    if "address" in media:
        cfg.media_address = _ip_address(media["address"], "media.address")
    if "webrtc_addresses" in media:
        cfg.webrtc_addresses = tuple(_ip_address(a, "media.webrtc_addresses") for a in media["webrtc_addresses"])
    if "external_address" in media:
        external = str(media["external_address"])
        if is_wildcard(external) or not (HOSTNAME_RE.match(external) or is_ip(external)):
            raise ConfigError(f"media.external_address: expected the IP address or host name peers reach us at, "
                              f"got {media['external_address']!r}")
        cfg.external_address = external
    if "rtp_ports" in media:
        cfg.rtp_ports = parse_port_range(str(media["rtp_ports"]), "media.rtp_ports")


def load_config(path: Path | None) -> Config:
    """Read `path` (if given) into a Config; an unknown table or key, a value of the wrong type or a bad value is
    a ConfigError of one line naming the file and the key (switch.core.config_schema lists every key)."""
    try:
        return _load_config_file(path)
    except ConfigError as exc:
        if path is None or str(exc).startswith(f"{path}: "):
            raise
        raise ConfigError(f"{path}: {exc}") from None


def _load_config_file(path: Path | None) -> Config:
    cfg = Config()
    if path is None:
        return cfg
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    check_document(raw)
    server = _table(raw, "server")
    if "http" in server:
        cfg.http_host, cfg.http_port = parse_hostport(str(server["http"]), "server.http")
    if "sip" in server:
        cfg.sip_host, cfg.sip_port = parse_hostport(str(server["sip"]), "server.sip")
    cfg.workers = load_workers(server.get("workers", "auto"), _table(raw, "workers"))
    if "data_dir" in server:
        cfg.data_dir = Path(str(server["data_dir"]))
    cfg.public_url = server.get("public_url")
    _load_logging(cfg, server)
    if "drain_seconds" in server:
        cfg.drain_seconds = parse_seconds(server["drain_seconds"], "server.drain_seconds")
    cfg.metrics = server.get("metrics", cfg.metrics)
    cfg.metrics_auth = server.get("metrics_auth", cfg.metrics_auth)
    cfg.call_events = server.get("call_events", cfg.call_events)
    cfg.sip_trace = server.get("sip_trace", cfg.sip_trace)
    account = _table(raw, "account")
    cfg.account_sid = account.get("sid")
    cfg.auth_token = account.get("auth_token")
    cfg.twiml_fetch_timeout = float(_table(raw, "twiml").get("fetch_timeout", cfg.twiml_fetch_timeout))
    hooks = _table(raw, "webhooks")
    cfg.webhook_timeout = float(hooks.get("timeout", cfg.webhook_timeout))
    cfg.webhook_retries = int(hooks.get("retries", cfg.webhook_retries))
    public = _table(raw, "recordings").get("public", False)
    if not isinstance(public, bool):
        raise ConfigError(f"recordings.public must be true or false, not {public!r}")
    cfg.recordings_public = public
    cfg.speech = load_speech(_table(raw, "speech"))
    _load_media(cfg, _table(raw, "media"))
    cfg.edge = load_edge(_table(raw, "edge"))
    exotel = _table(raw, "exotel")
    cfg.exotel_sid = exotel.get("sid")
    cfg.exotel_api_key = exotel.get("api_key")
    cfg.exotel_api_token = exotel.get("api_token")
    cfg.trunks = load_trunks(raw.get("trunks", []), cfg.edge.enabled)
    try:
        cfg.numbers = [Number(**n) for n in raw.get("numbers", [])]
    except TypeError as exc:
        raise ConfigError(f"{path}: bad [[numbers]] entry: {exc}") from exc
    cfg.conversation_services = [_conversation_service(e) for e in raw.get("conversation_services", [])]
    sids = [s.sid for s in cfg.conversation_services]
    if len(set(sids)) != len(sids):
        raise ConfigError("[[conversation_services]]: a service sid is named twice")
    return cfg


@dataclass(frozen=True)
class Credentials:
    account_sid: str
    auth_token: str
    generated: bool  # by this start: the banner shows the token this once
    source: str = ""  # where the token was found: "the environment", "the config file" or the credentials file


def resolve_credentials(cfg: Config, env: dict[str, str] | None = None) -> Credentials:
    """Account SID and token from the environment, the config, or (once) generated into the data dir."""
    env = dict(os.environ) if env is None else env
    sid = env.get("SOFTSWITCH_ACCOUNT_SID") or cfg.account_sid
    token = env.get("SOFTSWITCH_AUTH_TOKEN") or cfg.auth_token
    if sid and token:
        if not ACCOUNT_SID_RE.match(sid):
            raise ConfigError(f"account SID must be AC followed by 32 lowercase hex digits, got {sid!r}")
        where = "the environment" if env.get("SOFTSWITCH_AUTH_TOKEN") else "the config file"
        return Credentials(sid, token, generated=False, source=where)
    if sid or token:
        raise ConfigError("give both the account SID and the auth token, or neither")
    path = cfg.data_dir / "credentials.json"
    if path.exists():
        saved = json.loads(path.read_text())
        return Credentials(saved["account_sid"], saved["auth_token"], generated=False, source=str(path))
    creds = Credentials(new_sid("AC"), secrets.token_hex(16), generated=True)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    # created 0600 from the start: the token is never readable by others, not even for a moment
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps({"account_sid": creds.account_sid, "auth_token": creds.auth_token}))
    return creds
