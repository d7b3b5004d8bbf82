"""Init containers: the pure rules (phase, conditions, what `kubectl get pods` shows), then
real pods whose init containers the node agent runs, one at a time, before their containers.

The end-to-end tests use `kubesvc up` (the cluster of `test_host_mode`, restart back-off
0.2 s) and look at what a user sees: the pod's status and its row in `kubectl get pods`.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kubesvc.api.tables import pod_summary
from kubesvc.node.restart import Backoff, init_policy, plan_restart
from kubesvc.node.state import PodRecord
from kubesvc.node.status import ContainerView, initial_state, pod_phase, pod_status
from tests.apiserver.conftest import Cluster
from tests.node import test_host_mode as host_mode
from tests.node import test_node_agent as node_agent
from tests.node.conftest import create, eventually, get, pod, running
from tests.node.conftest import pod_status as api_pod_status
from tests.node.test_host_mode import wait_running
from tests.node.test_node_agent import Node

# The host-mode tests' fixtures (`kubesvc up`, restart back-off 0.2 s): a cluster for this
# module and a namespace per test.
cluster = host_mode.cluster
ns = host_mode.ns
# And `kubesvc node` on its own next to an API server, for an agent that restarts.
node_cluster = node_agent.cluster

# ------------------------------------------------------------------- pure rules

RUNNING = {"running": {"startedAt": "2024-01-01T00:00:00Z"}}
INITIALIZING = {"waiting": {"reason": "PodInitializing"}}
BACKOFF = {"waiting": {"reason": "CrashLoopBackOff"}}


def done(code: int) -> dict[str, Any]:
    reason = "Completed" if code == 0 else "Error"
    return {
        "terminated": {"exitCode": code, "reason": reason, "finishedAt": "2024-01-01T00:01:00Z"}
    }


def view(
    name: str, state: dict[str, Any], last: dict[str, Any] | None = None, **kw: Any
) -> ContainerView:
    return ContainerView(name, state=state, last_state=last or {}, **kw)


def init(*states: dict[str, Any] | tuple[dict[str, Any], dict[str, Any]]) -> list[ContainerView]:
    """Init container views i1, i2…: a state, or (state, last state)."""
    out = []
    for i, state in enumerate(states, 1):
        now, last = state if isinstance(state, tuple) else (state, {})
        out.append(view(f"i{i}", now, last, ready=now == done(0)))
    return out


MAIN_WAITING = [view("main", INITIALIZING)]
MAIN_RUNNING = [view("main", RUNNING, ready=True, started=True)]

# (restartPolicy, init containers, containers, phase)
PHASE_ROWS = [
    ("Always", init(INITIALIZING, INITIALIZING), MAIN_WAITING, "Pending"),
    ("Always", init(RUNNING, INITIALIZING), MAIN_WAITING, "Pending"),
    ("Always", init(done(0), RUNNING), MAIN_WAITING, "Pending"),
    ("Always", init((BACKOFF, done(1))), MAIN_WAITING, "Pending"),  # crash-looping: not Failed
    ("OnFailure", init(done(2)), MAIN_WAITING, "Pending"),  # about to be restarted
    ("Never", init(done(2)), MAIN_WAITING, "Failed"),  # no container will ever start
    ("Never", init(done(0), done(1), INITIALIZING), MAIN_WAITING, "Failed"),
    ("Always", init(done(0), done(0)), MAIN_WAITING, "Pending"),  # containers about to start
    ("Always", init(done(0), done(0)), MAIN_RUNNING, "Running"),
    ("Never", init(done(0)), [view("main", done(0))], "Succeeded"),
    # Containers that have run mean the pod was initialized, whatever the init views say.
    ("Always", init(INITIALIZING), MAIN_RUNNING, "Running"),
]


@pytest.mark.parametrize(("policy", "inits", "containers", "phase"), PHASE_ROWS)
def test_phase_with_init_containers(
    policy: str, inits: list[ContainerView], containers: list[ContainerView], phase: str
) -> None:
    assert pod_phase(policy, containers, inits) == phase


def spec(policy: str = "Always", inits: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            "restartPolicy": policy,
            "initContainers": [{"name": f"i{i}"} for i in range(1, inits + 1)],
            "containers": [{"name": "main"}],
        },
    }


def status_of(
    pod_obj: dict[str, Any], inits: list[ContainerView], containers: list[ContainerView]
) -> dict[str, Any]:
    return pod_status(
        pod_obj,
        containers,
        init_views=inits,
        pod_ip="127.245.0.2",
        host_ip="127.0.0.1",
        start_time="t0",
        now="t1",
    )


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_initialized_condition_names_the_init_containers_still_to_succeed() -> None:
    status = status_of(spec(), init(done(0), RUNNING), MAIN_WAITING)
    initialized = conditions(status)["Initialized"]
    assert initialized["status"] == "False"
    assert initialized["reason"] == "ContainersNotInitialized"
    assert initialized["message"] == "containers with incomplete status: [i2]"
    assert conditions(status)["Ready"]["message"] == "containers with unready status: [main]"
    first, second = status["initContainerStatuses"]
    assert (first["name"], first["ready"], first["state"]) == ("i1", True, done(0))
    assert (second["name"], second["ready"], second["state"]) == ("i2", False, RUNNING)

    status = status_of(spec(), init(done(0), done(0)), MAIN_RUNNING)
    assert conditions(status)["Initialized"]["status"] == "True"
    assert "reason" not in conditions(status)["Initialized"]
    assert conditions(status)["Ready"]["status"] == "True"


def test_without_init_containers_there_is_no_init_status() -> None:
    status = status_of(spec(inits=0), [], MAIN_RUNNING)
    assert "initContainerStatuses" not in status
    assert conditions(status)["Initialized"]["status"] == "True"


def test_containers_wait_with_pod_initializing_only_in_pods_with_init_containers() -> None:
    assert initial_state(spec()) == INITIALIZING
    assert initial_state(spec(inits=0)) == {"waiting": {"reason": "ContainerCreating"}}


# (restartPolicy, init containers, containers, STATUS in `kubectl get pods`)
TABLE_ROWS = [
    ("Always", init(INITIALIZING, INITIALIZING), MAIN_WAITING, "Init:0/2"),
    ("Always", init(RUNNING, INITIALIZING), MAIN_WAITING, "Init:0/2"),
    ("Always", init(done(0), RUNNING), MAIN_WAITING, "Init:1/2"),
    ("Always", init(done(0), (BACKOFF, done(1))), MAIN_WAITING, "Init:CrashLoopBackOff"),
    ("Never", init(done(3), INITIALIZING), MAIN_WAITING, "Init:Error"),
    ("Always", init(done(0), done(0)), MAIN_WAITING, "PodInitializing"),
    ("Always", init(done(0), done(0)), MAIN_RUNNING, "Running"),
]


@pytest.mark.parametrize(("policy", "inits", "containers", "shown"), TABLE_ROWS)
def test_what_kubectl_get_pods_shows(
    policy: str, inits: list[ContainerView], containers: list[ContainerView], shown: str
) -> None:
    pod_obj = spec(policy)
    pod_obj["status"] = status_of(pod_obj, inits, containers)
    assert pod_summary(pod_obj, 0.0)[1] == shown


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [
        ("Always", 0, False),  # done: an init container never runs twice
        ("Always", 1, True),
        ("OnFailure", 0, False),
        ("OnFailure", 1, True),
        ("Never", 1, False),
    ],
)
def test_init_containers_restart_only_on_failure(policy: str, code: int, restart: bool) -> None:
    plan = plan_restart(init_policy(policy), code, streak=0, ran_for_s=1, backoff=Backoff())
    assert plan.restart is restart


def test_the_pod_record_remembers_that_init_is_done(tmp_path: Path) -> None:
    record = PodRecord("uid-1", "default", "p", tmp_path / "p")
    record.save()
    assert PodRecord.load(record.directory).initialized is False  # type: ignore[union-attr]
    record.initialized = True
    record.save()
    assert PodRecord.load(record.directory).initialized is True  # type: ignore[union-attr]


# --------------------------------------------------------------- real pods


def with_init(manifest: dict[str, Any], *commands: list[str]) -> dict[str, Any]:
    """`manifest` with init containers first, second… running `commands`, in that order."""
    names = ["first", "second", "third"]
    manifest["spec"]["initContainers"] = [
        {"name": names[i], "command": command} for i, command in enumerate(commands)
    ]
    return manifest


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def shown(cluster: Cluster, name: str, namespace: str) -> str:
    """The STATUS column of the pod's row in `kubectl get pods`."""
    row = cluster.kubectl("get", "pod", name, "-n", namespace, "--no-headers").stdout.split()
    return row[2] if len(row) > 2 else ""


def shows(cluster: Cluster, name: str, namespace: str, text: str) -> None:
    eventually(lambda: shown(cluster, name, namespace) == text, 30, f"{name} shown as {text}")


def init_statuses(cluster: Cluster, name: str, namespace: str) -> list[dict[str, Any]]:
    return api_pod_status(cluster, name, namespace).get("initContainerStatuses") or []


def node_log(cluster: Cluster, name: str, namespace: str, container: str) -> str:
    """A container's log as the node serves it, at the address in the pod's annotation."""
    obj = get(cluster, "pod", name, namespace) or {}
    base = obj["metadata"]["annotations"]["node.kubesvc.io/logs"]
    with urllib.request.urlopen(f"{base}/containerLogs/{namespace}/{name}/{container}") as resp:
        return resp.read().decode()


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions") or [] if c.get("type") == kind)


def test_init_containers_run_in_order_before_the_container(
    cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    lines, seen = tmp_path / "lines", tmp_path / "seen"
    gates = [tmp_path / "gate1", tmp_path / "gate2"]
    wait = "while [ ! -f {} ]; do sleep 0.05; done; "
    manifest = with_init(
        pod("ordered", sh(f"cp {lines} {seen}; exec sleep 300")),
        sh(wait.format(gates[0]) + f"echo one >> {lines}"),
        # The same environment as a container: the pod's own IP among it.
        sh(wait.format(gates[1]) + f'echo "two $POD_IP" >> {lines}'),
    )
    create(cluster, manifest, ns)

    shows(cluster, "ordered", ns, "Init:0/2")
    status = api_pod_status(cluster, "ordered", ns)
    assert status["phase"] == "Pending"
    initialized = condition(status, "Initialized")
    assert (initialized["status"], initialized["reason"]) == ("False", "ContainersNotInitialized")
    assert initialized["message"] == "containers with incomplete status: [first second]"
    main = status["containerStatuses"][0]
    assert main["state"] == {"waiting": {"reason": "PodInitializing"}}

    gates[0].touch()
    shows(cluster, "ordered", ns, "Init:1/2")
    first, second = init_statuses(cluster, "ordered", ns)
    assert first["state"]["terminated"]["reason"] == "Completed" and first["ready"] is True
    assert "running" in second["state"] and second["ready"] is False
    assert lines.read_text() == "one\n" and not seen.exists()

    gates[1].touch()
    status = wait_running(cluster, "ordered", ns)
    eventually(seen.exists, 30, "the container's copy of the lines")
    assert seen.read_text() == f"one\ntwo {status['podIP']}\n"
    shows(cluster, "ordered", ns, "Running")
    status = api_pod_status(cluster, "ordered", ns)
    assert condition(status, "Initialized")["status"] == "True"
    for init_status in status["initContainerStatuses"]:
        terminated = init_status["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
        assert init_status["restartCount"] == 0 and init_status["ready"] is True


# Fails on its first two runs, succeeds on the third (the count kept in a file).
COUNTER = 'n=$(cat {0} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {0}; [ "$n" -ge 3 ]'


def test_a_failing_init_container_is_retried_until_it_succeeds(
    cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    policies = {"retry-always": "Always", "retry-onfailure": "OnFailure"}
    for name, policy in policies.items():
        counter = tmp_path / f"{name}.count"
        create(
            cluster,
            with_init(
                pod(name, ["sleep", "300"], restartPolicy=policy), sh(COUNTER.format(counter))
            ),
            ns,
        )
    for name in policies:
        wait_running(cluster, name, ns)
        (retried,) = init_statuses(cluster, name, ns)
        assert retried["restartCount"] == 2
        assert retried["state"]["terminated"]["reason"] == "Completed"
        assert retried["lastState"]["terminated"]["exitCode"] == 1
        assert (tmp_path / f"{name}.count").read_text() == "3\n"
        main = api_pod_status(cluster, name, ns)["containerStatuses"][0]
        assert "running" in main["state"] and main["restartCount"] == 0


def test_an_init_container_that_keeps_failing_crash_loops(
    cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    marker = tmp_path / "main-ran"
    create(cluster, with_init(pod("looping", ["touch", str(marker)]), ["false"]), ns)
    shows(cluster, "looping", ns, "Init:CrashLoopBackOff")
    eventually(
        lambda: init_statuses(cluster, "looping", ns)[0].get("restartCount", 0) >= 2,
        30,
        "two restarts",
    )
    status = api_pod_status(cluster, "looping", ns)
    assert status["phase"] == "Pending"
    assert condition(status, "Initialized")["status"] == "False"
    assert not marker.exists()
    cluster.kubectl("delete", "pod", "looping", "-n", ns, "--timeout=30s")


def test_with_restart_policy_never_a_failed_init_container_fails_the_pod(
    cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    marker = tmp_path / "main-ran"
    manifest = with_init(
        pod("doomed", ["touch", str(marker)], restartPolicy="Never"),
        ["true"],
        sh("echo cannot prepare; exit 3"),
        ["true"],
    )
    create(cluster, manifest, ns)
    status = eventually(
        lambda: (s := api_pod_status(cluster, "doomed", ns)).get("phase") == "Failed" and s,
        30,
        "the pod failed",
    )
    first, second, third = status["initContainerStatuses"]
    assert first["state"]["terminated"]["exitCode"] == 0
    assert second["state"]["terminated"]["exitCode"] == 3 and second["restartCount"] == 0
    assert second["state"]["terminated"]["reason"] == "Error"
    assert third["state"] == {"waiting": {"reason": "PodInitializing"}}  # never run
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert condition(status, "Initialized")["message"] == (
        "containers with incomplete status: [second third]"
    )
    shows(cluster, "doomed", ns, "Init:Error")
    # The node keeps each init container's log, as a container's, and kubectl reads it.
    assert node_log(cluster, "doomed", ns, "second") == "cannot prepare\n"
    logs = cluster.kubectl("logs", "doomed", "-n", ns, "-c", "second")
    assert logs.stdout == "cannot prepare\n"
    assert not marker.exists()


def test_deleting_a_pod_stops_its_running_init_container(
    cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    marker, pid_file = tmp_path / "main-ran", tmp_path / "init.pid"
    # Deaf to SIGTERM: only the SIGKILL after the grace period ends it. (`$$$$`: the
    # command's `$(VAR)` expansion makes `$$` of it, the shell's own PID.)
    stubborn = f"echo $$$$ > {pid_file}; trap '' TERM; while true; do sleep 0.1; done"
    manifest = with_init(
        pod("stuck", ["touch", str(marker)], terminationGracePeriodSeconds=1), sh(stubborn)
    )
    create(cluster, manifest, ns)
    shows(cluster, "stuck", ns, "Init:0/1")
    (stuck,) = eventually(
        lambda: (s := init_statuses(cluster, "stuck", ns)) and "running" in s[0]["state"] and s,
        30,
        "the init container running",
    )
    shim = int(stuck["containerID"].removeprefix("process://"))
    shell = int(eventually(lambda: pid_file.exists() and pid_file.read_text().strip(), 30))
    assert running(shim) and running(shell)

    began = time.monotonic()
    cluster.kubectl("delete", "pod", "stuck", "-n", ns, "--timeout=30s")
    assert get(cluster, "pod", "stuck", ns) is None
    assert time.monotonic() - began < 15  # its 1 s of grace, not the default 30 s
    assert not running(shim) and not running(shell)
    assert not marker.exists()  # the container never started after it


def test_sidecars_and_probes_on_init_containers_are_refused(cluster: Cluster, ns: str) -> None:
    sidecar = with_init(pod("sidecar", ["sleep", "300"]), ["sleep", "300"])
    sidecar["spec"]["initContainers"][0]["restartPolicy"] = "Always"
    code, status, _ = cluster.request("POST", f"/api/v1/namespaces/{ns}/pods", sidecar)
    assert code == 422, status
    assert (
        "spec.initContainers[0].restartPolicy: Forbidden: kubesvc does not run sidecar containers"
        in status["message"]
    )
    probed = with_init(pod("probed", ["sleep", "300"]), ["true"])
    probed["spec"]["initContainers"][0]["livenessProbe"] = {"exec": {"command": ["true"]}}
    code, status, _ = cluster.request("POST", f"/api/v1/namespaces/{ns}/pods", probed)
    assert code == 422, status
    assert (
        "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers"
        in status["message"]
    )


def test_a_restarted_agent_does_not_run_init_containers_again(
    node_cluster: tuple[Cluster, Node], tmp_path: Path
) -> None:
    api, node = node_cluster
    api.kubectl("create", "namespace", "init-adopt")
    lines, main_pid = tmp_path / "lines", tmp_path / "main.pid"
    manifest = with_init(
        pod("kept", sh(f"echo $$$$ > {main_pid}; exec sleep 300")),
        sh(f"echo ran >> {lines}"),
    )
    create(api, manifest, "init-adopt")
    eventually(
        lambda: api_pod_status(api, "kept", "init-adopt").get("phase") == "Running",
        30,
        "the pod running",
    )
    assert lines.read_text() == "ran\n"

    # While no agent runs, the container ends: the next agent restarts it, and only it.
    node.stop(signal.SIGKILL)
    pid = int(eventually(lambda: main_pid.exists() and main_pid.read_text().strip(), 30))
    os.kill(pid, signal.SIGTERM)
    eventually(lambda: not running(pid), 30, "the container ended")
    node.start()

    def restarted() -> dict[str, Any] | None:
        status = api_pod_status(api, "kept", "init-adopt")
        main = (status.get("containerStatuses") or [{}])[0]
        return status if main.get("restartCount") == 1 and "running" in main["state"] else None

    status = eventually(restarted, 30, "the container restarted by the new agent")
    assert lines.read_text() == "ran\n"  # the init container did not run again
    (kept,) = status["initContainerStatuses"]
    assert kept["state"]["terminated"]["reason"] == "Completed" and kept["restartCount"] == 0
    assert condition(status, "Initialized")["status"] == "True"
    api.kubectl("delete", "pod", "kept", "-n", "init-adopt", "--timeout=30s")
