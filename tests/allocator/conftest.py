"""Real API server processes with small ranges, for the allocation tests.

Reuses `tests/apiserver/conftest.py`'s `Cluster` client and `stop_cluster`;
`start_with_flags` is its `start_cluster` with extra command-line flags.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apiserver.conftest import Cluster, start_cluster, stop_cluster

SMALL_CIDR = "127.96.0.0/28"  # 14 usable addresses, the first one the `kubernetes` Service's
SMALL_PORTS = "30000-30015"


def start_with_flags(data_dir: Path, *flags: str, log_name: str = "apiserver.log") -> Cluster:
    """Start `kubesvc apiserver` on a free port with `flags`; return once /readyz answers 200."""
    return start_cluster(data_dir, "apiserver", *flags, log_name=log_name)


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
