"""The worker's end of the control socket: blocking reads on the reader thread, locked writes from any thread.

Frames are those of `switch.workers.protocol`: a 4-byte big-endian length, then the JSON body.
"""

from __future__ import annotations

import socket
import threading

from switch.workers.protocol import HEADER, MAX_MESSAGE, Command, Message, ProtocolError, decode_command, encode


class BlockingChannel:
    """The worker's end: blocking reads on one thread, locked writes from any thread."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._file = sock.makefile("rb")  # buffered: a burst of commands is one recv, not two per command
        self._write_lock = threading.Lock()

    def send(self, message: Message) -> None:
        data = encode(message)
        with self._write_lock:
            self._sock.sendall(data)

    def send_frames(self, frames: list[bytes]) -> None:
        """Frames already encoded (`encode`), in one write."""
        with self._write_lock:
            self._sock.sendall(b"".join(frames))

    def _read_exactly(self, n: int) -> bytes | None:
        data = self._file.read(n)
        if len(data) < n:
            if data:
                raise ProtocolError("truncated message")
            return None
        return data

    def receive_frame(self) -> bytes | None:
        """The body of the next frame, or None at a clean EOF."""
        header = self._read_exactly(HEADER.size)
        if header is None:
            return None
        (length,) = HEADER.unpack(header)
        if length > MAX_MESSAGE:
            raise ProtocolError(f"message length {length} exceeds {MAX_MESSAGE}")
        body = self._read_exactly(length)
        if body is None:
            raise ProtocolError("truncated message")
        return body

    def receive_command(self) -> Command | None:
        """The next command, or None at a clean EOF."""
        body = self.receive_frame()
        return None if body is None else decode_command(body)

    def close(self) -> None:
        self._file.close()
        self._sock.close()
