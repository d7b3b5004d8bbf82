"""What every controller shares: a work queue, workers, retries, and Events about failures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from kubesvc.api.errors import StatusError
from kubesvc.client.events import record_event, rfc3339
from kubesvc.client.http import APIUnavailable, Client
from kubesvc.client.workqueue import WorkQueue

Obj = dict[str, Any]
log = logging.getLogger("kubesvc.controllers")

__all__ = ["Controller", "record_event", "rfc3339"]  # the controllers' shared helpers

# After this many failed syncs in a row a key is dropped until its next change,
# so one broken object cannot keep a worker busy for ever.
MAX_RETRIES = 15


class Controller:
    """Level-triggered: handlers enqueue keys; workers call `sync(key)` until it succeeds."""

    name = "controller"

    def __init__(self, client: Client, *, workers: int = 4) -> None:
        self.client = client
        self.workers = workers
        self.queue = WorkQueue()
        self.syncs = 0
        self.failures = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def sync(self, key: str) -> None:
        raise NotImplementedError

    async def on_failure(self, key: str, err: Exception, attempts: int) -> None:
        """Called when a sync fails; subclasses record Events."""

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.sync(key)
                self.syncs += 1
                self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self.failures += 1
                attempts = self.queue.failures(key) + 1
                level = (
                    logging.INFO if isinstance(err, StatusError | APIUnavailable) else logging.ERROR
                )
                log.log(
                    level,
                    "%s: sync %s failed (attempt %d): %s",
                    self.name,
                    key,
                    attempts,
                    err,
                    exc_info=level == logging.ERROR,
                )
                await self.on_failure(key, err, attempts)
                if attempts < MAX_RETRIES:
                    self.queue.retry(key)
                else:
                    self.queue.forget(key)
            finally:
                self.queue.done(key)

    def start(self) -> None:
        for i in range(self.workers):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}"))

    async def stop(self) -> None:
        self.queue.shut_down()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
