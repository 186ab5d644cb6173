"""A pjsip module that sees every message a worker receives before pjsip's transaction layer does (issue 13, §2).

pjsua2 has no callback that runs before pjsip acts on a stray response, on the SDP answer to our own INVITE, or
on a request no module handles (REGISTER), so the worker registers its own pjsip module through ctypes on the
wheel's exported C API: `pjsip_module` (a stable public struct: list links, name, id, priority, callbacks) at
priority 15, one ahead of the transaction layer (`PJSIP_MOD_PRIORITY_TSX_LAYER` = 16).  Its `on_rx_request` and
`on_rx_response` read the raw message and ask `switch.worker.guard`:
- `refuse_request`: REGISTER gets `405` with the endpoint's `Allow` header, a new INVITE whose SDP has a `c=`
  of the wrong family gets `488`, both stateless;
- `drop_message`: a 2xx to INVITE without a To tag, a response/ACK/PRACK with such SDP is dropped (logged);
- `NewCallRate`: new INVITEs beyond 25 per 0.5 s get `503` (a storm of short calls would empty the select
  ioqueue's 64 keys: every call opens two sockets, and a closed one keeps its key for ~500 ms).

Reading the raw message needs the offset of `msg_info.msg_buf` (and `len` after it) in `pjsip_rx_data`, which
depends on compile-time sizes (`PJSIP_MAX_PKT_LEN`, ...).  `RxGuard.calibrate` finds it at start: the worker sends
itself an OPTIONS with a marker Call-ID, and the module looks for the pointer word that points into the rdata
at that very message (every read stays inside the rdata, below the field).  If calibration fails the message
checks are off (logged as an error); REGISTER is still answered, from `pjsip_rx_data_get_info`, which needs no
offset.  Everything runs on the pjsua thread (the worker has no other pjsip thread).
"""

from __future__ import annotations

import ctypes
import logging
import socket
import time
from collections.abc import Callable

import pjsua2 as pj

from switch.worker.guard import (
    NEW_CALLS_REFUSED,
    REGISTER_REFUSED,
    NewCallRate,
    drop_message,
    new_invite_call_id,
    refuse_request,
)

log = logging.getLogger("switch.worker.guard")

PRIORITY = 15  # PJSIP_MOD_PRIORITY_TSX_LAYER - 1: before transactions, dialogs and pjsua
_RX = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
_WORD = ctypes.sizeof(ctypes.c_void_p)
_MARK = b"softswitch-rxguard-calibration"
_SCAN_LIMIT = 1 << 18  # the furthest msg_info can be from the start of pjsip_rx_data (packet buffer included)


class _PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_char_p), ("slen", ctypes.c_ssize_t)]


class _Module(ctypes.Structure):
    """`pjsip_module` (pjsip/sip_module.h)."""

    _fields_ = [("prev", ctypes.c_void_p), ("next", ctypes.c_void_p), ("name", _PjStr), ("id", ctypes.c_int),
                ("priority", ctypes.c_int), ("load", ctypes.c_void_p), ("start", ctypes.c_void_p),
                ("stop", ctypes.c_void_p), ("unload", ctypes.c_void_p), ("on_rx_request", _RX),
                ("on_rx_response", _RX), ("on_tx_request", ctypes.c_void_p), ("on_tx_response", ctypes.c_void_p),
                ("on_tsx_state", ctypes.c_void_p)]


def _library() -> ctypes.CDLL:
    lib = ctypes.CDLL(pj._pjsua2.__file__)
    lib.pjsua_get_pjsip_endpt.restype = ctypes.c_void_p
    lib.pjsip_endpt_register_module.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.pjsip_endpt_unregister_module.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.pjsip_rx_data_get_info.argtypes = [ctypes.c_void_p]
    lib.pjsip_rx_data_get_info.restype = ctypes.c_char_p
    lib.pjsip_endpt_respond_stateless.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                                  ctypes.c_void_p, ctypes.c_void_p]
    lib.pjsip_endpt_get_capability.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.pjsip_endpt_get_capability.restype = ctypes.c_void_p
    lib.pjsua_pool_create.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t]
    lib.pjsua_pool_create.restype = ctypes.c_void_p
    lib.pjsip_hdr_clone.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.pjsip_hdr_clone.restype = ctypes.c_void_p
    lib.pj_pool_release.argtypes = [ctypes.c_void_p]
    lib.pjsua_call_hangup.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    return lib


class RxGuard:
    """The worker's pjsip module (see the module docstring); `install` after `libStart`, `uninstall` before
    `libDestroy`."""

    def __init__(self) -> None:
        self._lib = _library()
        self._module = _Module()
        self._callbacks = (_RX(self._on_request), _RX(self._on_response))  # kept alive with the module
        self._module.name = _PjStr(b"mod-softswitch-guard", len(b"mod-softswitch-guard"))
        self._module.id = -1
        self._module.priority = PRIORITY
        self._module.on_rx_request, self._module.on_rx_response = self._callbacks
        self._endpt: int | None = None
        self._pool: int | None = None
        self._allow_list: ctypes.Array[ctypes.c_void_p] | None = None  # a pjsip_hdr list head: prev, next
        self.msg_offset: int | None = None  # offsetof(pjsip_rx_data, msg_info.msg_buf), once calibrated
        self.rate = NewCallRate()
        self.refused = 0
        self.dropped = 0

    # -- life cycle ---------------------------------------------------------------------------------------------
    def install(self) -> None:
        lib = self._lib
        self._endpt = lib.pjsua_get_pjsip_endpt()
        status = lib.pjsip_endpt_register_module(self._endpt, ctypes.byref(self._module))
        if status != 0:
            self._endpt = None
            log.error("guard: cannot register the pjsip module (pj_status %d): no malformed input is checked", status)
            return
        self._pool = lib.pjsua_pool_create(b"guard", 512, 512)
        allow = lib.pjsip_endpt_get_capability(self._endpt, pj.PJSIP_H_ALLOW, None)
        if self._pool and allow:
            clone = lib.pjsip_hdr_clone(self._pool, allow)
            head = (ctypes.c_void_p * 2)(clone, clone)
            links = (ctypes.c_void_p * 2).from_address(clone)  # the clone's own prev, next
            links[0] = links[1] = ctypes.addressof(head)
            self._allow_list = head

    def uninstall(self) -> None:
        if self._endpt is not None:
            self._lib.pjsip_endpt_unregister_module(self._endpt, ctypes.byref(self._module))
            self._endpt = None
        if self._pool:
            self._lib.pj_pool_release(self._pool)
            self._pool = None
            self._allow_list = None

    def calibrate(self, host: str, port: int, pump: Callable[[], None], timeout: float = 2.0) -> bool:
        """Send ourselves a marked OPTIONS and find where pjsip_rx_data keeps the message; `pump` runs pjsip."""
        if self._endpt is None:
            return False
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        literal = f"[{host}]" if family == socket.AF_INET6 else host
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.bind((host, 0))
                local = f"{literal}:{sock.getsockname()[1]}".encode()
                sock.sendto(b"OPTIONS sip:%s:%d SIP/2.0\r\nVia: SIP/2.0/UDP %s;rport;branch=z9hG4bKguard1\r\n"
                            b"Max-Forwards: 70\r\nFrom: <sip:guard@%s>;tag=guard\r\nTo: <sip:guard@%s>\r\n"
                            b"Call-ID: %s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
                            % (literal.encode(), port, local, local, literal.encode(), _MARK), (host, port))
                deadline = time.monotonic() + timeout
                while self.msg_offset is None and time.monotonic() < deadline:
                    pump()
        except OSError as exc:
            log.error("guard: calibration failed (%s)", exc)
        if self.msg_offset is None:
            log.error("guard: cannot find the message in pjsip_rx_data: malformed responses and SDP are not checked")
            return False
        log.info("guard: pjsip_rx_data message at offset %d", self.msg_offset)
        return True

    def refuse_call(self, call_id: int, whole_msg: str) -> bool:
        """In `onIncomingCall`: hang up (488) a new INVITE the module should have refused already (it runs
        uncalibrated, or pjsua got the INVITE some other way), before the call has a `Call` object or a leg."""
        code = refuse_request(whole_msg.encode("utf-8", "surrogateescape"))
        if not code:
            return False
        self.refused += 1
        log.warning("guard: incoming call %d refused %d", call_id, code)
        self._lib.pjsua_call_hangup(call_id, code, None, None)
        return True

    # -- pjsip callbacks (pjsua thread) -------------------------------------------------------------------------
    def _raw(self, rdata: int) -> bytes | None:
        if self.msg_offset is None:
            return None
        buf = ctypes.c_void_p.from_address(rdata + self.msg_offset).value
        size = ctypes.c_int.from_address(rdata + self.msg_offset + _WORD).value
        if not buf or not 0 < size <= _SCAN_LIMIT:
            return None
        return ctypes.string_at(buf, size)

    def _find_offset(self, rdata: int) -> int | None:
        """The offset of the word that points into the rdata at the calibration message (its length after it)."""
        for offset in range(0, _SCAN_LIMIT, _WORD):
            word = ctypes.c_void_p.from_address(rdata + offset).value
            if word and rdata <= word < rdata + offset:
                size = ctypes.c_int.from_address(rdata + offset + _WORD).value
                if size > 0 and word + size <= rdata + offset:
                    data = ctypes.string_at(word, size)
                    if data.startswith(b"OPTIONS ") and _MARK in data:
                        return offset
        return None

    def _on_request(self, rdata: int | None) -> int:
        try:
            if rdata is None:
                return 0
            raw = self._raw(rdata)
            if raw is None:
                info = self._lib.pjsip_rx_data_get_info(rdata) or b""
                if self.msg_offset is None and info.startswith(b"Request msg OPTIONS/"):
                    self.msg_offset = self._find_offset(rdata)
                    if self.msg_offset is not None:
                        return 1  # our own calibration message: nothing to answer
                code = REGISTER_REFUSED if info.startswith(b"Request msg REGISTER/") else 0
            else:
                code = refuse_request(raw)
                if not code and (call_id := new_invite_call_id(raw)):
                    code = 0 if self.rate.admit(call_id, time.monotonic()) else NEW_CALLS_REFUSED
                if not code:
                    return self._drop(raw)
            if not code:
                return 0
            self.refused += 1
            log.log(logging.DEBUG if code == NEW_CALLS_REFUSED else logging.INFO, "guard: %s answered %d",
                    (raw or b"").split(b" ", 1)[0].decode("latin-1") or "request", code)
            head = ctypes.addressof(self._allow_list) if code == REGISTER_REFUSED and self._allow_list else None
            self._lib.pjsip_endpt_respond_stateless(self._endpt, rdata, code, None, head, None)
            return 1
        except Exception:
            log.exception("guard: on_rx_request failed")
            return 0

    def _on_response(self, rdata: int | None) -> int:
        try:
            raw = self._raw(rdata) if rdata is not None else None
            return self._drop(raw) if raw is not None else 0
        except Exception:
            log.exception("guard: on_rx_response failed")
            return 0

    def _drop(self, raw: bytes) -> int:
        """1 (handled: pjsip never sees it) when `drop_message` says so, else 0."""
        why = drop_message(raw)
        if not why:
            return 0
        self.dropped += 1
        log.warning("guard: dropped %r: %s", raw.split(b"\r\n", 1)[0].decode("latin-1"), why)
        return 1
