"""A leg's SIP dialog facts, folded from the raw messages pjsua2 shows the engine (no pjsua2 here).

pjsua2 does not expose a dialog's tags, route set or CSeq, but it shows every message of a call's INVITE
transactions: the INVITE we send (`onCallTsxState`, the transaction's `lastTx`, again after a digest
challenge with a new branch and CSeq), the responses to it (the event's `rdata`, with the far end's tag,
Contact and Record-Route), the INVITE we receive (`onIncomingCall`'s `rdata`) and the responses we send to it
(`lastTx`, with our tag).  `fold` turns each into the leg's `Dialog`, which the engine reports when it changed
(`DialogChanged`).  Only the initial INVITE's transaction counts (a CSeq other than the dialog's is a re-INVITE
or an answer to one, and changes nothing the control plane needs to end the leg).
"""

from __future__ import annotations

import msgspec

from switch.workers.protocol import Dialog, sip_text
from switch.workers.sipmsg import SipHead, header_param, parse_head, uri_of, via_transport


def fold(dialog: Dialog | None, text: str, source: str, sent: bool) -> Dialog | None:
    """The leg's dialog after message `text` (`sent` by us, or received from `source`, `host:port`)."""
    head = parse_head(sip_text(text))
    if head is None or head.method != "INVITE":
        return dialog
    if not head.is_response:
        if sent and (dialog is None or not (dialog.inbound or dialog.answered)):
            return _invite_sent(dialog, head)
        if not sent and dialog is None:
            return _invite_received(head, source)
        return dialog
    if dialog is None or head.cseq[0] != dialog.cseq:
        return dialog
    if sent and dialog.inbound:
        return _response_sent(dialog, head)
    if not sent and not dialog.inbound and not dialog.answered:
        return _response_received(dialog, head, source)
    return dialog


def _invite_sent(dialog: Dialog | None, head: SipHead) -> Dialog:
    """Our INVITE (or its re-send with credentials): what a CANCEL must repeat (RFC 3261 9.1)."""
    vias = head.all("via")[:1]
    return Dialog(
        inbound=False, call_id=head.first("call-id"), local=head.first("from"), remote=head.first("to"),
        request_uri=head.request_uri, target=dialog.target if dialog is not None else "",
        routes=tuple(head.all("route")), vias=tuple(vias), cseq=head.cseq[0],
        transport=via_transport(vias[0]) if vias else "udp", peer=dialog.peer if dialog is not None else "",
    )


def _response_received(dialog: Dialog, head: SipHead, source: str) -> Dialog:
    """A response to our INVITE: an early dialog's tag, or a 2xx: the dialog's target and route set (12.1.2)."""
    code = head.code
    if code < 101 or code >= 300:
        return msgspec.structs.replace(dialog, peer=source or dialog.peer)
    changes: dict[str, object] = {"remote": head.first("to"), "peer": source or dialog.peer}
    contact = head.first("contact")
    if contact:
        changes["target"] = uri_of(contact)
    if code >= 200:
        changes["routes"] = tuple(reversed(head.all("record-route")))
        changes["answered"] = True
    return msgspec.structs.replace(dialog, **changes)


def _invite_received(head: SipHead, source: str) -> Dialog:
    """The far end's INVITE: what a final response copies, and its target and route set (12.1.1)."""
    vias = head.all("via")
    return Dialog(
        inbound=True, call_id=head.first("call-id"), local=head.first("to"), remote=head.first("from"),
        request_uri=head.request_uri, target=uri_of(head.first("contact")), routes=tuple(head.all("record-route")),
        vias=tuple(vias), cseq=head.cseq[0], transport=via_transport(vias[0]) if vias else "udp", peer=source,
    )


def _response_sent(dialog: Dialog, head: SipHead) -> Dialog:
    """Our response to the far end's INVITE: our tag (from the first one that has it); a 2xx answers."""
    to = head.first("to")
    changes: dict[str, object] = {}
    if header_param(to, "tag") and not header_param(dialog.local, "tag"):
        changes["local"] = to
    if 200 <= head.code < 300:
        changes["answered"] = True
    return msgspec.structs.replace(dialog, **changes) if changes else dialog

