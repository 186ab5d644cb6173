"""Ending the SIP side of a dead worker's legs from the control plane, within `REAP_SECONDS`.

A worker that dies (a segfault, SIGKILL, the OOM killer) takes its pjsip dialogs with it: its far ends would hear
dead air until their session timers.  The worker reports each leg's dialog facts as they change (`Dialog`, in
`DialogChanged` events); the pool keeps them, and when the worker's process is gone it hands them to `reap`,
which speaks just enough SIP to end each leg, from the dead worker's own SIP address and port (free once the
process exited) so that answers and ACKs reach it and far ends that check the source see the usual one:

    the leg                               what the far end gets
    answered (2xx sent or received)       BYE (dialog's target and route set, CSeq above any the worker used)
    our INVITE, not answered              CANCEL (the INVITE's Via branch, Route and CSeq number; RFC 3261 9.1);
                                          its 487 is ACKed; a 2xx that crossed it is ACKed, then BYE
    the far end's INVITE, not answered    503 Service Unavailable to it (the Vias copied, our tag), resent until
                                          ACKed: a UAS can only answer; a proxy in front may try another server

Each request or response is resent on UDP every T1 doubling until answered (RFC 3261 17.1.2.2); everything stops
at `REAP_SECONDS`, answered or not, and the socket is released for the worker's replacement.  Every request and
response names the reason: `Reason: Q.850;cause=41;text="media worker lost"` (41: temporary failure).  Requests
the far end sends on a reaped dialog meanwhile get 200 (BYE, CANCEL) or 481; others are left to the replacement.

CSeq of the BYE: pjsip starts a dialog's local CSeq below 0x8000 (sip_dialog.c) and the worker sends few requests
in a dialog (session refreshes, NOTIFYs); `CSEQ_JUMP` above both the INVITE's number and 0x7FFF is always higher
than the last one the far end saw from us, which is all RFC 3261 12.2.2 asks.

TCP legs get their request on a new connection to the same place (the worker's connection died with it); the
far end's answers come back on it.  A far end whose target cannot be resolved gets it at the address its own
messages came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from switch.workers.protocol import Dialog
from switch.workers.sipmsg import (
    SipHead,
    header_param,
    is_ip,
    parse_head,
    split_address,
    uri_host_port,
    uri_of,
    uri_param,
    via_address,
    with_tag,
)

log = logging.getLogger("switch.workers.reaper")

REAP_SECONDS = 2.0
T1 = 0.5
CSEQ_JUMP = 10_000
BIND_TRIES = 25  # x 20 ms: the dead process's socket is normally closed before we learn of its exit
REASON = 'Q.850;cause=41;text="media worker lost"'
Address = tuple[str, int]


def _branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def _message(start: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [start, *(f"{name}: {value}" for name, value in headers), "User-Agent: softswitch", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace")


@dataclass
class Job:
    """One leg to end: what was sent, where to, and how far it got."""

    leg: str
    dialog: Dialog
    kind: str  # bye, cancel, reject
    message: bytes = b""
    dest: Address | None = None
    via: str = ""  # the Via of our BYE/CANCEL (matches its answers)
    answered: bool = False  # our request (or, for reject, our response) got its answer (final, or the ACK)
    invite_done: bool = True  # cancel: the INVITE's final response came (and was ACKed)
    outcome: str = "no answer"
    ack: bytes = b""  # cancel: the ACK of the INVITE's final response, repeated when the response is
    writer: asyncio.StreamWriter | None = None  # a TCP leg's new connection

    @property
    def done(self) -> bool:
        return self.answered and self.invite_done


class Reaper:
    """Ends a dead worker's legs (see the module docstring); `run` returns each leg's outcome."""

    def __init__(self, dialogs: dict[str, Dialog], host: str, port: int, advertised: str,
                 budget: float = REAP_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.dialogs = dialogs
        self.host, self.port, self.advertised = host, port, advertised
        self.budget = budget
        self.clock = clock
        self.jobs: list[Job] = []
        self._by_call: dict[str, Job] = {}
        self.udp: asyncio.DatagramTransport | None = None
        self._tcp: list[asyncio.StreamWriter] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._local: Address = (advertised, port)
        self._changed = asyncio.Event()

    # -- the run --------------------------------------------------------------------------------------
    async def run(self) -> dict[str, str]:
        deadline = self.clock() + self.budget
        try:
            if any(d.transport != "tcp" for d in self.dialogs.values()):
                await self._bind()
            await asyncio.gather(*(self._start(leg, dialog) for leg, dialog in self.dialogs.items()))
            await self._drive(deadline)
        finally:
            self._close()
        return {job.leg: job.outcome for job in self.jobs}

    async def _drive(self, deadline: float) -> None:
        """Resend what is unanswered every T1 doubling until all is answered or the budget is spent."""
        interval = T1
        next_send = self.clock() + interval
        while not all(job.done for job in self.jobs):
            now = self.clock()
            if now >= deadline:
                return
            if now >= next_send:
                for job in self.jobs:
                    if not job.answered and job.writer is None:  # TCP delivers, or its connection fails
                        self._send(job, job.message)
                interval *= 2
                next_send = now + interval
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.0, min(next_send, deadline) - self.clock()))

    async def _bind(self) -> None:
        """The dead worker's own SIP port (free once its process is gone); another port if it is held still."""
        loop = asyncio.get_running_loop()
        for attempt in range(BIND_TRIES + 1):
            port = self.port if attempt < BIND_TRIES else 0
            try:
                transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(self.host, port))
            except OSError:
                await asyncio.sleep(0.02)
                continue
            self.udp = transport
            self._local = (self.advertised, transport.get_extra_info("sockname")[1])
            if port == 0:
                log.warning("SIP port %s:%d still taken: the far ends are sent their end from port %d", self.host,
                            self.port, self._local[1])
            return
        log.error("no UDP socket on %s: the far ends of the dead worker's UDP legs are not told", self.host)

    def _close(self) -> None:
        if self.udp is not None:
            self.udp.close()
        for writer in self._tcp:
            writer.close()
        for task in self._tasks:
            task.cancel()

    # -- what each leg gets -------------------------------------------------------------------------------
    async def _start(self, leg: str, dialog: Dialog) -> None:
        if dialog.answered:
            job = Job(leg, dialog, "bye")
            job.via = self._via(dialog.transport)
            job.message = self._bye(dialog, job.via)
            job.dest = await self._destination(dialog.routes, dialog.target, dialog.peer)
        elif not dialog.inbound:
            job = Job(leg, dialog, "cancel", invite_done=False)
            job.via = dialog.vias[0] if dialog.vias else self._via(dialog.transport)
            job.message = self._cancel(dialog, job.via)
            job.dest = await self._destination(dialog.routes, dialog.request_uri, dialog.peer)
        else:
            job = Job(leg, dialog, "reject")
            job.message = self._reject(dialog)
            job.dest = split_address(dialog.peer) or (via_address(dialog.vias[0]) if dialog.vias else None)
            if job.dest is not None and not is_ip(job.dest[0]):
                job.dest = None
        if job.dest is None:
            log.warning("leg %s: nowhere to send its %s (target %r)", leg, job.kind, dialog.target)
            return
        self.jobs.append(job)
        if dialog.transport == "tcp" and not await self._connect(job):
            return
        self._by_call[dialog.call_id] = job
        self._send(job, job.message)

    def _via(self, transport: str) -> str:
        host, port = self._local
        host = f"[{host}]" if ":" in host else host
        return f"SIP/2.0/{transport.upper()} {host}:{port};rport;branch={_branch()}"

    def _bye(self, dialog: Dialog, via: str, cseq: int | None = None) -> bytes:
        number = cseq if cseq is not None else max(dialog.cseq, 0x7FFF) + CSEQ_JUMP
        return _message(f"BYE {dialog.target} SIP/2.0", [
            ("Via", via), ("Max-Forwards", "70"), *(("Route", r) for r in dialog.routes),
            ("From", dialog.local), ("To", dialog.remote), ("Call-ID", dialog.call_id),
            ("CSeq", f"{number} BYE"), ("Reason", REASON)])

    def _cancel(self, dialog: Dialog, via: str) -> bytes:
        return _message(f"CANCEL {dialog.request_uri} SIP/2.0", [
            ("Via", via), ("Max-Forwards", "70"), *(("Route", r) for r in dialog.routes),
            ("From", dialog.local), ("To", dialog.remote), ("Call-ID", dialog.call_id),
            ("CSeq", f"{dialog.cseq} CANCEL"), ("Reason", REASON)])

    def _reject(self, dialog: Dialog) -> bytes:
        local = dialog.local if header_param(dialog.local, "tag") else with_tag(dialog.local, secrets.token_hex(6))
        return _message("SIP/2.0 503 Service Unavailable", [
            *(("Via", v) for v in dialog.vias), ("From", dialog.remote), ("To", local),
            ("Call-ID", dialog.call_id), ("CSeq", f"{dialog.cseq} INVITE"), ("Reason", REASON)])

    async def _destination(self, routes: tuple[str, ...], uri: str, peer: str) -> Address | None:
        """Where a request goes: its first Route, else its Request-URI (RFC 3263 reduced to A/AAAA records);
        the far end's own source address when that cannot be resolved."""
        host, port, default = _next_hop(routes, uri)
        if host and not is_ip(host):
            try:
                infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(host, port or default), T1)
                host = str(infos[0][4][0])
            except (OSError, IndexError, TimeoutError):
                host = ""
        if host:
            return host, port or default
        return split_address(peer)

    # -- sending and receiving ----------------------------------------------------------------------------
    async def _connect(self, job: Job) -> bool:
        """A TCP leg's new connection (the worker's died with it); False, and the leg given up, when refused."""
        assert job.dest is not None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*job.dest), T1)
        except (OSError, TimeoutError) as exc:
            job.outcome = f"no TCP connection to {job.dest[0]}:{job.dest[1]}: {exc or 'timeout'}"
            job.answered = job.invite_done = True
            return False
        self._tcp.append(writer)
        job.writer = writer
        self._tasks.append(asyncio.get_running_loop().create_task(self._read_tcp(reader, writer)))
        return True

    async def _read_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                parsed = parse_head(head.decode("utf-8", "replace"))
                length = parsed.first("content-length") if parsed is not None else ""
                if length.isdigit() and int(length):
                    await reader.readexactly(int(length))
                if parsed is not None:
                    self.received(parsed, writer.write)

    def _send(self, job: Job, data: bytes) -> None:
        if job.writer is not None:
            if not job.writer.is_closing():
                job.writer.write(data)
        elif self.udp is not None and job.dest is not None:
            self.udp.sendto(data, job.dest)

    def received(self, head: SipHead, reply: Callable[[bytes], None]) -> None:
        """A message from a far end (UDP datagram or TCP; `reply` answers the way it came): match it to its leg
        and move that leg on."""
        job = self._by_call.get(head.first("call-id"))
        if job is None:
            return  # not ours: the worker's replacement will see its retransmission
        if head.is_response:
            self._response(job, head)
        else:
            self._request(job, head, reply)
        self._changed.set()

    def _response(self, job: Job, head: SipHead) -> None:
        number, method = head.cseq
        code = head.code
        if method in ("BYE", "CANCEL") and code >= 200 and header_param(head.first("via"), "branch") == \
                header_param(job.via, "branch"):
            job.answered = True
            job.outcome = f"{method} answered {code}"
            if method == "CANCEL" and code >= 300:
                job.invite_done = True  # the far end knows no such INVITE: nothing more will come
        elif method == "INVITE" and code >= 200 and job.ack:
            self._send(job, job.ack)  # a repeated final response: its ACK was lost
        elif method == "INVITE" and job.kind == "cancel" and number == job.dialog.cseq and code >= 200:
            self._invite_final(job, head, code)

    def _invite_final(self, job: Job, head: SipHead, code: int) -> None:
        """The CANCELed INVITE's final response: ACK it (a 2xx: ACK, then BYE: the call was answered after all)."""
        d = job.dialog
        if code >= 300:
            ack = _message(f"ACK {d.request_uri} SIP/2.0", [
                ("Via", job.via), ("Max-Forwards", "70"), *(("Route", r) for r in d.routes), ("From", d.local),
                ("To", head.first("to")), ("Call-ID", d.call_id), ("CSeq", f"{d.cseq} ACK")])
            job.ack = ack
            self._send(job, ack)
            if not job.invite_done:
                job.invite_done = True
                job.outcome = f"CANCEL answered, INVITE ended {code}"
            return
        if job.invite_done:
            return
        contact = head.first("contact")
        answered = Dialog(inbound=False, call_id=d.call_id, local=d.local, remote=head.first("to"),
                          target=uri_of(contact) if contact else d.request_uri,
                          routes=tuple(reversed(head.all("record-route"))), cseq=d.cseq, transport=d.transport,
                          peer=d.peer, answered=True)
        via = self._via(d.transport)
        ack = _message(f"ACK {answered.target} SIP/2.0", [
            ("Via", via), ("Max-Forwards", "70"), *(("Route", r) for r in answered.routes), ("From", d.local),
            ("To", answered.remote), ("Call-ID", d.call_id), ("CSeq", f"{d.cseq} ACK")])
        job.ack = ack
        job.dest = _literal_destination(answered.routes, answered.target) or job.dest
        self._send(job, ack)
        # The BYE replaces the CANCEL as what the leg waits for.
        job.kind, job.dialog, job.via = "bye", answered, self._via(d.transport)
        job.message = self._bye(answered, job.via, d.cseq + 1)
        job.answered, job.invite_done = False, True
        job.outcome = "answered after the CANCEL: BYE sent"
        self._send(job, job.message)

    def _request(self, job: Job, head: SipHead, reply: Callable[[bytes], None]) -> None:
        method = head.method
        if method == "ACK":
            if job.kind == "reject":
                job.answered = True
                job.outcome = "503 sent and ACKed"
            return
        code, reason = (200, "OK") if method in ("BYE", "CANCEL") else (481, "Call/Transaction Does Not Exist")
        to = head.first("to")
        if not header_param(to, "tag"):
            to = with_tag(to, secrets.token_hex(6))
        response = _message(f"SIP/2.0 {code} {reason}", [
            *(("Via", v) for v in head.all("via")), ("From", head.first("from")), ("To", to),
            ("Call-ID", head.first("call-id")), ("CSeq", head.first("cseq"))])
        reply(response)
        if method == "BYE":  # the far end hung up too: nothing more to end
            job.answered = job.invite_done = True
            job.outcome = "the far end sent BYE itself"


def _next_hop(routes: tuple[str, ...], uri: str) -> tuple[str, int | None, int]:
    """(host, port, default port) a request goes to: its first Route, else its Request-URI; `maddr` wins."""
    target = uri_of(routes[0]) if routes else uri
    host, port = uri_host_port(target)
    default = 5061 if target.lower().startswith("sips:") else 5060
    return uri_param(target, "maddr") or host, port, default


def _literal_destination(routes: tuple[str, ...], uri: str) -> Address | None:
    host, port, default = _next_hop(routes, uri)
    return (host, port or default) if host and is_ip(host) else None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, reaper: Reaper) -> None:
        self.reaper = reaper

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        head = parse_head(data.decode("utf-8", "replace"))
        transport = self.reaper.udp
        if head is not None and transport is not None:
            self.reaper.received(head, lambda response: transport.sendto(response, addr))

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable: the far end is gone too
        log.info("reaper: %s", exc)


async def reap(dialogs: dict[str, Dialog], host: str, port: int, advertised: str,
               budget: float = REAP_SECONDS) -> dict[str, str]:
    """End every leg of `dialogs` (see the module docstring) from `host:port`; each leg's outcome, by leg id."""
    if not dialogs:
        return {}
    return await Reaper(dialogs, host, port, advertised, budget).run()
