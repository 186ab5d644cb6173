"""The control plane's end of a worker's socket: frames read with asyncio and decoded into protocol messages
(the worker's end is `switch.worker.channel`)."""

from __future__ import annotations

import asyncio

from switch.workers.protocol import HEADER, MAX_MESSAGE, Event, Fatal, Hello, ProtocolError, decode_event, decode_hello


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The body of the next frame, or None at a clean EOF."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("truncated header") from exc
        return None
    (length,) = HEADER.unpack(header)
    if length > MAX_MESSAGE:
        raise ProtocolError(f"message length {length} exceeds {MAX_MESSAGE}")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError("truncated body") from exc


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event, or None at a clean EOF."""
    return None if (body := await read_frame(reader)) is None else decode_event(body)


async def read_hello(reader: asyncio.StreamReader) -> Hello | Fatal | None:
    """A worker's first message (see `decode_hello`), or None if it closed the connection at once."""
    return None if (body := await read_frame(reader)) is None else decode_hello(body)
