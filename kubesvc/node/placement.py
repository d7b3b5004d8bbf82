"""Pure: which pods a node agent takes.

Placement is the scheduler's (in `kubesvc controllers`), except in a
one-node cluster: an agent binds to itself the unscheduled pods it can run —
meant for the default scheduler, not being deleted, not finished, with a node
selector it satisfies (a kubesvc node has the labels `kubernetes.io/hostname=
<node name>` and `kubernetes.io/os=linux`) — only while no *other* node is
ready (`sole_ready_node`). So `kubesvc node` alone against an API server runs
pods with no scheduler, and as soon as a second node is Ready the agents leave
placement to the scheduler, which spreads pods. A scheduler and a lone agent
may race for a pod; the binding is a compare-and-set in the API, so exactly
one wins, and both pick the same node.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubesvc.api import nodes

Obj = dict[str, Any]

DEFAULT_SCHEDULER = "default-scheduler"
TERMINAL_PHASES = ("Succeeded", "Failed")


def node_labels(node_name: str) -> dict[str, str]:
    return {"kubernetes.io/hostname": node_name, "kubernetes.io/os": "linux"}


def should_bind(pod: Obj, node_name: str) -> bool:
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    if spec.get("nodeName") or meta.get("deletionTimestamp"):
        return False
    if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return False
    if spec.get("schedulerName") not in (None, "", DEFAULT_SCHEDULER):
        return False
    selector = spec.get("nodeSelector") or {}
    labels = node_labels(node_name)
    return isinstance(selector, dict) and all(labels.get(k) == v for k, v in selector.items())


def is_mine(pod: Obj, node_name: str) -> bool:
    return (pod.get("spec") or {}).get("nodeName") == node_name


def sole_ready_node(node_name: str, all_nodes: Iterable[Obj], now: float, grace_s: float) -> bool:
    """True when no node but `node_name` is ready: this agent places pods itself."""
    return not any(
        nodes.name_of(n) != node_name and nodes.is_ready(n, now, grace_s) for n in all_nodes
    )
