"""Pure: which pods back a Service, on which port numbers, and whether they are ready.

The Endpoints and EndpointSlice controllers both start from this one answer,
then lay it out their own way (subsets, or slices of at most N endpoints).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubesvc.api import selectors

Obj = dict[str, Any]

TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_CONTROLLER = "endpointslice-controller.k8s.io"
MIRROR_CONTROLLER = "endpointslicemirroring-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"


@dataclass(frozen=True, order=True)
class EndpointPort:
    name: str
    port: int
    protocol: str
    app_protocol: str | None = None

    def to_json(self) -> Obj:
        out: Obj = {"port": self.port, "protocol": self.protocol}
        if self.name:
            out["name"] = self.name
        if self.app_protocol:
            out["appProtocol"] = self.app_protocol
        return out


@dataclass(frozen=True)
class Backend:
    """One pod behind a Service: its address, readiness, and the ports it serves."""

    ip: str
    ready: bool  # counts as ready (publishNotReadyAddresses makes every pod count)
    serving: bool  # the pod's own readiness, whatever the Service says
    terminating: bool
    ports: tuple[EndpointPort, ...]
    pod_name: str
    pod_namespace: str
    pod_uid: str
    node_name: str | None
    hostname: str | None
    # Every IP of the pod (status.podIPs), so slices of each address family find theirs.
    ips: tuple[str, ...] = ()

    def ip_of_family(self, address_type: str) -> str | None:
        """The pod's IP of `address_type` ("IPv4" or "IPv6"), or None when it has none."""
        want_v6 = address_type == "IPv6"
        for ip in self.ips or (self.ip,):
            if (":" in ip) == want_v6:
                return ip
        return None

    def target_ref(self) -> Obj:
        return {
            "kind": "Pod",
            "namespace": self.pod_namespace,
            "name": self.pod_name,
            "uid": self.pod_uid,
        }


def service_selector(service: Obj) -> selectors.LabelSelector | None:
    """The Service's selector, or None when it has none (its Endpoints are the user's)."""
    selector = (service.get("spec") or {}).get("selector")
    if not selector or not isinstance(selector, dict):
        return None
    return selectors.from_set(selector, validate=False)


def pod_is_ready(pod: Obj) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def _container_port(pod: Obj, name: str, protocol: str) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == name and port.get("protocol", "TCP") == protocol:
                return port.get("containerPort")
    return None


def resolve_ports(service: Obj, pod: Obj) -> tuple[EndpointPort, ...]:
    """The Service's ports as this pod serves them; a named targetPort is looked up in the pod.

    A port whose name the pod does not define is left out for that pod, as Kubernetes does.
    """
    out = []
    for port in (service.get("spec") or {}).get("ports") or []:
        protocol = port.get("protocol", "TCP")
        target = port.get("targetPort", port.get("port"))
        number = _container_port(pod, target, protocol) if isinstance(target, str) else target
        if isinstance(number, int) and number > 0:
            out.append(
                EndpointPort(port.get("name") or "", number, protocol, port.get("appProtocol"))
            )
    return tuple(out)


def _pod_ips(status: Obj, primary: str) -> tuple[str, ...]:
    ips = [
        entry["ip"]
        for entry in status.get("podIPs") or []
        if isinstance(entry, dict) and isinstance(entry.get("ip"), str) and entry["ip"]
    ]
    if primary not in ips:
        ips.insert(0, primary)
    return tuple(ips)


def backends_for(
    service: Obj, pods: list[Obj], *, include_terminating: bool = False
) -> list[Backend]:
    """The pods that back `service` (already filtered by selector and namespace), sorted by IP.

    Terminating pods are left out unless `publishNotReadyAddresses` is set, as the
    Endpoints controller does; `include_terminating` keeps them (not ready, unless
    publishNotReadyAddresses) for EndpointSlices, whose `serving`/`terminating`
    conditions describe them.
    """
    spec = service.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    service_name = service["metadata"]["name"]
    out = []
    for pod in pods:
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if not ip or status.get("phase") in ("Succeeded", "Failed"):
            continue
        meta = pod["metadata"]
        terminating = bool(meta.get("deletionTimestamp"))
        if terminating and not (publish_not_ready or include_terminating):
            continue
        serving = pod_is_ready(pod)
        pod_spec = pod.get("spec") or {}
        hostname = pod_spec.get("hostname") if pod_spec.get("subdomain") == service_name else None
        out.append(
            Backend(
                ip=ip,
                ready=(serving and not terminating) or publish_not_ready,
                serving=serving,
                terminating=terminating,
                ports=resolve_ports(service, pod),
                pod_name=meta["name"],
                pod_namespace=meta.get("namespace", ""),
                pod_uid=meta.get("uid", ""),
                node_name=pod_spec.get("nodeName") or None,
                hostname=hostname or None,
                ips=_pod_ips(status, ip),
            )
        )
    out.sort(key=lambda b: (b.ip, b.pod_name))
    return out


def _address(backend: Backend) -> Obj:
    address: Obj = {"ip": backend.ip, "targetRef": backend.target_ref()}
    if backend.node_name:
        address["nodeName"] = backend.node_name
    if backend.hostname:
        address["hostname"] = backend.hostname
    return address


def endpoints_subsets(service: Obj, backends: list[Backend]) -> list[Obj]:
    """Endpoints subsets: backends grouped by the exact port numbers they serve.

    Pods that resolve a named targetPort to different numbers land in different
    subsets. A headless Service without ports still lists its addresses.
    """
    has_ports = bool((service.get("spec") or {}).get("ports"))
    groups: dict[tuple[EndpointPort, ...], tuple[list[Obj], list[Obj]]] = {}
    for backend in backends:
        if has_ports and not backend.ports:
            continue
        ports = tuple(sorted(backend.ports))
        ready, not_ready = groups.setdefault(ports, ([], []))
        (ready if backend.ready else not_ready).append(_address(backend))
    subsets = []
    for ports, (ready, not_ready) in sorted(groups.items()):
        subset: Obj = {}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        if ports:
            subset["ports"] = [p.to_json() for p in ports]
        subsets.append(subset)
    return subsets


def is_headless(service: Obj) -> bool:
    return (service.get("spec") or {}).get("clusterIP") == "None"
