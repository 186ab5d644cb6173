"""A worker's pjsua2 call and account objects: they only forward pjsua2's callbacks to their engine
(`switch.worker.engine`), after the checks on what a peer sent that must run inside the callback itself
(`switch.worker.guard` says which input is stopped where)."""

from __future__ import annotations

import logging
import time
from typing import Protocol

from switch.worker.guard import REFER_REFUSED, REPLACES_REFUSED, SDP_REFUSED, bad_connection_address
from switch.worker.pjengine import pj
from switch.workers.protocol import Dialog, Event, ReferRefused, RtpStats, sip_text

log = logging.getLogger("switch.worker")


class LegOwner(Protocol):
    """What a `Leg` and a `LocalAccount` call back: the engine."""

    def emit(self, event: Event) -> None: ...
    def on_leg_state(self, leg: Leg) -> None: ...
    def on_dtmf(self, leg: Leg, digit: str) -> None: ...
    def on_media_state(self, leg: Leg) -> None: ...
    def on_stream_destroyed(self, leg: Leg, index: int) -> None: ...
    def on_refer(self, leg: Leg, rdata: pj.SipRxData) -> None: ...
    def on_invite_tsx(self, leg: Leg, tsx_state: pj.TsxStateEvent) -> None: ...
    def on_incoming(self, account: LocalAccount, prm: pj.OnIncomingCallParam) -> None: ...


class Leg(pj.Call):  # type: ignore[misc]
    """One SIP leg; forwards state changes to the engine and does nothing else in callbacks."""

    def __init__(self, engine: LegOwner, leg_id: str, account: pj.Account, call_id: int = -1) -> None:
        if call_id >= 0:
            super().__init__(account, call_id)
        else:
            super().__init__(account)
        self.engine = engine
        self.leg_id = leg_id
        self.account_ref = account  # keeps the (maybe per-credential) account alive with the leg
        self.last_progress = 0
        self.answered = False
        self.inbound = False  # a call the far end placed (set by the engine when it takes the INVITE)
        self.has_media = False  # its audio was active once: media commands may name it from then on
        self.held = False  # the far end holds the leg (its last offer had sendonly/inactive audio)
        self.dialog: Dialog | None = None  # its SIP facts, reported for a worker death (DialogChanged)
        self.rtp: RtpStats | None = None  # its ended audio streams' RTP, summed (switch.worker.rtpstat)

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        try:
            self.engine.on_leg_state(self)
        except Exception:
            log.exception("leg %s: onCallState failed", self.leg_id)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        try:
            self.engine.on_dtmf(self, str(prm.digit))
        except Exception:
            log.exception("leg %s: onDtmfDigit failed", self.leg_id)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        try:
            self.engine.on_media_state(self)
        except Exception:
            log.exception("leg %s: onCallMediaState failed", self.leg_id)

    def onStreamDestroyed(self, prm: pj.OnStreamDestroyedParam) -> None:
        try:
            self.engine.on_stream_destroyed(self, int(prm.streamIdx))
        except Exception:
            log.exception("leg %s: onStreamDestroyed failed", self.leg_id)

    # Guards against what a peer sends (switch.worker.guard says which input is stopped where).
    def onCallRxReinvite(self, prm: pj.OnCallRxReinviteParam) -> None:
        if bad_connection_address(str(prm.offer.wholeSdp)):
            log.warning("leg %s: re-INVITE with a c= address of the wrong family refused", self.leg_id)
            prm.statusCode = SDP_REFUSED

    def onCallRxOffer(self, prm: pj.OnCallRxOfferParam) -> None:
        if bad_connection_address(str(prm.offer.wholeSdp)):
            log.warning("leg %s: offer with a c= address of the wrong family refused", self.leg_id)
            prm.statusCode = SDP_REFUSED

    def onCallReplaceRequest(self, prm: pj.OnCallReplaceRequestParam) -> None:
        log.warning("leg %s: INVITE with Replaces refused", self.leg_id)
        prm.statusCode = REPLACES_REFUSED

    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:
        # A REFER the leg accepts is answered here, before pjsua would place the call itself (switch.worker.refer).
        try:
            event = prm.e
            if event.type != pj.PJSIP_EVENT_TSX_STATE:
                return
            tsx = event.body.tsxState.tsx
            if (tsx.method == "REFER" and tsx.role == pj.PJSIP_ROLE_UAS and tsx.state == pj.PJSIP_TSX_STATE_TRYING
                    and event.body.tsxState.type == pj.PJSIP_EVENT_RX_MSG):
                self.engine.on_refer(self, event.body.tsxState.src.rdata)
            if tsx.method == "INVITE":
                self.engine.on_invite_tsx(self, event.body.tsxState)
        except Exception:
            log.exception("leg %s: onCallTsxState failed", self.leg_id)

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        # Only a REFER the leg does not accept gets here (switch.worker.refer): refuse it, never let pjsua dial.
        prm.statusCode = REFER_REFUSED
        try:
            log.info("leg %s: REFER refused %d", self.leg_id, REFER_REFUSED)
            self.engine.emit(ReferRefused(leg=self.leg_id, refer_to=sip_text(prm.dstUri), code=REFER_REFUSED,
                                          t=time.time()))
        except Exception:
            log.exception("leg %s: onCallTransferRequest failed", self.leg_id)


class LocalAccount(pj.Account):  # type: ignore[misc]
    """The worker's account: no registration, receives every inbound INVITE."""

    def __init__(self, engine: LegOwner) -> None:
        super().__init__()
        self.engine = engine

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        try:
            self.engine.on_incoming(self, prm)
        except Exception:
            log.exception("onIncomingCall failed")
