"""The `<Stream>` noun: the stream it asks for, and `<Connect><Stream>`, the bidirectional stream a call waits on.

`<Start><Stream>` (`switch.verbs.start`) and the REST Streams resource start listen-only streams and go on;
`<Connect><Stream>` starts a bidirectional one (the server's audio plays into the call, the caller's DTMF goes
to the server) and waits until it ends: the server closes the socket, the stream is stopped over REST, or it
fails.  Then `action` (if any) is requested, else the next verb runs; a failure is a notification and the call
goes on.  Interrupted (the caller hung up, a REST redirect), the stream is stopped.
"""

from __future__ import annotations

import asyncio
import urllib.parse

from switch.core.errors import RequestError
from switch.core.stream_model import TRACKS, StreamSpec
from switch.core.stream_session import MediaStream
from switch.core.streams import StreamManager
from switch.session.voice import LiveCall
from switch.verbs.base import ensure_answered
from twiml import verbs
from twiml.control import CONTINUE, STOP, Outcome
from twiml.fetch import resolve

# A stream that cannot start (a url that is not ws/wss, a name already streaming, a fifth listen-only stream): a
# warning with 11100, Twilio's "Invalid URL format" (Twilio documents no code for the other refusals).
STREAM_REFUSED = 11100
WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


def websocket_url(document_url: str | None, url: str) -> str:
    """`url` made absolute against the document, its scheme made a WebSocket one (http -> ws, https -> wss)."""
    absolute = resolve(document_url, url)
    parts = urllib.parse.urlsplit(absolute)
    scheme = WEBSOCKET_SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"not a ws:// or wss:// URL: {absolute!r}")
    return urllib.parse.urlunsplit((scheme, *parts[1:]))


def stream_spec(noun: verbs.Stream, document_url: str | None, bidirectional: bool) -> StreamSpec:
    """The stream a `<Stream>` asks for; ValueError if its url is not a WebSocket one."""
    callback = resolve(document_url, noun.status_callback) if noun.status_callback else None
    return StreamSpec(url=websocket_url(document_url, noun.url or ""), name=noun.name, tracks=TRACKS[noun.track],
                      bidirectional=bidirectional, status_callback=callback,
                      status_callback_method=noun.status_callback_method, parameters=noun.parameters)


def streams_of(call: LiveCall) -> StreamManager:
    manager = call.engine.streams
    if manager is None:
        raise RuntimeError("no stream manager is wired into the voice engine")
    return manager


def start_stream(call: LiveCall, noun: verbs.Stream, document_url: str | None,
                 bidirectional: bool) -> MediaStream | None:
    """Start the stream `noun` asks for; None (with a warning on the call) if it cannot be."""
    try:
        spec = stream_spec(noun, document_url, bidirectional)
        return streams_of(call).start(call.sid, spec)
    except (ValueError, RequestError) as exc:
        message = exc.message if isinstance(exc, RequestError) else str(exc)
        verb = "<Connect><Stream>" if bidirectional else "<Start><Stream>"
        call.notify(STREAM_REFUSED, f"{verb} not started: {message}", noun.url, warning=True)
        return None


async def connect_stream(call: LiveCall, verb: verbs.Connect, noun: verbs.Stream,
                         document_url: str | None) -> Outcome:
    """`<Connect action method><Stream url name track statusCallback statusCallbackMethod>`: stream both ways
    until the stream ends; then `action` (no extra parameters), or the next verb."""
    await ensure_answered(call)
    stream = start_stream(call, noun, document_url, bidirectional=True)
    if stream is None:
        return CONTINUE
    try:
        await stream.wait()
    except asyncio.CancelledError:
        stream.stop()
        raise
    if call.call.terminal:
        return STOP
    if verb.action is None:
        return CONTINUE
    return Outcome(next_url=resolve(document_url, verb.action), method=verb.method)
