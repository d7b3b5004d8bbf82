"""The DNS server on real sockets, fed by a real API server through the client and informers.

The server runs on its own event loop in a thread (as it would in its own
process), so the tests can use blocking clients: `dig`, dnspython, raw sockets.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubesvc.client.kubeconfig import ClusterAccess, load_kubeconfig
from kubesvc.controllers.manager import ControllerManager
from kubesvc.dns.lookup import Lookup
from kubesvc.dns.server import DNSConfig, DNSServer
from tests.apiserver.conftest import Cluster, start_cluster, stop_cluster
from tests.dns.fake import cluster_zone, lines
from tests.needs import require_tools
from tests.waiting import eventually

HOST = "127.0.0.1"
ZONE = "cluster.local"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class ServerThread:
    """A DNSServer (and optionally the controllers) on an event loop of its own."""

    def __init__(
        self,
        config: DNSConfig,
        *,
        access: ClusterAccess | None = None,
        lookup: Lookup | None = None,
        controllers: bool = False,
        wait_synced: bool = True,
    ) -> None:
        self.config = config
        self.access = access
        self.lookup = lookup
        self.controllers = controllers
        self.wait_synced = wait_synced
        self.server: DNSServer | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        manager = None
        server = DNSServer(self.config, access=self.access, lookup=self.lookup)
        try:
            await server.start()
            if self.controllers:
                assert self.access is not None
                manager = ControllerManager(self.access)
                await manager.start()
            if self.wait_synced:
                await server.wait_synced(30)
            self.server = server
        except BaseException as err:
            self.error = err
        self._ready.set()
        try:
            if self.error is None:
                await self._stop.wait()
        finally:
            if manager is not None:
                await manager.stop()
            await server.close()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(40):
            raise AssertionError("DNS server did not start in 40 s")
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        assert not self._thread.is_alive(), "DNS server did not stop"

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port


def udp(port: int, name: str, qtype: str, **kw: Any) -> dns.message.Message:
    q = dns.message.make_query(name, qtype, **kw)
    # Retried as a stub resolver would: UDP may be lost, and this machine is shared.
    for attempt in range(3):
        try:
            return dns.query.udp(q, HOST, port=port, timeout=2)
        except dns.exception.Timeout:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def tcp(port: int, name: str, qtype: str) -> dns.message.Message:
    return dns.query.tcp(dns.message.make_query(name, qtype), HOST, port=port, timeout=3)


def dig(port: int, *args: str) -> str:
    require_tools("dig")
    result = subprocess.run(
        ["dig", f"@{HOST}", "-p", str(port), "+tries=1", "+time=3", *args],
        capture_output=True,
        text=True,
        timeout=15,
    )
    return result.stdout


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("dns"))
    yield running
    stop_cluster(running.process)


@pytest.fixture(scope="module")
def dns_server(cluster: Cluster) -> Iterator[ServerThread]:
    config = DNSConfig(address=HOST, port=0, metrics_port=free_port())
    access = load_kubeconfig(str(cluster.kubeconfig))
    with ServerThread(config, access=access, controllers=True) as running:
        yield running


_ns_counter = 0


def api(cluster: Cluster, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    status, payload, _ = cluster.request(method, path, body, **kw)
    assert status < 300, (status, payload)
    return payload


@pytest.fixture
def ns(cluster: Cluster) -> str:
    global _ns_counter
    _ns_counter += 1
    name = f"dns-{_ns_counter}"
    api(
        cluster,
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    return name


def service(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"name": "http", "port": 80, "targetPort": 8080}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def make_pod(
    cluster: Cluster, ns: str, name: str, ip: str, ready: bool, labels: dict[str, str], **spec: Any
) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "command": ["sleep", "1"],
                    "ports": [{"name": "http", "containerPort": 8080}],
                }
            ],
            **spec,
        },
    }
    api(cluster, "POST", f"/api/v1/namespaces/{ns}/pods", body)
    set_ready(cluster, ns, name, ip, ready)


def set_ready(cluster: Cluster, ns: str, name: str, ip: str, ready: bool) -> None:
    status = {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    api(
        cluster,
        "PATCH",
        f"/api/v1/namespaces/{ns}/pods/{name}/status",
        {"status": status},
        content_type="application/merge-patch+json",
    )


def a_records(reply: dns.message.Message) -> list[str]:
    return sorted(rd.address for rrset in reply.answer if rrset.rdtype in (1, 28) for rd in rrset)


# ---------------------------------------------------------------- before sync, out of zone


def test_servfail_until_synced_and_never_an_open_resolver() -> None:
    # An API that is not there: the informers never sync.
    access = ClusterAccess(server=f"https://{HOST}:{free_port()}", insecure=True)
    metrics_port = free_port()
    config = DNSConfig(address=HOST, port=0, metrics_port=metrics_port)
    with ServerThread(config, access=access, wait_synced=False) as running:
        port = running.port
        assert udp(port, f"svc1.default.svc.{ZONE}", "A").rcode() == dns.rcode.SERVFAIL
        assert tcp(port, "10.0.96.127.in-addr.arpa.", "PTR").rcode() == dns.rcode.SERVFAIL
        assert "status: SERVFAIL" in dig(port, f"kubernetes.default.svc.{ZONE}", "A")
        # Outside the zone: refused, synced or not, with no upstream configured.
        assert udp(port, "example.com.", "A").rcode() == dns.rcode.REFUSED
        assert "status: REFUSED" in dig(port, "example.com", "A")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://{HOST}:{metrics_port}/readyz", timeout=5)
        assert err.value.code == 503


# ---------------------------------------------------------------- records from the API


def test_service_a_record_follows_create_and_delete(
    cluster: Cluster, dns_server: ServerThread, ns: str
) -> None:
    port = dns_server.port
    name = f"web.{ns}.svc.{ZONE}."
    assert udp(port, name, "A").rcode() == dns.rcode.NXDOMAIN  # and now precomputed as such
    created = time.monotonic()
    api(
        cluster,
        "POST",
        f"/api/v1/namespaces/{ns}/services",
        service("web", clusterIP="127.96.0.10"),
    )
    reply = eventually(lambda: (r := udp(port, name, "A")).answer and r)
    appeared_s = time.monotonic() - created
    assert lines(reply.answer) == [f"{name} 5 in a 127.96.0.10"]
    assert appeared_s < 1.0, appeared_s
    assert dig(port, "+short", name.upper(), "A").split() == ["127.96.0.10"]

    index = dns_server.server.index  # type: ignore[union-attr]
    assert index is not None
    for _ in range(20):  # hot in the precomputed store
        udp(port, name, "A")
    deleted = time.monotonic()
    api(cluster, "DELETE", f"/api/v1/namespaces/{ns}/services/web")
    # The moment the watch event has been applied, the very next answer is the new one.
    eventually(lambda: index.service(ns, "web") is None)
    assert udp(port, name, "A").rcode() == dns.rcode.NXDOMAIN
    assert time.monotonic() - deleted < 1.0
    for _ in range(10):
        assert udp(port, name, "A").rcode() == dns.rcode.NXDOMAIN


def test_srv_for_named_ports_and_ptr(cluster: Cluster, dns_server: ServerThread, ns: str) -> None:
    port = dns_server.port
    ports = [
        {"name": "http", "port": 80, "targetPort": 8080},
        {"name": "metrics", "port": 9090, "protocol": "TCP"},
        {"name": "dns", "port": 53, "protocol": "UDP"},
    ]
    api(
        cluster,
        "POST",
        f"/api/v1/namespaces/{ns}/services",
        service("api", clusterIP="127.96.0.11", ports=ports),
    )
    target = f"api.{ns}.svc.{ZONE}."
    reply = eventually(lambda: (r := udp(port, f"_http._tcp.{target}", "SRV")).answer and r)
    assert lines(reply.answer) == [f"_http._tcp.{target} 5 in srv 0 100 80 {target}"]
    assert lines(reply.additional) == [f"{target} 5 in a 127.96.0.11"]
    out = dig(port, "+short", f"_dns._udp.{target}", "SRV")
    assert out.split() == ["0", "100", "53", target]
    assert udp(port, f"_dns._tcp.{target}", "SRV").rcode() == dns.rcode.NXDOMAIN
    # Reverse: the cluster IP names its Service.
    assert dig(port, "+short", "-x", "127.96.0.11").split() == [target]


def test_headless_a_per_ready_pod_and_hostnames(
    cluster: Cluster, dns_server: ServerThread, ns: str
) -> None:
    port = dns_server.port
    make_pod(
        cluster, ns, "db-0", "198.18.5.1", True, {"app": "db"}, hostname="db-0", subdomain="db"
    )
    make_pod(cluster, ns, "db-1", "198.18.5.2", False, {"app": "db"})
    api(
        cluster,
        "POST",
        f"/api/v1/namespaces/{ns}/services",
        service("db", clusterIP="None", selector={"app": "db"}),
    )
    name = f"db.{ns}.svc.{ZONE}."
    eventually(lambda: a_records(udp(port, name, "A")) == ["198.18.5.1"])
    assert dig(port, "+short", f"db-0.{name}", "A").split() == ["198.18.5.1"]
    srv = udp(port, f"_http._tcp.{name}", "SRV")
    assert lines(srv.answer) == [f"_http._tcp.{name} 5 in srv 0 100 8080 db-0.{name}"]
    assert dig(port, "+short", "-x", "198.18.5.1").split() == [f"db-0.{name}"]
    # Readiness flips move the pod in and out of the answer.
    set_ready(cluster, ns, "db-1", "198.18.5.2", True)
    eventually(lambda: a_records(udp(port, name, "A")) == ["198.18.5.1", "198.18.5.2"])
    assert a_records(udp(port, f"198-18-5-2.{name}", "A")) == ["198.18.5.2"]
    set_ready(cluster, ns, "db-0", "198.18.5.1", False)
    set_ready(cluster, ns, "db-1", "198.18.5.2", False)
    # No ready endpoint: a headless name does not exist.
    eventually(lambda: udp(port, name, "A").rcode() == dns.rcode.NXDOMAIN)


def test_external_name_cname(cluster: Cluster, dns_server: ServerThread, ns: str) -> None:
    port = dns_server.port
    body = service("ext", type="ExternalName", externalName="db.example.org")
    del body["spec"]["ports"]
    api(cluster, "POST", f"/api/v1/namespaces/{ns}/services", body)
    name = f"ext.{ns}.svc.{ZONE}."
    reply = eventually(lambda: (r := udp(port, name, "CNAME")).answer and r)
    assert lines(reply.answer) == [f"{name} 5 in cname db.example.org."]
    assert dig(port, "+short", name, "A").split() == ["db.example.org."]


def test_tcp_several_queries_on_one_connection(
    cluster: Cluster, dns_server: ServerThread, ns: str
) -> None:
    port = dns_server.port
    queries = [
        dns.message.make_query(f"dns-version.{ZONE}", "TXT"),
        dns.message.make_query(f"nothing.{ns}.svc.{ZONE}", "A"),
        dns.message.make_query(f"{ZONE}", "SOA"),
    ]
    with socket.create_connection((HOST, port), timeout=5) as sock:
        # All three in one write (pipelined), then a fourth after the answers.
        sock.sendall(
            b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries))
        )
        replies = [read_frame(sock) for _ in queries]
        late = dns.message.make_query(f"{ZONE}", "NS")
        data = late.to_wire()
        sock.sendall(struct.pack("!H", len(data)) + data)
        replies.append(read_frame(sock))
    by_id = {r.id: r for r in replies}
    assert set(by_id) == {q.id for q in [*queries, late]}
    assert lines(by_id[queries[0].id].answer) == [f'dns-version.{ZONE}. 28800 in txt "1.1.0"']
    assert by_id[queries[1].id].rcode() == dns.rcode.NXDOMAIN
    assert by_id[queries[2].id].answer[0].rdtype == dns.rdatatype.SOA


def read_frame(sock: socket.socket) -> dns.message.Message:
    def exactly(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            assert chunk, "connection closed"
            buf += chunk
        return buf

    (size,) = struct.unpack("!H", exactly(2))
    return dns.message.from_wire(exactly(size))


def test_large_headless_answer_truncated_over_udp_whole_over_tcp(
    cluster: Cluster, dns_server: ServerThread, ns: str
) -> None:
    port = dns_server.port
    api(cluster, "POST", f"/api/v1/namespaces/{ns}/services", service("many", clusterIP="None"))
    ips = [f"198.18.9.{i}" for i in range(1, 101)]
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "many"},
        "subsets": [
            {"addresses": [{"ip": ip} for ip in ips], "ports": [{"name": "http", "port": 8080}]}
        ],
    }
    api(cluster, "POST", f"/api/v1/namespaces/{ns}/endpoints", endpoints)
    name = f"many.{ns}.svc.{ZONE}."
    eventually(lambda: len(a_records(tcp(port, name, "A"))) == 100)
    truncated = udp(port, name, "A")
    assert truncated.flags & dns.flags.TC and not truncated.answer
    assert (
        " tc "
        in dig(port, "+notcp", "+ignore", "+noedns", name, "A").split(";; flags:")[1].split(";")[0]
        + " "
    )
    whole = dig(port, "+tcp", "+short", name, "A").split()
    assert sorted(whole) == sorted(ips)
    # dig retries over TCP by itself after a truncated UDP answer.
    assert len(dig(port, "+short", name, "A").split()) == 100


def test_metrics(dns_server: ServerThread) -> None:
    port = dns_server.port
    udp(port, f"dns-version.{ZONE}", "TXT")
    text = (
        urllib.request.urlopen(f"http://{HOST}:{dns_server.config.metrics_port}/metrics", timeout=5)
        .read()
        .decode()
    )
    assert 'kubesvc_dns_queries_total{proto="udp",qtype="TXT",rcode="NOERROR"}' in text
    assert "kubesvc_dns_programming_duration_seconds_bucket" in text
    count = [
        line
        for line in text.splitlines()
        if line.startswith("kubesvc_dns_programming_duration_seconds_count")
    ]
    assert count and float(count[0].split()[-1]) > 0
    ready = urllib.request.urlopen(
        f"http://{HOST}:{dns_server.config.metrics_port}/readyz", timeout=5
    )
    assert ready.status == 200


# ---------------------------------------------------------------- fuzz over the wire

_VALID = [
    dns.message.make_query(f"dns-version.{ZONE}", "TXT").to_wire(),
    dns.message.make_query(f"kubernetes.default.svc.{ZONE}", "A", use_edns=0).to_wire(),
    dns.message.make_query("example.com.", "AAAA").to_wire(),
]


@st.composite
def _packets(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=700))
    data = bytearray(draw(st.sampled_from(_VALID)))
    for _ in range(draw(st.integers(1, 5))):
        pos = draw(st.integers(0, len(data) - 1)) if data else 0
        kind = draw(st.integers(0, 2))
        if kind == 0 and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == 1:
            del data[pos : pos + draw(st.integers(1, 6))]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=6))
    return bytes(data)


def test_fuzz_over_udp_and_tcp_server_keeps_answering(dns_server: ServerThread) -> None:
    port = dns_server.port
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sent = [0]

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(packet=_packets())
    def send(packet: bytes) -> None:
        sock.sendto(packet, (HOST, port))
        sent[0] += 1
        try:
            while True:
                reply, _ = sock.recvfrom(65535)
                if len(reply) >= 12:
                    dns.message.from_wire(reply)  # everything we get back parses
        except BlockingIOError:
            pass

    try:
        send()
    finally:
        sock.close()
    assert sent[0] >= 100
    # TCP: random frames on a few connections; the server answers or closes, never hangs.
    rng = random.Random(8)
    for _ in range(5):
        with socket.create_connection((HOST, port), timeout=3) as conn:
            for _ in range(10):
                frame = rng.randbytes(rng.randint(0, 80))
                try:
                    conn.sendall(struct.pack("!H", len(frame)) + frame)
                except OSError:
                    break
    reply = udp(port, f"dns-version.{ZONE}", "TXT")
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    assert tcp(port, f"{ZONE}", "SOA").answer
    assert dns_server.server is not None and dns_server.server.engine.internal_errors == 0


# ---------------------------------------------------------------- upstream forwarding


class FakeUpstream:
    """A tiny authoritative server for *.example.test on 127.0.0.1, counting what it is asked."""

    def __init__(self, delay_s: float = 0.0, silent: bool = False) -> None:
        self.delay_s = delay_s
        self.silent = silent
        self.asked: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            self.asked.append(query.question[0].name.to_text())
            if self.silent:
                continue
            if self.delay_s:
                threading.Timer(self.delay_s, self._answer, (query, addr)).start()
            else:
                self._answer(query, addr)

    def _answer(self, query: dns.message.Message, addr: tuple[str, int]) -> None:
        reply = dns.message.make_response(query)
        name = query.question[0].name
        if name.to_text().endswith("example.test.") and query.question[0].rdtype == dns.rdatatype.A:
            reply.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "192.0.2.53"))
        else:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        if not self._stop.is_set():
            self.sock.sendto(reply.to_wire(), addr)

    def __enter__(self) -> FakeUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_upstream_forwarding_cache_and_bounds() -> None:
    with FakeUpstream() as upstream:
        config = DNSConfig(address=HOST, port=0, upstreams=(f"{HOST}:{upstream.port}",))
        with ServerThread(config, lookup=cluster_zone()) as running:
            port = running.port
            first = udp(port, "www.example.test.", "A")
            assert first.flags & dns.flags.RA and not first.flags & dns.flags.AA
            assert a_records(first) == ["192.0.2.53"]
            assert a_records(udp(port, "WWW.example.test.", "A")) == ["192.0.2.53"]
            assert upstream.asked.count("www.example.test.") == 1  # the second came from cache
            assert udp(port, "nope.invalid.", "A").rcode() == dns.rcode.NXDOMAIN
            # An ExternalName is completed by the upstream.
            chased = udp(port, "external.testns.svc.cluster.local.", "A")
            assert chased.rcode() == dns.rcode.NXDOMAIN  # ext.interwebs.test does not exist there
            assert lines(chased.answer) == [
                "external.testns.svc.cluster.local. 5 in cname ext.interwebs.test."
            ]
            # Cluster names never go upstream.
            assert udp(port, "svc1.testns.svc.cluster.local.", "A").answer
            assert not any("cluster.local" in name for name in upstream.asked)

    with FakeUpstream(silent=True) as upstream:
        config = DNSConfig(
            address=HOST,
            port=0,
            upstreams=(f"{HOST}:{upstream.port}",),
            upstream_timeout_s=0.3,
            max_upstream_inflight=2,
        )
        with ServerThread(config, lookup=cluster_zone()) as running:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.settimeout(3)
            try:
                for i in range(5):
                    sock.sendto(
                        dns.message.make_query(f"q{i}.example.test.", "A").to_wire(),
                        (HOST, running.port),
                    )
                rcodes = sorted(
                    dns.message.from_wire(sock.recvfrom(4096)[0]).rcode() for _ in range(5)
                )
            finally:
                sock.close()
            # Two in flight time out (SERVFAIL); the rest are refused at once.
            assert rcodes == sorted([dns.rcode.SERVFAIL] * 2 + [dns.rcode.REFUSED] * 3)


def test_endpoint_slices_as_the_source(cluster: Cluster, ns: str) -> None:
    config = DNSConfig(address=HOST, port=0, endpoint_source="EndpointSlice")
    access = load_kubeconfig(str(cluster.kubeconfig))
    with ServerThread(config, access=access) as running:
        api(
            cluster,
            "POST",
            f"/api/v1/namespaces/{ns}/services",
            service("sliced", clusterIP="None"),
        )
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "sliced-1", "labels": {"kubernetes.io/service-name": "sliced"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["198.18.7.1"], "conditions": {"ready": True}},
                {"addresses": ["198.18.7.2"], "conditions": {"ready": False}},
                {"addresses": ["198.18.7.3"]},
            ],
        }
        api(cluster, "POST", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", body)
        name = f"sliced.{ns}.svc.{ZONE}."
        eventually(lambda: a_records(udp(running.port, name, "A")) == ["198.18.7.1", "198.18.7.3"])


def test_tcp_idle_and_half_sent_connections_are_closed() -> None:
    config = DNSConfig(address=HOST, port=0, tcp_idle_timeout_s=0.3)
    with ServerThread(config, lookup=cluster_zone()) as running:
        with socket.create_connection((HOST, running.port), timeout=3) as conn:
            conn.sendall(b"\x00\x40abc")  # a frame that never completes
            started = time.monotonic()
            assert conn.recv(10) == b""  # closed by the server
            assert time.monotonic() - started < 2
        with socket.create_connection((HOST, running.port), timeout=3) as conn:
            conn.sendall(b"\x00\x05hello")  # shorter than a header: closed at once
            assert conn.recv(10) == b""
