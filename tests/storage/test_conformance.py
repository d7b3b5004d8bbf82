"""The behaviour every Store backend must show; parametrised over backends in conftest."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from kubesvc.storage.errors import Conflict, Expired, KeyExists, KeyNotFound, StoreClosed
from kubesvc.storage.interface import (
    CheckAbsent,
    CheckVersion,
    Create,
    Delete,
    EventType,
    Store,
    Update,
    WatchEvent,
    WatchStream,
    resource_version_of,
)
from tests.storage.conftest import OpenStore

SERVICES = "/registry/services/"
DEFAULT = "/registry/services/default/"

Obj = dict[str, Any]


def svc(name: str, namespace: str = "default", **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": dict(spec),
    }


def key(name: str, namespace: str = "default") -> str:
    return f"{SERVICES}{namespace}/{name}"


def rv(obj: Obj) -> int:
    return resource_version_of(obj)


async def take(watch: WatchStream, n: int, timeout: float = 5.0) -> list[WatchEvent]:
    """The next `n` events of `watch`, failing the test if they take longer than `timeout`."""
    events = []
    async with asyncio.timeout(timeout):
        for _ in range(n):
            events.append(await anext(watch))
    return events


async def take_until(watch: WatchStream, last_rv: int, timeout: float = 5.0) -> list[WatchEvent]:
    """Events up to and including the first one at `last_rv` or later."""
    events: list[WatchEvent] = []
    async with asyncio.timeout(timeout):
        while not events or events[-1].resource_version < last_rv:
            events.append(await anext(watch))
    return events


async def nothing_more(watch: WatchStream, wait: float = 0.05) -> bool:
    """Whether `watch` stays silent for `wait` seconds."""
    try:
        async with asyncio.timeout(wait):
            await anext(watch)
    except TimeoutError:
        return True
    return False


# --- single-key operations -----------------------------------------------------------


async def test_create_returns_the_object_stamped_with_a_string_resource_version(
    store: Store,
) -> None:
    created = await store.create(key("web"), svc("web", ports=[80]))
    assert created["spec"] == {"ports": [80]}
    assert isinstance(created["metadata"]["resourceVersion"], str)
    assert rv(created) > 0
    assert await store.get(key("web")) == created


async def test_objects_are_independent_copies(store: Store) -> None:
    original = svc("web", ports=[80])
    created = await store.create(key("web"), original)
    assert "resourceVersion" not in original["metadata"], "the caller's dict was changed"
    original["spec"]["ports"].append(443)
    created["spec"]["ports"].append(8080)
    first = await store.get(key("web"))
    first["spec"]["ports"].append(9090)
    listed = (await store.list(DEFAULT)).items[0]
    listed["metadata"]["name"] = "changed"
    assert await store.get(key("web")) == {
        **svc("web", ports=[80]),
        "metadata": created["metadata"],
    }


async def test_caller_supplied_resource_version_is_replaced(store: Store) -> None:
    obj = svc("web")
    obj["metadata"]["resourceVersion"] = "999999"
    created = await store.create(key("web"), obj)
    assert created["metadata"]["resourceVersion"] != "999999"
    assert await store.get(key("web")) == created


async def test_object_without_metadata_gets_metadata_with_resource_version(store: Store) -> None:
    created = await store.create("/registry/misc/x", {"data": 1})
    assert created == {"data": 1, "metadata": {"resourceVersion": str(rv(created))}}


async def test_values_that_are_not_json_objects_are_rejected(store: Store) -> None:
    with pytest.raises(TypeError):
        await store.create(key("a"), ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await store.create(key("b"), {"x": math.nan})
    with pytest.raises(TypeError):
        await store.create(key("c"), {"x": object()})
    assert (await store.list(SERVICES)).items == []


async def test_create_of_an_existing_key_raises_key_exists(store: Store) -> None:
    first = await store.create(key("web"), svc("web", v=1))
    with pytest.raises(KeyExists) as err:
        await store.create(key("web"), svc("web", v=2))
    assert err.value.key == key("web")
    assert await store.get(key("web")) == first


async def test_get_of_a_missing_key_raises_key_not_found(store: Store) -> None:
    with pytest.raises(KeyNotFound) as err:
        await store.get(key("nope"))
    assert err.value.key == key("nope")


async def test_resource_version_is_global_and_strictly_increasing(store: Store) -> None:
    versions = [
        rv(await store.create(key("a"), svc("a"))),
        rv(await store.create(key("b", "other"), svc("b", "other"))),
        rv(await store.update(key("a"), svc("a", v=2), expected_rv=None)),
        rv(await store.create("/registry/pods/default/p", {"metadata": {"name": "p"}})),
        rv(await store.delete(key("b", "other"))),
        rv(await store.update(key("a"), svc("a", v=3), expected_rv=None)),
    ]
    assert versions == sorted(set(versions)), versions
    assert (await store.list(SERVICES)).resource_version == versions[-1]
    assert (await store.list("/registry/nothing-here/")).resource_version == versions[-1]


async def test_list_selects_by_prefix_sorted_by_key(store: Store) -> None:
    for name, ns in [("b", "default"), ("a", "default"), ("a", "default2"), ("c", "kube-system")]:
        await store.create(key(name, ns), svc(name, ns))
    await store.create("/registry/pods/default/a", {"metadata": {"name": "a"}})

    def names(items: list[Obj]) -> list[tuple[str, str]]:
        return [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items]

    in_default = await store.list(DEFAULT)
    assert names(in_default.items) == [("default", "a"), ("default", "b")]
    everywhere = await store.list(SERVICES)
    assert names(everywhere.items) == [
        ("default", "a"),
        ("default", "b"),
        ("default2", "a"),
        ("kube-system", "c"),
    ]
    assert in_default.resource_version == everywhere.resource_version
    assert [rv(i) for i in everywhere.items] == [
        rv(await store.get(key(n, ns))) for ns, n in names(everywhere.items)
    ]


async def test_update_with_current_version_succeeds(store: Store) -> None:
    created = await store.create(key("web"), svc("web", v=1))
    updated = await store.update(key("web"), svc("web", v=2), expected_rv=rv(created))
    assert updated["spec"] == {"v": 2}
    assert rv(updated) > rv(created)
    assert await store.get(key("web")) == updated


async def test_stale_update_raises_conflict_with_the_current_object(store: Store) -> None:
    created = await store.create(key("web"), svc("web", v=1))
    current = await store.update(key("web"), svc("web", v=2), expected_rv=rv(created))
    with pytest.raises(Conflict) as err:
        await store.update(key("web"), svc("web", v=3), expected_rv=rv(created))
    assert err.value.key == key("web")
    assert err.value.expected_rv == rv(created)
    assert err.value.actual_rv == rv(current)
    assert err.value.current == current
    assert await store.get(key("web")) == current


async def test_update_of_a_missing_key_raises_key_not_found(store: Store) -> None:
    with pytest.raises(KeyNotFound):
        await store.update(key("web"), svc("web"), expected_rv=None)
    with pytest.raises(KeyNotFound):
        await store.update(key("web"), svc("web"), expected_rv=1)
    assert (await store.list(SERVICES)).items == []


async def test_unconditional_update_overwrites_whatever_is_there(store: Store) -> None:
    await store.create(key("web"), svc("web", v=1))
    await store.update(key("web"), svc("web", v=2), expected_rv=None)
    updated = await store.update(key("web"), svc("web", v=3), expected_rv=None)
    assert (await store.get(key("web")))["spec"] == {"v": 3} == updated["spec"]


async def test_delete_with_a_stale_precondition_conflicts_and_keeps_the_object(
    store: Store,
) -> None:
    created = await store.create(key("web"), svc("web", v=1))
    current = await store.update(key("web"), svc("web", v=2), expected_rv=None)
    with pytest.raises(Conflict) as err:
        await store.delete(key("web"), expected_rv=rv(created))
    assert err.value.operation == "delete"
    assert err.value.current == current
    assert await store.get(key("web")) == current

    deleted = await store.delete(key("web"), expected_rv=rv(current))
    assert deleted["spec"] == {"v": 2}
    assert rv(deleted) > rv(current), "a delete gets its own resourceVersion"
    with pytest.raises(KeyNotFound):
        await store.get(key("web"))


async def test_delete_of_a_missing_key_raises_key_not_found(store: Store) -> None:
    with pytest.raises(KeyNotFound):
        await store.delete(key("web"))
    with pytest.raises(KeyNotFound):
        await store.delete(key("web"), expected_rv=3)


async def test_a_key_can_be_created_again_after_delete(store: Store) -> None:
    first = await store.create(key("web"), svc("web", v=1))
    await store.delete(key("web"))
    again = await store.create(key("web"), svc("web", v=2))
    assert rv(again) > rv(first)
    assert (await store.get(key("web")))["spec"] == {"v": 2}


# --- watch -------------------------------------------------------------------------


async def test_watch_delivers_added_modified_deleted_in_order(store: Store) -> None:
    start = (await store.list(SERVICES)).resource_version
    watch = await store.watch(DEFAULT, start)
    created = await store.create(key("web"), svc("web", v=1))
    updated = await store.update(key("web"), svc("web", v=2), expected_rv=rv(created))
    deleted = await store.delete(key("web"))

    added, modified, removed = await take(watch, 3)
    assert (added.type, added.key, added.object, added.prev_object) == (
        EventType.ADDED,
        key("web"),
        created,
        None,
    )
    assert (modified.type, modified.object, modified.prev_object) == (
        EventType.MODIFIED,
        updated,
        created,
    )
    assert (removed.type, removed.object, removed.prev_object) == (
        EventType.DELETED,
        deleted,
        updated,
    )
    assert [e.resource_version for e in (added, modified, removed)] == [
        rv(created),
        rv(updated),
        rv(deleted),
    ]
    assert await nothing_more(watch)
    await watch.close()


async def test_watch_events_are_independent_copies(store: Store) -> None:
    one = await store.watch(SERVICES, 0)
    two = await store.watch(SERVICES, 0)
    created = await store.create(key("web"), svc("web", ports=[80]))
    (first,) = await take(one, 1)
    first.object["spec"]["ports"].append(1)
    (second,) = await take(two, 1)
    assert second.object == created
    assert await store.get(key("web")) == created
    await one.close()
    await two.close()


async def test_watch_filters_by_prefix(store: Store) -> None:
    start = (await store.list("")).resource_version
    in_default = await store.watch(DEFAULT, start)
    everywhere = await store.watch(SERVICES, start)
    await store.create(key("a", "default"), svc("a"))
    await store.create(key("b", "default2"), svc("b", "default2"))
    await store.create("/registry/pods/default/p", {"metadata": {"name": "p"}})
    last = await store.create(key("c", "default"), svc("c"))

    seen_default = await take_until(in_default, rv(last))
    assert [e.key for e in seen_default] == [key("a"), key("c")]
    seen_all = await take_until(everywhere, rv(last))
    assert [e.key for e in seen_all] == [key("a"), key("b", "default2"), key("c")]
    assert await nothing_more(in_default)
    await in_default.close()
    await everywhere.close()


async def test_watch_without_a_version_sees_only_later_changes(store: Store) -> None:
    await store.create(key("old"), svc("old"))
    watch = await store.watch(SERVICES)
    new = await store.create(key("new"), svc("new"))
    (event,) = await take(watch, 1)
    assert (event.type, event.key, event.resource_version) == (EventType.ADDED, key("new"), rv(new))
    await watch.close()


async def test_watch_from_zero_replays_history_then_follows(store: Store) -> None:
    a = await store.create(key("a"), svc("a"))
    b = await store.update(key("a"), svc("a", v=2), expected_rv=None)
    watch = await store.watch(SERVICES, 0)
    c = await store.create(key("c"), svc("c"))
    events = await take(watch, 3)
    assert [(e.type, e.resource_version) for e in events] == [
        (EventType.ADDED, rv(a)),
        (EventType.MODIFIED, rv(b)),
        (EventType.ADDED, rv(c)),
    ]
    await watch.close()


async def test_watch_from_a_future_version_waits_for_it(store: Store) -> None:
    now = (await store.list("")).resource_version
    watch = await store.watch(SERVICES, now + 2)
    await store.create(key("a"), svc("a"))
    await store.create(key("b"), svc("b"))
    c = await store.create(key("c"), svc("c"))
    (event,) = await take(watch, 1)
    assert (event.key, event.resource_version) == (key("c"), rv(c))
    await watch.close()


async def write_churn(store: Store, ops: int, namespaces: int = 3) -> int:
    """Creates, updates and deletes across a few keys; returns the last resourceVersion."""
    last = 0
    for i in range(ops):
        name, namespace = f"s{i % 5}", f"ns{i % namespaces}"
        k = key(name, namespace)
        step = i // 15 % 3
        try:
            if step == 0:
                last = rv(await store.create(k, svc(name, namespace, i=i)))
            elif step == 1:
                last = rv(await store.update(k, svc(name, namespace, i=i), expected_rv=None))
            else:
                last = rv(await store.delete(k))
        except (KeyExists, KeyNotFound):
            pass
        await asyncio.sleep(0)
    return last


def apply(state: dict[str, Obj], events: list[WatchEvent]) -> dict[str, Obj]:
    """The state a client builds by applying watch events to a listed state."""
    state = dict(state)
    for event in events:
        if event.type is EventType.DELETED:
            del state[event.key]
        elif event.type in (EventType.ADDED, EventType.MODIFIED):
            state[event.key] = event.object
    return state


def keyed(items: list[Obj]) -> dict[str, Obj]:
    return {key(i["metadata"]["name"], i["metadata"]["namespace"]): i for i in items}


async def test_list_then_watch_has_no_gap_and_no_duplicate(store: Store) -> None:
    writer = asyncio.create_task(write_churn(store, 300))
    for _ in range(40):  # list in the middle of the churn
        await asyncio.sleep(0)
    listed = await store.list(SERVICES)
    watch = await store.watch(SERVICES, listed.resource_version)
    last = await writer
    assert last > listed.resource_version, "the writer finished before the list"
    events = await take_until(watch, last)
    versions = [e.resource_version for e in events]
    assert versions == sorted(set(versions)), "an event was duplicated or reordered"
    assert versions[0] > listed.resource_version
    final = await store.list(SERVICES)
    assert apply(keyed(listed.items), events) == keyed(final.items)
    assert await nothing_more(watch)
    await watch.close()


async def test_resumed_watch_delivers_each_event_exactly_once(store: Store) -> None:
    start = (await store.list("")).resource_version
    watch = await store.watch(SERVICES, start)
    first_half = await write_churn(store, 60)
    seen = await take(watch, 10)
    await watch.close()  # the client disconnects mid-stream
    await write_churn(store, 60)  # changes made while it was away
    resumed = await store.watch(SERVICES, seen[-1].resource_version)
    last = await write_churn(store, 30)  # and after it came back
    assert first_half < last
    seen += await take_until(resumed, last)
    await resumed.close()

    replay = await store.watch(SERVICES, start)
    everything = await take_until(replay, last)
    await replay.close()
    assert [(e.type, e.key, e.resource_version) for e in seen] == [
        (e.type, e.key, e.resource_version) for e in everything
    ]


async def test_watch_ends_when_closed(store: Store) -> None:
    watch = await store.watch(SERVICES)
    consumer = asyncio.create_task(anext(watch))
    await asyncio.sleep(0.01)
    await watch.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(consumer, 5)
    await store.create(key("a"), svc("a"))
    assert [e async for e in watch] == []


async def test_bookmarks_report_progress_outside_the_watched_prefix(store: Store) -> None:
    watch = await store.watch(DEFAULT, None, bookmark_interval=0.02)
    elsewhere = await store.create("/registry/pods/default/p", {"metadata": {"name": "p"}})
    (bookmark,) = await take(watch, 1)
    assert bookmark.type is EventType.BOOKMARK
    assert bookmark.resource_version == rv(elsewhere)
    assert bookmark.object == {"metadata": {"resourceVersion": str(rv(elsewhere))}}
    await watch.close()

    # A client resuming from the bookmark misses nothing and sees nothing twice.
    resumed = await store.watch(DEFAULT, bookmark.resource_version)
    created = await store.create(key("web"), svc("web"))
    (event,) = await take(resumed, 1)
    assert (event.type, event.resource_version) == (EventType.ADDED, rv(created))
    await resumed.close()


# --- transactions -------------------------------------------------------------------


async def test_txn_is_all_or_nothing(store: Store) -> None:
    ip_key = "/registry/ipallocations/10.0.0.7"
    owner = await store.create(key("web"), svc("web", v=1))
    await store.update(key("web"), svc("web", v=2), expected_rv=None)  # owner is now stale
    before = await store.list("")
    watch = await store.watch("", before.resource_version)

    with pytest.raises(Conflict) as err:
        await store.txn(
            [
                Create(ip_key, {"metadata": {"name": "10.0.0.7"}}),
                Update(key("web"), svc("web", v=3, ip="10.0.0.7"), expected_rv=rv(owner)),
            ]
        )
    assert err.value.key == key("web")
    after = await store.list("")
    assert after == before, "a failed transaction wrote something"
    assert await nothing_more(watch)

    current = await store.get(key("web"))
    result = await store.txn(
        [
            Create(ip_key, {"metadata": {"name": "10.0.0.7"}}),
            Update(key("web"), svc("web", v=3, ip="10.0.0.7"), expected_rv=rv(current)),
        ]
    )
    assert result.resource_version > after.resource_version
    ip, service = result.objects
    assert ip is not None and service is not None
    assert rv(ip) == rv(service) == result.resource_version
    assert await store.get(ip_key) == ip
    assert await store.get(key("web")) == service

    events = await take(watch, 2)
    assert [(e.type, e.key, e.resource_version) for e in events] == [
        (EventType.ADDED, ip_key, result.resource_version),
        (EventType.MODIFIED, key("web"), result.resource_version),
    ]
    await watch.close()


async def test_txn_failure_reports_the_failing_operation(store: Store) -> None:
    taken = await store.create("/registry/ports/30080", {"metadata": {"name": "30080"}})
    with pytest.raises(KeyExists) as exists:
        await store.txn([Create("/registry/ports/30081", {}), Create("/registry/ports/30080", {})])
    assert exists.value.key == "/registry/ports/30080"
    with pytest.raises(KeyNotFound) as missing:
        await store.txn([Create("/registry/ports/30081", {}), Delete("/registry/ports/1")])
    assert missing.value.key == "/registry/ports/1"
    listed = await store.list("/registry/ports/")
    assert listed.items == [taken]
    assert listed.resource_version == rv(taken)


async def test_txn_checks_guard_without_writing(store: Store) -> None:
    cfg = await store.create("/registry/config/range", {"spec": {"cidr": "10.0.0.0/24"}})
    with pytest.raises(Conflict) as stale:
        await store.txn(
            [CheckVersion(cfg_key := "/registry/config/range", rv(cfg) - 1), Create("/x/a", {})]
        )
    assert stale.value.operation == "check"
    with pytest.raises(KeyExists):
        await store.txn([CheckAbsent(cfg_key), Create("/x/a", {})])
    with pytest.raises(KeyNotFound):
        await store.txn([CheckVersion("/registry/config/none", 1), Create("/x/a", {})])
    assert (await store.list("/x/")).items == []

    result = await store.txn(
        [CheckVersion(cfg_key, rv(cfg)), CheckAbsent("/x/b"), Create("/x/a", {})]
    )
    assert result.objects[0] == cfg
    assert result.objects[1] is None
    assert result.objects[2] is not None and rv(result.objects[2]) == result.resource_version
    assert await store.get(cfg_key) == cfg, "a check must not write"


async def test_txn_of_checks_only_does_not_move_the_version(store: Store) -> None:
    cfg = await store.create("/registry/config/range", {"spec": {}})
    result = await store.txn([CheckVersion("/registry/config/range", rv(cfg))])
    assert result.resource_version == rv(cfg)
    assert (await store.list("")).resource_version == rv(cfg)


async def test_txn_rejects_a_key_used_twice(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.txn([Create("/x/a", {}), Delete("/x/a")])
    assert (await store.list("")).items == []


async def test_txn_delete_returns_the_deleted_object(store: Store) -> None:
    a = await store.create("/x/a", {"v": 1})
    result = await store.txn([Delete("/x/a", rv(a)), Create("/x/b", {"v": 2})])
    deleted, created = result.objects
    assert deleted == {"v": 1, "metadata": {"resourceVersion": str(result.resource_version)}}
    assert created == {"v": 2, "metadata": {"resourceVersion": str(result.resource_version)}}
    assert [i["v"] for i in (await store.list("/x/")).items] == [2]


# --- history window -----------------------------------------------------------------


async def test_watch_from_before_compaction_is_expired(store: Store) -> None:
    first = await store.create(key("a"), svc("a"))
    await store.update(key("a"), svc("a", v=2), expected_rv=None)
    third = await store.update(key("a"), svc("a", v=3), expected_rv=None)
    fourth = await store.update(key("a"), svc("a", v=4), expected_rv=None)
    await store.compact(rv(third))

    with pytest.raises(Expired) as err:
        await store.watch(SERVICES, rv(first))
    assert err.value.requested_rv == rv(first)
    assert err.value.oldest_rv == rv(third)

    # The oldest kept version still works and continues with the next change.
    watch = await store.watch(SERVICES, rv(third))
    (event,) = await take(watch, 1)
    assert event.resource_version == rv(fourth)
    await watch.close()
    # Compaction removes history, not data.
    assert (await store.get(key("a")))["spec"] == {"v": 4}


async def test_compacting_beyond_the_current_version_is_rejected(store: Store) -> None:
    created = await store.create(key("a"), svc("a"))
    with pytest.raises(ValueError):
        await store.compact(rv(created) + 1)
    watch = await store.watch(SERVICES, 0)
    assert (await take(watch, 1))[0].resource_version == rv(created)
    await watch.close()


# --- guaranteed update --------------------------------------------------------------


def increment(obj: Obj) -> Obj:
    obj["data"]["count"] += 1
    return obj


async def test_concurrent_guaranteed_updates_lose_no_increment(store: Store) -> None:
    counter = "/registry/configmaps/default/counter"
    await store.create(counter, {"metadata": {"name": "counter"}, "data": {"count": 0}})
    watch = await store.watch(counter)

    results = await asyncio.gather(
        *(store.guaranteed_update(counter, increment) for _ in range(50))
    )
    assert (await store.get(counter))["data"]["count"] == 50
    assert sorted(r["data"]["count"] for r in results) == list(range(1, 51))
    events = await take(watch, 50)
    assert [e.object["data"]["count"] for e in events] == list(range(1, 51))
    await watch.close()


async def test_guaranteed_update_with_limited_attempts_counts_only_successes(
    store: Store,
) -> None:
    counter = "/registry/configmaps/default/counter"
    await store.create(counter, {"metadata": {"name": "counter"}, "data": {"count": 0}})
    outcomes = await asyncio.gather(
        *(store.guaranteed_update(counter, increment, max_attempts=2) for _ in range(50)),
        return_exceptions=True,
    )
    successes = [o for o in outcomes if isinstance(o, dict)]
    failures = [o for o in outcomes if not isinstance(o, dict)]
    assert all(isinstance(f, Conflict) for f in failures)
    assert successes, "the first writer cannot conflict"
    assert (await store.get(counter))["data"]["count"] == len(successes)


async def test_guaranteed_update_that_changes_nothing_writes_nothing(store: Store) -> None:
    created = await store.create(key("web"), svc("web", v=1))
    calls = 0

    def unchanged(obj: Obj) -> Obj:
        nonlocal calls
        calls += 1
        return obj

    assert await store.guaranteed_update(key("web"), unchanged) == created
    assert calls == 1
    assert (await store.list("")).resource_version == rv(created)


async def test_guaranteed_update_accepts_an_async_function_and_retries_it(store: Store) -> None:
    created = await store.create(key("web"), svc("web", v=1))
    seen: list[int] = []

    async def bump(obj: Obj) -> Obj:
        seen.append(rv(obj))
        if len(seen) == 1:  # someone else writes between our read and our write
            await store.update(key("web"), svc("web", v=10), expected_rv=None)
        obj["spec"]["v"] += 1
        return obj

    result = await store.guaranteed_update(key("web"), bump)
    assert result["spec"] == {"v": 11}
    assert seen[0] == rv(created) and len(seen) == 2 and seen[1] > seen[0]


async def test_guaranteed_update_of_a_missing_key_raises_key_not_found(store: Store) -> None:
    with pytest.raises(KeyNotFound):
        await store.guaranteed_update(key("web"), increment)


# --- lifecycle ----------------------------------------------------------------------


async def test_reopened_store_has_the_data_and_versions_continue(open_store: OpenStore) -> None:
    store = await open_store()
    await store.create(key("a"), svc("a"))
    kept = await store.create(key("b"), svc("b"))
    gone = await store.delete(key("a"))
    await store.close()

    store = await open_store()
    listed = await store.list(SERVICES)
    assert listed.items == [kept]
    assert listed.resource_version == rv(gone)
    watch = await store.watch(SERVICES, rv(kept))
    (event,) = await take(watch, 1)
    assert (event.type, event.resource_version) == (EventType.DELETED, rv(gone))
    later = await store.create(key("c"), svc("c"))
    assert rv(later) > rv(gone)
    await watch.close()


async def test_closing_the_store_ends_watches_and_refuses_operations(store: Store) -> None:
    watch = await store.watch(SERVICES)
    consumer = asyncio.create_task(anext(watch))
    await asyncio.sleep(0.01)
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(consumer, 5)
    with pytest.raises(StoreClosed):
        await store.get(key("a"))
    with pytest.raises(StoreClosed):
        await store.create(key("a"), svc("a"))
    with pytest.raises(StoreClosed):
        await store.watch(SERVICES)
    await store.close()  # idempotent


async def test_concurrent_creates_of_one_key_have_exactly_one_winner(store: Store) -> None:
    outcomes = await asyncio.gather(
        *(store.create(key("web"), svc("web", writer=i)) for i in range(20)),
        *(store.create(key(f"other{i}"), svc(f"other{i}")) for i in range(20)),
        return_exceptions=True,
    )
    same_key, distinct = outcomes[:20], outcomes[20:]
    winners = [o for o in same_key if isinstance(o, dict)]
    assert len(winners) == 1
    assert all(isinstance(o, KeyExists) for o in same_key if o is not winners[0])
    assert await store.get(key("web")) == winners[0]
    assert all(isinstance(o, dict) for o in distinct)
    versions = [rv(o) for o in [*winners, *distinct] if isinstance(o, dict)]
    assert len(set(versions)) == 21
