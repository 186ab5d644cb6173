"""The worker's end of the control socket: blocking reads on the reader thread, locked writes from any thread
(and a write that never waits, `try_send`, for the pjsua thread).

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
        self._rest = b""  # the end of a frame `try_send` could not write: the next bytes on the socket

    def send(self, message: Message) -> None:
        self.send_frames([encode(message)])

    def send_frames(self, frames: list[bytes]) -> None:
        """Frames already encoded (`encode`), in one write (after what `try_send` left unwritten)."""
        with self._write_lock:
            data, self._rest = self._rest + b"".join(frames), b""
            self._sock.sendall(data)

    def try_send(self, frame: bytes) -> bool:
        """Write `frame` now if that needs no waiting: no other thread is writing, nothing is left unwritten, and
        the socket takes at least its first byte.  True: the frame is the channel's (what the socket did not take
        goes first in the next `send_frames`, which the caller must make happen); False: nothing was written."""
        if self._sock.gettimeout() is not None:  # Python would wait for room before each send: never here
            return False
        if not self._write_lock.acquire(blocking=False):
            return False
        try:
            if self._rest:
                return False
            try:
                sent = self._sock.send(frame, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return False
            self._rest = frame[sent:]
            return True
        finally:
            self._write_lock.release()

    @property
    def unwritten(self) -> bool:
        """A frame `try_send` began is not all written yet."""
        return bool(self._rest)

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
