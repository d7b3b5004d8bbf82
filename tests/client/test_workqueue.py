"""The work queue's promises: dedupe, one worker per key, retry back-off."""

from __future__ import annotations

import asyncio
import contextlib

from kubesvc.client.workqueue import WorkQueue


async def test_a_key_queued_twice_is_handed_out_once() -> None:
    queue = WorkQueue()
    queue.add("a")
    queue.add("b")
    queue.add("a")
    assert [await queue.get(), await queue.get()] == ["a", "b"]
    assert len(queue) == 0


async def test_a_key_added_while_processing_comes_back_after_done() -> None:
    queue = WorkQueue()
    queue.add("a")
    key = await queue.get()
    queue.add("a")  # changed again while a worker holds it
    assert len(queue) == 0  # not handed to a second worker
    queue.done(key)
    assert await asyncio.wait_for(queue.get(), 1) == "a"


async def test_retry_backs_off_and_forget_resets() -> None:
    queue = WorkQueue(base_delay_s=0.01, max_delay_s=0.04)
    delays = [queue.retry("k") for _ in range(4)]
    assert delays == [0.01, 0.02, 0.04, 0.04]
    assert queue.failures("k") == 4
    assert queue.retry("k") == 0.04  # capped
    assert await asyncio.wait_for(queue.get(), 1) == "k"
    queue.forget("k")
    assert queue.failures("k") == 0


async def test_shut_down_wakes_waiting_workers() -> None:
    queue = WorkQueue()
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.shut_down()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(waiter, 1)
    assert waiter.done()
