"""The model of Media Streams: what a stream is asked to do, how it shows, what it reports, what it needs.

Kept apart from the manager (`switch.core.streams`) and the session (`switch.core.stream_session`) so that
both read it without importing each other.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol

from switch.core.errors import INTERNAL_FAILURE

# Twilio's codes for a stream's failures, as the call's notifications carry them.
CONNECT_FAILED = 31901  # "Stream - WebSocket - Connection Timeout": the server is down or unreachable
TLS_FAILED = 31910  # "Stream - WebSocket - SSL Protocol Error"
HANDSHAKE_FAILED = 31920  # "Stream - WebSocket - Handshake Error": the upgrade was answered with a status but 101
CLOSED_BADLY = 31921  # "Stream - WebSocket - Close Error": the socket dropped, or closed with an error code
PROTOCOL_ERROR = 31924  # "Stream - WebSocket - Protocol Error": a message the stream cannot read
BUFFER_OVERFLOW = 31930  # "Stream - Media - Buffer Overflow": the server does not keep up; audio is dropped
NO_AUDIO = INTERNAL_FAILURE  # the call had no audio to stream (an internal error, as the interpreter reports its own)

TRACKS: dict[str, tuple[str, ...]] = {
    "inbound_track": ("inbound",),
    "outbound_track": ("outbound",),
    "both_tracks": ("inbound", "outbound"),
}
"""A ``track`` attribute (TwiML, REST) as the tracks a stream carries: ``inbound`` is what the caller sends,
``outbound`` what the call is sent."""

MAX_LISTEN_ONLY = 4  # Twilio: at most four unidirectional streams on a call at once
CONNECT_TIMEOUT = 10.0  # seconds to open the socket


class StreamStatus(StrEnum):
    IN_PROGRESS = "in-progress"
    STOPPED = "stopped"


class Tap(Protocol):
    """A call's audio tap (`switch.workers.media_taps.AudioTap`): `frames` ends with None."""

    @property
    def frames(self) -> asyncio.Queue[Any]: ...

    @property
    def marks(self) -> asyncio.Queue[str]: ...

    def send(self, payload: bytes) -> None: ...

    def mark(self, name: str) -> None: ...

    def clear(self) -> None: ...

    def stop(self) -> None: ...


class CallAudio(Protocol):
    """What a stream needs of the calls' media (`switch.workers.media.CallMedia`)."""

    async def tap(self, call_sid: str, tracks: tuple[str, ...], inject: bool) -> Any: ...

    def digits(self, call_sid: str) -> asyncio.Queue[str]: ...


@dataclass(frozen=True)
class StreamSpec:
    """What to stream, where: `tracks` of ``inbound`` (what the caller says) and ``outbound`` (what the call
    is sent); `parameters` the server's customParameters; `bidirectional` plays the server's audio into the
    call and sends it the call's DTMF."""

    url: str
    name: str | None = None
    tracks: tuple[str, ...] = ("inbound",)
    bidirectional: bool = False
    status_callback: str | None = None
    status_callback_method: str = "POST"
    parameters: tuple[tuple[str, str], ...] = ()


@dataclass
class StreamInfo:
    """A stream as the REST resource shows it."""

    sid: str
    account_sid: str
    call_sid: str
    name: str | None
    status: StreamStatus
    date_updated: dt.datetime
    spec: StreamSpec


@dataclass(frozen=True)
class StreamChanged:
    """A stream started, stopped or failed (`error` then says why, `code` with Twilio's code)."""

    stream: StreamInfo
    event: Literal["started", "stopped", "error"]
    at: dt.datetime
    error: str | None = None
    code: int | None = None


StreamObserver = Callable[[StreamChanged], None]


class StreamHost(Protocol):
    """What a running stream needs of its manager: the calls' audio, and where to report."""

    media: CallAudio
    connect_timeout: float

    def headers(self, url: str) -> dict[str, str]:
        """The headers of the WebSocket upgrade to `url` (its signature)."""
        ...

    def changed(self, info: StreamInfo, event: Literal["started", "stopped", "error"], error: str | None = None,
                code: int | None = None) -> None: ...

    def notify(self, info: StreamInfo, code: int, message: str, warning: bool = False) -> None: ...
