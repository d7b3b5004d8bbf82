"""Pure: desired slices from backends or Endpoints, and the least-churn plan to reach them."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from kubesvc.controllers.backends import MIRROR_CONTROLLER, SLICE_CONTROLLER, backends_for
from kubesvc.controllers.slices import (
    Desired,
    SlicePlan,
    mirror_template,
    mirrored_endpoints,
    plan_slices,
    service_address_types,
    service_endpoints,
    service_template,
)
from tests.controllers.test_backends import pod, svc

Obj = dict[str, Any]


def service(**spec: Any) -> Obj:
    body = svc(**spec)
    body["metadata"]["uid"] = "svc-uid"
    body["metadata"]["labels"] = {"team": "a"}
    return body


def pods(n: int, *, start: int = 1, ready: bool = True, **extra: Any) -> list[Obj]:
    return [
        pod(f"p{i}", f"198.18.{i // 250}.{i % 250 + 1}", ready=ready, **copy.deepcopy(extra))
        for i in range(start, start + n)
    ]


def desired_for(service_obj: Obj, pod_list: list[Obj]) -> Desired:
    return service_endpoints(
        service_obj, backends_for(service_obj, pod_list, include_terminating=True)
    )


_names = itertools.count()


def apply(plan: SlicePlan, existing: list[Obj]) -> list[Obj]:
    """What the server would hold after the plan: names for creates, versions for every write."""
    by_name = {s["metadata"]["name"]: s for s in existing}
    for s in plan.delete:
        del by_name[s["metadata"]["name"]]
    for body in plan.update:
        assert body["metadata"]["name"] in by_name, "update of a slice that does not exist"
        by_name[body["metadata"]["name"]] = copy.deepcopy(body)
    for body in plan.create:
        made = copy.deepcopy(body)
        made["metadata"]["name"] = f"{body['metadata']['generateName']}{next(_names)}"
        by_name[made["metadata"]["name"]] = made
    for s in by_name.values():
        for port in s["ports"]:  # as the server defaults them
            port.setdefault("name", "")
            port.setdefault("protocol", "TCP")
    return list(by_name.values())


def reconcile(service_obj: Obj, pod_list: list[Obj], existing: list[Obj], **kw: Any) -> SlicePlan:
    return plan_slices(
        service_template(service_obj, SLICE_CONTROLLER),
        desired_for(service_obj, pod_list),
        existing,
        placeholder_types=service_address_types(service_obj),
        **kw,
    )


def converge(service_obj: Obj, pod_list: list[Obj], existing: list[Obj], **kw: Any) -> list[Obj]:
    after = apply(reconcile(service_obj, pod_list, existing, **kw), existing)
    assert reconcile(service_obj, pod_list, after, **kw).empty, "a second plan must do nothing"
    return after


def counts(plan: SlicePlan) -> tuple[int, int, int]:
    return len(plan.create), len(plan.update), len(plan.delete)


def all_ips(slices: list[Obj]) -> list[str]:
    return sorted(e["addresses"][0] for s in slices for e in s["endpoints"])


# ------------------------------------------------------------------ layout


def test_one_slice_with_kubernetes_shape() -> None:
    s = service()
    plan = reconcile(s, [pod("a", "198.18.0.1"), pod("b", "198.18.0.2", ready=False)], [])
    assert counts(plan) == (1, 0, 0)
    body = plan.create[0]
    assert body["apiVersion"] == "discovery.k8s.io/v1"
    assert body["addressType"] == "IPv4"
    assert body["metadata"]["generateName"] == "web-"
    assert body["metadata"]["labels"] == {
        "team": "a",
        "kubernetes.io/service-name": "web",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
    }
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "name": "web",
            "uid": "svc-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert body["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert body["endpoints"][0] == {
        "addresses": ["198.18.0.1"],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "nodeName": "node-1",
        "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"},
    }
    assert body["endpoints"][1]["conditions"] == {
        "ready": False,
        "serving": False,
        "terminating": False,
    }


TERMINATING = {"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}


@pytest.mark.parametrize(
    ("pod_ready", "extra", "publish_not_ready", "conditions"),
    [
        (True, {}, False, (True, True, False)),
        (False, {}, False, (False, False, False)),
        (True, TERMINATING, False, (False, True, True)),
        (False, TERMINATING, False, (False, False, True)),
        (False, {}, True, (True, False, False)),
        (True, TERMINATING, True, (True, True, True)),
    ],
    ids=[
        "ready",
        "unready",
        "terminating-serving",
        "terminating-not-serving",
        "publish-not-ready",
        "publish-not-ready-terminating",
    ],
)
def test_conditions(
    pod_ready: bool, extra: Obj, publish_not_ready: bool, conditions: tuple[bool, bool, bool]
) -> None:
    s = service(publishNotReadyAddresses=publish_not_ready)
    desired = desired_for(s, [pod("a", "198.18.0.1", ready=pod_ready, **copy.deepcopy(extra))])
    [(_, group)] = desired.items()
    got = group["198.18.0.1"]["conditions"]
    assert (got["ready"], got["serving"], got["terminating"]) == conditions


def test_named_target_port_splits_slices() -> None:
    s = service()
    plan = reconcile(
        s,
        [pod("a", "198.18.0.1", http_port=8080), pod("b", "198.18.0.2", http_port=9090)],
        [],
    )
    got = sorted((b["ports"][0]["port"], all_ips([b])) for b in plan.create)
    assert got == [(8080, ["198.18.0.1"]), (9090, ["198.18.0.2"])]


@pytest.mark.parametrize(
    ("n", "max_endpoints", "sizes"),
    [
        (0, 100, [0]),
        (1, 100, [1]),
        (100, 100, [100]),
        (250, 100, [100, 100, 50]),
        (7, 3, [3, 3, 1]),
    ],
)
def test_split_at_the_limit(n: int, max_endpoints: int, sizes: list[int]) -> None:
    plan = reconcile(service(), pods(n), [], max_endpoints=max_endpoints)
    assert sorted((len(b["endpoints"]) for b in plan.create), reverse=True) == sizes


def test_headless_and_dual_stack() -> None:
    s = service(clusterIP="None", ipFamilies=["IPv4", "IPv6"])
    p = pod("a", "198.18.0.1", status={"podIPs": [{"ip": "198.18.0.1"}, {"ip": "2001:db8::1"}]})
    plan = reconcile(s, [p], [])
    assert sorted((b["addressType"], all_ips([b])) for b in plan.create) == [
        ("IPv4", ["198.18.0.1"]),
        ("IPv6", ["2001:db8::1"]),
    ]
    assert all(b["metadata"]["labels"]["service.kubernetes.io/headless"] == "" for b in plan.create)


def test_no_pods_leaves_one_placeholder() -> None:
    s = service()
    plan = reconcile(s, [], [])
    assert counts(plan) == (1, 0, 0)
    assert plan.create[0]["endpoints"] == [] and plan.create[0]["ports"] == []
    converge(s, [], [])


# ------------------------------------------------------------------ churn

# (what happens, pods before, pods after, (creates, updates, deletes))
CHURN = [
    ("nothing changes", pods(250), pods(250), (0, 0, 0)),
    (
        "one pod turns unready",
        pods(250),
        pods(1) + pods(1, start=2, ready=False) + pods(248, start=3),
        (0, 1, 0),
    ),
    ("one pod goes", pods(250), pods(249), (0, 1, 0)),
    ("one pod joins: best-fit slice", pods(250), pods(251), (0, 1, 0)),
    ("a full slice's worth joins", pods(200), pods(300), (1, 0, 0)),
    ("half the pods go", pods(300), pods(150, start=151), (0, 1, 1)),
    ("all pods go: placeholder reuses a slice", pods(250), [], (0, 1, 2)),
    ("pods come back to the placeholder", [], pods(5), (0, 1, 0)),
]


@pytest.mark.parametrize(
    ("before", "after", "writes"), [c[1:] for c in CHURN], ids=[c[0] for c in CHURN]
)
def test_minimal_churn(before: list[Obj], after: list[Obj], writes: tuple[int, int, int]) -> None:
    s = service()
    existing = converge(s, before, [])
    plan = reconcile(s, after, existing)
    assert counts(plan) == writes
    result = converge(s, after, existing)
    want = sorted(p["status"]["podIP"] for p in after)
    assert all_ips(result) == want
    assert all(len(x["endpoints"]) <= 100 for x in result)


def test_changed_endpoint_stays_in_its_slice() -> None:
    s = service()
    existing = converge(s, pods(250), [])
    holder = next(
        x for x in existing if any(e["addresses"] == ["198.18.0.200"] for e in x["endpoints"])
    )
    after = [
        p if p["metadata"]["name"] != "p199" else pod("p199", "198.18.0.200", ready=False)
        for p in pods(250)
    ]
    plan = reconcile(s, after, existing)
    assert [u["metadata"]["name"] for u in plan.update] == [holder["metadata"]["name"]]


def test_port_change_updates_slices_in_place() -> None:
    s = service()
    existing = converge(s, pods(150), [])
    moved = service(ports=[{"name": "http", "port": 80, "targetPort": 9000, "protocol": "TCP"}])
    plan = reconcile(moved, pods(150), existing)
    assert counts(plan) == (0, 2, 0)
    assert {u["ports"][0]["port"] for u in plan.update} == {9000}


def test_edited_slices_are_put_right() -> None:
    s = service()
    existing = converge(s, pods(3), [])
    edited = copy.deepcopy(existing)
    edited[0]["metadata"]["labels"]["kubernetes.io/service-name"] = "web"
    edited[0]["metadata"]["labels"]["team"] = "b"
    edited[0]["endpoints"][0]["conditions"]["ready"] = False
    plan = reconcile(s, pods(3), edited)
    assert counts(plan) == (0, 1, 0)
    assert plan.update[0]["metadata"]["labels"]["team"] == "a"
    assert converge(s, pods(3), edited)


def test_duplicate_and_overfull_slices_are_repaired() -> None:
    s = service()
    existing = converge(s, pods(6), [], max_endpoints=3)
    a, b = existing
    b["endpoints"].append(copy.deepcopy(a["endpoints"][0]))  # one endpoint in two slices
    result = converge(s, pods(6), existing, max_endpoints=3)
    assert all_ips(result) == sorted(p["status"]["podIP"] for p in pods(6))
    # Lowering the limit splits what is there.
    result = converge(s, pods(6), result, max_endpoints=2)
    assert sorted(len(x["endpoints"]) for x in result) == [2, 2, 2]


def test_service_uid_change_rewrites_owner() -> None:
    s = service()
    existing = converge(s, pods(2), [])
    again = service()
    again["metadata"]["uid"] = "new-uid"
    plan = reconcile(again, pods(2), existing)
    assert counts(plan) == (0, 1, 0)
    assert plan.update[0]["metadata"]["ownerReferences"][0]["uid"] == "new-uid"


# ---------------------------------------------------------------- mirroring


def endpoints(subsets: list[Obj], **labels: str) -> Obj:
    return {
        "kind": "Endpoints",
        "metadata": {"name": "manual", "namespace": "default", "uid": "ep-uid", "labels": labels},
        "subsets": subsets,
    }


def test_mirrored_endpoints() -> None:
    ep = endpoints(
        [
            {
                "addresses": [{"ip": "192.0.2.1", "nodeName": "n1"}, {"ip": "2001:db8::1"}],
                "notReadyAddresses": [{"ip": "192.0.2.2"}],
                "ports": [{"name": "http", "port": 9376, "protocol": "TCP"}],
            },
            {"addresses": [{"ip": "192.0.2.3"}], "ports": [{"port": 53, "protocol": "UDP"}]},
        ],
        team="x",
    )
    template = mirror_template(ep, MIRROR_CONTROLLER)
    plan = plan_slices(template, mirrored_endpoints(ep), [])
    got = sorted(
        (
            b["addressType"],
            [(p["port"], p["protocol"]) for p in b["ports"]],
            [(e["addresses"][0], e["conditions"]["ready"]) for e in b["endpoints"]],
        )
        for b in plan.create
    )
    assert got == [
        ("IPv4", [(53, "UDP")], [("192.0.2.3", True)]),
        ("IPv4", [(9376, "TCP")], [("192.0.2.1", True), ("192.0.2.2", False)]),
        ("IPv6", [(9376, "TCP")], [("2001:db8::1", True)]),
    ]
    labels = plan.create[0]["metadata"]["labels"]
    assert labels == {
        "team": "x",
        "kubernetes.io/service-name": "manual",
        "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io",
    }
    assert plan.create[0]["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    first = next(e for b in plan.create for e in b["endpoints"] if e["addresses"] == ["192.0.2.1"])
    assert first == {"addresses": ["192.0.2.1"], "conditions": {"ready": True}, "nodeName": "n1"}


def test_mirror_without_addresses_has_no_slices() -> None:
    ep = endpoints([])
    assert plan_slices(mirror_template(ep, MIRROR_CONTROLLER), mirrored_endpoints(ep), []).empty
