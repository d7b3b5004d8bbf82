"""The userspace proxy on real sockets, fed from in-memory objects through the same handlers the
informers call (test_e2e.py does the same through the API server)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import socket
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from kubesvc.proxy.model import ServicePortName
from kubesvc.proxy.proxyprotocol import ProxyHeader
from kubesvc.proxy.server import MemorySource, ProxyConfig, ProxyServer
from tests.proxy.conftest import (
    Backends,
    cluster_ip,
    endpoints,
    eventually,
    pod_ip,
    service,
    udp_echo,
    whoami,
)

HTTP = [{"name": "http", "port": 18080, "protocol": "TCP"}]
EP_HTTP = [{"name": "http", "port": 8080, "protocol": "TCP"}]
BASE = ProxyConfig(
    healthz_port=0,
    metrics_port=None,
    min_sync_period_s=0.0,
    node_name="node-a",
    failure_hold_s=2.0,
)


@dataclass
class Harness:
    server: ProxyServer
    source: MemorySource

    def apply(self, *objs: dict[str, Any]) -> None:
        """Deliver objects as informer events and apply them at once."""
        for obj in objs:
            self.source.apply(obj)
        self.server.flush()

    def delete(self, kind: str, name: str) -> None:
        self.source.delete(kind, name)
        self.server.flush()

    def port(self, name: str, port: str = "http", protocol: str = "TCP") -> Any:
        assert self.server.proxier is not None
        return self.server.proxier.ports[ServicePortName("default", name, port, protocol)]


@contextlib.asynccontextmanager
async def running(config: ProxyConfig = BASE) -> AsyncIterator[Harness]:
    source = MemorySource()
    server = ProxyServer(config, source)
    await server.start()
    try:
        await server.wait_synced(5)
        yield Harness(server, source)
    finally:
        await server.close()


@pytest.fixture
async def proxy() -> AsyncIterator[Harness]:
    async with running() as harness:
        yield harness


async def test_traffic_spreads_over_all_ready_backends_and_never_reaches_a_not_ready_one(
    proxy: Harness, backends: Backends
) -> None:
    ready = [pod_ip() for _ in range(3)]
    unready = pod_ip()
    for ip in [*ready, unready]:
        await backends.tcp(ip, 8080)
    vip = cluster_ip()
    proxy.apply(
        service("web", vip, HTTP),
        endpoints("web", ready, EP_HTTP, not_ready=[unready]),
    )
    seen = collections.Counter([await whoami(vip, 18080, b"ping") for _ in range(30)])
    assert seen == {f"{ip}:8080": 10 for ip in ready}  # round-robin: exactly even
    assert backends.hits[f"{unready}:8080"] == 0


async def test_client_ip_affinity_sticks_then_moves_after_its_timeout(
    proxy: Harness, backends: Backends
) -> None:
    ips = [pod_ip() for _ in range(3)]
    for ip in ips:
        await backends.tcp(ip, 8080)
    vip = cluster_ip()
    proxy.apply(service("sticky", vip, HTTP, affinity_s=1), endpoints("sticky", ips, EP_HTTP))
    first = {await whoami(vip, 18080) for _ in range(5)}
    assert len(first) == 1
    await asyncio.sleep(1.1)
    after = await whoami(vip, 18080)
    assert after not in first
    assert {await whoami(vip, 18080) for _ in range(3)} == {after}


async def test_a_dead_backend_is_skipped_without_a_failed_request(
    proxy: Harness, backends: Backends
) -> None:
    live = [pod_ip(), pod_ip()]
    dead = pod_ip()  # listed as ready, but nothing listens: connection refused
    for ip in live:
        await backends.tcp(ip, 8080)
    vip = cluster_ip()
    proxy.apply(service("web", vip, HTTP), endpoints("web", [*live, dead], EP_HTTP))
    seen = collections.Counter([await whoami(vip, 18080, b"x") for _ in range(20)])
    assert set(seen) == {f"{ip}:8080" for ip in live}
    assert sum(seen.values()) == 20
    assert proxy.port("web").connect_failures >= 1
    assert proxy.port("web").rejected == 0


async def test_no_backend_resets_the_connection(proxy: Harness) -> None:
    vip = cluster_ip()
    proxy.apply(service("empty", vip, HTTP))

    async def attempt() -> bytes:
        reader, writer = await asyncio.open_connection(vip, 18080)
        try:
            return await reader.read()
        finally:
            writer.close()

    # The reset may beat the client's own view of the handshake: either way it is a reset.
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(attempt(), 2)
    assert proxy.port("empty").rejected == 1


async def test_udp_echo_through_a_cluster_ip_with_the_largest_datagram(
    proxy: Harness, backends: Backends
) -> None:
    ip = pod_ip()
    await backends.udp(ip, 5353)
    vip = cluster_ip()
    ports = [{"name": "dns", "port": 18053, "protocol": "UDP"}]
    proxy.apply(
        service("dns", vip, ports),
        endpoints("dns", [ip], [{"name": "dns", "port": 5353, "protocol": "UDP"}]),
    )
    for size in (1, 1400, 65507):
        payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
        data, source = await udp_echo(vip, 18053, payload)
        assert data == payload
        assert source == (vip, 18053)  # the reply comes from the service address


async def test_udp_moves_to_the_next_backend_when_one_has_no_listener(
    proxy: Harness, backends: Backends
) -> None:
    live, dead = pod_ip(), pod_ip()
    await backends.udp(live, 5353)
    vip = cluster_ip()
    ports = [{"name": "dns", "port": 18053, "protocol": "UDP"}]
    ep_ports = [{"name": "dns", "port": 5353, "protocol": "UDP"}]
    proxy.apply(service("dns", vip, ports), endpoints("dns", [dead, live], ep_ports))
    for i in range(4):  # each client socket is a new session; every one gets its answer
        data, _ = await udp_echo(vip, 18053, b"q%d" % i)
        assert data == b"q%d" % i


async def test_udp_sessions_end_after_their_idle_timeout(backends: Backends) -> None:
    async with running(replace(BASE, udp_idle_timeout_s=0.2)) as proxy:
        ip = pod_ip()
        await backends.udp(ip, 5353)
        vip = cluster_ip()
        ports = [{"name": "dns", "port": 18053, "protocol": "UDP"}]
        proxy.apply(
            service("dns", vip, ports),
            endpoints("dns", [ip], [{"name": "dns", "port": 5353, "protocol": "UDP"}]),
        )
        await udp_echo(vip, 18053, b"hi")
        port = proxy.port("dns", "dns", "UDP")
        assert port.active() == 1
        await eventually(lambda: port.active() == 0, 2, "UDP session swept")


async def test_removing_an_endpoint_leaves_established_connections_alone(
    proxy: Harness, backends: Backends
) -> None:
    ips = [pod_ip(), pod_ip()]
    for ip in ips:
        await backends.tcp(ip, 8080)
    vip = cluster_ip()
    proxy.apply(service("web", vip, HTTP), endpoints("web", ips, EP_HTTP))
    reader, writer = await asyncio.open_connection(vip, 18080)
    name = (await reader.readline()).decode().strip()
    # The endpoint this connection uses goes away...
    proxy.apply(endpoints("web", [ip for ip in ips if f"{ip}:8080" != name], EP_HTTP))
    # ...new connections avoid it, and the old one still works.
    assert {await whoami(vip, 18080) for _ in range(3)} == {f"{ip}:8080" for ip in ips} - {name}
    writer.write(b"still here")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 2) == b"still here"
    writer.close()


async def test_deleting_the_service_closes_its_listeners_and_connections(
    proxy: Harness, backends: Backends
) -> None:
    ip = pod_ip()
    await backends.tcp(ip, 8080)
    vip = cluster_ip()
    proxy.apply(service("web", vip, HTTP), endpoints("web", [ip], EP_HTTP))
    reader, writer = await asyncio.open_connection(vip, 18080)
    assert await reader.readline()
    proxy.delete("Service", "web")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 2)
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(vip, 18080)
    await eventually(lambda: backends.open[f"{ip}:8080"] == 0, 2, "backend side closed")


async def test_bulk_transfer_both_ways_with_backpressure_and_half_close(
    proxy: Harness, backends: Backends
) -> None:
    ip = pod_ip()
    await backends.tcp(ip, 8080)
    vip = cluster_ip()
    proxy.apply(service("bulk", vip, HTTP), endpoints("bulk", [ip], EP_HTTP))
    payload = bytes(range(256)) * (32 * 1024)  # 8 MiB, echoed back while it is being sent
    assert await whoami(vip, 18080, payload, timeout_s=10) == f"{ip}:8080"
    # The half-closed, fully answered connection is gone from the proxy.
    await eventually(lambda: proxy.port("bulk").active() == 0, 2, "relay closed")
    # The stream was spliced (zero copy): its pipes went back to the pool, empty.
    assert proxy.server.proxier is not None and proxy.server.proxier.pipes._free


async def test_endpoint_slices_feed_the_same_model(backends: Backends) -> None:
    async with running(replace(BASE, endpoints_kind="EndpointSlice")) as proxy:
        ips = [pod_ip(), pod_ip()]
        for ip in ips:
            await backends.tcp(ip, 8080)
        vip = cluster_ip()
        slices = [
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"web-{i}",
                    "namespace": "default",
                    "labels": {"kubernetes.io/service-name": "web"},
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
                "ports": EP_HTTP,
            }
            for i, ip in enumerate(ips)
        ]
        proxy.apply(service("web", vip, HTTP), *slices)
        assert {await whoami(vip, 18080) for _ in range(4)} == {f"{ip}:8080" for ip in ips}


async def test_idle_connections_are_closed_after_the_idle_timeout(backends: Backends) -> None:
    async with running(replace(BASE, tcp_idle_timeout_s=0.3)) as proxy:
        ip = pod_ip()
        await backends.tcp(ip, 8080)
        vip = cluster_ip()
        proxy.apply(service("web", vip, HTTP), endpoints("web", [ip], EP_HTTP))
        reader, writer = await asyncio.open_connection(vip, 18080)
        assert await reader.readline()
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed by the proxy
        writer.close()


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_proxy_protocol_tells_the_backend_who_connected(
    proxy: Harness, backends: Backends, version: str
) -> None:
    ip = pod_ip()
    await backends.tcp(ip, 8080, proxy_protocol=True)
    vip = cluster_ip()
    annotations = {"proxy.kubesvc.io/proxy-protocol": version}
    proxy.apply(service("pp", vip, HTTP, annotations=annotations), endpoints("pp", [ip], EP_HTTP))
    reader, writer = await asyncio.open_connection(vip, 18080)
    client_ip, client_port = writer.get_extra_info("sockname")[:2]
    assert await reader.readline()
    writer.write(b"payload")
    writer.write_eof()
    assert await reader.read() == b"payload"  # the header went to the backend only
    writer.close()
    assert backends.headers == [ProxyHeader(client_ip, client_port, vip, 18080)]


async def test_scheduler_by_annotation_and_its_change(proxy: Harness, backends: Backends) -> None:
    ips = [pod_ip() for _ in range(3)]
    for ip in ips:
        await backends.tcp(ip, 8080)
    vip = cluster_ip()
    hashed = service("web", vip, HTTP, annotations={"proxy.kubesvc.io/scheduler": "sh"})
    proxy.apply(hashed, endpoints("web", ips, EP_HTTP))
    assert (
        len({await whoami(vip, 18080) for _ in range(6)}) == 1
    )  # source hashing: one client, one backend
    proxy.apply(service("web", vip, HTTP))  # annotation gone: the node's rr
    assert len({await whoami(vip, 18080) for _ in range(6)}) == 3


async def test_node_ports_and_external_ips_listen_too(backends: Backends) -> None:
    node = cluster_ip()  # any free loopback address serves as the node's
    async with running(replace(BASE, node_addresses=(node,))) as proxy:
        ip = pod_ip()
        await backends.tcp(ip, 8080)
        vip, external = cluster_ip(), cluster_ip()
        svc = service(
            "np",
            vip,
            [{"name": "http", "port": 18080, "nodePort": 30080}],
            type="NodePort",
            externalIPs=[external],
        )
        proxy.apply(svc, endpoints("np", [ip], EP_HTTP))
        for address, port in ((vip, 18080), (node, 30080), (external, 18080)):
            assert await whoami(address, port) == f"{ip}:8080"


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


async def test_healthz_and_metrics(backends: Backends) -> None:
    async with running(replace(BASE, metrics_port=0)) as proxy:
        ip = pod_ip()
        await backends.tcp(ip, 8080)
        vip = cluster_ip()
        trigger = {"endpoints.kubernetes.io/last-change-trigger-time": "2020-01-01T00:00:00Z"}
        proxy.apply(service("web", vip, HTTP), endpoints("web", [ip], EP_HTTP, annotations=trigger))
        reader, writer = await asyncio.open_connection(vip, 18080)
        assert await reader.readline()
        status, body = await asyncio.to_thread(_get, proxy.server.healthz_port or 0, "/healthz")
        assert status == 200 and json.loads(body)["lastUpdated"]
        assert proxy.server.metrics_port
        status, text = await asyncio.to_thread(_get, proxy.server.metrics_port, "/metrics")
        writer.close()
        assert status == 200
        assert "kubeproxy_sync_proxy_rules_duration_seconds_count" in text
        assert "kubeproxy_network_programming_duration_seconds_count 1.0" in text
        labels = 'namespace="default",port="http",protocol="TCP",service="web"'
        assert f"kubesvc_proxy_connections_active{{{labels}}} 1.0" in text
        assert f"kubesvc_proxy_connections_total{{{labels}}} 1.0" in text


async def test_healthz_fails_when_a_queued_change_is_not_applied(backends: Backends) -> None:
    async with running(replace(BASE, sync_period_s=0.2, min_sync_period_s=0.0)) as proxy:
        assert proxy.server.sync is not None and proxy.server.proxier is not None
        # A backend that cannot apply anything: changes stay queued.
        proxy.server.sync.backend = _Broken()
        proxy.source.apply(service("web", cluster_ip(), HTTP))
        status, _ = await eventually(
            lambda: (
                asyncio.to_thread(_get, proxy.server.healthz_port or 0, "/healthz")
                if not proxy.server.healthy()
                else None
            ),
            3,
            "healthz turns red",
        )
        assert status == 503


class _Broken:
    def sync(self, *_: Any) -> None:
        raise OSError("cannot apply")


def test_listen_socket_options_do_not_need_root() -> None:
    # Binding any 127/8 address needs no address configured and no privilege (host mode).
    sock = socket.socket()
    try:
        sock.bind((cluster_ip(), 0))
    finally:
        sock.close()


async def test_sctp_is_not_carried_in_userspace_mode_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from kubesvc.proxy.model import ServicePort, Snapshot
    from kubesvc.proxy.userspace import UserspaceProxier

    tcp = ServicePortName("default", "web", "", "TCP")
    sctp = ServicePortName("default", "signal", "", "SCTP")
    snapshot = Snapshot(
        {
            tcp: ServicePort(tcp, ("127.96.5.1",), 80),
            sctp: ServicePort(sctp, ("127.96.5.2",), 9000, "SCTP"),
        },
        {},
        1,
    )
    proxier = UserspaceProxier()
    try:
        for _ in range(2):
            wanted = proxier.desired_listeners(snapshot)
        assert set(wanted) == {("127.96.5.1", 80, "TCP")}
        warnings = [r.getMessage() for r in caplog.records if "SCTP" in r.getMessage()]
        assert len(warnings) == 1
        assert "default/signal" in warnings[0] and "iptables or nftables" in warnings[0]
    finally:
        proxier.close()


async def test_load_balancer_source_ranges_admit_only_their_sources(backends: Backends) -> None:
    async with running(BASE) as proxy:
        ip = pod_ip()
        await backends.tcp(ip, 8080)
        vip, lb, allowed = cluster_ip(), cluster_ip(), cluster_ip()
        svc = service(
            "guarded",
            vip,
            [{"name": "http", "port": 18081, "nodePort": 30081}],
            type="LoadBalancer",
            loadBalancerSourceRanges=[f"{allowed}/32"],
        )
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": lb}]}}
        proxy.apply(svc, endpoints("guarded", [ip], EP_HTTP))

        async def first_line(source: str) -> bytes:
            reader, writer = await asyncio.open_connection(lb, 18081, local_addr=(source, 0))
            try:
                return await reader.readline()
            finally:
                writer.close()

        assert (await first_line(allowed)).decode().strip() == f"{ip}:8080"
        # Any other source is reset at once; the ClusterIP stays open to it.
        with contextlib.suppress(ConnectionResetError):
            assert await first_line("127.0.0.1") == b""
        assert await whoami(vip, 18081) == f"{ip}:8080"
