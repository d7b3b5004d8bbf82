"""Pure: a pod's status from what its containers are doing.

The node agent keeps one `ContainerView` per container and per init
container (its state as the API spells it, restarts, readiness) and asks
here for the whole `status`: phase, conditions, IPs, containerStatuses and
initContainerStatuses, in Kubernetes' shape, so `kubectl get pods` shows
READY, STATUS (`Init:1/2`, `Init:Error`, `PodInitializing` too) and RESTARTS
as usual and the Endpoints controller sees the Ready condition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

CONDITION_TYPES = ("PodScheduled", "Initialized", "ContainersReady", "Ready")
# The kubelet's waiting reason for a container not created yet: every container of a pod
# with init containers waits with PodInitializing until it starts.
CREATING, INITIALIZING = "ContainerCreating", "PodInitializing"


def has_init_containers(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("initContainers"))


def initial_state(pod: Obj) -> Obj:
    """The state of a container of `pod` that has not been started yet."""
    return {"waiting": {"reason": INITIALIZING if has_init_containers(pod) else CREATING}}


@dataclass
class ContainerView:
    """One container as the status reports it. `state` is `{"running": …}`, `{"waiting": …}` or `{"terminated": …}`."""

    name: str
    image: str = ""
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": CREATING}})
    last_state: Obj = field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str = ""


def _exit_code(state: Obj) -> int | None:
    """The exit code of a `terminated` state; None for any other state."""
    terminated = state.get("terminated")
    return terminated.get("exitCode") if isinstance(terminated, dict) else None


def init_succeeded(view: ContainerView) -> bool:
    """An init container is done once it has exited 0 (it is never run again then)."""
    return _exit_code(view.state) == 0


def regular_started(views: list[ContainerView]) -> bool:
    """Whether a regular container has run: then the pod was initialized, whatever else says."""
    return any("running" in v.state or "terminated" in v.state for v in views)


def incomplete_init(init_views: list[ContainerView], views: list[ContainerView]) -> list[str]:
    """The init containers still to succeed before the pod counts as Initialized (the kubelet's rule)."""
    if regular_started(views):
        return []
    return [v.name for v in init_views if not init_succeeded(v)]


def pod_phase(
    restart_policy: str, views: list[ContainerView], init_views: list[ContainerView] | None = None
) -> str:
    """The kubelet's phase rule over the init containers' and containers' states.

    An init container that failed makes the pod Failed under restartPolicy
    Never (no container will ever start); one still to run or running keeps it
    Pending. A waiting container that has run before (it has a last state)
    counts as stopped, not as waiting: a crash-looping pod is Running, not Pending.
    """
    pending_init = failed_init = 0
    for view in init_views or []:
        if "running" in view.state:
            pending_init += 1
        elif "terminated" in view.state:
            if _exit_code(view.state) != 0:
                failed_init += 1
        elif "terminated" in view.last_state:
            if _exit_code(view.last_state) != 0:
                failed_init += 1  # in back-off after a failure
        else:
            pending_init += 1
    if failed_init and restart_policy == "Never":
        return "Failed"
    if pending_init and not regular_started(views):
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for view in views:
        if "running" in view.state:
            running += 1
        elif "terminated" in view.state:
            stopped += 1
            if view.state["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif "terminated" in view.last_state:
            stopped += 1
        else:
            waiting += 1
    if not views or waiting:
        return "Pending"
    if running:
        return "Running"
    # Everything has stopped.
    if restart_policy == "Always":
        return "Running"  # it will be started again
    if stopped == succeeded:
        return "Succeeded"
    if restart_policy == "Never":
        return "Failed"
    return "Running"  # OnFailure: the failed ones will be started again


def container_status(view: ContainerView) -> Obj:
    out: Obj = {
        "name": view.name,
        "image": view.image,
        "imageID": "",
        "state": view.state,
        "lastState": view.last_state,
        "ready": view.ready,
        "restartCount": view.restart_count,
        "started": view.started,
    }
    if view.container_id:
        out["containerID"] = view.container_id
    return out


def _condition(
    kind: str, ok: bool, previous: dict[str, Obj], now: str, reason: str = "", message: str = ""
) -> Obj:
    status = "True" if ok else "False"
    before = previous.get(kind)
    # The transition time moves only when the status does.
    since = before.get("lastTransitionTime") if before and before.get("status") == status else now
    out: Obj = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if not ok and reason:
        out["reason"] = reason
    if not ok and message:
        out["message"] = message
    return out


def pod_status(
    pod: Obj,
    views: list[ContainerView],
    *,
    init_views: list[ContainerView] | None = None,
    pod_ip: str | None,
    host_ip: str,
    start_time: str,
    now: str,
    previous_status: Obj | None = None,
) -> Obj:
    """The pod's whole `status` for the views (`init_views`: of its init containers, in order).

    Condition transition times are carried over from `previous_status` (the
    status last written; the stored one when not given) while a condition keeps its value.
    """
    spec = pod.get("spec") or {}
    if previous_status is None:
        previous_status = pod.get("status") or {}
    previous = {
        c.get("type"): c
        for c in previous_status.get("conditions") or []
        if isinstance(c, dict) and c.get("type")
    }
    phase = pod_phase(str(spec.get("restartPolicy") or "Always"), views, init_views)
    incomplete = incomplete_init(init_views or [], views)
    unready = [v.name for v in views if not v.ready]
    all_ready = bool(views) and not unready
    if phase in ("Succeeded", "Failed"):
        reason, message = "PodCompleted", ""
        all_ready = False
    else:
        reason = "ContainersNotReady"
        message = f"containers with unready status: [{' '.join(unready)}]"
    conditions = [
        _condition("PodScheduled", True, previous, now),
        _condition(
            "Initialized",
            not incomplete,
            previous,
            now,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(incomplete)}]",
        ),
        _condition("ContainersReady", all_ready, previous, now, reason, message),
        _condition("Ready", all_ready, previous, now, reason, message),
    ]
    status: Obj = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": [container_status(v) for v in views],
        "qosClass": "BestEffort",
    }
    if has_init_containers(pod):
        status["initContainerStatuses"] = [container_status(v) for v in init_views or []]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status
