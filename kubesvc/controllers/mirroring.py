"""The EndpointSlice mirroring controller: hand-written Endpoints, seen as EndpointSlices.

A Service without a selector has its Endpoints written by the user; readers
that only know slices (kube-proxy, `kubectl describe`) would see nothing. This
controller mirrors such an Endpoints object into slices managed by
`endpointslicemirroring-controller.k8s.io`, keeps them in step, and deletes
them when the Endpoints or the Service goes, or when the Service gains a
selector (its slices are then the EndpointSlice controller's). It never writes
Endpoints.
"""

from __future__ import annotations

from typing import Any

from kubesvc.client.http import Client
from kubesvc.client.informer import Informer, object_key
from kubesvc.controllers import backends
from kubesvc.controllers.base import record_event
from kubesvc.controllers.endpointslice import SliceSetController
from kubesvc.controllers.slices import (
    DEFAULT_MAX_ENDPOINTS_PER_SLICE,
    SKIP_MIRROR_LABEL,
    SlicePlan,
    mirror_template,
    mirrored_endpoints,
    plan_slices,
)

Obj = dict[str, Any]


def should_mirror(service: Obj | None, endpoints: Obj | None) -> bool:
    """Mirror only a selector-less Service's Endpoints, unless they opt out with skip-mirror."""
    if service is None or endpoints is None:
        return False
    if backends.service_selector(service) is not None:
        return False
    labels = endpoints["metadata"].get("labels") or {}
    return labels.get(SKIP_MIRROR_LABEL) != "true"


class EndpointSliceMirroringController(SliceSetController):
    """Mirrors user-written Endpoints of selector-less Services into EndpointSlices."""

    name = "endpointslicemirroring"
    managed_by = backends.MIRROR_CONTROLLER
    component = "endpointslicemirroring-controller"

    def __init__(
        self,
        client: Client,
        services: Informer,
        endpoints: Informer,
        slices: Informer,
        *,
        max_endpoints_per_slice: int = DEFAULT_MAX_ENDPOINTS_PER_SLICE,
        workers: int = 2,
    ) -> None:
        super().__init__(client, slices, workers=workers)
        self.services = services
        self.endpoints = endpoints
        self.max_endpoints_per_slice = max_endpoints_per_slice
        services.add_handler(self._on_service)
        endpoints.add_handler(self._on_endpoints)

    def _relevant(self, key: str, service: Obj | None) -> bool:
        # Most Services have selectors: their changes concern us only if we hold slices for them
        # (the Service just gained a selector, or went away).
        return self.has_slices(key) or (
            service is not None and backends.service_selector(service) is None
        )

    def _on_service(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        key = object_key(obj)
        if self._relevant(key, new) or (old is not None and self._relevant(key, old)):
            if kind == "SYNC":
                self.queue.add(key)
            else:
                self._queue(key)

    def _on_endpoints(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        key = object_key(obj)
        if not self._relevant(key, self.services.get(key)):
            return
        if kind == "SYNC":
            self.queue.add(key)
        else:
            self._queue(key)

    async def sync(self, key: str) -> None:
        if self.cache_behind(key):
            return
        trigger = self._trigger_times.pop(key, None)
        service = self.services.get(key)
        endpoints = self.endpoints.get(key)
        existing = self.owned_slices(key)
        if not should_mirror(service, endpoints):
            plan = SlicePlan(delete=existing)
        else:
            assert endpoints is not None
            plan = plan_slices(
                mirror_template(endpoints, self.managed_by),
                mirrored_endpoints(endpoints),
                existing,
                max_endpoints=self.max_endpoints_per_slice,
            )
        if not plan.empty:
            await self.write(key, plan, trigger)

    async def on_failure(self, key: str, err: Exception, attempts: int) -> None:
        endpoints = self.endpoints.get(key)
        if endpoints is not None and attempts in (3, 10):
            await record_event(
                self.client,
                endpoints,
                "Warning",
                "FailedToUpdateEndpointSlices",
                f"Error mirroring Endpoints {key} to EndpointSlices: {err}",
                self.component,
            )
