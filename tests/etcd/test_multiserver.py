"""Several API server processes on one etcd cluster serve one consistent cluster.

Two `kubesvc apiserver --storage etcd://…` processes share the session's
three-member etcd: allocation stays unique across them (it is made of storage
transactions, not of either server's memory), a watch on one sees writes made
through the other, and when one server dies the other goes on serving.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from kubesvc.api.errors import StatusError
from kubesvc.client.http import APIUnavailable, Client
from kubesvc.client.kubeconfig import load_kubeconfig
from tests.apiserver.conftest import Cluster, start_cluster, stop_cluster
from tests.etcd_cluster import shared_cluster

SERVICE_CIDR = "127.96.0.0/24"  # 253 ClusterIPs after the kubernetes Service's
NODE_PORTS = "30000-30149"  # 150 node ports for 100 NodePort Services: picks collide


@dataclass
class Servers:
    a: Cluster
    b: Cluster


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    etcd = shared_cluster(3)
    url = etcd.url(f"/kubesvc-multiserver-{time.monotonic_ns()}")
    flags = ["--storage", url, "--service-cidr", SERVICE_CIDR]
    flags += ["--service-node-port-range", NODE_PORTS]
    started: list[Cluster] = []
    try:
        for name in ("a", "b"):
            started.append(
                start_cluster(tmp_path_factory.mktemp(f"apiserver-{name}"), "apiserver", *flags)
            )
        yield Servers(*started)
    finally:
        for server in started:
            stop_cluster(server.process)


@pytest.fixture
async def clients(servers: Servers) -> AsyncIterator[tuple[Client, Client]]:
    a = Client(load_kubeconfig(str(servers.a.kubeconfig)))
    b = Client(load_kubeconfig(str(servers.b.kubeconfig)))
    yield a, b
    await a.close()
    await b.close()


def service(name: str, node_port: bool) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "labels": {"test": "multiserver"}},
        "spec": {
            "type": "NodePort" if node_port else "ClusterIP",
            "selector": {"app": name},
            "ports": [{"port": 80, "targetPort": 8080}],
        },
    }


async def test_allocation_is_unique_across_api_servers(clients: tuple[Client, Client]) -> None:
    a, b = clients
    # 200 creates at once, alternating between the servers; every other one a NodePort.
    created = await asyncio.gather(
        *(
            (a if i % 2 else b).create(service(f"svc-{i:03}", node_port=i % 4 < 2), "default")
            for i in range(200)
        )
    )
    assert len(created) == 200

    listed_a = (await a.list("Service"))["items"]
    listed_b = (await b.list("Service"))["items"]
    by_name = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in listed_a}
    assert by_name == {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in listed_b}

    ips = Counter(s["spec"]["clusterIP"] for s in listed_a)
    assert [ip for ip, n in ips.items() if n > 1] == [], "a ClusterIP was handed out twice"
    ports = Counter(
        p["nodePort"] for s in listed_a for p in s["spec"]["ports"] if p.get("nodePort")
    )
    assert len(ports) == 100
    assert [port for port, n in ports.items() if n > 1] == [], "a node port was handed out twice"
    for svc in created:  # what each server answered is what both now list
        key = (svc["metadata"]["namespace"], svc["metadata"]["name"])
        assert by_name[key]["spec"]["clusterIP"] == svc["spec"]["clusterIP"]

    # Releases go through storage too: all 200 deleted, through either server, free
    # their values for the other (the later tests need the room).
    await asyncio.gather(
        *((b if i % 2 else a).delete("Service", f"svc-{i:03}", "default") for i in range(200))
    )
    assert len((await a.list("Service", "default"))["items"]) == 1  # the kubernetes Service


async def next_event(events: AsyncIterator[tuple[str, dict[str, Any]]], name: str) -> str:
    """The type of the next event about Service `name`, skipping bookmarks and others."""
    async with asyncio.timeout(10):
        async for kind, obj in events:
            if kind != "BOOKMARK" and obj["metadata"]["name"] == name:
                return kind
    raise AssertionError("the watch ended")


async def test_a_watch_on_one_server_sees_writes_through_the_other(
    clients: tuple[Client, Client],
) -> None:
    a, b = clients
    for watcher, writer in ((a, b), (b, a)):
        start = (await watcher.list("Service", "default"))["metadata"]["resourceVersion"]
        events = watcher.watch("Service", "default", resource_version=start)
        name = f"watched-{id(watcher) % 1000}-{time.monotonic_ns() % 10**6}"
        pending = asyncio.ensure_future(next_event(events, name))
        await writer.create(service(name, node_port=False), "default")
        assert await pending == "ADDED"
        await writer.delete("Service", name, "default")
        assert await next_event(events, name) == "DELETED"
        await events.aclose()  # type: ignore[attr-defined]


async def test_killing_an_etcd_member_during_writes_loses_no_acknowledged_service(
    servers: Servers,
) -> None:
    etcd = shared_cluster(3)
    # Both servers talk to the first member; make it the leader, then kill it: the
    # servers must fail over while the survivors elect a new leader.
    leader = 0
    etcd.make_leader(leader)
    # Short client timeouts: a write stuck behind the dead leader is abandoned
    # (its outcome unknown) rather than holding a writer for etcd's own timeout.
    writers_clients = [
        Client(load_kubeconfig(str(server.kubeconfig)), timeout_s=3)
        for server in (servers.a, servers.b)
    ]
    acknowledged: dict[str, str] = {}
    unknown: set[str] = set()
    names = iter(range(10**6))
    stop = asyncio.Event()

    async def writer(client: Client) -> None:
        while not stop.is_set():
            name = f"chaos-{next(names):04}"
            try:
                svc = await client.create(service(name, node_port=False), "default")
                acknowledged[name] = svc["spec"]["clusterIP"]
            except (APIUnavailable, StatusError):
                unknown.add(name)
                await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(writer(c)) for c in writers_clients for _ in range(3)]
    try:
        await asyncio.sleep(0.3)
        before_kill = len(acknowledged)
        etcd.kill(leader)
        deadline = time.monotonic() + 20
        while len(acknowledged) < before_kill + 30 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for c in writers_clients:
            await c.close()
        etcd.restart(leader)
    assert before_kill > 0 and len(acknowledged) >= before_kill + 30, (before_kill, acknowledged)

    reader = Client(load_kubeconfig(str(servers.b.kubeconfig)))
    try:
        items = (await reader.list("Service", "default", label_selector="test=multiserver"))[
            "items"
        ]
    finally:
        await reader.close()
    listed = {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in items}
    for name, ip in acknowledged.items():
        assert listed.get(name) == ip, f"acknowledged Service {name} ({ip}) was lost"
    assert set(listed) - set(acknowledged) <= unknown
    ips = Counter(listed.values())
    assert [ip for ip, n in ips.items() if n > 1] == [], "a ClusterIP was handed out twice"


async def test_when_one_server_dies_the_other_goes_on_serving(
    servers: Servers, clients: tuple[Client, Client]
) -> None:
    _, b = clients
    start = (await b.list("Service", "default"))["metadata"]["resourceVersion"]
    events = b.watch("Service", "default", resource_version=start)
    pending = asyncio.ensure_future(next_event(events, "after-a-died"))

    os.kill(servers.a.process.pid, signal.SIGKILL)
    servers.a.process.wait(timeout=10)

    created = await b.create(service("after-a-died", node_port=True), "default")
    assert created["spec"]["clusterIP"]
    assert await pending == "ADDED"
    names = {s["metadata"]["name"] for s in (await b.list("Service", "default"))["items"]}
    assert "after-a-died" in names
    await events.aclose()  # type: ignore[attr-defined]
