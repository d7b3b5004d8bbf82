"""What every controller shares: a work queue, workers, retries, and Events about failures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from kubesvc.api.errors import StatusError
from kubesvc.client.http import APIUnavailable, Client
from kubesvc.client.workqueue import WorkQueue

Obj = dict[str, Any]
log = logging.getLogger("kubesvc.controllers")

# After this many failed syncs in a row a key is dropped until its next change,
# so one broken object cannot keep a worker busy for ever.
MAX_RETRIES = 15


def rfc3339(ts: float | None = None, *, nanos: bool = False) -> str:
    moment = datetime.fromtimestamp(ts if ts is not None else time.time(), UTC)
    if nanos:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def record_event(
    client: Client, involved: Obj, event_type: str, reason: str, message: str, component: str
) -> None:
    """Write a core/v1 Event about `involved`; failures to record are logged, never raised."""
    meta = involved.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    now = rfc3339()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta.get('name', 'object')}.{uuid.uuid4().hex[:16]}",
            "namespace": namespace,
        },
        "involvedObject": {
            "kind": involved.get("kind"),
            "apiVersion": involved.get("apiVersion", "v1"),
            "namespace": namespace,
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "type": event_type,
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await client.create(event)
    except (StatusError, APIUnavailable) as err:
        log.warning(
            "could not record event %s on %s/%s: %s", reason, namespace, meta.get("name"), err
        )


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
