"""GET /metrics over HTTP on 127.0.0.1: the exposition, open or behind the account's credentials
([server] metrics_auth), and the config switches that decide it."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from switch.core.config import load_config
from switch.core.errors import ConfigError
from switch.core.metrics import Metrics
from switch.dialects.errors import error_middleware
from switch.dialects.metrics import add_metrics_route, is_loopback

pytestmark = pytest.mark.functional


@dataclass(frozen=True)
class Creds:
    account_sid: str = "AC" + "7" * 32
    auth_token: str = "e" * 32


async def serve(auth: bool) -> AsyncIterator[str]:
    metrics = Metrics()
    app = web.Application(middlewares=[error_middleware])
    add_metrics_route(app, metrics, Creds(), auth)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    finally:
        await runner.cleanup()


@pytest.fixture
async def open_url() -> AsyncIterator[str]:
    async for url in serve(auth=False):
        yield url


@pytest.fixture
async def guarded_url() -> AsyncIterator[str]:
    async for url in serve(auth=True):
        yield url


async def test_open_metrics_are_prometheus_text(open_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(open_url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        names = {f.name for f in text_string_to_metric_families(await resp.text())}
    assert {"softswitch_calls_created", "softswitch_calls_ended", "softswitch_webhook_request_duration_seconds",
            "softswitch_twiml_request_duration_seconds", "softswitch_call_rtp_loss_ratio",
            "process_cpu_seconds"} <= names


async def test_guarded_metrics_need_the_account(guarded_url: str) -> None:
    good = base64.b64encode(f"{Creds.account_sid}:{Creds.auth_token}".encode()).decode()
    bad = base64.b64encode(f"{Creds.account_sid}:wrong".encode()).decode()
    async with aiohttp.ClientSession() as http:
        async with http.get(guarded_url) as resp:
            assert resp.status == 401
            assert (await resp.json())["code"] == 20003
        async with http.get(guarded_url, headers={"Authorization": f"Basic {bad}"}) as resp:
            assert resp.status == 401
        async with http.get(guarded_url, headers={"Authorization": f"Basic {good}"}) as resp:
            assert resp.status == 200
            assert "softswitch_calls_created_total" in await resp.text()


def test_loopback_addresses() -> None:
    assert [is_loopback(h) for h in ("127.0.0.1", "127.3.0.1", "::1", "[::1]", "localhost")] == [True] * 5
    assert [is_loopback(h) for h in ("0.0.0.0", "::", "192.0.2.7", "pbx.example.com")] == [False] * 4


def test_config_switches(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    default = load_config(None)
    assert (default.metrics, default.metrics_auth) == (True, None)
    path.write_text("[server]\nmetrics = false\nmetrics_auth = true\n")
    cfg = load_config(path)
    assert (cfg.metrics, cfg.metrics_auth) == (False, True)
    path.write_text('[server]\nmetrics_auth = "yes"\n')
    with pytest.raises(ConfigError, match=r"server\.metrics_auth"):
        load_config(path)
