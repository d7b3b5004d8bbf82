"""What a Service write asks of the allocators, and the checks that need only the ranges.

Pure: given the new Service (and the stored one, on update) and the ranges,
say which values to claim, which to release, which to pick dynamically, and
which field errors the request has before storage is asked anything.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubesvc.allocator.ranges import PortRange, ServiceCIDR
from kubesvc.allocator.records import claimed_ips, claimed_node_ports
from kubesvc.api.field import FieldError, Path, forbidden, invalid
from kubesvc.api.validation import needs_health_check_port

CLUSTER_IPS = Path("spec").child("clusterIPs")
PORTS = Path("spec").child("ports")
HEALTH_CHECK_PORT = Path("spec").child("healthCheckNodePort")
# In `dynamic_ports`, this index stands for spec.healthCheckNodePort (the others index spec.ports).
HEALTH_CHECK = -1

ALREADY_ALLOCATED_IP = "provided IP is already allocated"
ALREADY_ALLOCATED_PORT = "provided port is already allocated"


def ip_out_of_range(cidr: ServiceCIDR) -> str:
    return f"provided IP is not in the valid range. The range of valid IPs is {cidr}"


def port_out_of_range(ports: PortRange) -> str:
    return f"provided port is not in the valid range. The range of valid ports is {ports}"


def ip_range_full(cidr: ServiceCIDR) -> str:
    # Kubernetes says "failed to allocate a serviceIP: range is full" (a 500); we
    # answer 422 and name the range, so the user knows which flag to widen.
    return f"failed to allocate a serviceIP: range is full: no free address in {cidr}"


def port_range_full(ports: PortRange) -> str:
    return f"failed to allocate a nodePort: range is full: no free port in {ports}"


@dataclass
class ServicePlan:
    """The allocation work of one Service write.

    `claim_ips` / `claim_ports`: values the user chose that this write newly
    holds (they must be free). `dynamic_ip`: pick a ClusterIP. `dynamic_ports`:
    indexes of `spec.ports` that need a node port picked. `release_*`: values the
    stored Service held that the new one does not. `port_paths` says where a
    claimed port sits, for error messages.
    """

    claim_ips: list[str] = field(default_factory=list)
    dynamic_ip: bool = False
    claim_ports: list[int] = field(default_factory=list)
    dynamic_ports: list[int] = field(default_factory=list)
    release_ips: list[str] = field(default_factory=list)
    release_ports: list[int] = field(default_factory=list)
    port_paths: dict[int, str] = field(default_factory=dict)
    errors: list[FieldError] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.claim_ips
            or self.dynamic_ip
            or self.claim_ports
            or self.dynamic_ports
            or self.release_ips
            or self.release_ports
        )


def _spec(svc: Mapping[str, Any] | None) -> Mapping[str, Any]:
    spec = svc.get("spec") if svc is not None else None
    return spec if isinstance(spec, Mapping) else {}


def needs_cluster_ip(svc: Mapping[str, Any]) -> bool:
    """Whether the Service should get a ClusterIP picked: not ExternalName, not headless, none set."""
    spec = _spec(svc)
    if spec.get("type") == "ExternalName":
        return False
    ips = spec.get("clusterIPs")
    first = ips[0] if isinstance(ips, list) and ips else spec.get("clusterIP")
    return first in (None, "")


def _family_errors(spec: Mapping[str, Any]) -> list[FieldError]:
    """This cluster is IPv4 single-stack: refuse what asks for IPv6 or for two families."""
    errs: list[FieldError] = []
    families = spec.get("ipFamilies")
    if isinstance(families, list):
        for i, family in enumerate(families):
            if family == "IPv6":
                errs.append(
                    invalid(
                        Path("spec").child("ipFamilies").index(i),
                        family,
                        "not configured on this cluster",
                    )
                )
    if spec.get("ipFamilyPolicy") == "RequireDualStack":
        errs.append(
            invalid(
                Path("spec").child("ipFamilyPolicy"),
                "RequireDualStack",
                "this cluster is not configured for dual-stack services",
            )
        )
    ips = spec.get("clusterIPs")
    if isinstance(ips, list) and len(ips) > 1 and not errs:
        errs.append(
            invalid(
                CLUSTER_IPS.index(1),
                ips[1],
                "this cluster is not configured for dual-stack services",
            )
        )
    return errs


def _wants_node_ports(spec: Mapping[str, Any]) -> bool:
    svc_type = spec.get("type")
    if svc_type == "NodePort":
        return True
    return svc_type == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not False


def plan_service(
    new: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    cidr: ServiceCIDR,
    ports: PortRange,
) -> ServicePlan:
    """The allocation work for writing `new` over `old` (None on create).

    Values the stored Service already holds are neither re-checked nor
    re-claimed, so a Service whose IP fell out of a since-narrowed range can
    still be updated (the repair loop reports it instead).
    """
    plan = ServicePlan()
    spec = _spec(new)
    old_ips = claimed_ips(old) if old is not None else []
    new_ips = claimed_ips(new)
    if spec.get("type") != "ExternalName" and (new_ips or needs_cluster_ip(new)):
        plan.errors.extend(_family_errors(spec))
    if plan.errors:
        return plan
    for i, ip in enumerate(new_ips[:1]):
        if ip in old_ips:
            continue
        if cidr.offset_of(ip) is None:
            plan.errors.append(invalid(CLUSTER_IPS.index(i), ip, ip_out_of_range(cidr)))
        else:
            plan.claim_ips.append(str(ipaddress.ip_address(ip)))
    plan.dynamic_ip = needs_cluster_ip(new)
    plan.release_ips = [ip for ip in old_ips if ip not in new_ips]

    old_ports = claimed_node_ports(old) if old is not None else []
    new_ports = claimed_node_ports(new)
    for i, port in enumerate(spec.get("ports") or []):
        if not isinstance(port, Mapping):
            continue
        number = port.get("nodePort")
        path = PORTS.index(i).child("nodePort")
        if isinstance(number, int) and not isinstance(number, bool) and number:
            if number in old_ports or number in plan.port_paths:
                continue
            plan.port_paths[number] = path
            if ports.offset_of(number) is None:
                plan.errors.append(invalid(path, number, port_out_of_range(ports)))
            else:
                plan.claim_ports.append(number)
        elif _wants_node_ports(spec):
            plan.dynamic_ports.append(i)
    if needs_health_check_port(spec):
        number = spec.get("healthCheckNodePort")
        if isinstance(number, int) and not isinstance(number, bool) and number:
            if number not in old_ports and number not in plan.port_paths:
                plan.port_paths[number] = HEALTH_CHECK_PORT
                if ports.offset_of(number) is None:
                    plan.errors.append(invalid(HEALTH_CHECK_PORT, number, port_out_of_range(ports)))
                else:
                    plan.claim_ports.append(number)
        else:
            plan.dynamic_ports.append(HEALTH_CHECK)
    plan.release_ports = [p for p in old_ports if p not in new_ports]
    return plan


def range_full_error(what: str, cidr: ServiceCIDR, ports: PortRange, index: int = 0) -> FieldError:
    """The field error for an exhausted range (`what` is "ip" or "port")."""
    if what == "ip":
        return forbidden(CLUSTER_IPS, ip_range_full(cidr))
    if index == HEALTH_CHECK:
        return forbidden(HEALTH_CHECK_PORT, port_range_full(ports))
    return forbidden(PORTS.index(index).child("nodePort"), port_range_full(ports))
