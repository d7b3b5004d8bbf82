"""kubesvc.storage: the `Store` interface, its error family, and its two backends.

See `interface` for the contract, `errors` for the errors, `sqlite` for the
embedded backend, `etcd` for the backend several API servers share.
"""

from kubesvc.storage.errors import (
    Conflict,
    Expired,
    KeyExists,
    KeyNotFound,
    StorageError,
    StoreClosed,
    to_status_error,
)
from kubesvc.storage.etcd import EtcdStore
from kubesvc.storage.interface import (
    CheckAbsent,
    CheckVersion,
    Create,
    Delete,
    EventType,
    ListResult,
    Store,
    TxnOp,
    TxnResult,
    Update,
    WatchEvent,
    WatchStream,
    resource_version_of,
)
from kubesvc.storage.sqlite import SqliteStore

__all__ = [
    "CheckAbsent",
    "CheckVersion",
    "Conflict",
    "Create",
    "Delete",
    "EtcdStore",
    "EventType",
    "Expired",
    "KeyExists",
    "KeyNotFound",
    "ListResult",
    "SqliteStore",
    "StorageError",
    "Store",
    "StoreClosed",
    "TxnOp",
    "TxnResult",
    "Update",
    "WatchEvent",
    "WatchStream",
    "resource_version_of",
    "to_status_error",
]
