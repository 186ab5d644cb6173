"""Unit tests of the control plane's log (switch.core.logs): the CallSid on the lines of a call's work, in text
and JSON, through tasks and timers started for the call."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from switch.core.logs import bind_call, call_context, setup_logging
from switch.core.tasks import TaskSet

SID = "CA" + "0123456789abcdef" * 2
OTHER = "CA" + "f" * 32


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_text_lines_name_the_call_they_are_about(stream: io.StringIO) -> None:
    setup_logging("info", "text", stream)
    log = logging.getLogger("switch.test")
    log.info("no call")
    with call_context(SID):
        log.info("in the call's context")
    log.info("%s: first argument", OTHER)
    log.debug("below the level")
    lines = [line.split(" ", 2)[2] for line in stream.getvalue().splitlines()]  # without the time
    assert lines == ["INFO switch.test: no call", f"INFO switch.test CallSid={SID}: in the call's context",
                     f"INFO switch.test CallSid={OTHER}: {OTHER}: first argument"]


def test_a_media_workers_lines_say_which_worker_and_find_the_call_in_any_argument(stream: io.StringIO) -> None:
    setup_logging("info", "text", stream, worker=1)
    log = logging.getLogger("switch.worker.engine")
    log.info("leg %s: %s", SID, "answered")
    log.info("worker %d: leg %s ended", 1, OTHER)  # the CallSid need not come first
    log.info("no call here")
    lines = [line.split(" ", 1)[1].split(" ", 2)[2] if line.startswith("worker1 ") else line
             for line in stream.getvalue().splitlines()]  # without the time
    assert lines == [f"INFO switch.worker.engine CallSid={SID}: leg {SID}: answered",
                     f"INFO switch.worker.engine CallSid={OTHER}: worker 1: leg {OTHER} ended",
                     "INFO switch.worker.engine: no call here"]
    stream.seek(0)
    stream.truncate()
    setup_logging("info", "json", stream, worker=0)
    log.info("leg %s: answered", SID)
    line = json.loads(stream.getvalue())
    assert {k: v for k, v in line.items() if k != "time"} == {
        "level": "info", "logger": "switch.worker.engine", "message": f"leg {SID}: answered", "call_sid": SID,
        "worker": 0}


def test_json_lines(stream: io.StringIO) -> None:
    setup_logging("debug", "json", stream)
    log = logging.getLogger("switch.test")
    with call_context(SID):
        log.debug("about %s", "it")
    log.warning("not about a call")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    assert [{k: v for k, v in line.items() if k not in ("time", "exception")} for line in lines] == [
        {"level": "debug", "logger": "switch.test", "message": "about it", "call_sid": SID},
        {"level": "warning", "logger": "switch.test", "message": "not about a call"},
        {"level": "error", "logger": "switch.test", "message": "failed"}]
    assert lines[2]["exception"].endswith("ValueError: boom")
    assert lines[0]["time"].endswith("+00:00")


def test_tasks_and_timers_of_a_call_keep_its_sid(stream: io.StringIO) -> None:
    setup_logging("info", "text", stream)
    log = logging.getLogger("switch.test")

    async def main() -> None:
        tasks = TaskSet()
        done = asyncio.Event()

        async def work(what: str) -> None:
            log.info("task %s", what)

        await tasks.spawn(work("spawned for the call"), SID)  # TaskSet: `about` is the call
        with call_context(OTHER):
            asyncio.get_running_loop().call_later(0.01, lambda: (log.info("timer"), done.set()))
            task = asyncio.create_task(work("created in the context"))
        log.info("the caller's context is its own again")
        await task
        await done.wait()

        async def own() -> None:
            bind_call(SID)
            log.info("bound in its own task")
        await asyncio.create_task(own())
        log.info("not leaked to the caller")

    asyncio.run(main())
    lines = [line.split(" ", 3)[3] for line in stream.getvalue().splitlines() if "switch.test" in line]
    assert lines == [f"switch.test CallSid={SID}: task spawned for the call",
                     "switch.test: the caller's context is its own again",
                     f"switch.test CallSid={OTHER}: task created in the context", f"switch.test CallSid={OTHER}: timer",
                     f"switch.test CallSid={SID}: bound in its own task", "switch.test: not leaked to the caller"]


def test_bad_level_or_format() -> None:
    with pytest.raises(ValueError, match="log level must be one of debug, info, warning, error, not 'loud'"):
        setup_logging("loud", "text")
    with pytest.raises(ValueError, match="log format must be one of text, json, not 'xml'"):
        setup_logging("info", "xml")
