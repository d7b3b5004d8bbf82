"""What a Service write asks of the allocators (pure, table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from kubesvc.allocator.plan import plan_service
from kubesvc.allocator.ranges import parse_port_range, parse_service_cidr

CIDR = parse_service_cidr("127.96.0.0/24")
PORTS = parse_port_range("30000-30099")


def svc(svc_type: str = "ClusterIP", ip: str | None = None, *ports: dict[str, Any], **spec: Any):
    body: dict[str, Any] = {"type": svc_type, "ports": list(ports) or [{"port": 80}]}
    if ip is not None:
        body["clusterIP"] = ip
        body["clusterIPs"] = [ip]
    body.update(spec)
    return {"metadata": {"name": "web", "namespace": "default", "uid": "u1"}, "spec": body}


@pytest.mark.parametrize(
    ("new", "old", "expected"),
    [
        # create
        (svc(), None, {"dynamic_ip": True}),
        (svc(ip=""), None, {"dynamic_ip": True}),
        (svc(ip="127.96.0.9"), None, {"claim_ips": ["127.96.0.9"]}),
        (svc(ip="None"), None, {}),
        (svc("ExternalName", externalName="example.com"), None, {}),
        (svc("NodePort"), None, {"dynamic_ip": True, "dynamic_ports": [0]}),
        (
            svc("NodePort", None, {"port": 80, "nodePort": 30005}, {"port": 81}),
            None,
            {"dynamic_ip": True, "claim_ports": [30005], "dynamic_ports": [1]},
        ),
        (
            # TCP and UDP on one node port: one record.
            svc(
                "NodePort",
                None,
                {"port": 53, "protocol": "TCP", "nodePort": 30053},
                {"port": 53, "protocol": "UDP", "nodePort": 30053},
            ),
            None,
            {"dynamic_ip": True, "claim_ports": [30053]},
        ),
        (svc("LoadBalancer"), None, {"dynamic_ip": True, "dynamic_ports": [0]}),
        (svc("LoadBalancer", allocateLoadBalancerNodePorts=False), None, {"dynamic_ip": True}),
        # update
        (svc(ip="127.96.0.9"), svc(ip="127.96.0.9"), {}),
        (
            svc("ExternalName", externalName="example.com"),
            svc(ip="127.96.0.9"),
            {"release_ips": ["127.96.0.9"]},
        ),
        (svc(), svc("ExternalName", externalName="x.example"), {"dynamic_ip": True}),
        (
            svc("ClusterIP", "127.96.0.9"),
            svc("NodePort", "127.96.0.9", {"port": 80, "nodePort": 30005}),
            {"release_ports": [30005]},
        ),
        (
            svc("NodePort", "127.96.0.9", {"port": 80, "nodePort": 30005}, {"port": 81}),
            svc("NodePort", "127.96.0.9", {"port": 80, "nodePort": 30005}),
            {"dynamic_ports": [1]},
        ),
        (
            svc("NodePort", "127.96.0.9", {"port": 80, "nodePort": 30006}),
            svc("NodePort", "127.96.0.9", {"port": 80, "nodePort": 30005}),
            {"claim_ports": [30006], "release_ports": [30005]},
        ),
        (
            # An IP outside a since-narrowed range is not re-checked on update.
            svc(ip="10.9.9.9", selector={"app": "x"}),
            svc(ip="10.9.9.9"),
            {},
        ),
    ],
)
def test_plan(new: dict[str, Any], old: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    plan = plan_service(new, old, CIDR, PORTS)
    assert plan.errors == []
    got = {
        key: getattr(plan, key)
        for key in (
            "claim_ips",
            "dynamic_ip",
            "claim_ports",
            "dynamic_ports",
            "release_ips",
            "release_ports",
        )
        if getattr(plan, key)
    }
    assert got == expected


@pytest.mark.parametrize(
    ("new", "message"),
    [
        (
            svc(ip="1.2.3.4"),
            'spec.clusterIPs[0]: Invalid value: "1.2.3.4": provided IP is not in the valid '
            "range. The range of valid IPs is 127.96.0.0/24",
        ),
        (
            svc(ip="127.96.0.0"),  # the network address is never handed out
            'spec.clusterIPs[0]: Invalid value: "127.96.0.0": provided IP is not in the valid range',
        ),
        (
            svc(ip="127.96.0.255"),  # nor the broadcast address
            'spec.clusterIPs[0]: Invalid value: "127.96.0.255": provided IP is not in the valid',
        ),
        (
            svc("NodePort", None, {"port": 80, "nodePort": 80}),
            "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. "
            "The range of valid ports is 30000-30099",
        ),
        (
            svc(ipFamilies=["IPv6"]),
            'spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster',
        ),
        (
            svc(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4"]),
            'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not '
            "configured for dual-stack services",
        ),
    ],
)
def test_plan_errors(new: dict[str, Any], message: str) -> None:
    errors = plan_service(new, None, CIDR, PORTS).errors
    assert len(errors) == 1 and str(errors[0]).startswith(message), errors
