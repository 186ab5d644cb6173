"""Checks on what a peer sends, made before pjsip acts on it (issue 13, section 2).

Where each input is stopped (all in pjsua2 callbacks of `switch.worker.engine.Leg`):
- a re-INVITE or UPDATE offer whose SDP has a `c=` line whose address is not of the family the line names
  (`c=IN IP4 ::1`): refused 488 in `onCallRxReinvite` / `onCallRxOffer`; pjsip would abort in
  `pj_sockaddr_get_len` while negotiating it;
- an INVITE with `Replaces:` naming a live leg: refused 403 in `onCallReplaceRequest`.  The switch cannot honestly
  replace a leg (the control plane would have to move the leg's call, bridges and recordings to the new dialog),
  so it never lets pjsua answer the new INVITE on its own; the live call goes on;
- a REFER on a live leg: refused 403 in `onCallTransferRequest`.  Twilio refuses a REFER on a `<Dial>` without
  `referUrl` (its error 13802, "Dial: No referUrl attribute specified"); this switch has no `referUrl` yet, so every
  REFER is refused and pjsua never places an untracked call.

Not guarded here: a new INVITE with such SDP (pjsip aborts when it is answered; the check belongs in
`onIncomingCall` before the leg reaches the control plane), and a 183/200 answer to our own INVITE with such SDP
(no pjsua2 hook runs before negotiation: it needs a pjsip module or the Kamailio edge of issue 14).
"""

from __future__ import annotations

import ipaddress

SDP_REFUSED = 488
REPLACES_REFUSED = 403
REFER_REFUSED = 403


def _family_mismatch(line: str) -> bool:
    """True when one `c=` value names a family its address does not have (or an address that is no IP)."""
    parts = line.split()
    if len(parts) < 3 or parts[0] != "IN":
        return False
    family, address = parts[1], parts[2].split("/", 1)[0]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        # A host name: pjsip resolves it; an IPv6 literal in brackets is refused by pjsip itself.
        return family == "IP4" and ":" in address
    return (family == "IP4") != (ip.version == 4)


def bad_connection_address(sdp: str) -> bool:
    """True when any `c=` line of `sdp` (session or media level) would make pjsip abort."""
    for raw in sdp.replace("\r", "\n").split("\n"):
        line = raw.strip()
        if line.startswith("c=") and _family_mismatch(line[2:]):
            return True
    return False
