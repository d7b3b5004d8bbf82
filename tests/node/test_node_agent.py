"""`kubesvc node` as its own process next to `kubesvc apiserver`: binding, logs through the API
server, addresses handed back, and a restarted (even killed) agent adopting its pods."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apiserver.conftest import KUBESVC, Cluster, start_cluster, stop_cluster
from tests.node.conftest import (
    NODE_POD_CIDR,
    cmdline,
    create,
    eventually,
    get,
    kill_leftovers,
    pod,
    pod_status,
    running,
    shim_pid,
)

POD_CIDR = NODE_POD_CIDR
NODE = "node-n1"


class Node:
    """One `kubesvc node` process; start it again after a stop or a kill."""

    def __init__(self, cluster: Cluster, data_dir: Path) -> None:
        self.cluster = cluster
        self.data_dir = data_dir
        self.process: subprocess.Popen[str] | None = None

    def log_text(self) -> str:
        path = self.data_dir / "node.log"
        return path.read_text() if path.exists() else ""

    def start(self) -> None:
        """Start the agent; return once this run (not an earlier one) says it is running."""
        starts = self.log_text().count("running against")
        log = (self.data_dir / "node.log").open("a")
        self.process = subprocess.Popen(
            [
                KUBESVC,
                "node",
                "--kubeconfig",
                str(self.cluster.kubeconfig),
                "--data-dir",
                str(self.data_dir),
                "--node-name",
                NODE,
                "--pod-cidr",
                POD_CIDR,
                # This test is about the agent: the node's proxy and DNS would take fixed ports.
                "--no-proxy",
                "--no-dns",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        process = self.process
        eventually(
            lambda: self.log_text().count("running against") > starts or process.poll() is not None,
            what="the node agent started",
        )
        assert process.poll() is None, self.log_text()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
        return self.process.wait(timeout=15)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Node]]:
    api = start_cluster(tmp_path_factory.mktemp("api"), "apiserver", "--pod-cidr", POD_CIDR)
    node_dir = tmp_path_factory.mktemp("node")
    node = Node(api, node_dir)
    try:
        node.start()
        yield api, node
    finally:
        if node.process is not None and node.process.poll() is None:
            node.stop()
        stop_cluster(api.process)
        leftovers = kill_leftovers(str(node_dir))
    assert not leftovers, f"pod processes left behind: {leftovers}"


def test_binding_logs_and_addresses(cluster: tuple[Cluster, Node]) -> None:
    api, _ = cluster
    api.kubectl("create", "namespace", "logs")
    create(api, pod("hello", ["sh", "-c", "echo hello from $POD_NAME; exec sleep 300"]), "logs")
    bound = eventually(
        lambda: (get(api, "pod", "hello", "logs") or {}).get("spec", {}).get("nodeName")
    )
    assert bound == NODE
    eventually(lambda: pod_status(api, "hello", "logs").get("phase") == "Running")
    # The API server proxies to the node's log port (the pod's annotation says where).
    logs = eventually(lambda: api.kubectl("logs", "-n", "logs", "hello").stdout)
    assert logs == "hello from hello\n"
    annotations = get(api, "pod", "hello", "logs")["metadata"]["annotations"]  # type: ignore[index]
    assert annotations["node.kubesvc.io/logs"].startswith("http://127.0.0.1:")
    api.kubectl("delete", "pod", "hello", "-n", "logs")

    # Five addresses in the range: the sixth pod gets one the deleted ones gave back.
    seen = set()
    for i in range(6):
        create(api, pod(f"p{i}", ["sleep", "300"]), "logs")
        ip = eventually(lambda i=i: pod_status(api, f"p{i}", "logs").get("podIP"))  # type: ignore[misc]
        seen.add(ip)
        api.kubectl("delete", "pod", f"p{i}", "-n", "logs")
    network = ipaddress.ip_network(POD_CIDR)
    assert len(seen) == 5 and all(ipaddress.ip_address(ip) in network for ip in seen)


def test_a_restarted_agent_adopts_its_pods_and_ends_orphans(
    cluster: tuple[Cluster, Node],
) -> None:
    api, node = cluster
    api.kubectl("create", "namespace", "adopt")
    create(api, pod("keeper", ["sleep", "300"]), "adopt")
    create(api, pod("doomed", ["sleep", "300"]), "adopt")
    for name in ("keeper", "doomed"):
        eventually(lambda n=name: pod_status(api, n, "adopt").get("phase") == "Running")  # type: ignore[misc]
    keeper, doomed = shim_pid(api, "keeper", "adopt"), shim_pid(api, "doomed", "adopt")
    keeper_ip = pod_status(api, "keeper", "adopt")["podIP"]

    # The agent dies without any chance to clean up; its pods keep running.
    node.stop(signal.SIGKILL)
    assert running(keeper) and running(doomed)
    # Meanwhile one pod is force-deleted: no agent is there to stop it.
    api.kubectl("delete", "pod", "doomed", "-n", "adopt", "--grace-period=0", "--force")

    node.start()
    eventually(lambda: not running(doomed), what="the orphan ended")
    assert running(keeper)  # adopted, not started again
    status = pod_status(api, "keeper", "adopt")
    assert status["podIP"] == keeper_ip
    container = status["containerStatuses"][0]
    assert container["restartCount"] == 0 and container["containerID"] == f"process://{keeper}"
    pod_dir = f"{node.data_dir}/node/{NODE}/pods/adopt_keeper_".encode()
    shims = [p for p in os.listdir("/proc") if p.isdigit() and pod_dir in cmdline(int(p))]
    assert shims == [str(keeper)]  # exactly one process for the pod: no duplicate
    pods_dir = node.data_dir / "node" / NODE / "pods"
    eventually(lambda: not list(pods_dir.glob("adopt_doomed_*")), what="the orphan's record gone")

    # And a gentle stop leaves pods running too (as the kubelet does); the next agent stops them.
    assert node.stop() == 0
    assert running(keeper)
    node.start()
    time.sleep(0.3)
    assert running(keeper)
    api.kubectl("delete", "pod", "keeper", "-n", "adopt", "--timeout=15s")
    assert not running(keeper)


def test_binding_and_graceful_deletion_in_the_api(cluster: tuple[Cluster, Node]) -> None:
    api, _ = cluster
    api.kubectl("create", "namespace", "rules")
    base = "/api/v1/namespaces/rules/pods"
    # Another scheduler's pod: the running agent leaves it alone.
    for name in ("bound", "unbound"):
        body = pod(name, ["sleep", "300"], schedulerName="someone-else")
        code, _, _ = api.request("POST", base, body)
        assert code == 201
    binding = {"apiVersion": "v1", "kind": "Binding", "target": {"kind": "Node", "name": "x"}}
    code, status, _ = api.request("POST", f"{base}/bound/binding", binding)
    assert (code, status["status"]) == (201, "Success")
    code, status, _ = api.request("POST", f"{base}/bound/binding", binding)
    assert code == 409 and 'is already assigned to node "x"' in status["message"]
    code, status, _ = api.request("POST", f"{base}/bound/binding", {"target": {"kind": "Node"}})
    assert code == 422

    # Bound to a node: a DELETE marks it, with the pod's grace period (30 s by default).
    code, marked, _ = api.request("DELETE", f"{base}/bound")
    assert code == 200 and marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert marked["metadata"]["deletionTimestamp"]
    code, _, _ = api.request("POST", f"{base}/bound/binding", binding)
    assert code == 409  # being deleted: cannot be assigned
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 5}
    code, shorter, _ = api.request("DELETE", f"{base}/bound", options)
    assert shorter["metadata"]["deletionGracePeriodSeconds"] == 5  # may be shortened
    code, same, _ = api.request("DELETE", f"{base}/bound", {**options, "gracePeriodSeconds": 60})
    assert same["metadata"]["deletionGracePeriodSeconds"] == 5  # never lengthened
    code, _, _ = api.request("DELETE", f"{base}/bound", {**options, "gracePeriodSeconds": 0})
    assert code == 200 and api.request("GET", f"{base}/bound")[0] == 404

    # Unbound: gone at once.
    code, _, _ = api.request("DELETE", f"{base}/unbound")
    assert code == 200 and api.request("GET", f"{base}/unbound")[0] == 404
