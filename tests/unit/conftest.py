"""Fixtures of the fast tier: a `FakeSwitch` (the real engine on a scripted fake worker pool) per test, and a
store on a fresh database file (modules with a store of their own define `store` themselves)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from switch.core.store import Store
from tests.unit.fakes import FakeSwitch


@pytest.fixture
async def switch(tmp_path: Path) -> AsyncIterator[FakeSwitch]:
    """A started `FakeSwitch`; its clocks are the event loop's, virtual in tests marked `looptime`."""
    fake = await FakeSwitch(tmp_path).start()
    yield fake
    await fake.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where `store` keeps its database (a test may open it again, or a second connection on it)."""
    return tmp_path / "data" / "switch.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    """A `Store` on `db_path`, closed after the test."""
    s = Store(db_path)
    yield s
    s.close()
