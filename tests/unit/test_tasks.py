"""`TaskSet.cancel`: the tasks running now are cancelled and awaited; finished ones are left alone."""

from __future__ import annotations

import asyncio

from switch.core.tasks import TaskSet


async def test_cancel_ends_the_running_tasks_and_waits_for_them() -> None:
    tasks = TaskSet()
    ended: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            ended.append(name)

    first = tasks.spawn(forever("a"), "room")
    second = tasks.spawn(forever("b"), "room")
    done = tasks.spawn(asyncio.sleep(0), "room")
    await asyncio.sleep(0.01)
    assert done.done() and not done.cancelled()
    await tasks.cancel()
    assert first.cancelled() and second.cancelled() and sorted(ended) == ["a", "b"]
    await tasks.cancel()  # nothing left: returns at once
