"""switch.worker.rxguard's Python side, without pjsip: the module's request callback reads a message from a ctypes
buffer laid out as `pjsip_rx_data`'s msg_buf and len (offset 0), and the library is a recorder.  What pjsip itself
does with the module is tested end to end (tests/e2e/test_sip_input_e2e.py)."""

from __future__ import annotations

import ctypes

import pytest

from switch.worker import rxguard
from switch.worker.guard import RawMessage, refuse_request
from switch.worker.rxguard import RxGuard

SDP = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def invite(call_id: str, addr: str = "127.0.0.1") -> bytes:
    body = SDP.format(addr=addr)
    return (f"INVITE sip:+15550100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{call_id}\r\n"
            f"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:+15550100@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:5070>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


class FakeLib:
    """The few pjsua/pjsip functions the request path calls, recorded."""

    def __init__(self) -> None:
        self.hangups: list[tuple[int, int]] = []
        self.stateless: list[int] = []

    def pjsua_call_get_count(self) -> int:
        return 0

    def pjsua_call_get_max_count(self) -> int:
        return 4

    def pjsua_call_hangup(self, call_id: int, code: int, reason: object, msg: object) -> int:
        self.hangups.append((call_id, code))
        return 0

    def pjsip_endpt_respond_stateless(self, endpt: object, rdata: int, code: int, *rest: object) -> int:
        self.stateless.append(code)
        return 0


class RxData(ctypes.Structure):
    _fields_ = [("msg_buf", ctypes.c_void_p), ("len", ctypes.c_int)]


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> tuple[RxGuard, FakeLib]:
    lib = FakeLib()
    monkeypatch.setattr(rxguard, "_library", lambda: lib)
    made = RxGuard()
    made.msg_offset = 0
    return made, lib


def receive(guard: RxGuard, raw: bytes) -> int:
    """Run the module's on_rx_request on `raw` as pjsip would hand it over."""
    buf = ctypes.create_string_buffer(raw, len(raw))
    rdata = RxData(ctypes.cast(buf, ctypes.c_void_p), len(raw))
    return guard._on_request(ctypes.addressof(rdata))


def test_on_incoming_does_not_read_again_the_invite_the_module_let_through(guard: tuple[RxGuard, FakeLib],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The INVITE the module admitted is not checked again in onIncomingCall, once; any other INVITE is, and a bad
    one reaching onIncomingCall another way is hung up 488 there."""
    module, lib = guard
    good, bad = invite("c1"), invite("c2", addr="::1")
    checked: list[bytes] = []  # what refuse_call checked itself

    def counting(message: bytes | RawMessage) -> int:
        if isinstance(message, bytes):
            checked.append(message)
        return refuse_request(message)

    monkeypatch.setattr(rxguard, "refuse_request", counting)
    assert receive(module, good) == 0  # let through to pjsip
    assert module.refuse_call(7, good.decode()) is False
    assert checked == []
    assert module.refuse_call(7, good.decode()) is False  # not the one just admitted any more: checked
    assert module.refuse_call(8, bad.decode()) is True
    assert checked == [good, bad] and lib.hangups == [(8, 488)]
    assert receive(module, bad) == 1 and lib.stateless == [488]  # the module refuses it itself, statelessly
    assert module.refuse_call(9, good.decode()) is False and checked == [good, bad, good]
