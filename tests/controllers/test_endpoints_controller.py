"""The Endpoints controller against a real API server, through the HTTP client and informers."""

from __future__ import annotations

import asyncio
from typing import Any

from kubesvc.api.errors import StatusError
from kubesvc.client.http import Client
from kubesvc.controllers.manager import ControllerManager
from tests.waiting import eventually_async


def eventually(check: Any, timeout_s: float = 10.0) -> Any:
    # A 404 or a conflict just means "not yet" here.
    return eventually_async(check, timeout_s, tolerate=(StatusError,), interval_s=0.05)


def service(
    name: str, selector: dict[str, str] | None, ports: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": ports or [{"name": "http", "port": 80, "targetPort": "http"}]}
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


async def make_pod(
    api: Client,
    ns: str,
    name: str,
    ip: str,
    *,
    ready: bool,
    labels: dict[str, str],
    port: int = 8080,
) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "command": ["sleep", "1"],
                    "ports": [{"name": "http", "containerPort": port}],
                }
            ]
        },
    }
    await api.create(body, ns)
    await set_ready(api, ns, name, ip, ready)


async def set_ready(api: Client, ns: str, name: str, ip: str, ready: bool) -> None:
    # What the node agent will do: report the pod's IP and readiness on /status.
    status = {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    await api.patch("Pod", name, {"status": status}, ns, subresource="status")


async def subsets(api: Client, ns: str, name: str) -> list[dict[str, Any]]:
    try:
        return (await api.get("Endpoints", name, ns)).get("subsets", [])
    except StatusError as err:
        if err.code == 404:
            return []
        raise


def addresses(subs: list[dict[str, Any]], key: str = "addresses") -> list[str]:
    return sorted(a["ip"] for s in subs for a in s.get(key, []))


async def test_selector_service_gets_endpoints_of_ready_pods(
    api: Client, manager: ControllerManager, ns: str
) -> None:
    await make_pod(api, ns, "a", "198.18.0.1", ready=True, labels={"app": "MyApp"})
    await make_pod(api, ns, "b", "198.18.0.2", ready=False, labels={"app": "MyApp"})
    await make_pod(api, ns, "other", "198.18.0.3", ready=True, labels={"app": "Other"})
    await api.create(service("my-service", {"app": "MyApp"}), ns)

    async def ready_listed() -> list[dict[str, Any]]:
        subs = await subsets(api, ns, "my-service")
        return (
            subs
            if addresses(subs) == ["198.18.0.1"]
            and addresses(subs, "notReadyAddresses") == ["198.18.0.2"]
            else []
        )

    subs = await eventually(ready_listed)
    assert subs[0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    endpoints = await api.get("Endpoints", "my-service", ns)
    assert (
        "endpoints.kubernetes.io/last-change-trigger-time" in endpoints["metadata"]["annotations"]
    )

    # Readiness flips move the pod between the lists.
    await set_ready(api, ns, "b", "198.18.0.2", True)
    await eventually(lambda: _has(api, ns, "my-service", ["198.18.0.1", "198.18.0.2"]))
    await set_ready(api, ns, "a", "198.18.0.1", False)
    await eventually(lambda: _has(api, ns, "my-service", ["198.18.0.2"]))

    # A pod deleted, or relabelled out of the selector, leaves; one relabelled in joins.
    await api.delete("Pod", "b", ns)
    await eventually(lambda: _has(api, ns, "my-service", []))
    await api.patch("Pod", "other", {"metadata": {"labels": {"app": "MyApp"}}}, ns)
    await eventually(lambda: _has(api, ns, "my-service", ["198.18.0.3"]))


async def _has(api: Client, ns: str, name: str, ready: list[str]) -> bool:
    return addresses(await subsets(api, ns, name)) == ready


async def test_named_target_port_resolved_per_pod(
    api: Client, manager: ControllerManager, ns: str
) -> None:
    await make_pod(api, ns, "p1", "198.18.1.1", ready=True, labels={"app": "named"}, port=8080)
    await make_pod(api, ns, "p2", "198.18.1.2", ready=True, labels={"app": "named"}, port=9090)
    await api.create(service("named", {"app": "named"}), ns)

    async def two_subsets() -> list[dict[str, Any]]:
        subs = await subsets(api, ns, "named")
        return subs if len(subs) == 2 else []

    subs = await eventually(two_subsets)
    assert sorted((s["ports"][0]["port"], addresses([s])[0]) for s in subs) == [
        (8080, "198.18.1.1"),
        (9090, "198.18.1.2"),
    ]


async def test_selectorless_service_endpoints_are_left_alone(
    api: Client, manager: ControllerManager, ns: str
) -> None:
    await api.create(service("manual", None, [{"port": 80, "targetPort": 9376}]), ns)
    manual = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "manual"},
        "subsets": [{"addresses": [{"ip": "192.0.2.42"}], "ports": [{"port": 9376}]}],
    }
    await api.create(manual, ns)
    await asyncio.sleep(0.5)  # give the controller time to (wrongly) act
    stored = await api.get("Endpoints", "manual", ns)
    assert addresses(stored["subsets"]) == ["192.0.2.42"]
    assert "endpoints.kubernetes.io/last-change-trigger-time" not in (
        stored["metadata"].get("annotations") or {}
    )


async def test_deleting_the_service_deletes_its_endpoints(
    api: Client, manager: ControllerManager, ns: str
) -> None:
    await make_pod(api, ns, "a", "198.18.2.1", ready=True, labels={"app": "gone"})
    await api.create(service("gone", {"app": "gone"}), ns)
    await eventually(lambda: _has(api, ns, "gone", ["198.18.2.1"]))
    await api.delete("Service", "gone", ns)

    async def endpoints_gone() -> bool:
        try:
            await api.get("Endpoints", "gone", ns)
        except StatusError as err:
            return err.code == 404
        return False

    await eventually(endpoints_gone)


async def test_endpoints_edited_by_hand_are_put_right(
    api: Client, manager: ControllerManager, ns: str
) -> None:
    await make_pod(api, ns, "a", "198.18.3.1", ready=True, labels={"app": "fixed"})
    await api.create(service("fixed", {"app": "fixed"}), ns)
    await eventually(lambda: _has(api, ns, "fixed", ["198.18.3.1"]))
    current = await api.get("Endpoints", "fixed", ns)
    current["subsets"] = [
        {"addresses": [{"ip": "192.0.2.99"}], "ports": [{"name": "http", "port": 8080}]}
    ]
    await api.update(current)
    await eventually(lambda: _has(api, ns, "fixed", ["198.18.3.1"]))
