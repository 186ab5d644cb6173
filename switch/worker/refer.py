"""REFER on a live leg, answered by the worker itself: accepted with the NOTIFYs the control plane dictates, or
refused.  Never a call placed by pjsua on its own (issue 13, section 4).

What pjsua does by itself (pjsua_call.c, `on_call_transferred`, read in pjproject 2.17; the same in the 2.15
wheel): for an incoming REFER it asks `Call.onCallTransferRequest`; a status >= 300 refuses the REFER with it;
anything else answers 202, sends NOTIFY `100 Trying`, and **places the call to Refer-To itself**
(`pjsua_call_make_call` with the Refer-To header's own text: `prm.dstUri` is a copy, rewriting it changes
nothing) and NOTIFYs the transferor as that call progresses.  That call is one the control plane never asked
for.  pjsua2 has no API to accept a REFER without it.

How this module avoids it: pjsua reports every transaction of a call to `Call.onCallTsxState` *before* it looks
at a REFER, and handles the REFER only if its transaction is still in the Trying state when the callback returns
(`pjsua_call_on_tsx_state_changed`).  When the control plane allowed transfers on the leg (`AllowRefer`),
`Leg.onCallTsxState` answers the REFER right there with pjsip's own transfer API, reached through ctypes in the
loaded pjsua2 library (as `pjengine.max_calls_compiled` reads PJSUA_MAX_CALLS): `pjsip_xfer_create_uas` (the
implicit subscription on the leg's dialog), `pjsip_xfer_accept` (202), `pjsip_xfer_notify` +
`pjsip_xfer_send_request` (NOTIFY `100 Trying`).  The transaction is then completed, so pjsua leaves the REFER
alone: no call is placed.  The control plane runs the `referUrl` and later sends `ReferNotify`: the NOTIFY whose
sipfrag says the outcome (`SIP/2.0 200 OK`, or the failure), which ends the subscription.

Lifetime: pjsip frees a subscription once it is terminated (our final NOTIFY, its own expiry timer, or a leg that
ends first).  An `on_evsub_state` callback drops our pointer the moment pjsip reports the subscription
terminated, so a pointer is never used after pjsip freed it; a leg that ends with a transfer still pending has its
subscription terminated silently (`drop`).  Everything here runs on the pjsua thread.

A REFER the leg does not accept is left to pjsua: `Leg.onCallTransferRequest` refuses it with `REFER_REFUSED`
(403; Twilio answers a REFER it will not honour with 403 and raises its error 13802 when the `<Dial>` had no
`referUrl`).  `Refer-Sub: false` (RFC 4488) is not honoured: the transferor gets the NOTIFYs anyway (it may
answer them 481, which ends the subscription).
"""

from __future__ import annotations

import ctypes
import logging
import re
import time

from switch.worker.pjengine import pj
from switch.workers.protocol import ReferReceived, sip_text

log = logging.getLogger("switch.worker.refer")

EVSUB_ACTIVE = 4  # pjsip_evsub_state
EVSUB_TERMINATED = 5
ACCEPTED = 202
TRYING = 100
_ON_STATE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_CALLBACKS = 6  # function pointers in pjsip_evsub_user; only on_evsub_state is set
_HEADER = re.compile(r"^([A-Za-z0-9!%*_+`'~.-]+)[ \t]*:[ \t]*(.*)$")
_COMPACT = {"r": "refer-to", "b": "referred-by"}


def refer_headers(whole_msg: str) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """The Refer-To and Referred-By values of a REFER (long or compact form; "" if absent) and its X- headers,
    each as sent (folded lines joined)."""
    head = whole_msg.replace("\r\n", "\n").split("\n\n", 1)[0]
    lines: list[str] = []
    for line in head.split("\n")[1:]:
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    refer_to = referred_by = ""
    extra: list[tuple[str, str]] = []
    for line in lines:
        match = _HEADER.match(line)
        if match is None:
            continue
        name, value = match.group(1), match.group(2).strip()
        key = _COMPACT.get(name.lower(), name.lower())
        if key == "refer-to" and not refer_to:
            refer_to = value
        elif key == "referred-by" and not referred_by:
            referred_by = value
        elif key.startswith("x-"):
            extra.append((name, value))
    return sip_text(refer_to), sip_text(referred_by), tuple((sip_text(n), sip_text(v)) for n, v in extra)


def _library() -> ctypes.CDLL:
    lib = ctypes.CDLL(pj._pjsua2.__file__)
    vp, i = ctypes.c_void_p, ctypes.c_int
    for name, args in (
        ("pjsip_rdata_get_dlg", [vp]),
        ("pjsip_xfer_create_uas", [vp, vp, vp, ctypes.POINTER(vp)]),
        ("pjsip_xfer_accept", [vp, vp, i, vp]),
        ("pjsip_xfer_notify", [vp, i, i, vp, ctypes.POINTER(vp)]),
        ("pjsip_xfer_send_request", [vp, vp]),
        ("pjsip_evsub_terminate", [vp, i]),
        ("pjsip_evsub_get_state", [vp]),
    ):
        func = getattr(lib, name)
        func.argtypes = args
        func.restype = vp if name == "pjsip_rdata_get_dlg" else i
    return lib


class Transfers:
    """The REFERs accepted on this worker's legs, each with its pjsip subscription, by leg id."""

    def __init__(self) -> None:
        self._lib = _library()
        self._on_state = _ON_STATE(self._subscription_changed)  # kept alive: pjsip calls it
        callbacks = (ctypes.c_void_p * _CALLBACKS)()
        callbacks[0] = ctypes.cast(self._on_state, ctypes.c_void_p).value
        self._callbacks = callbacks  # pjsip copies the struct; kept anyway
        self._subs: dict[str, int] = {}  # leg id -> pjsip_evsub*
        self._legs: dict[int, str] = {}  # pjsip_evsub* -> leg id
        self._allowed: set[str] = set()  # legs whose REFER is accepted (`AllowRefer`)

    def allow(self, leg_id: str, allow: bool) -> None:
        if allow:
            self._allowed.add(leg_id)
        else:
            self._allowed.discard(leg_id)

    def take(self, leg_id: str, whole_msg: str, rdata: int) -> ReferReceived | None:
        """A REFER on an answered leg: accepted if the leg takes transfers and has none pending (its event), else
        None: left to pjsua, which refuses it (or answers 400 when Refer-To is missing)."""
        if leg_id not in self._allowed or leg_id in self._subs:
            return None
        refer_to, referred_by, headers = refer_headers(whole_msg)
        if not refer_to or not self.accept(leg_id, rdata):
            return None
        log.info("leg %s: REFER to %s accepted", leg_id, refer_to)
        return ReferReceived(leg=leg_id, refer_to=refer_to, referred_by=referred_by, headers=headers, t=time.time())

    def leg_gone(self, leg_id: str) -> None:
        self._allowed.discard(leg_id)
        self.drop(leg_id)

    def accept(self, leg_id: str, rdata: int) -> bool:
        """Inside `onCallTsxState` for the REFER: 202 and NOTIFY `100 Trying`.  False if pjsip would not (the
        REFER is then left to pjsua, which refuses it through `onCallTransferRequest`)."""
        lib = self._lib
        dlg = lib.pjsip_rdata_get_dlg(rdata)
        if not dlg:
            return False
        sub = ctypes.c_void_p()
        status = lib.pjsip_xfer_create_uas(dlg, ctypes.addressof(self._callbacks), rdata, ctypes.byref(sub))
        if status != 0 or not sub.value:
            log.warning("leg %s: cannot create the REFER subscription (pj status %d)", leg_id, status)
            return False
        self._subs[leg_id], self._legs[sub.value] = sub.value, leg_id
        status = lib.pjsip_xfer_accept(sub.value, rdata, ACCEPTED, None)
        if status != 0:
            log.warning("leg %s: cannot answer the REFER 202 (pj status %d)", leg_id, status)
            self.drop(leg_id)
            return False
        self._notify(leg_id, sub.value, EVSUB_ACTIVE, TRYING)
        return True

    def notify(self, leg_id: str, code: int, final: bool = True) -> bool:
        """NOTIFY the transferor with sipfrag `SIP/2.0 <code> <reason>`; `final` ends the subscription."""
        sub = self._subs.get(leg_id)
        if sub is None:
            return False
        return self._notify(leg_id, sub, EVSUB_TERMINATED if final else EVSUB_ACTIVE, code)

    def _notify(self, leg_id: str, sub: int, state: int, code: int) -> bool:
        tdata = ctypes.c_void_p()
        status = int(self._lib.pjsip_xfer_notify(sub, state, code, None, ctypes.byref(tdata)))
        if status == 0:
            status = int(self._lib.pjsip_xfer_send_request(sub, tdata.value))
        if status != 0:
            log.warning("leg %s: NOTIFY %d not sent (pj status %d)", leg_id, code, status)
        return status == 0

    def drop(self, leg_id: str) -> None:
        """The leg ends with its transfer pending: end the subscription without a NOTIFY."""
        sub = self._subs.get(leg_id)
        if sub is not None:
            self._lib.pjsip_evsub_terminate(sub, 0)
            self._forget(sub)  # if pjsip did not report it (it does, synchronously)

    def _forget(self, sub: int) -> None:
        leg_id = self._legs.pop(sub, None)
        if leg_id is not None and self._subs.get(leg_id) == sub:
            del self._subs[leg_id]

    def _subscription_changed(self, sub: int | None, event: int | None) -> None:
        """pjsip's on_evsub_state: forget a subscription the moment it is terminated (pjsip frees it next)."""
        try:
            if sub and self._lib.pjsip_evsub_get_state(sub) == EVSUB_TERMINATED:
                self._forget(sub)
        except Exception:  # a ctypes callback must not raise into C
            log.exception("REFER subscription callback failed")
