"""SIP domains (Twilio's SIP API): the host names the switch answers SIP for, who may call or register there,
and where their calls fetch TwiML, kept in the store.

A domain authenticates calls by digest against the credential lists mapped to its Calls auth, or by source address
against the IP access control lists mapped there; REGISTERs by digest against the lists mapped to its
Registrations auth.  `SipDirectory` keeps every record in memory and derives one `SipDomainRoute` per domain:
the whole of what the SIP edge and the inbound router need, rebuilt after each change.  Listeners
(`SipDirectory.subscribe`) hear of every change that altered the routes, synchronously, once it is written.

When one username occurs in two lists mapped to the same auth with different passwords, the list mapped first
wins (mappings in the order they were made; within a list usernames are unique).
"""

from __future__ import annotations

import dataclasses
import logging
import types
from collections.abc import Callable, Mapping as MappingType
from dataclasses import dataclass
from typing import Any

from switch.core.errors import Conflict, InvalidArgument, NotFound
from switch.core.model import check_changes, new_sid, utcnow
from switch.core.paging import Cursor, PageKey
from switch.core.sip_domain_model import (
    MAX_ADDRESSES,
    MAX_LIST_NAME,
    MAX_LONG_NAME,
    Credential,
    CredentialList,
    IpAccessControlList,
    IpAddress,
    Mapping,
    MappingKind,
    SipDomain,
    check_domain_name,
    check_ip_address,
    check_name,
    check_password,
    check_username,
    require_name,
)
from switch.core.sip_domain_table import RecordTable, page_of
from switch.core.store import Store

log = logging.getLogger("switch.core.sip_domains")

# The fields `SipDirectory.update_domain` may change; the methods and sip_registration cannot be cleared.
DOMAIN_UPDATABLE = (
    "domain_name", "friendly_name", "voice_url", "voice_method", "voice_fallback_url", "voice_fallback_method",
    "voice_status_callback_url", "voice_status_callback_method", "sip_registration",
)  # fmt: skip
_NOT_NULL = frozenset({"domain_name", "voice_method", "voice_fallback_method", "voice_status_callback_method",
                       "sip_registration"})


@dataclass(frozen=True)
class SipDomainRoute:
    """What the SIP edge and the inbound router need about one domain."""

    sid: str
    account_sid: str
    domain_name: str  # lower case
    voice_url: str | None
    voice_method: str
    voice_fallback_url: str | None
    voice_fallback_method: str
    voice_status_callback_url: str | None
    voice_status_callback_method: str
    sip_registration: bool
    registration_users: MappingType[str, str]  # username -> password, from Auth/Registrations credential lists
    call_users: MappingType[str, str]  # username -> password, from Auth/Calls credential list mappings
    call_networks: tuple[str, ...]  # "a.b.c.d/nn" from Auth/Calls IP ACL mappings


def _key(item: Any) -> PageKey:
    return PageKey(item.date_created, item.sid)


def _mapping_key(mapping: Mapping) -> PageKey:
    return PageKey(mapping.date_created, mapping.list_sid)


class SipDirectory:
    """The account's SIP domains, credential lists, IP access control lists and mappings (SQLite tables
    `sip_*`, all kept in memory), and the routes derived from them.

    Use it from the control plane's event loop (the store has its own lock).  Arguments are validated here;
    a wrong one is `InvalidArgument`, a clash (a domain name taken, a list mapped twice) `Conflict`, a parent
    that does not exist `NotFound`.
    """

    def __init__(self, store: Store, account_sid: str) -> None:
        self._account_sid = account_sid
        self._credential_lists = RecordTable(store, "sip_credential_lists", CredentialList, account_sid)
        self._credentials = RecordTable(store, "sip_credentials", Credential, account_sid)
        self._acls = RecordTable(store, "sip_ip_access_control_lists", IpAccessControlList, account_sid)
        self._addresses = RecordTable(store, "sip_ip_addresses", IpAddress, account_sid)
        self._domains = RecordTable(store, "sip_domains", SipDomain, account_sid, unique=("domain_name",))
        self._mappings = RecordTable(store, "sip_domain_mappings", Mapping, account_sid, key="id")
        self._listeners: list[Callable[[], None]] = []
        self._routes: dict[str, SipDomainRoute] = self._build_routes()

    @property
    def account_sid(self) -> str:
        return self._account_sid

    # -- routes -------------------------------------------------------------------------------------------------
    def routes(self) -> list[SipDomainRoute]:
        """Every domain as it is now, oldest first."""
        return list(self._routes.values())

    def route_named(self, domain_name: str) -> SipDomainRoute | None:
        """The domain called `domain_name` (any case), or None."""
        return self._routes.get(domain_name.lower())

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener()` after every change that alters `routes()`, synchronously, once it is written."""
        self._listeners.append(listener)

    def _build_routes(self) -> dict[str, SipDomainRoute]:
        credentials: dict[str, list[Credential]] = {}  # by list, oldest first
        for cred in sorted(self._credentials.values(), key=_key):
            credentials.setdefault(cred.credential_list_sid, []).append(cred)
        addresses: dict[str, list[IpAddress]] = {}
        for address in sorted(self._addresses.values(), key=_key):
            addresses.setdefault(address.ip_access_control_list_sid, []).append(address)

        def users(domain_sid: str, kind: MappingKind) -> MappingType[str, str]:
            found: dict[str, str] = {}
            for mapping in self._mappings_of(domain_sid, kind):
                for cred in credentials.get(mapping.list_sid, []):
                    found.setdefault(cred.username, cred.password)  # the list mapped first wins a username
            return types.MappingProxyType(found)

        def networks(domain_sid: str) -> tuple[str, ...]:
            found: dict[str, None] = {}  # ordered, without repeats
            for mapping in self._mappings_of(domain_sid, MappingKind.CALL_NETWORKS):
                found.update((address.network, None) for address in addresses.get(mapping.list_sid, []))
            return tuple(found)

        routes: dict[str, SipDomainRoute] = {}
        for d in sorted(self._domains.values(), key=_key):
            routes[d.domain_name] = SipDomainRoute(
                d.sid, d.account_sid, d.domain_name, d.voice_url, d.voice_method, d.voice_fallback_url,
                d.voice_fallback_method, d.voice_status_callback_url, d.voice_status_callback_method,
                d.sip_registration, users(d.sid, MappingKind.REGISTRATION_CREDENTIALS),
                users(d.sid, MappingKind.CALL_CREDENTIALS), networks(d.sid))
        return routes

    def _changed(self) -> None:
        """Rebuild the routes after a write; tell the listeners when they differ."""
        routes = self._build_routes()
        if routes == self._routes:
            return
        self._routes = routes
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # one broken listener must not keep the others, or the REST answer, from happening
                log.exception("SIP route listener %r failed", listener)

    # -- credential lists ---------------------------------------------------------------------------------------
    def credential_list(self, sid: str) -> CredentialList | None:
        return self._credential_lists.get(sid)

    def list_credential_lists(self, offset: int = 0, limit: int = 50,
                              cursor: Cursor | None = None) -> list[CredentialList]:
        return page_of(self._credential_lists.values(), _key, offset, limit, cursor)

    def _unique_list_name(self, name: str, sid: str | None = None) -> None:
        if any(c.friendly_name == name and c.sid != sid for c in self._credential_lists.values()):
            raise Conflict(f"A CredentialList named {name!r} already exists")

    def create_credential_list(self, friendly_name: str) -> CredentialList:
        name = require_name(friendly_name, "FriendlyName", MAX_LIST_NAME)
        self._unique_list_name(name)
        now = utcnow()
        made = self._credential_lists.insert(CredentialList(new_sid("CL"), self._account_sid, name, now, now))
        log.info("credential list %s (%s) created", made.sid, name)
        return made

    def update_credential_list(self, sid: str, friendly_name: str) -> CredentialList | None:
        current = self._credential_lists.get(sid)
        if current is None:
            return None
        name = require_name(friendly_name, "FriendlyName", MAX_LIST_NAME)
        self._unique_list_name(name, sid)
        return self._credential_lists.replace(
            dataclasses.replace(current, friendly_name=name, date_updated=utcnow()))

    def delete_credential_list(self, sid: str) -> bool:
        """Remove a credential list, its credentials and its mappings to domains."""
        if self._credential_lists.get(sid) is None:
            return False
        self._credentials.delete([c.sid for c in self._credentials.where(lambda c: c.credential_list_sid == sid)])
        self._mappings.delete([m.id for m in self._mappings.where(
            lambda m: m.list_sid == sid and MappingKind(m.kind).takes_credential_lists)])
        self._credential_lists.delete([sid])
        log.info("credential list %s deleted", sid)
        self._changed()
        return True

    # -- credentials --------------------------------------------------------------------------------------------
    def _require_credential_list(self, list_sid: str) -> None:
        if self._credential_lists.get(list_sid) is None:
            raise NotFound(f"CredentialList {list_sid}")

    def credential(self, list_sid: str, sid: str) -> Credential | None:
        found = self._credentials.get(sid)
        return found if found is not None and found.credential_list_sid == list_sid else None

    def list_credentials(self, list_sid: str, offset: int = 0, limit: int = 50,
                         cursor: Cursor | None = None) -> list[Credential]:
        self._require_credential_list(list_sid)
        mine = self._credentials.where(lambda c: c.credential_list_sid == list_sid)
        return page_of(mine, _key, offset, limit, cursor)

    def create_credential(self, list_sid: str, username: str, password: str) -> Credential:
        self._require_credential_list(list_sid)
        username = check_username(username)
        password = check_password(password)
        if self._credentials.where(lambda c: c.credential_list_sid == list_sid and c.username == username):
            raise Conflict(f"Username {username!r} is already in CredentialList {list_sid}")
        now = utcnow()
        made = self._credentials.insert(
            Credential(new_sid("CR"), self._account_sid, list_sid, username, password, now, now))
        log.info("credential %s (%s) added to %s", made.sid, username, list_sid)
        self._changed()
        return made

    def update_credential(self, list_sid: str, sid: str, password: str) -> Credential | None:
        """A new password (the username cannot change); None for an unknown credential."""
        current = self.credential(list_sid, sid)
        if current is None:
            return None
        updated = self._credentials.replace(
            dataclasses.replace(current, password=check_password(password), date_updated=utcnow()))
        self._changed()
        return updated

    def delete_credential(self, list_sid: str, sid: str) -> bool:
        if self.credential(list_sid, sid) is None:
            return False
        self._credentials.delete([sid])
        self._changed()
        return True

    # -- IP access control lists --------------------------------------------------------------------------------
    def ip_access_control_list(self, sid: str) -> IpAccessControlList | None:
        return self._acls.get(sid)

    def list_ip_access_control_lists(self, offset: int = 0, limit: int = 50,
                                     cursor: Cursor | None = None) -> list[IpAccessControlList]:
        return page_of(self._acls.values(), _key, offset, limit, cursor)

    def create_ip_access_control_list(self, friendly_name: str) -> IpAccessControlList:
        name = require_name(friendly_name, "FriendlyName", MAX_LONG_NAME)
        now = utcnow()
        made = self._acls.insert(IpAccessControlList(new_sid("AL"), self._account_sid, name, now, now))
        log.info("IP access control list %s (%s) created", made.sid, name)
        return made

    def update_ip_access_control_list(self, sid: str, friendly_name: str) -> IpAccessControlList | None:
        current = self._acls.get(sid)
        if current is None:
            return None
        name = require_name(friendly_name, "FriendlyName", MAX_LONG_NAME)
        return self._acls.replace(dataclasses.replace(current, friendly_name=name, date_updated=utcnow()))

    def delete_ip_access_control_list(self, sid: str) -> bool:
        """Remove an IP access control list, its addresses and its mappings to domains."""
        if self._acls.get(sid) is None:
            return False
        self._addresses.delete([a.sid for a in self._addresses.where(lambda a: a.ip_access_control_list_sid == sid)])
        self._mappings.delete([m.id for m in self._mappings.where(
            lambda m: m.list_sid == sid and m.kind == MappingKind.CALL_NETWORKS)])
        self._acls.delete([sid])
        log.info("IP access control list %s deleted", sid)
        self._changed()
        return True

    # -- IP addresses -------------------------------------------------------------------------------------------
    def _require_acl(self, acl_sid: str) -> None:
        if self._acls.get(acl_sid) is None:
            raise NotFound(f"IpAccessControlList {acl_sid}")

    def ip_address(self, acl_sid: str, sid: str) -> IpAddress | None:
        found = self._addresses.get(sid)
        return found if found is not None and found.ip_access_control_list_sid == acl_sid else None

    def list_ip_addresses(self, acl_sid: str, offset: int = 0, limit: int = 50,
                          cursor: Cursor | None = None) -> list[IpAddress]:
        self._require_acl(acl_sid)
        mine = self._addresses.where(lambda a: a.ip_access_control_list_sid == acl_sid)
        return page_of(mine, _key, offset, limit, cursor)

    def create_ip_address(self, acl_sid: str, friendly_name: str, ip_address: str,
                          cidr_prefix_length: int | None = None) -> IpAddress:
        """Add an address (a network when `cidr_prefix_length` is under 32, default 32) to a list."""
        self._require_acl(acl_sid)
        name = require_name(friendly_name, "FriendlyName", MAX_LONG_NAME)
        address, prefix = check_ip_address(ip_address, cidr_prefix_length)
        if len(self._addresses.where(lambda a: a.ip_access_control_list_sid == acl_sid)) >= MAX_ADDRESSES:
            raise InvalidArgument(f"IpAccessControlList {acl_sid} already holds {MAX_ADDRESSES} addresses")
        now = utcnow()
        made = self._addresses.insert(
            IpAddress(new_sid("IP"), self._account_sid, acl_sid, name, address, prefix, now, now))
        log.info("IP address %s (%s/%d) added to %s", made.sid, address, prefix, acl_sid)
        self._changed()
        return made

    def update_ip_address(self, acl_sid: str, sid: str, friendly_name: str | None = None,
                          ip_address: str | None = None, cidr_prefix_length: int | None = None) -> IpAddress | None:
        """Change the fields given (None keeps one); None for an unknown address."""
        current = self.ip_address(acl_sid, sid)
        if current is None:
            return None
        name = current.friendly_name if friendly_name is None else require_name(friendly_name, "FriendlyName",
                                                                                 MAX_LONG_NAME)
        address, prefix = check_ip_address(ip_address or current.ip_address,
                                           current.cidr_prefix_length if cidr_prefix_length is None
                                           else cidr_prefix_length)
        updated = self._addresses.replace(dataclasses.replace(
            current, friendly_name=name, ip_address=address, cidr_prefix_length=prefix, date_updated=utcnow()))
        self._changed()
        return updated

    def delete_ip_address(self, acl_sid: str, sid: str) -> bool:
        if self.ip_address(acl_sid, sid) is None:
            return False
        self._addresses.delete([sid])
        self._changed()
        return True

    # -- domains ------------------------------------------------------------------------------------------------
    def domain(self, sid: str) -> SipDomain | None:
        return self._domains.get(sid)

    def list_domains(self, offset: int = 0, limit: int = 50, cursor: Cursor | None = None) -> list[SipDomain]:
        return page_of(self._domains.values(), _key, offset, limit, cursor)

    def _free_name(self, name: str, sid: str | None = None) -> str:
        name = check_domain_name(name)
        if self._domains.count_all_accounts("domain_name", name, other_than=sid):  # switch-wide, every account
            raise Conflict(f"DomainName {name} is already in use")
        return name

    def create_domain(self, domain_name: str, friendly_name: str | None = None, voice_url: str | None = None,
                      voice_method: str = "POST", voice_fallback_url: str | None = None,
                      voice_fallback_method: str = "POST", voice_status_callback_url: str | None = None,
                      voice_status_callback_method: str = "POST", sip_registration: bool = False) -> SipDomain:
        """Add a domain (URLs and methods already validated by the edge).  `domain_name` must be a DNS host name
        no domain of any account has, in any case (`check_domain_name`)."""
        name = self._free_name(domain_name)
        friendly = check_name(friendly_name, "FriendlyName", MAX_LIST_NAME, required=False)
        now = utcnow()
        made = self._domains.insert(SipDomain(
            new_sid("SD"), self._account_sid, name, friendly, voice_url, voice_method, voice_fallback_url,
            voice_fallback_method, voice_status_callback_url, voice_status_callback_method, sip_registration,
            now, now))
        log.info("SIP domain %s (%s) created", made.sid, name)
        self._changed()
        return made

    def update_domain(self, sid: str, changes: MappingType[str, Any]) -> SipDomain | None:
        """Change the `DOMAIN_UPDATABLE` fields named in `changes` (None clears a URL or the name); None for an
        unknown SID."""
        check_changes(changes, DOMAIN_UPDATABLE, _NOT_NULL)
        current = self._domains.get(sid)
        if current is None:
            return None
        fields = dict(changes)
        if "domain_name" in fields:
            fields["domain_name"] = self._free_name(fields["domain_name"], sid)
        if "friendly_name" in fields:
            fields["friendly_name"] = check_name(fields["friendly_name"], "FriendlyName", MAX_LIST_NAME,
                                                 required=False)
        updated = self._domains.replace(dataclasses.replace(current, date_updated=utcnow(), **fields))
        self._changed()
        return updated

    def delete_domain(self, sid: str) -> bool:
        """Remove a domain and its mappings (the lists stay)."""
        if self._domains.get(sid) is None:
            return False
        self._mappings.delete([m.id for m in self._mappings.where(lambda m: m.domain_sid == sid)])
        self._domains.delete([sid])
        log.info("SIP domain %s deleted", sid)
        self._changed()
        return True

    def auth_type(self, domain_sid: str) -> str:
        """Twilio's `auth_type`: "IP_ACL", "CREDENTIAL_LIST", both comma-joined, or "" (what the Calls auth has;
        a domain with none takes no calls)."""
        kinds = [name for kind, name in ((MappingKind.CALL_NETWORKS, "IP_ACL"),
                                         (MappingKind.CALL_CREDENTIALS, "CREDENTIAL_LIST"))
                 if self._mappings_of(domain_sid, kind)]
        return ",".join(kinds)

    # -- mappings -----------------------------------------------------------------------------------------------
    def _mappings_of(self, domain_sid: str, kind: MappingKind) -> list[Mapping]:
        found = self._mappings.where(lambda m: m.domain_sid == domain_sid and m.kind == kind)
        return sorted(found, key=_mapping_key)

    def mapped_list(self, mapping: Mapping) -> CredentialList | IpAccessControlList | None:
        """The list a mapping attaches (its name is the mapping's FriendlyName)."""
        if MappingKind(mapping.kind).takes_credential_lists:
            return self._credential_lists.get(mapping.list_sid)
        return self._acls.get(mapping.list_sid)

    def mapping(self, domain_sid: str, kind: MappingKind, list_sid: str) -> Mapping | None:
        return self._mappings.get(Mapping.key(domain_sid, kind, list_sid))

    def list_mappings(self, domain_sid: str, kind: MappingKind, offset: int = 0, limit: int = 50,
                      cursor: Cursor | None = None) -> list[Mapping]:
        """The domain's mappings of `kind`, oldest first (the order in which their usernames win)."""
        if self._domains.get(domain_sid) is None:
            raise NotFound(f"Domain {domain_sid}")
        return page_of(self._mappings_of(domain_sid, kind), _mapping_key, offset, limit, cursor)

    def add_mapping(self, domain_sid: str, kind: MappingKind, list_sid: str) -> Mapping:
        """Attach a credential list (or, for `CALL_NETWORKS`, an IP access control list) of this account."""
        if self._domains.get(domain_sid) is None:
            raise NotFound(f"Domain {domain_sid}")
        wanted = "CredentialList" if kind.takes_credential_lists else "IpAccessControlList"
        table: RecordTable[Any] = self._credential_lists if kind.takes_credential_lists else self._acls
        if not list_sid or table.get(list_sid) is None:
            raise InvalidArgument(f"{wanted}Sid {list_sid!r} is not a {wanted} of this account")
        if self.mapping(domain_sid, kind, list_sid) is not None:
            raise Conflict(f"{wanted} {list_sid} is already mapped to Domain {domain_sid}")
        now = utcnow()
        made = self._mappings.insert(Mapping(Mapping.key(domain_sid, kind, list_sid), self._account_sid,
                                             domain_sid, kind.value, list_sid, now, now))
        log.info("%s %s mapped to SIP domain %s (%s)", wanted, list_sid, domain_sid, kind.value)
        self._changed()
        return made

    def remove_mapping(self, domain_sid: str, kind: MappingKind, list_sid: str) -> bool:
        if not self._mappings.delete([Mapping.key(domain_sid, kind, list_sid)]):
            return False
        self._changed()
        return True

