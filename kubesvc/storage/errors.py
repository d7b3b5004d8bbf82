"""The storage error family, and its one translation to Kubernetes `Status` errors.

Storage raises its own small family rather than `kubesvc.api.errors.StatusError`
because it only knows keys, not resources: the message Kubernetes prints for a
404 names the resource and object ("services \"web\" not found"), which the API
server knows and the store does not. Callers inside the server (allocators,
controllers' guaranteed updates) also want to catch exactly `KeyExists` or
`Conflict` without string-matching HTTP reasons. The API server translates once,
at its edge, with `to_status_error`.
"""

from __future__ import annotations

from typing import Any, Literal

from kubesvc.api import errors as api_errors


class StorageError(Exception):
    """Base of every error the store raises on purpose."""


class StoreClosed(StorageError):
    """The store was closed; no further operations are possible."""

    def __init__(self, message: str = "the store is closed") -> None:
        super().__init__(message)


class KeyNotFound(StorageError):
    """The key does not exist (get, update, delete, or a transaction's version check)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class KeyExists(StorageError):
    """The key exists where it must not (create, or a transaction's absence check)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key already exists: {key}")
        self.key = key


class Conflict(StorageError):
    """A resourceVersion precondition failed: the key is at `actual_rv`, not `expected_rv`.

    `current` is the object as it is now (an independent copy), so a retry loop can
    apply its change again without another read.
    """

    def __init__(
        self,
        key: str,
        expected_rv: int,
        actual_rv: int,
        current: dict[str, Any] | None = None,
        *,
        operation: Literal["update", "delete", "check"] = "update",
    ) -> None:
        super().__init__(
            f"resourceVersion conflict on {key}: expected {expected_rv}, found {actual_rv}"
        )
        self.key = key
        self.expected_rv = expected_rv
        self.actual_rv = actual_rv
        self.current = current
        self.operation = operation


class Unavailable(StorageError):
    """No member of the store answered in time; the request was not applied (HTTP 503)."""


class Indeterminate(StorageError):
    """A write reached the store but its answer was lost: it may or may not be applied (504)."""


class Expired(StorageError):
    """The requested resourceVersion is older than the kept event history (HTTP 410).

    `oldest_rv` is the oldest resourceVersion a watch may still start from.
    """

    def __init__(self, requested_rv: int, oldest_rv: int) -> None:
        super().__init__(f"too old resource version: {requested_rv} ({oldest_rv})")
        self.requested_rv = requested_rv
        self.oldest_rv = oldest_rv


def to_status_error(
    err: StorageError, resource: str, name: str, group: str | None = None
) -> api_errors.StatusError:
    """The Kubernetes `Status` error the API server answers with for a storage error.

    `resource` and `name` are those of the object the failed operation addressed.
    """
    if isinstance(err, KeyNotFound):
        return api_errors.not_found(resource, name, group)
    if isinstance(err, KeyExists):
        return api_errors.already_exists(resource, name, group)
    if isinstance(err, Conflict):
        if err.operation == "delete":
            # Kubernetes' wording for a failed delete precondition (storage.Preconditions).
            why = (
                f"Precondition failed: ResourceVersion in precondition: {err.expected_rv}, "
                f"ResourceVersion in object meta: {err.actual_rv}"
            )
            return api_errors.conflict(resource, name, why, group)
        return api_errors.stale_update(resource, name, group)
    if isinstance(err, Expired):
        return api_errors.expired(err.requested_rv, err.oldest_rv)
    if isinstance(err, StoreClosed):
        return api_errors.service_unavailable("storage is shutting down")
    if isinstance(err, Unavailable):
        # A client may retry: nothing was applied.
        return api_errors.StatusError(503, f"storage unavailable: {err}", retry_after_s=1)
    if isinstance(err, Indeterminate):
        # Kubernetes' answer when etcd does not confirm a write in time; read before retrying.
        return api_errors.StatusError(
            504, f"Timeout: request did not complete within the allowed duration ({err})"
        )
    return api_errors.internal_error(err)
