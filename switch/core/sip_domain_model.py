"""The records behind SIP domains (`switch.core.sip_domains`): credential lists and their credentials, IP access
control lists and their addresses, domains and the mappings that attach lists to a domain; and the rules every
value must meet before it is stored.

Each record is a frozen dataclass whose fields are the columns of its table (`switch.core.sip_domain_table`).
Validation raises the core's neutral `InvalidArgument` (or `Conflict`); the REST edge gives each its dialect's
code.  The rules follow Twilio's documented limits where it has them (passwords of at least 12 characters with a
digit and both cases, usernames of at most 32 characters, IPv4 addresses only, 100 addresses per list).
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import re
from dataclasses import dataclass

from switch.core.errors import InvalidArgument

MAX_LIST_NAME = 64  # a CredentialList's or a Domain's FriendlyName
MAX_LONG_NAME = 255  # an IpAccessControlList's or an IpAddress's FriendlyName
MAX_USERNAME = 32
MIN_PASSWORD = 12
MAX_PASSWORD = 255  # Twilio: a SIP password "must be fewer than 256 chars"
MAX_ADDRESSES = 100  # IpAddresses in one IpAccessControlList
MAX_DOMAIN_NAME = 253

# RFC 3261 `user`: unreserved and user-unreserved characters, less "?" and "/" which confuse URIs in logs.
_USERNAME = re.compile(rf"[A-Za-z0-9\-_.!~*'()&=+$,;]{{1,{MAX_USERNAME}}}")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class MappingKind(enum.StrEnum):
    """What a list attached to a domain authenticates: calls (by digest or by source address) or registrations."""

    CALL_CREDENTIALS = "calls-credentials"
    CALL_NETWORKS = "calls-ip"
    REGISTRATION_CREDENTIALS = "registrations-credentials"

    @property
    def takes_credential_lists(self) -> bool:
        return self is not MappingKind.CALL_NETWORKS


@dataclass(frozen=True)
class CredentialList:
    """A named list of SIP usernames and passwords (CL...)."""

    sid: str
    account_sid: str
    friendly_name: str
    date_created: dt.datetime
    date_updated: dt.datetime


@dataclass(frozen=True)
class Credential:
    """One username and its password in a credential list (CR...).  The password is kept in clear because the SIP
    edge answers digest challenges with it; no REST response ever shows it."""

    sid: str
    account_sid: str
    credential_list_sid: str
    username: str
    password: str
    date_created: dt.datetime
    date_updated: dt.datetime


@dataclass(frozen=True)
class IpAccessControlList:
    """A named list of IPv4 networks allowed to call a domain (AL...)."""

    sid: str
    account_sid: str
    friendly_name: str
    date_created: dt.datetime
    date_updated: dt.datetime


@dataclass(frozen=True)
class IpAddress:
    """One IPv4 address, or a network when `cidr_prefix_length` < 32, in an IP access control list (IP...)."""

    sid: str
    account_sid: str
    ip_access_control_list_sid: str
    friendly_name: str
    ip_address: str
    cidr_prefix_length: int
    date_created: dt.datetime
    date_updated: dt.datetime

    @property
    def network(self) -> str:
        """The network it admits, "a.b.c.d/nn" (host bits cleared: 10.0.0.7/24 admits 10.0.0.0/24)."""
        return str(ipaddress.IPv4Network(f"{self.ip_address}/{self.cidr_prefix_length}", strict=False))


@dataclass(frozen=True)
class SipDomain:
    """A SIP domain (SD...): a host name the switch answers for, the URLs its calls fetch TwiML from, and whether
    endpoints may REGISTER to it.  `domain_name` is kept in lower case."""

    sid: str
    account_sid: str
    domain_name: str
    friendly_name: str | None
    voice_url: str | None
    voice_method: str
    voice_fallback_url: str | None
    voice_fallback_method: str
    voice_status_callback_url: str | None
    voice_status_callback_method: str
    sip_registration: bool
    date_created: dt.datetime
    date_updated: dt.datetime


@dataclass(frozen=True)
class Mapping:
    """A list attached to a domain for one `MappingKind`.  Twilio gives a mapping the SID of the list it maps;
    `id` ("<domain>/<kind>/<list>") is only the row's key."""

    id: str
    account_sid: str
    domain_sid: str
    kind: str  # a MappingKind value
    list_sid: str
    date_created: dt.datetime
    date_updated: dt.datetime

    @staticmethod
    def key(domain_sid: str, kind: MappingKind, list_sid: str) -> str:
        return f"{domain_sid}/{kind.value}/{list_sid}"


# -- validation ---------------------------------------------------------------------------------------------------
def check_name(value: str | None, field: str, limit: int, required: bool = True) -> str | None:
    """A FriendlyName: required unless `required` is off, at most `limit` characters, no control characters."""
    if value is None or not value.strip():
        if required:
            raise InvalidArgument(f"{field} is required")
        return None
    if len(value) > limit:
        raise InvalidArgument(f"{field} must be at most {limit} characters")
    if _CONTROL.search(value):
        raise InvalidArgument(f"{field} must not contain control characters")
    return value


def require_name(value: str | None, field: str, limit: int) -> str:
    """A FriendlyName that must be given (`check_name`)."""
    name = check_name(value, field, limit)
    if name is None:  # check_name raised already; this keeps the type checker informed
        raise InvalidArgument(f"{field} is required")
    return name


def check_username(username: str | None) -> str:
    """A SIP username: 1 to 32 characters that may stand in a SIP URI's user part without escaping."""
    if not username:
        raise InvalidArgument("Username is required")
    if not _USERNAME.fullmatch(username):
        raise InvalidArgument(f"Username must be 1 to {MAX_USERNAME} letters, digits or -_.!~*'()&=+$,; "
                              f"(not {username!r})")
    return username


def password_problem(password: str | None) -> str | None:
    """Why `password` breaks Twilio's rules (at least 12 characters, a digit, an upper and a lower case letter;
    at most 255 characters, no control characters), or None when it is acceptable."""
    if not password:
        return "Password is required"
    if len(password) < MIN_PASSWORD:
        return f"Password must be at least {MIN_PASSWORD} characters long"
    if len(password) > MAX_PASSWORD:
        return f"Password must be at most {MAX_PASSWORD} characters long"
    if _CONTROL.search(password):
        return "Password must not contain control characters"
    missing = [what for what, ok in (
        ("a digit", any(c.isdigit() for c in password)),
        ("an upper case letter", any(c.isupper() for c in password)),
        ("a lower case letter", any(c.islower() for c in password)),
    ) if not ok]
    if missing:
        return f"Password must contain {', '.join(missing)}"
    return None


def check_password(password: str | None) -> str:
    """`password` when `password_problem` finds nothing wrong with it; InvalidArgument otherwise."""
    problem = password_problem(password)
    if problem is not None or password is None:
        raise InvalidArgument(problem or "Password is required")
    return password


def check_ip_address(address: str | None, prefix: int | None) -> tuple[str, int]:
    """An IPv4 address in dotted decimal and a CIDR prefix length (default 32, from 1 to 32)."""
    if not address:
        raise InvalidArgument("IpAddress is required")
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        raise InvalidArgument(f"IpAddress must be an IPv4 address in dotted decimal, not {address!r}") from None
    if not isinstance(parsed, ipaddress.IPv4Address):
        raise InvalidArgument(f"IpAddress must be an IPv4 address (IPv6 is not supported), not {address!r}")
    prefix = 32 if prefix is None else prefix
    if not 1 <= prefix <= 32:
        raise InvalidArgument(f"CidrPrefixLength must be from 1 to 32, not {prefix}")
    return str(parsed), prefix


def check_domain_name(name: str | None) -> str:
    """A DNS host name, in lower case: dot-separated labels of letters, digits and inner hyphens (63 characters
    at most each, 253 in all), the last one not all digits (so no IP address).

    Twilio requires names ending in `sip.twilio.com`; this switch is self-hosted and answers for whatever names
    its DNS points at it, so any host name is accepted."""
    if not name or not name.strip():
        raise InvalidArgument("DomainName is required")
    lowered = name.strip().lower()
    labels = lowered.split(".")
    valid = (len(lowered) <= MAX_DOMAIN_NAME and all(_LABEL.fullmatch(label) for label in labels)
             and not labels[-1].isdigit())
    if not valid:
        raise InvalidArgument(f"DomainName must be a DNS host name (letters, digits, '-' and dots), not {name!r}")
    return lowered
