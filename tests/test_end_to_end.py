"""The whole seed story in one `kubesvc up`: pods run as processes, a Service gets a ClusterIP,
Endpoints follow readiness, the proxy carries traffic, DNS and env vars find the Service."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import dns.message
import dns.query
import pytest

from tests.apiserver.conftest import Cluster, start_cluster, stop_cluster
from tests.node.conftest import PYTHON
from tests.waiting import eventually

# A pod range and a service range of this run's own, inside loopback (host mode, no root).
_BLOCK = random.randrange(0, 250)
POD_CIDR = f"127.246.{_BLOCK}.0/24"
SERVICE_CIDR = f"127.97.{_BLOCK}.0/24"
LB_POOL = f"127.240.{_BLOCK}.0/30"  # two addresses: .1 and .2

# Each backend answers with its pod name, on its own pod IP, and is ready once it listens.
# Like a well-behaved server (or a preStop sleep) it keeps serving for a second after SIGTERM,
# while its removal from Endpoints reaches the proxy.
SERVER = (
    "import http.server, os, signal, threading\n"
    "signal.signal(signal.SIGTERM, lambda *a: threading.Timer(1.0, os._exit, (0,)).start())\n"
    "name = os.environ['POD_NAME'].encode()\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.send_header('Content-Length', str(len(name)))\n"
    "        self.end_headers(); self.wfile.write(name)\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer((os.environ['POD_IP'], 9376), H).serve_forever()\n"
)


def backend(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "MyApp"}},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "web",
                    "command": [PYTHON, "-c", SERVER],
                    "ports": [{"name": "http", "containerPort": 9376}],
                    "readinessProbe": {
                        "httpGet": {"port": "http", "path": "/"},
                        "periodSeconds": 1,
                    },
                }
            ],
        },
    }


SEED_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "my-service"},
    "spec": {
        "selector": {"app": "MyApp"},
        "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"}],
    },
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(
        tmp_path_factory.mktemp("e2e"),
        "up",
        "--service-cidr",
        SERVICE_CIDR,
        "--pod-cidr",
        POD_CIDR,
        "--dns-port",
        "0",
        "--healthz-port",
        "0",
        "--metrics-port",
        "0",
        "--node-name",
        "e2e-node",
        "--load-balancer-cidr",
        LB_POOL,
    )
    yield running
    stop_cluster(running.process)
    assert running.process.returncode == 0, (running.data_dir / "apiserver.log").read_text()


def apply(cluster: Cluster, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(obj))


def ready_ips(cluster: Cluster) -> list[str]:
    result = cluster.kubectl("get", "endpoints", "my-service", "-o", "json", check=False)
    if result.returncode != 0:
        return []
    subsets = json.loads(result.stdout).get("subsets") or []
    return sorted(a["ip"] for s in subsets for a in s.get("addresses", []))


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def test_traffic_to_the_cluster_ip_reaches_every_ready_pod(cluster: Cluster) -> None:
    for name in ("web-0", "web-1", "web-2"):
        apply(cluster, backend(name))
    apply(cluster, SEED_SERVICE)
    eventually(lambda: len(ready_ips(cluster)) == 3)
    svc = json.loads(cluster.kubectl("get", "svc", "my-service", "-o", "json").stdout)
    url = f"http://{svc['spec']['clusterIP']}:80/"
    eventually(lambda: _answers(url))
    seen = Counter(fetch(url) for _ in range(30))
    # Round-robin, the seed's default: every pod, evenly.
    assert seen == {"web-0": 10, "web-1": 10, "web-2": 10}


def _answers(url: str) -> bool:
    try:
        fetch(url)
    except OSError:
        return False
    return True


def test_a_deleted_pod_stops_getting_traffic_and_no_request_fails(cluster: Cluster) -> None:
    svc = json.loads(cluster.kubectl("get", "svc", "my-service", "-o", "json").stdout)
    url = f"http://{svc['spec']['clusterIP']}:80/"
    cluster.kubectl("delete", "pod", "web-2", "--wait=false")
    deadline = time.monotonic() + 20
    answers: list[str] = []
    while time.monotonic() < deadline and (len(answers) < 10 or "web-2" in answers[-10:]):
        answers.append(fetch(url))  # raises (and fails the test) if a request fails
    assert "web-2" not in answers[-10:]
    assert set(answers[-10:]) == {"web-0", "web-1"}


def test_dns_and_env_vars_find_the_service(cluster: Cluster) -> None:
    svc = json.loads(cluster.kubectl("get", "svc", "my-service", "-o", "json").stdout)
    ip = svc["spec"]["clusterIP"]
    port = int(
        re.search(
            r"DNS: +127\.0\.0\.1:(\d+)", (cluster.data_dir / "apiserver.log").read_text()
        ).group(1)
    )  # type: ignore[union-attr]
    query = dns.message.make_query("my-service.default.svc.cluster.local", "A")
    answer = dns.query.udp(query, "127.0.0.1", port=port, timeout=5)
    assert [r.address for rrset in answer.answer for r in rrset] == [ip]
    env = subprocess.run(
        [
            os.path.join(os.path.dirname(PYTHON), "kubesvc"),
            "env",
            "--kubeconfig",
            str(cluster.kubeconfig),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert env.returncode == 0, env.stderr
    assert f"MY_SERVICE_SERVICE_HOST={ip}\n" in env.stdout
    assert f"MY_SERVICE_PORT=tcp://{ip}:80\n" in env.stdout


def test_udp_service_round_trip(cluster: Cluster) -> None:
    echo = (
        "import os, socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.bind((os.environ['POD_IP'], 5353))\n"
        "while True:\n"
        "    data, peer = s.recvfrom(65535); s.sendto(os.environ['POD_NAME'].encode() + b':' + data, peer)\n"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "echo-0", "labels": {"app": "echo"}},
        "spec": {
            "containers": [
                {
                    "name": "echo",
                    "command": [PYTHON, "-c", echo],
                    "ports": [{"containerPort": 5353, "protocol": "UDP"}],
                }
            ]
        },
    }
    apply(cluster, pod)
    apply(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "echo"},
            "spec": {
                "selector": {"app": "echo"},
                "ports": [{"port": 53, "targetPort": 5353, "protocol": "UDP"}],
            },
        },
    )
    svc = json.loads(cluster.kubectl("get", "svc", "echo", "-o", "json").stdout)
    address = (svc["spec"]["clusterIP"], 53)

    def round_trip() -> str | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            s.sendto(b"ping", address)
            try:
                return s.recvfrom(65535)[0].decode()
            except OSError:
                return None

    assert eventually(round_trip) == "echo-0:ping"


def lb_service(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "lb"},
            "ports": [{"port": 8080, "targetPort": "http"}],
            **spec,
        },
    }


def external_ip(cluster: Cluster, name: str) -> str:
    row = cluster.kubectl("get", "svc", name, "--no-headers").stdout.split()
    return row[3]  # NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE


def test_load_balancer_services_get_an_address_that_carries_traffic(cluster: Cluster) -> None:
    base = LB_POOL.rsplit(".", 1)[0]
    pod = backend("lb-web")
    pod["metadata"]["labels"] = {"app": "lb"}
    apply(cluster, pod)
    apply(cluster, lb_service("lb-first"))
    apply(cluster, lb_service("lb-pinned", loadBalancerIP=f"{base}.2"))
    assert eventually(lambda: external_ip(cluster, "lb-pinned") == f"{base}.2")
    assert eventually(lambda: external_ip(cluster, "lb-first") == f"{base}.1")
    # The proxy answers on the load balancer's address, as on the ClusterIP.
    url = f"http://{base}.1:8080/"
    assert eventually(lambda: _answers(url), what="the load balancer address answers")
    assert fetch(url) == "lb-web"

    # The pool is used up: the next one waits, and says why.
    apply(cluster, lb_service("lb-late"))

    def told() -> bool:
        events = cluster.kubectl(
            "get", "events", "--field-selector", "involvedObject.name=lb-late", "-o", "json"
        ).stdout
        return any(e["reason"] == "AllocationFailed" for e in json.loads(events)["items"])

    eventually(told, what="an AllocationFailed Event")
    assert external_ip(cluster, "lb-late") == "<pending>"
    # A Service that is no longer a LoadBalancer gives its address back; the waiting one gets it.
    cluster.kubectl("patch", "svc", "lb-first", "-p", '{"spec":{"type":"ClusterIP"}}')
    assert eventually(lambda: external_ip(cluster, "lb-first") == "<none>")
    assert eventually(lambda: external_ip(cluster, "lb-late") == f"{base}.1")
    for name in ("lb-first", "lb-pinned", "lb-late"):
        cluster.kubectl("delete", "svc", name)
    cluster.kubectl("delete", "pod", "lb-web", "--wait=false")


def health_check(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_local_load_balancer_tells_its_health_on_its_health_check_node_port(
    cluster: Cluster,
) -> None:
    pod = backend("hc-web")
    pod["metadata"]["labels"] = {"app": "hc"}
    apply(cluster, pod)
    for name, app in (("hc-local", "hc"), ("hc-none", "nobody")):
        svc = lb_service(name, externalTrafficPolicy="Local")
        svc["spec"]["selector"] = {"app": app}
        apply(cluster, svc)
    ports = {
        name: json.loads(cluster.kubectl("get", "svc", name, "-o", "json").stdout)["spec"][
            "healthCheckNodePort"
        ]
        for name in ("hc-local", "hc-none")
    }
    # This node runs the one ready pod of hc-local: 200 and its count; hc-none has none: 503.
    want = (200, {"service": {"namespace": "default", "name": "hc-local"}, "localEndpoints": 1})
    assert eventually(lambda: _without_healthy(health_check(ports["hc-local"])) == want)
    status, body = health_check(ports["hc-none"])
    assert (status, body["localEndpoints"], body["serviceProxyHealthy"]) == (503, 0, True)
    # Deleting the Service closes its port.
    cluster.kubectl("delete", "svc", "hc-local")
    eventually(lambda: not _answers(f"http://127.0.0.1:{ports['hc-local']}/"))
    cluster.kubectl("delete", "svc", "hc-none")
    cluster.kubectl("delete", "pod", "hc-web", "--wait=false")


def _without_healthy(result: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    status, body = result
    return status, {k: v for k, v in body.items() if k != "serviceProxyHealthy"}
