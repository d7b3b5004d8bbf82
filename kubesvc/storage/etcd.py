"""The etcd v3 backend: several API servers share one store, kept by an etcd cluster.

Mapping onto etcd (through its JSON gateway, see `etcd_gateway`):

- Keys: the store's key ``/registry/services/default/web`` is the etcd key
  ``<prefix>/registry/services/default/web`` (prefix ``/kubesvc`` by default), so
  one etcd can hold several clusters, or other data, side by side. Store keys
  must start with ``/``: then everything of a store lies under ``<prefix>/``, and
  stores on sibling prefixes (``/a``, ``/a2``) never see each other's keys.
  Prefixes must not nest (``/a`` and ``/a/b``): the outer store would see the
  inner one's keys.
- resourceVersion is the etcd revision: an object carries the ``mod_revision``
  of its key, a list the revision of the read (the response header). etcd gives a
  transaction one revision, so a txn's writes share their version by construction.
- A transaction is one etcd txn. Its compares are every operation's condition
  (create: ``create_revision == 0``; versioned update/delete/check:
  ``mod_revision == expected``; unversioned update/delete: ``create_revision > 0``);
  success does the puts and deletes (deletes with ``prev_kv``, to return the
  deleted object); failure reads every key, so that the one round trip also tells
  which condition failed, on one consistent snapshot, and with the current object
  for Conflict.
- compact(R) is etcd compaction at R+1: etcd keeps revisions >= its compaction
  revision, and a watch "from" R starts at etcd revision R+1, so a watch from R
  must still work and one from R-1 must not. When R is the current revision, etcd
  cannot compact beyond it; we compact at R, which keeps the event at R (a watch
  from R-1 still works). The store also compacts on its own every
  `compaction_interval` (as Kubernetes' API server does): to the revision it saw
  one interval earlier, so at least one interval of history is always kept.

Watch: one etcd watch per store, the *feed*, follows every key under the prefix
(with ``prev_kv``) and hands each change to the store's open watches, which
filter by their own prefix; a ring of the last `ring_size` changes lets a new
watch start from a recent version without asking etcd. Only a watch from an older
version, or one whose consumer fell more than `watch_buffer` events behind, reads
etcd's history through an etcd watch of its own; it joins the feed again once it
has caught up with the ring. Why one feed rather than an etcd watch per client
watch: the gateway needs an HTTP connection for every etcd watch, and, more
importantly, bookmarks must be exact. A BOOKMARK at N promises that every change
up to N was delivered; a watch that sees every change under the prefix knows the
revision up to which it is complete (the last change it was handed), and no
timer or separate revision read can know that for a stream still in flight. So
every etcd watch here, the feed or a catch-up one, covers the whole prefix.

Failures: the feed and catch-up watches reconnect (to the next member) and resume
after the last revision they saw; a catch-up watch that finds its history
compacted ends with Expired; a feed that finds its history compacted (it was cut
off longer than the history lasted) starts again from the current revision, and
its watches continue from etcd's history, or end with Expired when that is gone.

Watches served from the ring are not failed when *another* server compacts etcd:
like Kubernetes' watch cache, a watch is served whenever the history it needs is
at hand. Compactions this store makes itself do end the ring's window there.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kubesvc.storage.errors import (
    Conflict,
    Expired,
    KeyExists,
    KeyNotFound,
    StorageError,
    StoreClosed,
)
from kubesvc.storage.etcd_gateway import (
    EtcdError,
    GatewayClient,
    TLSFiles,
    Unavailable,
    b64,
    parse_etcd_url,
    range_end,
    unb64,
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

__all__ = ["DEFAULT_PREFIX", "EtcdStore", "TLSFiles", "parse_etcd_url"]

log = logging.getLogger("kubesvc.storage.etcd")

DEFAULT_PREFIX = "/kubesvc"
# A cursor (rev, _AFTER_ALL) means "after every change of that revision".
_AFTER_ALL = 1 << 62
_Cursor = tuple[int, int]
_LIST_PAGE = 1_000
_MAX_PAUSE = 1.0
_Answer = dict[str, Any]


class _Next(enum.Enum):
    """What a watch handler wants after an answer from etcd."""

    CONTINUE = enum.auto()
    RECONNECT = enum.auto()  # watch again from the cursor
    DONE = enum.auto()


@dataclass(frozen=True, slots=True)
class _Event:
    """A change as etcd sent it: JSON text, decoded only for the watches that take it.

    `idx` is the change's place among the changes of its revision under the
    prefix; every etcd watch here covers the whole prefix, so (rev, idx) names
    one change the same way in the feed and in catch-up watches.
    """

    rev: int
    idx: int
    type: EventType
    key: str
    value: str | None
    prev_rev: int | None
    prev: str | None

    def materialise(self) -> WatchEvent:
        """An independent WatchEvent for one consumer."""
        prev = None
        if self.prev is not None and self.prev_rev is not None:
            prev = decode_value(self.prev, self.prev_rev)
        if self.value is not None:
            obj = decode_value(self.value, self.rev)
        elif self.prev is not None:
            obj = decode_value(self.prev, self.rev)
        else:
            # etcd reads a deleted key's last state at the revision before the
            # delete; a catch-up watch starting right at the compaction revision
            # finds it compacted. The name is all we can still say.
            obj = stamp({"metadata": {"name": self.key.rsplit("/", 1)[-1]}}, self.rev)
        return WatchEvent(self.type, self.key, obj, self.rev, prev)


def _text(data: str | None) -> str:
    return unb64(data).decode() if data else ""


class EtcdStore(Store):
    """The etcd `Store`. Open it with `await EtcdStore.open("etcd://host:port")`; close it."""

    def __init__(
        self,
        client: GatewayClient,
        prefix: str,
        *,
        ring_size: int,
        watch_buffer: int,
        compaction_interval: float,
        probe_interval: float,
    ) -> None:
        """Use `open`; this only sets up state."""
        self._client = client
        self.prefix = prefix
        self._root = prefix.encode()
        self._all = self._root + b"/"  # every key of this store starts with this
        self._ring_size = ring_size
        self._watch_buffer = watch_buffer
        self._compaction_interval = compaction_interval
        self._probe_interval = probe_interval
        self._closed = False
        self._close_done: asyncio.Future[None] | None = None
        # Whether the feed is following etcd right now (for the API server's /readyz):
        # False from a break of its watch until a member accepts it again.
        self.connected = False
        # The feed: every change under the prefix after `_feed_cursor`, the last
        # `ring_size` of them in `_ring`. The ring holds every change with a revision
        # above `_floor`, so a watch from R >= _floor can be served from it.
        self._ring: deque[_Event] = deque()
        self._floor = 0
        self._feed_cursor: _Cursor = (0, _AFTER_ALL)
        self._subscribers: set[_EtcdWatch] = set()
        self._watches: set[_EtcdWatch] = set()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def open(
        cls,
        endpoints: str | Sequence[str],
        *,
        prefix: str | None = None,
        tls: TLSFiles | None = None,
        timeout: float = 10.0,
        ring_size: int = 4096,
        watch_buffer: int = 10_000,
        compaction_interval: float = 300.0,
        probe_interval: float = 10.0,
    ) -> EtcdStore:
        """Connect to etcd and start following the store's keys.

        `endpoints` is an ``etcd://host:port[,host:port...][/prefix]`` URL or a list
        of ``host:port``. `prefix` (default: the URL's, else ``/kubesvc``) is where
        the store's keys live. `timeout` bounds every call, retries included; open
        waits that long for a member to answer. `compaction_interval` 0 leaves
        compaction to etcd's own ``--auto-compaction-*`` settings. A watch silent
        for `probe_interval` checks that its member still answers (and moves on
        to another if not).
        """
        if isinstance(endpoints, str):
            hosts, url_prefix = parse_etcd_url(endpoints)
        else:
            hosts, url_prefix = list(endpoints), None
        prefix = prefix or url_prefix or DEFAULT_PREFIX
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"etcd prefix {prefix!r} must start and must not end with '/'")
        if ring_size < 1 or watch_buffer < 2:
            raise ValueError("ring_size must be positive and watch_buffer at least 2")
        if compaction_interval < 0:
            raise ValueError("compaction_interval must not be negative")
        if probe_interval <= 0:
            raise ValueError("probe_interval must be positive")
        client = GatewayClient(hosts, tls=tls, timeout=timeout)
        store = cls(
            client,
            prefix,
            ring_size=ring_size,
            watch_buffer=watch_buffer,
            compaction_interval=compaction_interval,
            probe_interval=probe_interval,
        )
        try:
            start = await store._revision()
        except BaseException:
            await client.close()
            raise
        store._floor = start
        store._feed_cursor = (start, _AFTER_ALL)
        store._tasks.append(asyncio.create_task(store._run_feed(), name="kubesvc-etcd-feed"))
        if compaction_interval:
            store._tasks.append(
                asyncio.create_task(store._compact_periodically(), name="kubesvc-etcd-compactor")
            )
        return store

    # --- keys ---------------------------------------------------------------------

    def _key(self, key: str) -> bytes:
        if not isinstance(key, str) or not key.startswith("/"):
            raise ValueError(f"an etcd store key must start with '/', not {key!r}")
        return self._root + key.encode()

    def _prefix(self, prefix: str) -> bytes:
        if not isinstance(prefix, str) or (prefix and not prefix.startswith("/")):
            raise ValueError(f"an etcd store prefix must be empty or start with '/': {prefix!r}")
        return self._root + prefix.encode() if prefix else self._all

    def _user_key(self, ekey: str) -> str:
        return unb64(ekey)[len(self._root) :].decode()

    # --- the Store interface --------------------------------------------------------

    async def get(self, key: str) -> Obj:
        """The object at `key`. Raises KeyNotFound."""
        answer = await self._call("kv/range", {"key": b64(self._key(key))}, writes=False)
        kvs = answer.get("kvs") or []
        if not kvs:
            raise KeyNotFound(key)
        return _object(kvs[0])

    async def list(self, prefix: str) -> ListResult:
        """Every object under `prefix`, sorted by key, at one revision (read in pages)."""
        start = self._prefix(prefix)
        end = b64(range_end(start))
        while True:
            items: list[Obj] = []
            revision: int | None = None
            key = start
            try:
                while True:
                    body: dict[str, Any] = {"key": b64(key), "range_end": end, "limit": _LIST_PAGE}
                    if revision is not None:  # later pages: the first page's snapshot
                        body["revision"] = str(revision)
                    answer = await self._call("kv/range", body, writes=False)
                    if revision is None:
                        revision = int(answer["header"]["revision"])
                    kvs = answer.get("kvs") or []
                    items.extend(_object(kv) for kv in kvs)
                    if not answer.get("more") or not kvs:
                        return ListResult(items, revision)
                    key = unb64(kvs[-1]["key"]) + b"\x00"
            except EtcdError as err:
                if not err.compacted:
                    raise
                # Compacted between two pages: read the whole list again, newer.

    async def txn(self, ops: Sequence[TxnOp]) -> TxnResult:
        """Apply `ops` atomically as one etcd txn (see `Store.txn` and the module docstring)."""
        check_txn_keys(ops)
        keys = [b64(self._key(op.key)) for op in ops]
        encoded = [
            encode_value(op.value) if isinstance(op, Create | Update) else None for op in ops
        ]
        compare: list[dict[str, Any]] = []
        success: list[dict[str, Any]] = []
        for op, key, data in zip(ops, keys, encoded, strict=True):
            compare.extend(_conditions(op, key))
            if data is not None:
                success.append({"request_put": {"key": key, "value": b64(data.encode())}})
            elif isinstance(op, Delete):
                success.append({"request_delete_range": {"key": key, "prev_kv": True}})
            elif isinstance(op, CheckVersion):
                success.append({"request_range": {"key": key}})
        failure = [{"request_range": {"key": key}} for key in keys]
        writes = any(isinstance(op, Create | Update | Delete) for op in ops)
        answer = await self._call(
            "kv/txn",
            {"compare": compare, "success": success, "failure": failure},
            writes=writes,
        )
        responses = answer.get("responses") or []
        if not answer.get("succeeded"):
            _raise_failed_condition(ops, responses)
        rev = int(answer["header"]["revision"])
        results: list[Obj | None] = []
        replies = iter(responses)
        for op, data in zip(ops, encoded, strict=True):
            if data is not None:
                next(replies)
                results.append(decode_value(data, rev))
            elif isinstance(op, Delete):
                prev = next(replies)["response_delete_range"]["prev_kvs"][0]
                results.append(decode_value(_text(prev.get("value")), rev))
            elif isinstance(op, CheckVersion):
                results.append(_object(next(replies)["response_range"]["kvs"][0]))
            else:
                results.append(None)
        return TxnResult(rev, results)

    async def watch(
        self,
        prefix: str,
        resource_version: int | None = None,
        *,
        bookmark_interval: float | None = None,
    ) -> WatchStream:
        """Watch keys under `prefix` from `resource_version` (see `Store.watch`).

        A version of 0 replays all the history etcd still has (from its
        compaction revision on), rather than failing once etcd was compacted.
        """
        self._check_open()
        self._prefix(prefix)
        if resource_version is None:
            start = await self._revision()
        elif resource_version < 0:
            raise ValueError("resource_version must not be negative")
        else:
            start = resource_version
        self._check_open()
        if start >= self._floor and start > 0:
            watch = _EtcdWatch(self, prefix, (start, _AFTER_ALL), bookmark_interval)
            self._watches.add(watch)
            self._subscribe(watch)
            return watch
        if start == 0:
            start = await self._oldest_revision() - 1
        else:
            await self._check_history(start)
        self._check_open()
        watch = _EtcdWatch(self, prefix, (start, _AFTER_ALL), bookmark_interval)
        self._watches.add(watch)
        watch._start_direct()
        return watch

    async def compact(self, resource_version: int) -> None:
        """Discard history up to `resource_version`: etcd compaction at resource_version + 1."""
        current = await self._revision()
        if resource_version > current:
            raise ValueError(
                f"cannot compact to {resource_version}: the current version is {current}"
            )
        await self._compact_etcd(min(resource_version + 1, current))

    async def close(self) -> None:
        """End every watch, stop the feed and the compactor, close the connections. Idempotent."""
        if self._close_done is None:
            self._closed = True
            self._close_done = asyncio.get_running_loop().create_future()
            try:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*(w._stop() for w in list(self._watches)))
                if self._tasks:
                    await asyncio.wait(self._tasks)
                await self._client.close()
            finally:
                self._close_done.set_result(None)
        await asyncio.shield(self._close_done)

    # --- calls ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed()

    async def _call(self, method: str, body: dict[str, Any], *, writes: bool) -> dict[str, Any]:
        self._check_open()
        return await self._client.call(method, body, writes=writes)

    async def _revision(self) -> int:
        """The current revision (a linearizable read of one key, for its header)."""
        answer = await self._call("kv/range", {"key": b64(self._root), "limit": 1}, writes=False)
        return int(answer["header"]["revision"])

    async def _readable(self, revision: int) -> bool:
        """Whether etcd still has `revision` (False once it was compacted away)."""
        body = {"key": b64(self._root), "limit": 1, "revision": str(revision)}
        try:
            await self._call("kv/range", body, writes=False)
        except EtcdError as err:
            if err.compacted:
                return False
            if err.future_revision:
                return True
            raise
        return True

    async def _compaction_revision(self, compacted: int) -> int:
        """etcd's compaction revision (its oldest readable one), knowing `compacted` is gone.

        etcd does not report it for a read, so search: about log2(revisions) reads.
        """
        low, high = compacted, await self._revision()
        while low + 1 < high:
            middle = (low + high) // 2
            if await self._readable(middle):
                high = middle
            else:
                low = middle
        return high

    async def _oldest_revision(self) -> int:
        return 1 if await self._readable(1) else await self._compaction_revision(1)

    async def _check_history(self, resource_version: int) -> None:
        """Raise Expired if a watch from `resource_version` needs compacted history."""
        start = resource_version + 1
        if not await self._readable(start):
            oldest = await self._compaction_revision(start)
            raise Expired(resource_version, oldest - 1)

    async def _compact_etcd(self, revision: int) -> None:
        """Compact etcd at `revision` (keeping it); no-op if it already is compacted further."""
        if revision <= 1:
            return
        try:
            await self._call("kv/compaction", {"revision": str(revision)}, writes=False)
        except EtcdError as err:
            if not err.compacted:
                raise
        # Our own compaction also ends the ring's window: watches from before get Expired.
        self._floor = max(self._floor, revision - 1)

    async def _compact_periodically(self) -> None:
        previous: int | None = None
        while True:
            await asyncio.sleep(self._compaction_interval)
            try:
                now = await self._revision()
                if previous is not None:
                    await self._compact_etcd(previous)
                    log.debug("compacted etcd at revision %d", previous)
                previous = now
            except StoreClosed:
                return
            except StorageError as err:
                log.warning("etcd compaction failed (will retry): %s", err)

    # --- events -----------------------------------------------------------------------

    def _watch_request(self, start: int) -> dict[str, Any]:
        return {
            "key": b64(self._all),
            "range_end": b64(range_end(self._all)),
            "start_revision": str(start),
            "prev_kv": True,
            "progress_notify": True,
        }

    def _events(self, raw_events: Iterable[dict[str, Any]]) -> list[_Event]:
        """etcd watch events as _Events, numbered within their revision."""
        events: list[_Event] = []
        last_rev, idx = -1, 0
        for raw in raw_events:
            kv = raw["kv"]
            rev = int(kv["mod_revision"])
            idx = idx + 1 if rev == last_rev else 0
            last_rev = rev
            key = self._user_key(kv["key"])
            prev = raw.get("prev_kv")
            if raw.get("type") == "DELETE":
                typ, value = EventType.DELETED, None
            else:
                value = _text(kv.get("value"))
                created = kv.get("create_revision") == kv.get("mod_revision")
                typ = EventType.ADDED if created else EventType.MODIFIED
                if created:
                    prev = None
            prev_rev = int(prev["mod_revision"]) if prev else None
            prev_text = _text(prev.get("value")) if prev else None
            events.append(_Event(rev, idx, typ, key, value, prev_rev, prev_text))
        return events

    async def _follow(
        self,
        start_of: Callable[[], int],
        handle: Callable[[_Answer], Awaitable[_Next]],
        on_break: Callable[[], None] | None = None,
    ) -> None:
        """Follow etcd watches of the whole prefix, from `start_of()`, until `handle` says DONE.

        When a watch breaks, the member ends it, or `handle` asks to RECONNECT,
        watch again (on the next member, after a short pause growing to a second)
        from a fresh `start_of()`: the caller's cursor, so nothing is missed.
        """
        pause = 0.05

        async def on_answer(answer: _Answer) -> _Next:
            nonlocal pause
            pause = 0.05
            return await handle(answer)

        while not self._closed:
            try:
                if await self._follow_once(start_of(), on_answer):
                    return
            except StoreClosed:
                return
            except StorageError as err:
                log.info("etcd watch interrupted; resuming: %s", err)
            except Exception:
                log.exception("etcd watch failed; resuming")
            if on_break is not None:
                on_break()
            await asyncio.sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE)

    async def _follow_once(self, start: int, handle: Callable[[_Answer], Awaitable[_Next]]) -> bool:
        """One etcd watch from `start` on the member in use; True once `handle` says DONE.

        A member that is cut off or frozen may keep the connection open and just
        send nothing, which an idle watch cannot tell from a quiet cluster: after
        `probe_interval` of silence, ask that member for a linearizable read, and
        leave it if it cannot answer one.
        """
        client = self._client
        index = client.current
        stream = client.watch(self._watch_request(start), index)
        loop = asyncio.get_running_loop()
        heard = loop.time()

        async def pump() -> bool:
            nonlocal heard
            async for answer in stream:
                heard = loop.time()
                step = await handle(answer)
                if step is not _Next.CONTINUE:
                    return step is _Next.DONE
            return False

        task = asyncio.create_task(pump())
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self._probe_interval)
                if done:
                    return task.result()
                if loop.time() - heard < self._probe_interval:
                    continue
                if not await client.probe(index, self._probe_interval):
                    client.fail_over(index)
                    raise Unavailable(f"etcd member {client.endpoints[index]} stopped answering")
                heard = loop.time()
        finally:
            task.cancel()
            await asyncio.wait({task})
            await stream.aclose()

    async def _run_feed(self) -> None:
        """Follow every change under the prefix, for ever."""

        async def handle(answer: _Answer) -> _Next:
            if answer.get("canceled"):
                compacted = int(answer.get("compact_revision") or 0)
                if compacted:
                    await self._restart_feed(compacted)
                return _Next.RECONNECT
            if answer.get("created"):
                self.connected = True
            self._feed(answer)
            return _Next.CONTINUE

        def down() -> None:
            self.connected = False

        await self._follow(lambda: self._feed_cursor[0] + 1, handle, down)

    def _feed(self, answer: dict[str, Any]) -> None:
        if answer.get("created"):
            return
        raw = answer.get("events")
        if raw:
            events = self._events(raw)
            self._ring.extend(events)
            while len(self._ring) > self._ring_size:
                self._floor = max(self._floor, self._ring.popleft().rev)
            upto = events[-1].rev
        else:  # a progress notification: nothing changed under the prefix up to here
            events = []
            upto = int(answer.get("header", {}).get("revision") or 0)
        self._feed_cursor = max(self._feed_cursor, (upto, _AFTER_ALL))
        for watch in list(self._subscribers):
            watch._offer(events, upto)

    async def _restart_feed(self, compacted: int) -> None:
        """The feed's history was compacted: start over from now; its watches catch up alone."""
        now = await self._revision()
        log.warning(
            "etcd history after %d was compacted (at %d) while the watch was cut off; "
            "resuming from %d",
            self._feed_cursor[0],
            compacted,
            now,
        )
        self._ring.clear()
        self._floor = now
        self._feed_cursor = (now, _AFTER_ALL)
        for watch in list(self._subscribers):
            self._subscribers.discard(watch)
            watch._start_direct()

    def _subscribe(self, watch: _EtcdWatch) -> None:
        """Serve `watch` from the feed: first the ring's changes after its cursor."""
        cursor = watch._cursor
        tail: list[_Event] = []
        for event in reversed(self._ring):
            if (event.rev, event.idx) <= cursor:
                break
            tail.append(event)
        tail.reverse()
        self._subscribers.add(watch)
        watch._offer(tail, self._feed_cursor[0])

    def _take_over(self, watch: _EtcdWatch) -> bool:
        """Move a catch-up watch to the feed if the ring now covers what it still needs."""
        if self._closed or watch._cursor[0] < self._floor:
            return False
        if len(watch._queue) >= self._watch_buffer // 2:
            return False  # its consumer is still slow: it would overflow again at once
        self._subscribe(watch)
        return True


def _object(kv: dict[str, Any]) -> Obj:
    return decode_value(_text(kv.get("value")), int(kv["mod_revision"]))


def _conditions(op: TxnOp, key: str) -> list[dict[str, Any]]:
    """The etcd compares that make `op`'s precondition."""
    exists = {"key": key, "target": "CREATE", "result": "GREATER", "create_revision": "0"}
    if isinstance(op, Create | CheckAbsent):
        return [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}]
    expected = op.expected_rv
    if expected is None:
        return [exists]
    at = {"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": str(expected)}
    # An absent key has mod_revision 0: "expected 0" must still require the key.
    return [exists, at] if expected <= 0 else [at]


def _raise_failed_condition(ops: Sequence[TxnOp], responses: list[dict[str, Any]]) -> None:
    """Raise the error of the first operation whose condition the failure branch's reads break."""
    for op, reply in zip(ops, responses, strict=True):
        kvs = reply.get("response_range", {}).get("kvs") or []
        kv = kvs[0] if kvs else None
        if isinstance(op, Create | CheckAbsent):
            if kv is not None:
                raise KeyExists(op.key)
            continue
        if kv is None:
            raise KeyNotFound(op.key)
        actual = int(kv["mod_revision"])
        if op.expected_rv is not None and actual != op.expected_rv:
            operation = (
                "update"
                if isinstance(op, Update)
                else "delete"
                if isinstance(op, Delete)
                else "check"
            )
            raise Conflict(op.key, op.expected_rv, actual, _object(kv), operation=operation)
    raise StorageError("etcd refused the transaction, yet each of its conditions holds")


class _EtcdWatch(WatchStream):
    """One watch: a queue fed by the store's feed, or by a catch-up etcd watch of its own.

    `_cursor` is the last change this watch has been handed (queued if under its
    prefix, passed over if not); everything up to it is accounted for, which is
    what makes a BOOKMARK at `_cursor` exact.
    """

    def __init__(
        self,
        store: EtcdStore,
        prefix: str,
        cursor: _Cursor,
        bookmark_interval: float | None,
    ) -> None:
        self._store = store
        self._prefix = prefix
        self._cursor = cursor
        self._queue: deque[_Event] = deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._closed = False
        self._error: StorageError | None = None
        self._reader: asyncio.Task[None] | None = None
        self._bookmark_interval = bookmark_interval
        self._loop = asyncio.get_running_loop()
        self._last_rv = cursor[0]
        self._last_activity = self._loop.time()

    async def __anext__(self) -> WatchEvent:
        """The next event; see `WatchStream`."""
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._queue:
                event = self._queue.popleft()
                if len(self._queue) < self._store._watch_buffer:
                    self._room.set()
                self._last_rv = event.rev
                self._last_activity = self._loop.time()
                return event.materialise()
            if self._error is not None:
                error = self._error
                await self.close()
                raise error
            bookmark = await self._idle()
            if bookmark is not None:
                return bookmark

    async def close(self) -> None:
        """Stop watching; iteration ends."""
        await self._stop()

    async def _stop(self) -> None:
        self._closed = True
        self._store._subscribers.discard(self)
        self._store._watches.discard(self)
        self._queue.clear()
        self._wake.set()
        self._room.set()
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task() and not reader.done():
            reader.cancel()
            await asyncio.wait([reader])

    # --- sources ---

    def _offer(self, events: Iterable[_Event], upto: int) -> None:
        """Take the changes after the cursor; all changes up to `upto` are then accounted for."""
        if self._closed:
            return
        added = False
        for event in events:
            position = (event.rev, event.idx)
            if position <= self._cursor:
                continue
            self._cursor = position
            if event.key.startswith(self._prefix):
                self._queue.append(event)
                added = True
        self._cursor = max(self._cursor, (upto, _AFTER_ALL))
        if added:
            self._wake.set()
        if (
            len(self._queue) > self._store._watch_buffer
            and self in self._store._subscribers
            and self._reader is None
        ):
            # The consumer is too slow to buffer for: leave the feed and read from
            # etcd's history at the consumer's pace instead.
            self._store._subscribers.discard(self)
            self._start_direct()

    def _start_direct(self) -> None:
        self._reader = asyncio.create_task(self._read_direct(), name="kubesvc-etcd-watch")

    def _fail(self, error: StorageError) -> None:
        self._error = error
        self._wake.set()

    async def _read_direct(self) -> None:
        """Follow etcd's history from the cursor until caught up with the feed's ring."""
        store = self._store

        def start() -> int:
            rev, idx = self._cursor
            # Mid-revision, read that revision again; _offer skips what was seen.
            return rev + 1 if idx == _AFTER_ALL else rev

        async def handle(answer: _Answer) -> _Next:
            if answer.get("canceled"):
                compacted = int(answer.get("compact_revision") or 0)
                if compacted:
                    self._fail(Expired(self._cursor[0], compacted - 1))
                    return _Next.DONE
                return _Next.RECONNECT
            if answer.get("created"):
                return _Next.CONTINUE
            raw = answer.get("events")
            if raw:
                events = store._events(raw)
                self._offer(events, events[-1].rev)
            else:  # progress: nothing changed under the prefix up to the header's revision
                self._offer((), int(answer.get("header", {}).get("revision") or 0))
            if store._take_over(self):
                return _Next.DONE
            while len(self._queue) >= store._watch_buffer and not self._closed:
                self._room.clear()
                await self._room.wait()
            return _Next.DONE if self._closed else _Next.CONTINUE

        try:
            await store._follow(start, handle)
        finally:
            if self._reader is asyncio.current_task():
                self._reader = None

    # --- bookmarks ---

    async def _idle(self) -> WatchEvent | None:
        """Wait for a change; return a BOOKMARK if idle for the interval and the cursor moved."""
        self._wake.clear()
        interval = self._bookmark_interval
        if interval is None:
            await self._wake.wait()
            return None
        timeout = self._last_activity + interval - self._loop.time()
        if timeout > 0:
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
                return None
            except TimeoutError:
                pass
        self._last_activity = self._loop.time()
        rev = self._cursor[0]
        if self._queue or self._error is not None or self._closed or rev <= self._last_rv:
            return None
        # The queue is empty and every change up to the cursor was handed to us.
        self._last_rv = rev
        return WatchEvent(EventType.BOOKMARK, self._prefix, stamp({}, rev), rev)
