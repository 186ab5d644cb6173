"""Outbound routing: where a `To` goes, with which From and which credentials.

`route` is the one gate every outbound leg passes (REST `Calls.create` and `<Dial>`'s nouns): a destination it
refuses never reaches a media worker, so a worker never sees a SIP URI it cannot dial.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from switch.core.config import Trunk
from switch.core.errors import InvalidArgument, Problem

PHONE_RE = re.compile(r"^\+?[0-9]{2,20}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
# a host: an IPv6 reference, or a dotted name or IPv4 address; then an optional port
_HOSTPORT = re.compile(rf"(?P<host>\[[0-9A-Fa-f:.]+\]|{_LABEL}(?:\.{_LABEL})*\.?)(?::(?P<port>[0-9]{{1,5}}))?")


@dataclass(frozen=True)
class Route:
    """A resolved destination: the Request-URI to dial and the digest credentials to answer with."""

    uri: str
    auth: tuple[str, str] | None
    trunk: str | None = None


def is_sip_uri(value: str) -> bool:
    """A `sip:` or `sips:` URI (the scheme in any case, as RFC 3261 allows)."""
    return value.lower().startswith(("sip:", "sips:"))


def sip_uri_problem(uri: str) -> str | None:
    """Why the switch cannot dial the SIP URI `uri`, or None when it can.

    A dialable URI is `sip:[user@]host[:port][;params][?headers]`.  A URI without a host (`sip:bob@`, `sip:@`)
    is refused, and so is a single word without `@` (`sip:bob`): it names a user, not a host, unless it is
    `localhost`.  `sips:` needs SIP over TLS, which the switch does not have yet.
    """
    scheme, _, rest = uri.partition(":")
    if scheme.lower() == "sips":
        return "sips: needs SIP over TLS, which softswitch does not support yet; dial a sip: URI"
    user, at, hostpart = rest.split("?", 1)[0].rpartition("@")
    hostport = hostpart.split(";", 1)[0]
    if not hostport:
        return "it has no host; write sip:user@host[:port]"
    if at and not user:
        return "it has an @ but no user before it"
    match = _HOSTPORT.fullmatch(hostport)
    if match is None:
        return f"{hostport!r} is not a host[:port]"
    host, port = match["host"], match["port"]
    if not at and "." not in host and not host.startswith("[") and host.lower() != "localhost":
        return "it has no host (a single word is a user); write sip:user@host[:port]"
    if port is not None and not 0 < int(port) < 65536:
        return f"port {port} is out of range"
    return None


def route(to: str, trunks: list[Trunk], auth_username: str | None = None,
          auth_password: str | None = None) -> Route:
    """Resolve `to`: a SIP URI is dialed as is; a phone number goes to the first matching trunk."""
    explicit = (auth_username, auth_password or "") if auth_username else None
    if is_sip_uri(to):
        problem = sip_uri_problem(to)
        if problem is not None:
            raise InvalidArgument(f"Invalid SIP URI {to}: {problem}", Problem.INVALID_TO)
        return Route(to, explicit)
    number = to.replace(" ", "").replace("-", "")
    if PHONE_RE.match(number):
        for trunk in trunks:
            if trunk.matches(number):
                auth = explicit
                if auth is None and trunk.username:
                    auth = (trunk.username, trunk.password or "")
                return Route(f"sip:{number}@{trunk.hostport}", auth, trunk.name)
        raise InvalidArgument(f"No trunk is configured for the number {to}; add a [[trunks]] entry to "
                              "softswitch.toml or dial a SIP URI", Problem.NO_ROUTE)
    if to.startswith("client:"):
        raise no_client_route(to)  # the call engine routes client: through its ClientRouter first
    raise InvalidArgument(f"Invalid 'To' Phone Number: {to}", Problem.INVALID_TO)


def no_client_route(to: str) -> InvalidArgument:
    """The error for a `client:` destination with nowhere to ring (no SIP domain takes registrations)."""
    return InvalidArgument(f"Invalid 'To': {to}: client: identities are softphones registered on a SIP domain; "
                           "create one with sip_registration=true (and the SIP edge enabled)", Problem.INVALID_TO)


def from_uri(from_: str, caller_id: str | None, host: str, port: int) -> str:
    """The From URI of an outbound leg: CallerId wins over From; a bare number gets our host."""
    who = caller_id or from_
    if is_sip_uri(who):
        return who
    if who.startswith("client:"):
        who = who[len("client:"):]
    return f"sip:{who}@{host}:{port}"


def user_part(uri: str) -> str:
    """`sip:+1555@host;x=y` -> `+1555`; `"Name" <sip:bob@h>` -> `bob`."""
    inner = uri[uri.find("<") + 1: uri.rfind(">")] if "<" in uri else uri
    inner = inner.split(":", 1)[1] if ":" in inner else inner
    return inner.split("@", 1)[0].split(";", 1)[0]
