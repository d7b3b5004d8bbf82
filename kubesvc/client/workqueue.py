"""A work queue of keys for level-triggered controllers, with per-key retry back-off.

As client-go's: a key queued many times while waiting is processed once; a
key being processed is never handed to a second worker at once (a change that
arrives meanwhile queues it again after); failures are retried after an
exponentially growing delay per key, reset on success.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class WorkQueue:
    def __init__(self, *, base_delay_s: float = 0.005, max_delay_s: float = 30.0) -> None:
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty_while_processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._delayed: dict[str, asyncio.TimerHandle] = {}
        self._ready = asyncio.Event()
        self._shut = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if self._shut:
            return
        if key in self._processing:
            self._dirty_while_processing.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.append(key)
        self._ready.set()

    def add_after(self, key: str, delay_s: float) -> None:
        if self._shut or key in self._delayed:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._delayed.pop(key, None)
            self.add(key)

        self._delayed[key] = loop.call_later(delay_s, fire)

    def retry(self, key: str) -> float:
        """Queue `key` again after its back-off; returns the delay chosen."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = min(self.base_delay_s * (2**failures), self.max_delay_s)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """The key succeeded: its next failure starts from the smallest delay again."""
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str:
        """The next key; the caller must call `done(key)` when finished with it."""
        while not self._queue:
            if self._shut:
                raise asyncio.CancelledError("work queue shut down")
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty_while_processing:
            self._dirty_while_processing.discard(key)
            self.add(key)

    def shut_down(self) -> None:
        self._shut = True
        for handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        self._ready.set()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until nothing is queued or processing (delayed retries aside); for tests and shutdown."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self._queue or self._processing:
                    await asyncio.sleep(0.005)
                return True
        return False
