"""The seed's Service scenarios end to end: `kubesvc up` as a process, driven by the real kubectl."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apiserver.conftest import Cluster, start_cluster, stop_cluster
from tests.needs import require_tools
from tests.waiting import eventually

SERVICE_CIDR = "127.96.0.0/24"

SEED_SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: my-service
spec:
  selector:
    app: MyApp
  ports:
    - protocol: TCP
      port: 80
      targetPort: 9376
"""

SELECTORLESS = """\
apiVersion: v1
kind: Service
metadata:
  name: external-db
spec:
  ports:
    - protocol: TCP
      port: 80
      targetPort: 9376
---
apiVersion: v1
kind: Endpoints
metadata:
  name: external-db
subsets:
  - addresses:
      - ip: 192.0.2.42
    ports:
      - port: 9376
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(
        tmp_path_factory.mktemp("seed"),
        "up",
        "--service-cidr",
        SERVICE_CIDR,
        "--dns-port",
        "0",
        "--healthz-port",
        "0",
        "--metrics-port",
        "0",
    )
    yield running
    stop_cluster(running.process)
    assert running.process.returncode == 0, (running.data_dir / "apiserver.log").read_text()


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def describe_until(cluster: Cluster, service: str, text: str) -> str:
    """`kubectl describe svc` once its output shows `text`."""

    def described() -> str | None:
        out = cluster.kubectl("describe", "svc", service).stdout
        return out if text in out else None

    return eventually(described)


def make_pod(cluster: Cluster, tmp_path: Path, name: str, ip: str, ready: bool) -> None:
    manifest = tmp_path / f"{name}.json"
    manifest.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": {"app": "MyApp"}},
                "spec": {
                    # Bound to a node no agent runs, so the status written below is the only
                    # one (`kubesvc up`'s own node agent would run the pod and report its own).
                    "nodeName": "elsewhere",
                    "containers": [
                        {
                            "name": "web",
                            "command": ["sleep", "3600"],
                            "ports": [{"containerPort": 9376}],
                        }
                    ],
                },
            }
        )
    )
    cluster.kubectl("create", "-f", str(manifest))
    status = {
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }
    }
    # What a node agent reports; kubectl writes it through the status subresource.
    cluster.kubectl(
        "patch", "pod", name, "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )


def test_selector_service_gets_a_cluster_ip_and_endpoints_of_ready_pods(
    cluster: Cluster, tmp_path: Path
) -> None:
    make_pod(cluster, tmp_path, "web-1", "198.18.0.11", ready=True)
    make_pod(cluster, tmp_path, "web-2", "198.18.0.12", ready=True)
    make_pod(cluster, tmp_path, "web-3", "198.18.0.13", ready=False)
    cluster.kubectl("apply", "-f", "-", stdin=SEED_SERVICE)
    svc = get_json(cluster, "svc", "my-service")
    ip = ipaddress.ip_address(svc["spec"]["clusterIP"])
    assert ip in ipaddress.ip_network(SERVICE_CIDR)
    assert ip != ipaddress.ip_address("127.96.0.1")  # the `kubernetes` Service's

    def endpoints_right() -> Any:
        ep = get_json(cluster, "endpoints", "my-service")
        subsets = ep.get("subsets") or []
        ready = sorted(a["ip"] for s in subsets for a in s.get("addresses", []))
        not_ready = sorted(a["ip"] for s in subsets for a in s.get("notReadyAddresses", []))
        return (ready, not_ready) == (["198.18.0.11", "198.18.0.12"], ["198.18.0.13"]) and subsets

    subsets = eventually(endpoints_right)
    assert subsets[0]["ports"] == [{"port": 9376, "protocol": "TCP"}]
    wide = cluster.kubectl("get", "svc", "my-service").stdout
    assert str(ip) in wide
    described = describe_until(cluster, "my-service", "198.18.0.11:9376")
    assert "198.18.0.12:9376" in described


def test_custom_cluster_ip_and_the_same_ip_twice(cluster: Cluster) -> None:
    custom = SEED_SERVICE.replace("name: my-service", "name: custom-ip").replace(
        "spec:\n", "spec:\n  clusterIP: 127.96.0.200\n"
    )
    cluster.kubectl("apply", "-f", "-", stdin=custom)
    assert get_json(cluster, "svc", "custom-ip")["spec"]["clusterIP"] == "127.96.0.200"
    twice = custom.replace("name: custom-ip", "name: custom-ip-2")
    refused = cluster.kubectl("apply", "-f", "-", stdin=twice, check=False)
    assert refused.returncode != 0
    assert "provided IP is already allocated" in refused.stderr
    outside = custom.replace("name: custom-ip", "name: custom-ip-3").replace(
        "127.96.0.200", "127.97.0.5"
    )
    refused = cluster.kubectl("apply", "-f", "-", stdin=outside, check=False)
    assert refused.returncode != 0
    assert "The range of valid IPs is 127.96.0.0/24" in refused.stderr


def test_selectorless_service_keeps_its_hand_written_endpoints(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=SELECTORLESS)
    time.sleep(1.0)  # time for a controller to (wrongly) act
    ep = get_json(cluster, "endpoints", "external-db")
    assert [a["ip"] for a in ep["subsets"][0]["addresses"]] == ["192.0.2.42"]
    # Its mirror slice makes `describe` show the hand-written backend.
    described = describe_until(cluster, "external-db", "192.0.2.42:9376")
    assert "Endpoints:" in described


def test_endpoints_may_not_use_loopback_or_a_cluster_ip(cluster: Cluster) -> None:
    taken = get_json(cluster, "svc", "my-service")["spec"]["clusterIP"]
    for bad, reason in (
        ("127.0.0.1", "loopback"),
        (taken, "ClusterIP of Service default/my-service"),
        ("169.254.1.1", "link-local"),
    ):
        manifest = (
            SELECTORLESS.split("---\n")[1]
            .replace("external-db", "bad-ep")
            .replace("192.0.2.42", bad)
        )
        result = cluster.kubectl("apply", "-f", "-", stdin=manifest, check=False)
        assert result.returncode != 0
        assert reason in result.stderr, result.stderr


def dns_port(cluster: Cluster) -> int:
    log = (cluster.data_dir / "apiserver.log").read_text()
    match = re.search(r"DNS: +127\.0\.0\.1:(\d+)", log)
    assert match, log
    return int(match.group(1))


def dig(cluster: Cluster, *query: str) -> str:
    result = subprocess.run(
        [
            "dig",
            "+short",
            "+time=2",
            "+tries=2",
            "-p",
            str(dns_port(cluster)),
            "@127.0.0.1",
            *query,
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_dns_finds_services_by_name_and_named_port(cluster: Cluster) -> None:
    require_tools("dig")
    named = SEED_SERVICE.replace("name: my-service", "name: dns-web").replace(
        "- protocol: TCP", "- name: http\n      protocol: TCP"
    )
    cluster.kubectl("apply", "-f", "-", stdin=named)
    ip = get_json(cluster, "svc", "dns-web")["spec"]["clusterIP"]
    # "my-service.my-ns" resolves to the ClusterIP, and SRV finds the named port.
    assert eventually(lambda: dig(cluster, "dns-web.default.svc.cluster.local") == ip)
    srv = eventually(lambda: dig(cluster, "SRV", "_http._tcp.dns-web.default.svc.cluster.local"))
    assert srv.split()[2:] == ["80", "dns-web.default.svc.cluster.local."]
    cluster.kubectl("delete", "svc", "dns-web")
    assert eventually(lambda: dig(cluster, "dns-web.default.svc.cluster.local") == "")
