"""Processes of a several-node cluster on one machine: an API server, `kubesvc controllers`,
and `kubesvc node` per node, each with its own loopback pod range (host mode)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.apiserver.conftest import KUBESVC, Cluster
from tests.node.conftest import eventually

# Pod ranges of their own per test process (tests/node uses 127.245.x, the proxy 127.244.x).
_BLOCK = os.getpid() % 250
API_POD_CIDR = f"127.246.{_BLOCK}.0/24"
HEARTBEAT_S = 1.0
GRACE_S = 5.0  # long enough that a loaded machine's slow API does not flip nodes


class Proc:
    """One long-running `kubesvc` process with its log; ended by its own PID."""

    def __init__(self, name: str, args: list[str], log_dir: Path, ready_text: str) -> None:
        self.name = name
        self.args = args
        self.log_path = log_dir / f"{name}.log"
        self.ready_text = ready_text
        self.process: subprocess.Popen[str] | None = None

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def start(self, timeout_s: float = 30.0) -> None:
        starts = self.log_text().count(self.ready_text)
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [KUBESVC, *self.args], stdout=log, stderr=subprocess.STDOUT, text=True
            )
        process = self.process
        eventually(
            lambda: self.log_text().count(self.ready_text) > starts or process.poll() is not None,
            timeout_s,
            what=f"{self.name} started",
        )
        assert process.poll() is None, self.log_text()

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=10)


def controllers(cluster: Cluster, log_dir: Path) -> Proc:
    return Proc(
        "controllers",
        [
            "controllers",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--node-monitor-grace-period",
            str(GRACE_S),
        ],
        log_dir,
        "controllers running",
    )


def host_node(cluster: Cluster, data_dir: Path, name: str, pod_cidr: str, *extra: str) -> Proc:
    """`kubesvc node` in host mode with a fast heartbeat; extra flags (--no-proxy …) appended."""
    return Proc(
        name,
        [
            "node",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--data-dir",
            str(data_dir),
            "--node-name",
            name,
            "--pod-cidr",
            pod_cidr,
            "--heartbeat-interval",
            str(HEARTBEAT_S),
            "--node-monitor-grace-period",
            str(GRACE_S),
            *extra,
        ],
        data_dir,
        "running against",
    )


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def nodes_by_name(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {n["metadata"]["name"]: n for n in get_json(cluster, "nodes")["items"]}


def ready_status(node: dict[str, Any]) -> str | None:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status"))
    return None


def pod_counts(cluster: Cluster, names: list[str]) -> dict[str, int]:
    """Unfinished pods per node, over all namespaces."""
    counts = dict.fromkeys(names, 0)
    for pod in get_json(cluster, "pods", "-A")["items"]:
        node = pod["spec"].get("nodeName")
        if node in counts and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            counts[node] += 1
    return counts


def bound_node(cluster: Cluster, namespace: str, name: str) -> str | None:
    result = cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "jsonpath={.spec.nodeName}")
    return result.stdout.strip() or None


def wait_gone(check: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not check():
        time.sleep(0.1)
