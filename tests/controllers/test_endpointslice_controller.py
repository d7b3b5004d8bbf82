"""The EndpointSlice and mirroring controllers against a real API server (and the real kubectl)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from kubesvc.api.errors import StatusError
from kubesvc.client.http import Client
from kubesvc.client.kubeconfig import load_kubeconfig
from kubesvc.controllers.endpointslice import EndpointSliceController
from kubesvc.controllers.manager import ControllerManager
from tests.apiserver.conftest import Cluster
from tests.controllers.test_endpoints_controller import eventually, make_pod, service, set_ready

Obj = dict[str, Any]
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
SLICE_CONTROLLER = "endpointslice-controller.k8s.io"
MIRROR_CONTROLLER = "endpointslicemirroring-controller.k8s.io"


async def slices(api: Client, ns: str, svc: str, managed_by: str = SLICE_CONTROLLER) -> list[Obj]:
    listed = await api.list(
        "EndpointSlice",
        ns,
        label_selector=f"kubernetes.io/service-name={svc},{MANAGED_BY}={managed_by}",
    )
    return sorted(listed.get("items", []), key=lambda s: s["metadata"]["name"])


def ready_ips(items: list[Obj]) -> list[str]:
    return sorted(
        e["addresses"][0]
        for s in items
        for e in s.get("endpoints") or []
        if e["conditions"]["ready"]
    )


def all_ips(items: list[Obj]) -> list[str]:
    return sorted(e["addresses"][0] for s in items for e in s.get("endpoints") or [])


def until_slices(api: Client, ns: str, svc: str, check: Any, **kw: Any) -> Any:
    """Wait until `check(slices)` holds; returns the slices (True when there are none)."""

    async def probe() -> list[Obj] | bool:
        items = await slices(api, ns, svc, **kw)
        # `eventually` waits for a truthy answer: "no slices" is answered True.
        return (items or True) if check(items) else False

    return eventually(probe)


async def test_kubectl_describe_shows_endpoints_from_slices(
    api: Client, manager: ControllerManager, cluster: Cluster, ns: str
) -> None:
    await make_pod(api, ns, "a", "198.18.10.1", ready=True, labels={"app": "web"})
    await make_pod(api, ns, "b", "198.18.10.2", ready=False, labels={"app": "web"})
    svc = service("web", {"app": "web"})
    svc["metadata"]["labels"] = {"team": "blue"}
    await api.create(svc, ns)
    [got] = await until_slices(
        api, ns, "web", lambda s: all_ips(s) == ["198.18.10.1", "198.18.10.2"]
    )
    created = await api.get("Service", "web", ns)
    assert got["addressType"] == "IPv4"
    assert got["metadata"]["name"].startswith("web-")
    assert got["metadata"]["labels"] == {
        "team": "blue",
        "kubernetes.io/service-name": "web",
        MANAGED_BY: SLICE_CONTROLLER,
    }
    assert got["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "name": "web",
            "uid": created["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert "endpoints.kubernetes.io/last-change-trigger-time" in got["metadata"]["annotations"]
    assert got["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    conditions = {e["addresses"][0]: e["conditions"] for e in got["endpoints"]}
    assert conditions == {
        "198.18.10.1": {"ready": True, "serving": True, "terminating": False},
        "198.18.10.2": {"ready": False, "serving": False, "terminating": False},
    }

    # kubectl (1.32) builds the Endpoints: line from EndpointSlices alone.
    out = (await asyncio.to_thread(cluster.kubectl, "describe", "svc", "web", "-n", ns)).stdout
    line = next(x for x in out.splitlines() if x.startswith("Endpoints:"))
    assert re.split(r"\s+", line.strip())[1:] == ["198.18.10.1:8080"], out

    # A readiness flip rewrites the one slice in place.
    await set_ready(api, ns, "b", "198.18.10.2", True)
    [flipped] = await until_slices(
        api, ns, "web", lambda s: ready_ips(s) == ["198.18.10.1", "198.18.10.2"]
    )
    assert flipped["metadata"]["name"] == got["metadata"]["name"]
    await set_ready(api, ns, "a", "198.18.10.1", False)
    await until_slices(api, ns, "web", lambda s: ready_ips(s) == ["198.18.10.2"])
    out = (await asyncio.to_thread(cluster.kubectl, "describe", "svc", "web", "-n", ns)).stdout
    assert "198.18.10.2:8080" in out and "198.18.10.1:8080" not in out


async def test_many_pods_split_into_slices(
    api: Client, manager: ControllerManager, ns: str
) -> None:
    await api.create(service("big", {"app": "big"}), ns)
    await asyncio.gather(
        *(
            make_pod(api, ns, f"p{i}", f"198.18.11.{i + 1}", ready=True, labels={"app": "big"})
            for i in range(120)
        )
    )
    want = sorted(f"198.18.11.{i + 1}" for i in range(120))
    items = await until_slices(api, ns, "big", lambda s: ready_ips(s) == want)
    # How the 120 are split depends on how the pods' arrival was batched into syncs (slices are
    # filled, never rebalanced, as Kubernetes does): two slices, none above the limit.
    assert len(items) == 2 and all(len(s["endpoints"]) <= 100 for s in items)
    # One pod's change touches one slice only.
    before = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in items}
    await set_ready(api, ns, "p7", "198.18.11.8", False)
    items = await until_slices(api, ns, "big", lambda s: "198.18.11.8" not in ready_ips(s))
    after = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in items}
    assert after.keys() == before.keys()
    assert sum(before[name] != after[name] for name in after) == 1


async def test_named_target_port_splits_slices(
    api: Client, manager: ControllerManager, ns: str
) -> None:
    await make_pod(api, ns, "p1", "198.18.12.1", ready=True, labels={"app": "named"}, port=8080)
    await make_pod(api, ns, "p2", "198.18.12.2", ready=True, labels={"app": "named"}, port=9090)
    await api.create(service("named", {"app": "named"}), ns)
    items = await until_slices(api, ns, "named", lambda s: len(all_ips(s)) == 2)
    assert sorted((s["ports"][0]["port"], all_ips([s])) for s in items) == [
        (8080, ["198.18.12.1"]),
        (9090, ["198.18.12.2"]),
    ]


async def test_service_deletion_removes_slices(
    api: Client, manager: ControllerManager, ns: str
) -> None:
    await make_pod(api, ns, "a", "198.18.13.1", ready=True, labels={"app": "gone"})
    await api.create(service("gone", {"app": "gone"}), ns)
    await until_slices(api, ns, "gone", lambda s: ready_ips(s) == ["198.18.13.1"])
    await api.delete("Service", "gone", ns)
    await until_slices(api, ns, "gone", lambda s: s == [])


async def test_slices_deleted_or_edited_by_others_are_put_right(
    api: Client, manager: ControllerManager, ns: str
) -> None:
    await make_pod(api, ns, "a", "198.18.14.1", ready=True, labels={"app": "fixed"})
    await api.create(service("fixed", {"app": "fixed"}), ns)
    [first] = await until_slices(api, ns, "fixed", lambda s: ready_ips(s) == ["198.18.14.1"])

    first["endpoints"][0]["conditions"]["ready"] = False
    await api.update(first)
    await until_slices(api, ns, "fixed", lambda s: ready_ips(s) == ["198.18.14.1"])

    await api.delete("EndpointSlice", first["metadata"]["name"], ns)
    [again] = await until_slices(api, ns, "fixed", lambda s: ready_ips(s) == ["198.18.14.1"])
    assert again["metadata"]["name"] != first["metadata"]["name"]


def manual_endpoints(ips: list[str], not_ready: list[str] | None = None) -> Obj:
    subset: Obj = {"addresses": [{"ip": ip} for ip in ips], "ports": [{"port": 9376}]}
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "manual"},
        "subsets": [subset],
    }


async def test_selectorless_endpoints_are_mirrored(
    api: Client, manager: ControllerManager, cluster: Cluster, ns: str
) -> None:
    await api.create(service("manual", None, [{"port": 80, "targetPort": 9376}]), ns)
    await api.create(manual_endpoints(["192.0.2.42"], ["192.0.2.43"]), ns)

    def mirror(check: Any) -> Any:
        return until_slices(api, ns, "manual", check, managed_by=MIRROR_CONTROLLER)

    [got] = await mirror(lambda s: all_ips(s) == ["192.0.2.42", "192.0.2.43"])
    assert ready_ips([got]) == ["192.0.2.42"]
    assert got["ports"] == [{"name": "", "port": 9376, "protocol": "TCP"}]
    assert got["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    out = (await asyncio.to_thread(cluster.kubectl, "describe", "svc", "manual", "-n", ns)).stdout
    assert "192.0.2.42:9376" in out

    # Kept in step with the Endpoints, which are never touched.
    current = await api.get("Endpoints", "manual", ns)
    current["subsets"] = manual_endpoints(["192.0.2.44", "2001:db8::44"])["subsets"]
    await api.update(current)
    items = await mirror(lambda s: all_ips(s) == ["192.0.2.44", "2001:db8::44"])
    assert sorted(s["addressType"] for s in items) == ["IPv4", "IPv6"]
    stored = await api.get("Endpoints", "manual", ns)
    assert stored["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]
    assert (stored["metadata"].get("annotations") or {}) == (
        current["metadata"].get("annotations") or {}
    )

    # Gaining a selector hands the Service to the EndpointSlice controller.
    await make_pod(api, ns, "p", "198.18.15.1", ready=True, labels={"app": "m"})
    await api.patch("Service", "manual", {"spec": {"selector": {"app": "m"}}}, ns)
    await mirror(lambda s: s == [])
    await until_slices(api, ns, "manual", lambda s: all_ips(s) == ["198.18.15.1"])


async def test_mirrored_slices_go_with_the_endpoints_or_the_service(
    api: Client, manager: ControllerManager, ns: str
) -> None:
    await api.create(service("manual", None, [{"port": 80, "targetPort": 9376}]), ns)
    await api.create(manual_endpoints(["192.0.2.50"]), ns)

    def mirror(check: Any) -> Any:
        return until_slices(api, ns, "manual", check, managed_by=MIRROR_CONTROLLER)

    await mirror(lambda s: all_ips(s) == ["192.0.2.50"])
    await api.delete("Endpoints", "manual", ns)
    await mirror(lambda s: s == [])
    await api.create(manual_endpoints(["192.0.2.51"]), ns)
    await mirror(lambda s: all_ips(s) == ["192.0.2.51"])
    await api.delete("Service", "manual", ns)
    await mirror(lambda s: s == [])
    try:
        await api.get("Endpoints", "manual", ns)
    except StatusError as err:  # pragma: no cover - the assertion says what went wrong
        raise AssertionError("the mirroring controller must never delete Endpoints") from err


async def test_restarted_controllers_rewrite_nothing(
    api: Client, cluster: Cluster, ns: str
) -> None:
    access = load_kubeconfig(str(cluster.kubeconfig))
    await api.create(service("steady", {"app": "steady"}), ns)
    await asyncio.gather(
        *(
            make_pod(
                api, ns, f"p{i}", f"198.18.16.{i + 1}", ready=i % 3 > 0, labels={"app": "steady"}
            )
            for i in range(30)
        )
    )
    first = ControllerManager(access, max_endpoints_per_slice=8)
    await first.start()
    try:
        items = await until_slices(api, ns, "steady", lambda s: len(all_ips(s)) == 30)
    finally:
        await first.stop()
    assert len(items) == 4 and all(len(s["endpoints"]) <= 8 for s in items)
    versions = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in items}

    second = ControllerManager(access, max_endpoints_per_slice=8)
    await second.start()
    try:
        controller = next(c for c in second.controllers if isinstance(c, EndpointSliceController))
        # (Other tests' slices, cut at 100, are rewritten at 8: only this namespace is steady.)
        await controller.queue.drain(5.0)
        await asyncio.sleep(0.3)
        again = await slices(api, ns, "steady")
        assert {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in again} == versions
    finally:
        await second.stop()


async def test_service_without_pods_gets_a_placeholder_that_pods_fill(
    api: Client, manager: ControllerManager, ns: str
) -> None:
    await api.create(service("empty", {"app": "empty"}), ns)
    [placeholder] = await until_slices(api, ns, "empty", lambda s: len(s) == 1)
    assert placeholder["endpoints"] in (None, []) and placeholder["ports"] in (None, [])
    await make_pod(api, ns, "a", "198.18.17.1", ready=True, labels={"app": "empty"})
    [filled] = await until_slices(api, ns, "empty", lambda s: ready_ips(s) == ["198.18.17.1"])
    assert filled["metadata"]["name"] == placeholder["metadata"]["name"]
    assert filled["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
