"""Real API server processes with small ranges, for the allocation tests.

Reuses `tests/apiserver/conftest.py`'s `Cluster` client and `stop_cluster`;
`start_with_flags` is its `start_cluster` with extra command-line flags.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.apiserver.conftest import KUBESVC, Cluster, stop_cluster

SMALL_CIDR = "127.96.0.0/28"  # 14 usable addresses, the first one the `kubernetes` Service's
SMALL_PORTS = "30000-30015"


def start_with_flags(data_dir: Path, *flags: str, log_name: str = "apiserver.log") -> Cluster:
    """Start `kubesvc apiserver` on a free port with `flags`; return once /readyz answers 200."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / log_name
    kubeconfig = data_dir / "kubeconfig"
    kubeconfig.unlink(missing_ok=True)  # a restart must not read the last run's address
    with log_path.open("a") as log:
        process = subprocess.Popen(
            [KUBESVC, "apiserver", "--data-dir", str(data_dir), "--api-port", "0", *flags],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"apiserver exited: {log_path.read_text()}")
        if kubeconfig.exists():
            config = yaml.safe_load(kubeconfig.read_text())
            cluster = Cluster(
                data_dir,
                kubeconfig,
                config["clusters"][0]["cluster"]["server"],
                config["users"][0]["user"]["token"],
                data_dir / "ca.crt",
                data_dir / "kubectl-cache",
                process,
            )
            try:
                if cluster.request("GET", "/readyz", token=None)[0] == 200:
                    return cluster
            except OSError:
                pass
        time.sleep(0.05)
    stop_cluster(process)
    raise AssertionError("apiserver did not become ready in 30 s")


def kill_cluster(cluster: Cluster) -> None:
    """SIGKILL: no shutdown code runs, as in a crash or power loss."""
    if cluster.process.poll() is None:
        os.kill(cluster.process.pid, signal.SIGKILL)
        cluster.process.wait(timeout=10)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One server with a /28 service range and a 16-port node-port range, for the module."""
    running = start_with_flags(
        tmp_path_factory.mktemp("small"),
        "--service-cidr",
        SMALL_CIDR,
        "--service-node-port-range",
        SMALL_PORTS,
    )
    yield running
    stop_cluster(running.process)
    assert running.process.returncode == 0, (running.data_dir / "apiserver.log").read_text()
