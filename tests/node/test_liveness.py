"""Liveness and startup probes: the pure rules, then real pods the node agent kills and restarts.

The end-to-end tests use `kubesvc up` (the cluster of `test_host_mode`, restart back-off
0.2 s) and look only at what a user sees: the pod's status and its Events, through kubectl.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubesvc.node.readiness import (
    LIVENESS,
    READINESS,
    STARTUP,
    ContainerProbes,
    ProbeTiming,
    kill_grace_s,
)
from kubesvc.node.restart import Backoff, plan_restart, should_restart
from tests.apiserver.conftest import Cluster
from tests.node import test_host_mode as host_mode
from tests.node.conftest import container_status, create, eventually, pod, pod_status, running
from tests.node.test_host_mode import wait_running

# The host-mode tests' fixtures (`kubesvc up`, restart back-off 0.2 s): a cluster for this
# module and a namespace per test.
cluster = host_mode.cluster
ns = host_mode.ns

# ------------------------------------------------------------------- pure rules


def probes(**specs: dict[str, Any]) -> ContainerProbes:
    """The probes of a container with `livenessProbe=…` etc. (handlers do not matter here)."""
    container = {key: {"exec": {"command": ["true"]}, **spec} for key, spec in specs.items()}
    return ContainerProbes.from_spec(container)


def run(machine: ContainerProbes, kind: str, results: str) -> str:
    """Feed `+`/`-` results; per result: K (killed now), S (started now), . (nothing), x (ignored)."""
    out = ""
    for result in results:
        if not machine.active(kind):
            out += "x"
            continue
        was_started = machine.started
        outcome = machine.observe(kind, result == "+")
        out += "K" if outcome.kill else "S" if machine.started and not was_started else "."
    return out


# (failureThreshold, liveness results, what happens after each)
LIVENESS_ROWS = [
    (3, "++--", "...."),  # two failures are not three
    (3, "---", "..K"),
    (3, "--+--+---", "........K"),  # a success starts the count again
    (1, "+-", ".K"),
    (2, "--++", ".Kxx"),  # condemned: later results count for nothing
]


@pytest.mark.parametrize(("failure", "results", "expected"), LIVENESS_ROWS)
def test_liveness_kills_after_failure_threshold_in_a_row(
    failure: int, results: str, expected: str
) -> None:
    machine = probes(livenessProbe={"failureThreshold": failure})
    assert machine.ready and machine.started  # alive until proven otherwise
    assert run(machine, LIVENESS, results) == expected
    assert machine.ready == ("K" not in expected)
    assert machine.failed == (LIVENESS if "K" in expected else "")


# (failureThreshold, startup results, what happens after each)
STARTUP_ROWS = [
    (3, "+", "S"),
    (3, "--+", "..S"),
    (3, "---", "..K"),
    (3, "--+-", "..Sx"),  # once started, the startup probe stops
    (1, "-+", "Kx"),
]


@pytest.mark.parametrize(("failure", "results", "expected"), STARTUP_ROWS)
def test_startup_starts_once_or_kills_at_the_threshold(
    failure: int, results: str, expected: str
) -> None:
    machine = probes(startupProbe={"failureThreshold": failure})
    assert not machine.started and not machine.ready
    assert run(machine, STARTUP, results) == expected
    assert machine.started == ("S" in expected)
    assert machine.ready == ("S" in expected)  # no readiness probe: ready once started


def test_startup_gates_liveness_and_readiness() -> None:
    machine = probes(
        startupProbe={"failureThreshold": 5},
        livenessProbe={"failureThreshold": 1},
        readinessProbe={},
    )
    assert [machine.active(k) for k in (STARTUP, LIVENESS, READINESS)] == [True, False, False]
    # A liveness failure before the start counts for nothing: it is not being run.
    assert not machine.observe(LIVENESS, False).kill
    outcome = machine.observe(STARTUP, True)
    assert outcome.changed and machine.started and not machine.ready  # readiness decides now
    assert [machine.active(k) for k in (STARTUP, LIVENESS, READINESS)] == [False, True, True]
    assert machine.observe(READINESS, True).changed and machine.ready
    outcome = machine.observe(LIVENESS, False)
    assert outcome.kill and outcome.changed and not machine.ready
    assert not any(machine.active(k) for k in (STARTUP, LIVENESS, READINESS))


def test_readiness_failures_never_kill() -> None:
    machine = probes(readinessProbe={"failureThreshold": 1})
    assert [machine.observe(READINESS, ok).kill for ok in (True, False, False, False)] == [
        False
    ] * 4
    assert not machine.ready and not machine.failed


def test_an_adopted_container_keeps_what_was_reported() -> None:
    container = {
        "startupProbe": {"exec": {"command": ["true"]}},
        "readinessProbe": {"exec": {"command": ["true"]}},
    }
    machine = ContainerProbes.from_spec(container, started=True, ready=True)
    assert machine.started and machine.ready and not machine.active(STARTUP)


def test_success_threshold_is_one_for_liveness_and_startup() -> None:
    spec = {"successThreshold": 3}
    assert ProbeTiming.from_spec(spec, LIVENESS).success_threshold == 1
    assert ProbeTiming.from_spec(spec, STARTUP).success_threshold == 1
    assert ProbeTiming.from_spec(spec, READINESS).success_threshold == 3
    machine = probes(startupProbe=spec)
    assert machine.observe(STARTUP, True).changed and machine.started


@pytest.mark.parametrize(
    ("probe", "pod_spec", "grace"),
    [
        ({}, {}, 30.0),  # Kubernetes' default
        ({}, {"terminationGracePeriodSeconds": 5}, 5.0),
        ({"terminationGracePeriodSeconds": 1}, {"terminationGracePeriodSeconds": 60}, 1.0),
        ({"terminationGracePeriodSeconds": 0}, {"terminationGracePeriodSeconds": 60}, 0.0),
        ({"terminationGracePeriodSeconds": "x"}, {"terminationGracePeriodSeconds": 7}, 7.0),
    ],
)
def test_kill_grace(probe: dict[str, Any], pod_spec: dict[str, Any], grace: float) -> None:
    assert kill_grace_s(probe, pod_spec) == grace


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [
        ("Always", 0, True),
        ("OnFailure", 0, True),  # exited 0 on the probe's SIGTERM: still a failure
        ("OnFailure", 143, True),
        ("Never", 137, False),
    ],
)
def test_a_probe_kill_counts_as_a_failure(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code, probe_failed=True) is restart
    plan = plan_restart(policy, code, streak=0, ran_for_s=1, backoff=Backoff(), probe_failed=True)
    assert plan.restart is restart


# --------------------------------------------------------------- real pods


def with_probes(manifest: dict[str, Any], **probes: dict[str, Any]) -> dict[str, Any]:
    """`manifest` with probes on its container (the `pod` helper only places readinessProbe)."""
    manifest["spec"]["containers"][0].update(probes)
    return manifest


def exec_probe(*command: str, **timing: Any) -> dict[str, Any]:
    return {"exec": {"command": list(command)}, "periodSeconds": 1, **timing}


def events(cluster: Cluster, name: str, namespace: str) -> list[tuple[str, str, int]]:
    """(reason, message, count) of the Events about pod `name`, as `kubectl get events` has them."""
    listed = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
    return [
        (e.get("reason", ""), e.get("message", ""), int(e.get("count") or 1))
        for e in listed.get("items", [])
        if (e.get("involvedObject") or {}).get("name") == name
    ]


def has_event(cluster: Cluster, name: str, namespace: str, reason: str, message: str) -> bool:
    return any(r == reason and m == message for r, m, _ in events(cluster, name, namespace))


def restarted(cluster: Cluster, name: str, namespace: str, count: int = 1) -> dict[str, Any]:
    """The container's status once it has been restarted `count` times and runs again."""

    def check() -> dict[str, Any] | None:
        status = container_status(cluster, name, namespace)
        ok = status.get("restartCount", 0) >= count and "running" in status.get("state", {})
        return status if ok else None

    return eventually(check, what=f"{name} restarted {count} time(s)")


def test_a_failing_liveness_probe_restarts_the_container(
    cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    alive = tmp_path / "alive"
    alive.touch()  # there from the first check on; the next run of the container makes it again
    manifest = with_probes(
        pod("live", ["sh", "-c", f"touch {alive} && exec sleep 300"]),
        livenessProbe=exec_probe("test", "-f", str(alive), failureThreshold=2),
    )
    create(cluster, manifest, ns)
    wait_running(cluster, "live", ns)
    before = eventually(
        lambda: (s := container_status(cluster, "live", ns)).get("ready") and s, what="ready"
    )
    assert before["restartCount"] == 0 and before["started"] is True
    old_pid = int(before["containerID"].removeprefix("process://"))

    alive.unlink()  # the liveness probe fails from now on
    after = restarted(cluster, "live", ns)
    assert after["restartCount"] == 1
    terminated = after["lastState"]["terminated"]
    assert terminated["exitCode"] == 143 and terminated["signal"] == 15  # SIGTERM was enough
    assert terminated["containerID"] == before["containerID"]
    assert after["containerID"] != before["containerID"]
    assert not running(old_pid)
    eventually(
        lambda: has_event(
            cluster,
            "live",
            ns,
            "Killing",
            "Container main failed liveness probe, will be restarted",
        ),
        what="the Killing event",
    )

    def unhealthy() -> list[tuple[str, int]]:
        return [(m, n) for r, m, n in events(cluster, "live", ns) if r == "Unhealthy"]

    # Two failed checks: one Event counted twice, not one object per failure.
    folded = eventually(lambda: (u := unhealthy()) and u[0][1] >= 2 and u, what="2 failures")
    assert [m for m, _ in folded] == ["Liveness probe failed: command exited with 1"]


def test_with_restart_policy_never_a_failed_liveness_probe_ends_the_pod(
    cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    alive = tmp_path / "alive"
    alive.touch()
    manifest = with_probes(
        pod("once", ["sleep", "300"], restartPolicy="Never"),
        livenessProbe=exec_probe("test", "-f", str(alive), failureThreshold=1),
    )
    create(cluster, manifest, ns)
    wait_running(cluster, "once", ns)
    alive.unlink()

    status = eventually(
        lambda: (s := pod_status(cluster, "once", ns)).get("phase") == "Failed" and s,
        what="the pod failed",
    )
    container = status["containerStatuses"][0]
    assert container["restartCount"] == 0
    assert container["state"]["terminated"]["exitCode"] == 143
    assert container["lastState"] == {}
    assert not container["ready"] and container["started"] is False
    eventually(
        lambda: has_event(cluster, "once", ns, "Killing", "Container main failed liveness probe"),
        what="the Killing event (no restart promised)",
    )


def test_a_slow_start_is_protected_by_its_startup_probe(
    cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    up = tmp_path / "up"
    check = ("test", "-f", str(up))
    manifest = with_probes(
        pod("slow", ["sleep", "300"]),
        startupProbe=exec_probe(*check, failureThreshold=30),
        # Would kill at the first failure, were it run before the start.
        livenessProbe=exec_probe(*check, failureThreshold=1),
        readinessProbe=exec_probe(*check),
    )
    create(cluster, manifest, ns)
    wait_running(cluster, "slow", ns)

    # Three failed startup checks: three periods in which liveness would have killed it.
    def startup_failures() -> int:
        return sum(
            n
            for r, m, n in events(cluster, "slow", ns)
            if r == "Unhealthy" and m.startswith("Startup probe failed")
        )

    eventually(lambda: startup_failures() >= 3, what="three failed startup checks")
    waiting = container_status(cluster, "slow", ns)
    assert waiting["ready"] is False and waiting["started"] is False
    assert waiting["restartCount"] == 0 and "running" in waiting["state"]
    assert pod_status(cluster, "slow", ns)["conditions"][-1]["status"] == "False"  # Ready
    assert not any(m.startswith("Liveness") for _, m, _ in events(cluster, "slow", ns))

    up.touch()  # the slow start is over
    ready = eventually(
        lambda: (s := container_status(cluster, "slow", ns)).get("ready") and s, what="ready"
    )
    assert ready["started"] is True and ready["restartCount"] == 0
    assert ready["containerID"] == waiting["containerID"]  # the same run, never killed

    up.unlink()  # and now liveness runs: the first failure kills it
    restarted(cluster, "slow", ns)
    eventually(
        lambda: has_event(
            cluster,
            "slow",
            ns,
            "Killing",
            "Container main failed liveness probe, will be restarted",
        ),
        what="the Killing event",
    )


def test_a_startup_probe_that_never_passes_gets_the_container_restarted(
    cluster: Cluster, ns: str
) -> None:
    # The process ignores SIGTERM and the pod allows 30 s: only the probe's own grace
    # period (1 s) gets it restarted within the wait below.
    manifest = with_probes(
        pod("never", ["sh", "-c", "trap '' TERM; exec sleep 300"]),
        startupProbe=exec_probe("false", failureThreshold=2, terminationGracePeriodSeconds=1),
    )
    create(cluster, manifest, ns)
    wait_running(cluster, "never", ns)
    after = restarted(cluster, "never", ns)
    terminated = after["lastState"]["terminated"]
    assert terminated["exitCode"] == 137  # SIGKILL after the probe's grace period
    assert after["ready"] is False
    eventually(
        lambda: has_event(
            cluster,
            "never",
            ns,
            "Killing",
            "Container main failed startup probe, will be restarted",
        ),
        what="the Killing event",
    )
    assert pod_status(cluster, "never", ns)["conditions"][-1]["status"] == "False"
    # Not left for the cluster's shutdown, which gives a process ignoring SIGTERM 10 s.
    cluster.kubectl("delete", "pod", "never", "-n", ns, "--grace-period=1")
