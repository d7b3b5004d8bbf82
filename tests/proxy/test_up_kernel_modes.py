"""`kubesvc up --proxy-mode iptables|nftables|ipvs` as a user runs it (root only).

`ipvs` is there for its fallback: this kernel has no IPVS, so `up` says so and
programs iptables, as the seed describes.

The whole cluster — API server, controllers, node agent in namespace mode, and
the proxy programming the kernel — runs inside a network namespace this test
makes, so the rules it writes are that namespace's and never the host's;
deleting the namespace removes everything. Addresses are from 198.18.0.0/15:
pods 198.18.3.0/24 on the node bridge, ClusterIPs 198.19.130.0/24, routed to a
veth pair so that the node's own connections have a route before DNAT.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesvc.proxy.ipvs import ipvs_support
from tests.apiserver.conftest import KUBESVC
from tests.needs import require_root_tools
from tests.node.conftest import PYTHON, eventually, pod
from tests.node.test_netns import SERVER, NodeNamespace, up_in_namespace

POD_CIDR = "198.18.3.0/24"
SERVICE_CIDR = "198.19.130.0/24"
NODE_LINK = "198.19.131.1/24"
TOOLS = {
    "iptables": ("ip", "nsenter", "unshare", "kubectl", "curl", "iptables-save"),
    "nftables": ("ip", "nsenter", "unshare", "kubectl", "curl", "nft"),
    "ipvs": ("ip", "nsenter", "unshare", "kubectl", "curl", "iptables-save"),
}


def in_ns(ns: str, *argv: str, timeout_s: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout_s
    )


def rules(ns: str, mode: str) -> str:
    if mode == "nftables":
        return in_ns(ns, "nft", "list", "ruleset").stdout
    return in_ns(ns, "iptables-save").stdout + in_ns(ns, "iptables-legacy-save").stdout


def curl(ns: str, url: str) -> subprocess.CompletedProcess[str]:
    return in_ns(ns, "curl", "-sS", "--max-time", "2", url)


@pytest.fixture(scope="module", params=["iptables", "nftables", "ipvs"])
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeNamespace]:
    mode: str = request.param
    if mode == "ipvs" and ipvs_support()[0]:
        pytest.skip("this kernel has IPVS: the fallback to iptables cannot be shown here")
    require_root_tools(*TOOLS[mode], what=f"kubesvc up --proxy-mode {mode} in a network namespace")
    links = [
        ["link", "add", "node0", "type", "veth", "peer", "name", "node1"],
        ["addr", "add", NODE_LINK, "dev", "node0"],
        ["link", "set", "node0", "up"],
        ["link", "set", "node1", "up"],
        ["route", "add", SERVICE_CIDR, "dev", "node0"],
    ]
    flags = ["--proxy-mode", mode, "--service-cidr", SERVICE_CIDR, "--min-sync-period", "0"]
    flags += ["--node-name", "kernel-node", "--pod-network", "netns", "--pod-cidr", POD_CIDR]
    name = f"kst-up-{mode[:3]}-{os.getpid()}"
    with up_in_namespace(name, tmp_path_factory.mktemp(f"up-{mode}"), flags, links) as ns:
        yield ns


def mode_of(node: NodeNamespace) -> str:
    return "nftables" if "-nft-" in node.name else "iptables"


def test_traffic_to_a_cluster_ip_spreads_over_the_ready_pods(
    node: NodeNamespace, tmp_path: Path
) -> None:
    mode = mode_of(node)
    if "-ipv-" in node.name:
        said = (node.data_dir / "up.log").read_text()
        assert "IPVS is not available" in said and "falling back to iptables" in said, said
    for name in ("web-a", "web-b"):
        server = pod(
            name,
            [PYTHON, "-c", SERVER, str(tmp_path / name)],
            labels={"app": "web"},
            readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1},
        )
        node.kubectl("create", "-f", "-", stdin=json.dumps(server))
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    node.kubectl("create", "-f", "-", stdin=json.dumps(service))
    cluster_ip = json.loads(node.kubectl("get", "svc", "web", "-o", "json"))["spec"]["clusterIP"]
    assert cluster_ip.startswith("198.19.130.")

    def ready_addresses() -> int:
        ep = json.loads(node.kubectl("get", "endpoints", "web", "-o", "json"))
        return sum(len(s.get("addresses") or []) for s in ep.get("subsets") or [])

    eventually(lambda: ready_addresses() == 2, 40, what="both pods ready in Endpoints")
    # The proxy wrote kernel rules for the ClusterIP, in this namespace only.
    eventually(lambda: cluster_ip in rules(node.name, mode), 20, what=f"{mode} rules")
    assert cluster_ip not in rules_on_host(mode)

    answers: Counter[str] = Counter()
    deadline = time.monotonic() + 30
    while len(answers) < 2 and time.monotonic() < deadline:
        result = curl(node.name, f"http://{cluster_ip}:80/")
        if result.returncode == 0:
            answers[result.stdout] += 1
    assert set(answers) == {"hello from web-a", "hello from web-b"}, answers

    # No endpoints any more: the kernel refuses the connection at once.
    node.kubectl("delete", "pod", "web-a", "web-b", "--grace-period", "1", "--wait=false")
    eventually(lambda: ready_addresses() == 0, 30, what="Endpoints emptied")

    def refused_fast() -> bool:
        started = time.monotonic()
        result = curl(node.name, f"http://{cluster_ip}:80/")
        return result.returncode == 7 and time.monotonic() - started < 1.0  # 7: refused

    eventually(refused_fast, 20, what="connections to a Service without endpoints refused")
    eventually(
        lambda: not node.kubectl("get", "pods", "-o", "name"),
        30,
        what="the deleted pods gone (SIGTERM, 1 s grace, SIGKILL)",
    )


def test_rules_outlive_up_and_cleanup_removes_them(node: NodeNamespace) -> None:
    mode = mode_of(node)
    os.kill(node.process.pid, signal.SIGTERM)
    assert node.process.wait(timeout=20) == 0
    # As kube-proxy's, the rules stay when the proxy stops (traffic keeps flowing)...
    assert "KUBE-SERVICES" in rules(node.name, mode) or "table ip kubesvc" in rules(node.name, mode)
    # ...until the user asks for them to go.
    result = in_ns(node.name, KUBESVC, "proxy", "--cleanup")
    assert result.returncode == 0, result.stderr
    left = rules(node.name, mode)
    assert "KUBE-" not in left and "kubesvc" not in left, left


def rules_on_host(mode: str) -> str:
    argv = ["nft", "list", "ruleset"] if mode == "nftables" else ["iptables-save", "-t", "nat"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    return result.stdout
