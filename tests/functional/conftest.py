"""Fixtures shared by the modules of one topic in the functional tier: the Twilio Calls API (test_api_twilio*.py,
its server and helpers in twilio_api.py) and the webhook dispatcher (test_webhooks*.py, its endpoint and helpers in
webhook_endpoint.py).  A module that defines a fixture of the same name uses its own (e.g. test_twilio_paging.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import requests
from aiohttp import web
from twilio.rest import Client

from switch.core.store import Store
from switch.core.webhooks import WebhookDispatcher
from switch.dialects.errors import error_middleware
from switch.dialects.twilio.api import add_twilio_routes
from tests.functional.catch_all import catch_all
from tests.functional.fake_service import FakeCallService
from tests.functional.twilio_api import Http, Server
from tests.functional.webhook_endpoint import TOKEN, Endpoint

# --- the Twilio Calls API ---------------------------------------------------------------------------------------


@pytest.fixture
def service() -> FakeCallService:
    return FakeCallService()


@pytest.fixture
def server(service: FakeCallService) -> Iterator[Server]:
    app = web.Application(middlewares=[error_middleware])
    add_twilio_routes(app, service, "https://pbx.example.com/")
    with Server(app) as running:
        yield running


@pytest.fixture
def client(server: Server, service: FakeCallService) -> Client:
    client = Client(service.account_sid, service.auth_token)
    client.api.base_url = server.base_url
    return client


@pytest.fixture
def http(server: Server, service: FakeCallService) -> Iterator[Http]:
    with requests.Session() as session:
        session.trust_env = False  # never route 127.0.0.1 through a proxy from the environment
        session.auth = (service.account_sid, service.auth_token)
        yield Http(session, f"{server.base_url}/2010-04-01/Accounts/{service.account_sid}")


# --- the webhook dispatcher -------------------------------------------------------------------------------------


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    ep = Endpoint()
    async with catch_all(ep.handle, shutdown_timeout=0.5) as base:
        ep.base = base
        yield ep
        ep.release.set()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "switch.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(db_path)
    yield s
    s.close()


@pytest.fixture
async def dispatcher(store: Store) -> AsyncIterator[WebhookDispatcher]:
    d = WebhookDispatcher(store, TOKEN, timeout=2.0, retries=2, backoff=0.05)
    await d.start()
    yield d
    await d.close(timeout=0.5)
