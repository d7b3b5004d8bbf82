"""Behaviour specific to the SQLite backend: the file, the history window, slow watchers, crashes."""

from __future__ import annotations

import asyncio
import os
import random
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import pytest

from kubesvc.storage.errors import Expired, StorageError
from kubesvc.storage.interface import Create, EventType, resource_version_of
from kubesvc.storage.sqlite import SqliteStore
from tests.storage.conftest import storage_threads
from tests.storage.test_conformance import take, take_until

CRASH_WRITER = Path(__file__).with_name("crash_writer.py")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Path]:
    """The database path; fails the test if a store it opened was left running."""
    yield tmp_path / "kubesvc.db"
    assert storage_threads() == [], "a store left its thread running"


async def test_the_database_is_one_wal_file(db: Path) -> None:
    store = await SqliteStore.open(db)
    await store.create("/a", {"x": 1})
    # Exclusive locking keeps the WAL index in memory: no -shm file next to the data.
    assert sorted(p.name for p in db.parent.iterdir()) == ["kubesvc.db", "kubesvc.db-wal"]
    await store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_a_second_open_of_the_same_file_fails_and_the_first_keeps_working(
    db: Path,
) -> None:
    store = await SqliteStore.open(db)
    try:
        with pytest.raises(StorageError, match="in use"):
            await SqliteStore.open(db)
        created = await store.create("/a", {"x": 1})
        assert await store.get("/a") == created
    finally:
        await store.close()


async def test_opening_an_unusable_path_raises(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot open"):
        await SqliteStore.open(tmp_path / "missing-dir" / "kubesvc.db")
    assert storage_threads() == []


async def test_history_is_bounded_to_the_configured_window(db: Path) -> None:
    store = await SqliteStore.open(db, history=10)
    try:
        await store.create("/c", {"n": 0})
        for n in range(1, 40):
            await store.update("/c", {"n": n}, expected_rv=None)
        current = (await store.list("")).resource_version
        with pytest.raises(Expired) as err:
            await store.watch("/", 1)
        assert current - 10 - 1 <= err.value.oldest_rv <= current - 10
        watch = await store.watch("/", current - 10)
        events = await take(watch, 10)
        assert [e.object["n"] for e in events] == list(range(30, 40))
        await watch.close()
    finally:
        await store.close()

    # The window is kept across a restart.
    store = await SqliteStore.open(db, history=10)
    try:
        with pytest.raises(Expired):
            await store.watch("/", 1)
    finally:
        await store.close()


async def test_a_slow_watcher_catches_up_from_the_file(db: Path) -> None:
    store = await SqliteStore.open(db, watch_buffer=5)
    try:
        watch = await store.watch("/w/")
        for n in range(60):  # far more than the watcher buffers, none consumed
            await store.create(f"/w/{n:03}", {"n": n})
            await store.create(f"/other/{n:03}", {"n": n})
        events = await take(watch, 60)
        assert [e.object["n"] for e in events] == list(range(60))
        assert all(e.type is EventType.ADDED for e in events)
        late = await store.create("/w/late", {"n": 60})
        (event,) = await take(watch, 1)
        assert event.resource_version == resource_version_of(late)
        await watch.close()
    finally:
        await store.close()


async def test_a_long_replay_is_read_in_pages_and_delivered_in_order(db: Path) -> None:
    store = await SqliteStore.open(db, watch_buffer=10)
    try:
        # Concurrent creates commit in groups, so this is quick despite fsyncs.
        await asyncio.gather(*(store.create(f"/r/{n:05}", {"n": n}) for n in range(2500)))
        watch = await store.watch("/r/", 0)
        # Live changes arriving during the replay overflow the small buffer as well.
        writer = asyncio.ensure_future(
            asyncio.gather(*(store.create(f"/r/late{n:03}", {"n": 2500 + n}) for n in range(100)))
        )
        events = await take(watch, 2600, timeout=20)
        await writer
        versions = [e.resource_version for e in events]
        assert versions == sorted(set(versions))
        assert sorted(e.object["n"] for e in events) == list(range(2600))
        await watch.close()
    finally:
        await store.close()


async def test_a_transaction_interrupted_by_overflow_is_delivered_exactly_once(db: Path) -> None:
    store = await SqliteStore.open(db, watch_buffer=6)
    try:
        watch = await store.watch("/t/")
        txn = await store.txn([Create(f"/t/{n}", {"n": n}) for n in range(5)])
        first = await take(watch, 2)  # from the live buffer
        # Overflow the buffer while 3 of the transaction's events wait in it: the watch
        # must re-read from the middle of that transaction.
        for n in range(5, 12):
            await store.create(f"/t/{n}", {"n": n})
        rest = await take(watch, 10)
        assert [e.object["n"] for e in first + rest] == list(range(12))
        assert {e.resource_version for e in first + rest[:3]} == {txn.resource_version}
        await watch.close()
    finally:
        await store.close()


async def test_a_watcher_that_falls_behind_the_window_gets_expired(db: Path) -> None:
    store = await SqliteStore.open(db, watch_buffer=5, history=10)
    try:
        watch = await store.watch("/w/")
        for n in range(40):
            await store.create(f"/w/{n:03}", {"n": n})
        with pytest.raises(Expired):
            await take(watch, 1)
        assert [e async for e in watch] == [], "an expired watch must end"
    finally:
        await store.close()


async def test_a_large_list_does_not_block_the_event_loop(db: Path) -> None:
    store = await SqliteStore.open(db)
    try:
        padding = "x" * 2000
        await asyncio.gather(*(store.create(f"/big/{n:05}", {"p": padding}) for n in range(5000)))
        ticks = 0
        listing = asyncio.ensure_future(store.list("/big/"))
        while not listing.done():
            ticks += 1
            await asyncio.sleep(0)
        assert len((await listing).items) == 5000
        # Decoding 10 MB of JSON takes tens of milliseconds; the loop kept running meanwhile.
        assert ticks > 20
    finally:
        await store.close()


async def test_cancelled_callers_do_not_break_the_store(db: Path) -> None:
    store = await SqliteStore.open(db)
    try:
        tasks = [asyncio.ensure_future(store.create(f"/k/{n}", {"n": n})) for n in range(50)]
        await asyncio.sleep(0)
        for task in tasks[::2]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        listed = await store.list("/k/")
        # Cancelling the wait does not cancel a submitted write; nothing else is lost.
        assert {i["n"] for i in listed.items} >= {n for n in range(50) if n % 2}
        created = await store.create("/k/after", {})
        assert resource_version_of(created) > listed.resource_version
    finally:
        await store.close()


# --- crash safety -----------------------------------------------------------------


def read_line(stream: IO[bytes], timeout: float) -> bytes:
    """One line from a child's stdout, or b"" on EOF; fails after `timeout` seconds."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError("the crash writer stopped talking")
    return stream.readline()


def run_until_killed(db: Path, round_: int, rng: random.Random, log: Path) -> list[bytes]:
    """Start a writer, SIGKILL it a random moment into its creates; its stdout lines."""
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(CRASH_WRITER), str(db), str(round_)],
            stdout=subprocess.PIPE,
            stderr=err,
        )
    assert proc.stdout is not None
    try:
        lines = [read_line(proc.stdout, 20), read_line(proc.stdout, 20)]  # ready, first ack
        time.sleep(rng.uniform(0, 0.03))
        os.kill(proc.pid, signal.SIGKILL)
        lines += proc.stdout.read().splitlines(keepends=True)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, log.read_text()
    assert lines[0] == b"ready\n", log.read_text()
    return lines[1:]


async def test_sigkill_during_creates_loses_no_acknowledged_write(tmp_path: Path) -> None:
    db = tmp_path / "kubesvc.db"
    rng = random.Random(20240601)
    acked: dict[str, int] = {}
    version = 0
    for round_ in range(20):
        lines = run_until_killed(db, round_, rng, tmp_path / "writer.log")
        # A line without its newline was cut by the kill: not an acknowledgement.
        new = dict(line.decode().split() for line in lines if line.endswith(b"\n"))
        assert new, "the writer acknowledged nothing before it was killed"
        new_rvs = {k: int(v) for k, v in new.items()}
        assert min(new_rvs.values()) > version, "a resourceVersion was reused after a crash"
        acked.update(new_rvs)

        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            conn.close()
        store = await SqliteStore.open(db)
        try:
            listed = await store.list("/registry/crash/")
            found = {i["metadata"]["name"]: resource_version_of(i) for i in listed.items}
            missing = {k for k in acked if found.get(k) != acked[k]}
            assert not missing, f"round {round_}: acknowledged writes lost: {sorted(missing)[:5]}"
            assert listed.resource_version >= max(new_rvs.values())
            # History agrees with the data: every committed create is replayable, in order.
            watch = await store.watch("/registry/crash/", version)
            events = await take_until(watch, listed.resource_version)
            await watch.close()
            assert [e.resource_version for e in events] == sorted(
                v for v in found.values() if v > version
            )
            version = listed.resource_version
        finally:
            await store.close()
