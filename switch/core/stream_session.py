"""One Media Stream on one call: a WebSocket client that sends the call's audio and, bidirectional, plays back.

`MediaStream.run` opens the socket (aiohttp; ``ws://`` or ``wss://``), taps the call's audio, sends
``connected`` and ``start``, then runs until one of three things happens:

- the stream is stopped (`stop`: ``<Stop><Stream>``, the REST update, a ``<Connect>`` interrupted, the call's
  end): ``stop`` is sent and the socket closed with 1000 -- reported ``stopped``;
- the call's audio ends (the leg went away, its worker died): the same;
- the server closes the socket: with a normal close (1000, 1001, or no code) ``stopped``; with another code,
  or a connection that drops without a close frame, ``error`` (Twilio's 31921).

Failing to connect is ``error`` too: the server is down or unreachable (31901), refuses the upgrade with an HTTP
status (31920), or fails TLS (31910).  A message from the server that cannot be read is a warning (31924) and is
skipped; the stream goes on.  A server that stops reading lets `BACKLOG` messages pile up, then the call's audio
is dropped (a warning, 31930) rather than held without bound.  Every error is a notification on the call; the
call itself goes on.

All messages to the server leave through one writer task, in the order they were numbered.  The server's audio
goes to the tap as it arrives; the worker queues it and plays it in real time, echoes marks when the audio
before them has played, and drops the queue on ``clear``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from media.errors import MediaError
from switch.core.stream_messages import (
    Outgoing,
    ProtocolError,
    ServerClear,
    ServerMark,
    ServerMedia,
    read,
)
from switch.core.stream_model import (
    BUFFER_OVERFLOW,
    CLOSED_BADLY,
    CONNECT_FAILED,
    HANDSHAKE_FAILED,
    NO_AUDIO,
    PROTOCOL_ERROR,
    TLS_FAILED,
    StreamHost,
    StreamInfo,
    StreamSpec,
    Tap,
)

log = logging.getLogger("switch.core.streams")

CLEAN_CLOSES = frozenset({1000, 1001, 1005})  # normal, going away, and a close frame without a code
CLOSE_TIMEOUT = 2.0  # seconds to wait for the server's answer to our close frame
FLUSH_TIMEOUT = 2.0  # seconds for the last messages (``stop``) to leave
MAX_MESSAGE = 4 * 1024 * 1024  # the largest message read from the server (a few minutes of audio)
BACKLOG = 3000  # messages waiting for a server that does not read (30 s of both tracks): later audio is dropped


@dataclass(frozen=True)
class StreamEnd:
    """How a stream ended: `reason` stopped (by us), closed (by the server), ended (the call's audio ended),
    or error, with Twilio's `code` and the words of `error`."""

    reason: Literal["stopped", "closed", "ended", "error"]
    code: int | None = None
    error: str | None = None


class MediaStream:
    """A running stream: `info` is its resource, `task` the task running `run`, `stop` ends it."""

    def __init__(self, info: StreamInfo, spec: StreamSpec, host: StreamHost) -> None:
        self.info = info
        self.spec = spec
        self.host = host
        self.task: asyncio.Task[StreamEnd] | None = None
        self.ended: StreamEnd | None = None
        self._stopping = asyncio.Event()
        self._out: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._messages = Outgoing(info.sid, info.account_sid, info.call_sid)
        self._warned = False

    @property
    def sid(self) -> str:
        return self.info.sid

    def stop(self) -> None:
        """End the stream: ``stop`` to the server, then the socket closes."""
        self._stopping.set()

    async def wait(self) -> StreamEnd:
        """Wait for the end of the stream (cancelling the wait leaves the stream running)."""
        assert self.task is not None, "the stream was never started"
        return await asyncio.shield(self.task)

    async def run(self) -> StreamEnd:
        try:
            end = await self._run()
        except asyncio.CancelledError:
            self._ended(StreamEnd("stopped"))
            raise
        except Exception as exc:  # a bug must not leave the stream in progress: report it
            log.exception("%s: stream %s failed", self.info.call_sid, self.sid)
            end = StreamEnd("error", NO_AUDIO, f"internal error: {exc!r}")
        self._ended(end)
        return end

    def _ended(self, end: StreamEnd) -> None:
        if self.ended is not None:
            return
        self.ended = end
        log.info("%s: stream %s %s%s", self.info.call_sid, self.sid, end.reason, f": {end.error}" if end.error else "")
        if end.reason == "error":
            self.host.notify(self.info, end.code or CLOSED_BADLY, end.error or "failed")
            self.host.changed(self.info, "error", end.error, end.code)
        else:
            self.host.changed(self.info, "stopped")

    async def _run(self) -> StreamEnd:
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT)
        async with aiohttp.ClientSession() as session:
            try:
                async with asyncio.timeout(self.host.connect_timeout):
                    ws = await session.ws_connect(self.spec.url, timeout=timeout, max_msg_size=MAX_MESSAGE,
                                                  autoping=True, headers=self.host.headers(self.spec.url))
            except aiohttp.WSServerHandshakeError as exc:
                return StreamEnd("error", HANDSHAKE_FAILED,
                                 f"the server answered the WebSocket upgrade with HTTP {exc.status}")
            except aiohttp.ClientSSLError as exc:
                return StreamEnd("error", TLS_FAILED, f"TLS failed: {exc}")
            except TimeoutError:
                return StreamEnd("error", CONNECT_FAILED, f"no connection within {self.host.connect_timeout:g} s")
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                return StreamEnd("error", CONNECT_FAILED, f"cannot connect: {exc}")
            try:
                if self._stopping.is_set():
                    return StreamEnd("stopped")
                try:
                    tap: Tap = await self.host.media.tap(self.info.call_sid, self.spec.tracks, self.spec.bidirectional)
                except MediaError as exc:
                    return StreamEnd("error", NO_AUDIO, f"the call's audio cannot be streamed: {exc}")
                try:
                    return await self._stream(ws, tap)
                finally:
                    tap.stop()
            finally:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    await ws.close()

    async def _stream(self, ws: aiohttp.ClientWebSocketResponse, tap: Tap) -> StreamEnd:
        self._out.put_nowait(Outgoing.connected())
        self._out.put_nowait(self._messages.start(self.spec.tracks, dict(self.spec.parameters)))
        writer = asyncio.create_task(self._write(ws))
        reader = asyncio.create_task(self._read(ws, tap))
        pump = asyncio.create_task(self._pump(tap))
        stopping = asyncio.create_task(self._stopping.wait())
        helpers = [asyncio.create_task(self._marks(tap))]
        if self.spec.bidirectional:
            helpers.append(asyncio.create_task(self._digits()))
        self.host.changed(self.info, "started")
        try:
            await asyncio.wait({reader, pump, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                return reader.result()  # the server closed the socket: nothing more can be sent
            for helper in helpers:
                helper.cancel()
            self._out.put_nowait(self._messages.stop())
            self._out.put_nowait(None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), FLUSH_TIMEOUT)
            return StreamEnd("ended") if pump.done() and not stopping.done() else StreamEnd("stopped")
        finally:
            tasks = [writer, reader, pump, stopping, *helpers]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _write(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Send the numbered messages in order until None (or the socket is gone)."""
        while (message := await self._out.get()) is not None:
            try:
                await ws.send_str(json.dumps(message, separators=(",", ":")))
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
                log.info("%s: stream %s: cannot send %s: %r", self.info.call_sid, self.sid, message["event"], exc)
                return

    async def _pump(self, tap: Tap) -> StreamEnd:
        """The call's audio frames, to the server, until the tap ends."""
        dropped = 0
        while (frame := await tap.frames.get()) is not None:
            if self._out.qsize() < BACKLOG:
                self._out.put_nowait(self._messages.media(frame.track, frame.seq, frame.timestamp, frame.payload))
                continue
            dropped += 1
            if dropped == 1:  # once per stream: the server is not reading
                self.host.notify(self.info, BUFFER_OVERFLOW, f"the server reads too slowly; {BACKLOG} messages are "
                                 "waiting, so the call's audio is being dropped", warning=True)
        return StreamEnd("ended")

    async def _marks(self, tap: Tap) -> None:
        """Marks whose audio has played (or was cleared), echoed to the server."""
        while True:
            self._out.put_nowait(self._messages.mark(await tap.marks.get()))

    async def _digits(self) -> None:
        """The caller's DTMF (bidirectional streams: nothing else reads the digits while the stream runs)."""
        try:
            queue = self.host.media.digits(self.info.call_sid)
        except MediaError:
            return
        while not queue.empty():  # keys pressed before the stream began are not the server's
            queue.get_nowait()
        while True:
            self._out.put_nowait(self._messages.dtmf(await queue.get()))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, tap: Tap) -> StreamEnd:
        """The server's messages, until its socket closes."""
        while True:
            message = await ws.receive()
            if message.type is aiohttp.WSMsgType.TEXT:
                self._received(message.data, tap)
            elif message.type is aiohttp.WSMsgType.BINARY:
                self._protocol_error("a binary message (the stream reads JSON text)")
            elif message.type is aiohttp.WSMsgType.CLOSE:
                code = ws.close_code
                if code in CLEAN_CLOSES:
                    return StreamEnd("closed")
                return StreamEnd("error", CLOSED_BADLY, f"the server closed the socket with code {code}")
            elif message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                why = ws.exception() or "no close frame"
                return StreamEnd("error", CLOSED_BADLY, f"the connection to the server dropped ({why})")

    def _received(self, text: str, tap: Tap) -> None:
        try:
            command = read(text)
        except ProtocolError as exc:
            self._protocol_error(str(exc))
            return
        if not self.spec.bidirectional:
            self._protocol_error(f"{type(command).__name__}: a listen-only stream (<Start>) takes no messages")
            return
        match command:
            case ServerMedia(payload):
                tap.send(payload)
            case ServerMark(name):
                tap.mark(name)
            case ServerClear():
                tap.clear()

    def _protocol_error(self, what: str) -> None:
        """A message the stream cannot use: skipped; the first one of the stream is a warning on the call."""
        log.info("%s: stream %s: skipped a message: %s", self.info.call_sid, self.sid, what)
        if not self._warned:
            self._warned = True
            self.host.notify(self.info, PROTOCOL_ERROR, f"a message from the server was skipped: {what}",
                             warning=True)
