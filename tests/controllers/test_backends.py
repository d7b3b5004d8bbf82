"""Pure: which pods back a Service and how they become Endpoints subsets."""

from __future__ import annotations

from typing import Any

from kubesvc.controllers.backends import backends_for, endpoints_subsets, resolve_ports


def svc(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    body["spec"].update(spec)
    return body


def pod(
    name: str, ip: str | None, *, ready: bool = True, http_port: int = 8080, **extra: Any
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
    body: dict[str, Any] = {
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "labels": {"app": "web"},
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [
                {
                    "name": "c",
                    "ports": [{"name": "http", "containerPort": http_port, "protocol": "TCP"}],
                }
            ],
        },
        "status": status,
    }
    body["metadata"].update(extra.pop("metadata", {}))
    body["spec"].update(extra.pop("spec", {}))
    body["status"].update(extra.pop("status", {}))
    return body


def ips(subset: dict[str, Any], key: str = "addresses") -> list[str]:
    return [a["ip"] for a in subset.get(key, [])]


def test_ready_and_unready_pods() -> None:
    service = svc()
    subsets = endpoints_subsets(
        service,
        backends_for(
            service,
            [pod("b", "198.18.0.2"), pod("a", "198.18.0.1"), pod("c", "198.18.0.3", ready=False)],
        ),
    )
    assert len(subsets) == 1
    assert ips(subsets[0]) == ["198.18.0.1", "198.18.0.2"]
    assert ips(subsets[0], "notReadyAddresses") == ["198.18.0.3"]
    assert subsets[0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    first = subsets[0]["addresses"][0]
    assert first["targetRef"] == {
        "kind": "Pod",
        "namespace": "default",
        "name": "a",
        "uid": "uid-a",
    }
    assert first["nodeName"] == "node-1"


def test_publish_not_ready_addresses_makes_every_pod_ready() -> None:
    service = svc(publishNotReadyAddresses=True)
    subsets = endpoints_subsets(
        service, backends_for(service, [pod("a", "198.18.0.1", ready=False)])
    )
    assert ips(subsets[0]) == ["198.18.0.1"] and "notReadyAddresses" not in subsets[0]


def test_named_target_port_groups_pods_by_number() -> None:
    service = svc()
    pods = [
        pod("a", "198.18.0.1", http_port=8080),
        pod("b", "198.18.0.2", http_port=9090),
        pod("c", "198.18.0.3", http_port=8080),
    ]
    subsets = endpoints_subsets(service, backends_for(service, pods))
    assert [(s["ports"][0]["port"], ips(s)) for s in subsets] == [
        (8080, ["198.18.0.1", "198.18.0.3"]),
        (9090, ["198.18.0.2"]),
    ]


def test_pod_without_the_named_port_is_left_out() -> None:
    service = svc()
    other = pod("x", "198.18.0.9")
    other["spec"]["containers"][0]["ports"][0]["name"] = "metrics"
    assert resolve_ports(service, other) == ()
    assert endpoints_subsets(service, backends_for(service, [other])) == []


def test_numeric_target_port_and_multiple_ports() -> None:
    service = svc(
        ports=[
            {"name": "http", "port": 80, "targetPort": 9376, "protocol": "TCP"},
            {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"},
        ]
    )
    subsets = endpoints_subsets(service, backends_for(service, [pod("a", "198.18.0.1")]))
    assert sorted((p["name"], p["port"], p["protocol"]) for p in subsets[0]["ports"]) == [
        ("dns", 5353, "UDP"),
        ("http", 9376, "TCP"),
    ]


def test_pods_without_ip_finished_or_terminating_are_left_out() -> None:
    service = svc()
    pods = [
        pod("noip", None),
        pod("done", "198.18.0.4", status={"phase": "Succeeded"}),
        pod("going", "198.18.0.5", metadata={"deletionTimestamp": "2026-01-01T00:00:00Z"}),
        pod("ok", "198.18.0.6"),
    ]
    subsets = endpoints_subsets(service, backends_for(service, pods))
    assert ips(subsets[0]) == ["198.18.0.6"] and "notReadyAddresses" not in subsets[0]


def test_headless_without_ports_lists_addresses_and_hostname_follows_subdomain() -> None:
    service = svc(clusterIP="None", ports=[])
    named = pod("a", "198.18.0.1", spec={"hostname": "db-0", "subdomain": "web"})
    subsets = endpoints_subsets(service, backends_for(service, [named]))
    assert subsets == [
        {
            "addresses": [
                {
                    "ip": "198.18.0.1",
                    "hostname": "db-0",
                    "nodeName": "node-1",
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": "default",
                        "name": "a",
                        "uid": "uid-a",
                    },
                }
            ]
        }
    ]
