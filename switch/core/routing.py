"""Outbound routing: where a `To` goes, with which From and which credentials."""

from __future__ import annotations

import re
from dataclasses import dataclass

from switch.core.config import Trunk
from switch.core.errors import InvalidArgument, Problem

PHONE_RE = re.compile(r"^\+?[0-9]{2,20}$")


@dataclass(frozen=True)
class Route:
    """A resolved destination: the Request-URI to dial and the digest credentials to answer with."""

    uri: str
    auth: tuple[str, str] | None
    trunk: str | None = None


def is_sip_uri(value: str) -> bool:
    return value.startswith(("sip:", "sips:"))


def route(to: str, trunks: list[Trunk], auth_username: str | None = None,
          auth_password: str | None = None) -> Route:
    """Resolve `to`: a SIP URI is dialed as is; a phone number goes to the first matching trunk."""
    explicit = (auth_username, auth_password or "") if auth_username else None
    if is_sip_uri(to):
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
        raise InvalidArgument(f"Invalid 'To': {to}: client: endpoints need softphone registration, which "
                              "softswitch does not support yet", Problem.INVALID_TO)
    raise InvalidArgument(f"Invalid 'To' Phone Number: {to}", Problem.INVALID_TO)


def from_uri(from_: str, caller_id: str | None, host: str, port: int) -> str:
    """The From URI of an outbound leg: CallerId wins over From; a bare number gets our host."""
    who = caller_id or from_
    if is_sip_uri(who):
        return who
    if who.startswith("client:"):
        who = who[len("client:"):]
    return f"sip:{who}@{host}:{port}"
