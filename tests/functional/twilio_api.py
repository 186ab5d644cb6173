"""What the functional tests of the Twilio Calls API (test_api_twilio*.py) share besides their fixtures (in
conftest.py): the aiohttp application served on 127.0.0.1 in a background thread (the official client is
synchronous), and small helpers."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import requests
from aiohttp import web
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

CALL_FIELDS = {
    "sid", "date_created", "date_updated", "parent_call_sid", "account_sid", "to", "to_formatted", "from",
    "from_formatted", "phone_number_sid", "status", "start_time", "end_time", "duration", "price",
    "price_unit", "direction", "answered_by", "api_version", "forwarded_from", "group_sid", "caller_name",
    "queue_time", "stir_verstat", "trunk_sid", "uri", "subresource_uris",
    "softswitch_media_quality",  # not Twilio's: the finished leg's RTP (null until then)
}  # fmt: skip
URL = "https://app.example.com/voice"


class Server:
    """An aiohttp app served on 127.0.0.1:<free port> by its own event loop in a daemon thread."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="twilio-api-test", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def __enter__(self) -> Server:
        self._thread.start()
        assert self._ready.wait(10), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Http:
    """Raw requests for what the official client cannot send (or hides)."""

    def __init__(self, session: requests.Session, account_url: str) -> None:
        self.session = session
        self.account_url = account_url

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.account_url + path, timeout=10, **kwargs)


def create(client: Client, **kwargs: Any) -> Any:
    params: dict[str, Any] = {"to": "+14155551212", "from_": "+15017122661", "url": URL}
    params.update(kwargs)
    return client.calls.create(**params)


def rest_error(excinfo: pytest.ExceptionInfo[TwilioRestException]) -> tuple[int, int]:
    return excinfo.value.status, excinfo.value.code
