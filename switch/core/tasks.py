"""Background tasks of the control plane: kept referenced until they end, their failures logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from switch.core.logs import CALL_SID, CALL_SID_RE, call_context

log = logging.getLogger("switch.core.tasks")


class TaskSet:
    """Tasks started and forgotten by their caller (a callback, a recording's finalization): held here so
    they are not collected mid-run, and a failure is logged with what it was about, never lost silently."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], about: str) -> asyncio.Task[Any]:
        """Run `coro` as a task on the running loop; `about` (a call SID, say) heads its failure's log line."""
        with call_context(about if CALL_SID_RE.match(about) else CALL_SID.get()):  # a call's task logs its sid
            return self.track(asyncio.get_running_loop().create_task(coro), about)

    def track(self, task: asyncio.Task[Any], about: str) -> asyncio.Task[Any]:
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("%s: background task %s failed", about, t.get_name(), exc_info=t.exception())

        task.add_done_callback(done)
        return task

    async def wait(self, timeout: float) -> None:
        """Wait up to `timeout` s for the tasks running now (shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def cancel(self) -> None:
        """Cancel the tasks running now and wait for them to end (shutdown of what need not finish)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
