"""Every validation rule with a valid and an invalid case, as a table.

A row changes one field of a valid object and names the field error the
API must answer with (None: the object stays valid).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from kubesvc.api import defaults, validation
from kubesvc.api.field import (
    DUPLICATE,
    FORBIDDEN,
    INVALID,
    NOT_SUPPORTED,
    REQUIRED,
    TOO_LONG,
    TOO_MANY,
    TYPE_INVALID,
)
from tests.api.objects import DELETE, KINDS, endpoint_slice, endpoints, pod, service, with_field

Row = tuple[str, str, Any, str | None, str | None]  # path, value, error field, error reason

LONG_LABEL = "a" * 64

SERVICE_ROWS: list[Row] = [
    # name: DNS-1035 label
    ("metadata.name", "my-service", None, None),
    ("metadata.name", "1-service", "metadata.name", INVALID),
    ("metadata.name", "My-Service", "metadata.name", INVALID),
    ("metadata.name", "a" * 63, None, None),
    ("metadata.name", LONG_LABEL, "metadata.name", INVALID),
    ("metadata.name", DELETE, "metadata.name", REQUIRED),
    ("metadata.namespace", DELETE, "metadata.namespace", REQUIRED),
    ("metadata.namespace", "Bad_NS", "metadata.namespace", INVALID),
    ("metadata.labels", {"app": "ok", "example.com/tier": "web"}, None, None),
    ("metadata.labels", {"bad key!": "x"}, "metadata.labels", INVALID),
    ("metadata.labels", {"app": "-bad"}, "metadata.labels", INVALID),
    ("metadata.labels", {"app": 5}, "metadata.labels", TYPE_INVALID),
    ("metadata.annotations", {"note": "x" * 1000}, None, None),
    ("metadata.annotations", {"note": "x" * (256 * 1024)}, "metadata.annotations", TOO_LONG),
    # port names: the seed's examples
    ("spec.ports[0].name", "123-abc", None, None),
    ("spec.ports[0].name", "web", None, None),
    ("spec.ports[0].name", "123_abc", "spec.ports[0].name", INVALID),
    ("spec.ports[0].name", "-web", "spec.ports[0].name", INVALID),
    ("spec.ports[0].name", "Web", "spec.ports[0].name", INVALID),
    # several ports need names, unique ones
    ("spec.ports[1]", {"name": "https", "port": 443}, "spec.ports[0].name", REQUIRED),
    ("spec.ports", [{"name": "a", "port": 80}, {"name": "b", "port": 443}], None, None),
    (
        "spec.ports",
        [{"name": "a", "port": 80}, {"name": "a", "port": 443}],
        "spec.ports[1].name",
        DUPLICATE,
    ),
    # same port number is fine across protocols, not within one
    (
        "spec.ports",
        [{"name": "a", "port": 53, "protocol": "UDP"}, {"name": "b", "port": 53}],
        None,
        None,
    ),
    (
        "spec.ports",
        [{"name": "a", "port": 53}, {"name": "b", "port": 53}],
        "spec.ports[1]",
        DUPLICATE,
    ),
    # port numbers
    ("spec.ports[0].port", 65535, None, None),
    ("spec.ports[0].port", 0, "spec.ports[0].port", INVALID),
    ("spec.ports[0].port", 65536, "spec.ports[0].port", INVALID),
    ("spec.ports[0].port", "80", "spec.ports[0].port", TYPE_INVALID),
    ("spec.ports", [], "spec.ports", REQUIRED),
    # protocol
    ("spec.ports[0].protocol", "SCTP", None, None),
    ("spec.ports[0].protocol", "UDP", None, None),
    ("spec.ports[0].protocol", "HTTP", "spec.ports[0].protocol", NOT_SUPPORTED),
    ("spec.ports[0].protocol", "tcp", "spec.ports[0].protocol", NOT_SUPPORTED),
    # targetPort: number or IANA service name
    ("spec.ports[0].targetPort", "http", None, None),
    ("spec.ports[0].targetPort", "http-alt", None, None),
    ("spec.ports[0].targetPort", 70000, "spec.ports[0].targetPort", INVALID),
    ("spec.ports[0].targetPort", "a-very-long-port-name", "spec.ports[0].targetPort", INVALID),
    ("spec.ports[0].targetPort", "http--x", "spec.ports[0].targetPort", INVALID),
    ("spec.ports[0].targetPort", "8080x-", "spec.ports[0].targetPort", INVALID),
    ("spec.ports[0].targetPort", "web_1", "spec.ports[0].targetPort", INVALID),
    ("spec.ports[0].targetPort", [80], "spec.ports[0].targetPort", TYPE_INVALID),
    # nodePort
    ("spec.ports[0].nodePort", 30080, "spec.ports[0].nodePort", FORBIDDEN),
    ("spec.type", "NodePort", None, None),
    # type
    ("spec.type", "LoadBalancer", None, None),
    ("spec.type", "Ingress", "spec.type", NOT_SUPPORTED),
    # clusterIP
    ("spec.clusterIP", "None", None, None),
    ("spec.clusterIP", "10.0.0.11", None, None),
    ("spec.clusterIP", "fd00::11", None, None),
    ("spec.clusterIP", "10.0.0.300", "spec.clusterIP", INVALID),
    ("spec.clusterIP", "my-ip", "spec.clusterIP", INVALID),
    ("spec.clusterIPs", ["10.0.0.11", "10.0.0.12"], "spec.clusterIPs", INVALID),
    # sessionAffinity
    ("spec.sessionAffinity", "ClientIP", None, None),
    ("spec.sessionAffinity", "Cookie", "spec.sessionAffinity", NOT_SUPPORTED),
    (
        "spec.sessionAffinityConfig",
        {"clientIP": {"timeoutSeconds": 60}},
        "spec.sessionAffinityConfig",
        FORBIDDEN,
    ),
    # selector keys and values are label keys and values
    ("spec.selector", {"app": "my_app.v1"}, None, None),
    ("spec.selector", {"app": "my app"}, "spec.selector", INVALID),
    # externalIPs
    ("spec.externalIPs", ["192.0.2.10"], None, None),
    ("spec.externalIPs", ["0.0.0.0"], "spec.externalIPs[0]", INVALID),
    ("spec.externalIPs", ["not-an-ip"], "spec.externalIPs[0]", INVALID),
    # traffic policies and families
    ("spec.internalTrafficPolicy", "Local", None, None),
    ("spec.internalTrafficPolicy", "Nearest", "spec.internalTrafficPolicy", NOT_SUPPORTED),
    ("spec.externalTrafficPolicy", "Local", "spec.externalTrafficPolicy", INVALID),
    ("spec.ipFamilies", ["IPv6"], None, None),
    ("spec.ipFamilies", ["IPv5"], "spec.ipFamilies[0]", NOT_SUPPORTED),
    ("spec.ipFamilies", ["IPv4", "IPv4"], "spec.ipFamilies[1]", DUPLICATE),
    ("spec.ipFamilyPolicy", "RequireDualStack", None, None),
    ("spec.ipFamilyPolicy", "DualStack", "spec.ipFamilyPolicy", NOT_SUPPORTED),
    ("spec.publishNotReadyAddresses", True, None, None),
    ("spec.publishNotReadyAddresses", "yes", "spec.publishNotReadyAddresses", TYPE_INVALID),
    ("spec", "ports: 80", "spec", TYPE_INVALID),
]


def _case_id(kind: str, row: Row) -> str:
    path, value, _field, reason = row
    shown = repr(value) if len(repr(value)) < 40 else repr(value)[:37] + "..."
    return f"{kind}:{path}={shown}->{reason or 'ok'}"


def _check(
    obj: dict[str, Any],
    field: str | None,
    reason: str | None,
    ctx: validation.Context = validation.DEFAULT_CONTEXT,
) -> None:
    defaults.apply_defaults(obj)
    errors = validation.validate(obj, ctx)
    if field is None:
        assert errors == [], [str(e) for e in errors]
    else:
        found = [(e.field, e.reason) for e in errors]
        assert (field, reason) in found, [str(e) for e in errors]


@pytest.mark.parametrize("row", SERVICE_ROWS, ids=[_case_id("svc", r) for r in SERVICE_ROWS])
def test_service_rules(row: Row) -> None:
    path, value, field, reason = row
    _check(with_field(service(), path, value), field, reason)


SERVICE_CASES: list[tuple[str, dict[str, Any], str | None, str | None]] = [
    ("headless without ports", service(clusterIP="None", ports=[]), None, None),
    (
        "nodePort on NodePort",
        service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}]),
        None,
        None,
    ),
    (
        "nodePort out of range",
        service(type="NodePort", ports=[{"port": 80, "nodePort": 70000}]),
        "spec.ports[0].nodePort",
        INVALID,
    ),
    (
        "duplicate nodePort",
        service(
            type="NodePort",
            ports=[
                {"name": "a", "port": 80, "nodePort": 30080},
                {"name": "b", "port": 81, "nodePort": 30080},
            ],
        ),
        "spec.ports[1].nodePort",
        DUPLICATE,
    ),
    (
        "externalTrafficPolicy on NodePort",
        service(type="NodePort", externalTrafficPolicy="Local"),
        None,
        None,
    ),
    (
        "healthCheckNodePort on a Local LoadBalancer",
        service(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=30100),
        None,
        None,
    ),
    (
        "healthCheckNodePort on a Cluster LoadBalancer",
        service(type="LoadBalancer", externalTrafficPolicy="Cluster", healthCheckNodePort=30100),
        "spec.healthCheckNodePort",
        INVALID,
    ),
    (
        "healthCheckNodePort out of range",
        service(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=70000),
        "spec.healthCheckNodePort",
        INVALID,
    ),
    (
        "loadBalancerSourceRanges",
        service(type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/8", " 192.0.2.0/24"]),
        None,
        None,
    ),
    (
        "loadBalancerSourceRanges, not a range",
        service(type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/8", "nowhere"]),
        "spec.loadBalancerSourceRanges[1]",
        INVALID,
    ),
    (
        "loadBalancerSourceRanges on a ClusterIP Service",
        service(loadBalancerSourceRanges=["10.0.0.0/8"]),
        "spec.loadBalancerSourceRanges",
        FORBIDDEN,
    ),
    ("headless NodePort", service(type="NodePort", clusterIP="None"), "spec.clusterIP", INVALID),
    (
        "ExternalName",
        service(type="ExternalName", externalName="db.example.com", selector=None, ports=[]),
        None,
        None,
    ),
    (
        "ExternalName, fully qualified",
        service(type="ExternalName", externalName="db.example.com.", ports=[]),
        None,
        None,
    ),
    (
        "ExternalName without a name",
        service(type="ExternalName", ports=[]),
        "spec.externalName",
        REQUIRED,
    ),
    (
        "ExternalName with a bad name",
        service(type="ExternalName", externalName="DB_host!", ports=[]),
        "spec.externalName",
        INVALID,
    ),
    (
        "ExternalName with a clusterIP",
        service(type="ExternalName", externalName="db.example.com", clusterIP="10.0.0.1"),
        "spec.clusterIP",
        FORBIDDEN,
    ),
    (
        "ClientIP timeout 1",
        service(
            sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 1}}
        ),
        None,
        None,
    ),
    (
        "ClientIP timeout 86400",
        service(
            sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 86400}},
        ),
        None,
        None,
    ),
    (
        "ClientIP timeout 0",
        service(
            sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 0}}
        ),
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        INVALID,
    ),
    (
        "ClientIP timeout 86401",
        service(
            sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 86401}},
        ),
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        INVALID,
    ),
    (
        "dual-stack clusterIPs",
        service(
            clusterIP="10.0.0.11",
            clusterIPs=["10.0.0.11", "fd00::11"],
            ipFamilyPolicy="PreferDualStack",
            ipFamilies=["IPv4", "IPv6"],
        ),
        None,
        None,
    ),
    (
        "clusterIPs disagree",
        service(clusterIP="10.0.0.11", clusterIPs=["10.0.0.12"]),
        "spec.clusterIPs[0]",
        INVALID,
    ),
    (
        "two families on SingleStack",
        service(ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="SingleStack"),
        "spec.ipFamilies",
        INVALID,
    ),
]


@pytest.mark.parametrize(
    ("obj", "field", "reason"), [c[1:] for c in SERVICE_CASES], ids=[c[0] for c in SERVICE_CASES]
)
def test_service_cases(obj: dict[str, Any], field: str | None, reason: str | None) -> None:
    _check(obj, field, reason)


ENDPOINTS_ROWS: list[Row] = [
    ("metadata.name", "my-service.v1", None, None),
    ("metadata.name", "My_Service", "metadata.name", INVALID),
    # the seed's rules for endpoint IPs
    ("subsets[0].addresses[0].ip", "198.18.0.5", None, None),
    ("subsets[0].addresses[0].ip", "2001:db8::5", None, None),
    ("subsets[0].addresses[0].ip", "127.0.0.1", "subsets[0].addresses[0].ip", INVALID),
    ("subsets[0].addresses[0].ip", "127.8.9.10", "subsets[0].addresses[0].ip", INVALID),
    ("subsets[0].addresses[0].ip", "::1", "subsets[0].addresses[0].ip", INVALID),
    ("subsets[0].addresses[0].ip", "169.254.1.1", "subsets[0].addresses[0].ip", INVALID),
    ("subsets[0].addresses[0].ip", "fe80::1", "subsets[0].addresses[0].ip", INVALID),
    ("subsets[0].addresses[0].ip", "224.0.0.251", "subsets[0].addresses[0].ip", INVALID),
    ("subsets[0].addresses[0].ip", "224.0.1.1", None, None),
    ("subsets[0].addresses[0].ip", "ff02::fb", "subsets[0].addresses[0].ip", INVALID),
    ("subsets[0].addresses[0].ip", "0.0.0.0", "subsets[0].addresses[0].ip", INVALID),
    ("subsets[0].addresses[0].ip", "::", "subsets[0].addresses[0].ip", INVALID),
    ("subsets[0].addresses[0].ip", "192.0.2", "subsets[0].addresses[0].ip", INVALID),
    ("subsets[0].addresses[0].ip", DELETE, "subsets[0].addresses[0].ip", REQUIRED),
    ("subsets[0].addresses[0].hostname", "web-0", None, None),
    ("subsets[0].addresses[0].hostname", "web.0", "subsets[0].addresses[0].hostname", INVALID),
    ("subsets[0].addresses[0].nodeName", "node-1.example", None, None),
    ("subsets[0].addresses[0].nodeName", "Node_1", "subsets[0].addresses[0].nodeName", INVALID),
    ("subsets[0].addresses", [], "subsets[0]", REQUIRED),
    ("subsets[0].notReadyAddresses", [{"ip": "192.0.2.43"}], None, None),
    (
        "subsets[0].notReadyAddresses",
        [{"ip": "127.0.0.2"}],
        "subsets[0].notReadyAddresses[0].ip",
        INVALID,
    ),
    ("subsets[0].ports[0].port", 0, "subsets[0].ports[0].port", INVALID),
    ("subsets[0].ports[0].protocol", "ICMP", "subsets[0].ports[0].protocol", NOT_SUPPORTED),
    ("subsets[0].ports[0].name", "web_1", "subsets[0].ports[0].name", INVALID),
    ("subsets[0].ports[1]", {"port": 9377}, "subsets[0].ports[0].name", REQUIRED),
    (
        "subsets[0].ports",
        [{"name": "a", "port": 1}, {"name": "a", "port": 2}],
        "subsets[0].ports[1].name",
        DUPLICATE,
    ),
]


@pytest.mark.parametrize("row", ENDPOINTS_ROWS, ids=[_case_id("ep", r) for r in ENDPOINTS_ROWS])
def test_endpoints_rules(row: Row) -> None:
    path, value, field, reason = row
    _check(with_field(endpoints(), path, value), field, reason)


POD_RANGE = validation.Context(pod_loopback_cidrs=(ipaddress.ip_network("127.244.0.0/16"),))


def test_endpoint_ip_in_host_mode_pod_range_is_accepted_but_other_loopback_is_not() -> None:
    _check(
        with_field(endpoints(), "subsets[0].addresses[0].ip", "127.244.0.7"), None, None, POD_RANGE
    )
    _check(
        with_field(endpoints(), "subsets[0].addresses[0].ip", "127.0.0.1"),
        "subsets[0].addresses[0].ip",
        INVALID,
        POD_RANGE,
    )
    # Without the pod range configured, the pod-range address is loopback like any other.
    _check(
        with_field(endpoints(), "subsets[0].addresses[0].ip", "127.244.0.7"),
        "subsets[0].addresses[0].ip",
        INVALID,
    )


def test_endpoint_ip_may_not_be_another_services_cluster_ip() -> None:
    owners = {"198.18.100.1": "default/redis-master"}
    ctx = validation.Context(cluster_ip_owner=owners.get)
    obj = with_field(endpoints(), "subsets[0].addresses[0].ip", "198.18.100.1")
    defaults.apply_defaults(obj)
    errors = validation.validate(obj, ctx)
    assert [e.field for e in errors] == ["subsets[0].addresses[0].ip"]
    assert "default/redis-master" in errors[0].detail
    _check(with_field(endpoints(), "subsets[0].addresses[0].ip", "198.18.100.2"), None, None, ctx)


SLICE_ROWS: list[Row] = [
    ("addressType", "IPv6", "endpoints[0].addresses[0]", INVALID),
    ("addressType", "IPv5", "addressType", NOT_SUPPORTED),
    ("addressType", DELETE, "addressType", REQUIRED),
    ("endpoints[0].addresses", ["192.0.2.43"], None, None),
    ("endpoints[0].addresses", [], "endpoints[0].addresses", REQUIRED),
    ("endpoints[0].addresses", ["127.0.0.1"], "endpoints[0].addresses[0]", INVALID),
    ("endpoints[0].addresses", ["169.254.0.9"], "endpoints[0].addresses[0]", INVALID),
    (
        "endpoints[0].addresses",
        [f"192.0.2.{i}" for i in range(1, 102)],
        "endpoints[0].addresses",
        TOO_MANY,
    ),
    ("endpoints", [{"addresses": ["192.0.2.1"]}] * 1001, "endpoints", TOO_MANY),
    ("endpoints[0].conditions.ready", "true", "endpoints[0].conditions.ready", TYPE_INVALID),
    ("endpoints[0].conditions.serving", False, None, None),
    ("endpoints[0].hostname", "web-0", None, None),
    ("endpoints[0].hostname", "web_0", "endpoints[0].hostname", INVALID),
    ("ports[0].name", "", None, None),
    ("ports[0].name", "Http", "ports[0].name", INVALID),
    ("ports[1]", {"name": "http", "port": 80}, "ports[1].name", DUPLICATE),
    ("ports[0].port", 70000, "ports[0].port", INVALID),
    ("ports[0].protocol", "QUIC", "ports[0].protocol", NOT_SUPPORTED),
    ("ports[0].appProtocol", "kubernetes.io/h2c", None, None),
    ("ports[0].appProtocol", "h2c!", "ports[0].appProtocol", INVALID),
]


@pytest.mark.parametrize("row", SLICE_ROWS, ids=[_case_id("eps", r) for r in SLICE_ROWS])
def test_endpoint_slice_rules(row: Row) -> None:
    path, value, field, reason = row
    _check(with_field(endpoint_slice(), path, value), field, reason)


def test_fqdn_endpoint_slice() -> None:
    obj = with_field(endpoint_slice(), "addressType", "FQDN")
    _check(with_field(obj, "endpoints[0].addresses", ["db.example.com"]), None, None)
    _check(with_field(obj, "endpoints[0].addresses", ["DB!"]), "endpoints[0].addresses[0]", INVALID)


POD_ROWS: list[Row] = [
    ("metadata.name", "web-0.v1", None, None),
    ("metadata.name", "Web", "metadata.name", INVALID),
    ("spec.containers", [], "spec.containers", REQUIRED),
    ("spec.containers[0].name", "Web", "spec.containers[0].name", INVALID),
    ("spec.containers[0].name", DELETE, "spec.containers[0].name", REQUIRED),
    ("spec.containers[1]", {"name": "web", "image": "x"}, "spec.containers[1].name", DUPLICATE),
    ("spec.containers[0].image", "nginx:1.27", None, None),
    ("spec.containers[0].command", DELETE, "spec.containers[0].image", REQUIRED),
    (
        "spec.containers[0].command",
        "python3 -m http.server",
        "spec.containers[0].command",
        TYPE_INVALID,
    ),
    # container port names are IANA service names
    ("spec.containers[0].ports[0].name", "web-1", None, None),
    ("spec.containers[0].ports[0].name", "123", "spec.containers[0].ports[0].name", INVALID),
    (
        "spec.containers[0].ports[0].name",
        "a-very-long-port-name",
        "spec.containers[0].ports[0].name",
        INVALID,
    ),
    (
        "spec.containers[0].ports[1]",
        {"name": "http", "containerPort": 9377},
        "spec.containers[0].ports[1].name",
        DUPLICATE,
    ),
    (
        "spec.containers[0].ports[0].containerPort",
        0,
        "spec.containers[0].ports[0].containerPort",
        INVALID,
    ),
    (
        "spec.containers[0].ports[0].containerPort",
        DELETE,
        "spec.containers[0].ports[0].containerPort",
        REQUIRED,
    ),
    ("spec.containers[0].ports[0].protocol", "UDP", None, None),
    (
        "spec.containers[0].ports[0].protocol",
        "ICMP",
        "spec.containers[0].ports[0].protocol",
        NOT_SUPPORTED,
    ),
    ("spec.containers[0].env[0].name", "MY.ENV-name", None, None),
    ("spec.containers[0].env[0].name", "1ENV", "spec.containers[0].env[0].name", INVALID),
    (
        "spec.containers[0].env[1]",
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        None,
        None,
    ),
    (
        "spec.containers[0].env[1]",
        {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}},
        "spec.containers[0].env[1].valueFrom.fieldRef.fieldPath",
        NOT_SUPPORTED,
    ),
    ("spec.containers[0].readinessProbe", {"tcpSocket": {"port": 9376}}, None, None),
    ("spec.containers[0].readinessProbe", {"exec": {"command": ["true"]}}, None, None),
    (
        "spec.containers[0].readinessProbe",
        {"periodSeconds": 5},
        "spec.containers[0].readinessProbe",
        REQUIRED,
    ),
    (
        "spec.containers[0].readinessProbe",
        {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
        "spec.containers[0].readinessProbe.tcpSocket",
        FORBIDDEN,
    ),
    (
        "spec.containers[0].readinessProbe.periodSeconds",
        0,
        "spec.containers[0].readinessProbe.periodSeconds",
        INVALID,
    ),
    (
        "spec.containers[0].readinessProbe.initialDelaySeconds",
        -1,
        "spec.containers[0].readinessProbe.initialDelaySeconds",
        INVALID,
    ),
    (
        "spec.containers[0].readinessProbe.httpGet.port",
        "no_such",
        "spec.containers[0].readinessProbe.httpGet.port",
        INVALID,
    ),
    (
        "spec.containers[0].livenessProbe",
        {"exec": {"command": ["true"]}, "successThreshold": 1, "terminationGracePeriodSeconds": 5},
        None,
        None,
    ),
    (
        "spec.containers[0].livenessProbe",
        {"exec": {"command": ["true"]}, "successThreshold": 2},
        "spec.containers[0].livenessProbe.successThreshold",
        INVALID,
    ),
    (
        "spec.containers[0].startupProbe",
        {"tcpSocket": {"port": 9376}, "successThreshold": 3},
        "spec.containers[0].startupProbe.successThreshold",
        INVALID,
    ),
    (
        "spec.containers[0].startupProbe",
        {"tcpSocket": {"port": 9376}, "terminationGracePeriodSeconds": 0},
        "spec.containers[0].startupProbe.terminationGracePeriodSeconds",
        INVALID,
    ),
    ("spec.containers[0].readinessProbe.successThreshold", 3, None, None),
    (
        "spec.containers[0].readinessProbe.terminationGracePeriodSeconds",
        10,
        "spec.containers[0].readinessProbe.terminationGracePeriodSeconds",
        INVALID,
    ),
    # Init containers: run to completion, so no probes and no sidecars (restartPolicy Always).
    ("spec.initContainers", [{"name": "init", "command": ["true"]}], None, None),
    (
        "spec.initContainers",
        [{"name": "web", "command": ["true"]}],
        "spec.containers[0].name",
        DUPLICATE,
    ),
    ("spec.initContainers", [{"name": "init"}], "spec.initContainers[0].image", REQUIRED),
    (
        "spec.initContainers",
        [{"name": "init", "command": ["true"], "readinessProbe": {"exec": {"command": ["true"]}}}],
        "spec.initContainers[0].readinessProbe",
        FORBIDDEN,
    ),
    (
        "spec.initContainers",
        [{"name": "init", "command": ["true"], "livenessProbe": {"tcpSocket": {"port": 80}}}],
        "spec.initContainers[0].livenessProbe",
        FORBIDDEN,
    ),
    (
        "spec.initContainers",
        [{"name": "init", "command": ["true"], "startupProbe": {"tcpSocket": {"port": 80}}}],
        "spec.initContainers[0].startupProbe",
        FORBIDDEN,
    ),
    (
        "spec.initContainers",
        [{"name": "proxy", "command": ["sleep", "300"], "restartPolicy": "Always"}],
        "spec.initContainers[0].restartPolicy",
        FORBIDDEN,
    ),
    (
        "spec.initContainers",
        [{"name": "init", "command": ["true"], "restartPolicy": "OnFailure"}],
        "spec.initContainers[0].restartPolicy",
        NOT_SUPPORTED,
    ),
    ("spec.restartPolicy", "Never", None, None),
    ("spec.restartPolicy", "Sometimes", "spec.restartPolicy", NOT_SUPPORTED),
    ("spec.nodeName", "node-1", None, None),
    ("spec.nodeName", "Node 1", "spec.nodeName", INVALID),
    ("spec.enableServiceLinks", "false", "spec.enableServiceLinks", TYPE_INVALID),
]


@pytest.mark.parametrize("row", POD_ROWS, ids=[_case_id("pod", r) for r in POD_ROWS])
def test_pod_rules(row: Row) -> None:
    path, value, field, reason = row
    _check(with_field(pod(), path, value), field, reason)


NAMESPACE_ROWS: list[Row] = [
    ("metadata.name", "kube-system", None, None),
    ("metadata.name", "my.ns", "metadata.name", INVALID),
    ("metadata.namespace", "default", "metadata.namespace", FORBIDDEN),
    ("status.phase", "Gone", "status.phase", NOT_SUPPORTED),
]


@pytest.mark.parametrize("row", NAMESPACE_ROWS, ids=[_case_id("ns", r) for r in NAMESPACE_ROWS])
def test_namespace_rules(row: Row) -> None:
    path, value, field, reason = row
    _check(with_field(KINDS["Namespace"](), path, value), field, reason)


def test_generate_name_stands_in_for_name() -> None:
    obj = with_field(service(), "metadata.name", DELETE)
    _check(with_field(obj, "metadata.generateName", "my-svc-"), None, None)
    _check(with_field(obj, "metadata.generateName", "My_svc-"), "metadata.generateName", INVALID)


# ---------------------------------------------------------------- updates


def _stored(obj: dict[str, Any]) -> dict[str, Any]:
    defaults.apply_defaults(obj)
    obj["metadata"].update(uid="0b6e7c1e-0000-4000-8000-000000000001", resourceVersion="7")
    return obj


def _update_errors(old: dict[str, Any], path: str, value: Any) -> list[tuple[str, str]]:
    new = with_field(old, path, value)
    return [(e.field, e.reason) for e in validation.validate_update(new, old)]


def test_service_cluster_ip_is_immutable() -> None:
    old = _stored(service(clusterIP="198.18.0.10"))
    assert ("spec.clusterIP", INVALID) in _update_errors(old, "spec.clusterIP", "198.18.0.11")
    assert ("spec.clusterIP", INVALID) in _update_errors(old, "spec.clusterIP", "None")
    assert _update_errors(old, "spec.ports[0].port", 8080) == []
    assert _update_errors(old, "spec.selector", {"app": "other"}) == []


def test_service_cluster_ip_may_change_with_a_type_change_to_external_name() -> None:
    old = _stored(service(clusterIP="198.18.0.10"))
    new = with_field(old, "spec.type", "ExternalName")
    new["spec"].update(externalName="db.example.com", ports=[])
    for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
        del new["spec"][key]
    assert validation.validate_update(new, old) == []


def test_name_namespace_and_uid_are_immutable() -> None:
    old = _stored(service(clusterIP="198.18.0.10"))
    assert ("metadata.name", INVALID) in _update_errors(old, "metadata.name", "other")
    assert ("metadata.uid", INVALID) in _update_errors(old, "metadata.uid", "another-uid")


def test_pod_spec_is_immutable_but_image_and_binding_may_change() -> None:
    old = _stored(pod())
    assert ("spec", FORBIDDEN) in _update_errors(old, "spec.containers[0].command", ["sleep", "1"])
    assert ("spec", FORBIDDEN) in _update_errors(old, "spec.restartPolicy", "Never")
    assert _update_errors(old, "spec.containers[0].image", "busybox:1.36") == []
    assert _update_errors(old, "spec.nodeName", "node-1") == []
    bound = with_field(old, "spec.nodeName", "node-1")
    assert ("spec", FORBIDDEN) in _update_errors(bound, "spec.nodeName", "node-2")


def test_endpoint_slice_address_type_is_immutable() -> None:
    old = _stored(endpoint_slice())
    assert ("addressType", INVALID) in _update_errors(old, "addressType", "IPv6")


# ---------------------------------------------------------------- messages


def test_messages_follow_kubernetes_wording() -> None:
    obj = with_field(service(), "spec.ports[0].name", "123_abc")
    defaults.apply_defaults(obj)
    (err,) = validation.validate(obj)
    assert str(err).startswith(
        'spec.ports[0].name: Invalid value: "123_abc": a lowercase RFC 1123 label'
    )
    assert err.cause() == {
        "reason": "FieldValueInvalid",
        "field": "spec.ports[0].name",
        "message": err.body(),
    }
    obj = with_field(service(), "spec.type", "Ingress")
    defaults.apply_defaults(obj)
    (err,) = validation.validate(obj)
    assert str(err) == (
        'spec.type: Unsupported value: "Ingress": supported values: '
        '"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'
    )


def test_unknown_kind_and_non_objects_are_errors_not_crashes() -> None:
    assert validation.validate({"kind": "Deployment"})[0].reason == NOT_SUPPORTED
    assert validation.validate(["not", "an", "object"])[0].reason == TYPE_INVALID
