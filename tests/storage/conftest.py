"""Fixtures for the storage conformance suite, parametrised over backends.

To run the suite against another backend, add its name to BACKENDS and a
branch to `open_backend` that opens a store on fresh, empty storage at `place`
and reopens the same storage when called again with the same `place`.

The etcd backends ("etcd": one member, "etcd3": three) share one cluster per
size for the whole session, so the suite stays fast; each test gets fresh,
empty storage as its own key prefix, derived from `place`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from kubesvc.storage.etcd import EtcdStore
from kubesvc.storage.interface import Store
from kubesvc.storage.sqlite import SqliteStore
from tests.etcd_cluster import shared_cluster, stop_shared_clusters

BACKENDS = ["sqlite", "etcd", "etcd3"]
ETCD_SIZES = {"etcd": 1, "etcd3": 3}

OpenStore = Callable[[], Awaitable[Store]]


async def open_backend(backend: str, place: Path) -> Store:
    """A store of `backend` kind whose data lives at `place` (created if need be)."""
    if backend == "sqlite":
        return await SqliteStore.open(place / "kubesvc.db")
    if backend in ETCD_SIZES:
        cluster = shared_cluster(ETCD_SIZES[backend])
        return await EtcdStore.open(cluster.endpoints, prefix=etcd_prefix(place))
    raise AssertionError(f"unknown backend {backend}")


def etcd_prefix(place: Path) -> str:
    """A key prefix of its own for every `place` (the same one when reopened)."""
    return "/kubesvc-test/" + hashlib.sha256(str(place).encode()).hexdigest()[:16]


@pytest.fixture(scope="session", autouse=True)
def _etcd_clusters() -> Iterator[None]:
    """End the session's shared etcd clusters (started on first use) after the last test."""
    yield
    stop_shared_clusters()


def storage_threads() -> list[threading.Thread]:
    """Threads a store left running (the SQLite backend names its writer thread)."""
    return [t for t in threading.enumerate() if t.name.startswith("kubesvc-sqlite")]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def open_store(backend: str, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """Open (or, after closing, reopen) the test's store; every store is closed at teardown."""
    opened: list[Store] = []

    async def factory() -> Store:
        store = await open_backend(backend, tmp_path)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()
    assert storage_threads() == [], "a store left its thread running"


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()
