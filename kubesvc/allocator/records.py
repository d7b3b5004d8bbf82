"""Allocation records: one storage key per allocated ClusterIP or node port (KEP-1880 style).

Pure: keys, record shapes, and reading a Service's claims. A record holds a
`parentRef` naming the Service that owns the value. Uniqueness across API
servers comes from storage: a record is created with `Create` (fails if the
key exists) in the same transaction as the Service write, never from memory.

ClusterIP records look like Kubernetes' `networking.k8s.io/v1` IPAddress
objects; `parentRef` also carries the Service's uid, so a Service deleted and
recreated under the same name is told apart from its predecessor. Node ports
have no Kubernetes object (Kubernetes keeps a bitmap), so their records use an
internal kind of the same shape.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubesvc.api.validation import needs_health_check_port

Obj = dict[str, Any]

IP_PREFIX = "/registry/ipaddresses/"
NODE_PORT_PREFIX = "/registry/servicenodeports/"
SERVICE_PREFIX = "/registry/services/"

MANAGED_BY = "ipallocator.k8s.io"


@dataclass(frozen=True)
class Owner:
    """The Service a value belongs to."""

    namespace: str
    name: str
    uid: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    def same_service(self, other: Owner) -> bool:
        """The same Service object: uids must agree when both are known (a recreated
        Service with the same name is another object)."""
        if (self.namespace, self.name) != (other.namespace, other.name):
            return False
        return not (self.uid and other.uid) or self.uid == other.uid


def ip_key(ip: str) -> str:
    return IP_PREFIX + ip


def node_port_key(port: int) -> str:
    return f"{NODE_PORT_PREFIX}{port}"


def service_key(namespace: str, name: str) -> str:
    return f"{SERVICE_PREFIX}{namespace}/{name}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parent_ref(owner: Owner) -> Obj:
    return {
        "group": "",
        "resource": "services",
        "namespace": owner.namespace,
        "name": owner.name,
        "uid": owner.uid,
    }


def ip_record(ip: str, owner: Owner) -> Obj:
    """The record that allocates `ip` to `owner`."""
    family = "IPv6" if ":" in ip else "IPv4"
    return {
        "kind": "IPAddress",
        "apiVersion": "networking.k8s.io/v1",
        "metadata": {
            "name": ip,
            "labels": {
                "ipaddress.kubernetes.io/ip-family": family,
                "ipaddress.kubernetes.io/managed-by": MANAGED_BY,
            },
            "creationTimestamp": _now(),
        },
        "spec": {"parentRef": _parent_ref(owner)},
    }


def node_port_record(port: int, owner: Owner) -> Obj:
    """The record that allocates node port `port` to `owner`."""
    return {
        "kind": "ServiceNodePort",
        "apiVersion": "internal.kubesvc.io/v1",
        "metadata": {"name": str(port), "creationTimestamp": _now()},
        "spec": {"port": port, "parentRef": _parent_ref(owner)},
    }


def record_owner(record: Mapping[str, Any]) -> Owner | None:
    """Whom a record allocates its value to (None for a malformed record)."""
    spec = record.get("spec")
    ref = spec.get("parentRef") if isinstance(spec, Mapping) else None
    if not isinstance(ref, Mapping):
        return None
    namespace, name, uid = ref.get("namespace"), ref.get("name"), ref.get("uid") or ""
    if not isinstance(namespace, str) or not isinstance(name, str) or not isinstance(uid, str):
        return None
    return Owner(namespace, name, uid)


def ip_of_record(record: Mapping[str, Any]) -> str | None:
    meta = record.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return name if isinstance(name, str) else None


def port_of_record(record: Mapping[str, Any]) -> int | None:
    spec = record.get("spec")
    port = spec.get("port") if isinstance(spec, Mapping) else None
    if isinstance(port, int) and not isinstance(port, bool):
        return port
    meta = record.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return int(name) if isinstance(name, str) and name.isdigit() else None


# ------------------------------------------------------- what a Service claims


def service_owner(svc: Mapping[str, Any]) -> Owner:
    meta = svc.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    return Owner(
        str(meta.get("namespace") or ""), str(meta.get("name") or ""), meta.get("uid") or ""
    )


def _spec(svc: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = svc.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def claimed_ips(svc: Mapping[str, Any]) -> list[str]:
    """The ClusterIPs a Service holds: none for ExternalName and headless Services."""
    spec = _spec(svc)
    if spec.get("type") == "ExternalName":
        return []
    ips = spec.get("clusterIPs")
    if not isinstance(ips, list) or not ips:
        ips = [spec.get("clusterIP")]
    out: list[str] = []
    for ip in ips:
        if isinstance(ip, str) and ip and ip != "None" and ip not in out:
            out.append(ip)
    return out


def claimed_node_ports(svc: Mapping[str, Any]) -> list[int]:
    """The node ports a Service holds (one record per number, whatever the protocol),
    its health check port included."""
    spec = _spec(svc)
    if spec.get("type") not in ("NodePort", "LoadBalancer"):
        return []
    out: list[int] = []
    for port in spec.get("ports") or []:
        if not isinstance(port, Mapping):
            continue
        number = port.get("nodePort")
        if (
            isinstance(number, int)
            and not isinstance(number, bool)
            and number
            and number not in out
        ):
            out.append(number)
    health = spec.get("healthCheckNodePort")
    if needs_health_check_port(spec) and isinstance(health, int) and health and health not in out:
        out.append(health)
    return out


def endpoint_addresses(obj: Mapping[str, Any]) -> Iterator[str]:
    """The IP addresses an Endpoints or EndpointSlice object points at (for the owner check)."""
    kind = obj.get("kind")
    if kind == "Endpoints":
        for subset in obj.get("subsets") or []:
            if not isinstance(subset, Mapping):
                continue
            for key in ("addresses", "notReadyAddresses"):
                for address in subset.get(key) or []:
                    if isinstance(address, Mapping) and isinstance(address.get("ip"), str):
                        yield address["ip"]
    elif kind == "EndpointSlice" and obj.get("addressType") in ("IPv4", "IPv6"):
        for endpoint in obj.get("endpoints") or []:
            if not isinstance(endpoint, Mapping):
                continue
            for address in endpoint.get("addresses") or []:
                if isinstance(address, str):
                    yield address


def canonical_ip(text: str) -> str:
    """The address as record keys spell it (IPv6 compressed, lower case)."""
    return str(ipaddress.ip_address(text))


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
