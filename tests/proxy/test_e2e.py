"""End to end: objects created through the API server, Endpoints written by the controller from
pods marked Ready on /status (as the node agent will), the proxy watching through informers, and
traffic over real sockets to backends on pod IPs.

Host mode puts pod IPs in 127.244.0.0/16, which the API accepts as endpoint addresses because
it is the API server's pod range (`--pod-cidr`, the default).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubesvc.allocator.ranges import parse_pod_cidr
from kubesvc.apiserver.app import APIServerConfig, RunningAPIServer, start_apiserver
from kubesvc.client.http import Client
from kubesvc.client.kubeconfig import load_kubeconfig
from kubesvc.controllers.manager import ControllerManager
from kubesvc.proxy.model import ServicePortName
from kubesvc.proxy.server import ClusterSource, ProxyConfig, ProxyServer
from tests.proxy.conftest import (
    Backends,
    cluster_ip,
    eventually,
    pod_ip,
    service,
    udp_echo,
    whoami,
)

POD_RANGE = "127.244.0.0/16"
KUBESVC = str(Path(sys.executable).parent / "kubesvc")


@dataclass
class Cluster:
    data_dir: Path
    api_server: RunningAPIServer
    api: Client
    manager: ControllerManager
    proxy: ProxyServer

    async def pod(self, name: str, ip: str, *, ready: bool, labels: dict[str, str]) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "command": ["sleep", "1"],
                        "ports": [
                            {"name": "http", "containerPort": 8080},
                            {"name": "dns", "containerPort": 5353, "protocol": "UDP"},
                        ],
                    }
                ]
            },
        }
        await self.api.create(body, "default")
        await self.set_ready(name, ip, ready)

    async def set_ready(self, name: str, ip: str, ready: bool) -> None:
        status = {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }
        await self.api.patch("Pod", name, {"status": status}, "default", subresource="status")

    def routed(self, name: str, port: str = "http", protocol: str = "TCP") -> set[str]:
        """The backends the proxy would use now for a service port."""
        proxier = self.proxy.proxier
        assert proxier is not None
        state = proxier.ports.get(ServicePortName("default", name, port, protocol))
        return {b.ip for b in state.cluster_balancer.backends} if state else set()

    async def until_routed(
        self, name: str, ips: set[str], port: str = "http", protocol: str = "TCP"
    ) -> None:
        await eventually(
            lambda: self.routed(name, port, protocol) == ips, 10, f"{name} routed to {ips}"
        )


async def open_cluster(data_dir: Path, port: int = 0) -> RunningAPIServer:
    config = APIServerConfig(data_dir=data_dir, port=port, pod_cidr=parse_pod_cidr(POD_RANGE))
    return await start_apiserver(config)


@contextlib.asynccontextmanager
async def cluster(data_dir: Path) -> AsyncIterator[Cluster]:
    running = await open_cluster(data_dir)
    access = load_kubeconfig(str(running.kubeconfig))
    manager = ControllerManager(access)
    proxy = ProxyServer(
        ProxyConfig(healthz_port=0, metrics_port=None, min_sync_period_s=0.0, node_name="node-a"),
        ClusterSource(access),
    )
    c = Cluster(data_dir, running, Client(access), manager, proxy)
    try:
        await manager.start()
        await proxy.start()
        await proxy.wait_synced(10)
        yield c
    finally:
        await proxy.close()
        await manager.stop()
        await c.api.close()
        await c.api_server.close()  # the current one: a test may have restarted it


SELECTOR = {"app": "web"}
HTTP = [{"name": "http", "port": 18080, "targetPort": 8080}]


async def test_spread_over_ready_pods_none_to_unready_and_dead_ones_skipped(
    tmp_path: Path, backends: Backends
) -> None:
    async with cluster(tmp_path) as c:
        ready, unready, dead = [pod_ip() for _ in range(3)], pod_ip(), pod_ip()
        for ip in [*ready, unready]:
            await backends.tcp(ip, 8080)
        for i, ip in enumerate(ready):
            await c.pod(f"web-{i}", ip, ready=True, labels=SELECTOR)
        await c.pod("web-unready", unready, ready=False, labels=SELECTOR)
        vip = cluster_ip()
        await c.api.create(service("web", vip, HTTP, selector=SELECTOR), "default")
        await c.until_routed("web", set(ready))

        seen = collections.Counter([await whoami(vip, 18080, b"hi") for _ in range(30)])
        assert seen == {f"{ip}:8080": 10 for ip in ready}
        assert backends.hits[f"{unready}:8080"] == 0

        # A pod that is Ready but has nothing listening: refused, skipped, no request fails.
        await c.pod("web-dead", dead, ready=True, labels=SELECTOR)
        await c.until_routed("web", {*ready, dead})
        seen = collections.Counter([await whoami(vip, 18080) for _ in range(12)])
        assert sum(seen.values()) == 12 and set(seen) == {f"{ip}:8080" for ip in ready}

        # Readiness flips move a pod in and out of rotation.
        await c.set_ready("web-unready", unready, True)
        await c.until_routed("web", {*ready, dead, unready})
        assert f"{unready}:8080" in {await whoami(vip, 18080) for _ in range(8)}
        await c.set_ready("web-0", ready[0], False)
        await c.until_routed("web", {*ready[1:], dead, unready})
        before = backends.hits[f"{ready[0]}:8080"]
        for _ in range(8):
            await whoami(vip, 18080)
        assert backends.hits[f"{ready[0]}:8080"] == before

        # The controller's trigger-time annotation fed network_programming_duration_seconds.
        count = c.proxy.metrics.registry.get_sample_value(
            "kubeproxy_network_programming_duration_seconds_count"
        )
        assert count and count >= 1


async def test_client_ip_affinity_through_the_api(tmp_path: Path, backends: Backends) -> None:
    async with cluster(tmp_path) as c:
        ips = [pod_ip() for _ in range(3)]
        for i, ip in enumerate(ips):
            await backends.tcp(ip, 8080)
            await c.pod(f"web-{i}", ip, ready=True, labels=SELECTOR)
        vip = cluster_ip()
        await c.api.create(service("web", vip, HTTP, selector=SELECTOR, affinity_s=1), "default")
        await c.until_routed("web", set(ips))
        first = {await whoami(vip, 18080) for _ in range(6)}
        assert len(first) == 1
        await asyncio.sleep(1.1)
        moved = await whoami(vip, 18080)
        assert moved not in first


async def test_udp_echo_through_a_cluster_ip_from_the_api(
    tmp_path: Path, backends: Backends
) -> None:
    async with cluster(tmp_path) as c:
        ip = pod_ip()
        await backends.udp(ip, 5353)
        await c.pod("dns-0", ip, ready=True, labels={"app": "dns"})
        vip = cluster_ip()
        ports = [{"name": "dns", "port": 18053, "targetPort": 5353, "protocol": "UDP"}]
        await c.api.create(service("dns", vip, ports, selector={"app": "dns"}), "default")
        await c.until_routed("dns", {ip}, "dns", "UDP")
        data, source = await udp_echo(vip, 18053, b"\x12\x34query")
        assert data == b"\x12\x34query" and source == (vip, 18053)


async def test_api_server_down_the_proxy_keeps_serving_then_resyncs(
    tmp_path: Path, backends: Backends
) -> None:
    async with cluster(tmp_path) as c:
        first, second = pod_ip(), pod_ip()
        for ip in (first, second):
            await backends.tcp(ip, 8080)
        await c.pod("web-0", first, ready=True, labels=SELECTOR)
        vip = cluster_ip()
        await c.api.create(service("web", vip, HTTP, selector=SELECTOR), "default")
        await c.until_routed("web", {first})

        port = c.api_server.port
        await c.api_server.close()
        # The API is gone: nothing is queued, healthz stays green, traffic still flows.
        for _ in range(3):
            assert await whoami(vip, 18080) == f"{first}:8080"
        assert c.proxy.healthy()

        c.api_server = await open_cluster(c.data_dir, port)
        await c.pod("web-1", second, ready=True, labels=SELECTOR)
        await c.until_routed("web", {first, second})
        assert {await whoami(vip, 18080) for _ in range(4)} == {f"{first}:8080", f"{second}:8080"}


def _apiserver_has_pod_cidr() -> bool:
    try:
        out = subprocess.run(
            [KUBESVC, "apiserver", "--help"], capture_output=True, text=True, timeout=30
        )
    except OSError:
        return False
    return "--pod-cidr" in out.stdout


@pytest.mark.skipif(
    not _apiserver_has_pod_cidr(),
    reason="`kubesvc apiserver --pod-cidr` does not exist: without it the API refuses "
    "loopback endpoint IPs (127.244.x.y) from another process",
)
async def test_against_an_api_server_process_started_with_pod_cidr(
    tmp_path: Path, backends: Backends
) -> None:
    """The proxy as a client of an API server in another process (user-written Endpoints)."""
    with (tmp_path / "apiserver.log").open("w") as log:
        process = subprocess.Popen(
            [
                KUBESVC,
                "apiserver",
                "--data-dir",
                str(tmp_path),
                "--api-port",
                "0",
                "--pod-cidr",
                POD_RANGE,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        await eventually(lambda: (tmp_path / "kubeconfig").exists(), 20, "kubeconfig written")
        access = load_kubeconfig(str(tmp_path / "kubeconfig"))
        async with Client(access) as api:
            await eventually(lambda: _ready(api), 20, "API ready")
            ip = pod_ip()
            await backends.tcp(ip, 8080)
            vip = cluster_ip()
            await api.create(service("web", vip, [{"name": "http", "port": 18080}]), "default")
            await api.create(
                {
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {"name": "web"},
                    "subsets": [
                        {"addresses": [{"ip": ip}], "ports": [{"name": "http", "port": 8080}]}
                    ],
                },
                "default",
            )
            proxy = ProxyServer(
                ProxyConfig(healthz_port=None, metrics_port=None, min_sync_period_s=0.0),
                ClusterSource(access),
            )
            await proxy.start()
            try:
                assert await eventually(lambda: _whoami_or_none(vip), 10, "routed") == f"{ip}:8080"
            finally:
                await proxy.close()
    finally:
        process.terminate()
        process.wait(10)


async def _ready(api: Client) -> bool:
    try:
        await api.list("Namespace")
        return True
    except Exception:
        return False


async def _whoami_or_none(vip: str) -> Any:
    try:
        return await whoami(vip, 18080, timeout_s=1)
    except (OSError, TimeoutError):
        return None
