"""Test tiers: each test is marked by the folder it lives in, so `pytest -m unit` runs the fast tier alone.

- tests/unit: pure code, milliseconds, no processes or sockets (a scripted fake worker pool stands in for media
  workers where the call engine and the verbs need one);
- tests/functional: the REST API and webhooks over real HTTP on 127.0.0.1 (aiohttp servers, the official clients);
- tests/e2e: real SIP peers (sipp, baresip, the pjsua2 lab phone) against a running switch.
tests/peers holds the drivers of those peers and the switch harness.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Parallel test processes (pytest-xdist, `make test`) take disjoint slices of the ports tests pick
# (switch.tools.ports); the switches they start inherit it.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ["SOFTSWITCH_PORT_SLICE"] = (f"{os.environ['PYTEST_XDIST_WORKER'].removeprefix('gw')}/"
                                           f"{os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1')}")

TIERS = ("unit", "functional", "e2e")
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(item.fspath).relative_to(HERE).parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
