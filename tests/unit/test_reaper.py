"""A leg's dialog facts (`switch.worker.dialog.fold`, over the messages pjsua2 shows the worker) and the control
plane's reaper (`switch.workers.reaper`), which ends a dead worker's legs: against a far end made of one UDP
socket on loopback, driven step by step."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from switch.worker.dialog import fold
from switch.workers.protocol import Dialog
from switch.workers.reaper import Reaper
from switch.workers.sipmsg import SipHead, header_param, parse_head, split_list, uri_host_port, via_address

US = "127.0.0.1:5060"


def _msg(start: str, *headers: str, body: str = "") -> str:
    return "\r\n".join([start, *headers, f"Content-Length: {len(body)}", "", body])


INVITE_OUT = _msg(
    "INVITE sip:bob@127.0.0.1:5070 SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKPj1",
    "Max-Forwards: 70", "From: sip:+1555@127.0.0.1;tag=ours", "To: sip:bob@127.0.0.1",
    "Contact: <sip:softswitch@127.0.0.1:5060;ob>", "Call-ID: out-1", "CSeq: 28922 INVITE",
    "Route: <sip:127.0.0.9:5080;lr>", body="v=0\r\n")


def _response(code: int, reason: str, to: str, *extra: str, cseq: str = "28922 INVITE", call_id: str = "out-1",
              via: str = "SIP/2.0/UDP 127.0.0.1:5060;rport=5060;branch=z9hG4bKPj1") -> str:
    return _msg(f"SIP/2.0 {code} {reason}", f"Via: {via}", "From: sip:+1555@127.0.0.1;tag=ours", f"To: {to}",
                f"Call-ID: {call_id}", f"CSeq: {cseq}", *extra)


INVITE_IN = _msg(
    "INVITE sip:+15550100@127.0.0.1:5060 SIP/2.0",
    "Via: SIP/2.0/UDP 127.0.0.9:5080;branch=z9hG4bKproxy, "
    "SIP/2.0/UDP 127.0.0.1:5090;received=127.0.0.1;branch=z9hG4bKc",
    'From: "Caller, Esq." <sip:alice@127.0.0.1:5090>;tag=theirs', "To: <sip:+15550100@127.0.0.1>",
    "Call-ID: in-1", "CSeq: 7 INVITE", "Contact: <sip:alice@127.0.0.1:5090;transport=udp>",
    "Record-Route: <sip:127.0.0.9:5080;lr>", "Record-Route: <sip:127.0.0.8;lr>", body="v=0\r\n")


# -- reading SIP text ----------------------------------------------------------------------------------


def test_sip_heads_lists_params_and_addresses() -> None:
    head = parse_head(INVITE_IN)
    assert head is not None and head.method == "INVITE" and head.cseq == (7, "INVITE")
    assert len(head.all("via")) == 2 and head.all("record-route")[1] == "<sip:127.0.0.8;lr>"
    assert split_list('"a, b" <sip:x@h;p=1,2>;q=1, <sip:y@h>') == ['"a, b" <sip:x@h;p=1,2>;q=1', "<sip:y@h>"]
    assert header_param('"Caller, Esq." <sip:alice@h;tag=no>;tag=theirs', "tag") == "theirs"
    assert header_param("sip:bob@h;tag=bare", "tag") == "bare"
    assert uri_host_port("sip:bob@[::1]:5070;lr") == ("::1", 5070)
    assert uri_host_port("sip:h.example") == ("h.example", None)
    assert via_address("SIP/2.0/UDP 10.0.0.1:5090;received=127.0.0.1;rport=4000;branch=z") == ("127.0.0.1", 4000)
    assert via_address("SIP/2.0/UDP 127.0.0.1;branch=z") == ("127.0.0.1", 5060)
    compact = parse_head("BYE sip:a@h SIP/2.0\r\ni: c1\r\nv: SIP/2.0/UDP h;branch=z\r\n l\r\nCSeq: 2 BYE\r\n\r\n")
    assert compact is not None and compact.first("call-id") == "c1" and compact.first("via").endswith(" l")
    assert parse_head("") is None


# -- folding the worker's messages into a dialog ------------------------------------------------------


def test_outbound_dialog_from_invite_challenge_and_answer() -> None:
    dialog = fold(None, INVITE_OUT, "", sent=True)
    assert dialog == Dialog(inbound=False, call_id="out-1", local="sip:+1555@127.0.0.1;tag=ours",
                            remote="sip:bob@127.0.0.1", request_uri="sip:bob@127.0.0.1:5070",
                            routes=("<sip:127.0.0.9:5080;lr>",), vias=(
                                "SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKPj1",), cseq=28922)
    # Re-sent with credentials: a new branch and CSeq, which a CANCEL must carry.
    again = INVITE_OUT.replace("z9hG4bKPj1", "z9hG4bKPj2").replace("28922", "28923")
    dialog = fold(dialog, again, "", sent=True)
    assert dialog is not None and dialog.cseq == 28923 and dialog.vias[0].endswith("z9hG4bKPj2")
    ringing = _response(180, "Ringing", "<sip:bob@127.0.0.1>;tag=b1", "Contact: <sip:bob@127.0.0.1:5070>",
                        cseq="28923 INVITE")
    dialog = fold(dialog, ringing, "127.0.0.1:5070", sent=False)
    assert dialog is not None and (dialog.remote, dialog.peer, dialog.answered) == (
        "<sip:bob@127.0.0.1>;tag=b1", "127.0.0.1:5070", False)
    stale = _response(200, "OK", "<sip:bob@127.0.0.1>;tag=zz", cseq="28922 INVITE")
    assert fold(dialog, stale, "127.0.0.1:5070", sent=False) == dialog  # not the INVITE that counts
    ok = _response(200, "OK", "<sip:bob@127.0.0.1>;tag=b1", "Contact: <sip:bob@127.0.0.1:5071;transport=udp>",
                   "Record-Route: <sip:127.0.0.8;lr>, <sip:127.0.0.9:5080;lr>", cseq="28923 INVITE")
    dialog = fold(dialog, ok, "127.0.0.1:5070", sent=False)
    assert dialog is not None and dialog.answered
    assert dialog.target == "sip:bob@127.0.0.1:5071;transport=udp"
    assert dialog.routes == ("<sip:127.0.0.9:5080;lr>", "<sip:127.0.0.8;lr>")  # the route set: reversed
    reinvite = INVITE_OUT.replace("28922", "28924")
    assert fold(dialog, reinvite, "", sent=True) == dialog  # a session refresh changes nothing needed


def test_inbound_dialog_from_invite_and_our_responses() -> None:
    dialog = fold(None, INVITE_IN, "127.0.0.1:5090", sent=False)
    assert dialog is not None and dialog.inbound and not dialog.answered
    assert dialog.remote == '"Caller, Esq." <sip:alice@127.0.0.1:5090>;tag=theirs'
    assert dialog.target == "sip:alice@127.0.0.1:5090;transport=udp"
    assert dialog.routes == ("<sip:127.0.0.9:5080;lr>", "<sip:127.0.0.8;lr>")  # in order for the callee
    assert len(dialog.vias) == 2 and dialog.peer == "127.0.0.1:5090" and dialog.cseq == 7
    via = "SIP/2.0/UDP 127.0.0.9:5080;branch=z9hG4bKproxy"
    trying = _response(100, "Trying", "<sip:+15550100@127.0.0.1>", cseq="7 INVITE", call_id="in-1", via=via)
    assert fold(dialog, trying, "", sent=True) == dialog
    ringing = _response(180, "Ringing", "<sip:+15550100@127.0.0.1>;tag=mine", cseq="7 INVITE", call_id="in-1",
                        via=via)
    dialog = fold(dialog, ringing, "", sent=True)
    assert dialog is not None and dialog.local == "<sip:+15550100@127.0.0.1>;tag=mine" and not dialog.answered
    ok = _response(200, "OK", "<sip:+15550100@127.0.0.1>;tag=mine", cseq="7 INVITE", call_id="in-1", via=via)
    dialog = fold(dialog, ok, "", sent=True)
    assert dialog is not None and dialog.answered
    assert fold(dialog, "OPTIONS sip:x SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n", "", sent=False) == dialog
    assert fold(None, "garbage", "", sent=False) is None


# -- the reaper against a UDP far end --------------------------------------------------------------------


class FarEnd:
    """One UDP socket on loopback that the test reads from and answers with."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    async def receive(self, timeout: float = 1.0) -> tuple[SipHead, tuple[str, int]]:
        loop = asyncio.get_running_loop()
        data, addr = await asyncio.wait_for(loop.sock_recvfrom(self.sock, 65535), timeout)
        head = parse_head(data.decode())
        assert head is not None
        return head, addr

    def send(self, text: str, addr: tuple[str, int]) -> None:
        self.sock.sendto(text.encode(), addr)

    def nothing(self) -> bool:
        try:
            self.sock.recvfrom(65535)
        except BlockingIOError:
            return True
        return False


@pytest.fixture
def far() -> Iterator[FarEnd]:
    end = FarEnd()
    yield end
    end.sock.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answer(request: SipHead, code: int, reason: str, to_tag: str = "far", method: str | None = None,
            *extra: str) -> str:
    to = request.first("to")
    to = to if "tag=" in to else f"{to};tag={to_tag}"
    number = request.cseq[0]
    return _msg(f"SIP/2.0 {code} {reason}", *(f"Via: {v}" for v in request.all("via")),
                f"From: {request.first('from')}", f"To: {to}", f"Call-ID: {request.first('call-id')}",
                f"CSeq: {number} {method or request.method}", *extra)


def _answered(far: FarEnd) -> Dialog:
    return Dialog(inbound=False, call_id="c-1", local="<sip:+1555@127.0.0.1>;tag=ours",
                  remote="<sip:bob@127.0.0.1>;tag=far", target=f"sip:bob@127.0.0.1:{far.port}",
                  routes=(), cseq=100, peer=f"127.0.0.1:{far.port}", answered=True)


async def test_an_answered_leg_gets_bye_in_its_dialog(far: FarEnd) -> None:
    port = _free_port()
    task = asyncio.create_task(Reaper({"L1": _answered(far)}, "127.0.0.1", port, "127.0.0.1").run())
    bye, addr = await far.receive()
    assert addr == ("127.0.0.1", port)  # from the dead worker's own port
    assert bye.start == f"BYE sip:bob@127.0.0.1:{far.port} SIP/2.0"
    assert (bye.first("from"), bye.first("to"), bye.first("call-id")) == (
        "<sip:+1555@127.0.0.1>;tag=ours", "<sip:bob@127.0.0.1>;tag=far", "c-1")
    assert bye.cseq == (0x7FFF + 10_000, "BYE") and bye.first("reason").startswith("Q.850;cause=41")
    assert bye.first("via").startswith(f"SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bK")
    far.send(_answer(bye, 200, "OK"), addr)
    assert await asyncio.wait_for(task, 1.0) == {"L1": "BYE answered 200"}


async def test_an_unanswered_request_is_resent_until_the_budget_ends(far: FarEnd) -> None:
    task = asyncio.create_task(Reaper({"L1": _answered(far)}, "127.0.0.1", _free_port(), "127.0.0.1",
                                      budget=1.0).run())
    first, _ = await far.receive()
    again, _ = await far.receive(0.7)  # T1
    assert again.first("via") == first.first("via") and again.cseq == first.cseq
    assert await asyncio.wait_for(task, 1.0) == {"L1": "no answer"}
    assert far.nothing()


async def test_an_unanswered_invite_is_canceled_and_its_487_acked(far: FarEnd) -> None:
    invite_via = "SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKPj9"
    dialog = Dialog(inbound=False, call_id="c-2", local="sip:+1555@127.0.0.1;tag=ours", remote="sip:bob@127.0.0.1",
                    request_uri=f"sip:bob@127.0.0.1:{far.port}", vias=(invite_via,), cseq=42)
    task = asyncio.create_task(Reaper({"L2": dialog}, "127.0.0.1", _free_port(), "127.0.0.1").run())
    cancel, addr = await far.receive()
    assert cancel.start == f"CANCEL sip:bob@127.0.0.1:{far.port} SIP/2.0"
    assert cancel.all("via") == [invite_via] and cancel.cseq == (42, "CANCEL")
    assert cancel.first("to") == "sip:bob@127.0.0.1"  # no tag: as in the INVITE
    far.send(_answer(cancel, 200, "OK"), addr)
    far.send(_answer(cancel, 487, "Request Terminated", "far", "INVITE"), addr)
    ack, _ = await far.receive()
    assert ack.start == f"ACK sip:bob@127.0.0.1:{far.port} SIP/2.0"
    assert ack.all("via") == [invite_via] and ack.cseq == (42, "ACK") and ack.first("to").endswith(";tag=far")
    assert await asyncio.wait_for(task, 1.0) == {"L2": "CANCEL answered, INVITE ended 487"}


async def test_an_answer_that_crosses_the_cancel_is_acked_and_ended(far: FarEnd) -> None:
    dialog = Dialog(inbound=False, call_id="c-3", local="sip:+1555@127.0.0.1;tag=ours", remote="sip:bob@127.0.0.1",
                    request_uri=f"sip:bob@127.0.0.1:{far.port}", vias=("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx",),
                    cseq=5)
    task = asyncio.create_task(Reaper({"L3": dialog}, "127.0.0.1", _free_port(), "127.0.0.1").run())
    cancel, addr = await far.receive()
    far.send(_answer(cancel, 200, "OK", "far", "INVITE", f"Contact: <sip:bob@127.0.0.1:{far.port};x=1>"), addr)
    far.send(_answer(cancel, 481, "Call/Transaction Does Not Exist"), addr)
    ack, _ = await far.receive()
    bye, _ = await far.receive()
    assert ack.start == f"ACK sip:bob@127.0.0.1:{far.port};x=1 SIP/2.0" and ack.cseq == (5, "ACK")
    assert ack.first("via") != cancel.first("via")  # a 2xx ACK is a transaction of its own
    assert bye.method == "BYE" and bye.cseq == (6, "BYE") and bye.first("to").endswith(";tag=far")
    far.send(_answer(bye, 200, "OK"), addr)
    assert await asyncio.wait_for(task, 1.0) == {"L3": "BYE answered 200"}


async def test_a_caller_not_answered_gets_503_until_it_acks(far: FarEnd) -> None:
    dialog = fold(None, INVITE_IN, f"127.0.0.1:{far.port}", sent=False)
    assert dialog is not None
    task = asyncio.create_task(Reaper({"in0-1": dialog}, "127.0.0.1", _free_port(), "127.0.0.1").run())
    final, addr = await far.receive()
    assert final.start == "SIP/2.0 503 Service Unavailable"
    assert final.all("via") == list(dialog.vias) and final.cseq == (7, "INVITE")
    assert final.first("from") == dialog.remote and header_param(final.first("to"), "tag")
    again, _ = await far.receive(0.7)  # resent until ACKed
    assert again.first("to") == final.first("to")
    far.send(_msg("ACK sip:+15550100@127.0.0.1:5060 SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKc",
                  "Call-ID: in-1", "CSeq: 7 ACK", f"To: {final.first('to')}"), addr)
    assert await asyncio.wait_for(task, 1.0) == {"in0-1": "503 sent and ACKed"}


async def test_a_bye_from_the_far_end_meanwhile_is_answered(far: FarEnd) -> None:
    task = asyncio.create_task(Reaper({"L1": _answered(far)}, "127.0.0.1", _free_port(), "127.0.0.1").run())
    _, addr = await far.receive()
    theirs = _msg("BYE sip:softswitch@127.0.0.1 SIP/2.0", f"Via: SIP/2.0/UDP 127.0.0.1:{far.port};branch=z9hG4bKf",
                  "From: <sip:bob@127.0.0.1>;tag=far", "To: <sip:+1555@127.0.0.1>;tag=ours", "Call-ID: c-1",
                  "CSeq: 9 BYE")
    far.send(theirs, addr)
    ok, _ = await far.receive()
    assert ok.start == "SIP/2.0 200 OK" and ok.cseq == (9, "BYE")
    assert await asyncio.wait_for(task, 1.0) == {"L1": "the far end sent BYE itself"}


async def test_a_tcp_leg_gets_its_bye_on_a_new_connection() -> None:
    got: list[SipHead] = []

    async def far_end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = parse_head((await reader.readuntil(b"\r\n\r\n")).decode())
        assert head is not None
        got.append(head)
        writer.write(_answer(head, 200, "OK").encode())
        await writer.drain()

    server = await asyncio.start_server(far_end, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    closed = _free_port()
    dialogs = {
        "T1": Dialog(inbound=False, call_id="t-1", local="<sip:a@127.0.0.1>;tag=ours", remote="<sip:b@h>;tag=far",
                     target=f"sip:b@127.0.0.1:{port};transport=tcp", cseq=1, transport="tcp", answered=True),
        "T2": Dialog(inbound=False, call_id="t-2", local="<sip:a@127.0.0.1>;tag=ours", remote="<sip:c@h>;tag=far",
                     target=f"sip:c@127.0.0.1:{closed};transport=tcp", cseq=1, transport="tcp", answered=True),
    }
    async with server:
        outcomes = await asyncio.wait_for(Reaper(dialogs, "127.0.0.1", _free_port(), "127.0.0.1").run(), 2.0)
    assert outcomes["T1"] == "BYE answered 200"
    assert outcomes["T2"].startswith(f"no TCP connection to 127.0.0.1:{closed}")
    assert [h.method for h in got] == ["BYE"] and got[0].first("via").startswith("SIP/2.0/TCP 127.0.0.1:")
