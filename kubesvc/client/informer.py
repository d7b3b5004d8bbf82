"""An informer: list, then watch, keep a local cache, and tell handlers what changed.

It survives what a long-running client meets: a watch that the server ends
(timeout), a broken connection (retried with back-off from the last version
seen), and history the server no longer has (410 Expired: list again and hand
out only the difference). Handlers run synchronously on the event loop and
should only record work (enqueue a key), not do it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from kubesvc.api.errors import StatusError
from kubesvc.client.http import APIUnavailable, Client

Obj = dict[str, Any]
# (event type, old object or None, new object or None); types ADDED, MODIFIED, DELETED, SYNC.
Handler = Callable[[str, Obj | None, Obj | None], None]

log = logging.getLogger("kubesvc.informer")


def object_key(obj: Obj) -> str:
    """`namespace/name`, or `name` for cluster-scoped objects (as client-go keys its caches)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else meta["name"]


class Informer:
    def __init__(
        self,
        client: Client,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        resync_s: float | None = None,
        watch_timeout_s: int = 300,
    ) -> None:
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.resync_s = resync_s
        self.watch_timeout_s = watch_timeout_s
        self.cache: dict[str, Obj] = {}
        self.resource_version = ""
        self._handlers: list[Handler] = []
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.relists = 0  # how often a full list was needed (first one included)

    def add_handler(self, handler: Handler) -> None:
        """Call `handler` for every change; objects already cached are replayed as ADDED."""
        self._handlers.append(handler)
        for obj in list(self.cache.values()):
            handler("ADDED", None, obj)

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, timeout_s: float | None = None) -> None:
        async with asyncio.timeout(timeout_s):
            await self._synced.wait()

    def get(self, key: str) -> Obj | None:
        return self.cache.get(key)

    def list(self) -> list[Obj]:
        return list(self.cache.values())

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"informer:{self.kind}")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _emit(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        for handler in self._handlers:
            try:
                handler(kind, old, new)
            except Exception:  # one bad handler must not stop the informer
                log.exception("informer %s: handler failed", self.kind)

    async def _relist(self) -> None:
        listed = await self.client.list(
            self.kind, self.namespace, label_selector=self.label_selector
        )
        self.relists += 1
        fresh = {object_key(obj): _with_kind(obj, self.kind) for obj in listed.get("items", [])}
        old = self.cache
        self.cache = fresh
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                self._emit("ADDED", None, obj)
            elif before.get("metadata", {}).get("resourceVersion") != obj["metadata"].get(
                "resourceVersion"
            ):
                self._emit("MODIFIED", before, obj)
        for key, obj in old.items():
            if key not in fresh:
                self._emit("DELETED", obj, None)
        self.resource_version = listed.get("metadata", {}).get("resourceVersion", "")
        self._synced.set()

    def _apply(self, kind: str, obj: Obj) -> None:
        if kind == "BOOKMARK":
            self.resource_version = obj.get("metadata", {}).get(
                "resourceVersion", self.resource_version
            )
            return
        obj = _with_kind(obj, self.kind)
        key = object_key(obj)
        before = self.cache.get(key)
        if kind == "DELETED":
            self.cache.pop(key, None)
            self._emit("DELETED", before or obj, None)
        else:
            self.cache[key] = obj
            self._emit("ADDED" if before is None else "MODIFIED", before, obj)
        self.resource_version = obj["metadata"].get("resourceVersion", self.resource_version)

    async def _resync_loop(self) -> None:
        assert self.resync_s is not None
        while True:
            await asyncio.sleep(self.resync_s)
            for obj in list(self.cache.values()):
                self._emit("SYNC", obj, obj)

    async def run(self) -> None:
        """List and watch until cancelled."""
        resync = asyncio.create_task(self._resync_loop()) if self.resync_s else None
        backoff_s = 0.1
        need_list = True
        try:
            while True:
                try:
                    if need_list:
                        await self._relist()
                        need_list = False
                    async for kind, obj in self.client.watch(
                        self.kind,
                        self.namespace,
                        resource_version=self.resource_version,
                        label_selector=self.label_selector,
                        timeout_s=self.watch_timeout_s,
                    ):
                        self._apply(kind, obj)
                        backoff_s = 0.1
                except StatusError as err:
                    if err.code == 410:
                        need_list = True  # history is gone: start again from a fresh list
                        continue
                    log.warning("informer %s: %s; retrying", self.kind, err.message)
                    await asyncio.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, 5.0)
                except APIUnavailable as err:
                    log.info("informer %s: API unavailable (%s); retrying", self.kind, err)
                    # Jitter so that many informers do not reconnect in lockstep.
                    await asyncio.sleep(backoff_s * random.uniform(0.5, 1.5))
                    backoff_s = min(backoff_s * 2, 5.0)
        finally:
            if resync is not None:
                resync.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await resync


def _with_kind(obj: Obj, kind: str) -> Obj:
    # List items may come without kind/apiVersion (Kubernetes omits them); handlers want them.
    obj.setdefault("kind", kind)
    return obj
