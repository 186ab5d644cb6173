"""The SIP edge's worker list follows the workers' capacity at once: a real Kamailio, asked over its JSON-RPC
socket what its dispatcher holds after each change the control plane makes.

A worker filling up or freeing a leg is switched in place (`dispatcher.set_state`), as often as it happens;
a worker coming or going reloads the list file, which Kamailio allows once a second (`reload_delta`): a
refused reload is retried quietly until it goes through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from switch.workers.edge import Edge, EdgeError
from switch.workers.edge_config import EdgeSettings, worker_uri
from tests.peers.sipp_peer import free_udp_port

pytestmark = pytest.mark.e2e


def _states(result: Any) -> dict[str, str]:
    """`dispatcher.list`'s answer as {uri: 'A' (active) or 'I' (inactive) ...}, the first letter of FLAGS."""
    states: dict[str, str] = {}
    for record in result.get("RECORDS", []) if isinstance(result, dict) else []:
        for target in record.get("SET", {}).get("TARGETS", []):
            dest = target.get("DEST", {})
            states[str(dest.get("URI"))] = str(dest.get("FLAGS", "?"))[:1]
    return states


async def _until(edge: Edge, wanted: dict[str, str], within: float) -> float:
    """Seconds until Kamailio's dispatcher holds exactly `wanted`; AssertionError with what it holds if not."""
    started = time.monotonic()
    seen: dict[str, str] = {}
    while time.monotonic() - started < within:
        try:
            seen = _states(await edge.rpc.call("dispatcher.list"))
        except EdgeError:  # "No Destination Sets" before the first list with a worker in it
            seen = {}
        if seen == wanted:
            return time.monotonic() - started
        await asyncio.sleep(0.01)
    raise AssertionError(f"Kamailio's dispatcher holds {seen}, not {wanted}, after {within} s")


async def test_capacity_changes_reach_kamailio_at_once_and_new_workers_reload(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switch.workers.edge")
    edge = Edge(EdgeSettings("127.0.0.1", free_udp_port()), tmp_path / "edge")
    await edge.start()
    try:
        a, b, c = (worker_uri("127.0.0.1", port) for port in (5091, 5092, 5093))
        edge.workers_changed([(a, True), (b, True)])
        await _until(edge, {a: "A", b: "A"}, 3.0)
        reloads = edge.reloads
        # Twenty flips of one worker's capacity within a second or so: every one reaches Kamailio, in place.
        for i in range(20):
            edge.workers_changed([(a, i % 2 == 1), (b, True)])
            await _until(edge, {a: "A" if i % 2 else "I", b: "A"}, 0.5)
        assert (edge.reloads, edge.state_changes) == (reloads, 20)
        # A third worker, then one gone at once: the second reload comes within a second of the first (unless
        # the clock's second turns between them), is refused ("Ongoing reload") and retried until it is done.
        edge.workers_changed([(a, True), (b, False), (c, True)])
        await _until(edge, {a: "A", b: "I", c: "A"}, 3.0)
        edge.workers_changed([(a, True), (c, True)])
        await _until(edge, {a: "A", c: "A"}, 3.0)
        assert edge.reloads == reloads + 2
        edge.drain()  # SIGTERM: every worker inactive, so new INVITEs get 503 at the edge
        await _until(edge, {a: "I", c: "I"}, 0.5)
        assert edge.status()["state_changes"] == 22
        # the file a restarted Kamailio reads says the same
        rows = [line.split()[1:3] for line in edge.files.dispatcher.read_text().splitlines()[1:]]
        assert rows == [[a, "1"], [c, "1"]]
    finally:
        await edge.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []
