"""Behaviour specific to the etcd backend: prefixes, several stores on one etcd, catch-up
watches, compaction, member crashes and restarts. (The shared behaviour is the
conformance suite, which runs on etcd through conftest.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from kubesvc.storage import etcd as etcd_module
from kubesvc.storage.errors import Expired, KeyExists, StorageError
from kubesvc.storage.etcd import EtcdStore
from kubesvc.storage.etcd_gateway import (
    GatewayClient,
    Indeterminate,
    Unavailable,
    b64,
    parse_etcd_url,
    range_end,
    unb64,
)
from kubesvc.storage.interface import EventType, WatchEvent, resource_version_of
from tests.etcd_cluster import EtcdCluster, free_ports, shared_cluster
from tests.storage.test_conformance import nothing_more, take, take_until

_prefixes = itertools.count()


def fresh_prefix() -> str:
    return f"/kubesvc-etcd-test/{time.monotonic_ns()}-{next(_prefixes)}"


def rv(obj: dict[str, Any]) -> int:
    return resource_version_of(obj)


@pytest.fixture
def cluster() -> EtcdCluster:
    """The session's one-member cluster (shared with the conformance suite)."""
    return shared_cluster(1)


@pytest.fixture
async def store(cluster: EtcdCluster) -> AsyncIterator[EtcdStore]:
    opened = await EtcdStore.open(cluster.endpoints, prefix=fresh_prefix())
    yield opened
    await opened.close()


# --- configuration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "endpoints", "prefix"),
    [
        ("etcd://127.0.0.1:2379", ["127.0.0.1:2379"], None),
        ("etcd://a:1,b:2,c", ["a:1", "b:2", "c:2379"], None),
        ("etcd://a:1/kubesvc/prod/", ["a:1"], "/kubesvc/prod"),
        ("etcd://[::1]:2379,127.0.0.1", ["[::1]:2379", "127.0.0.1:2379"], None),
    ],
)
def test_etcd_urls(url: str, endpoints: list[str], prefix: str | None) -> None:
    assert parse_etcd_url(url) == (endpoints, prefix)


@pytest.mark.parametrize(
    "url", ["http://a:1", "etcd://", "etcd://a:b", "etcd://a:1,,b:2", "etcd://::1", "etcd://a:0"]
)
def test_bad_etcd_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_etcd_url(url)


def test_range_end_covers_exactly_the_prefix() -> None:
    assert range_end(b"/a/") == b"/a0"
    assert range_end(b"a\xff") == b"b"
    assert range_end(b"\xff\xff") == b"\x00"


async def test_opening_without_a_reachable_member_fails_in_time() -> None:
    (port,) = free_ports(1)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        await EtcdStore.open(f"etcd://127.0.0.1:{port}", timeout=0.5)
    assert time.monotonic() - started < 3


async def test_a_long_list_is_read_in_pages_of_one_snapshot(
    store: EtcdStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(etcd_module, "_LIST_PAGE", 3)
    created = {}
    for i in range(10):
        created[f"/things/t{i:03}"] = rv(await store.create(f"/things/t{i:03}", {"i": i}))

    async def write_more() -> None:
        for i in range(10, 40):
            created[f"/things/t{i:03}"] = rv(await store.create(f"/things/t{i:03}", {"i": i}))

    writer = asyncio.create_task(write_more())
    await asyncio.sleep(0.005)
    listed = await store.list("/things/")
    await writer
    at = listed.resource_version
    assert [i["i"] for i in listed.items] == sorted(i["i"] for i in listed.items)
    assert {f"/things/t{i['i']:03}" for i in listed.items} == {
        key for key, version in created.items() if version <= at
    }, "the pages were not read at one revision"


# --- keys and prefixes ---------------------------------------------------------------


async def test_keys_live_under_the_prefix_apart_from_other_prefixes(cluster: EtcdCluster) -> None:
    base = fresh_prefix()
    # "/x" and "/x2": a prefix that is a string prefix of another must not see its keys.
    one = await EtcdStore.open(cluster.url(base + "/x"))
    two = await EtcdStore.open(cluster.endpoints, prefix=base + "/x2")
    try:
        assert one.prefix == base + "/x"
        watch = await one.watch("")
        await two.create("/registry/a", {"n": 2})
        mine = await one.create("/registry/a", {"n": 1})
        assert (await one.list("")).items == [mine]
        assert [(e.key, e.object) for e in await take(watch, 1)] == [("/registry/a", mine)]
        assert await nothing_more(watch)
        await watch.close()

        raw = GatewayClient(cluster.endpoints)
        try:
            answer = await raw.call(
                "kv/range", {"key": b64(f"{base}/x/registry/a".encode())}, writes=False
            )
        finally:
            await raw.close()
        assert int(answer["kvs"][0]["mod_revision"]) == rv(mine)
        assert b'"n":1' in unb64(answer["kvs"][0]["value"])

        for bad in ("registry/a", ""):
            with pytest.raises(ValueError):
                await one.create(bad, {})
        with pytest.raises(ValueError):
            await one.list("registry/")
    finally:
        await one.close()
        await two.close()


# --- several stores (API servers) on one etcd -------------------------------------


async def test_stores_on_one_etcd_are_one_consistent_store(cluster: EtcdCluster) -> None:
    prefix = fresh_prefix()
    a = await EtcdStore.open(cluster.endpoints, prefix=prefix)
    b = await EtcdStore.open(cluster.endpoints, prefix=prefix)
    try:
        watch_b = await b.watch("/registry/", None)
        created = await a.create("/registry/services/default/web", {"v": 1})
        assert await b.get("/registry/services/default/web") == created
        (event,) = await take(watch_b, 1)
        assert (event.type, event.object) == (EventType.ADDED, created)

        # Each key has exactly one creator, whichever store the request went to.
        outcomes = await asyncio.gather(
            *(
                store.create(f"/registry/ipaddresses/10.0.0.{n // 2}", {"by": n})
                for n, store in enumerate([a, b] * 20)
            ),
            return_exceptions=True,
        )
        winners = [o for o in outcomes if isinstance(o, dict)]
        assert len(winners) == 20
        assert all(isinstance(o, KeyExists) for o in outcomes if not isinstance(o, dict))

        counter = "/registry/configmaps/default/counter"
        await a.create(counter, {"count": 0})

        def bump(obj: dict[str, Any]) -> dict[str, Any]:
            obj["count"] += 1
            return obj

        await asyncio.gather(*(s.guaranteed_update(counter, bump) for s in [a, b] * 15))
        assert (await b.get(counter))["count"] == 30
        await watch_b.close()
    finally:
        await a.close()
        await b.close()


# --- watches beyond the ring, slow watchers ---------------------------------------


def in_feed(store: EtcdStore, watch: Any) -> bool:
    """Whether `watch` is served by the store's shared etcd watch (not a catch-up of its own)."""
    return watch in store._subscribers and watch._reader is None


async def joins_feed(store: EtcdStore, watch: Any) -> bool:
    """Whether `watch` is (or, within a second, gets) served by the shared etcd watch."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1):
            while not in_feed(store, watch):
                await asyncio.sleep(0.01)
    return in_feed(store, watch)


async def feed_reaches(store: EtcdStore, revision: int) -> None:
    """Wait until the store's shared etcd watch has delivered `revision`."""
    async with asyncio.timeout(5):
        while store._feed_cursor[0] < revision:
            await asyncio.sleep(0.01)


async def test_a_watch_from_before_the_ring_catches_up_from_etcd_then_joins_the_feed(
    cluster: EtcdCluster,
) -> None:
    store = await EtcdStore.open(cluster.endpoints, prefix=fresh_prefix(), ring_size=8)
    try:
        start = (await store.list("")).resource_version
        written = [rv(await store.create(f"/things/t{i}", {"i": i})) for i in range(40)]
        await feed_reaches(store, written[-1])
        watch = await store.watch("/things/", start)
        assert not in_feed(store, watch), "the ring no longer holds the start"
        events = await take(watch, 40)
        assert [e.resource_version for e in events] == written
        later = await store.create("/things/later", {})
        (event,) = await take(watch, 1)
        assert event.resource_version == rv(later)
        assert await joins_feed(store, watch)
        assert await nothing_more(watch)
        await watch.close()
    finally:
        await store.close()


async def test_a_slow_watcher_reads_from_etcd_at_its_own_pace_and_misses_nothing(
    cluster: EtcdCluster,
) -> None:
    store = await EtcdStore.open(
        cluster.endpoints, prefix=fresh_prefix(), ring_size=16, watch_buffer=10
    )
    try:
        watch = await store.watch("/things/", None)
        assert in_feed(store, watch)
        written = []
        for i in range(60):
            written.append(rv(await store.create(f"/things/t{i:02}", {"i": i})))
        await feed_reaches(store, written[-1])
        assert not in_feed(store, watch), "an overflowing watcher should leave the feed"
        events = await take_until(watch, written[-1])
        assert [e.resource_version for e in events] == written
        await store.create("/things/after", {})
        await take(watch, 1)
        assert await joins_feed(store, watch)
        await watch.close()
    finally:
        await store.close()


# --- compaction -------------------------------------------------------------------


async def test_the_store_compacts_history_on_its_own(cluster: EtcdCluster) -> None:
    store = await EtcdStore.open(cluster.endpoints, prefix=fresh_prefix(), compaction_interval=0.1)
    try:
        first = await store.create("/things/a", {"v": 1})
        last = await store.update("/things/a", {"v": 2}, expected_rv=None)
        # Each pass compacts to the revision the previous pass saw: within a few
        # intervals, the version before `last` is gone.
        deadline = time.monotonic() + 5
        while True:
            try:
                watch = await store.watch("/things/", rv(first) - 1)
            except Expired as err:
                assert err.oldest_rv >= rv(first)
                break
            await watch.close()
            assert time.monotonic() < deadline, "the store did not compact"
            await asyncio.sleep(0.05)
        assert await store.get("/things/a") == last
    finally:
        await store.close()


async def test_a_watch_from_zero_replays_what_etcd_kept(store: EtcdStore) -> None:
    await store.create("/things/a", {"v": 1})
    second = await store.create("/things/b", {"v": 2})
    third = await store.update("/things/b", {"v": 3}, expected_rv=None)
    await store.compact(rv(second))
    watch = await store.watch("/things/", 0)
    (event,) = await take(watch, 1)
    assert (event.type, event.object) == (EventType.MODIFIED, third)
    await watch.close()


async def test_compacting_at_the_current_version_keeps_watching_from_it(store: EtcdStore) -> None:
    await store.create("/things/a", {"v": 1})
    now = await store.create("/things/b", {"v": 2})
    await store.compact(rv(now))  # etcd cannot compact past its current revision
    watch = await store.watch("/things/", rv(now))
    later = await store.create("/things/c", {})
    (event,) = await take(watch, 1)
    assert event.resource_version == rv(later)
    await watch.close()


# --- member failures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_member() -> Iterator[EtcdCluster]:
    """A one-member cluster of this module's own, to kill and restart."""
    cluster = EtcdCluster(1).start()
    yield cluster
    cluster.stop()


async def connected_becomes(store: EtcdStore, value: bool) -> bool:
    """Whether `store.connected` is (or within 5 s becomes) `value`."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while store.connected is not value:
                await asyncio.sleep(0.01)
    return store.connected is value


async def test_watches_resume_after_the_member_restarts(own_member: EtcdCluster) -> None:
    store = await EtcdStore.open(own_member.endpoints, prefix=fresh_prefix(), timeout=1.0)
    try:
        start = (await store.list("")).resource_version
        before = await store.create("/things/before", {})
        feed_watch = await store.watch("/things/", start)
        catch_up = await store.watch("/things/", 0)  # served by an etcd watch of its own
        assert in_feed(store, feed_watch) and not in_feed(store, catch_up)

        assert await connected_becomes(store, True)
        own_member.kill(0)
        with pytest.raises(StorageError):
            await store.create("/things/during", {})
        assert await connected_becomes(store, False)
        own_member.restart(0)
        assert await connected_becomes(store, True)

        after = await store.create("/things/after", {})
        for watch in (feed_watch, catch_up):
            events = await take_until(watch, rv(after), timeout=10)
            assert [(e.key, e.resource_version) for e in events] == [
                ("/things/before", rv(before)),
                ("/things/after", rv(after)),
            ]
            await watch.close()
        assert [i["metadata"]["resourceVersion"] for i in (await store.list("")).items] == [
            str(rv(after)),
            str(rv(before)),
        ]
    finally:
        await store.close()


@pytest.fixture(scope="module")
def three() -> Iterator[EtcdCluster]:
    """A three-member cluster of this module's own, to kill members of."""
    cluster = EtcdCluster(3).start()
    yield cluster
    cluster.stop()


async def test_killing_a_member_during_writes_loses_no_acknowledged_write(
    three: EtcdCluster,
) -> None:
    # The store talks to the leader first: killing it costs both a fail-over and
    # an election while writes are in flight.
    leader = three.leader()
    assert leader is not None
    order = [leader] + [i for i in range(3) if i != leader]
    prefix = fresh_prefix()
    # A write forwarded to the dead leader before the followers notice waits out
    # its timeout (then reports Indeterminate): keep that short.
    store = await EtcdStore.open([three.endpoints[i] for i in order], prefix=prefix, timeout=2)
    acknowledged: dict[str, int] = {}
    unknown: list[str] = []
    names = itertools.count()
    stop = asyncio.Event()

    async def writer() -> None:
        while not stop.is_set():
            key = f"/things/k{next(names):05}"
            try:
                acknowledged[key] = rv(await store.create(key, {"key": key}))
            except (Indeterminate, Unavailable):
                unknown.append(key)  # may or may not exist; never counted as written
                await asyncio.sleep(0.01)

    try:
        start = (await store.list("")).resource_version
        watch = await store.watch("/things/", start)
        writers = [asyncio.create_task(writer()) for _ in range(8)]
        await asyncio.sleep(0.3)
        before_kill = len(acknowledged)
        three.kill(leader)
        deadline = time.monotonic() + 15
        while len(acknowledged) < before_kill + 100 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*writers)
        assert before_kill > 0 and len(acknowledged) > before_kill + 20, (
            "writes did not go on after the kill",
            before_kill,
            len(acknowledged),
            unknown,
        )

        listed = {i["key"]: rv(i) for i in (await store.list("/things/")).items}
        for key, version in acknowledged.items():
            assert listed.get(key) == version, f"acknowledged write {key}@{version} was lost"
        assert set(listed) - set(acknowledged) <= set(unknown)

        seen: list[WatchEvent] = await take_until(watch, max(listed.values()), timeout=10)
        assert [e.key for e in seen] == sorted(listed, key=listed.__getitem__)
        await watch.close()
    finally:
        stop.set()
        await store.close()

    # The killed member comes back and catches up with everything it missed.
    three.restart(leader)
    alone = await EtcdStore.open([three.endpoints[leader]], prefix=prefix)
    try:
        deadline = time.monotonic() + 10
        while True:
            items = {i["key"]: rv(i) for i in (await alone.list("/things/")).items}
            if items == listed or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert items == listed
    finally:
        await alone.close()


async def test_a_frozen_member_is_left_for_another(three: EtcdCluster) -> None:
    # A member that stops (SIGSTOP) keeps its connections open and says nothing:
    # the store must notice by itself, for its calls and for its watch.
    frozen = three.members[0]
    assert frozen.process is not None
    store = await EtcdStore.open(
        three.endpoints, prefix=fresh_prefix(), timeout=1.0, probe_interval=0.3
    )
    try:
        watch = await store.watch("/things/", None)
        first = await store.create("/things/first", {})
        assert (await take(watch, 1))[0].resource_version == rv(first)
        os.kill(frozen.process.pid, signal.SIGSTOP)
        try:
            written = None
            for attempt in range(10):
                try:  # a fresh key each time: a timed-out create may still land later
                    written = await store.create(f"/things/second-{attempt}", {})
                    break
                except (Indeterminate, Unavailable):
                    continue
            assert written is not None
            (event,) = await take(watch, 1, timeout=10)
            assert event.resource_version == rv(written)
        finally:
            os.kill(frozen.process.pid, signal.SIGCONT)
        await watch.close()
    finally:
        await store.close()
    three.wait_healthy()


async def test_a_feed_cut_off_past_a_compaction_starts_over(
    three: EtcdCluster, caplog: pytest.LogCaptureFixture
) -> None:
    # A store that talks to member 0 only loses it; meanwhile others write and compact.
    three.make_leader(1)  # so that the others' writes need no election
    prefix = fresh_prefix()
    lonely = await EtcdStore.open([three.endpoints[0]], prefix=prefix, timeout=1.0)
    others = await EtcdStore.open(three.endpoints[1:], prefix=prefix)
    try:
        first = await lonely.create("/things/a", {})
        watch = await lonely.watch("/things/", rv(first))
        await feed_reaches(lonely, rv(first))
        three.kill(0)
        await others.create("/things/b", {})
        gone = await others.create("/things/c", {})
        await others.create("/things/d", {})
        await others.compact(rv(gone))
        three.restart(0)

        # The watch needed history that is gone: it ends with Expired, and says so.
        with (
            caplog.at_level(logging.WARNING, logger="kubesvc.storage.etcd"),
            pytest.raises(Expired),
        ):
            await take(watch, 3, timeout=10)
        assert "was compacted" in caplog.text
        # The store itself follows etcd again, from where etcd now is.
        fresh = await lonely.watch("/things/", None)
        later = await others.create("/things/e", {})
        (event,) = await take(fresh, 1, timeout=10)
        assert event.resource_version == rv(later)
        await fresh.close()
    finally:
        await lonely.close()
        await others.close()
