"""When to sync and whether the proxy is healthy: pure timing rules, and the loop that follows them.

- `SyncSchedule` is kube-proxy's bounded-frequency rule: a requested sync runs
  no sooner than `min_sync_period_s` after the previous one (bursts of
  changes coalesce into one sync), and a sync runs at least every
  `sync_period_s` even without changes (a full resync repairs drift, such as
  a listener that could not be bound earlier).
- `Health`: unhealthy only while a queued change has waited longer than
  2 × `sync_period_s` without being applied (kube-proxy's healthz rule). With
  the API server down nothing is queued, so the proxy stays healthy while it
  serves its last state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubesvc.proxy.model import ProxyBackend, ProxyState, Snapshot, SyncDelta

log = logging.getLogger("kubesvc.proxy")


@dataclass
class SyncSchedule:
    min_sync_period_s: float
    sync_period_s: float
    last_run: float | None = None
    requested: bool = True  # the first sync is always wanted
    retry_at: float | None = None  # after a failed sync

    def request(self) -> None:
        self.requested = True

    def next_run(self, now: float) -> float:
        """The monotonic time at which the next sync is due (≤ now: run it now)."""
        if self.last_run is None:
            return now
        if self.requested:
            return max(now, self.last_run + self.min_sync_period_s)
        due = self.last_run + self.sync_period_s
        return min(due, self.retry_at) if self.retry_at is not None else due

    def ran(self, now: float) -> None:
        self.last_run = now
        self.requested = False
        self.retry_at = None

    def failed(self, now: float) -> None:
        """A sync failed: retry it after a pause (not at once, which would spin)."""
        self.ran(now)
        self.retry_at = now + min(self.sync_period_s, max(self.min_sync_period_s, 1.0))


@dataclass
class Health:
    timeout_s: float  # 2 × sync period
    oldest_queued: float | None = None  # monotonic time of the oldest change not yet applied
    last_updated: float | None = None  # monotonic time of the last successful sync
    last_updated_wall: float | None = None

    def queued(self, now: float) -> None:
        if self.oldest_queued is None:
            self.oldest_queued = now

    def updated(self, now: float, wall: float) -> None:
        self.oldest_queued = None
        self.last_updated = now
        self.last_updated_wall = wall

    def healthy(self, now: float) -> bool:
        return self.oldest_queued is None or now - self.oldest_queued <= self.timeout_s


@dataclass
class SyncStats:
    """What the metrics read: observers for the two kube-proxy histograms."""

    on_sync_duration: Callable[[float], None] = lambda _s: None
    on_programming_duration: Callable[[float], None] = lambda _s: None
    on_synced: Callable[[float], None] = lambda _wall: None
    on_queued: Callable[[float], None] = lambda _wall: None


@dataclass
class SyncLoop:
    """Commits the model's pending changes and hands each snapshot to the backend, on schedule."""

    state: ProxyState
    backend: ProxyBackend
    schedule: SyncSchedule
    health: Health
    ready: Callable[[], bool] = lambda: True  # False until the informers have listed once
    stats: SyncStats = field(default_factory=SyncStats)
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    syncs: int = 0
    failures: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _retry_full: bool = False

    def changed(self) -> None:
        """A handler recorded a change: queue a sync."""
        self.schedule.request()
        self.health.queued(self.clock())
        self.stats.on_queued(self.wall())
        self._wake.set()

    def sync_now(self) -> Snapshot:
        """Commit and apply at once (the loop's step; tests call it directly)."""
        started = self.clock()
        snapshot, delta = self.state.commit()
        for problem in self.state.take_problems():
            log.warning("%s", problem)
        if self._retry_full:
            delta = SyncDelta()  # the last apply failed: the backend renders everything again
        try:
            self.backend.sync(snapshot, delta)
        except Exception:
            self.failures += 1
            self._retry_full = True
            log.exception("proxy: applying the snapshot failed; retrying soon")
            self.schedule.failed(self.clock())
            return snapshot
        self._retry_full = False
        done = self.clock()
        wall = self.wall()
        self.syncs += 1
        self.schedule.ran(done)
        self.health.updated(done, wall)
        self.stats.on_sync_duration(done - started)
        self.stats.on_synced(wall)
        for trigger in delta.trigger_times:
            if wall >= trigger:
                self.stats.on_programming_duration(wall - trigger)
        return snapshot

    async def run(self) -> None:
        """Sync whenever due, until cancelled."""
        while True:
            now = self.clock()
            due = self.schedule.next_run(now)
            if due > now:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(due - now):
                        await self._wake.wait()
                continue
            if not self.ready():
                # Nothing listed yet: a sync now would remove everything; look again shortly.
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await self._wake.wait()
                continue
            self.sync_now()
            await asyncio.sleep(0)  # a sync is synchronous: let the data path run between two

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="proxy-sync")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
