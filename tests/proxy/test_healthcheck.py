"""Health check node ports: what a node tells a load balancer about a Local Service."""

from __future__ import annotations

import json

from kubesvc.proxy.healthcheck import Check, desired_checks, response
from kubesvc.proxy.model import Endpoint, ServicePort, ServicePortName, Snapshot

WEB_HTTP = ServicePortName("default", "web", "http", "TCP")
WEB_DNS = ServicePortName("default", "web", "dns", "UDP")
PLAIN = ServicePortName("default", "plain", "", "TCP")


def snapshot() -> Snapshot:
    here = Endpoint("198.18.0.5", 8080, node_name="n1")
    also_here = Endpoint("198.18.0.6", 8080, node_name="n1")
    elsewhere = Endpoint("198.18.1.5", 8080, node_name="n2")
    not_ready = Endpoint("198.18.0.7", 8080, ready=False, node_name="n1")
    return Snapshot(
        {
            WEB_HTTP: ServicePort(WEB_HTTP, ("198.19.0.1",), 80, health_check_node_port=32100),
            WEB_DNS: ServicePort(WEB_DNS, ("198.19.0.1",), 53, "UDP", health_check_node_port=32100),
            PLAIN: ServicePort(PLAIN, ("198.19.0.2",), 80),
        },
        {
            WEB_HTTP: (here, also_here, elsewhere, not_ready),
            WEB_DNS: (here, elsewhere),
            PLAIN: (here,),
        },
        1,
    )


def test_each_node_counts_its_own_ready_endpoints() -> None:
    assert desired_checks(snapshot(), "n1") == {32100: Check("default", "web", 2)}
    assert desired_checks(snapshot(), "n2") == {32100: Check("default", "web", 1)}
    assert desired_checks(snapshot(), "n3") == {32100: Check("default", "web", 0)}


def test_the_answer_is_200_with_local_endpoints_and_503_without() -> None:
    head, _, body = response(Check("default", "web", 2)).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"X-Load-Balancing-Endpoint-Weight: 2" in head
    assert json.loads(body) == {
        "service": {"namespace": "default", "name": "web"},
        "localEndpoints": 2,
        "serviceProxyHealthy": True,
    }
    head, _, body = response(Check("default", "web", 0)).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert json.loads(body)["localEndpoints"] == 0
