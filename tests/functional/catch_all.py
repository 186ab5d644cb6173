"""An aiohttp app on 127.0.0.1 that hands every request, whatever its method and path, to one handler."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def catch_all(handle: Handler, shutdown_timeout: float = 60.0) -> AsyncIterator[str]:
    """Serve `handle` on a free port for the block; yields the base URL (`http://127.0.0.1:PORT`)."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
