"""Allocation and repair over a real SQLite store, in process (no HTTP).

Two `Rest` cores with their own `ServiceAllocator` on one store stand for two
API servers sharing storage: each has its own in-memory hint, so only the
storage transaction can keep their allocations apart.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kubesvc.allocator import records
from kubesvc.allocator.ranges import parse_port_range, parse_service_cidr
from kubesvc.allocator.repair import RepairLoop
from kubesvc.allocator.service import ServiceAllocator
from kubesvc.api.errors import StatusError
from kubesvc.api.resources import BY_KIND
from kubesvc.apiserver.app import ensure_kubernetes_service
from kubesvc.apiserver.rest import Preconditions, Rest, WriteOptions
from kubesvc.storage.sqlite import SqliteStore

SERVICES = BY_KIND["Service"]
EVENTS = BY_KIND["Event"]
ENDPOINTS = BY_KIND["Endpoints"]
CIDR = parse_service_cidr("127.96.0.0/27")  # 30 usable addresses
PORTS = parse_port_range("30000-30019")


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await SqliteStore.open(tmp_path / "kubesvc.db") as opened:
        yield opened


async def server(store: SqliteStore) -> Rest:
    allocator = ServiceAllocator(store, CIDR, PORTS)
    await allocator.load()
    rest = Rest(store, allocator=allocator)
    await rest.ensure_initial_namespaces()
    return rest


async def record_values(store: SqliteStore, prefix: str) -> list[str]:
    return sorted(r["metadata"]["name"] for r in (await store.list(prefix)).items)


async def test_two_servers_on_one_store_never_share_a_value(store: SqliteStore) -> None:
    one, two = await server(store), await server(store)

    async def create(rest: Rest, name: str) -> dict[str, Any] | StatusError:
        try:
            return await rest.create(
                SERVICES, "default", service(name, type="NodePort"), WriteOptions()
            )
        except StatusError as err:
            return err

    results = await asyncio.gather(*(create(one if i % 2 else two, f"s{i}") for i in range(50)))
    made = [r for r in results if isinstance(r, dict)]
    failed = [r for r in results if isinstance(r, StatusError)]
    # The node-port range (20) is smaller than the IP range (30): it runs out first.
    # (A request may also find every IP held for a moment by requests still in
    # flight, which then fail on their node port; both are "range is full".)
    assert len(made) == PORTS.size
    assert {e.code for e in failed} == {422}
    assert all("range is full" in e.message for e in failed), [e.message for e in failed]
    ips = [s["spec"]["clusterIP"] for s in made]
    node_ports = [s["spec"]["ports"][0]["nodePort"] for s in made]
    assert len(set(ips)) == len(ips) and len(set(node_ports)) == len(node_ports)
    # Every value has its record, and no failed request left one behind.
    assert await record_values(store, records.IP_PREFIX) == sorted(ips)
    assert await record_values(store, records.NODE_PORT_PREFIX) == sorted(map(str, node_ports))


async def test_dry_run_shows_a_value_and_holds_none(store: SqliteStore) -> None:
    rest = await server(store)
    shown = await rest.create(
        SERVICES, "default", service("dry", type="NodePort"), WriteOptions(dry_run=True)
    )
    assert CIDR.offset_of(shown["spec"]["clusterIP"]) is not None
    assert PORTS.offset_of(shown["spec"]["ports"][0]["nodePort"]) is not None
    assert await record_values(store, records.IP_PREFIX) == []
    assert rest.allocator is not None and rest.allocator.ips.pending == set()
    await rest.create(SERVICES, "default", service("real", clusterIP="127.96.0.7"), WriteOptions())
    with pytest.raises(StatusError, match="provided IP is already allocated"):
        await rest.create(
            SERVICES, "default", service("dry2", clusterIP="127.96.0.7"), WriteOptions(dry_run=True)
        )


async def test_deleting_a_namespace_releases_its_services(store: SqliteStore) -> None:
    rest = await server(store)
    await rest.create(BY_KIND["Namespace"], None, {"metadata": {"name": "gone"}}, WriteOptions())
    await rest.create(SERVICES, "gone", service("a", clusterIP="127.96.0.9"), WriteOptions())
    await rest.delete(BY_KIND["Namespace"], None, "gone", Preconditions())
    assert await record_values(store, records.IP_PREFIX) == []


async def test_repair_over_the_store(store: SqliteStore) -> None:
    rest = await server(store)
    assert rest.allocator is not None
    for name, ip in (("a", "127.96.0.5"), ("b", "127.96.0.6"), ("c", "127.96.0.7")):
        await rest.create(SERVICES, "default", service(name, clusterIP=ip), WriteOptions())
    # Behind the API's back: a record with no Service, a Service without its record,
    # a Service sharing another's IP, and one outside the range.
    await store.create(
        records.ip_key("127.96.0.20"),
        records.ip_record("127.96.0.20", records.Owner("default", "ghost", "g")),
    )
    await store.delete(records.ip_key("127.96.0.6"))
    dup = await store.get(records.service_key("default", "c"))
    dup["metadata"].update(name="dup", uid="uid-dup", creationTimestamp="2999-01-01T00:00:00Z")
    await store.create(records.service_key("default", "dup"), dup)
    far = await store.get(records.service_key("default", "a"))
    far["metadata"].update(name="far", uid="uid-far")
    far["spec"].update(clusterIP="10.1.2.3", clusterIPs=["10.1.2.3"])
    await store.create(records.service_key("default", "far"), far)

    repair = RepairLoop(store, rest.allocator, interval=3600)
    first = await repair.run_once()
    assert first.created == [records.ip_key("127.96.0.6")]
    assert first.freed == [] and first.leaks_pending == 1
    assert sorted((p.owner.name, p.reason) for p in first.problems) == [
        ("b", "ClusterIPNotAllocated"),
        ("dup", "ClusterIPAlreadyAllocated"),
        ("far", "ClusterIPOutOfRange"),
    ]
    events = {e["reason"]: e for e in (await store.list(EVENTS.key_prefix("default"))).items}
    assert set(events) == {
        "ClusterIPNotAllocated",
        "ClusterIPAlreadyAllocated",
        "ClusterIPOutOfRange",
    }
    event = events["ClusterIPAlreadyAllocated"]
    assert event["type"] == "Warning" and event["count"] == 1
    assert event["source"] == {"component": "ipallocator-repair-controller"}
    assert event["involvedObject"] == {
        "kind": "Service",
        "apiVersion": "v1",
        "namespace": "default",
        "name": "dup",
        "uid": "uid-dup",
    }
    second = await repair.run_once()
    assert second.freed == [] and second.created == []
    third = await repair.run_once()
    assert third.freed == [records.ip_key("127.96.0.20")] and third.leaks_pending == 0
    assert rest.allocator.ips.free == CIDR.size - 3  # .5 .6 .7; the leak is free again
    # A repeated problem bumps its Event rather than adding one.
    events = (await store.list(EVENTS.key_prefix("default"))).items
    assert {e["reason"]: e["count"] for e in events} == {
        "ClusterIPNotAllocated": 1,
        "ClusterIPAlreadyAllocated": 3,
        "ClusterIPOutOfRange": 3,
    }


async def test_the_kubernetes_service_and_its_endpoints(store: SqliteStore) -> None:
    rest = await server(store)
    pods = ipaddress.ip_network("127.244.0.0/16")
    # A routable API address (TEST-NET range) is a valid endpoint: Endpoints are written.
    await ensure_kubernetes_service(rest, CIDR, "198.18.0.1", 6443, pods)
    svc = await rest.get(SERVICES, "default", "kubernetes")
    assert svc["spec"]["clusterIP"] == CIDR.first == "127.96.0.1"
    assert svc["spec"]["ports"] == [
        {"name": "https", "protocol": "TCP", "port": 443, "targetPort": 6443}
    ]
    endpoints = await rest.get(ENDPOINTS, "default", "kubernetes")
    assert endpoints["subsets"] == [
        {
            "addresses": [{"ip": "198.18.0.1"}],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
        }
    ]
    # Restarted in host mode on another port: the port follows, the Endpoints go.
    await ensure_kubernetes_service(rest, CIDR, "127.0.0.1", 7443, pods)
    svc = await rest.get(SERVICES, "default", "kubernetes")
    assert svc["spec"]["ports"][0]["targetPort"] == 7443
    assert svc["spec"]["clusterIP"] == "127.96.0.1"
    with pytest.raises(StatusError) as missing:
        await rest.get(ENDPOINTS, "default", "kubernetes")
    assert missing.value.code == 404


async def test_cluster_ips_alone_sets_cluster_ip(store: SqliteStore) -> None:
    rest = await server(store)
    made = await rest.create(
        SERVICES, "default", service("ips", clusterIPs=["127.96.0.11"]), WriteOptions()
    )
    assert made["spec"]["clusterIP"] == "127.96.0.11"
    assert await record_values(store, records.IP_PREFIX) == ["127.96.0.11"]


async def test_health_check_node_port_of_a_local_load_balancer(store: SqliteStore) -> None:
    rest = await server(store)
    local = {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}
    made = await rest.create(SERVICES, "default", service("lb", **local), WriteOptions())
    health = made["spec"]["healthCheckNodePort"]
    node_port = made["spec"]["ports"][0]["nodePort"]
    assert PORTS.offset_of(health) is not None and health != node_port
    held = await record_values(store, records.NODE_PORT_PREFIX)
    assert held == sorted(map(str, (health, node_port)))

    # A Cluster policy (or another type) has none: not given, not kept.
    plain = await rest.create(
        SERVICES, "default", service("plain", type="LoadBalancer"), WriteOptions()
    )
    assert "healthCheckNodePort" not in plain["spec"]
    with pytest.raises(StatusError) as wrong:
        await rest.create(
            SERVICES,
            "default",
            service("np", type="NodePort", healthCheckNodePort=30005),
            WriteOptions(),
        )
    assert wrong.value.code == 422
    assert wrong.value.causes[0]["field"] == "spec.healthCheckNodePort"

    # Chosen by the user: honoured when free, refused when taken.
    held = await record_values(store, records.NODE_PORT_PREFIX)
    free = next(p for p in range(30000, 30020) if str(p) not in held)
    mine = await rest.create(
        SERVICES, "default", service("mine", **local, healthCheckNodePort=free), WriteOptions()
    )
    assert mine["spec"]["healthCheckNodePort"] == free
    with pytest.raises(StatusError) as taken:
        await rest.create(
            SERVICES,
            "default",
            service("dup", **local, healthCheckNodePort=free),
            WriteOptions(),
        )
    assert taken.value.code == 422 and "already allocated" in taken.value.message

    # Going to Cluster policy releases it; deleting releases the rest.
    current = await rest.get(SERVICES, "default", "lb")
    current["spec"]["externalTrafficPolicy"] = "Cluster"
    updated, _ = await rest.update(SERVICES, "default", "lb", current, WriteOptions())
    assert "healthCheckNodePort" not in updated["spec"]
    assert str(health) not in await record_values(store, records.NODE_PORT_PREFIX)
    await rest.delete(SERVICES, "default", "mine", Preconditions())
    assert str(free) not in await record_values(store, records.NODE_PORT_PREFIX)
