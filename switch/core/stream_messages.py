"""The Media Streams wire format: the JSON text messages a stream sends its WebSocket server, and those it reads.

Pure: no I/O, no clock.  The format is Twilio's (docs: "Media Streams - WebSocket Messages"), because the bots
written for it (pipecat's Twilio serializer, the Twilio samples) are what people point a stream at:

- to the server: ``connected`` {protocol "Call", version "1.0.0"} (no sequenceNumber, no streamSid: it opens
  the socket's own protocol), then ``start``, ``media``, ``dtmf``, ``mark``, ``stop``, each with
  ``sequenceNumber`` (a string, ``"1"`` for ``start``, one more for each message) and ``streamSid``;
- ``media``: {track "inbound"/"outbound", chunk (the track's frame number from ``"1"``), timestamp (ms since the
  stream started), payload (base64 μ-law, 160 bytes = 20 ms)}, every field a string;
- ``dtmf``: {track "inbound_track", digit}; ``mark``: {name}; ``stop``: {accountSid, callSid};
- from the server (bidirectional streams): ``media`` {payload}, ``mark`` {name}, ``clear``.

:class:`Outgoing` numbers the messages; :func:`read` turns a server's text into a typed :data:`Incoming` or
raises :class:`ProtocolError` with what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

PROTOCOL = "Call"
VERSION = "1.0.0"
MEDIA_FORMAT = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
DTMF_TRACK = "inbound_track"  # the only track whose digits a stream reports


class ProtocolError(Exception):
    """A message from the server that is not one of the stream's (Twilio's error 31924)."""


@dataclass(frozen=True)
class ServerMedia:
    """Audio to play into the call: μ-law bytes, any length."""

    payload: bytes


@dataclass(frozen=True)
class ServerMark:
    """A mark to echo back once the audio sent before it has played."""

    name: str


@dataclass(frozen=True)
class ServerClear:
    """Drop the audio queued for playing."""


Incoming = ServerMedia | ServerMark | ServerClear


def read(text: str | bytes) -> Incoming:
    """A message from the server; ProtocolError if it is not valid JSON or not ``media``/``mark``/``clear``."""
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("not a JSON object")
    event = message.get("event")
    if event == "media":
        body = message.get("media")
        payload = body.get("payload") if isinstance(body, dict) else None
        if not isinstance(payload, str):
            raise ProtocolError("media without media.payload")
        try:
            return ServerMedia(base64.b64decode(payload, validate=True))
        except (binascii.Error, ValueError):
            raise ProtocolError("media.payload is not base64") from None
    if event == "mark":
        body = message.get("mark")
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str):
            raise ProtocolError("mark without mark.name")
        return ServerMark(name)
    if event == "clear":
        return ServerClear()
    raise ProtocolError(f"unknown event {str(event)[:40]!r}")


class Outgoing:
    """Builds one stream's messages to the server, numbering them in the order they are built."""

    def __init__(self, stream_sid: str, account_sid: str, call_sid: str) -> None:
        self.stream_sid = stream_sid
        self.account_sid = account_sid
        self.call_sid = call_sid
        self._sequence = 0

    @staticmethod
    def connected() -> dict[str, Any]:
        return {"event": "connected", "protocol": PROTOCOL, "version": VERSION}

    def _message(self, event: str, body: dict[str, Any] | None) -> dict[str, Any]:
        self._sequence += 1
        message: dict[str, Any] = {"event": event, "sequenceNumber": str(self._sequence)}
        if body is not None:
            message[event] = body
        message["streamSid"] = self.stream_sid
        return message

    def start(self, tracks: tuple[str, ...], custom_parameters: dict[str, str]) -> dict[str, Any]:
        return self._message("start", {
            "accountSid": self.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": list(tracks),
            "customParameters": dict(custom_parameters),
            "mediaFormat": dict(MEDIA_FORMAT),
        })

    def media(self, track: str, seq: int, timestamp: int, payload: bytes) -> dict[str, Any]:
        """A frame of `track`; `seq` counts the track's frames from 0 (the message's chunk from 1)."""
        return self._message("media", {
            "track": track,
            "chunk": str(seq + 1),
            "timestamp": str(timestamp),
            "payload": base64.b64encode(payload).decode("ascii"),
        })

    def dtmf(self, digit: str) -> dict[str, Any]:
        return self._message("dtmf", {"track": DTMF_TRACK, "digit": digit})

    def mark(self, name: str) -> dict[str, Any]:
        return self._message("mark", {"name": name})

    def stop(self) -> dict[str, Any]:
        return self._message("stop", {"accountSid": self.account_sid, "callSid": self.call_sid})
