"""The real kubectl against kubesvc: the dispatcher, and the oldest and newest kubectl beside it."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.apiserver.conftest import KUBECTL_DIR, Cluster
from tests.needs import unavailable

VERSIONS = [None, "1.27", "1.33"]  # None: the `kubectl` dispatcher on PATH

SEED_SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: my-service
  labels:
    tier: web
spec:
  selector:
    app: MyApp
  ports:
    - name: http
      protocol: TCP
      port: 80
      targetPort: 9376
"""


def _ns(version: str | None) -> str:
    return "kc-" + (version or "dispatch").replace(".", "-")


@pytest.fixture(params=VERSIONS, ids=lambda v: v or "dispatcher", scope="module")
def version(request: pytest.FixtureRequest, cluster: Cluster) -> str | None:
    if request.param and not Path(f"{KUBECTL_DIR}/kubectl.{request.param}").exists():
        unavailable(f"needs kubectl.{request.param} in {KUBECTL_DIR}")
    out = cluster.kubectl("create", "namespace", _ns(request.param), version=request.param)
    assert out.stdout.strip() == f"namespace/{_ns(request.param)} created"
    return request.param


def kubectl(
    cluster: Cluster, version: str | None, *args: str, **kw: object
) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("-n", _ns(version), *args, version=version, **kw)  # type: ignore[arg-type]


def test_apply_create_configure_unchanged(
    cluster: Cluster, version: str | None, tmp_path: Path
) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SEED_SERVICE)
    assert (
        kubectl(cluster, version, "apply", "-f", str(manifest)).stdout.strip()
        == "service/my-service created"
    )
    assert (
        kubectl(cluster, version, "apply", "-f", str(manifest)).stdout.strip()
        == "service/my-service unchanged"
    )
    manifest.write_text(SEED_SERVICE.replace("port: 80", "port: 8080"))
    assert (
        kubectl(cluster, version, "apply", "-f", str(manifest)).stdout.strip()
        == "service/my-service configured"
    )
    svc = json.loads(kubectl(cluster, version, "get", "svc", "my-service", "-o", "json").stdout)
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 9376}
    ]
    assert "kubectl.kubernetes.io/last-applied-configuration" in svc["metadata"]["annotations"]


def test_create_get_describe_delete(cluster: Cluster, version: str | None, tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SEED_SERVICE.replace("my-service", "created-svc"))
    assert (
        kubectl(cluster, version, "create", "-f", str(manifest)).stdout.strip()
        == "service/created-svc created"
    )
    as_yaml = yaml.safe_load(
        kubectl(cluster, version, "get", "svc", "created-svc", "-o", "yaml").stdout
    )
    assert as_yaml["spec"]["sessionAffinity"] == "None" and as_yaml["spec"]["type"] == "ClusterIP"
    wide = kubectl(cluster, version, "get", "svc", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == [
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "AGE",
        "SELECTOR",
    ]
    row = next(line.split() for line in wide if line.startswith("created-svc"))
    assert row[1] == "ClusterIP" and row[4] == "80/TCP" and row[6] == "app=MyApp"
    everywhere = cluster.kubectl(
        "get", "svc", "-A", "--show-labels", version=version
    ).stdout.splitlines()
    assert everywhere[0].split()[0] == "NAMESPACE" and everywhere[0].split()[-1] == "LABELS"
    assert any(
        line.split()[:2] == [_ns(version), "created-svc"] and line.split()[-1] == "tier=web"
        for line in everywhere
    )
    described = kubectl(cluster, version, "describe", "svc", "created-svc").stdout
    assert "Selector:" in described and "app=MyApp" in described
    assert "TargetPort:" in described and "9376/TCP" in described
    assert (
        kubectl(cluster, version, "delete", "svc", "created-svc").stdout.strip()
        == 'service "created-svc" deleted'
    )
    missing = kubectl(cluster, version, "get", "svc", "created-svc", check=False)
    assert missing.returncode == 1
    assert 'services "created-svc" not found' in missing.stderr


def test_patch_label_annotate(cluster: Cluster, version: str | None, tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SEED_SERVICE.replace("my-service", "patched-svc"))
    kubectl(cluster, version, "create", "-f", str(manifest))
    out = kubectl(
        cluster,
        version,
        "patch",
        "svc",
        "patched-svc",
        "-p",
        '{"spec":{"ports":[{"port":80,"targetPort":9999}]}}',
    )
    assert out.stdout.strip() == "service/patched-svc patched"
    out = kubectl(
        cluster,
        version,
        "patch",
        "svc",
        "patched-svc",
        "--type",
        "merge",
        "-p",
        '{"spec":{"sessionAffinity":"ClientIP"}}',
    )
    assert out.stdout.strip() == "service/patched-svc patched"
    json_patch = '[{"op":"replace","path":"/spec/selector/app","value":"Other"}]'
    kubectl(cluster, version, "patch", "svc", "patched-svc", "--type", "json", "-p", json_patch)
    unchanged = kubectl(
        cluster, version, "patch", "svc", "patched-svc", "--type", "json", "-p", json_patch
    )
    assert unchanged.stdout.strip() == "service/patched-svc patched (no change)"
    bad = kubectl(
        cluster,
        version,
        "patch",
        "svc",
        "patched-svc",
        "--type",
        "json",
        "-p",
        '[{"op":"replace","path":"/spec/nope/x","value":1}]',
        check=False,
    )
    assert bad.returncode != 0 and "/spec/nope/x" in bad.stderr
    assert (
        kubectl(cluster, version, "label", "svc", "patched-svc", "env=test").stdout.strip()
        == "service/patched-svc labeled"
    )
    # kubectl 1.27 prints "annotate", later versions "annotated".
    annotated = kubectl(cluster, version, "annotate", "svc", "patched-svc", "owner=team-a")
    assert annotated.stdout.strip().startswith("service/patched-svc annotate")
    svc = json.loads(kubectl(cluster, version, "get", "svc", "patched-svc", "-o", "json").stdout)
    assert svc["spec"]["ports"][0]["targetPort"] == 9999
    assert svc["spec"]["sessionAffinity"] == "ClientIP"
    assert svc["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert svc["spec"]["selector"] == {"app": "Other"}
    assert svc["metadata"]["labels"]["env"] == "test"
    assert svc["metadata"]["annotations"]["owner"] == "team-a"


def test_expose_and_create_service(cluster: Cluster, version: str | None, tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SEED_SERVICE.replace("my-service", "base-svc"))
    kubectl(cluster, version, "create", "-f", str(manifest))
    out = kubectl(
        cluster,
        version,
        "expose",
        "svc",
        "base-svc",
        "--name",
        "exposed-svc",
        "--port",
        "81",
        "--target-port",
        "9376",
    )
    assert out.stdout.strip() == "service/exposed-svc exposed"
    exposed = json.loads(
        kubectl(cluster, version, "get", "svc", "exposed-svc", "-o", "json").stdout
    )
    assert exposed["spec"]["selector"] == {"app": "MyApp"}
    assert exposed["spec"]["ports"][0]["port"] == 81
    assert exposed["metadata"]["creationTimestamp"]  # expose sends null: the server fills it in
    out = kubectl(cluster, version, "create", "service", "clusterip", "cli-svc", "--tcp=5678:8080")
    assert out.stdout.strip() == "service/cli-svc created"
    made = json.loads(kubectl(cluster, version, "get", "svc", "cli-svc", "-o", "json").stdout)
    assert (
        made["spec"]["ports"][0]["port"] == 5678 and made["spec"]["ports"][0]["targetPort"] == 8080
    )
    assert made["spec"]["selector"] == {"app": "cli-svc"}


def test_server_side_apply_and_conflict(
    cluster: Cluster, version: str | None, tmp_path: Path
) -> None:
    manifest = tmp_path / "ssa.yaml"
    manifest.write_text(SEED_SERVICE.replace("my-service", "ssa-svc"))
    out = kubectl(cluster, version, "apply", "--server-side", "-f", str(manifest))
    assert out.stdout.strip() == "service/ssa-svc serverside-applied"
    manifest.write_text(SEED_SERVICE.replace("my-service", "ssa-svc").replace("9376", "9999"))
    conflict = kubectl(
        cluster,
        version,
        "apply",
        "--server-side",
        "--field-manager",
        "other",
        "-f",
        str(manifest),
        check=False,
    )
    assert conflict.returncode != 0
    assert (
        "conflict" in conflict.stderr
        and '.spec.ports[port=80,protocol="TCP"].targetPort' in conflict.stderr
    )
    forced = kubectl(
        cluster,
        version,
        "apply",
        "--server-side",
        "--field-manager",
        "other",
        "--force-conflicts",
        "-f",
        str(manifest),
    )
    assert forced.returncode == 0
    svc = json.loads(
        kubectl(
            cluster, version, "get", "svc", "ssa-svc", "-o", "json", "--show-managed-fields"
        ).stdout
    )
    assert svc["spec"]["ports"][0]["targetPort"] == 9999
    assert {m["manager"] for m in svc["metadata"]["managedFields"]} >= {"other"}


def test_explain(cluster: Cluster, version: str | None) -> None:
    out = cluster.kubectl("explain", "service.spec.ports", version=version).stdout
    assert "KIND:" in out and "Service" in out
    assert "targetPort" in out and "protocol" in out


def test_watch_receives_an_event(cluster: Cluster, version: str | None) -> None:
    exe = f"{KUBECTL_DIR}/kubectl.{version}" if version else "kubectl"
    watcher = subprocess.Popen(
        [
            exe,
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--cache-dir",
            str(cluster.cache_dir),
            "-n",
            _ns(version),
            "get",
            "svc",
            "-w",
            "--request-timeout=30s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)  # let the watch start before the change
        kubectl(cluster, version, "create", "service", "clusterip", "watched-svc", "--tcp=80:80")
        assert watcher.stdout is not None
        deadline = time.monotonic() + 20
        seen = ""
        while "watched-svc" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([watcher.stdout], [], [], 0.5)
            if ready:  # read the raw pipe: a buffered readline would hide lines from select
                seen += os.read(watcher.stdout.fileno(), 65536).decode()
        assert "watched-svc" in seen
    finally:
        os.kill(watcher.pid, signal.SIGTERM)
        watcher.wait(timeout=10)


def test_namespaces_and_get_all(cluster: Cluster, version: str | None) -> None:
    names = cluster.kubectl("get", "namespaces", "-o", "name", version=version).stdout.split()
    assert {"namespace/default", "namespace/kube-system", "namespace/kube-public"} <= set(names)
    all_out = kubectl(cluster, version, "get", "all").stdout
    assert "service/" in all_out


def test_auth_can_i_and_whoami(cluster: Cluster, version: str | None) -> None:
    admin = cluster.kubectl("auth", "can-i", "create", "pods", version=version)
    assert admin.stdout.strip() == "yes"
    viewer = ["--token", cluster.viewer_token()]
    refused = cluster.kubectl(
        *viewer, "auth", "can-i", "create", "pods", version=version, check=False
    )
    assert refused.returncode == 1 and refused.stdout.startswith("no")
    reads = cluster.kubectl(
        *viewer, "auth", "can-i", "list", "services", "-n", "kube-system", version=version
    )
    assert reads.stdout.strip() == "yes"
    if version != "1.27":  # `auth whoami` came in kubectl 1.28
        who = cluster.kubectl(*viewer, "auth", "whoami", "-o", "json", version=version).stdout
        info = json.loads(who)["status"]["userInfo"]
        assert info["username"] == "viewer" and "system:authenticated" in info["groups"]
