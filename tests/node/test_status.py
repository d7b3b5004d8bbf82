"""Pod phase, conditions and containerStatuses from the containers' states: pure tables."""

from __future__ import annotations

import pytest

from kubesvc.node.status import ContainerView, pod_phase, pod_status

RUNNING = {"running": {"startedAt": "2024-01-01T00:00:00Z"}}
CREATING = {"waiting": {"reason": "ContainerCreating"}}
BACKOFF = {"waiting": {"reason": "CrashLoopBackOff"}}


def done(code: int) -> dict[str, dict[str, object]]:
    return {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}}


def view(state: dict[str, object], last: dict[str, object] | None = None) -> ContainerView:
    return ContainerView("c", state=state, last_state=last or {})  # type: ignore[arg-type]


PHASE_ROWS = [
    ("Always", [], "Pending"),
    ("Always", [view(CREATING)], "Pending"),
    ("Always", [view(RUNNING), view(CREATING)], "Pending"),
    ("Always", [view(RUNNING)], "Running"),
    ("Always", [view(RUNNING), view(done(0))], "Running"),
    ("Always", [view(done(0))], "Running"),  # about to start again
    ("Always", [view(BACKOFF, done(1))], "Running"),  # crash-looping, not pending
    ("OnFailure", [view(done(0))], "Succeeded"),
    ("OnFailure", [view(done(0)), view(done(0))], "Succeeded"),
    ("OnFailure", [view(BACKOFF, done(2))], "Running"),
    ("Never", [view(done(0))], "Succeeded"),
    ("Never", [view(done(3))], "Failed"),
    ("Never", [view(done(0)), view(done(137))], "Failed"),
    ("Never", [view(RUNNING), view(done(1))], "Running"),
]


@pytest.mark.parametrize(("policy", "views", "phase"), PHASE_ROWS)
def test_phase(policy: str, views: list[ContainerView], phase: str) -> None:
    assert pod_phase(policy, views) == phase


def pod(policy: str = "Always") -> dict[str, object]:
    return {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"restartPolicy": policy, "containers": [{"name": "a"}, {"name": "b"}]},
    }


def conditions(status: dict[str, object]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}  # type: ignore[attr-defined,index]


def test_ready_only_when_every_container_is() -> None:
    a = ContainerView("a", state=RUNNING, ready=True, started=True)
    b = ContainerView("b", state=RUNNING, ready=False, started=True)
    kwargs = {"pod_ip": "127.244.0.2", "host_ip": "127.0.0.1", "start_time": "t0", "now": "t1"}
    status = pod_status(pod(), [a, b], **kwargs)  # type: ignore[arg-type]
    assert status["phase"] == "Running"
    assert conditions(status) == {
        "PodScheduled": "True",
        "Initialized": "True",
        "ContainersReady": "False",
        "Ready": "False",
    }
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [b]"
    assert status["podIP"] == "127.244.0.2" and status["podIPs"] == [{"ip": "127.244.0.2"}]
    assert [s["name"] for s in status["containerStatuses"]] == ["a", "b"]

    b.ready = True
    later = pod_status(pod(), [a, b], **{**kwargs, "now": "t2"}, previous_status=status)  # type: ignore[arg-type]
    assert conditions(later)["Ready"] == "True"
    times = {c["type"]: c["lastTransitionTime"] for c in later["conditions"]}
    # Only the conditions that changed move their transition time.
    assert times == {
        "PodScheduled": "t1",
        "Initialized": "t1",
        "ContainersReady": "t2",
        "Ready": "t2",
    }


def test_a_finished_pod_is_not_ready() -> None:
    a = ContainerView("a", state=done(0), ready=False, started=True)
    b = ContainerView("b", state=done(0), ready=False, started=True)
    status = pod_status(
        pod("Never"), [a, b], pod_ip=None, host_ip="127.0.0.1", start_time="t0", now="t1"
    )
    assert status["phase"] == "Succeeded"
    assert conditions(status)["Ready"] == "False"
    assert "podIP" not in status
