"""Waiting for what a test expects to become true, bounded in time: one helper for every test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


def eventually(
    check: Callable[[], Any], timeout_s: float = 15.0, what: str = "", *, interval_s: float = 0.05
) -> Any:
    """Call `check` until it returns something truthy; that value (AssertionError on timeout)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"{what or 'condition'} not reached in {timeout_s} s; last: {last!r}")


async def eventually_async(
    check: Callable[[], Any],
    timeout_s: float = 10.0,
    what: str = "",
    *,
    interval_s: float = 0.02,
    tolerate: tuple[type[BaseException], ...] = (),
) -> Any:
    """Await `check()` (sync or async) until it is truthy; its value.

    Exceptions of the `tolerate` types count as "not yet" (an object not created yet).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: Any = None
    while loop.time() < deadline:
        try:
            last = check()
            if isinstance(last, Awaitable):
                last = await last
            if last:
                return last
        except tolerate as err:
            last = err
        await asyncio.sleep(interval_s)
    raise AssertionError(f"{what or 'condition'} not reached in {timeout_s} s; last: {last!r}")
