"""The storage contract that every backend (SQLite now, etcd later) implements.

Model, in Kubernetes' terms:

- Keys are strings such as ``/registry/services/default/web``; a list or a watch
  selects keys by prefix (``/registry/services/default/`` for one namespace,
  ``/registry/services/`` for all — note the trailing slash).
- Values are Kubernetes JSON-shaped dicts. The store owns
  ``metadata.resourceVersion``: whatever a caller puts there is ignored, and every
  object the store returns or emits carries the version it was written at, as a
  decimal string, like Kubernetes.
- resourceVersion is one global counter, strictly increasing with every commit
  (the SQLite sequence; the etcd revision). A transaction commits at one
  resourceVersion, so all of its writes carry the same one — exactly as in etcd.
  Every other operation writes a single key, so its version is unique.
- Every returned or emitted object is an independent copy: callers may mutate it.
- A watch "from" resourceVersion R delivers every change with version > R, in
  commit order, then follows live changes. Resuming from the last version a
  client saw therefore delivers each change exactly once. Changes of one
  transaction are delivered together, in the order of its operations.
- History is kept for a window. A watch from a version older than the window
  raises `Expired` (HTTP 410); the client must list again.

Errors are the `kubesvc.storage.errors` family (see that module for why).

Only `get`, `list`, `txn`, `watch`, `compact` and `close` are backend-specific;
create, update, delete and guaranteed_update are single-operation transactions,
so every backend gets the same semantics for them from this base class.
"""

from __future__ import annotations

import copy
import enum
import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from kubesvc.storage.errors import Conflict

Obj = dict[str, Any]
"""A Kubernetes object in its JSON shape."""

Modify = Callable[[Obj], Obj | Awaitable[Obj]]
"""The change function of `Store.guaranteed_update`: current object in, new object out."""


class EventType(enum.StrEnum):
    """Watch event types, spelled as the Kubernetes watch API spells them."""

    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    BOOKMARK = "BOOKMARK"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change seen by a watch.

    `object` is the new state (ADDED, MODIFIED); for DELETED it is the last state,
    stamped with the deletion's resourceVersion (as Kubernetes does). For BOOKMARK
    it is ``{"metadata": {"resourceVersion": "N"}}``: every change up to N that
    matches the watch has been delivered, so a client may resume from N.
    `prev_object` is the state before a MODIFIED or DELETED change (with its own
    resourceVersion); the API server needs it to turn a label-selector watch's
    "stopped matching" into DELETED.
    """

    type: EventType
    key: str
    object: Obj
    resource_version: int
    prev_object: Obj | None = None


@dataclass(frozen=True, slots=True)
class ListResult:
    """The objects under a prefix, sorted by key, and the resourceVersion they are current at.

    Watching from `resource_version` continues exactly where the list ends.
    """

    items: list[Obj]
    resource_version: int


# Transaction operations. A transaction applies all of them or none.


@dataclass(frozen=True, slots=True)
class Create:
    """Create `key`; fails with KeyExists if it exists."""

    key: str
    value: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Update:
    """Replace `key`; KeyNotFound if absent, Conflict if `expected_rv` is given and stale."""

    key: str
    value: Mapping[str, Any]
    expected_rv: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete `key`; KeyNotFound if absent, Conflict if `expected_rv` is given and stale."""

    key: str
    expected_rv: int | None = None


@dataclass(frozen=True, slots=True)
class CheckVersion:
    """Write nothing; require `key` to exist at `expected_rv` (KeyNotFound / Conflict)."""

    key: str
    expected_rv: int


@dataclass(frozen=True, slots=True)
class CheckAbsent:
    """Write nothing; require `key` to be absent (KeyExists)."""

    key: str


TxnOp = Create | Update | Delete | CheckVersion | CheckAbsent


@dataclass(frozen=True, slots=True)
class TxnResult:
    """What a committed transaction did.

    `resource_version` is the version all its writes carry (the current version if
    it wrote nothing). `objects[i]` belongs to operation i: the stored object for
    Create and Update, the deleted object (stamped with the deletion's version) for
    Delete, the current object for CheckVersion, None for CheckAbsent.
    """

    resource_version: int
    objects: list[Obj | None]


class WatchStream(ABC):
    """An open watch: an async iterator of `WatchEvent`s, closed with `close()`.

    Iteration ends (StopAsyncIteration) when the watch or its store is closed. It
    raises `Expired` if the watch fell so far behind that the history it still
    needed has been compacted away. One consumer at a time.
    """

    def __aiter__(self) -> Self:
        return self

    @abstractmethod
    async def __anext__(self) -> WatchEvent:
        """The next event, waiting for one if need be."""

    @abstractmethod
    async def close(self) -> None:
        """Stop the watch and release its resources; iteration then ends. Idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class Store(ABC):
    """A versioned key-value store of Kubernetes objects with watch and transactions."""

    # --- backend-specific ------------------------------------------------------

    @abstractmethod
    async def get(self, key: str) -> Obj:
        """The object at `key`. Raises KeyNotFound."""

    @abstractmethod
    async def list(self, prefix: str) -> ListResult:
        """Every object whose key starts with `prefix`, sorted by key, with the list's version."""

    @abstractmethod
    async def txn(self, ops: Sequence[TxnOp]) -> TxnResult:
        """Apply `ops` atomically: all of them at one new resourceVersion, or none.

        If an operation's condition fails, nothing is written and that operation's
        error (KeyExists, KeyNotFound, Conflict) is raised. A key may appear in at
        most one operation (ValueError otherwise), as in etcd.
        """

    @abstractmethod
    async def watch(
        self,
        prefix: str,
        resource_version: int | None = None,
        *,
        bookmark_interval: float | None = None,
    ) -> WatchStream:
        """Watch the keys under `prefix`.

        With `resource_version` R, deliver every change with version > R first
        (R = 0 replays all kept history), raising Expired at once if R is older than
        the kept window. With None, deliver only changes committed from now on.
        With `bookmark_interval` (seconds), emit a BOOKMARK carrying the current
        version whenever the watch has been idle that long and the version has moved.
        """

    @abstractmethod
    async def compact(self, resource_version: int) -> None:
        """Discard history up to `resource_version`: watches from older versions get Expired.

        Backends also compact on their own to bound the window; this forces it.
        Raises ValueError for a version newer than the current one.
        """

    @abstractmethod
    async def close(self) -> None:
        """Close the store, ending every watch. Idempotent."""

    # --- shared semantics -------------------------------------------------------

    async def create(self, key: str, value: Mapping[str, Any]) -> Obj:
        """Create `key` and return the stored object. Raises KeyExists."""
        result = await self.txn([Create(key, value)])
        return _present(result.objects[0])

    async def update(self, key: str, value: Mapping[str, Any], *, expected_rv: int | None) -> Obj:
        """Replace `key` and return the stored object.

        `expected_rv` is required (pass None explicitly for an unconditional write) so
        that forgetting the precondition is a visible choice. Raises KeyNotFound, Conflict.
        """
        result = await self.txn([Update(key, value, expected_rv)])
        return _present(result.objects[0])

    async def delete(self, key: str, *, expected_rv: int | None = None) -> Obj:
        """Delete `key` and return its last state (stamped with the deletion's version).

        Raises KeyNotFound, and Conflict if `expected_rv` is given and stale.
        """
        result = await self.txn([Delete(key, expected_rv)])
        return _present(result.objects[0])

    async def guaranteed_update(
        self, key: str, modify: Modify, *, max_attempts: int | None = None
    ) -> Obj:
        """Read `key`, apply `modify`, write it back if unchanged since the read; retry on Conflict.

        `modify` gets an independent copy of the current object and returns the new
        one (it may mutate and return its argument; it may be async; it may raise to
        abort). If the result equals the current object, nothing is written and the
        current object is returned, so no-op updates do not bump the version (as in
        Kubernetes). Retries until it succeeds unless `max_attempts` is given, after
        which the last Conflict is raised. Raises KeyNotFound if the key is absent.
        """
        current = await self.get(key)
        attempts = 0
        while True:
            attempts += 1
            rv = resource_version_of(current)
            new = modify(copy.deepcopy(current))
            if inspect.isawaitable(new):
                new = await new
            if same_content(new, current):
                return current
            try:
                return await self.update(key, new, expected_rv=rv)
            except Conflict as err:
                if max_attempts is not None and attempts >= max_attempts:
                    raise
                # The conflict carries the winner's object: retry without another read.
                current = err.current if err.current is not None else await self.get(key)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


# --- helpers shared by backends ---------------------------------------------------


def resource_version_of(obj: Mapping[str, Any]) -> int:
    """The integer resourceVersion the store stamped into `obj`."""
    return int(obj["metadata"]["resourceVersion"])


def encode_value(value: Mapping[str, Any]) -> str:
    """`value` as compact JSON, without metadata.resourceVersion (the store owns it).

    Raises TypeError for a non-dict or unserialisable value, ValueError for NaN or
    a non-dict metadata — at the caller, before anything reaches the backend.
    """
    if not isinstance(value, Mapping):
        raise TypeError(f"a stored value must be a dict, not {type(value).__name__}")
    meta = value.get("metadata")
    if meta is not None and not isinstance(meta, Mapping):
        raise ValueError("metadata must be a dict")
    if meta is not None and "resourceVersion" in meta:
        stripped = {k: v for k, v in meta.items() if k != "resourceVersion"}
        value = {**value, "metadata": stripped}
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def decode_value(text: str, resource_version: int) -> Obj:
    """A fresh object from stored JSON, stamped with `resource_version`."""
    obj: Obj = json.loads(text)
    stamp(obj, resource_version)
    return obj


def stamp(obj: Obj, resource_version: int) -> Obj:
    """Set obj.metadata.resourceVersion (creating metadata if need be); returns `obj`."""
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    meta["resourceVersion"] = str(resource_version)
    return obj


def same_content(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two objects are equal apart from metadata.resourceVersion."""
    return _without_rv(a) == _without_rv(b)


def _without_rv(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or "resourceVersion" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}


def check_txn_keys(ops: Sequence[TxnOp]) -> None:
    """Raise ValueError if a key appears in more than one operation, or is empty."""
    seen: set[str] = set()
    for op in ops:
        if not isinstance(op.key, str) or not op.key:
            raise ValueError(f"a key must be a non-empty string, not {op.key!r}")
        if op.key in seen:
            raise ValueError(f"key {op.key} appears twice in one transaction")
        seen.add(op.key)


def _present(obj: Obj | None) -> Obj:
    assert obj is not None, "write operations always return an object"
    return obj
