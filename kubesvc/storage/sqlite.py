"""The embedded SQLite backend: one database file, one writer thread, group commit.

Durability: ``PRAGMA synchronous = FULL`` in WAL mode, so SQLite fsyncs the WAL
before every COMMIT returns, and a write is acknowledged only after that. With
NORMAL, WAL mode syncs only at checkpoints: a power cut or kernel crash could
drop the last acknowledged commits — an object the API answered 201 for would
vanish, an allocated ClusterIP could be handed out twice, and, worst for watch
clients, the lost resourceVersions would be reused for different changes after
restart, so their caches would silently diverge. (A process crash loses nothing
under either setting; the OS still holds the written pages.) The fsync cost is
amortised by group commit: the writer thread takes every request waiting in its
queue and commits them in one transaction, so concurrent writers share a sync.

Threads: the sqlite3 connection lives in one dedicated thread and every
statement runs there, so a slow commit or a large list never blocks the event
loop. The thread answers through ``loop.call_soon_threadsafe`` in commit order:
it publishes a batch's events to the watchers *before* resolving the batch's
futures, so a caller who has seen its write acknowledged can rely on every watch
(and every later list) seeing it too.

Ordering: within a batch, reads run first, on the committed state, then the
writes as one transaction. That is linearisable — none of those writes has been
acknowledged yet, so each read may be ordered before them — and a read never
sees data that a failed commit could still roll back.

The database is opened with ``locking_mode = EXCLUSIVE``: the resourceVersion
counter is kept in memory by the single writer, so a second process writing the
same file would break it. A second open fails at once instead. (Exclusive mode
also means WAL needs no ``-shm`` file.)

Watch history is the ``events`` table, trimmed to the last `history`
resourceVersions (plus up to 1/16 slack, so trimming is not a per-write cost).
Watchers are woken by the writer's publish, never by polling; a watcher whose
consumer falls more than `watch_buffer` events behind drops its buffer and
re-reads what it missed from the events table, so a slow consumer costs bounded
memory and still sees every change once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubesvc.storage.errors import (
    Conflict,
    Expired,
    KeyExists,
    KeyNotFound,
    StorageError,
    StoreClosed,
)
from kubesvc.storage.interface import (
    CheckAbsent,
    CheckVersion,
    Create,
    Delete,
    EventType,
    ListResult,
    Obj,
    Store,
    TxnOp,
    TxnResult,
    Update,
    WatchEvent,
    WatchStream,
    check_txn_keys,
    decode_value,
    encode_value,
    stamp,
)

SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS objects (
        key   TEXT PRIMARY KEY,
        rv    INTEGER NOT NULL,
        value TEXT NOT NULL
    )""",
    # One row per changed key: a transaction's rows share rv and are ordered by idx.
    # value is the new state (NULL for DELETED), prev the state before (NULL for ADDED).
    """CREATE TABLE IF NOT EXISTS events (
        rv      INTEGER NOT NULL,
        idx     INTEGER NOT NULL,
        type    TEXT NOT NULL,
        key     TEXT NOT NULL,
        value   TEXT,
        prev_rv INTEGER,
        prev    TEXT,
        PRIMARY KEY (rv, idx)
    )""",
    # rv: the last committed resourceVersion (kept here because deletes remove rows).
    # compacted: events up to here are gone, so watches must start at or after it.
    """CREATE TABLE IF NOT EXISTS meta (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    )""",
)

# A cursor (rv, _AFTER_ALL) means "after every event of that resourceVersion".
_AFTER_ALL = 1 << 62
_Cursor = tuple[int, int]
_MAX_BATCH = 512
_HISTORY_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class _Event:
    """A change as stored: JSON text, decoded only for the watchers that take it."""

    rv: int
    idx: int
    type: EventType
    key: str
    value: str | None
    prev_rv: int | None
    prev: str | None

    def materialise(self) -> WatchEvent:
        """An independent WatchEvent for one consumer."""
        prev = None
        if self.prev is not None and self.prev_rv is not None:
            prev = decode_value(self.prev, self.prev_rv)
        if self.value is not None:
            obj = decode_value(self.value, self.rv)
        else:
            assert self.prev is not None, "a DELETED event keeps the last state"
            obj = decode_value(self.prev, self.rv)
        return WatchEvent(self.type, self.key, obj, self.rv, prev)


def _prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (None: no bound)."""
    while prefix:
        last = ord(prefix[-1])
        # Stepping into or past the surrogate range / the last code point cannot be
        # encoded; drop that character and bump the one before it instead.
        if last + 1 < 0xD800 or 0xDFFF < last + 1 <= 0x10FFFF:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


class _Engine:
    """The thread-side state: the connection, the counter, and the running batch's events.

    Only the writer thread touches it.
    """

    def __init__(self, path: Path, history: int) -> None:
        self.history = history
        self.events: list[_Event] = []
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
        except sqlite3.Error as err:
            raise StorageError(f"cannot open {path}: {err}") from err
        self.conn = conn
        try:
            meta = self._setup(conn)
        except sqlite3.Error as err:
            conn.close()
            if "locked" in str(err):
                raise StorageError(f"{path} is in use by another process") from err
            raise StorageError(f"cannot open {path}: {err}") from err
        except BaseException:
            conn.close()
            raise
        if meta["schema"] != SCHEMA_VERSION:
            conn.close()
            raise StorageError(f"{path}: unknown schema version {meta['schema']}")
        self.rv: int = meta["rv"]
        self.compacted: int = meta["compacted"]

    @staticmethod
    def _setup(conn: sqlite3.Connection) -> dict[str, int]:
        """Set the connection up, create the schema, read the counters; holds the lock after."""
        # Locking mode must be set before the first access to the WAL.
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("PRAGMA busy_timeout = 200")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StorageError(f"cannot use WAL journal mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        # After a checkpoint, truncate a WAL that grew under a burst back to 64 MiB.
        conn.execute("PRAGMA journal_size_limit = 67108864")
        # Taking the write lock now (exclusive mode keeps it) makes a second process
        # fail here rather than at its first write.
        conn.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('rv', 0), ('compacted', 0), ('schema', ?)",
            (SCHEMA_VERSION,),
        )
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        conn.execute("COMMIT")
        return meta

    # --- reads (outside any write transaction) ---

    def get(self, key: str) -> Obj:
        row = self.row(key)
        if row is None:
            raise KeyNotFound(key)
        return decode_value(row[1], row[0])

    def list_prefix(self, prefix: str) -> ListResult:
        end = _prefix_end(prefix)
        if end is None:
            cur = self.conn.execute(
                "SELECT rv, value FROM objects WHERE key >= ? ORDER BY key", (prefix,)
            )
        else:
            cur = self.conn.execute(
                "SELECT rv, value FROM objects WHERE key >= ? AND key < ? ORDER BY key",
                (prefix, end),
            )
        items = [decode_value(value, rv) for rv, value in cur]
        # Reads run between write transactions, so self.rv is exactly the state read.
        return ListResult(items, self.rv)

    def history_page(self, prefix: str, after: _Cursor, upto: int, limit: int) -> list[_Event]:
        """Events under `prefix` after `after`, up to version `upto`, oldest first."""
        after_rv, after_idx = after
        if after_rv < self.compacted or (after_rv == self.compacted and after_idx != _AFTER_ALL):
            raise Expired(after_rv, self.compacted)
        end = _prefix_end(prefix)
        sql = (
            "SELECT rv, idx, type, key, value, prev_rv, prev FROM events"
            " WHERE (rv, idx) > (?, ?) AND rv <= ? AND key >= ?"
        )
        args: tuple[Any, ...] = (after_rv, after_idx, upto, prefix)
        if end is not None:
            sql += " AND key < ?"
            args += (end,)
        sql += " ORDER BY rv, idx LIMIT ?"
        args += (limit,)
        return [
            _Event(rv, idx, EventType(typ), key, value, prev_rv, prev)
            for rv, idx, typ, key, value, prev_rv, prev in self.conn.execute(sql, args)
        ]

    # --- writes (inside the batch transaction) ---

    def row(self, key: str) -> tuple[int, str] | None:
        return self.conn.execute("SELECT rv, value FROM objects WHERE key = ?", (key,)).fetchone()

    def txn(self, ops: Sequence[tuple[TxnOp, str | None]]) -> TxnResult:
        """Check every condition, then write everything at one new version."""
        rows: list[tuple[int, str] | None] = []
        for op, _ in ops:
            row = self.row(op.key)
            rows.append(row)
            if isinstance(op, Create | CheckAbsent):
                if row is not None:
                    raise KeyExists(op.key)
                continue
            if row is None:
                raise KeyNotFound(op.key)
            expected = op.expected_rv
            if expected is not None and row[0] != expected:
                current = decode_value(row[1], row[0])
                if isinstance(op, Update):
                    raise Conflict(op.key, expected, row[0], current, operation="update")
                if isinstance(op, Delete):
                    raise Conflict(op.key, expected, row[0], current, operation="delete")
                raise Conflict(op.key, expected, row[0], current, operation="check")
        writes = sum(1 for op, _ in ops if isinstance(op, Create | Update | Delete))
        if not writes:
            return TxnResult(
                self.rv, [decode_value(r[1], r[0]) if r is not None else None for r in rows]
            )
        self.rv += 1
        rv = self.rv
        results: list[Obj | None] = []
        idx = 0
        for (op, data), row in zip(ops, rows, strict=True):
            if isinstance(op, Create | Update):
                assert data is not None
                self._write(rv, idx, op.key, data, row)
                results.append(decode_value(data, rv))
                idx += 1
            elif isinstance(op, Delete):
                assert row is not None
                self._write(rv, idx, op.key, None, row)
                results.append(decode_value(row[1], rv))
                idx += 1
            elif isinstance(op, CheckVersion):
                assert row is not None
                results.append(decode_value(row[1], row[0]))
            else:
                results.append(None)
        return TxnResult(rv, results)

    def _write(
        self, rv: int, idx: int, key: str, data: str | None, prev: tuple[int, str] | None
    ) -> None:
        if data is None:
            assert prev is not None
            self.conn.execute("DELETE FROM objects WHERE key = ?", (key,))
            typ = EventType.DELETED
        elif prev is None:
            self.conn.execute(
                "INSERT INTO objects (key, rv, value) VALUES (?, ?, ?)", (key, rv, data)
            )
            typ = EventType.ADDED
        else:
            self.conn.execute("UPDATE objects SET rv = ?, value = ? WHERE key = ?", (rv, data, key))
            typ = EventType.MODIFIED
        prev_rv, prev_value = prev if prev is not None else (None, None)
        self.conn.execute(
            "INSERT INTO events (rv, idx, type, key, value, prev_rv, prev)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (rv, idx, typ.value, key, data, prev_rv, prev_value),
        )
        self.events.append(_Event(rv, idx, typ, key, data, prev_rv, prev_value))

    def compact(self, resource_version: int) -> None:
        if resource_version > self.rv:
            raise ValueError(
                f"cannot compact to {resource_version}: the current version is {self.rv}"
            )
        if resource_version > self.compacted:
            self.conn.execute("DELETE FROM events WHERE rv <= ?", (resource_version,))
            self.compacted = resource_version

    def finish_batch(self, base_rv: int, base_compacted: int) -> None:
        """Trim history to the window and persist the counters, inside the batch's transaction."""
        slack = max(1, self.history // 16)
        if self.rv - self.history >= self.compacted + slack:
            self.compact(self.rv - self.history)
        if self.rv != base_rv:
            self.conn.execute("UPDATE meta SET value = ? WHERE name = 'rv'", (self.rv,))
        if self.compacted != base_compacted:
            self.conn.execute(
                "UPDATE meta SET value = ? WHERE name = 'compacted'", (self.compacted,)
            )


_Settle = tuple["asyncio.Future[Any]", Any, BaseException | None]
_Publish = tuple[list[_Event], int, int]


@dataclass(slots=True)
class _Job:
    write: bool
    fn: Callable[[_Engine], Any]
    fut: asyncio.Future[Any]


@dataclass(slots=True)
class _Close:
    """The last item the writer thread takes: close the file, then answer."""

    fut: asyncio.Future[None]


class SqliteStore(Store):
    """The SQLite `Store`. Open it with `await SqliteStore.open(path)`; close it when done."""

    def __init__(
        self,
        path: Path,
        loop: asyncio.AbstractEventLoop,
        *,
        history: int,
        watch_buffer: int,
    ) -> None:
        """Use `open`; this only sets up state on the event loop's side."""
        self.path = path
        self._loop = loop
        self._history = history
        self._watch_buffer = watch_buffer
        self._queue: queue.SimpleQueue[_Job | _Close] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._close_done: asyncio.Future[None] | None = None
        # The last version published to watchers, and the oldest a watch may start at.
        self._published_rv = 0
        self._compacted = 0
        self._watchers: weakref.WeakSet[_SqliteWatch] = weakref.WeakSet()

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        history: int = 10_000,
        watch_buffer: int = 1_000,
    ) -> SqliteStore:
        """Open (creating if need be) the database file at `path`.

        `history`: keep watch events of at least the last `history` resourceVersions.
        `watch_buffer`: events a watcher may hold unconsumed before it falls back to
        re-reading history from the file. Raises StorageError if another process
        has the file open.
        """
        if history < 1 or watch_buffer < 1:
            raise ValueError("history and watch_buffer must be positive")
        store = cls(
            Path(path), asyncio.get_running_loop(), history=history, watch_buffer=watch_buffer
        )
        opened: asyncio.Future[tuple[int, int]] = store._loop.create_future()
        store._thread = threading.Thread(
            target=store._run, args=(opened,), name=f"kubesvc-sqlite:{store.path.name}", daemon=True
        )
        store._thread.start()
        try:
            store._published_rv, store._compacted = await opened
        except BaseException:
            # Failed (the thread has ended) or cancelled (it must be told to end).
            store._closed = True
            store._queue.put(_Close(store._loop.create_future()))
            store._thread.join()
            raise
        return store

    # --- the Store interface ---

    async def get(self, key: str) -> Obj:
        """The object at `key`. Raises KeyNotFound."""
        return await self._submit(False, lambda e: e.get(key))

    async def list(self, prefix: str) -> ListResult:
        """Every object under `prefix`, sorted by key, with the list's resourceVersion."""
        return await self._submit(False, lambda e: e.list_prefix(prefix))

    async def txn(self, ops: Sequence[TxnOp]) -> TxnResult:
        """Apply `ops` atomically at one new resourceVersion (see `Store.txn`)."""
        check_txn_keys(ops)
        # Encode on the caller's side: bad values fail here, and the caller's dicts
        # are copied before it can mutate them again.
        encoded = [
            (op, encode_value(op.value) if isinstance(op, Create | Update) else None) for op in ops
        ]
        return await self._submit(True, lambda e: e.txn(encoded))

    async def compact(self, resource_version: int) -> None:
        """Discard watch history up to `resource_version` (see `Store.compact`)."""
        await self._submit(True, lambda e: e.compact(resource_version))

    async def watch(
        self,
        prefix: str,
        resource_version: int | None = None,
        *,
        bookmark_interval: float | None = None,
    ) -> WatchStream:
        """Watch keys under `prefix` from `resource_version` (see `Store.watch`)."""
        if self._closed:
            raise StoreClosed()
        if resource_version is None:
            cursor, catchup = (self._published_rv, _AFTER_ALL), None
        else:
            if resource_version < 0:
                raise ValueError("resource_version must not be negative")
            if resource_version < self._compacted:
                raise Expired(resource_version, self._compacted)
            cursor = (resource_version, _AFTER_ALL)
            # Everything up to the published version is in the file: read it from
            # there; later changes arrive live. A version from the future just waits.
            catchup = self._published_rv if resource_version < self._published_rv else None
        watch = _SqliteWatch(self, prefix, cursor, catchup, bookmark_interval)
        self._watchers.add(watch)
        if catchup is not None:
            try:
                await watch._fill()  # surfaces Expired here, not at the first event
            except BaseException:
                await watch.close()
                raise
        return watch

    async def close(self) -> None:
        """Finish queued operations, end every watch, close the file. Idempotent."""
        if self._close_done is None:
            self._closed = True
            for watch in list(self._watchers):
                watch._shutdown()
            self._close_done = self._loop.create_future()
            self._queue.put(_Close(self._close_done))
        # Shielded: a cancelled close still closes; calling close again waits for it.
        await asyncio.shield(self._close_done)
        if self._thread is not None:
            # The thread exits right after answering the close: this join is immediate.
            self._thread.join()

    # --- loop side plumbing ---

    async def _submit(self, write: bool, fn: Callable[[_Engine], Any]) -> Any:
        if self._closed:
            raise StoreClosed()
        fut = self._loop.create_future()
        self._queue.put(_Job(write, fn, fut))
        return await fut

    async def _history_page(
        self, prefix: str, after: _Cursor, upto: int, limit: int
    ) -> Sequence[_Event]:
        return await self._submit(False, lambda e: e.history_page(prefix, after, upto, limit))

    def _deliver(self, publish: _Publish | None, settles: Sequence[_Settle]) -> None:
        """On the loop: publish a batch's events, then answer its callers (in that order)."""
        if publish is not None:
            events, rv, compacted = publish
            self._published_rv = rv
            self._compacted = compacted
            if events:
                for watch in list(self._watchers):
                    watch._offer(events)
        for fut, result, exc in settles:
            if fut.done():  # the caller was cancelled; the write still happened
                continue
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

    # --- the writer thread ---

    def _post(self, publish: _Publish | None, settles: Sequence[_Settle]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody to tell
            self._loop.call_soon_threadsafe(self._deliver, publish, settles)

    def _run(self, opened: asyncio.Future[tuple[int, int]]) -> None:
        try:
            engine = _Engine(self.path, self._history)
        except BaseException as err:
            self._post(None, [(opened, None, err)])
            return
        self._post(None, [(opened, (engine.rv, engine.compacted), None)])
        try:
            while True:
                batch = [self._queue.get()]
                while len(batch) < _MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                jobs = [job for job in batch if isinstance(job, _Job)]
                reads = [job for job in jobs if not job.write]
                writes = [job for job in jobs if job.write]
                if reads:
                    self._post(None, [self._call(engine, job) for job in reads])
                if writes:
                    self._write_batch(engine, writes)
                # The store takes no jobs after the close request, so it comes last.
                closing = [item for item in batch if isinstance(item, _Close)]
                if closing:
                    engine.conn.close()
                    self._post(None, [(closing[0].fut, None, None)])
                    return
        finally:
            engine.conn.close()

    @staticmethod
    def _call(engine: _Engine, job: _Job) -> _Settle:
        try:
            return (job.fut, job.fn(engine), None)
        except Exception as err:
            return (job.fut, None, _wrap(err))

    def _write_batch(self, engine: _Engine, jobs: Sequence[_Job]) -> None:
        """Run `jobs` in one transaction (one fsync); a failing job rolls back only itself."""
        conn = engine.conn
        base_rv, base_compacted = engine.rv, engine.compacted
        engine.events = []
        settles: list[_Settle] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                mark = engine.rv, engine.compacted, len(engine.events)
                conn.execute("SAVEPOINT job")
                try:
                    settles.append((job.fut, job.fn(engine), None))
                except Exception as err:
                    conn.execute("ROLLBACK TO job")
                    engine.rv, engine.compacted = mark[0], mark[1]
                    del engine.events[mark[2] :]
                    settles.append((job.fut, None, _wrap(err)))
                conn.execute("RELEASE job")
            engine.finish_batch(base_rv, base_compacted)
            conn.execute("COMMIT")
        except Exception as err:
            # The commit itself failed (disk full, I/O error): nothing was written.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            engine.rv, engine.compacted = base_rv, base_compacted
            failure = _wrap(err)
            self._post(None, [(job.fut, None, failure) for job in jobs])
            return
        changed = engine.rv != base_rv or engine.compacted != base_compacted
        publish = (engine.events, engine.rv, engine.compacted) if changed else None
        self._post(publish, settles)


def _wrap(err: Exception) -> Exception:
    """SQLite's own errors (disk full, I/O) as StorageError, so callers need one family."""
    if isinstance(err, sqlite3.Error):
        wrapped = StorageError(f"sqlite: {err}")
        wrapped.__cause__ = err
        return wrapped
    return err


class _SqliteWatch(WatchStream):
    """A watch fed live by the store's publish, falling back to the events table.

    `_cursor` is the position of the last event delivered or already read into
    `_history`. While `_catchup_to` is set, the events in (`_cursor`, `_catchup_to`]
    still have to be read from the file, and live events at or below it are ignored
    (the file has them). Live events above go to `_live`.
    """

    def __init__(
        self,
        store: SqliteStore,
        prefix: str,
        cursor: _Cursor,
        catchup_to: int | None,
        bookmark_interval: float | None,
    ) -> None:
        self._store = store
        self._prefix = prefix
        self._cursor = cursor
        self._catchup_to = catchup_to
        self._history: deque[_Event] = deque()
        self._live: deque[_Event] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        self._bookmark_interval = bookmark_interval
        self._last_rv = cursor[0]
        self._last_activity = store._loop.time()

    async def __anext__(self) -> WatchEvent:
        """The next event; see `WatchStream`."""
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._history:
                return self._emit(self._history.popleft())
            if self._catchup_to is not None:
                try:
                    await self._fill()
                except StoreClosed:
                    self._shutdown()
                except Exception:
                    # Expired (or an I/O error): this watch cannot continue.
                    await self.close()
                    raise
                continue
            if self._live:
                return self._emit(self._live.popleft())
            bookmark = await self._idle()
            if bookmark is not None:
                return bookmark

    async def close(self) -> None:
        """Stop watching; iteration ends."""
        self._store._watchers.discard(self)
        self._shutdown()

    def _shutdown(self) -> None:
        self._closed = True
        self._history.clear()
        self._live.clear()
        self._wake.set()

    def _emit(self, event: _Event) -> WatchEvent:
        self._cursor = max(self._cursor, (event.rv, event.idx))
        self._last_rv = event.rv
        self._last_activity = self._store._loop.time()
        return event.materialise()

    async def _fill(self) -> None:
        """Read the next page of missed events from the file."""
        upto = self._catchup_to
        assert upto is not None
        page = await self._store._history_page(self._prefix, self._cursor, upto, _HISTORY_PAGE)
        if self._closed:
            return
        self._history.extend(page)
        if page:
            self._cursor = (page[-1].rv, page[-1].idx)
        # If the live buffer overflowed meanwhile, `_catchup_to` moved on: keep reading.
        if len(page) < _HISTORY_PAGE and self._catchup_to == upto:
            self._catchup_to = None
            self._cursor = max(self._cursor, (upto, _AFTER_ALL))

    def _offer(self, events: Sequence[_Event]) -> None:
        """Called by the store's publish with a committed batch's events."""
        if self._closed:
            return
        added = False
        for event in events:
            if not event.key.startswith(self._prefix):
                continue
            if self._catchup_to is not None and event.rv <= self._catchup_to:
                continue
            if (event.rv, event.idx) <= self._cursor:
                continue
            self._live.append(event)
            added = True
        if len(self._live) > self._store._watch_buffer:
            # The consumer is too slow to buffer for: forget the buffer and re-read
            # everything after the cursor from the file when it comes back.
            self._live.clear()
            self._catchup_to = self._store._published_rv
        if added:
            self._wake.set()

    async def _idle(self) -> WatchEvent | None:
        """Wait for the writer's wake-up; return a BOOKMARK if idle for the interval."""
        self._wake.clear()
        interval = self._bookmark_interval
        if interval is None:
            await self._wake.wait()
            return None
        timeout = self._last_activity + interval - self._store._loop.time()
        if timeout > 0:
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
                return None
            except TimeoutError:
                pass
        self._last_activity = self._store._loop.time()
        rv = self._store._published_rv
        if rv <= self._last_rv:
            return None
        # Nothing is buffered or pending, so every matching change up to rv was delivered.
        self._last_rv = rv
        self._cursor = max(self._cursor, (rv, _AFTER_ALL))
        return WatchEvent(EventType.BOOKMARK, self._prefix, stamp({}, rv), rv)
