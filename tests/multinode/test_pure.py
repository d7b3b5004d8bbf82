"""The pure parts of several nodes: readiness by heartbeat, placement, the Node's rules and table."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any

import pytest

from kubesvc.api import nodes, tables, validation
from kubesvc.controllers.scheduler import (
    choose_node,
    not_ready_conditions,
    pods_per_node,
    pods_to_mark_not_ready,
    unknown_ready_condition,
    wants_scheduling,
)
from kubesvc.node import placement
from kubesvc.node.registration import NodeIdentity, node_object, node_status, pod_capacity

NOW = 1_800_000_000.0
GRACE = 40.0


def node(
    name: str,
    *,
    ready: str = "True",
    beat_age: float = 1.0,
    labels: dict[str, str] | None = None,
    pods: str | None = None,
    unschedulable: bool = False,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or placement.node_labels(name)},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready,
                    "lastHeartbeatTime": nodes.rfc3339(NOW - beat_age),
                    "lastTransitionTime": nodes.rfc3339(NOW - 100),
                }
            ]
        },
    }
    if pods is not None:
        obj["status"]["allocatable"] = {"pods": pods}
    return obj


def pod(name: str, node_name: str = "", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"nodeName": node_name, "schedulerName": "default-scheduler", **spec},
        "status": {"phase": "Running" if node_name else "Pending"},
    }


def test_a_node_is_ready_while_its_heartbeat_is_fresh() -> None:
    assert nodes.is_ready(node("a"), NOW, GRACE)
    assert nodes.is_ready(node("a", beat_age=GRACE), NOW, GRACE)
    assert not nodes.is_ready(node("a", beat_age=GRACE + 2), NOW, GRACE)
    assert not nodes.is_ready(node("a", ready="Unknown"), NOW, GRACE)
    assert not nodes.is_ready({"metadata": {"name": "x"}}, NOW, GRACE)


@pytest.mark.parametrize(
    ("cluster", "counts", "chosen"),
    [
        ([node("a"), node("b")], {"a": 2, "b": 1}, "b"),
        ([node("a"), node("b")], {"a": 1, "b": 1}, "a"),  # a tie: the first name
        ([node("a"), node("b", beat_age=60)], {"a": 9}, "a"),  # stale heartbeat
        ([node("a", ready="Unknown"), node("b")], {"b": 9}, "b"),
        ([node("a", unschedulable=True), node("b")], {"b": 9}, "b"),
        ([node("a", pods="2"), node("b")], {"a": 2, "b": 5}, "b"),  # a is full
    ],
)
def test_the_fewest_pods_among_schedulable_nodes(
    cluster: list[dict[str, Any]], counts: dict[str, int], chosen: str
) -> None:
    assert choose_node(pod("p"), cluster, counts, NOW, GRACE) == (chosen, "")


def test_no_node_fits_says_why() -> None:
    cluster = [node("a", ready="Unknown"), node("b"), node("c", beat_age=100)]
    got, why = choose_node(pod("p", nodeSelector={"disk": "ssd"}), cluster, {}, NOW, GRACE)
    assert got is None
    assert why == (
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector,"
        " 2 node(s) were not ready."
    )
    assert choose_node(pod("p"), [], {}, NOW, GRACE) == (None, "0/0 nodes are available.")


def test_which_pods_are_scheduled_and_counted() -> None:
    assert wants_scheduling(pod("p"))
    assert not wants_scheduling(pod("p", "a"))
    assert not wants_scheduling(pod("p", schedulerName="other"))
    done = pod("d", "a")
    done["status"]["phase"] = "Succeeded"
    assert not wants_scheduling({**pod("p"), "status": {"phase": "Failed"}})
    assert pods_per_node([pod("x", "a"), pod("y", "a"), pod("z", "b"), done, pod("u")]) == {
        "a": 2,
        "b": 1,
    }


def test_an_agent_places_pods_itself_only_while_no_other_node_is_ready() -> None:
    assert placement.sole_ready_node("a", [], NOW, GRACE)
    assert placement.sole_ready_node("a", [node("a")], NOW, GRACE)
    assert placement.sole_ready_node("a", [node("a"), node("b", beat_age=99)], NOW, GRACE)
    assert not placement.sole_ready_node("a", [node("a"), node("b")], NOW, GRACE)


def test_a_silent_node_turns_unknown_keeping_its_last_heartbeat() -> None:
    stale = node("a", beat_age=100)
    stale["status"]["conditions"].append({"type": "MemoryPressure", "status": "False"})
    conditions = unknown_ready_condition(stale, NOW)
    assert conditions[0]["status"] == "Unknown" and conditions[0]["reason"] == "NodeStatusUnknown"
    assert conditions[0]["lastHeartbeatTime"] == nodes.rfc3339(NOW - 100)
    assert conditions[0]["lastTransitionTime"] == nodes.rfc3339(NOW)
    assert conditions[1]["type"] == "MemoryPressure"


def test_the_registered_node_and_its_heartbeat() -> None:
    ident = NodeIdentity("n1", "127.0.0.1", ipaddress.ip_network("127.246.0.0/29"))
    obj = node_object(ident)
    assert obj["spec"]["podCIDR"] == "127.246.0.0/29"
    assert obj["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
    first = node_status(ident, None, NOW)
    assert first["capacity"] == {"pods": "5"} == first["allocatable"]
    assert pod_capacity(ipaddress.ip_network("127.0.0.0/8")) == 110
    cond = first["conditions"][0]
    assert cond["lastHeartbeatTime"] == cond["lastTransitionTime"] == nodes.rfc3339(NOW)
    later = node_status(ident, {"status": first}, NOW + 10)["conditions"][0]
    assert later["lastHeartbeatTime"] == nodes.rfc3339(NOW + 10)
    assert later["lastTransitionTime"] == nodes.rfc3339(NOW)
    registered = {**obj, "metadata": {**obj["metadata"]}, "status": first}
    assert validation.validate(registered) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metadata": {"name": "Bad_Name"}}, "metadata.name: Invalid value"),
        ({"spec": {"podCIDR": "nope"}}, "spec.podCIDR: Invalid value"),
        (
            {"status": {"addresses": [{"type": "LoopbackIP", "address": "127.0.0.1"}]}},
            'status.addresses[0].type: Unsupported value: "LoopbackIP"',
        ),
        (
            {"status": {"conditions": [{"type": "Ready", "status": "Yes"}]}},
            'status.conditions[0].status: Unsupported value: "Yes"',
        ),
        (
            {"status": {"conditions": [{"type": "Ready", "status": "True"}] * 2}},
            'status.conditions[1].type: Duplicate value: "Ready"',
        ),
    ],
)
def test_node_validation(change: dict[str, Any], message: str) -> None:
    obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, **change}
    errors = [str(e) for e in validation.validate(obj)]
    assert any(e.startswith(message) for e in errors), errors


def test_the_node_table_row() -> None:
    obj = node("n1", labels={"node-role.kubernetes.io/worker": ""})
    obj["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    obj["status"]["addresses"] = [{"type": "InternalIP", "address": "198.18.0.1"}]
    obj["status"]["nodeInfo"] = {"kubeletVersion": "v0.1.0"}
    now = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    columns, cells = tables.PRINTERS["Node"]
    row = cells(obj, now)
    assert [c["name"] for c in columns][:6] == [
        "Name",
        "Status",
        "Roles",
        "Age",
        "Version",
        "Internal-IP",
    ]
    assert row[:6] == ["n1", "Ready", "worker", "5m", "v0.1.0", "198.18.0.1"]
    assert tables.node_status(node("x", ready="Unknown")) == "NotReady"
    assert tables.node_status({"metadata": {"name": "x"}}) == "Unknown"


def _pod_on(node: str, ready: str, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"name": f"p-{node}-{ready}-{phase}", "namespace": "default"},
        "spec": {"nodeName": node},
        "status": {
            "phase": phase,
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": ready, "lastTransitionTime": "2026-01-01T00:00:00Z"},
            ],
        },
    }


def test_only_ready_unfinished_pods_of_down_nodes_are_marked() -> None:
    pods = [
        _pod_on("down", "True"),
        _pod_on("down", "False"),
        _pod_on("down", "True", phase="Succeeded"),
        _pod_on("up", "True"),
    ]
    marked = pods_to_mark_not_ready(pods, {"down"})
    assert [p["metadata"]["name"] for p in marked] == ["p-down-True-Running"]


def test_the_ready_condition_turns_false_and_the_others_stay() -> None:
    conditions = not_ready_conditions(_pod_on("down", "True"), NOW)
    assert conditions[0] == {"type": "PodScheduled", "status": "True"}
    assert conditions[1]["status"] == "False"
    assert conditions[1]["reason"] == "NodeNotReady"
    assert conditions[1]["lastTransitionTime"] == nodes.rfc3339(NOW)
