"""Allocation through a real API server process, with kubectl and plain HTTPS."""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import urlparse

from tests.allocator.conftest import SMALL_CIDR, SMALL_PORTS
from tests.apiserver.conftest import Cluster

SVC = "/api/v1/namespaces/default/services"
MERGE = "application/merge-patch+json"
NETWORK = ipaddress.ip_network(SMALL_CIDR)
PORT_FIRST, PORT_LAST = map(int, SMALL_PORTS.split("-"))


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec},
    }


def create(cluster: Cluster, name: str, query: str = "", **spec: Any) -> tuple[int, Any]:
    status, body, _ = cluster.request("POST", SVC + query, service(name, **spec))
    return status, body


def usable(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return address in NETWORK and address not in (
        NETWORK.network_address,
        NETWORK.broadcast_address,
    )


def free_ip(cluster: Cluster) -> str:
    """An address of the range no Service holds now (dynamic picks are random, so look)."""
    _, listed, _ = cluster.request("GET", "/api/v1/services")
    held = {ip for s in listed["items"] for ip in s["spec"].get("clusterIPs", [])}
    for host in reversed(list(NETWORK.hosts())):
        if str(host) not in held:
            return str(host)
    raise AssertionError("the range is full")


def free_node_port(cluster: Cluster) -> int:
    _, listed, _ = cluster.request("GET", "/api/v1/services")
    held = {p.get("nodePort") for s in listed["items"] for p in s["spec"].get("ports", [])}
    return next(p for p in range(PORT_FIRST, PORT_LAST + 1) if p not in held)


def test_a_selector_service_gets_an_address_in_range(small: Cluster) -> None:
    small.kubectl("create", "service", "clusterip", "web", "--tcp=80:8080")
    header, row = small.kubectl("get", "svc", "web").stdout.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "TYPE", "CLUSTER-IP"]
    ip = row.split()[2]
    assert usable(ip) and ip != "127.96.0.1", ip
    _, body, _ = small.request("GET", f"{SVC}/web")
    assert body["spec"]["clusterIPs"] == [ip] and body["spec"]["ipFamilies"] == ["IPv4"]


def test_the_kubernetes_service_takes_the_first_address(small: Cluster) -> None:
    _, body, _ = small.request("GET", f"{SVC}/kubernetes")
    assert body["spec"]["clusterIP"] == "127.96.0.1"
    assert "selector" not in body["spec"]
    api_port = urlparse(small.url).port
    assert body["spec"]["ports"] == [
        {"name": "https", "protocol": "TCP", "port": 443, "targetPort": api_port}
    ]
    # Host mode: the API listens on 127.0.0.1, which endpoints may not name.
    status, _, _ = small.request("GET", "/api/v1/namespaces/default/endpoints/kubernetes")
    assert status == 404


def test_a_chosen_address_is_honoured_once(small: Cluster) -> None:
    ip = free_ip(small)
    status, body = create(small, "chosen", clusterIP=ip)
    assert status == 201 and body["spec"]["clusterIP"] == ip, body
    status, body = create(small, "chosen-again", clusterIP=ip)
    assert status == 422 and body["reason"] == "Invalid"
    assert body["message"] == (
        f'Service "chosen-again" is invalid: spec.clusterIPs[0]: Invalid value: "{ip}": '
        "provided IP is already allocated"
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": f'Invalid value: "{ip}": provided IP is already allocated',
            "field": "spec.clusterIPs[0]",
        }
    ]
    again = small.kubectl(
        "create", "service", "clusterip", "chosen-3", "--tcp=80", f"--clusterip={ip}", check=False
    )
    assert again.returncode != 0 and "provided IP is already allocated" in again.stderr


def test_an_address_outside_the_range_is_refused_naming_the_range(small: Cluster) -> None:
    out = small.kubectl(
        "create", "service", "clusterip", "far", "--tcp=80", "--clusterip=1.2.3.4", check=False
    )
    assert out.returncode != 0
    assert (
        'spec.clusterIPs[0]: Invalid value: "1.2.3.4": provided IP is not in the valid range. '
        "The range of valid IPs is 127.96.0.0/28" in out.stderr
    )
    for edge in (NETWORK.network_address, NETWORK.broadcast_address):
        status, body = create(small, "edge", clusterIP=str(edge))
        assert status == 422 and "provided IP is not in the valid range" in body["message"]


def test_delete_releases_the_address(small: Cluster) -> None:
    ip = free_ip(small)
    assert create(small, "first-owner", clusterIP=ip)[0] == 201
    assert small.kubectl("delete", "svc", "first-owner").returncode == 0
    status, body = create(small, "second-owner", clusterIP=ip)
    assert status == 201 and body["spec"]["clusterIP"] == ip


def test_headless_and_external_name_hold_no_address(small: Cluster) -> None:
    status, body = create(small, "headless", clusterIP="None")
    assert status == 201 and body["spec"]["clusterIPs"] == ["None"]
    status, body = create(small, "alias", type="ExternalName", externalName="example.com")
    assert status == 201 and "clusterIP" not in body["spec"]
    # (test_concurrency proves they take nothing from the range.)


def test_node_ports(small: Cluster) -> None:
    small.kubectl("create", "service", "nodeport", "np", "--tcp=80:8080")
    _, body, _ = small.request("GET", f"{SVC}/np")
    given = body["spec"]["ports"][0]["nodePort"]
    assert PORT_FIRST <= given <= PORT_LAST and usable(body["spec"]["clusterIP"])
    row = small.kubectl("get", "svc", "np").stdout.splitlines()[1]
    assert f"80:{given}/TCP" in row

    port = free_node_port(small)
    status, body = create(small, "np-user", type="NodePort", ports=[{"port": 80, "nodePort": port}])
    assert status == 201 and body["spec"]["ports"][0]["nodePort"] == port
    status, body = create(
        small, "np-clash", type="NodePort", ports=[{"port": 80, "nodePort": port}]
    )
    assert status == 422
    assert (
        f"spec.ports[0].nodePort: Invalid value: {port}: provided port is already allocated"
        in body["message"]
    )
    status, body = create(small, "np-far", type="NodePort", ports=[{"port": 80, "nodePort": 31000}])
    assert status == 422 and (
        "provided port is not in the valid range. The range of valid ports is 30000-30015"
        in body["message"]
    )
    # Back to ClusterIP: the node port is released and another Service may take it.
    small.kubectl("patch", "svc", "np-user", "-p", '{"spec":{"type":"ClusterIP"}}')
    _, body, _ = small.request("GET", f"{SVC}/np-user")
    assert "nodePort" not in body["spec"]["ports"][0]
    status, _ = create(small, "np-next", type="NodePort", ports=[{"port": 80, "nodePort": port}])
    assert status == 201


def test_type_change_to_external_name_releases_and_back_allocates(small: Cluster) -> None:
    ip = free_ip(small)
    assert create(small, "flip", clusterIP=ip)[0] == 201
    small.kubectl(
        "patch",
        "svc",
        "flip",
        "-p",
        '{"spec":{"type":"ExternalName","externalName":"example.com"}}',
    )
    _, body, _ = small.request("GET", f"{SVC}/flip")
    assert body["spec"]["type"] == "ExternalName" and "clusterIP" not in body["spec"]
    assert create(small, "flip-taker", clusterIP=ip)[0] == 201  # released
    assert small.request("DELETE", f"{SVC}/flip-taker")[0] == 200
    small.kubectl("patch", "svc", "flip", "-p", '{"spec":{"type":"ClusterIP"}}')
    _, body, _ = small.request("GET", f"{SVC}/flip")
    assert body["spec"]["type"] == "ClusterIP" and usable(body["spec"]["clusterIP"])


def test_dry_run_allocates_nothing(small: Cluster) -> None:
    ip = free_ip(small)
    status, body = create(small, "dry", "?dryRun=All", clusterIP=ip)
    assert status == 201 and body["spec"]["clusterIP"] == ip
    shown = json.loads(
        small.kubectl(
            "create", "service", "nodeport", "dry2", "--tcp=80", "--dry-run=server", "-o", "json"
        ).stdout
    )
    assert usable(shown["spec"]["clusterIP"])
    assert PORT_FIRST <= shown["spec"]["ports"][0]["nodePort"] <= PORT_LAST
    assert small.request("GET", f"{SVC}/dry")[0] == 404
    status, _ = create(small, "wet", clusterIP=ip)  # the dry run held nothing
    assert status == 201


def test_endpoints_may_not_name_a_cluster_ip(small: Cluster) -> None:
    ip = free_ip(small)
    assert create(small, "target", clusterIP=ip)[0] == 201

    def endpoints(name: str, address: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name},
            "subsets": [{"addresses": [{"ip": address}], "ports": [{"port": 80}]}],
        }

    path = "/api/v1/namespaces/default/endpoints"
    status, body, _ = small.request("POST", path, endpoints("pointing", ip))
    assert status == 422
    assert "may not be the ClusterIP of Service default/target" in body["message"]
    # Host-mode pod addresses (--pod-cidr, loopback) are accepted; other loopback is not.
    assert small.request("POST", path, endpoints("pods", "127.244.0.7"))[0] == 201
    status, body, _ = small.request("POST", path, endpoints("local", "127.0.0.1"))
    assert status == 422 and "loopback" in body["message"]
    slice_body = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "pointing-slice"},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip]}],
    }
    status, body, _ = small.request(
        "POST", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", slice_body
    )
    assert status == 422 and "may not be the ClusterIP of Service default/target" in body["message"]
