"""Events the node agent writes about its pods (Unhealthy, Killing), as the kubelet does.

The node may not import the controllers' helper (import layers), so this is
its own small recorder. Like client-go's event correlator it folds a repeat
of the same event (same object, type, reason and message within
`AGGREGATE_S`) into the first one's `count` instead of writing a new object:
a probe failing every second must not fill the store with Events.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from kubesvc.api.errors import StatusError
from kubesvc.client.events import event_object, rfc3339
from kubesvc.client.http import APIUnavailable, Client

log = logging.getLogger("kubesvc.node")

Obj = dict[str, Any]

COMPONENT = "kubelet"  # what `kubectl describe` shows under "From", as for a real node
AGGREGATE_S = 600.0  # client-go folds repeats within 10 minutes
MAX_REMEMBERED = 1024


@dataclass
class _Seen:
    namespace: str
    name: str
    count: int
    first_s: float


class EventRecorder:
    """Writes core/v1 Events about pods; failures are logged, never raised."""

    def __init__(self, client: Client, host: str) -> None:
        self.client = client
        self.host = host
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()

    async def record(
        self, pod: Obj, event_type: str, reason: str, message: str, *, field_path: str = ""
    ) -> None:
        meta = pod.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        uid = str(meta.get("uid") or "")
        now = time.time()
        key = (uid, field_path, event_type, reason, message)
        seen = self._seen.get(key)
        if seen is not None and now - seen.first_s < AGGREGATE_S:
            seen.count += 1
            self._seen.move_to_end(key)
            patch = {"count": seen.count, "lastTimestamp": rfc3339(now)}
            try:
                await self.client.patch("Event", seen.name, patch, seen.namespace)
                return
            except StatusError as err:
                if err.code != 404:  # 404: expired or deleted; write a new one below
                    log.warning(
                        "could not update event %s on %s: %s", reason, meta.get("name"), err
                    )
                    return
            except APIUnavailable as err:
                log.warning("could not update event %s on %s: %s", reason, meta.get("name"), err)
                return
        event = event_object(
            {**pod, "kind": "Pod", "apiVersion": "v1"},
            event_type,
            reason,
            message,
            COMPONENT,
            host=self.host,
            field_path=field_path,
            now=now,
        )
        name = event["metadata"]["name"]
        # Remembered before the write: a repeat while it is in flight is folded into it.
        self._seen[key] = _Seen(namespace, name, 1, now)
        self._seen.move_to_end(key)
        while len(self._seen) > MAX_REMEMBERED:
            self._seen.popitem(last=False)
        try:
            await self.client.create(event)
        except (StatusError, APIUnavailable) as err:
            self._seen.pop(key, None)
            log.warning("could not record event %s on %s: %s", reason, meta.get("name"), err)
