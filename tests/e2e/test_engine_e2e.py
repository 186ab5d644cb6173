"""The pjsua2 engine each worker runs, as the control plane reports it (/healthz, the pool's log).

`make test` runs the suite with SOFTSWITCH_ENGINE=built: the workers must run pjproject 2.17 built by
`make engine` (epoll) and report its server limit (>= 1,000 calls).  The PyPI wheel stays supported: a
switch started with SOFTSWITCH_ENGINE=wheel reports the wheel's 4 calls (and `make test-wheel` runs this file,
among others, on the wheel alone).  With SOFTSWITCH_ENGINE unset (auto) the built engine is chosen when it is
installed, else the wheel.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from switch.tools.engine import ENGINE_INFO, engine_dir
from tests.peers.harness import SwitchProcess

pytestmark = pytest.mark.e2e

BUILT = "pjproject 2.17 (built, epoll)"
WHEEL_PREFIX = "pjsua2-python 2.15.1"
WHEEL_CALLS = 4
SERVER_CALLS = 1000


def _engine_of_this_run() -> str:
    """What the suite runs on: SOFTSWITCH_ENGINE, where auto means built if `make engine` installed it."""
    wanted = (os.environ.get("SOFTSWITCH_ENGINE") or "auto").strip().lower()
    if wanted == "auto":
        return "built" if (engine_dir() / ENGINE_INFO).is_file() else "wheel"
    return wanted


def _workers_of(workdir: Path, engine: str) -> tuple[dict[str, Any], str]:
    """Start a 2-worker switch on `engine`, read /healthz once every worker is up, stop it."""
    proc = SwitchProcess(workdir, workers=2, extra_env={"SOFTSWITCH_ENGINE": engine})
    proc.start()
    try:
        body = proc.wait_healthy()
    finally:
        code = proc.stop()
    assert code == 0, f"switch exited with {code}:\n{proc.log()}"
    return body, proc.log()


def _assert_engine(body: dict[str, Any], log: str, engine: str) -> None:
    workers = body["workers"]
    assert len(workers) == 2 and all(w["up"] for w in workers), workers
    for w in workers:
        if engine == "built":
            assert w["engine"] == BUILT, workers
            assert w["capacity"] >= SERVER_CALLS, workers
        else:
            assert w["engine"].startswith(WHEEL_PREFIX) and w["engine"].endswith("(wheel)"), workers
            assert w["capacity"] == WHEEL_CALLS, workers
        assert f"capacity {w['capacity']} calls, engine {w['engine']}" in log
    assert body["capacity"] == sum(w["capacity"] for w in workers)


def test_workers_run_the_engine_this_run_asked_for(tmp_path: Path) -> None:
    engine = _engine_of_this_run()
    body, log = _workers_of(tmp_path, engine)
    _assert_engine(body, log, engine)


def test_the_wheel_stays_selectable_and_reports_its_four_calls(tmp_path: Path) -> None:
    body, log = _workers_of(tmp_path, "wheel")
    _assert_engine(body, log, "wheel")
