"""Pure: a pod's status from what its containers are doing.

The node agent keeps one `ContainerView` per container (its state as the
API spells it, restarts, readiness) and asks here for the whole
`status`: phase, conditions, IPs and containerStatuses, in Kubernetes'
shape, so `kubectl get pods` shows READY, STATUS and RESTARTS as usual and
the Endpoints controller sees the Ready condition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

CONDITION_TYPES = ("PodScheduled", "Initialized", "ContainersReady", "Ready")


@dataclass
class ContainerView:
    """One container as the status reports it. `state` is `{"running": …}`, `{"waiting": …}` or `{"terminated": …}`."""

    name: str
    image: str = ""
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str = ""


def pod_phase(restart_policy: str, views: list[ContainerView]) -> str:
    """The kubelet's phase rule over the containers' states.

    A waiting container that has run before (it has a last state) counts as
    stopped, not as waiting: a crash-looping pod is Running, not Pending.
    """
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
    pod_ip: str | None,
    host_ip: str,
    start_time: str,
    now: str,
    previous_status: Obj | None = None,
) -> Obj:
    """The pod's whole `status` for the views.

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
    phase = pod_phase(str(spec.get("restartPolicy") or "Always"), views)
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
        _condition("Initialized", True, previous, now),
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
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status
