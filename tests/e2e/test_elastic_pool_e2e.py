"""End to end: `workers = "auto"` grows the pool under simultaneous calls and retires the idle extra.

The switch runs with `[workers] min = 1` and a 3 s idle timeout, `max = "auto"` (so worker 0 reports its
engine's capacity and the pool lays out its ports for the most workers).  Six calls to a sipp UAS are placed
over REST, each holding 4 s of `<Pause>`: more than a worker of the PyPI wheel holds (4 legs), so a second
worker must start.  On a server build (1000 legs per worker) the margin is set to capacity - 2, so that the same
third call leaves too few free legs and the same growth happens.  A REST create that races the growth gets
Twilio's 429 / 20429 (no free leg yet, "another worker is starting"): the test retries it, as a client of
Twilio's API retries a 429.  Every call must then complete with its whole callback sequence; afterwards the
extra worker retires (the pool status shows it retiring, then gone), and its process is gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from twilio.base.exceptions import TwilioRestException

from switch.tools.ports import free_port_block
from switch.workers.pool import WorkerPool
from tests.peers.harness import SwitchProcess, WebhookSink, wait_until
from tests.peers.sipp_peer import SippPeer

pytestmark = pytest.mark.e2e

CALLS = 6
HOLD_S = 4
IDLE_S = 3


def _engine_capacity() -> int:
    """The legs one worker holds on this machine's pjsua2, as a worker reports it in its hello."""

    async def probe() -> int:
        pool = WorkerPool(1, "127.0.0.1", free_port_block(1), lambda i, e: None, lambda i, why: None)
        await pool.start()
        try:
            return pool.workers[0].capacity
        finally:
            await pool.close()

    return asyncio.run(probe())


@dataclass
class AutoSwitch(SwitchProcess):
    """A switch with `workers = "auto"` and a `[workers]` table."""

    tuning: str = ""

    def write_config(self) -> Path:
        path = super().write_config()
        text = path.read_text().replace(f"workers = {self.workers}\n", 'workers = "auto"\n', 1)
        path.write_text(text + "[workers]\n" + self.tuning)
        return path


def _create(switch: SwitchProcess, sink: WebhookSink, to: str, retries: list[str], hold: int = HOLD_S) -> str:
    """Create a call; a 429 (no free leg while the pool grows) is retried for up to 10 s."""
    deadline = time.monotonic() + 10
    while True:
        try:
            call = switch.client().calls.create(
                to=to, from_="+15550199", twiml=f"<Response><Pause length='{hold}'/></Response>",
                status_callback=sink.url("/status"),
                status_callback_event=["initiated", "ringing", "answered", "completed"])
            return str(call.sid)
        except TwilioRestException as exc:
            if exc.status != 429 or time.monotonic() > deadline:
                raise
            assert exc.code == 20429 and "another worker is starting" in str(exc.msg), exc.msg
            retries.append(str(exc.msg))
            time.sleep(0.2)


def _auto_switch(workdir: Path, capacity: int) -> AutoSwitch:
    spare = max(2, capacity - 2)  # the wheel: the default 2; a server build: the third leg starts a worker
    return AutoSwitch(workdir, workers=1, sip_port=free_port_block(max(26, os.cpu_count() or 1)),
                      tuning=f"min = 1\nspare_calls = {spare}\nidle_timeout = {IDLE_S}\n")


@pytest.fixture(scope="module")
def capacity() -> int:
    return _engine_capacity()


def test_the_pool_grows_for_simultaneous_calls_and_retires_the_idle_extra(tmp_path: Path, capacity: int) -> None:
    sink = WebhookSink().start()
    switch = _auto_switch(tmp_path, capacity)
    try:
        switch.start()
        _, health = switch.healthz()
        assert [(w["worker"], w["state"], w["capacity"]) for w in health["workers"]] == [(0, "up", capacity)]
        scaling = health["scaling"]
        assert (scaling["mode"], scaling["min"], scaling["added"], scaling["retired"]) == ("auto", 1, 0, 0)
        assert scaling["max"] == max(os.cpu_count() or 1, -(-100 // capacity))  # max_calls 100 / capacity
        retries: list[str] = []
        with SippPeer("uas_answer.xml", calls=CALLS, timeout=40) as far:
            sids = [_create(switch, sink, f"sip:bob{i}@{far.uri_host}", retries) for i in range(CALLS)]
            wait_until(lambda: all(len(sink.statuses("/status", s)) >= 3 for s in sids), 15, "every call answered")
            wait_until(lambda: [w["state"] for w in switch.healthz()[1]["workers"]] == ["up", "up"], 10,
                       "the second worker up")
            _, busy = switch.healthz()
            assert sum(w["in_use"] for w in busy["workers"]) == CALLS
            if capacity < CALLS:  # the wheel: worker 1 holds what worker 0 could not (a server build may hold all)
                assert busy["workers"][1]["in_use"] >= CALLS - capacity
            extra_pid = busy["workers"][1]["pid"]
            for sid in sids:
                hooks = sink.wait_statuses("/status", sid, 4, timeout=20)
                assert [h.params["CallStatus"] for h in hooks] == ["initiated", "ringing", "in-progress", "completed"]
            assert far.wait_sync(15) == 0, far.describe()
        # the calls overlap, so sipp's messages interleave: each call is 100, 180, 200, then 200 to our BYE
        assert sorted(far.codes_sent()) == sorted([100, 180, 200, 200] * CALLS)
        assert sorted(far.methods_received()) == sorted(["INVITE", "ACK", "BYE"] * CALLS)
        print(f"429s retried while the pool grew: {len(retries)}")
        # the extra worker had no leg for IDLE_S: it retires and its process is gone
        states: list[list[tuple[int, str]]] = []

        def retired() -> bool:
            _, body = switch.healthz()
            states.append([(w["worker"], w["state"]) for w in body["workers"]])
            return body["scaling"]["retired"] == 1 and len(body["workers"]) == 1

        wait_until(retired, IDLE_S + 10, "the extra worker retired")
        assert states[-1] == [(0, "up")]
        assert all(s in ([(0, "up"), (1, "up")], [(0, "up"), (1, "retiring")], [(0, "up")]) for s in states)
        with pytest.raises(ProcessLookupError):
            os.kill(extra_pid, 0)
        _, after = switch.healthz()
        assert after["status"] == "ok" and after["scaling"]["added"] == 1 and after["in_use"] == 0
        assert "worker 1 starting" in switch.log() and "worker 1 (pid" in switch.log()
    finally:
        code = switch.stop()
        sink.stop()
    assert code == 0, switch.log()


def test_a_crashed_extra_worker_is_replaced_its_calls_end_and_it_retires_later(tmp_path: Path,
                                                                                capacity: int) -> None:
    sink = WebhookSink().start()
    switch = _auto_switch(tmp_path, capacity)
    try:
        switch.start()
        retries: list[str] = []
        with SippPeer("uas_answer.xml", calls=4, timeout=40) as far:
            first = [_create(switch, sink, f"sip:a{i}@{far.uri_host}", retries, hold=60) for i in range(3)]
            wait_until(lambda: [w["state"] for w in switch.healthz()[1]["workers"]] == ["up", "up"], 10,
                       "a second worker")
            victim = _create(switch, sink, f"sip:b@{far.uri_host}", retries, hold=60)  # the most free legs: 1
            sink.wait_statuses("/status", victim, 3)
            extra = switch.healthz()[1]["workers"][1]
            assert extra["in_use"] == 1
            os.kill(extra["pid"], signal.SIGKILL)
            hooks = sink.wait_statuses("/status", victim, 4)
            assert [h.params["CallStatus"] for h in hooks] == ["initiated", "ringing", "in-progress", "failed"]
            wait_until(lambda: switch.healthz()[0] == 200, 15, "the extra worker replaced")
            replaced = switch.healthz()[1]["workers"][1]
            assert (replaced["state"], replaced["restarts"], replaced["in_use"]) == ("up", 1, 0)
            assert replaced["pid"] != extra["pid"]
            for sid in first:
                switch.client().calls(sid).update(status="completed")
            for sid in first:
                hooks = sink.wait_statuses("/status", sid, 4)
                assert [h.params["CallStatus"] for h in hooks] == ["initiated", "ringing", "in-progress",
                                                                    "completed"]
            assert far.wait_sync(15) == 0, far.describe()
        assert sorted(far.methods_received()) == sorted(["INVITE", "ACK", "BYE"] * 4)  # the victim's BYE: reaped
        wait_until(lambda: len(switch.healthz()[1]["workers"]) == 1, IDLE_S + 10, "the replacement retired")
        scaling = switch.healthz()[1]["scaling"]
        assert (scaling["added"], scaling["retired"]) == (1, 1)  # a replacement is not growth
        with pytest.raises(ProcessLookupError):
            os.kill(replaced["pid"], 0)
    finally:
        code = switch.stop()
        sink.stop()
    assert code == 0, switch.log()
