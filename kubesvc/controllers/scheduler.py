"""The scheduler and the node lifecycle: which node runs a pod, and which nodes are still there.

Scheduler: every unscheduled pod meant for the default scheduler (not being
deleted, not finished) goes to the schedulable node — Ready with a fresh
heartbeat, not `unschedulable`, matching the pod's `nodeSelector`, below its
`allocatable` pods — that runs the fewest pods (ties: the name first in
order), bound through `pods/binding` as kube-scheduler does. Placements not
yet seen in the pod cache count as made, and one worker places pods one at a
time, so a burst of pods is spread, not piled on the node that looked
emptiest. A pod no node can take waits, with a `FailedScheduling` Warning
Event, and is tried again on every node change and every tick.

Node lifecycle: every tick, a node whose heartbeat is older than the grace
period gets its `Ready` condition set to `Unknown` (reason
`NodeStatusUnknown`, as Kubernetes' node lifecycle controller does); it gets
no new pods from then on (the scheduler already skips a node whose heartbeat
is stale, without waiting for that write). The pods on a node whose `Ready`
is not True have their own `Ready` condition set to False (reason
`NodeNotReady`, with a Warning Event), as Kubernetes' node lifecycle
controller does, so the Endpoints controllers take them out of every Service
at once; when the node is back, its agent writes the pods' real status again.
They are not evicted (see docs/multinode.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Iterable
from typing import Any

from kubesvc.api import nodes
from kubesvc.api.errors import StatusError
from kubesvc.client.http import APIUnavailable, Client, path_for, resource_for
from kubesvc.client.informer import Informer, object_key
from kubesvc.controllers.backends import pod_is_ready
from kubesvc.controllers.base import Controller, record_event

Obj = dict[str, Any]
log = logging.getLogger("kubesvc.controllers")

COMPONENT = "default-scheduler"
DEFAULT_SCHEDULER = "default-scheduler"
TERMINAL_PHASES = ("Succeeded", "Failed")


# ------------------------------------------------------------------ pure parts


def wants_scheduling(pod: Obj) -> bool:
    """An unbound pod this scheduler places."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName") or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return False
    return spec.get("schedulerName") in (None, "", DEFAULT_SCHEDULER)


def pods_per_node(pods: Iterable[Obj]) -> dict[str, int]:
    """How many unfinished pods each node runs."""
    counts: dict[str, int] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES:
            counts[node] = counts.get(node, 0) + 1
    return counts


def choose_node(
    pod: Obj, all_nodes: Iterable[Obj], counts: dict[str, int], now: float, grace_s: float
) -> tuple[str | None, str]:
    """(the node for `pod`, "") or (None, why no node fits) — Kubernetes' wording."""
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    fits: list[tuple[int, str]] = []
    total = 0
    reasons: dict[str, int] = {}

    def miss(reason: str) -> None:
        reasons[reason] = reasons.get(reason, 0) + 1

    for node in all_nodes:
        total += 1
        name = nodes.name_of(node)
        if not nodes.is_ready(node, now, grace_s):
            miss("node(s) were not ready")
        elif (node.get("spec") or {}).get("unschedulable") is True:
            miss("node(s) were unschedulable")
        elif isinstance(selector, dict) and any(
            nodes.labels_of(node).get(k) != v for k, v in selector.items()
        ):
            miss("node(s) didn't match Pod's node affinity/selector")
        elif (cap := nodes.pod_capacity(node)) is not None and counts.get(name, 0) >= cap:
            miss("Too many pods")
        else:
            fits.append((counts.get(name, 0), name))
    if fits:
        return min(fits)[1], ""
    detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
    return None, f"0/{total} nodes are available" + (f": {detail}." if detail else ".")


def unknown_ready_condition(node: Obj, now: float) -> list[Obj]:
    """The node's conditions with `Ready` turned Unknown (the heartbeat stopped)."""
    stamp = nodes.rfc3339(now)
    conditions = [
        copy.deepcopy(c)
        for c in (node.get("status") or {}).get("conditions") or []
        if isinstance(c, dict) and c.get("type") != nodes.READY
    ]
    before = nodes.ready_condition(node) or {}
    conditions.insert(
        0,
        {
            "type": nodes.READY,
            "status": "Unknown",
            "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.",
            "lastHeartbeatTime": before.get("lastHeartbeatTime") or stamp,
            "lastTransitionTime": stamp,
        },
    )
    return conditions


def not_ready_conditions(pod: Obj, now: float) -> list[Obj]:
    """The pod's conditions with `Ready` False: its node stopped answering for it."""
    conditions = []
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            cond = {
                **cond,
                "status": "False",
                "reason": "NodeNotReady",
                "message": "The node this pod runs on is not ready.",
                "lastTransitionTime": nodes.rfc3339(now),
            }
        conditions.append(copy.deepcopy(cond))
    return conditions


def pods_to_mark_not_ready(pods: Iterable[Obj], node_names: set[str]) -> list[Obj]:
    """Unfinished pods on those nodes that still say they are Ready."""
    return [
        pod
        for pod in pods
        if (pod.get("spec") or {}).get("nodeName") in node_names
        and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES
        and pod_is_ready(pod)
    ]


# ---------------------------------------------------------------- controller


class Scheduler(Controller):
    name = "scheduler"

    def __init__(
        self,
        client: Client,
        pods: Informer,
        node_informer: Informer,
        *,
        grace_s: float = nodes.DEFAULT_GRACE_S,
        tick_s: float | None = None,
    ) -> None:
        # One worker: each placement sees the ones before it.
        super().__init__(client, workers=1)
        self.pods = pods
        self.nodes = node_informer
        self.grace_s = grace_s
        self.tick_s = tick_s if tick_s is not None else max(0.2, min(5.0, grace_s / 4))
        self._assumed: dict[str, str] = {}  # pod uid → node, until the pod cache shows it
        self._waiting: set[str] = set()  # pods no node could take
        self._reported: dict[str, str] = {}  # pod uid → the last FailedScheduling message
        self._ticker: asyncio.Task[None] | None = None
        pods.add_handler(self._on_pod)
        node_informer.add_handler(self._on_node)

    # -------------------------------------------------------------- events

    def _on_pod(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        uid = (obj.get("metadata") or {}).get("uid")
        if new is None or (new.get("spec") or {}).get("nodeName"):
            self._assumed.pop(uid, None)
            self._reported.pop(uid, None)
            self._waiting.discard(object_key(obj))
            return
        if wants_scheduling(new):
            self.queue.add(object_key(new))

    def _on_node(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        if kind == "SYNC":
            return
        for key in list(self._waiting):
            self.queue.add(key)

    # ---------------------------------------------------------------- sync

    async def sync(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or not wants_scheduling(pod):
            self._waiting.discard(key)
            return
        uid = (pod.get("metadata") or {}).get("uid")
        if uid in self._assumed:
            return  # bound already; the cache has not caught up
        counts = pods_per_node(self.pods.list())
        for node in self._assumed.values():
            counts[node] = counts.get(node, 0) + 1
        node, why = choose_node(pod, self.nodes.list(), counts, time.time(), self.grace_s)
        if node is None:
            self._waiting.add(key)
            if self.nodes.list() and self._reported.get(uid) != why:
                self._reported[uid] = why
                await record_event(self.client, pod, "Warning", "FailedScheduling", why, COMPONENT)
            return
        self._waiting.discard(key)
        await self._bind(pod, node)

    async def _bind(self, pod: Obj, node: str) -> None:
        meta = pod.get("metadata") or {}
        namespace, name, uid = meta.get("namespace"), meta.get("name"), meta.get("uid")
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        self._assumed[uid] = node
        try:
            await self.client.request(
                "POST", path_for(resource_for("Pod"), namespace, name, "binding"), body=binding
            )
        except StatusError as err:
            self._assumed.pop(uid, None)
            if err.code in (404, 409):  # deleted, or bound by someone else meanwhile
                return
            raise
        except APIUnavailable:
            self._assumed.pop(uid, None)
            raise
        log.info("scheduler: pod %s/%s bound to %s", namespace, name, node)
        await record_event(
            self.client,
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {namespace}/{name} to {node}",
            COMPONENT,
        )

    # ------------------------------------------------------- node lifecycle

    async def check_nodes(self) -> None:
        """Turn the Ready condition of nodes without a recent heartbeat Unknown, and
        their pods NotReady."""
        now = time.time()
        down: set[str] = set()
        for node in self.nodes.list():
            cond = nodes.ready_condition(node)
            if cond is not None and cond.get("status") in ("Unknown", "False"):
                down.add(nodes.name_of(node))
                continue
            if not nodes.heartbeat_expired(node, now, self.grace_s):
                continue
            if cond is None:
                created = nodes.parse_rfc3339((node.get("metadata") or {}).get("creationTimestamp"))
                if created is not None and now - created <= self.grace_s:
                    continue  # registered just now; its first heartbeat is on its way
            patch = {
                "metadata": {
                    "resourceVersion": (node.get("metadata") or {}).get("resourceVersion")
                },
                "status": {"conditions": unknown_ready_condition(node, now)},
            }
            try:
                await self.client.patch("Node", nodes.name_of(node), patch, subresource="status")
                log.warning(
                    "node %s: no heartbeat for more than %.0f s; Ready is now Unknown",
                    nodes.name_of(node),
                    self.grace_s,
                )
                down.add(nodes.name_of(node))
            except (StatusError, APIUnavailable) as err:
                # 409: a heartbeat came in meanwhile; the next tick looks again.
                log.info("node %s: cannot mark Unknown: %s", nodes.name_of(node), err)
        for pod in pods_to_mark_not_ready(self.pods.list(), down):
            await self._mark_not_ready(pod, now)

    async def _mark_not_ready(self, pod: Obj, now: float) -> None:
        meta = pod.get("metadata") or {}
        patch = {
            "metadata": {"resourceVersion": meta.get("resourceVersion")},
            "status": {"conditions": not_ready_conditions(pod, now)},
        }
        try:
            await self.client.patch(
                "Pod", meta.get("name"), patch, meta.get("namespace"), subresource="status"
            )
        except (StatusError, APIUnavailable) as err:
            # 409: the pod changed (its agent is back?); the next tick looks again.
            log.info("pod %s: cannot mark NotReady: %s", object_key(pod), err)
            return
        log.warning(
            "pod %s: its node %s is not ready; the pod is NotReady",
            object_key(pod),
            (pod.get("spec") or {}).get("nodeName"),
        )
        await record_event(
            self.client, pod, "Warning", "NodeNotReady", "Node is not ready", "node-controller"
        )

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.check_nodes()
            except Exception:  # the loop must outlive any one failure
                log.exception("node lifecycle check failed")
            for key in list(self._waiting):
                self.queue.add(key)

    def start(self) -> None:
        super().start()
        self._ticker = asyncio.create_task(self._tick(), name="scheduler-tick")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await super().stop()
