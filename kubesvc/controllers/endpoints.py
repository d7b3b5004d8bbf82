"""The Endpoints controller: keeps each selector Service's Endpoints equal to its backing pods.

Level-triggered: any change to a Service, to a pod its selector could match,
or to the Endpoints object itself queues the Service; `sync` computes the
whole desired Endpoints and writes it only when it differs from what is
stored. Services without a selector are left alone: their Endpoints are the
user's (the seed's selector-less Service).
"""

from __future__ import annotations

import time
from typing import Any

from kubesvc.api.errors import StatusError
from kubesvc.client.http import Client
from kubesvc.client.informer import Informer, object_key
from kubesvc.controllers import backends
from kubesvc.controllers.base import Controller, record_event, rfc3339
from kubesvc.controllers.index import ServiceBackends
from kubesvc.controllers.slices import SKIP_MIRROR_LABEL

Obj = dict[str, Any]
COMPONENT = "endpoint-controller"


class EndpointsController(Controller):
    name = "endpoints"

    def __init__(
        self,
        client: Client,
        services: Informer,
        pods: Informer,
        endpoints: Informer,
        *,
        workers: int = 4,
    ) -> None:
        super().__init__(client, workers=workers)
        self.services = services
        self.pods = pods
        self.endpoints = endpoints
        self.backing = ServiceBackends()
        # The newest change that made each queued Service need a sync (for the trigger-time annotation).
        self._trigger_times: dict[str, float] = {}
        # The resourceVersion of our last write per key, to tell our own echoes from others' edits.
        self._written: dict[str, str] = {}
        services.add_handler(self._on_service)
        pods.add_handler(self._on_pod)
        endpoints.add_handler(self._on_endpoints)

    def _queue(self, key: str) -> None:
        self._trigger_times[key] = time.time()
        self.queue.add(key)

    def _on_service(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        key = self.backing.service_changed(old, new)
        if kind == "SYNC":
            self.queue.add(key)  # a resync is no change: it keeps no trigger time
        else:
            self._queue(key)

    def _on_pod(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        if kind != "SYNC":
            for key in self.backing.pod_changed(old, new):
                self._queue(key)

    def _on_endpoints(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        # Someone else changed (or deleted) an Endpoints we manage: put it right.
        obj = new or old
        assert obj is not None
        key = object_key(obj)
        if new is not None and self._written.get(key) == new["metadata"].get("resourceVersion"):
            return  # the echo of our own write: nothing to put right
        if self.services.get(key) is not None:
            self.queue.add(key)

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        service = self.services.get(key)
        current = self.endpoints.get(key)
        trigger = self._trigger_times.pop(key, None)
        if service is None:
            self._written.pop(key, None)
            if current is not None and _managed_by_us(current):
                try:
                    await self.client.delete("Endpoints", name, namespace)
                except StatusError as err:
                    if err.code != 404:
                        raise
            return
        selector = backends.service_selector(service)
        if selector is None:
            return  # the user's Endpoints: not ours to touch
        pods = self.backing.selected_pods(service, self.pods)
        subsets = backends.endpoints_subsets(service, backends.backends_for(service, pods))
        labels = dict(service["metadata"].get("labels") or {})
        # The EndpointSlice controller writes this Service's slices; mirroring must not.
        labels[SKIP_MIRROR_LABEL] = "true"
        if backends.is_headless(service):
            labels[backends.HEADLESS_LABEL] = ""
        if (
            current is not None
            and current.get("subsets", []) == subsets
            and (current["metadata"].get("labels") or {}) == labels
        ):
            return
        annotations = dict((current or {}).get("metadata", {}).get("annotations") or {})
        annotations[backends.TRIGGER_TIME_ANNOTATION] = rfc3339(trigger, nanos=True)
        desired: Obj = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "annotations": annotations,
            },
            "subsets": subsets,
        }
        try:
            if current is None:
                written = await self.client.create(desired, field_manager=COMPONENT)
            else:
                desired["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                written = await self.client.update(desired, field_manager=COMPONENT)
            self._written[key] = written["metadata"]["resourceVersion"]
        except StatusError:
            # A lost race or a stale cache: the retry recomputes from the informers' newer view.
            self._trigger_times.setdefault(key, trigger or time.time())
            raise

    async def on_failure(self, key: str, err: Exception, attempts: int) -> None:
        service = self.services.get(key)
        if service is not None and attempts in (
            3,
            10,
        ):  # say so when it persists, not on every race
            await record_event(
                self.client,
                service,
                "Warning",
                "FailedToUpdateEndpoint",
                f"Failed to update endpoint {key}: {err}",
                COMPONENT,
            )


def _managed_by_us(endpoints: Obj) -> bool:
    # Endpoints we wrote carry the trigger-time annotation; a user's hand-written ones do not.
    annotations = endpoints["metadata"].get("annotations") or {}
    return backends.TRIGGER_TIME_ANNOTATION in annotations
