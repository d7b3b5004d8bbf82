"""Two nodes as network namespaces (root): a pod on node A reaches a Service whose pod runs
on node B.

Topology, all inside namespaces this test makes (198.18.0.0/15 only):

    [ns A] API server, controllers, `kubesvc node` (netns mode, userspace proxy)
           bridge 198.18.1.1/24, pods 198.18.1.0/24; veth 198.19.255.1/30
             ‖  route 198.18.2.0/24 via 198.19.255.2 (and back)
    [ns B] `kubesvc node` (netns mode, --no-proxy --no-dns)
           bridge 198.18.2.1/24, pods 198.18.2.0/24; veth 198.19.255.2/30

ClusterIPs come from 198.19.128.0/24, a `local` route in A's namespace, so the
userspace proxy's listeners there receive what A's pods send to a ClusterIP.
Deleting the two namespaces removes the veths and bridges with them.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apiserver.conftest import KUBESVC, stop_cluster
from tests.needs import require_root_tools
from tests.node.conftest import PYTHON, eventually, kill_leftovers, pod
from tests.node.test_netns import CLIENT, SERVER

TOOLS = ("ip", "nsenter", "unshare", "kubectl")
LINK_A, LINK_B = "198.19.255.1", "198.19.255.2"
SERVICE_CIDR = "198.19.128.0/24"
NODES = {"kmn-a": ("198.18.1.0/24", LINK_A), "kmn-b": ("198.18.2.0/24", LINK_B)}


def _require_root() -> None:
    require_root_tools(*TOOLS, what="two netns nodes: network namespaces, veth pairs, bridges")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class TwoNodes:
    def __init__(self, base: Path) -> None:
        tag = os.getpid()
        self.base = base
        self.ns = {"kmn-a": f"kmn-a-{tag}", "kmn-b": f"kmn-b-{tag}"}
        self.kubeconfig = base / "api" / "kubeconfig"
        self.procs: list[subprocess.Popen[str]] = []

    def spawn(self, node: str, name: str, *args: str) -> subprocess.Popen[str]:
        with (self.base / f"{name}.log").open("a") as log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns[node], KUBESVC, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.base / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        exe = ["ip", "netns", "exec", self.ns["kmn-a"], "kubectl"]
        config = ["--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.base / "kc")]
        result = subprocess.run(
            [*exe, *config, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result.stdout

    def get(self, *args: str) -> Any:
        out = self.kubectl("get", *args, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else {}


def _wait_started(nodes: TwoNodes, proc: subprocess.Popen[str], name: str, text: str) -> None:
    eventually(
        lambda: text in nodes.log(name) or proc.poll() is not None, 30, what=f"{name} started"
    )
    assert proc.poll() is None, nodes.log(name)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    _require_root()
    nodes = TwoNodes(tmp_path_factory.mktemp("netns2"))
    a, b = nodes.ns["kmn-a"], nodes.ns["kmn-b"]
    made: list[str] = []
    try:
        for ns in (a, b):
            ip("netns", "add", ns)
            made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
            subprocess.run(
                ["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
                check=True,
                timeout=10,
            )
        # The link between the two nodes: made in A, its other end moved to B.
        ip("-n", a, "link", "add", "eth-b", "type", "veth", "peer", "name", "eth-a", "netns", b)
        ip("-n", a, "addr", "add", f"{LINK_A}/30", "dev", "eth-b")
        ip("-n", b, "addr", "add", f"{LINK_B}/30", "dev", "eth-a")
        ip("-n", a, "link", "set", "eth-b", "up")
        ip("-n", b, "link", "set", "eth-a", "up")
        ip("-n", a, "route", "add", NODES["kmn-b"][0], "via", LINK_B)
        ip("-n", b, "route", "add", NODES["kmn-a"][0], "via", LINK_A)
        ip("-n", a, "route", "add", "local", SERVICE_CIDR, "dev", "lo")

        api = nodes.spawn(
            "kmn-a",
            "api",
            "apiserver",
            "--data-dir",
            str(nodes.base / "api"),
            "--api-port",
            "0",
            "--bind-address",
            LINK_A,
            "--service-cidr",
            SERVICE_CIDR,
            "--pod-cidr",
            "198.18.0.0/16",
        )
        _wait_started(nodes, api, "api", "kubesvc API server on")
        eventually(lambda: nodes.kubectl("get", "--raw", "/readyz", check=False) == "ok", 20)
        ctl = nodes.spawn(
            "kmn-a",
            "controllers",
            "controllers",
            "--kubeconfig",
            str(nodes.kubeconfig),
            "--node-monitor-grace-period",
            "10",
        )
        _wait_started(nodes, ctl, "controllers", "controllers running")
        for name, (cidr, node_ip) in NODES.items():
            flags = ["--healthz-port", "0", "--metrics-port", "0", "--no-dns"]
            if name == "kmn-b":
                flags = ["--no-proxy", "--no-dns"]
            proc = nodes.spawn(
                name,
                name,
                "node",
                "--kubeconfig",
                str(nodes.kubeconfig),
                "--data-dir",
                str(nodes.base / name),
                "--node-name",
                name,
                "--node-ip",
                node_ip,
                "--pod-network",
                "netns",
                "--pod-cidr",
                cidr,
                "--heartbeat-interval",
                "2",
                *flags,
            )
            _wait_started(nodes, proc, name, "running against")
        yield nodes
    finally:
        # Pods go first, stopped by their agents; whatever fails here, the rest still runs.
        with contextlib.suppress(AssertionError, OSError, subprocess.SubprocessError):
            nodes.kubectl("delete", "namespace", "mn-net", "--wait=false", check=False)
            eventually(
                lambda: not nodes.get("pods", "-n", "mn-net").get("items"),
                20,
                what="pods gone",
            )
        for proc in reversed(nodes.procs):
            stop_cluster(proc, grace_s=15)
        leftovers = kill_leftovers(str(nodes.base))
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False, timeout=10)
    assert not leftovers, f"pod processes left behind: {leftovers}"


def test_a_pod_on_node_a_reaches_a_service_backed_on_node_b(
    cluster: TwoNodes, tmp_path: Path
) -> None:
    nodes = {n["metadata"]["name"]: n for n in cluster.get("nodes")["items"]}
    assert sorted(nodes) == ["kmn-a", "kmn-b"]
    cluster.kubectl("create", "namespace", "mn-net")
    server_out, client_out = tmp_path / "server", tmp_path / "client"
    server = pod(
        "server",
        [PYTHON, "-c", SERVER, str(server_out)],
        labels={"app": "web"},
        readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1},
        nodeSelector={"kubernetes.io/hostname": "kmn-b"},
    )
    cluster.kubectl("create", "-n", "mn-net", "-f", "-", stdin=json.dumps(server))
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080}]},
    }
    cluster.kubectl("create", "-n", "mn-net", "-f", "-", stdin=json.dumps(service))
    cluster_ip = cluster.get("service", "web", "-n", "mn-net")["spec"]["clusterIP"]
    assert cluster_ip.startswith("198.19.128.")

    def endpoint() -> str | None:
        subsets = cluster.get("endpoints", "web", "-n", "mn-net").get("subsets") or []
        addresses = [a["ip"] for s in subsets for a in s.get("addresses") or []]
        return addresses[0] if addresses else None

    server_ip = eventually(endpoint, 30, what="the server pod ready in the Service's Endpoints")
    assert server_ip.startswith("198.18.2.")  # node B's range
    client = pod(
        "client",
        [PYTHON, "-c", CLIENT, str(client_out)],
        nodeSelector={"kubernetes.io/hostname": "kmn-a"},
    )
    client["spec"]["containers"][0]["env"] = [{"name": "TARGET", "value": cluster_ip}]
    cluster.kubectl("create", "-n", "mn-net", "-f", "-", stdin=json.dumps(client))
    eventually(client_out.exists, 30, what="the client's answer")
    assert client_out.read_text() == "hello from server"
    placed = {
        p["metadata"]["name"]: (p["spec"]["nodeName"], p["status"].get("podIP", ""))
        for p in cluster.get("pods", "-n", "mn-net")["items"]
    }
    assert placed["server"][0] == "kmn-b" and placed["client"][0] == "kmn-a"
    assert placed["client"][1].startswith("198.18.1.")
