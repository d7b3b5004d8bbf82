"""The EndpointSlice controller: keeps each selector Service's EndpointSlices equal to its pods.

Level-triggered like the Endpoints controller: a change to a Service, to a pod
its selector could match, or to one of its slices queues the Service; `sync`
lays the backends out into slices (`slices.py`, pure) and writes only the
difference. `SliceSetController` holds what the mirroring controller shares:
the index of slices by Service, guarded writes, and the bookkeeping that keeps
a sync from acting on a cache that has not yet seen its own previous writes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kubesvc.api.errors import StatusError
from kubesvc.client.http import Client
from kubesvc.client.informer import Informer, object_key
from kubesvc.controllers import backends
from kubesvc.controllers.base import Controller, record_event, rfc3339
from kubesvc.controllers.index import ServiceBackends
from kubesvc.controllers.slices import (
    DEFAULT_MAX_ENDPOINTS_PER_SLICE,
    SlicePlan,
    plan_slices,
    service_address_types,
    service_endpoints,
    service_template,
)

Obj = dict[str, Any]
log = logging.getLogger("kubesvc.controllers")

# How long a sync waits for the informer to show the controller's own writes
# before it stops trusting that they will arrive and acts on what it sees.
EXPECTATION_TIMEOUT_S = 10.0


def _resource_version(obj: Obj) -> int | None:
    try:
        return int(obj["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None


class SliceSetController(Controller):
    """A controller that owns the EndpointSlices labelled with its `managed_by`, keyed by Service.

    Slices created with generateName cannot be guarded by a resourceVersion, so
    a sync that ran on a cache missing the slices it just created would create
    them again. Like Kubernetes' slice tracker, each write is remembered as an
    expectation (slice name → resourceVersion written, or deletion) until the
    informer shows it; a Service with expectations outstanding is not synced
    until they are met (or time out), and the informer's echo of our own write
    does not queue the Service again.
    """

    managed_by = ""
    component = ""

    def __init__(self, client: Client, slices: Informer, *, workers: int = 4) -> None:
        super().__init__(client, workers=workers)
        self.slices = slices
        # Service key → keys of the slices managed by us that name it.
        self._by_service: dict[str, set[str]] = {}
        # Service key → slice name → (resourceVersion we wrote, or None for deleted; deadline).
        self._expected: dict[str, dict[str, tuple[int | None, float]]] = {}
        self._deferred: set[str] = set()
        # Service key → slice events seen while a sync of it is writing: (slice, deleted).
        self._during_write: dict[str, list[tuple[Obj, bool]]] = {}
        # The newest change that made each queued Service need a sync (for the trigger-time annotation).
        self._trigger_times: dict[str, float] = {}
        self.writes = 0
        slices.add_handler(self._on_slice)

    # ------------------------------------------------------------ bookkeeping

    def _queue(self, key: str) -> None:
        self._trigger_times[key] = time.time()
        self.queue.add(key)

    def _service_key(self, slice_: Obj | None) -> str | None:
        if slice_ is None:
            return None
        meta = slice_.get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get(backends.MANAGED_BY_LABEL) != self.managed_by:
            return None
        service = labels.get(backends.SERVICE_NAME_LABEL)
        if not service:
            return None
        return f"{meta.get('namespace', '')}/{service}"

    def _on_slice(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        old_key, new_key = self._service_key(old), self._service_key(new)
        obj = new if new is not None else old
        assert obj is not None
        slice_key = object_key(obj)
        if old_key is not None and old_key != new_key:
            self._unindex(old_key, slice_key)
        if new_key is not None:
            self._by_service.setdefault(new_key, set()).add(slice_key)
        keys = {k for k in (old_key, new_key) if k is not None}
        if not keys:
            return
        if kind == "SYNC":
            for key in keys:
                self.queue.add(key)
            return
        if len(keys) == 1:
            [key] = keys
            buffered = self._during_write.get(key)
            if buffered is not None:
                # The echo of a write in flight can arrive before its response: judge it after.
                buffered.append((obj, new is None))
                return
            if self._observed(key, obj, deleted=new is None):
                return  # the echo of our own write: nothing to put right
        for key in keys:
            self.queue.add(key)

    def _unindex(self, service_key: str, slice_key: str) -> None:
        keys = self._by_service.get(service_key)
        if keys is not None:
            keys.discard(slice_key)
            if not keys:
                del self._by_service[service_key]

    def has_slices(self, service_key: str) -> bool:
        """Whether we manage any slice for `service_key` (as the cache shows it)."""
        return service_key in self._by_service

    def owned_slices(self, service_key: str) -> list[Obj]:
        """The slices in the cache that we manage for `service_key`."""
        out = []
        for key in self._by_service.get(service_key, ()):
            slice_ = self.slices.get(key)
            if slice_ is not None:
                out.append(slice_)
        return out

    def _observed(self, service_key: str, slice_: Obj, *, deleted: bool) -> bool:
        """Settle an expectation from an informer event; True if the event is our own write."""
        expected = self._expected.get(service_key)
        name = slice_["metadata"]["name"]
        if not expected or name not in expected:
            return False
        want, _ = expected[name]
        seen = _resource_version(slice_)
        ours = True
        if want is None:
            if deleted:
                del expected[name]
            # else: an event from before our delete; the DELETED is still to come
        elif deleted or seen is None or seen > want:
            del expected[name]
            ours = False  # someone else deleted or changed it after us
        elif seen == want:
            del expected[name]
        if not expected:
            self._expected.pop(service_key, None)
            if service_key in self._deferred:
                self._deferred.discard(service_key)
                self.queue.add(service_key)
        return ours

    def cache_behind(self, service_key: str) -> bool:
        """True (and the sync deferred) while the cache lacks writes of ours it will soon show."""
        expected = self._expected.get(service_key)
        if not expected:
            return False
        namespace = service_key.partition("/")[0]
        now = time.monotonic()
        for name, (want, deadline) in list(expected.items()):
            current = self.slices.get(f"{namespace}/{name}")
            if want is None:
                met = current is None
            else:
                seen = _resource_version(current) if current is not None else None
                met = seen is not None and seen >= want
            if met:
                del expected[name]
            elif now > deadline:
                log.warning(
                    "%s: the informer never showed our write of slice %s/%s; going on without it",
                    self.name,
                    namespace,
                    name,
                )
                del expected[name]
        if not expected:
            self._expected.pop(service_key, None)
            return False
        self._deferred.add(service_key)
        # In case the echo never comes (the expectation then times out).
        self.queue.add_after(service_key, EXPECTATION_TIMEOUT_S)
        return True

    # ------------------------------------------------------------------ writes

    async def write(self, service_key: str, plan: SlicePlan, trigger: float | None) -> None:
        """Create, then update, then delete: readers never see a moment with fewer endpoints."""
        stamp = rfc3339(trigger, nanos=True)
        deadline = time.monotonic() + EXPECTATION_TIMEOUT_S
        self._during_write[service_key] = []
        try:
            for body in plan.create + plan.update:
                body["metadata"].setdefault("annotations", {})[backends.TRIGGER_TIME_ANNOTATION] = (
                    stamp
                )
                if "name" in body["metadata"]:
                    written = await self.client.update(body, field_manager=self.component)
                else:
                    written = await self.client.create(body, field_manager=self.component)
                self.writes += 1
                version = _resource_version(written)
                if version is not None:  # an opaque version cannot be compared: trust the 409s
                    self._expect(service_key, written["metadata"]["name"], version, deadline)
            for slice_ in plan.delete:
                meta = slice_["metadata"]
                try:
                    await self.client.delete("EndpointSlice", meta["name"], meta["namespace"])
                    self.writes += 1
                except StatusError as err:
                    if err.code != 404:
                        raise
                self._expect(service_key, meta["name"], None, deadline)
        except StatusError:
            # A lost race or a stale cache: the retry recomputes from the informers' newer view.
            self._trigger_times.setdefault(service_key, trigger or time.time())
            raise
        finally:
            # Now that our expectations are recorded, tell our echoes from others' changes.
            for slice_, deleted in self._during_write.pop(service_key, []):
                if not self._observed(service_key, slice_, deleted=deleted):
                    self.queue.add(service_key)

    def _expect(self, service_key: str, name: str, version: int | None, deadline: float) -> None:
        # Looked up afresh each time: an echo settling the last expectation drops the dict.
        self._expected.setdefault(service_key, {})[name] = (version, deadline)


class EndpointSliceController(SliceSetController):
    """Writes `discovery.k8s.io/v1` EndpointSlices for every Service with a selector."""

    name = "endpointslice"
    managed_by = backends.SLICE_CONTROLLER
    component = "endpointslice-controller"

    def __init__(
        self,
        client: Client,
        services: Informer,
        pods: Informer,
        slices: Informer,
        *,
        max_endpoints_per_slice: int = DEFAULT_MAX_ENDPOINTS_PER_SLICE,
        workers: int = 4,
    ) -> None:
        super().__init__(client, slices, workers=workers)
        self.services = services
        self.pods = pods
        self.max_endpoints_per_slice = max_endpoints_per_slice
        self.backing = ServiceBackends()
        services.add_handler(self._on_service)
        pods.add_handler(self._on_pod)

    def _on_service(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        key = self.backing.service_changed(old, new)
        if kind == "SYNC":
            self.queue.add(key)
        else:
            self._queue(key)

    def _on_pod(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        if kind != "SYNC":
            for key in self.backing.pod_changed(old, new):
                self._queue(key)

    async def sync(self, key: str) -> None:
        if self.cache_behind(key):
            return
        trigger = self._trigger_times.pop(key, None)
        service = self.services.get(key)
        existing = self.owned_slices(key)
        if (
            service is None
            or backends.service_selector(service) is None
            # Kubernetes gives ExternalName Services no slices: they have no backends to list.
            or (service.get("spec") or {}).get("type") == "ExternalName"
        ):
            plan = SlicePlan(delete=existing)
        else:
            pods = self.backing.selected_pods(service, self.pods)
            found = backends.backends_for(service, pods, include_terminating=True)
            plan = plan_slices(
                service_template(service, self.managed_by),
                service_endpoints(service, found),
                existing,
                max_endpoints=self.max_endpoints_per_slice,
                placeholder_types=service_address_types(service),
            )
        if not plan.empty:
            await self.write(key, plan, trigger)

    async def on_failure(self, key: str, err: Exception, attempts: int) -> None:
        service = self.services.get(key)
        if service is not None and attempts in (3, 10):  # say so when it persists, not every race
            await record_event(
                self.client,
                service,
                "Warning",
                "FailedToUpdateEndpointSlices",
                f"Error updating Endpoint Slices for Service {key}: {err}",
                self.component,
            )
