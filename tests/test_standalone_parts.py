"""`kubesvc dns` and `kubesvc proxy` as their own processes against a separate API server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest

from tests.apiserver.conftest import KUBESVC, Cluster, start_cluster, stop_cluster
from tests.waiting import eventually


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(
        tmp_path_factory.mktemp("parts"),
        "up",
        "--dns-port",
        "0",
        "--healthz-port",
        "0",
        "--metrics-port",
        "0",
    )
    yield running
    stop_cluster(running.process)


def run_part(cluster: Cluster, tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], Path]:
    log = tmp_path / f"{args[0]}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [KUBESVC, *args, "--kubeconfig", str(cluster.kubeconfig)],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return process, log


def stop(process: subprocess.Popen[str]) -> int:
    os.kill(process.pid, signal.SIGTERM)
    return process.wait(timeout=15)


def test_kubesvc_dns_serves_the_clusters_names(cluster: Cluster, tmp_path: Path) -> None:
    process, log = run_part(cluster, tmp_path, "dns", "--dns-port", "0")
    try:
        line = eventually(
            lambda: re.search(r"on 127\.0\.0\.1:(\d+)", log.read_text()), what="dns started"
        )
        port = int(line.group(1))
        query = dns.message.make_query("kubernetes.default.svc.cluster.local", "A")

        def answer() -> list[str]:
            reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=2)
            return [r.address for rrset in reply.answer for r in rrset]

        svc = json.loads(cluster.kubectl("get", "svc", "kubernetes", "-o", "json").stdout)
        assert eventually(answer) == [svc["spec"]["clusterIP"]]
    finally:
        assert stop(process) == 0, log.read_text()


def test_kubesvc_proxy_starts_and_reports_healthy(cluster: Cluster, tmp_path: Path) -> None:
    process, log = run_part(
        cluster,
        tmp_path,
        "proxy",
        "--healthz-port",
        "0",
        "--metrics-port",
        "0",
        "--node-name",
        "standalone",
    )
    try:
        eventually(lambda: "kubesvc proxy (userspace, rr)" in log.read_text(), what="proxy started")
        assert process.poll() is None
    finally:
        assert stop(process) == 0, log.read_text()


def test_a_missing_kubeconfig_is_one_readable_line(tmp_path: Path) -> None:
    for part in ("dns", "proxy", "controllers"):
        result = subprocess.run(
            [KUBESVC, part, "--kubeconfig", str(tmp_path / "none")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2
        assert (
            result.stderr.strip()
            == f"kubesvc: cannot read kubeconfig {tmp_path / 'none'}: No such file or directory"
        )


def test_log_level_and_a_task_dump_on_sigusr1(cluster: Cluster, tmp_path: Path) -> None:
    log, kubeconfig = tmp_path / "dns.log", str(cluster.kubeconfig)
    with log.open("w") as out:
        process = subprocess.Popen(
            [KUBESVC, "--log-level", "info", "dns", "--dns-port", "0", "--kubeconfig", kubeconfig],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        eventually(lambda: "INFO kubesvc.dns: dns: serving" in log.read_text(), what="info log")
        os.kill(process.pid, signal.SIGUSR1)
        eventually(lambda: "asyncio tasks (SIGUSR1)" in log.read_text(), what="task dump")
        assert "informer:Service" in log.read_text()
        assert process.poll() is None  # a dump, not an exit
    finally:
        assert stop(process) == 0, log.read_text()


def test_kubesvc_dns_serves_pod_records_when_asked(cluster: Cluster, tmp_path: Path) -> None:
    process, log = run_part(
        cluster, tmp_path, "dns", "--dns-port", "0", "--pod-records", "insecure"
    )
    try:
        line = eventually(
            lambda: re.search(r"on 127\.0\.0\.1:(\d+)", log.read_text()), what="dns started"
        )
        query = dns.message.make_query("10-244-1-5.default.pod.cluster.local", "A")

        def answer() -> list[str]:
            reply = dns.query.udp(query, "127.0.0.1", port=int(line.group(1)), timeout=2)
            return [r.address for rrset in reply.answer for r in rrset]

        assert eventually(answer) == ["10.244.1.5"]
    finally:
        assert stop(process) == 0, log.read_text()
