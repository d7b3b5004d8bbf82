"""Random operation sequences checked against a dict model, per backend.

After any sequence of creates, updates, deletes and transactions (some meant to
fail), every outcome matches the model, the list equals the model, and a watch
replayed from the beginning rebuilds the same state.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubesvc.storage.errors import Conflict, KeyExists, KeyNotFound, StorageError
from kubesvc.storage.interface import Create, EventType, Store, Update, resource_version_of
from tests.storage.conftest import open_backend
from tests.storage.test_conformance import nothing_more, take

KEYS = [f"/registry/things/ns{n % 2}/t{n}" for n in range(4)]
KINDS = ["create", "update", "update-stale", "delete", "delete-checked", "txn"]

Op = tuple[str, int, int, int]
operations = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(0, len(KEYS) - 1),
        st.integers(0, len(KEYS) - 1),
        st.integers(0, 1000),
    ),
    max_size=25,
)


class Model:
    """What the store should hold: key → (resourceVersion, payload).

    Versions count on from `base`, the store's version before the first operation:
    a fresh SQLite store starts at 0, a fresh prefix in a shared etcd wherever
    etcd's revision is.
    """

    def __init__(self, base: int = 0) -> None:
        self.base = base
        self.rv = base
        self.events = 0
        self.data: dict[str, tuple[int, int]] = {}

    def version(self, key: str) -> int:
        return self.data[key][0] if key in self.data else 0

    def expect(self, op: Op) -> type[StorageError] | None:
        """Apply `op` to the model; the error the store must raise instead, if any."""
        kind, a, b, payload = op
        ka, kb = KEYS[a], KEYS[b]
        if kind == "create":
            if ka in self.data:
                return KeyExists
            writes = {ka: payload}
        elif kind in ("update", "update-stale", "delete", "delete-checked"):
            if ka not in self.data:
                return KeyNotFound
            if kind == "update-stale":
                return Conflict
            writes = {ka: None if kind.startswith("delete") else payload}
        else:  # txn: create ka, and update kb if it is still at the version we read
            if ka == kb:
                return None  # the test does not send this one
            if ka in self.data:
                return KeyExists
            if kb not in self.data:
                return KeyNotFound
            writes = {ka: payload, kb: payload + 1}
        self.rv += 1
        self.events += len(writes)
        for key, value in writes.items():
            if value is None:
                del self.data[key]
            else:
                self.data[key] = (self.rv, value)
        return None


async def perform(store: Store, versions: dict[str, int], op: Op) -> Any:
    """Send `op`, with preconditions taken from `versions` (the model before the op)."""
    kind, a, b, payload = op
    ka, kb = KEYS[a], KEYS[b]
    current = versions[ka]
    if kind == "create":
        return await store.create(ka, {"p": payload})
    if kind == "update":
        return await store.update(ka, {"p": payload}, expected_rv=current)
    if kind == "update-stale":
        return await store.update(ka, {"p": payload}, expected_rv=current - 1)
    if kind == "delete":
        return await store.delete(ka)
    if kind == "delete-checked":
        return await store.delete(ka, expected_rv=current)
    return await store.txn(
        [Create(ka, {"p": payload}), Update(kb, {"p": payload + 1}, versions[kb])]
    )


async def check(store: Store, ops: list[Op]) -> None:
    model = Model((await store.list("")).resource_version)
    for op in ops:
        if op[0] == "txn" and op[1] == op[2]:
            continue
        versions = {k: model.version(k) for k in KEYS}
        expected = model.expect(op)
        try:
            await perform(store, versions, op)
        except StorageError as err:
            assert type(err) is expected, (op, err)
        else:
            assert expected is None, (op, "should have raised", expected)

    listed = await store.list("/registry/things/")
    assert listed.resource_version == model.rv
    assert sorted((resource_version_of(i), i["p"]) for i in listed.items) == sorted(
        model.data.values()
    )
    if model.rv == model.base:
        return
    watch = await store.watch("/registry/", 0)
    events = await take(watch, model.events)
    assert await nothing_more(watch)
    await watch.close()
    state: dict[str, tuple[int, int]] = {}
    for event in events:
        if event.type is EventType.DELETED:
            del state[event.key]
        else:
            state[event.key] = (event.resource_version, event.object["p"])
    assert state == model.data
    versions = [e.resource_version for e in events]
    assert versions == sorted(versions)


counter = itertools.count()


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=operations)
def test_random_operations_match_a_dict_model(backend: str, tmp_path: Path, ops: list[Op]) -> None:
    async def run() -> None:
        place = tmp_path / f"example{next(counter)}"
        place.mkdir()
        store = await open_backend(backend, place)
        try:
            await check(store, ops)
        finally:
            await store.close()

    asyncio.run(run())
