"""The sync timing rules and the sync loop, on fake clocks and a fake backend."""

from __future__ import annotations

from typing import Any

import pytest

from kubesvc.proxy.model import ProxyState, Snapshot, SyncDelta
from kubesvc.proxy.sync import Health, SyncLoop, SyncSchedule, SyncStats
from tests.proxy.conftest import endpoints, service


def test_schedule_coalesces_bursts_and_resyncs_periodically() -> None:
    s = SyncSchedule(min_sync_period_s=1.0, sync_period_s=30.0)
    assert s.next_run(100.0) == 100.0  # the first sync at once
    s.ran(100.0)
    assert s.next_run(100.2) == 130.0  # nothing requested: the periodic resync
    s.request()
    s.request()
    assert s.next_run(100.2) == 101.0  # requested: no sooner than min_sync_period after the last
    assert s.next_run(105.0) == 105.0
    s.ran(105.0)
    assert s.next_run(105.0) == 135.0


def test_health_fails_only_for_a_change_left_unapplied_for_two_sync_periods() -> None:
    h = Health(timeout_s=60.0)
    assert h.healthy(0)
    h.queued(10.0)
    h.queued(50.0)  # the oldest pending change counts
    assert h.healthy(70.0)
    assert not h.healthy(70.1)
    h.updated(71.0, 1.0)
    assert h.healthy(1000.0)  # nothing queued (say, the API server is down): healthy


class FakeBackend:
    def __init__(self) -> None:
        self.calls: list[tuple[Snapshot, SyncDelta]] = []
        self.fail = False

    def sync(self, snapshot: Snapshot, delta: SyncDelta) -> None:
        if self.fail:
            raise OSError("boom")
        self.calls.append((snapshot, delta))


def make_loop(backend: FakeBackend, clock: list[float]) -> tuple[SyncLoop, dict[str, list[Any]]]:
    seen: dict[str, list[Any]] = {"sync": [], "programming": []}
    stats = SyncStats(
        on_sync_duration=seen["sync"].append, on_programming_duration=seen["programming"].append
    )
    loop = SyncLoop(
        ProxyState(),
        backend,
        SyncSchedule(1.0, 30.0),
        Health(60.0),
        stats=stats,
        clock=lambda: clock[0],
        wall=lambda: clock[0] + 1_000_000.0,
    )
    return loop, seen


def test_sync_applies_the_committed_snapshot_and_reports_programming_latency() -> None:
    backend, clock = FakeBackend(), [0.0]
    loop, seen = make_loop(backend, clock)
    trigger = {
        "endpoints.kubernetes.io/last-change-trigger-time": "1970-01-12T13:46:39Z"
    }  # wall 999999
    loop.state.on_service("ADDED", None, service("web", "127.96.1.10", [{"port": 80}]))
    loop.state.on_endpoints(
        "ADDED", None, endpoints("web", ["127.244.0.1"], [{"port": 8080}], annotations=trigger)
    )
    loop.changed()
    clock[0] = 2.0
    snapshot = loop.sync_now()
    assert backend.calls[-1][0] is snapshot and len(snapshot.services) == 1
    assert seen["programming"] == [pytest.approx(3.0)]  # wall 1000002 - 999999
    assert len(seen["sync"]) == 1 and loop.health.healthy(1000.0)


def test_a_failed_apply_is_retried_as_a_full_sync_and_turns_health_red() -> None:
    backend, clock = FakeBackend(), [0.0]
    loop, _ = make_loop(backend, clock)
    loop.state.on_service("ADDED", None, service("web", "127.96.1.10", [{"port": 80}]))
    loop.changed()
    backend.fail = True
    loop.sync_now()
    assert loop.failures == 1 and loop.schedule.next_run(0.5) == 1.0  # retried after a pause
    clock[0] = 61.0
    assert not loop.health.healthy(clock[0])
    backend.fail = False
    loop.sync_now()
    snapshot, delta = backend.calls[-1]
    assert delta.empty and len(snapshot.services) == 1  # re-rendered from the whole snapshot
    assert loop.health.healthy(clock[0])
