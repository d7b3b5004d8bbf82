"""Namespace mode: each pod in its own network namespace on the node bridge (root only).

The whole node — `kubesvc up --pod-network netns` with its API server — runs
inside a network namespace this test makes, so the bridge, the veths and the
pods' namespaces never touch the host's network; deleting that namespace at
the end removes them all. Addresses come from 198.18.0.0/24 (RFC 2544).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.apiserver.conftest import KUBESVC, stop_cluster
from tests.needs import require_root_tools
from tests.node.conftest import PYTHON, eventually, kill_leftovers, pod

POD_CIDR = "198.18.0.0/24"
TOOLS = ("ip", "nsenter", "unshare", "kubectl")


def _require_root() -> None:
    require_root_tools(*TOOLS, what="namespace mode: network namespaces, veth pairs, a bridge")


@dataclass
class NodeNamespace:
    name: str
    data_dir: Path
    process: subprocess.Popen[str]

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.name,
                "kubectl",
                "--kubeconfig",
                str(self.data_dir / "kubeconfig"),
                "--cache-dir",
                str(self.data_dir / "kubectl-cache"),
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result.stdout

    def pod_status(self, name: str) -> dict[str, Any]:
        out = self.kubectl("get", "pod", name, "-o", "json", "--ignore-not-found")
        return (json.loads(out) if out.strip() else {}).get("status") or {}


@contextlib.contextmanager
def up_in_namespace(
    name: str,
    data_dir: Path,
    flags: list[str],
    links: Sequence[Sequence[str]] = (),
) -> Iterator[NodeNamespace]:
    """`kubesvc up FLAGS` inside a network namespace of its own, made with `ip -n NAME LINK…`
    commands, and everything gone with it at the end (the pods' processes included)."""
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    process = None
    try:
        for argv in (["link", "set", "lo", "up"], *links):
            subprocess.run(["ip", "-n", name, *argv], check=True, timeout=10)
        up = [KUBESVC, "up", "--data-dir", str(data_dir), "--api-port", "0", "--dns-port", "0"]
        up += ["--healthz-port", "0", "--metrics-port", "0"]  # the proxy's: any free port
        with (data_dir / "up.log").open("w") as log:
            process = subprocess.Popen(
                ["ip", "netns", "exec", name, *up, *flags],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        eventually(
            lambda: (
                "kubesvc is up" in (data_dir / "up.log").read_text() or process.poll() is not None
            ),  # type: ignore[union-attr]
            timeout_s=40,
            what="kubesvc up in its network namespace",
        )
        assert process.poll() is None, (data_dir / "up.log").read_text()
        yield NodeNamespace(name, data_dir, process)
    finally:
        if process is not None:
            stop_cluster(process, grace_s=20)
        leftovers = kill_leftovers(str(data_dir))
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=10)
    assert process.returncode == 0, (data_dir / "up.log").read_text()
    assert not leftovers, f"pod processes outlived kubesvc up: {leftovers}"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeNamespace]:
    _require_root()
    flags = ["--node-name", "ns-node", "--pod-network", "netns", "--pod-cidr", POD_CIDR]
    with up_in_namespace(f"kst-node-{os.getpid()}", tmp_path_factory.mktemp("netns"), flags) as ns:
        yield ns


SERVER = """
import http.server, os, sys
out = sys.argv[1]
open(out + ".netns", "w").write(os.readlink("/proc/self/ns/net"))
open(out + ".resolv", "w").write(open("/etc/resolv.conf").read())
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(("hello from " + os.environ["POD_NAME"]).encode())
    def log_message(self, *args):
        pass
http.server.HTTPServer((os.environ["POD_IP"], 8080), Handler).serve_forever()
"""

CLIENT = """
import os, sys, time, urllib.request
out = sys.argv[1]
open(out + ".netns", "w").write(os.readlink("/proc/self/ns/net"))
for _ in range(100):
    try:
        body = urllib.request.urlopen("http://" + os.environ["TARGET"] + ":8080/", timeout=1).read()
        break
    except OSError as err:
        body = repr(err).encode()
        time.sleep(0.1)
open(out + ".tmp", "wb").write(body)
os.replace(out + ".tmp", out)
os.execvp("sleep", ["sleep", "300"])
"""


def test_two_pods_in_their_own_namespaces_reach_each_other_by_pod_ip(
    node: NodeNamespace, tmp_path: Path
) -> None:
    server_out, client_out = tmp_path / "a", tmp_path / "b"
    node.kubectl(
        "create",
        "-f",
        "-",
        stdin=json.dumps(
            pod(
                "a",
                [PYTHON, "-c", SERVER, str(server_out)],
                readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1},
            )
        ),
    )

    def ready_ip() -> str | None:
        status = node.pod_status("a")
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
        )
        return status.get("podIP") if ready else None

    server_ip = eventually(ready_ip, what="pod a ready (probed from the node over the bridge)")
    assert server_ip.startswith("198.18.0.") and server_ip != "198.18.0.1"
    client = pod("b", [PYTHON, "-c", CLIENT, str(client_out)])
    client["spec"]["containers"][0]["env"] = [{"name": "TARGET", "value": server_ip}]
    node.kubectl("create", "-f", "-", stdin=json.dumps(client))
    eventually(client_out.exists, what="pod b's answer")
    assert client_out.read_text() == "hello from a"

    client_ip = node.pod_status("b")["podIP"]
    assert client_ip.startswith("198.18.0.") and client_ip != server_ip
    node_netns = subprocess.run(
        ["ip", "netns", "exec", node.name, "readlink", "/proc/self/ns/net"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    namespaces = {
        Path(f"{server_out}.netns").read_text(),
        Path(f"{client_out}.netns").read_text(),
        node_netns,
    }
    assert len(namespaces) == 3  # each pod its own, neither the node's
    assert Path(f"{server_out}.resolv").read_text() == (
        "nameserver 198.18.0.1\n"
        "search default.svc.cluster.local svc.cluster.local cluster.local\n"
        "options ndots:5\n"
    )
    node.kubectl("delete", "pod", "a", "b", "--timeout=20s")
    # The pods' host-side veths went with them; the bridge stays for the next pods.
    links = subprocess.run(
        ["ip", "-n", node.name, "-o", "link"], capture_output=True, text=True, check=True
    ).stdout
    assert "kubesvc0" in links and " kv" not in links
