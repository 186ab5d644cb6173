"""A pjsip module that sees every message a worker receives before pjsip's transaction layer does (issue 13, §2).

pjsua2 has no callback that runs before pjsip acts on a stray response, on the SDP answer to our own INVITE, or
on a request no module handles (REGISTER), so the worker registers its own pjsip module through ctypes on the
wheel's exported C API: `pjsip_module` (a stable public struct: list links, name, id, priority, callbacks) at
priority 15, one ahead of the transaction layer (`PJSIP_MOD_PRIORITY_TSX_LAYER` = 16).  Its `on_rx_request` and
`on_rx_response` read the raw message and ask `switch.worker.guard`:
- `refuse_request`: REGISTER gets `405` with the endpoint's `Allow` header, a new INVITE whose SDP has a `c=`
  of the wrong family gets `488`, both stateless;
- `drop_message`: a 2xx to INVITE without a To tag, a response/ACK/PRACK with such SDP is dropped (logged);
- `NewCallRate`: new INVITEs beyond 25 per 0.5 s get `503` on the PyPI engine (a storm of short calls would empty
  its select ioqueue's 64 keys: every call opens two sockets, and a closed one keeps its key for ~500 ms), beyond
  250 per 0.5 s on the built one;
- a new INVITE when every call slot is taken gets `503` with `Retry-After` (pjsua would answer 486 Busy Here,
  which callers and the SIP edge take for a busy callee; a 503 makes the edge try the next worker).

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

from switch.worker.guard import (
    NEW_CALLS_PER_WINDOW,
    NEW_CALLS_PER_WINDOW_BUILT,
    NEW_CALLS_REFUSED,
    REGISTER_REFUSED,
    NewCallRate,
    RawMessage,
    drop_message,
    new_invite_call_id,
    parse_raw,
    refuse_request,
)
from switch.worker.pjengine import KIND, pj

log = logging.getLogger("switch.worker.guard")

RETRY_AFTER_S = 5  # on every 503 of ours: when a caller (or the SIP edge) may try this worker again
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
    lib.pjsip_retry_after_hdr_create.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.pjsip_retry_after_hdr_create.restype = ctypes.c_void_p
    return lib


def _header_list(pool_owned_hdr: int) -> ctypes.Array[ctypes.c_void_p]:
    """A pjsip_hdr list head (prev, next) holding the one header `pool_owned_hdr` (its own links rewritten)."""
    head = (ctypes.c_void_p * 2)(pool_owned_hdr, pool_owned_hdr)
    links = (ctypes.c_void_p * 2).from_address(pool_owned_hdr)  # the header's own prev, next
    links[0] = links[1] = ctypes.addressof(head)
    return head


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
        self._retry_list: ctypes.Array[ctypes.c_void_p] | None = None  # Retry-After, on our 503s
        self.full = 0  # new INVITEs answered 503 because every call slot was taken
        self.msg_offset: int | None = None  # offsetof(pjsip_rx_data, msg_info.msg_buf), once calibrated
        self.rate = NewCallRate(NEW_CALLS_PER_WINDOW if KIND == "wheel" else NEW_CALLS_PER_WINDOW_BUILT)
        self.refused = 0
        self.dropped = 0
        self._admitted = b""  # the last new INVITE `_on_request` let through: `refuse_call` need not check it again

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
            self._allow_list = _header_list(lib.pjsip_hdr_clone(self._pool, allow))
        if self._pool:
            retry = lib.pjsip_retry_after_hdr_create(self._pool, RETRY_AFTER_S)
            self._retry_list = _header_list(retry) if retry else None

    def uninstall(self) -> None:
        if self._endpt is not None:
            self._lib.pjsip_endpt_unregister_module(self._endpt, ctypes.byref(self._module))
            self._endpt = None
        if self._pool:
            self._lib.pj_pool_release(self._pool)
            self._pool = None
            self._allow_list = self._retry_list = None

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
        uncalibrated, or pjsua got the INVITE some other way), before the call has a `Call` object or a leg.  The
        INVITE the module has just let through, byte for byte, is not read again."""
        raw = whole_msg.encode("utf-8", "surrogateescape")
        admitted, self._admitted = self._admitted, b""
        if raw == admitted:
            return False
        code = refuse_request(raw)
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
                message = parse_raw(raw)  # once, for the three checks
                if message is None:
                    return 0
                code = refuse_request(message)
                call_id = new_invite_call_id(message) if not code else None
                if call_id:
                    code = self._admit(call_id)
                if not code:
                    dropped = self._drop(raw, message)
                    self._admitted = raw if call_id and not dropped else b""
                    return dropped
            if not code:
                return 0
            self.refused += 1
            log.log(logging.DEBUG if code == NEW_CALLS_REFUSED else logging.INFO, "guard: %s answered %d",
                    (raw or b"").split(b" ", 1)[0].decode("latin-1") or "request", code)
            headers = self._allow_list if code == REGISTER_REFUSED else self._retry_list
            head = ctypes.addressof(headers) if headers is not None else None
            self._lib.pjsip_endpt_respond_stateless(self._endpt, rdata, code, None, head, None)
            return 1
        except Exception:
            log.exception("guard: on_rx_request failed")
            return 0

    def _admit(self, call_id: str) -> int:
        """0 to let a new INVITE through; 503 when every call slot is taken (pjsua itself would answer 486,
        which a caller and the SIP edge read as the callee being busy) or beyond the rate.  A retransmission of
        an INVITE admitted a moment ago is let through to the transaction layer."""
        if not self.rate.seen(call_id) and self._lib.pjsua_call_get_count() >= self._lib.pjsua_call_get_max_count():
            self.full += 1
            return NEW_CALLS_REFUSED
        return 0 if self.rate.admit(call_id, time.monotonic()) else NEW_CALLS_REFUSED

    def _on_response(self, rdata: int | None) -> int:
        try:
            if rdata is None or (raw := self._raw(rdata)) is None or (message := parse_raw(raw)) is None:
                return 0
            return self._drop(raw, message)
        except Exception:
            log.exception("guard: on_rx_response failed")
            return 0

    def _drop(self, raw: bytes, message: RawMessage) -> int:
        """1 (handled: pjsip never sees it) when `drop_message` says so of `message` (`raw` parsed), else 0."""
        why = drop_message(message)
        if not why:
            return 0
        self.dropped += 1
        log.warning("guard: dropped %r: %s", raw.split(b"\r\n", 1)[0].decode("latin-1"), why)
        return 1
