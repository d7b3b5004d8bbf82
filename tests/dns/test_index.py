"""The live index: Kubernetes objects in (as informers deliver them), lookups and changed tags out."""

from __future__ import annotations

from typing import Any

import dns.message
import dns.rcode

from kubesvc.dns.engine import Engine
from kubesvc.dns.index import ClusterIndex, endpoints_addresses, service_info, slice_addresses
from kubesvc.dns.lookup import CLUSTER_IP, EXTERNAL_NAME, HEADLESS, EndpointAddress, Port
from kubesvc.dns.resolver import Resolver, ResolverConfig
from tests.dns.fake import lines, query

Obj = dict[str, Any]


def svc(name: str, ns: str = "apps", **spec: Any) -> Obj:
    spec.setdefault("ports", [{"name": "http", "port": 80, "protocol": "TCP"}])
    return {"kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def endpoints(name: str, ready: list[str], not_ready: list[str] = (), ns: str = "apps") -> Obj:  # type: ignore[assignment]
    subset: Obj = {"ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    if ready:
        subset["addresses"] = [{"ip": ip} for ip in ready]
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    return {"kind": "Endpoints", "metadata": {"name": name, "namespace": ns}, "subsets": [subset]}


def eslice(
    name: str, service: str, eps: list[Obj], ns: str = "apps", address_type: str = "IPv4"
) -> Obj:
    return {
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": address_type,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": eps,
    }


class Recorder:
    def __init__(self) -> None:
        self.events: list[set[tuple[str, ...]]] = []

    def __call__(self, tags: set[tuple[str, ...]], started: float) -> None:
        self.events.append(set(tags))


def test_service_shapes() -> None:
    plain = service_info(svc("a", clusterIP="127.96.0.10", clusterIPs=["127.96.0.10", "fd00::a"]))
    assert plain.kind == CLUSTER_IP and plain.cluster_ips == ("127.96.0.10", "fd00::a")
    assert plain.ports == (Port("http", 80, "TCP"),)
    headless = service_info(svc("h", clusterIP="None", publishNotReadyAddresses=True))
    assert headless.kind == HEADLESS and headless.publish_not_ready
    ext = service_info(svc("e", type="ExternalName", externalName="example.org"))
    assert ext.kind == EXTERNAL_NAME and ext.external_name == "example.org"
    pending = service_info(svc("p"))
    assert pending.kind == CLUSTER_IP and pending.cluster_ips == ()


def test_endpoints_and_slices_shapes() -> None:
    addresses = endpoints_addresses(endpoints("a", ["198.18.0.1"], ["198.18.0.2"]))
    assert [(a.ip, a.ready) for a in addresses] == [("198.18.0.1", True), ("198.18.0.2", False)]
    assert addresses[0].ports == (Port("http", 8080, "TCP"),)
    sliced = slice_addresses(
        eslice(
            "a-1",
            "a",
            [
                {"addresses": ["198.18.0.1"], "hostname": "web-0"},
                {"addresses": ["198.18.0.2"], "conditions": {"ready": False}},
                {"addresses": ["198.18.0.3"], "conditions": {"ready": True}},
            ],
        )
    )
    assert [(a.ip, a.hostname, a.ready) for a in sliced] == [
        ("198.18.0.1", "web-0", True),
        ("198.18.0.2", "", False),
        ("198.18.0.3", "", True),
    ]
    assert (
        slice_addresses(eslice("f", "a", [{"addresses": ["x.example"]}], address_type="FQDN")) == ()
    )


def test_tags_name_exactly_what_changed() -> None:
    index = ClusterIndex()
    seen = Recorder()
    index.listeners.append(seen)
    index.on_service("ADDED", None, svc("web", clusterIP="127.96.0.10"))
    assert seen.events[-1] == {
        ("svc", "apps", "web"),
        ("ns", "apps"),
        ("rev", "10.0.96.127.in-addr.arpa."),
        ("rev", "0.96.127.in-addr.arpa."),
        ("rev", "96.127.in-addr.arpa."),
        ("rev", "127.in-addr.arpa."),
    }
    index.on_endpoints("ADDED", None, endpoints("web", ["198.18.0.1", "198.18.0.2"]))
    index.on_endpoints(
        "MODIFIED", None, endpoints("web", ["198.18.0.1"], ["198.18.0.2"])
    )  # only .2 changed
    assert ("rev", "2.0.18.198.in-addr.arpa.") in seen.events[-1]
    assert ("rev", "1.0.18.198.in-addr.arpa.") not in seen.events[-1]
    count = len(seen.events)
    index.on_endpoints("MODIFIED", None, endpoints("web", ["198.18.0.1"], ["198.18.0.2"]))
    index.on_service("MODIFIED", None, svc("web", clusterIP="127.96.0.10"))
    assert len(seen.events) == count  # no change, no announcement


def test_lookups() -> None:
    index = ClusterIndex()
    index.synced = lambda: True
    index.on_namespace("ADDED", None, {"metadata": {"name": "empty"}})
    index.on_service("ADDED", None, svc("web", clusterIP="127.96.0.10"))
    index.on_service("ADDED", None, svc("db", clusterIP="None"))
    index.on_endpoints("ADDED", None, endpoints("db", ["198.18.0.1"], ["198.18.0.2"]))
    index.on_endpoints("ADDED", None, endpoints("orphan", ["198.18.0.9"]))
    assert index.has_synced()
    assert index.namespace_exists("apps") and index.namespace_exists("empty")
    assert not index.namespace_exists("nope")
    assert [s.name for s in index.services_by_ip("127.96.0.10")] == ["web"]
    assert [(s.name, a.ready) for s, a in index.endpoints_by_ip("198.18.0.2")] == [("db", False)]
    assert index.endpoints_by_ip("198.18.0.9") == []  # endpoints without a Service publish nothing
    assert index.reverse_in_use("18.198.in-addr.arpa.")
    assert index.reverse_in_use("10.0.96.127.in-addr.arpa.")
    index.on_service("DELETED", svc("web", clusterIP="127.96.0.10"), None)
    index.on_namespace("DELETED", {"metadata": {"name": "empty"}}, None)
    assert index.service("apps", "web") is None and not index.reverse_in_use("96.127.in-addr.arpa.")
    assert not index.namespace_exists("empty")
    index.on_endpoints("DELETED", endpoints("db", []), None)
    assert index.endpoints("apps", "db") == ()
    assert not index.reverse_in_use("1.0.18.198.in-addr.arpa.")
    assert index.reverse_in_use("9.0.18.198.in-addr.arpa.")  # the orphan is still known


def test_slices_merge_per_service() -> None:
    index = ClusterIndex(endpoint_source="EndpointSlice")
    index.on_service("ADDED", None, svc("db", clusterIP="None"))
    index.on_endpoint_slice("ADDED", None, eslice("db-1", "db", [{"addresses": ["198.18.0.1"]}]))
    index.on_endpoint_slice("ADDED", None, eslice("db-2", "db", [{"addresses": ["198.18.0.2"]}]))
    # The same endpoint in two slices for a moment counts once.
    index.on_endpoint_slice(
        "MODIFIED",
        None,
        eslice("db-2", "db", [{"addresses": ["198.18.0.2"]}, {"addresses": ["198.18.0.1"]}]),
    )
    assert [a.ip for a in index.endpoints("apps", "db")] == ["198.18.0.1", "198.18.0.2"]
    index.on_endpoint_slice("DELETED", eslice("db-1", "db", []), None)
    assert [a.ip for a in index.endpoints("apps", "db")] == ["198.18.0.2", "198.18.0.1"]
    index.on_endpoint_slice("DELETED", eslice("db-2", "db", []), None)
    assert index.endpoints("apps", "db") == ()


def test_engine_follows_watch_events_with_no_stale_answer() -> None:
    index = ClusterIndex()
    index.synced = lambda: True
    engine = Engine(Resolver(index, ResolverConfig()))
    index.listeners.append(engine.on_change)
    name = "web.apps.svc.cluster.local."

    def answer(qtype: str = "A") -> dns.message.Message:
        out = engine.handle(query(name, qtype).to_wire(), True)
        assert isinstance(out, bytes)
        return dns.message.from_wire(out)

    assert answer().rcode() == dns.rcode.NXDOMAIN  # now precomputed as NXDOMAIN
    index.on_service("ADDED", None, svc("web", clusterIP="127.96.0.10"))
    assert lines(answer().answer) == [f"{name} 5 in a 127.96.0.10"]
    index.on_service("MODIFIED", None, svc("web", clusterIP="None"))
    assert answer().rcode() == dns.rcode.NXDOMAIN  # headless, nothing ready
    index.on_endpoints("ADDED", None, endpoints("web", ["198.18.0.1"]))
    assert lines(answer().answer) == [f"{name} 5 in a 198.18.0.1"]
    index.on_service("DELETED", svc("web", clusterIP="None"), None)
    assert answer().rcode() == dns.rcode.NXDOMAIN


def test_endpoint_address_hostnames() -> None:
    assert EndpointAddress("198.18.0.1").dns_hostname == "198-18-0-1"
    assert EndpointAddress("fd00::1").dns_hostname == "fd00--1"
    assert EndpointAddress("198.18.0.1", "web-0").dns_hostname == "web-0"
