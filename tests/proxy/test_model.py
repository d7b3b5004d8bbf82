"""The pure model: adapters from API objects, change tracking, snapshots and deltas."""

from __future__ import annotations

from typing import Any

import pytest

from kubesvc.proxy.model import (
    Endpoint,
    EndpointSliceCache,
    ProxyState,
    ServicePort,
    ServicePortName,
    endpoints_from_endpoints,
    parse_trigger_time,
    service_ports,
    usable_endpoints,
)
from tests.proxy.conftest import endpoints, service

WEB = ServicePortName("default", "web", "http", "TCP")
DNS = ServicePortName("default", "web", "dns", "UDP")
PORTS = [
    {"name": "http", "port": 80, "protocol": "TCP"},
    {"name": "dns", "port": 53, "protocol": "UDP"},
]
EP_PORTS = [
    {"name": "http", "port": 8080, "protocol": "TCP"},
    {"name": "dns", "port": 5353, "protocol": "UDP"},
]


def slice_of(
    name: str, service_name: str, eps: list[dict[str, Any]], ports: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": ports,
    }


def test_service_ports_of_a_cluster_ip_service() -> None:
    got = service_ports(service("web", "127.96.1.10", PORTS))
    assert got == {
        WEB: ServicePort(WEB, ("127.96.1.10",), 80, "TCP"),
        DNS: ServicePort(DNS, ("127.96.1.10",), 53, "UDP"),
    }


@pytest.mark.parametrize(
    ("spec", "expect"),
    [
        ({"clusterIP": "None"}, {}),  # headless: DNS only
        ({"clusterIP": ""}, {}),  # not allocated yet
        ({"type": "ExternalName", "externalName": "example.org", "clusterIP": ""}, {}),
    ],
)
def test_services_without_a_cluster_ip_have_no_proxied_ports(
    spec: dict[str, Any], expect: dict[str, Any]
) -> None:
    svc = service("web", "127.96.1.10", PORTS)
    svc["spec"].update(spec)
    assert service_ports(svc) == expect


def test_node_ports_external_ips_affinity_policies_and_annotations() -> None:
    svc = service(
        "web",
        "127.96.1.10",
        [{"name": "http", "port": 80, "nodePort": 30080}],
        affinity_s=60,
        annotations={
            "proxy.kubesvc.io/scheduler": "LC",
            "proxy.kubesvc.io/proxy-protocol": "v2",
        },
        type="NodePort",
        externalIPs=["198.18.0.10", "not-an-ip"],
        externalTrafficPolicy="Local",
        internalTrafficPolicy="Local",
    )
    port = service_ports(svc)[ServicePortName("default", "web", "http")]
    assert (port.node_port, port.external_ips, port.affinity_timeout_s) == (
        30080,
        ("198.18.0.10",),
        60,
    )
    assert (port.internal_local, port.external_local) == (True, True)
    assert (port.scheduler, port.proxy_protocol) == ("lc", 2)


def test_client_ip_affinity_defaults_to_three_hours_and_node_ports_need_the_type() -> None:
    svc = service(
        "web", "127.96.1.10", [{"port": 80, "nodePort": 30080}], sessionAffinity="ClientIP"
    )
    port = service_ports(svc)[ServicePortName("default", "web", "")]
    assert port.affinity_timeout_s == 10800
    assert port.node_port == 0  # a ClusterIP Service has no node port, whatever the field says


def test_bad_annotations_are_ignored_and_reported() -> None:
    svc = service(
        "web",
        "127.96.1.10",
        [{"port": 80}],
        annotations={"proxy.kubesvc.io/scheduler": "wlc", "proxy.kubesvc.io/proxy-protocol": "v3"},
    )
    problems: list[str] = []
    port = service_ports(svc, problems)[ServicePortName("default", "web", "")]
    assert (port.scheduler, port.proxy_protocol) == (None, 0)
    assert len(problems) == 2 and "wlc" in problems[0] and "v3" in problems[1]


def test_endpoints_ready_and_not_ready_per_named_port() -> None:
    obj = endpoints("web", ["127.244.0.2", "127.244.0.1"], EP_PORTS, not_ready=["127.244.0.3"])
    got = endpoints_from_endpoints(obj)
    assert got[WEB] == (
        Endpoint("127.244.0.1", 8080),
        Endpoint("127.244.0.2", 8080),
        Endpoint("127.244.0.3", 8080, ready=False, serving=False),
    )
    assert [ep.port for ep in got[DNS]] == [5353, 5353, 5353]


def test_an_address_in_two_subsets_counts_once_at_its_best() -> None:
    obj = endpoints("web", ["127.244.0.1"], EP_PORTS[:1])
    obj["subsets"].append({"notReadyAddresses": [{"ip": "127.244.0.1"}], "ports": EP_PORTS[:1]})
    assert endpoints_from_endpoints(obj)[WEB] == (Endpoint("127.244.0.1", 8080),)


def test_endpoint_slices_give_the_same_snapshot_as_endpoints() -> None:
    """The adapter contract: either API shape yields the same model."""
    from_endpoints = endpoints_from_endpoints(
        endpoints("web", ["127.244.0.1", "127.244.0.2"], EP_PORTS[:1], not_ready=["127.244.0.3"])
    )
    cache = EndpointSliceCache()
    cache.update(None, slice_of("web-a", "web", [{"addresses": ["127.244.0.2"]}], EP_PORTS[:1]))
    [(svc, _before, after)] = cache.update(
        None,
        slice_of(
            "web-b",
            "web",
            [
                {"addresses": ["127.244.0.1"], "conditions": {"ready": True}},
                {"addresses": ["127.244.0.3"], "conditions": {"ready": False}},
            ],
            EP_PORTS[:1],
        ),
    )
    assert svc == ("default", "web")
    assert after == from_endpoints


def test_slice_conditions_and_deletion() -> None:
    cache = EndpointSliceCache()
    eps = [
        {
            "addresses": ["127.244.0.4"],
            "conditions": {"ready": False, "serving": True, "terminating": True},
        },
        {"addresses": ["127.244.0.5"]},  # no conditions: ready
    ]
    one = slice_of("web-a", "web", eps, EP_PORTS[:1])
    [(_, _, after)] = cache.update(None, one)
    assert after[WEB] == (
        Endpoint("127.244.0.4", 8080, ready=False, serving=True, terminating=True),
        Endpoint("127.244.0.5", 8080),
    )
    [(_, before, after)] = cache.update(one, None)
    assert before[WEB] and after == {}


def test_change_tracker_drops_changes_that_are_undone() -> None:
    state = ProxyState()
    a = service("web", "127.96.1.10", PORTS)
    b = service("web", "127.96.1.10", [{"name": "http", "port": 81}])
    assert state.on_service("ADDED", None, a)
    state.commit()
    assert state.on_service("MODIFIED", a, b)
    assert not state.on_service("MODIFIED", b, a)  # back to what the snapshot has: nothing to do
    assert not state.pending
    assert not state.on_service("SYNC", a, a)


def test_commit_reports_what_changed() -> None:
    state = ProxyState()
    state.on_service("ADDED", None, service("web", "127.96.1.10", PORTS))
    trigger = {"endpoints.kubernetes.io/last-change-trigger-time": "2024-05-01T10:00:00.123456789Z"}
    ep1 = endpoints("web", ["127.244.0.1", "127.244.0.2"], EP_PORTS, annotations=trigger)
    state.on_endpoints("ADDED", None, ep1)
    snap, delta = state.commit()
    assert delta.added == {WEB, DNS} and not delta.removed and delta.endpoints_changed == {WEB, DNS}
    assert delta.trigger_times == (pytest.approx(1714557600.123457),)
    assert [ep.ip for ep in snap.endpoints_of(WEB)] == ["127.244.0.1", "127.244.0.2"]

    # One endpoint goes; the service drops its UDP port.
    ep2 = endpoints("web", ["127.244.0.2"], EP_PORTS)
    state.on_endpoints("MODIFIED", ep1, ep2)
    state.on_service(
        "MODIFIED",
        service("web", "127.96.1.10", PORTS),
        service("web", "127.96.1.10", PORTS[:1], sessionAffinity="ClientIP"),
    )
    snap, delta = state.commit()
    assert delta.updated == {WEB} and delta.removed == {DNS} and not delta.added
    assert delta.stale_udp_endpoints == ((DNS, Endpoint("127.244.0.1", 5353)),)
    assert delta.trigger_times == ()  # ep2 carries no trigger time
    assert DNS not in snap.services and snap.generation == 2

    # Deleting the Endpoints empties the map; a no-op commit changes nothing.
    state.on_endpoints("DELETED", ep2, None)
    snap, delta = state.commit()
    assert snap.endpoints_of(WEB) == () and delta.endpoints_changed == {WEB, DNS}
    _, delta = state.commit()
    assert delta.empty


def test_trigger_time_parsing() -> None:
    def obj(value: str) -> dict[str, Any]:
        return {
            "metadata": {"annotations": {"endpoints.kubernetes.io/last-change-trigger-time": value}}
        }

    assert parse_trigger_time(obj("1970-01-01T00:00:10Z")) == 10.0
    assert parse_trigger_time(obj("1970-01-01T00:00:10.5+00:00")) == 10.5
    assert parse_trigger_time(obj("garbage")) is None
    assert parse_trigger_time({}) is None


def _port(**kw: Any) -> ServicePort:
    return ServicePort(WEB, ("127.96.1.10",), 80, **kw)


EPS = (
    Endpoint("127.244.0.1", 80, node_name="here"),
    Endpoint("127.244.0.2", 80, node_name="there"),
    Endpoint("127.244.0.3", 80, ready=False, serving=False),
    Endpoint("127.244.0.4", 80, ready=False, serving=True, terminating=True, node_name="here"),
)


@pytest.mark.parametrize(
    ("port", "eps", "external", "expect"),
    [
        (_port(), EPS, False, ["127.244.0.1", "127.244.0.2"]),
        (_port(internal_local=True), EPS, False, ["127.244.0.1"]),
        (_port(internal_local=True), EPS, True, ["127.244.0.1", "127.244.0.2"]),
        (_port(external_local=True), EPS, True, ["127.244.0.1"]),
        # No ready endpoint: terminating ones that still serve keep the Service up.
        (_port(), EPS[2:], False, ["127.244.0.4"]),
        (_port(), EPS[2:3], False, []),
    ],
    ids=[
        "ready",
        "internal-local",
        "internal-local-external-traffic",
        "external-local",
        "terminating",
        "none",
    ],
)
def test_usable_endpoints(
    port: ServicePort, eps: tuple[Endpoint, ...], external: bool, expect: list[str]
) -> None:
    got = usable_endpoints(port, eps, node_name="here", external=external)
    assert [ep.ip for ep in got] == expect


def test_load_balancer_source_ranges_apply_to_load_balancer_addresses_only() -> None:
    from kubesvc.proxy.model import service_ports

    svc = {
        "metadata": {"name": "lb", "namespace": "default"},
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "198.19.0.9",
            "ports": [{"port": 80}],
            "loadBalancerSourceRanges": [" 198.18.0.0/24", "198.18.0.0/24", "bogus", "10.1.2.3/8"],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "198.19.9.1"}]}},
    }
    (port,) = service_ports(svc).values()
    assert port.source_ranges == ("198.18.0.0/24", "10.0.0.0/8")
    assert port.admits("198.19.9.1", "198.18.0.7")
    assert not port.admits("198.19.9.1", "198.20.0.7")
    assert port.admits("198.19.0.9", "198.20.0.7")  # the ClusterIP: every source
    svc["spec"]["type"] = "NodePort"
    (plain,) = service_ports(svc).values()
    assert plain.source_ranges == ()
