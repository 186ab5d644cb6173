"""Fixtures of the fast tier: a `FakeSwitch` (the real engine on a scripted fake worker pool) per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.unit.fakes import FakeSwitch


@pytest.fixture
async def switch(tmp_path: Path) -> AsyncIterator[FakeSwitch]:
    """A started `FakeSwitch`; its clocks are the event loop's, virtual in tests marked `looptime`."""
    fake = await FakeSwitch(tmp_path).start()
    yield fake
    await fake.close()
