"""Media Streams of live calls: which streams each call has, starting and stopping them, and what they report.

A stream copies a call's audio to a WebSocket server (`switch.core.stream_session.MediaStream` speaks the wire
format of `switch.core.stream_messages`).  It is *listen-only* (``<Start><Stream>``, the REST Streams resource:
the TwiML goes on) or *bidirectional* (``<Connect><Stream>``: the server's audio plays into the call, and the
verb waits until the stream ends).  `StreamManager` keeps each live call's streams by SID, gives them out by
SID or name (the REST update and ``<Stop><Stream name>``), and forgets a call's streams when the call ends.

Each stream reports `StreamChanged` (``started``, ``stopped``, ``error``) to the manager's `observers`: the
Twilio dialect renders them as the stream's statusCallback (`switch.dialects.twilio.streams`).  Errors also
become notifications on the call, with Twilio's codes (`CONNECT_FAILED`, ...).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Literal

from switch.core.errors import Conflict
from switch.core.model import new_sid, utcnow
from switch.core.notifications import ERROR, WARNING, Notifications
from switch.core.stream_model import (
    CONNECT_TIMEOUT,
    MAX_LISTEN_ONLY,
    CallAudio,
    StreamChanged,
    StreamInfo,
    StreamObserver,
    StreamSpec,
    StreamStatus,
)
from switch.core.stream_session import MediaStream
from switch.core.tasks import TaskSet

log = logging.getLogger("switch.core.streams")


class StreamManager:
    """The live calls' streams; `observers` hear every `StreamChanged`."""

    def __init__(self, media: CallAudio, account_sid: str, notifications: Notifications | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT,
                 sign: Callable[[str], dict[str, str]] | None = None) -> None:
        self.media = media
        self._sign = sign  # the upgrade's headers for a URL (X-Twilio-Signature, as Twilio signs it)
        self.account_sid = account_sid
        self.notifications = notifications
        self.connect_timeout = connect_timeout
        self.observers: list[StreamObserver] = []
        self._calls: dict[str, dict[str, MediaStream]] = {}  # call sid -> stream sid -> its MediaStream
        self._tasks = TaskSet()

    def start(self, call_sid: str, spec: StreamSpec) -> MediaStream:
        """Start streaming `call_sid` per `spec`; returns the running `MediaStream` (its `info` says its SID).
        Conflict if a live stream of the call has the name, or the call has its four listen-only streams."""
        streams = self._calls.setdefault(call_sid, {})
        live = [s for s in streams.values() if s.info.status is StreamStatus.IN_PROGRESS]
        if spec.name is not None and any(s.info.name == spec.name for s in live):
            raise Conflict(f"the call already has a stream named {spec.name!r}")
        if not spec.bidirectional and sum(not s.spec.bidirectional for s in live) >= MAX_LISTEN_ONLY:
            raise Conflict(f"the call already has {MAX_LISTEN_ONLY} streams, the most it may have")
        info = StreamInfo(new_sid("MZ"), self.account_sid, call_sid, spec.name, StreamStatus.IN_PROGRESS,
                          utcnow(), spec)
        stream = MediaStream(info, spec, self)
        streams[info.sid] = stream
        stream.task = self._tasks.spawn(stream.run(), call_sid)
        return stream

    def get(self, call_sid: str, sid_or_name: str) -> MediaStream | None:
        """A stream of the call by SID, or the live one (else the latest) with that name; None if none."""
        streams = self._calls.get(call_sid, {})
        if sid_or_name in streams:
            return streams[sid_or_name]
        named = [s for s in streams.values() if s.info.name == sid_or_name]
        live = [s for s in named if s.info.status is StreamStatus.IN_PROGRESS]
        found = live or named
        return found[-1] if found else None

    def listen_only(self, call_sid: str, name: str | None = None) -> list[MediaStream]:
        """The call's live listen-only streams (named `name`, if given)."""
        return [s for s in self._calls.get(call_sid, {}).values()
                if not s.spec.bidirectional and s.info.status is StreamStatus.IN_PROGRESS
                and (name is None or s.info.name == name)]

    def forget(self, call_sid: str) -> None:
        """The call ended: stop its streams (their taps end with the leg anyway) and forget them."""
        for stream in self._calls.pop(call_sid, {}).values():
            stream.stop()

    def headers(self, url: str) -> dict[str, str]:
        return {} if self._sign is None else self._sign(url)

    # -- what the streams report -----------------------------------------------------------------------------
    def changed(self, info: StreamInfo, event: Literal["started", "stopped", "error"], error: str | None = None,
                code: int | None = None) -> None:
        if event != "started":
            info.status = StreamStatus.STOPPED
        info.date_updated = utcnow()
        change = StreamChanged(dataclasses.replace(info), event, info.date_updated, error, code)
        for observer in list(self.observers):
            try:
                observer(change)
            except Exception:
                log.exception("%s: stream observer %r failed on %s", info.call_sid, observer, event)

    def notify(self, info: StreamInfo, code: int, message: str, warning: bool = False) -> None:
        text = f"<Stream> {info.sid}{f' ({info.name})' if info.name else ''} to {info.spec.url}: {message}"
        if self.notifications is not None:
            self.notifications.add(info.call_sid, code, text, info.spec.url, None, WARNING if warning else ERROR)
        else:
            log.warning("%s: error %d: %s", info.call_sid, code, text)

    async def close(self, timeout: float = 2.0) -> None:
        """Stop every stream (shutdown) and wait a little for their stop messages to leave."""
        for call_sid in list(self._calls):
            self.forget(call_sid)
        await self._tasks.wait(timeout)

