"""Pure: which pods a node agent takes.

There is no scheduler: an agent binds to itself every unscheduled pod it
can run — meant for the default scheduler, not being deleted, not finished,
and with a node selector it satisfies (a kubesvc node has the one label
`kubernetes.io/hostname=<node name>`). Several agents may race for a pod;
the binding is a compare-and-set in the API, so exactly one wins.
"""

from __future__ import annotations

from typing import Any

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
