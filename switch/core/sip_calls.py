"""Calls of softphones: INVITEs the edge let into a SIP domain, and `client:` destinations.

The SIP edge (`switch.workers.edge_domains`) authenticates a call to a SIP domain and tells the worker who it is
in trusted `X-Softswitch-*` headers (it removes any that came from outside); the worker hands the INVITE's X-
headers over with its `Incoming` event.  `domain_call` reads them: the call runs the domain's voice URL with
Twilio's SIP parameters (SipDomain, SipDomainSid, SipCallId, SipSourceIp, SipUsername, SipHeader_<name>), From
and To as SIP URIs.  The headers are believed only when the edge is in front of the workers (`[edge] enabled`).

`client:alice` (REST `To`, `<Dial><Client>`) rings alice's registered phones: `ClientRouter` finds the SIP domain
of the account (registration enabled) on which alice has contacts, and dials `sip:alice@<domain>`; the edge
forks that INVITE to every contact.  When alice is registered nowhere, the INVITE still goes to the account's
first such domain and the edge answers 480, so the leg ends `no-answer` like an offline Twilio client.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from switch.core.config import Number
from switch.core.model import Call, Direction
from switch.core.routing import Route, no_client_route, user_part
from switch.core.sip_domains import SipDomainRoute
from switch.core.status import CallStatus
from switch.workers.protocol import Incoming
from switch.workers.sipmsg import uri_of

EDGE_HEADER = "X-Softswitch-"
CLIENT_PREFIX = "client:"


@dataclass(frozen=True)
class DomainCall:
    """What an inbound INVITE to a SIP domain becomes: its app, its From/To, and Twilio's SIP parameters."""

    domain: SipDomainRoute
    from_: str
    to: str
    params: dict[str, str]


def edge_header(headers: Mapping[str, str], name: str) -> str | None:
    """One of the edge's trusted headers (`Domain`, `Source`, `Auth`, `User`), in any letter case."""
    wanted = (EDGE_HEADER + name).lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def domain_call(headers: Mapping[str, str], request_uri: str, from_uri: str, call_id: str,
                lookup: Callable[[str], SipDomainRoute | None]) -> DomainCall | None:
    """The SIP-domain call an INVITE with the edge's headers `headers` is, or None when it is not one (no
    `X-Softswitch-Domain`) or its domain was deleted meanwhile (`lookup` finds nothing)."""
    name = edge_header(headers, "Domain")
    if not name:
        return None
    domain = lookup(name)
    if domain is None:
        return None
    to = request_uri.split(";", 1)[0] if request_uri else ""
    caller = uri_of(from_uri).split(";", 1)[0]
    params = {"SipDomain": domain.domain_name, "SipDomainSid": domain.sid, "SipCallId": call_id}
    source = edge_header(headers, "Source")
    if source:
        params["SipSourceIp"] = source
    if (edge_header(headers, "Auth") or "") == "credentials":
        params["SipUsername"] = edge_header(headers, "User") or ""
    for key, value in headers.items():
        if not key.lower().startswith(EDGE_HEADER.lower()):
            params[f"SipHeader_{key}"] = value
    return DomainCall(domain, caller, to, params)


def inbound_app(event: Incoming, trust_edge: bool, lookup_domain: Callable[[str], SipDomainRoute | None],
                lookup_number: Callable[[str], Number | None]) -> tuple[Number | None, DomainCall | None]:
    """The app an inbound INVITE runs (None: nobody's), and the SIP-domain call it is: a domain's app when the edge
    let it into one (`trust_edge`: the edge is in front), else the dialed number's."""
    sip = (domain_call(event.headers, event.request_uri, event.from_uri, event.call_id, lookup_domain)
           if trust_edge else None)
    if sip is not None:
        d = sip.domain
        return Number(sip.to, d.voice_url, d.voice_method, d.voice_fallback_url, d.voice_fallback_method,
                      d.voice_status_callback_url, d.voice_status_callback_method), sip
    dialed = user_part(event.request_uri or event.to_uri)
    return lookup_number(dialed) or lookup_number(user_part(event.to_uri)), None


WEBRTC_SCHEME = "webrtc:"  # a leg to a browser: the worker makes a port leg (switch.worker.port_legs)


def client_identity(to: str) -> str | None:
    """`client:alice` -> `alice`; None for any other destination."""
    return to[len(CLIENT_PREFIX):] if to.startswith(CLIENT_PREFIX) else None


class ClientRouter:
    """Where `client:<identity>` rings: a browser the identity has open (`webrtc:<identity>`, switch.core.browsers),
    else the identity's AoR on the account's registration domains."""

    def __init__(self, domains: Callable[[], list[SipDomainRoute]],
                 contacts: Callable[[str], Awaitable[list[str]]] | None) -> None:
        self._domains = domains  # every SIP domain, oldest first
        self._contacts = contacts  # the edge's registered contacts of an AoR (None: no edge)
        self.browsers: Callable[[str, str], bool] | None = None  # (identity, account) -> a browser takes calls

    async def route(self, to: str, account_sid: str) -> Route:
        """The Route of `client:<identity>`: InvalidArgument when no browser of the identity is open and no domain
        of the account takes registrations."""
        identity = client_identity(to) or ""
        if self.browsers is not None and self.browsers(identity, account_sid):
            return Route(f"{WEBRTC_SCHEME}{identity}", None)
        names = [d.domain_name for d in self._domains() if d.sip_registration and d.account_sid == account_sid]
        if self._contacts is None or not names:
            raise no_client_route(to)
        for name in names:
            if await self._contacts(f"{identity}@{name}"):
                return Route(f"sip:{identity}@{name}", None)
        return Route(f"sip:{identity}@{names[0]}", None)


def inbound_call(sid: str, event: Incoming, number: Number, sip: DomainCall | None, account_sid: str, worker: int,
                 now: dt.datetime) -> Call:
    """The ringing inbound call an INVITE makes, running `number`'s app (a SIP domain's, `sip`, for a softphone)."""
    return Call(sid=sid, account_sid=sip.domain.account_sid if sip else account_sid, to=number.number,
                from_=sip.from_ if sip else user_part(event.from_uri), direction=Direction.INBOUND,
                status=CallStatus.RINGING, date_created=now, date_updated=now, start_time=now,
                url=number.voice_url, method=number.voice_method, fallback_url=number.voice_fallback_url,
                fallback_method=number.voice_fallback_method, status_callback=number.status_callback,
                status_callback_method=number.status_callback_method,
                sip_uri=event.request_uri, sip_call_id=event.call_id, worker=worker,
                phone_number_sid=number.sid, sip_params=sip.params if sip else None)
