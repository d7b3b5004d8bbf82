"""Fixtures for the storage conformance suite, parametrised over backends.

To run the suite against another backend (etcd), add its name to BACKENDS and a
branch to `open_backend` that opens a store on fresh, empty storage at `place`
and reopens the same storage when called again with the same `place`.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from kubesvc.storage.interface import Store
from kubesvc.storage.sqlite import SqliteStore

BACKENDS = ["sqlite"]

OpenStore = Callable[[], Awaitable[Store]]


async def open_backend(backend: str, place: Path) -> Store:
    """A store of `backend` kind whose data lives at `place` (created if need be)."""
    if backend == "sqlite":
        return await SqliteStore.open(place / "kubesvc.db")
    raise AssertionError(f"unknown backend {backend}")


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
