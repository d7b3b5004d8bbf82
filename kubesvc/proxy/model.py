"""The proxy's pure model: what every proxy mode needs to know, and what changed.

Every mode (userspace here; iptables, nftables and IPVS later) is fed the same
way, as kube-proxy's are:

1. Informer handlers call `ProxyState.on_service` / `on_endpoints` /
   `on_endpoint_slice` with (type, old, new). Adapters turn each object into
   a map keyed by `ServicePortName`; change trackers only record the
   `{previous, current}` pair per object and drop pairs that turn out equal.
2. A sync calls `ProxyState.commit()`, which folds the pending changes into a
   new immutable `Snapshot` and returns a `SyncDelta` (which service ports
   appeared, changed or went away, which endpoints went away, when the
   changes were triggered).
3. The backend renders the whole desired state from the snapshot and applies
   it; the delta lets it skip work, never replaces the snapshot.

No I/O, no clock: times are passed in by the caller.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

Obj = dict[str, Any]

log = logging.getLogger("kubesvc.proxy")

# Annotations on a Service that kubesvc's proxy reads (documented in kubesvc/proxy/README.md).
SCHEDULER_ANNOTATION = "proxy.kubesvc.io/scheduler"
PROXY_PROTOCOL_ANNOTATION = "proxy.kubesvc.io/proxy-protocol"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

DEFAULT_AFFINITY_TIMEOUT_S = 10800  # Kubernetes' default for ClientIP affinity
SCHEDULER_NAMES = ("rr", "random", "lc", "sed", "nq", "dh", "sh")
PROTOCOLS = ("TCP", "UDP", "SCTP")


@functools.lru_cache(maxsize=4096)
def _networks(ranges: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(r) for r in ranges)


def source_in(source: str, ranges: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return False
    return any(address in network for network in _networks(ranges))


def _cidrs(value: Any) -> tuple[str, ...]:
    """The valid CIDRs of a list (the API refuses others; a bad one here is skipped)."""
    out: list[str] = []
    for text in value if isinstance(value, list) else ():
        try:
            out.append(str(ipaddress.ip_network(str(text).strip(), strict=False)))
        except ValueError:
            continue
    return tuple(dict.fromkeys(out))


class ServicePortName(NamedTuple):
    """One port of one Service: the unit every proxy mode programs (kube-proxy's ServicePortName)."""

    namespace: str
    name: str
    port: str  # the port's name; "" for the single unnamed port
    protocol: str = "TCP"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}"

    @property
    def service(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ServicePort:
    """What a proxy needs to know about one service port; equal values mean nothing to do."""

    name: ServicePortName
    cluster_ips: tuple[str, ...]
    port: int
    protocol: str = "TCP"
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    # 0 = no session affinity; otherwise ClientIP affinity with this timeout.
    affinity_timeout_s: int = 0
    internal_local: bool = False  # internalTrafficPolicy: Local
    external_local: bool = False  # externalTrafficPolicy: Local (NodePort, LoadBalancer)
    scheduler: str | None = None  # from SCHEDULER_ANNOTATION; None = the node's --scheduler
    proxy_protocol: int = 0  # 0 = off, 1 or 2 = PROXY protocol version sent to backends
    # A LoadBalancer with externalTrafficPolicy Local: where this node tells its local endpoints.
    health_check_node_port: int = 0
    # loadBalancerSourceRanges (normalised CIDRs): the only sources the load balancer
    # addresses admit; empty: every source.
    source_ranges: tuple[str, ...] = ()

    def admits(self, address: str, source: str) -> bool:
        """Whether traffic from `source` to `address` passes the load balancer's source ranges."""
        if not self.source_ranges or address not in self.load_balancer_ips:
            return True
        return source_in(source, self.source_ranges)

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address of the service, ClusterIPs first."""
        return self.cluster_ips + self.external_ips + self.load_balancer_ips


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    """One backend of one service port, with its EndpointSlice-style conditions."""

    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.ip, self.port)

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


ServicePorts = Mapping[ServicePortName, ServicePort]
EndpointsMap = Mapping[ServicePortName, tuple[Endpoint, ...]]


# ------------------------------------------------------------------ adapters


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _meta(obj: Obj) -> tuple[str, str]:
    meta = _dict(obj.get("metadata"))
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def _valid_ip(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _port_number(value: Any) -> int | None:
    return value if isinstance(value, int) and 0 < value < 65536 else None


def parse_scheduler(value: Any) -> str | None:
    """The scheduler an annotation names, or None when it is absent or unknown."""
    if isinstance(value, str) and value.strip().lower() in SCHEDULER_NAMES:
        return value.strip().lower()
    return None


def parse_proxy_protocol(value: Any) -> int:
    """PROXY protocol version from the annotation: "v1"/"1" → 1, "v2"/"2" → 2, else 0 (off)."""
    if not isinstance(value, str):
        return 0
    return {"v1": 1, "1": 1, "v2": 2, "2": 2}.get(value.strip().lower(), 0)


def service_ports(
    service: Obj, problems: list[str] | None = None
) -> dict[ServicePortName, ServicePort]:
    """The proxied ports of a Service; none for headless, ExternalName or unallocated ones.

    Malformed parts are skipped (the API server validated the object; a
    foreign server might not have), and described in `problems` if given.
    """
    namespace, name = _meta(service)
    spec = _dict(service.get("spec"))
    out: dict[ServicePortName, ServicePort] = {}
    if spec.get("type") == "ExternalName":
        return out
    raw_ips = _list(spec.get("clusterIPs")) or [spec.get("clusterIP")]
    cluster_ips = tuple(ip for ip in (_valid_ip(v) for v in raw_ips) if ip)
    if not cluster_ips:  # headless ("None") or not allocated yet
        return out
    annotations = _dict(_dict(service.get("metadata")).get("annotations"))
    scheduler = parse_scheduler(annotations.get(SCHEDULER_ANNOTATION))
    if problems is not None and SCHEDULER_ANNOTATION in annotations and scheduler is None:
        problems.append(
            f"Service {namespace}/{name}: annotation {SCHEDULER_ANNOTATION}="
            f"{annotations[SCHEDULER_ANNOTATION]!r} names no scheduler of {', '.join(SCHEDULER_NAMES)}; "
            "using the node's"
        )
    proxy_protocol = parse_proxy_protocol(annotations.get(PROXY_PROTOCOL_ANNOTATION))
    if problems is not None and PROXY_PROTOCOL_ANNOTATION in annotations and not proxy_protocol:
        problems.append(
            f"Service {namespace}/{name}: annotation {PROXY_PROTOCOL_ANNOTATION}="
            f"{annotations[PROXY_PROTOCOL_ANNOTATION]!r} is not v1 or v2; PROXY protocol stays off"
        )
    affinity_timeout_s = 0
    if spec.get("sessionAffinity") == "ClientIP":
        config = _dict(_dict(spec.get("sessionAffinityConfig")).get("clientIP"))
        timeout = config.get("timeoutSeconds")
        affinity_timeout_s = (
            timeout if isinstance(timeout, int) and timeout > 0 else DEFAULT_AFFINITY_TIMEOUT_S
        )
    external_ips = tuple(ip for ip in (_valid_ip(v) for v in _list(spec.get("externalIPs"))) if ip)
    ingress = _list(_dict(_dict(service.get("status")).get("loadBalancer")).get("ingress"))
    lb_ips = tuple(ip for ip in (_valid_ip(_dict(i).get("ip")) for i in ingress) if ip)
    svc_type = spec.get("type") or "ClusterIP"
    has_node_ports = svc_type in ("NodePort", "LoadBalancer")
    health_port = 0
    if svc_type == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
        health_port = _port_number(spec.get("healthCheckNodePort")) or 0
    source_ranges = (
        _cidrs(spec.get("loadBalancerSourceRanges")) if svc_type == "LoadBalancer" else ()
    )
    for raw in _list(spec.get("ports")):
        port_spec = _dict(raw)
        port = _port_number(port_spec.get("port"))
        protocol = port_spec.get("protocol") or "TCP"
        if port is None or protocol not in PROTOCOLS:
            if problems is not None:
                problems.append(f"Service {namespace}/{name}: skipping malformed port {raw!r}")
            continue
        key = ServicePortName(namespace, name, str(port_spec.get("name") or ""), protocol)
        out[key] = ServicePort(
            name=key,
            cluster_ips=cluster_ips,
            port=port,
            protocol=protocol,
            node_port=(_port_number(port_spec.get("nodePort")) or 0) if has_node_ports else 0,
            external_ips=external_ips,
            load_balancer_ips=lb_ips if svc_type == "LoadBalancer" else (),
            affinity_timeout_s=affinity_timeout_s,
            internal_local=spec.get("internalTrafficPolicy") == "Local",
            external_local=has_node_ports and spec.get("externalTrafficPolicy") == "Local",
            scheduler=scheduler,
            proxy_protocol=proxy_protocol,
            health_check_node_port=health_port,
            source_ranges=source_ranges,
        )
    return out


def _ip_sort_key(ep: Endpoint) -> tuple[int, int, int]:
    addr = ipaddress.ip_address(ep.ip)
    return (addr.version, int(addr), ep.port)


def _merge(
    found: dict[ServicePortName, dict[tuple[str, int], Endpoint]],
    key: ServicePortName,
    ep: Endpoint,
) -> None:
    by_addr = found.setdefault(key, {})
    before = by_addr.get(ep.key)
    # An address listed twice (two subsets, two slices) counts once, at its best condition.
    if before is None or (ep.ready, ep.serving) > (before.ready, before.serving):
        by_addr[ep.key] = ep


def _sorted(
    found: dict[ServicePortName, dict[tuple[str, int], Endpoint]],
) -> dict[ServicePortName, tuple[Endpoint, ...]]:
    # A stable order (by address) so that every backend, and every node, sees the same list.
    return {k: tuple(sorted(v.values(), key=_ip_sort_key)) for k, v in found.items() if v}


def endpoints_from_endpoints(endpoints: Obj) -> dict[ServicePortName, tuple[Endpoint, ...]]:
    """The endpoints per service port that a core/v1 Endpoints object lists."""
    namespace, name = _meta(endpoints)
    found: dict[ServicePortName, dict[tuple[str, int], Endpoint]] = {}
    for raw_subset in _list(endpoints.get("subsets")):
        subset = _dict(raw_subset)
        for raw_port in _list(subset.get("ports")):
            port_spec = _dict(raw_port)
            port = _port_number(port_spec.get("port"))
            if port is None:
                continue
            key = ServicePortName(
                namespace,
                name,
                str(port_spec.get("name") or ""),
                port_spec.get("protocol") or "TCP",
            )
            for field_name, ready in (("addresses", True), ("notReadyAddresses", False)):
                for raw_addr in _list(subset.get(field_name)):
                    addr = _dict(raw_addr)
                    ip = _valid_ip(addr.get("ip"))
                    if ip is None:
                        continue
                    node = addr.get("nodeName") if isinstance(addr.get("nodeName"), str) else None
                    # Endpoints cannot say "terminating": not-ready addresses are simply not serving.
                    _merge(found, key, Endpoint(ip, port, ready, ready, False, node))
    return _sorted(found)


def slice_service(slice_obj: Obj) -> tuple[str, str] | None:
    """(namespace, service name) an EndpointSlice belongs to, from its service-name label."""
    meta = _dict(slice_obj.get("metadata"))
    service = _dict(meta.get("labels")).get(SERVICE_NAME_LABEL)
    if not isinstance(service, str) or not service:
        return None
    return str(meta.get("namespace") or "default"), service


def endpoints_from_slice(slice_obj: Obj) -> dict[ServicePortName, tuple[Endpoint, ...]]:
    """The endpoints per service port of one discovery/v1 EndpointSlice (FQDN slices: none)."""
    owner = slice_service(slice_obj)
    if owner is None or slice_obj.get("addressType") not in ("IPv4", "IPv6"):
        return {}
    namespace, name = owner
    found: dict[ServicePortName, dict[tuple[str, int], Endpoint]] = {}
    for raw_port in _list(slice_obj.get("ports")):
        port_spec = _dict(raw_port)
        port = _port_number(port_spec.get("port"))
        if port is None:
            continue
        key = ServicePortName(
            namespace, name, str(port_spec.get("name") or ""), port_spec.get("protocol") or "TCP"
        )
        for raw_ep in _list(slice_obj.get("endpoints")):
            ep = _dict(raw_ep)
            conditions = _dict(ep.get("conditions"))
            # The API's rule: an unknown `ready` means ready; `serving` defaults to `ready`.
            ready = conditions.get("ready") is not False
            serving = conditions.get("serving", ready) is not False
            terminating = conditions.get("terminating") is True
            node = ep.get("nodeName") if isinstance(ep.get("nodeName"), str) else None
            addresses = _list(ep.get("addresses"))
            ip = _valid_ip(addresses[0]) if addresses else None  # the API uses the first only
            if ip is not None:
                _merge(found, key, Endpoint(ip, port, ready, serving, terminating, node))
    return _sorted(found)


def merge_endpoint_maps(
    maps: Iterable[EndpointsMap],
) -> dict[ServicePortName, tuple[Endpoint, ...]]:
    """One map from several (the slices of one Service)."""
    found: dict[ServicePortName, dict[tuple[str, int], Endpoint]] = {}
    for one in maps:
        for key, eps in one.items():
            for ep in eps:
                _merge(found, key, ep)
    return _sorted(found)


def parse_trigger_time(obj: Obj) -> float | None:
    """The last-change-trigger-time annotation as Unix seconds (RFC 3339, up to nanoseconds)."""
    value = _dict(_dict(obj.get("metadata")).get("annotations")).get(TRIGGER_TIME_ANNOTATION)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # datetime takes at most microseconds; Go writes up to nanoseconds.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = head + "." + (rest[:digits][:6].ljust(6, "0")) + rest[digits:]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# ----------------------------------------------------------- change tracking

V = TypeVar("V")


class ChangeTracker(Generic[V]):
    """Pending `{previous, current}` per object key since the last `take()`.

    A change that is undone before the next sync (A → B → A) leaves nothing,
    so a sync only ever sees real differences.
    """

    def __init__(self) -> None:
        self._pending: dict[str, list[V]] = {}

    def record(self, key: str, previous: V, current: V) -> bool:
        """Note that `key` went from `previous` to `current`; True when something is pending for it."""
        change = self._pending.get(key)
        if change is None:
            if previous == current:
                return False
            self._pending[key] = [previous, current]
            return True
        change[1] = current
        if change[0] == current:
            del self._pending[key]
            return False
        return True

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def __len__(self) -> int:
        return len(self._pending)

    def take(self) -> dict[str, tuple[V, V]]:
        """The pending changes, as (previous, current); the tracker is empty afterwards."""
        out = {key: (change[0], change[1]) for key, change in self._pending.items()}
        self._pending.clear()
        return out


class EndpointSliceCache:
    """The slices of each Service, so a change to one slice yields the Service's whole endpoint map."""

    def __init__(self) -> None:
        self._slices: dict[
            tuple[str, str], dict[str, dict[ServicePortName, tuple[Endpoint, ...]]]
        ] = {}

    def merged(self, service: tuple[str, str]) -> dict[ServicePortName, tuple[Endpoint, ...]]:
        return merge_endpoint_maps(self._slices.get(service, {}).values())

    def update(
        self, old: Obj | None, new: Obj | None
    ) -> list[tuple[tuple[str, str], EndpointsMap, EndpointsMap]]:
        """Apply a slice event; (service, endpoints before, endpoints after) for each Service it touched."""
        touched: list[tuple[str, str]] = []
        before: dict[tuple[str, str], EndpointsMap] = {}
        for obj in (old, new):
            owner = slice_service(obj) if obj is not None else None
            if owner is not None and owner not in before:
                before[owner] = self.merged(owner)
                touched.append(owner)
        if old is not None and (owner := slice_service(old)) is not None:
            slices = self._slices.get(owner, {})
            slices.pop(_meta(old)[1], None)
            if not slices:
                self._slices.pop(owner, None)
        if new is not None and (owner := slice_service(new)) is not None:
            self._slices.setdefault(owner, {})[_meta(new)[1]] = endpoints_from_slice(new)
        return [(svc, before[svc], self.merged(svc)) for svc in touched]


# ------------------------------------------------------------------ snapshot


@dataclass(frozen=True)
class Snapshot:
    """The whole desired state at one sync: service ports and all their endpoints (ready or not)."""

    services: ServicePorts = field(default_factory=dict)
    endpoints: EndpointsMap = field(default_factory=dict)
    generation: int = 0

    def endpoints_of(self, name: ServicePortName) -> tuple[Endpoint, ...]:
        return self.endpoints.get(name, ())


@dataclass(frozen=True)
class SyncDelta:
    """What a commit changed, so a backend may do less than a full render."""

    added: frozenset[ServicePortName] = frozenset()
    updated: frozenset[ServicePortName] = frozenset()
    removed: frozenset[ServicePortName] = frozenset()
    endpoints_changed: frozenset[ServicePortName] = frozenset()
    # Endpoints of UDP ports that went away: kernel modes flush their conntrack entries.
    stale_udp_endpoints: tuple[tuple[ServicePortName, Endpoint], ...] = ()
    # When the Endpoints changes were made (Unix seconds), for network_programming_duration.
    trigger_times: tuple[float, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.updated or self.removed or self.endpoints_changed)


class ProxyState:
    """The trackers and the current snapshot: informer handlers in, (snapshot, delta) out."""

    def __init__(self) -> None:
        self.service_changes: ChangeTracker[Mapping[ServicePortName, ServicePort]] = ChangeTracker()
        self.endpoint_changes: ChangeTracker[EndpointsMap] = ChangeTracker()
        self.slices = EndpointSliceCache()
        self._trigger_times: dict[str, float] = {}
        self.snapshot = Snapshot()
        self.problems: list[str] = []  # adapter complaints since last read, for the caller to log

    @property
    def pending(self) -> bool:
        return self.service_changes.pending or self.endpoint_changes.pending

    # The three handlers have the informer's signature: (event type, old, new).

    def on_service(self, _type: str, old: Obj | None, new: Obj | None) -> bool:
        """Record a Service event; True when a sync is needed."""
        obj = new if new is not None else old
        if obj is None:
            return False
        ns, name = _meta(obj)
        before = service_ports(old) if old is not None else {}
        after = service_ports(new, self.problems) if new is not None else {}
        return self.service_changes.record(f"{ns}/{name}", before, after)

    def on_endpoints(self, _type: str, old: Obj | None, new: Obj | None) -> bool:
        """Record an Endpoints event; True when a sync is needed."""
        obj = new if new is not None else old
        if obj is None:
            return False
        ns, name = _meta(obj)
        before = endpoints_from_endpoints(old) if old is not None else {}
        after = endpoints_from_endpoints(new) if new is not None else {}
        return self._record_endpoints(f"{ns}/{name}", before, after, new)

    def on_endpoint_slice(self, _type: str, old: Obj | None, new: Obj | None) -> bool:
        """Record an EndpointSlice event; True when a sync is needed."""
        needed = False
        for (ns, name), before, after in self.slices.update(old, new):
            needed |= self._record_endpoints(f"{ns}/{name}", before, after, new)
        return needed

    def _record_endpoints(
        self, key: str, before: EndpointsMap, after: EndpointsMap, new: Obj | None
    ) -> bool:
        pending = self.endpoint_changes.record(key, before, after)
        trigger = parse_trigger_time(new) if new is not None else None
        if pending and trigger is not None:
            # The oldest trigger of a pending change is the one the user has waited for longest.
            self._trigger_times.setdefault(key, trigger)
        elif not pending:
            self._trigger_times.pop(key, None)
        return pending

    def commit(self) -> tuple[Snapshot, SyncDelta]:
        """Fold the pending changes into a new snapshot."""
        old = self.snapshot
        services = dict(old.services)
        endpoints = dict(old.endpoints)
        added: set[ServicePortName] = set()
        updated: set[ServicePortName] = set()
        removed: set[ServicePortName] = set()
        for _key, (before, after) in self.service_changes.take().items():
            for name in before.keys() - after.keys():
                services.pop(name, None)
                removed.add(name)
            for name, port in after.items():
                previous = services.get(name)
                services[name] = port
                if previous is None:
                    added.add(name)
                elif previous != port:
                    updated.add(name)
        changed_eps: set[ServicePortName] = set()
        stale_udp: list[tuple[ServicePortName, Endpoint]] = []
        for _key, (before, after) in self.endpoint_changes.take().items():
            for name in before.keys() | after.keys():
                was, now = before.get(name, ()), after.get(name, ())
                if was == now:
                    continue
                changed_eps.add(name)
                if now:
                    endpoints[name] = now
                else:
                    endpoints.pop(name, None)
                if name.protocol == "UDP":
                    keep = {ep.key for ep in now if ep.ready}
                    stale_udp.extend((name, ep) for ep in was if ep.ready and ep.key not in keep)
        triggers = tuple(sorted(self._trigger_times.values()))
        self._trigger_times.clear()
        # A port removed and re-added in one commit is an update to whoever renders it.
        both = added & removed
        added -= both
        removed -= both
        updated |= both
        self.snapshot = Snapshot(services, endpoints, old.generation + 1)
        delta = SyncDelta(
            frozenset(added),
            frozenset(updated),
            frozenset(removed),
            frozenset(changed_eps),
            tuple(stale_udp),
            triggers,
        )
        return self.snapshot, delta

    def take_problems(self) -> list[str]:
        out, self.problems = self.problems, []
        return out


# -------------------------------------------------------- endpoint selection


def usable_endpoints(
    port: ServicePort,
    endpoints: Sequence[Endpoint],
    *,
    node_name: str | None,
    external: bool,
) -> tuple[Endpoint, ...]:
    """The endpoints traffic may go to, by the traffic policies (KEP-2086, KEP-1669).

    `external`: traffic that came in through a NodePort, an external IP or a
    load-balancer IP (externalTrafficPolicy), else cluster traffic
    (internalTrafficPolicy). Ready endpoints first; when none is ready,
    endpoints that are terminating but still serving, so that a rolling
    update does not drop connections.
    """
    local_only = port.external_local if external else port.internal_local
    candidates = [ep for ep in endpoints if not local_only or ep.node_name == node_name]
    ready = tuple(ep for ep in candidates if ep.ready)
    if ready:
        return ready
    return tuple(ep for ep in candidates if ep.serving and ep.terminating)


class ProxyBackend(Protocol):
    """A proxy mode: renders the snapshot and applies it, in one step."""

    def sync(self, snapshot: Snapshot, delta: SyncDelta) -> None:
        """Make the data path match `snapshot`; raise to ask for a retry at the next sync."""
        ...


# A handler of informer events (the Informer's Handler shape) that reports whether a sync is needed.
EventHandler = Callable[[str, Obj | None, Obj | None], bool]
