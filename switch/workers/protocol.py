"""The control plane <-> media worker protocol: length-prefixed JSON over a unix socket.

Each message is a 4-byte big-endian length followed by a UTF-8 JSON object.  The first message on a
connection is the worker's `hello`, carrying `PROTOCOL_VERSION`; the control plane refuses a worker
speaking another version.  Commands go down (`op` key), events come up (`ev` key).

Commands (control plane -> worker):
    {"op": "dial", "leg": ID, "uri": SIP-URI, "from_uri": SIP-URI, "auth": [USER, PASS] | null}
    {"op": "ring", "leg": ID}                         180 on an inbound leg
    {"op": "answer", "leg": ID}                       200 on an inbound leg
    {"op": "hangup", "leg": ID, "code": N}            CANCEL / BYE / final response N for inbound
    {"op": "dtmf", "leg": ID, "digits": "123#"}       RFC 2833
    {"op": "shutdown"}
Events (worker -> control plane):
    {"ev": "hello", "version": V, "worker": I, "capacity": N, "sip": "host:port", "pid": P}
    {"ev": "incoming", "leg": ID, "from_uri", "to_uri", "request_uri", "call_id", "t": WALL}
    {"ev": "invite_sent", "leg": ID, "call_id", "t": WALL}
    {"ev": "progress", "leg": ID, "code": N, "reason": TEXT, "sdp": BOOL, "t": WALL}
    {"ev": "answered", "leg": ID, "code": 200, "t": WALL}
    {"ev": "ended", "leg": ID, "code": N, "reason": TEXT, "t": WALL}
    {"ev": "dial_failed", "leg": ID, "code": N, "reason": TEXT}   makeCall itself failed
    {"ev": "dtmf", "leg": ID, "digit": D}
    {"ev": "log", "level": L, "message": TEXT}
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from typing import Any

PROTOCOL_VERSION = 1
MAX_MESSAGE = 1 << 20
_HEADER = struct.Struct(">I")

Message = dict[str, Any]


class ProtocolError(Exception):
    """The peer sent something that is not a protocol message."""


def encode(message: Message) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(body)} bytes exceeds {MAX_MESSAGE}")
    return _HEADER.pack(len(body)) + body


def _decode(body: bytes) -> Message:
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"bad JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError("message is not a JSON object")
    return message


async def read_message(reader: asyncio.StreamReader) -> Message | None:
    """The next message, or None at a clean EOF."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("truncated header") from exc
        return None
    (length,) = _HEADER.unpack(header)
    if length > MAX_MESSAGE:
        raise ProtocolError(f"message length {length} exceeds {MAX_MESSAGE}")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError("truncated body") from exc
    return _decode(body)


class BlockingChannel:
    """The worker's end: blocking reads on one thread, locked writes from any thread."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._write_lock = threading.Lock()

    def send(self, message: Message) -> None:
        data = encode(message)
        with self._write_lock:
            self._sock.sendall(data)

    def _read_exactly(self, n: int) -> bytes | None:
        chunks = bytearray()
        while len(chunks) < n:
            chunk = self._sock.recv(n - len(chunks))
            if not chunk:
                if chunks:
                    raise ProtocolError("truncated message")
                return None
            chunks += chunk
        return bytes(chunks)

    def receive(self) -> Message | None:
        header = self._read_exactly(_HEADER.size)
        if header is None:
            return None
        (length,) = _HEADER.unpack(header)
        if length > MAX_MESSAGE:
            raise ProtocolError(f"message length {length} exceeds {MAX_MESSAGE}")
        body = self._read_exactly(length)
        if body is None:
            raise ProtocolError("truncated message")
        return _decode(body)

    def close(self) -> None:
        self._sock.close()
