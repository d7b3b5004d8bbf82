"""core/v1 Events, as the controllers and the node agent write them about objects."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from kubesvc.api.errors import StatusError
from kubesvc.api.meta import rfc3339
from kubesvc.client.http import APIUnavailable, Client

Obj = dict[str, Any]
log = logging.getLogger("kubesvc.events")


def event_object(
    involved: Obj,
    event_type: str,
    reason: str,
    message: str,
    component: str,
    *,
    host: str = "",
    field_path: str = "",
    now: float | None = None,
) -> Obj:
    """A new Event (count 1) about `involved`, named after it with a random suffix."""
    meta = involved.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    stamp = rfc3339(now)
    ref: Obj = {
        "kind": involved.get("kind"),
        "apiVersion": involved.get("apiVersion", "v1"),
        "namespace": namespace,
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    if field_path:
        ref["fieldPath"] = field_path
    source: Obj = {"component": component}
    event: Obj = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta.get('name', 'object')}.{uuid.uuid4().hex[:16]}",
            "namespace": namespace,
        },
        "involvedObject": ref,
        "reason": reason,
        "message": message,
        "type": event_type,
        "source": source,
        "reportingComponent": component,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    if host:
        source["host"] = host
        event["reportingInstance"] = host
    return event


async def record_event(
    client: Client, involved: Obj, event_type: str, reason: str, message: str, component: str
) -> None:
    """Write an Event about `involved`; failures to record are logged, never raised."""
    event = event_object(involved, event_type, reason, message, component)
    try:
        await client.create(event)
    except (StatusError, APIUnavailable) as err:
        meta = involved.get("metadata") or {}
        log.warning(
            "could not record event %s on %s/%s: %s",
            reason,
            meta.get("namespace") or "default",
            meta.get("name"),
            err,
        )
