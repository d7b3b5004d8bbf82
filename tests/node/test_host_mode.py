"""The node agent in host mode, as part of a `kubesvc up` process, driven by the real kubectl.

Pods are real processes on loopback pod IPs (a range of this test run's); the controllers in
the same process turn their readiness into Endpoints.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesvc.node.envvars import inherited_env
from tests.apiserver.conftest import Cluster, start_cluster, stop_cluster
from tests.node.conftest import (
    HOST_POD_CIDR,
    PYTHON,
    container_status,
    create,
    env_dump_command,
    eventually,
    get,
    kill_leftovers,
    kubesvc_env,
    pod,
    pod_status,
    read_env,
    running,
    service,
    shim_pid,
)

POD_CIDR = ipaddress.ip_network(HOST_POD_CIDR)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("node-up")
    running_cluster = start_cluster(
        data_dir,
        "up",
        "--dns-port",
        "0",
        "--healthz-port",
        "0",
        "--metrics-port",
        "0",
        "--node-name",
        "node-a",
        "--pod-cidr",
        HOST_POD_CIDR,
        "--restart-backoff",
        "0.2",
        "--restart-backoff-max",
        "0.4",
    )
    yield running_cluster
    stop_cluster(running_cluster.process)
    leftovers = kill_leftovers(str(data_dir))
    assert running_cluster.process.returncode == 0, (data_dir / "apiserver.log").read_text()
    assert not leftovers, f"pod processes outlived kubesvc up: {leftovers}"


_namespaces = iter(range(1, 1000))


@pytest.fixture
def ns(cluster: Cluster) -> str:
    name = f"node-{next(_namespaces)}"
    cluster.kubectl("create", "namespace", name)
    return name


def wait_running(cluster: Cluster, name: str, namespace: str) -> dict[str, Any]:
    def up() -> dict[str, Any] | None:
        status = pod_status(cluster, name, namespace)
        return status if status.get("phase") == "Running" and status.get("podIP") else None

    return eventually(up, what=f"pod {name} running")


SEED_SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: redis-master
spec:
  ports:
    - protocol: TCP
      port: 6379
"""


def test_the_seed_redis_master_variables(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=SEED_SERVICE)
    ip = json.loads(cluster.kubectl("get", "svc", "redis-master", "-n", ns, "-o", "json").stdout)[
        "spec"
    ]["clusterIP"]
    seven = {
        "REDIS_MASTER_SERVICE_HOST": ip,
        "REDIS_MASTER_SERVICE_PORT": "6379",
        "REDIS_MASTER_PORT": f"tcp://{ip}:6379",
        "REDIS_MASTER_PORT_6379_TCP": f"tcp://{ip}:6379",
        "REDIS_MASTER_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_MASTER_PORT_6379_TCP_PORT": "6379",
        "REDIS_MASTER_PORT_6379_TCP_ADDR": ip,
    }
    out = tmp_path / "env"
    create(cluster, pod("envdump", env_dump_command(out)), ns)
    status = wait_running(cluster, "envdump", ns)
    eventually(out.exists, what="the pod's env file")
    env = read_env(out)
    pod_ip = status["podIP"]
    assert ipaddress.ip_address(pod_ip) in POD_CIDR
    # Exactly: the node's PATH, HOME and locale, the pod's three, and the seed's seven.
    assert env == {
        **inherited_env(os.environ),
        "POD_IP": pod_ip,
        "POD_NAME": "envdump",
        "POD_NAMESPACE": ns,
        **seven,
    }
    # `kubesvc env` prints what a new pod gets: the same seven lines, in the seed's order.
    printed = kubesvc_env(cluster.kubeconfig, "-n", ns)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == "".join(f"{k}={v}\n" for k, v in seven.items())

    # enableServiceLinks: false keeps the two SERVICE variables and drops the Docker links.
    no_links = tmp_path / "env-no-links"
    create(cluster, pod("nolinks", env_dump_command(no_links), enableServiceLinks=False), ns)
    eventually(no_links.exists, what="the second pod's env file")
    assert {k for k in read_env(no_links) if k.startswith("REDIS")} == {
        "REDIS_MASTER_SERVICE_HOST",
        "REDIS_MASTER_SERVICE_PORT",
    }
    printed = kubesvc_env(cluster.kubeconfig, "-n", ns, "--no-service-links")
    assert printed.stdout == f"REDIS_MASTER_SERVICE_HOST={ip}\nREDIS_MASTER_SERVICE_PORT=6379\n"


def test_a_pod_started_before_the_service_does_not_get_it(
    cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    early = tmp_path / "early"
    create(cluster, pod("early", env_dump_command(early)), ns)
    eventually(early.exists, what="the pod's env file")
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=SEED_SERVICE)
    assert not [k for k in read_env(early) if k.startswith("REDIS_MASTER")]
    late = tmp_path / "late"
    create(cluster, pod("late", env_dump_command(late)), ns)
    eventually(late.exists, what="the later pod's env file")
    assert len([k for k in read_env(late) if k.startswith("REDIS_MASTER")]) == 7


READY_SERVER = """
import http.server, os, sys
flag = sys.argv[1]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = os.path.exists(flag)
        self.send_response(200 if ok else 503)
        self.end_headers()
        self.wfile.write(b"ready" if ok else b"not yet")
    def log_message(self, *args):
        pass
http.server.HTTPServer((os.environ["POD_IP"], 8080), Handler).serve_forever()
"""


def test_readiness_probes_move_pods_in_and_out_of_endpoints(
    cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    flag = tmp_path / "ready"
    fast = {"periodSeconds": 1, "failureThreshold": 1, "successThreshold": 1}
    labels = {"app": "web"}
    ports = [{"name": "http", "containerPort": 8080}]
    create(
        cluster,
        pod(
            "web-http",
            [PYTHON, "-c", READY_SERVER, str(flag)],
            labels=labels,
            ports=ports,
            readinessProbe={"httpGet": {"port": "http", "path": "/healthz"}, **fast},
        ),
        ns,
    )
    create(
        cluster,
        pod(
            "web-exec",
            ["sleep", "300"],
            labels=labels,
            ports=ports,
            readinessProbe={"exec": {"command": ["test", "-e", str(flag)]}, **fast},
        ),
        ns,
    )
    create(
        cluster,
        pod(
            "web-tcp",
            [PYTHON, "-c", READY_SERVER, str(flag)],
            labels=labels,
            ports=ports,
            readinessProbe={"tcpSocket": {"port": 8080}, **fast},
        ),
        ns,
    )
    create(cluster, service("web", 80, selector=labels), ns)
    ips = {name: wait_running(cluster, name, ns)["podIP"] for name in ("web-http", "web-exec")}
    tcp_ip = wait_running(cluster, "web-tcp", ns)["podIP"]
    assert len({*ips.values(), tcp_ip}) == 3  # every pod its own address

    def addresses() -> tuple[set[str], set[str]]:
        ep = get(cluster, "endpoints", "web", ns) or {}
        subsets = ep.get("subsets") or []
        ready = {a["ip"] for s in subsets for a in s.get("addresses", [])}
        unready = {a["ip"] for s in subsets for a in s.get("notReadyAddresses", [])}
        return ready, unready

    # The tcp probe passes as soon as the server listens; the other two wait for the flag.
    eventually(lambda: addresses() == ({tcp_ip}, set(ips.values())), what="only web-tcp ready")
    flag.touch()
    eventually(lambda: addresses() == ({tcp_ip, *ips.values()}, set()), what="all ready")
    assert container_status(cluster, "web-http", ns)["ready"] is True
    flag.unlink()
    eventually(lambda: addresses() == ({tcp_ip}, set(ips.values())), what="failing: out")
    conditions = {c["type"]: c for c in pod_status(cluster, "web-exec", ns)["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "ContainersNotReady"
    flag.touch()
    eventually(lambda: addresses() == ({tcp_ip, *ips.values()}, set()), what="passing: back")


def test_restart_policies(cluster: Cluster, ns: str) -> None:
    cases = {
        "onfailure-fails": ("OnFailure", 3),
        "onfailure-succeeds": ("OnFailure", 0),
        "never-fails": ("Never", 3),
        "never-succeeds": ("Never", 0),
        "always-succeeds": ("Always", 0),
    }
    for name, (policy, code) in cases.items():
        command = ["sh", "-c", f"echo run of {name}; exit {code}"]
        create(cluster, pod(name, command, restartPolicy=policy), ns)

    def settled(name: str, phase: str, min_restarts: int = 0) -> dict[str, Any] | None:
        status = pod_status(cluster, name, ns)
        statuses = status.get("containerStatuses") or [{}]
        if status.get("phase") == phase and statuses[0].get("restartCount", 0) >= min_restarts:
            return statuses[0]
        return None

    crashing = eventually(lambda: settled("onfailure-fails", "Running", 2), what="restarts")
    assert crashing["lastState"]["terminated"]["exitCode"] == 3
    assert crashing["lastState"]["terminated"]["reason"] == "Error"
    assert settled("always-succeeds", "Running", 2) or eventually(
        lambda: settled("always-succeeds", "Running", 2), what="Always restarts a success too"
    )
    for name, phase, code in (
        ("onfailure-succeeds", "Succeeded", 0),
        ("never-succeeds", "Succeeded", 0),
        ("never-fails", "Failed", 3),
    ):
        final = eventually(lambda n=name, p=phase: settled(n, p), what=f"{name} {phase}")  # type: ignore[misc]
        assert final["restartCount"] == 0
        assert final["state"]["terminated"]["exitCode"] == code
        assert final["state"]["terminated"]["reason"] == ("Completed" if code == 0 else "Error")
    # Each attempt has its own log; --previous is the one before.
    assert cluster.kubectl("logs", "-n", ns, "onfailure-fails", "--previous").stdout == (
        "run of onfailure-fails\n"
    )
    table = cluster.kubectl("get", "pods", "-n", ns).stdout
    assert "Completed" in table and "Error" in table


GRACEFUL = """
trap 'echo got TERM > "$0"; sleep 1; exit 0' TERM
while true; do sleep 0.1; done
"""


def test_graceful_termination(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    note = tmp_path / "term"
    create(
        cluster,
        pod("graceful", ["sh", "-c", GRACEFUL, str(note)], terminationGracePeriodSeconds=20),
        ns,
    )
    create(
        cluster,
        pod(
            "stubborn",
            ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"],
            terminationGracePeriodSeconds=1,
        ),
        ns,
    )
    wait_running(cluster, "graceful", ns)
    wait_running(cluster, "stubborn", ns)
    graceful_pid, stubborn_pid = (
        shim_pid(cluster, "graceful", ns),
        shim_pid(cluster, "stubborn", ns),
    )
    began = time.monotonic()
    cluster.kubectl("delete", "pod", "graceful", "stubborn", "-n", ns, "--wait=false")
    # The objects stay, marked, while the processes wind down.
    marked = get(cluster, "pod", "graceful", ns)
    assert marked is not None and marked["metadata"]["deletionGracePeriodSeconds"] == 20
    assert marked["metadata"]["deletionTimestamp"]
    assert running(graceful_pid)
    eventually(lambda: get(cluster, "pod", "stubborn", ns) is None, what="stubborn gone")
    assert not running(stubborn_pid)  # SIGKILL after its 1 s
    eventually(lambda: get(cluster, "pod", "graceful", ns) is None, what="graceful gone")
    assert not running(graceful_pid)
    assert note.read_text() == "got TERM\n"
    assert 1.0 <= time.monotonic() - began < 10  # its own second of cleanup, not the 20 s

    # A forced delete removes the object at once; the process still goes.
    create(cluster, pod("forced", ["sleep", "300"]), ns)
    wait_running(cluster, "forced", ns)
    forced_pid = shim_pid(cluster, "forced", ns)
    cluster.kubectl("delete", "pod", "forced", "-n", ns, "--grace-period=0", "--force")
    assert get(cluster, "pod", "forced", ns) is None
    eventually(lambda: not running(forced_pid), what="the forced pod's process gone")


def test_a_second_delete_shortens_the_grace_period(cluster: Cluster, ns: str) -> None:
    stubborn = ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]
    for name in ("slow", "forced-late"):
        create(cluster, pod(name, stubborn, terminationGracePeriodSeconds=120), ns)
    for name in ("slow", "forced-late"):
        wait_running(cluster, name, ns)
    pids = {name: shim_pid(cluster, name, ns) for name in ("slow", "forced-late")}
    cluster.kubectl("delete", "pod", "slow", "forced-late", "-n", ns, "--wait=false")
    assert get(cluster, "pod", "slow", ns)["metadata"]["deletionGracePeriodSeconds"] == 120
    began = time.monotonic()
    # The user does not want to wait two minutes: 1 s then, and the other one forced.
    cluster.kubectl("delete", "pod", "slow", "-n", ns, "--grace-period=1", "--wait=false")
    cluster.kubectl("delete", "pod", "forced-late", "-n", ns, "--grace-period=0", "--force")
    eventually(lambda: get(cluster, "pod", "slow", ns) is None, 20, what="slow gone")
    eventually(lambda: not running(pids["forced-late"]), 20, what="forced-late's process gone")
    assert not running(pids["slow"])
    assert time.monotonic() - began < 20  # not the 120 s the first delete gave


def test_logs(cluster: Cluster, ns: str) -> None:
    create(
        cluster,
        pod("talker", ["sh", "-c", "for i in 1 2 3; do echo line $i; done"], restartPolicy="Never"),
        ns,
    )
    eventually(lambda: pod_status(cluster, "talker", ns).get("phase") == "Succeeded")
    assert cluster.kubectl("logs", "-n", ns, "talker").stdout == "line 1\nline 2\nline 3\n"
    assert cluster.kubectl("logs", "-n", ns, "talker", "--tail=1").stdout == "line 3\n"
    assert cluster.kubectl("logs", "-n", ns, "talker", "--limit-bytes=6").stdout == "line 1"
    wrong = cluster.kubectl("logs", "-n", ns, "talker", "-c", "nope", check=False)
    assert wrong.returncode != 0 and "is not valid for pod talker" in wrong.stderr
    # Options that need a time per line are refused, not silently ignored.
    for flag in ("--timestamps", "--since=1h", "--since-time=2026-01-01T00:00:00Z"):
        refused = cluster.kubectl("logs", "-n", ns, "talker", flag, check=False)
        assert refused.returncode != 0, flag
        assert "does not record when each log line was written" in refused.stderr, refused.stderr
    previous = cluster.kubectl("logs", "-n", ns, "talker", "--previous", check=False)
    assert previous.returncode != 0 and "previous terminated container" in previous.stderr
    # -f follows until the process ends.
    create(
        cluster,
        pod("slow", ["sh", "-c", "echo a; sleep 1; echo b"], restartPolicy="Never"),
        ns,
    )
    wait_running(cluster, "slow", ns)
    assert cluster.kubectl("logs", "-n", ns, "slow", "-f", timeout=15).stdout == "a\nb\n"


def test_a_pod_bound_elsewhere_is_left_alone_and_one_with_an_image_is_explained(
    cluster: Cluster, ns: str
) -> None:
    create(cluster, pod("elsewhere", ["sleep", "300"], nodeName="node-b"), ns)
    image_only = pod("image", ["x"])
    del image_only["spec"]["containers"][0]["command"]
    image_only["spec"]["containers"][0]["image"] = "nginx:1.27"
    create(cluster, image_only, ns)

    def explained() -> dict[str, Any] | None:
        waiting = container_status(cluster, "image", ns).get("state", {}).get("waiting", {})
        return waiting if waiting.get("reason") == "CreateContainerError" else None

    assert "give the container a command" in eventually(explained)["message"]
    assert pod_status(cluster, "image", ns)["phase"] == "Pending"
    assert get(cluster, "pod", "elsewhere", ns)["spec"]["nodeName"] == "node-b"  # type: ignore[index]
    assert not pod_status(cluster, "elsewhere", ns).get("podIP")
    cluster.kubectl("delete", "pod", "image", "-n", ns, "--timeout=10s")


BAD_SPECS: list[tuple[str, dict[str, Any], str]] = [
    (
        "no command and no image",
        {"name": "c"},
        "spec.containers[0].image: Required value: an image, or a command to run, is required",
    ),
    (
        "an unknown probe type",
        {"name": "c", "command": ["true"], "readinessProbe": {"magic": {"port": 80}}},
        "spec.containers[0].readinessProbe: Required value: must specify a handler type",
    ),
    (
        "a gRPC probe (not run by kubesvc)",
        {"name": "c", "command": ["true"], "readinessProbe": {"grpc": {"port": 80}}},
        "spec.containers[0].readinessProbe.grpc: Forbidden",
    ),
    (
        "a port name longer than 15 characters",
        {
            "name": "c",
            "command": ["true"],
            "ports": [{"name": "a-very-long-port-name", "containerPort": 80}],
        },
        'spec.containers[0].ports[0].name: Invalid value: "a-very-long-port-name"',
    ),
]


@pytest.mark.parametrize(("case", "container", "message"), BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_bad_pod_specs_are_refused_by_the_api(
    cluster: Cluster, case: str, container: dict[str, Any], message: str
) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad"},
        "spec": {"containers": [container]},
    }
    code, status, _ = cluster.request("POST", "/api/v1/namespaces/default/pods", body)
    assert code == 422, status
    assert status["reason"] == "Invalid"
    assert message in status["message"]


def test_kubectl_describe_pod_tells_the_life_of_a_pod(cluster: Cluster, ns: str) -> None:
    create(cluster, pod("lived", ["sleep", "300"]), ns)
    create(cluster, pod("crashing", ["sh", "-c", "exit 3"]), ns)
    image_only = pod("imaged", ["x"])
    del image_only["spec"]["containers"][0]["command"]
    image_only["spec"]["containers"][0]["image"] = "nginx:1.27"
    create(cluster, image_only, ns)
    wait_running(cluster, "lived", ns)
    cluster.kubectl("delete", "pod", "lived", "-n", ns, "--grace-period=1", "--wait=false")

    def reasons(name: str) -> set[str]:
        out = cluster.kubectl(
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            f"involvedObject.name={name}",
            "-o",
            "json",
        ).stdout
        return {e["reason"] for e in json.loads(out)["items"]}

    eventually(lambda: {"Started", "Killing"} <= reasons("lived"), what="Started, then Killing")
    eventually(lambda: {"Started", "BackOff"} <= reasons("crashing"), what="BackOff")
    eventually(lambda: "Failed" in reasons("imaged"), what="Failed for an image-only container")
    described = cluster.kubectl("describe", "pod", "crashing", "-n", ns).stdout
    assert "Back-off restarting failed container main" in described
    for name in ("crashing", "imaged"):
        cluster.kubectl("delete", "pod", name, "-n", ns, "--grace-period=1", "--wait=false")
