"""The live `Lookup`: Services, Endpoints (or EndpointSlices) and Namespaces, kept by informer handlers.

Handlers run on the event loop as each watch event arrives, update the maps,
and tell listeners which tags changed, so precomputed answers that read them
are dropped at that moment: there is no TTL cache in front of cluster records.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kubesvc.dns.lookup import (
    CLUSTER_IP,
    EXTERNAL_NAME,
    HEADLESS,
    EndpointAddress,
    Port,
    ServiceInfo,
    Tag,
)
from kubesvc.dns.resolver import reverse_ancestors

Obj = dict[str, Any]
SvcKey = tuple[str, str]  # (namespace, name), lowercase
# Called with the tags a watch event changed and when the event arrived (perf_counter).
Listener = Callable[[set[Tag], float], None]

# The label that ties an EndpointSlice to its Service (kubesvc.controllers.backends has the
# same constant; dns may not depend on the controllers, so it is repeated here).
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _norm_ip(value: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return None


def _ports(items: Any) -> tuple[Port, ...]:
    out = []
    for item in items or []:
        if not isinstance(item, dict):
            continue
        port = item.get("port")
        if not isinstance(port, int):
            continue
        out.append(
            Port(
                str(item.get("name") or "").lower(),
                port,
                str(item.get("protocol") or "TCP").upper(),
            )
        )
    return tuple(out)


def _meta(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or "").lower(), str(meta.get("name") or "").lower()


def service_info(obj: Obj) -> ServiceInfo:
    """What DNS needs of a Service object."""
    namespace, name = _meta(obj)
    spec = obj.get("spec") or {}
    ports = _ports(spec.get("ports"))
    publish = bool(spec.get("publishNotReadyAddresses"))
    if spec.get("type") == "ExternalName":
        return ServiceInfo(
            namespace, name, EXTERNAL_NAME, external_name=str(spec.get("externalName") or "")
        )
    if spec.get("clusterIP") == "None":
        return ServiceInfo(namespace, name, HEADLESS, ports=ports, publish_not_ready=publish)
    raw = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    ips = tuple(ip for ip in (_norm_ip(v) for v in raw) if ip)
    return ServiceInfo(namespace, name, CLUSTER_IP, ips, ports, publish_not_ready=publish)


def endpoints_addresses(obj: Obj) -> tuple[EndpointAddress, ...]:
    """Every address of a core/v1 Endpoints object: `addresses` ready, `notReadyAddresses` not."""
    out = []
    for subset in obj.get("subsets") or []:
        if not isinstance(subset, dict):
            continue
        ports = _ports(subset.get("ports"))
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in subset.get(key) or []:
                ip = _norm_ip(address.get("ip")) if isinstance(address, dict) else None
                if ip:
                    hostname = str(address.get("hostname") or "").lower()
                    out.append(EndpointAddress(ip, hostname, ready, ports))
    return tuple(out)


def slice_addresses(obj: Obj) -> tuple[EndpointAddress, ...]:
    """Every address of a discovery/v1 EndpointSlice; `ready` unset counts as ready."""
    if obj.get("addressType") == "FQDN":
        return ()
    ports = _ports(obj.get("ports"))
    out: list[EndpointAddress] = []
    for endpoint in obj.get("endpoints") or []:
        if not isinstance(endpoint, dict):
            continue
        conditions = endpoint.get("conditions") or {}
        ready = conditions.get("ready") is not False
        hostname = str(endpoint.get("hostname") or "").lower()
        for value in endpoint.get("addresses") or []:
            ip = _norm_ip(value)
            if ip:
                out.append(EndpointAddress(ip, hostname, ready, ports))
    return tuple(out)


class ClusterIndex:
    """A `Lookup` over the objects informers deliver; announces changed tags to listeners."""

    def __init__(self, *, endpoint_source: str = "Endpoints") -> None:
        if endpoint_source not in ("Endpoints", "EndpointSlice"):
            raise ValueError(
                f"endpoint source must be Endpoints or EndpointSlice: {endpoint_source}"
            )
        self.endpoint_source = endpoint_source
        self.listeners: list[Listener] = []
        self.synced: Callable[[], bool] = lambda: False
        self._services: dict[SvcKey, ServiceInfo] = {}
        self._endpoints: dict[SvcKey, tuple[EndpointAddress, ...]] = {}
        # EndpointSlice mode: slice (namespace, name) → (its Service, its addresses).
        self._slices: dict[SvcKey, tuple[SvcKey, tuple[EndpointAddress, ...]]] = {}
        self._namespaces: set[str] = set()
        self._services_in_ns: Counter[str] = Counter()
        self._svc_by_ip: dict[str, set[SvcKey]] = {}
        self._ep_by_ip: dict[str, set[SvcKey]] = {}
        self._ip_refs: Counter[str] = Counter()
        self._reverse_refs: Counter[str] = Counter()

    # ------------------------------------------------------------ Lookup

    def has_synced(self) -> bool:
        return self.synced()

    def service(self, namespace: str, name: str) -> ServiceInfo | None:
        return self._services.get((namespace, name))

    def endpoints(self, namespace: str, name: str) -> Sequence[EndpointAddress]:
        return self._endpoints.get((namespace, name), ())

    def namespace_exists(self, namespace: str) -> bool:
        return namespace in self._namespaces or self._services_in_ns[namespace] > 0

    def services_by_ip(self, ip: str) -> Sequence[ServiceInfo]:
        keys = self._svc_by_ip.get(ip, ())
        return [self._services[k] for k in keys if k in self._services]

    def endpoints_by_ip(self, ip: str) -> Sequence[tuple[ServiceInfo, EndpointAddress]]:
        out: list[tuple[ServiceInfo, EndpointAddress]] = []
        for key in sorted(self._ep_by_ip.get(ip, ())):
            svc = self._services.get(key)
            if svc is None:
                continue  # endpoints without their Service publish nothing
            out.extend((svc, a) for a in self._endpoints.get(key, ()) if a.ip == ip)
        return out

    def reverse_in_use(self, reverse_name: str) -> bool:
        return self._reverse_refs[reverse_name.lower()] > 0

    # ------------------------------------------------------------ informer handlers

    def on_service(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """Informer handler for Services."""
        started = time.perf_counter()
        obj = new if new is not None else old
        if obj is None:
            return
        key = _meta(obj)
        before = self._services.get(key)
        after = service_info(new) if new is not None and event != "DELETED" else None
        if before == after:
            return
        tags: set[Tag] = {("svc", *key), ("ns", key[0])}
        if before is not None:
            self._services.pop(key)
            self._services_in_ns[key[0]] -= 1
            self._unindex_ips(self._svc_by_ip, key, before.cluster_ips, tags)
        if after is not None:
            self._services[key] = after
            self._services_in_ns[key[0]] += 1
            self._index_ips(self._svc_by_ip, key, after.cluster_ips, tags)
        if (before is None) != (after is None) or (
            before is not None
            and after is not None
            and (before.publish_not_ready, before.kind) != (after.publish_not_ready, after.kind)
        ):
            # Endpoint PTRs depend on the Service existing and on publishNotReadyAddresses.
            for address in self._endpoints.get(key, ()):
                tags.update(("rev", name) for name in reverse_ancestors(address.ip))
        if self._services_in_ns[key[0]] <= 0:
            del self._services_in_ns[key[0]]
        self._notify(tags, started)

    def on_endpoints(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """Informer handler for core/v1 Endpoints."""
        started = time.perf_counter()
        obj = new if new is not None else old
        if obj is None:
            return
        key = _meta(obj)
        after = endpoints_addresses(new) if new is not None and event != "DELETED" else ()
        self._set_endpoints(key, after, started)

    def on_endpoint_slice(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """Informer handler for discovery/v1 EndpointSlices (merged per Service)."""
        started = time.perf_counter()
        obj = new if new is not None else old
        if obj is None:
            return
        slice_key = _meta(obj)
        touched: set[SvcKey] = set()
        previous = self._slices.pop(slice_key, None)
        if previous is not None:
            touched.add(previous[0])
        if new is not None and event != "DELETED":
            labels = (new.get("metadata") or {}).get("labels") or {}
            service_name = str(labels.get(SERVICE_NAME_LABEL) or "").lower()
            if service_name:
                svc_key = (slice_key[0], service_name)
                self._slices[slice_key] = (svc_key, slice_addresses(new))
                touched.add(svc_key)
        for svc_key in touched:
            merged: dict[tuple[str, str], EndpointAddress] = {}
            for name, (owner, addresses) in sorted(self._slices.items()):
                if owner == svc_key and name[0] == svc_key[0]:
                    for address in addresses:
                        # The same endpoint may sit in two slices for a moment; keep one.
                        merged.setdefault((address.ip, address.hostname), address)
            self._set_endpoints(svc_key, tuple(merged.values()), started)

    def on_namespace(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """Informer handler for Namespaces."""
        started = time.perf_counter()
        obj = new if new is not None else old
        if obj is None:
            return
        name = str((obj.get("metadata") or {}).get("name") or "").lower()
        present = new is not None and event != "DELETED"
        if present == (name in self._namespaces):
            return
        if present:
            self._namespaces.add(name)
        else:
            self._namespaces.discard(name)
        self._notify({("ns", name)}, started)

    # ------------------------------------------------------------ internals

    def _set_endpoints(
        self, key: SvcKey, after: tuple[EndpointAddress, ...], started: float
    ) -> None:
        before = self._endpoints.get(key, ())
        if before == after:
            return
        tags: set[Tag] = {("svc", *key)}
        changed = set(before).symmetric_difference(after)
        self._unindex_ips(self._ep_by_ip, key, {a.ip for a in before}, set())
        if after:
            self._endpoints[key] = after
        else:
            self._endpoints.pop(key, None)
        self._index_ips(self._ep_by_ip, key, {a.ip for a in after}, set())
        for ip in {a.ip for a in changed}:
            tags.update(("rev", name) for name in reverse_ancestors(ip))
        self._notify(tags, started)

    def _index_ips(
        self, table: dict[str, set[SvcKey]], key: SvcKey, ips: Iterable[str], tags: set[Tag]
    ) -> None:
        for ip in ips:
            table.setdefault(ip, set()).add(key)
            self._ref_ip(ip, +1)
            tags.update(("rev", name) for name in reverse_ancestors(ip))

    def _unindex_ips(
        self, table: dict[str, set[SvcKey]], key: SvcKey, ips: Iterable[str], tags: set[Tag]
    ) -> None:
        for ip in ips:
            owners = table.get(ip)
            if owners is None or key not in owners:
                continue
            owners.discard(key)
            if not owners:
                del table[ip]
            self._ref_ip(ip, -1)
            tags.update(("rev", name) for name in reverse_ancestors(ip))

    def _ref_ip(self, ip: str, delta: int) -> None:
        before = self._ip_refs[ip]
        after = before + delta
        if after <= 0:
            del self._ip_refs[ip]
        else:
            self._ip_refs[ip] = after
        if (before > 0) != (after > 0):
            for name in reverse_ancestors(ip):
                self._reverse_refs[name] += 1 if after > 0 else -1
                if self._reverse_refs[name] <= 0:
                    del self._reverse_refs[name]

    def _notify(self, tags: set[Tag], started: float) -> None:
        for listener in self.listeners:
            listener(tags, started)
