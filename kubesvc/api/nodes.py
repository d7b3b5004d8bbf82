"""Pure: reading a Node's health, for the scheduler, the node lifecycle and the node agents.

A node is *ready* when its `Ready` condition is `True` and its agent's last
heartbeat (`lastHeartbeatTime` of that condition) is younger than the grace
period; an unschedulable node (`spec.unschedulable`) takes no new pods either.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubesvc.api.meta import rfc3339 as rfc3339  # node heartbeats use the one Time format

Obj = dict[str, Any]

READY = "Ready"
# How often a node agent posts its status, and how long without one makes it NotReady
# (the kubelet posts every 10 s; the node lifecycle controller's grace period is 40 s).
DEFAULT_HEARTBEAT_S = 10.0
DEFAULT_GRACE_S = 40.0
HOSTNAME_LABEL = "kubernetes.io/hostname"


def parse_rfc3339(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def name_of(node: Obj) -> str:
    return str((node.get("metadata") or {}).get("name") or "")


def ready_condition(node: Obj) -> Obj | None:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == READY:
            return cond
    return None


def last_heartbeat(node: Obj) -> float | None:
    cond = ready_condition(node)
    return parse_rfc3339(cond.get("lastHeartbeatTime")) if cond else None


def heartbeat_expired(node: Obj, now: float, grace_s: float) -> bool:
    """True when the node's agent has not posted its status for longer than `grace_s`."""
    beat = last_heartbeat(node)
    # Timestamps have whole seconds: one more second keeps a punctual node from flapping.
    return beat is None or now - beat > grace_s + 1.0


def is_ready(node: Obj, now: float, grace_s: float) -> bool:
    cond = ready_condition(node)
    return bool(cond and cond.get("status") == "True") and not heartbeat_expired(node, now, grace_s)


def schedulable(node: Obj, now: float, grace_s: float) -> bool:
    """Ready, fresh, and not cordoned: the node may get new pods."""
    spec = node.get("spec") or {}
    return is_ready(node, now, grace_s) and spec.get("unschedulable") is not True


def labels_of(node: Obj) -> dict[str, str]:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def pod_capacity(node: Obj) -> int | None:
    """`status.allocatable.pods` as a number; None when absent or unreadable (no limit)."""
    value = ((node.get("status") or {}).get("allocatable") or {}).get("pods")
    try:
        return int(str(value))
    except ValueError:
        return None
