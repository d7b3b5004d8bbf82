"""Server-side Tables: kubectl's columns and cell formats, one table of cases per kind."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubesvc.api import tables
from kubesvc.api.errors import StatusError

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    """The RFC 3339 timestamp `delta` before NOW."""
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str = "x", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "creationTimestamp": ago(minutes=5), **extra}


def cells(kind: str, obj: dict[str, Any]) -> list[Any]:
    [row] = tables.table(kind, [obj], NOW)["rows"]
    return row["cells"]


def headers(kind: str, wide: bool = False) -> list[str]:
    columns = tables.table(kind, [], NOW)["columnDefinitions"]
    return [c["name"].upper() for c in columns if wide or c["priority"] == 0]


# ------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1.5, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (182, "3m2s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 25 * 60, "3h25m"),
        (8 * 3600 + 59 * 60, "8h"),
        (47 * 3600, "47h"),
        (2 * 86400, "2d"),
        (2 * 86400 + 3 * 3600, "2d3h"),
        (8 * 86400 + 5 * 3600, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (3 * 365 * 86400 + 10 * 86400, "3y10d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert tables.human_duration(seconds) == text


@pytest.mark.parametrize(
    ("timestamp", "text"),
    [
        (ago(seconds=5), "5s"),
        (ago(minutes=3, seconds=2), "3m2s"),
        (ago(days=2, hours=3), "2d3h"),
        ("2024-06-01T11:59:55.123456Z", "4s"),  # MicroTime
        ("2024-06-01T13:59:55+02:00", "5s"),
        (None, "<unknown>"),
        ("", "<unknown>"),
        ("yesterday", "<unknown>"),
        (12, "<unknown>"),
    ],
)
def test_since(timestamp: Any, text: str) -> None:
    assert tables.since(timestamp, NOW) == text


def test_now_may_be_a_unix_time_or_naive() -> None:
    obj = {"metadata": meta()}
    assert cells("Namespace", obj)[-1] == "5m"
    assert tables.table("Namespace", [obj], NOW.timestamp())["rows"][0]["cells"][-1] == "5m"
    naive = NOW.replace(tzinfo=None)
    assert tables.table("Namespace", [obj], naive)["rows"][0]["cells"][-1] == "5m"


# -------------------------------------------------------------- services


def svc(**spec: Any) -> dict[str, Any]:
    base = {"type": "ClusterIP", "clusterIP": "198.18.0.10", "clusterIPs": ["198.18.0.10"]}
    return {"kind": "Service", "metadata": meta("web"), "spec": {**base, **spec}}


def test_service_columns() -> None:
    assert headers("Service") == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert headers("Service", wide=True)[-1] == "SELECTOR"


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        (
            svc(ports=[{"port": 80, "protocol": "TCP"}], selector={"app": "web"}),
            ["web", "ClusterIP", "198.18.0.10", "<none>", "80/TCP", "5m", "app=web"],
        ),
        (
            svc(
                type="NodePort",
                ports=[
                    {"port": 80, "protocol": "TCP", "nodePort": 30080},
                    {"port": 443, "protocol": "TCP", "nodePort": 30443},
                    {"port": 53, "protocol": "UDP"},
                ],
                selector={"tier": "fe", "app": "web"},
            ),
            [
                "web",
                "NodePort",
                "198.18.0.10",
                "<none>",
                "80:30080/TCP,443:30443/TCP,53/UDP",
                "5m",
                "app=web,tier=fe",
            ],
        ),
        (
            svc(clusterIP="None", clusterIPs=["None"], ports=[{"port": 80, "protocol": "TCP"}]),
            ["web", "ClusterIP", "None", "<none>", "80/TCP", "5m", "<none>"],
        ),
        (
            svc(clusterIPs=[], clusterIP="198.18.0.11", ports=[]),  # clusterIPs not filled in yet
            ["web", "ClusterIP", "198.18.0.11", "<none>", "<none>", "5m", "<none>"],
        ),
        (
            {
                "metadata": meta("ext"),
                "spec": {"type": "ExternalName", "externalName": "example.com"},
            },
            ["ext", "ExternalName", "<none>", "example.com", "<none>", "5m", "<none>"],
        ),
        (
            svc(externalIPs=["198.19.0.1", "198.19.0.2"], ports=[{"port": 80, "protocol": "TCP"}]),
            ["web", "ClusterIP", "198.18.0.10", "198.19.0.1,198.19.0.2", "80/TCP", "5m", "<none>"],
        ),
        (
            svc(type="LoadBalancer", ports=[{"port": 80, "protocol": "TCP", "nodePort": 31000}]),
            ["web", "LoadBalancer", "198.18.0.10", "<pending>", "80:31000/TCP", "5m", "<none>"],
        ),
        (
            {
                **svc(type="LoadBalancer", externalIPs=["198.19.0.9"]),
                "status": {
                    "loadBalancer": {
                        "ingress": [{"ip": "198.19.0.5"}, {"hostname": "lb.example"}, {}]
                    }
                },
            },
            [
                "web",
                "LoadBalancer",
                "198.18.0.10",
                "198.19.0.5,lb.example,198.19.0.9",
                "<none>",
                "5m",
                "<none>",
            ],
        ),
    ],
)
def test_service_rows(service: dict[str, Any], expected: list[Any]) -> None:
    assert cells("Service", service) == expected


# ------------------------------------------------------------------ pods


def pod(
    containers: list[dict[str, Any]] | None = None,
    *,
    phase: str = "Running",
    spec: dict[str, Any] | None = None,
    init: list[dict[str, Any]] | None = None,
    **status: Any,
) -> dict[str, Any]:
    statuses = containers if containers is not None else [running()]
    pod_spec = {"containers": [{"name": s["name"]} for s in statuses] or [{"name": "c"}]}
    pod_status: dict[str, Any] = {"phase": phase, "containerStatuses": statuses, **status}
    if init is not None:
        pod_status["initContainerStatuses"] = init
        pod_spec["initContainers"] = [
            {"name": s["name"], **({"restartPolicy": "Always"} if s.get("sidecar") else {})}
            for s in init
        ]
    return {"metadata": meta("web-0"), "spec": {**pod_spec, **(spec or {})}, "status": pod_status}


def running(name: str = "c", ready: bool = True, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "state": {"running": {"startedAt": ago(minutes=4)}},
        **extra,
    }


def waiting(name: str, reason: str, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason}},
        **extra,
    }


def terminated(name: str, code: int, reason: str = "", **extra: Any) -> dict[str, Any]:
    done = {"exitCode": code, **({"reason": reason} if reason else {})}
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": done}, **extra}


def test_pod_columns() -> None:
    assert headers("Pod") == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert headers("Pod", wide=True)[5:] == ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]


LAST_CRASH = {"lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=2)}}}


@pytest.mark.parametrize(
    ("obj", "ready", "status", "restarts"),
    [
        (pod(), "1/1", "Running", "0"),
        (pod([running("a"), running("b", ready=False)]), "1/2", "Running", "0"),
        (pod([], phase="Pending"), "0/1", "Pending", "0"),
        (
            pod([waiting("c", "ContainerCreating")], phase="Pending"),
            "0/1",
            "ContainerCreating",
            "0",
        ),
        (
            pod([waiting("c", "CrashLoopBackOff", restarts=4, **LAST_CRASH)]),
            "0/1",
            "CrashLoopBackOff",
            "4 (2m ago)",
        ),
        (pod([running("c", restarts=3)]), "1/1", "Running", "3"),  # no lastState: no "ago"
        (pod([terminated("c", 0, "Completed")], phase="Succeeded"), "0/1", "Completed", "0"),
        (pod([terminated("c", 2)], phase="Failed"), "0/1", "ExitCode:2", "0"),
        (pod([terminated("c", 0, signal=9)], phase="Failed"), "0/1", "ExitCode:0", "0"),
        (
            pod(
                [{**terminated("c", 137), "state": {"terminated": {"exitCode": 137, "signal": 9}}}]
            ),
            "0/1",
            "Signal:9",
            "0",
        ),
        (
            pod(
                [running("a"), terminated("b", 0, "Completed")],
                conditions=[{"type": "Ready", "status": "False"}],
            ),
            "1/2",
            "NotReady",
            "0",
        ),
        (
            pod(
                [running("a"), terminated("b", 0, "Completed")],
                conditions=[{"type": "Ready", "status": "True"}],
            ),
            "1/2",
            "Running",
            "0",
        ),
        (pod([], phase="Failed", reason="Evicted"), "0/1", "Evicted", "0"),
        (
            pod(
                [],
                phase="Pending",
                conditions=[
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
                ],
            ),
            "0/1",
            "SchedulingGated",
            "0",
        ),
        # Init containers: still running, failed, waiting, done.
        (
            pod([waiting("c", "PodInitializing")], phase="Pending", init=[running("i1")]),
            "0/1",
            "Init:0/1",
            "0",
        ),
        (
            pod(
                [waiting("c", "PodInitializing")],
                phase="Pending",
                init=[terminated("i1", 0), terminated("i2", 3, "Error")],
            ),
            "0/1",
            "Init:Error",
            "0",
        ),
        (
            pod(
                [waiting("c", "PodInitializing")],
                phase="Pending",
                init=[terminated("i1", 0), terminated("i2", 3)],
            ),
            "0/1",
            "Init:ExitCode:3",
            "0",
        ),
        (
            pod(
                [waiting("c", "PodInitializing")],
                phase="Pending",
                init=[waiting("i1", "ImagePullBackOff", restarts=2)],
            ),
            "0/1",
            "Init:ImagePullBackOff",
            "2",
        ),
        # The node agent's own sequence: the second of two running, then crash-looping
        # (its restarts count), then both done and the container not started yet.
        (
            pod(
                [waiting("c", "PodInitializing")],
                phase="Pending",
                init=[terminated("i1", 0, "Completed"), running("i2", ready=False)],
            ),
            "0/1",
            "Init:1/2",
            "0",
        ),
        (
            pod(
                [waiting("c", "PodInitializing")],
                phase="Pending",
                init=[
                    terminated("i1", 0, "Completed"),
                    waiting("i2", "CrashLoopBackOff", restarts=2, **LAST_CRASH),
                ],
            ),
            "0/1",
            "Init:CrashLoopBackOff",
            "2 (2m ago)",
        ),
        (
            pod(
                [waiting("c", "PodInitializing")],
                phase="Pending",
                init=[terminated("i1", 0, "Completed"), terminated("i2", 0, "Completed")],
                conditions=[{"type": "Initialized", "status": "True"}],
            ),
            "0/1",
            "PodInitializing",
            "0",
        ),
        (pod(init=[terminated("i1", 0, "Completed")]), "1/1", "Running", "0"),
        # A sidecar (init container with restartPolicy Always) counts among the containers.
        (
            pod(init=[running("proxy", started=True, sidecar=True, restarts=1)]),
            "2/2",
            "Running",
            "1",
        ),
    ],
)
def test_pod_status_cells(obj: dict[str, Any], ready: str, status: str, restarts: str) -> None:
    row = cells("Pod", obj)
    assert row[1:4] == [ready, status, restarts]
    assert tables.pod_summary(obj, NOW) == (ready, status, restarts)


@pytest.mark.parametrize(
    ("deletion", "phase", "reason", "status"),
    [
        (ago(seconds=3), "Running", "", "Terminating"),
        (ago(seconds=3), "Succeeded", "", "Completed"),
        (ago(seconds=3), "Running", "NodeLost", "Unknown"),
        (None, "Running", "", "Running"),
    ],
)
def test_terminating_pods(deletion: str | None, phase: str, reason: str, status: str) -> None:
    states = [terminated("c", 0, "Completed")] if phase == "Succeeded" else [running()]
    obj = pod(states, phase=phase, **({"reason": reason} if reason else {}))
    if deletion:
        obj["metadata"]["deletionTimestamp"] = deletion
    assert tables.pod_summary(obj, NOW)[1] == status


@pytest.mark.parametrize(
    ("status", "spec", "wide"),
    [
        ({}, {}, ["<none>", "<none>", "<none>", "<none>"]),
        (
            {"podIP": "198.18.1.5", "podIPs": [{"ip": "198.18.1.5"}], "nominatedNodeName": "n2"},
            {"nodeName": "n1"},
            ["198.18.1.5", "n1", "n2", "<none>"],
        ),
        ({"podIP": "127.244.0.3"}, {}, ["127.244.0.3", "<none>", "<none>", "<none>"]),
        (
            {"conditions": [{"type": "example.com/gate", "status": "True"}]},
            {"readinessGates": [{"conditionType": "example.com/gate"}, {"conditionType": "other"}]},
            ["<none>", "<none>", "<none>", "1/2"],
        ),
    ],
)
def test_pod_wide_cells(status: dict[str, Any], spec: dict[str, Any], wide: list[str]) -> None:
    obj = pod(spec=spec, **status)
    assert cells("Pod", obj)[5:] == wide


def test_finished_pods_rows_are_marked_completed() -> None:
    done = tables.table("Pod", [pod([terminated("c", 0, "Completed")], phase="Succeeded")], NOW)
    assert done["rows"][0]["conditions"][0]["type"] == "Completed"
    assert "conditions" not in tables.table("Pod", [pod()], NOW)["rows"][0]


# -------------------------------------------------------------- endpoints


def subset(ips: list[str], ports: list[int]) -> dict[str, Any]:
    return {
        "addresses": [{"ip": ip} for ip in ips],
        "ports": [{"port": p, "protocol": "TCP"} for p in ports],
    }


@pytest.mark.parametrize(
    ("subsets", "text"),
    [
        (None, "<none>"),
        ([], "<none>"),
        ([subset(["198.18.0.1"], [80])], "198.18.0.1:80"),
        ([subset(["198.18.0.1", "198.18.0.2"], [80])], "198.18.0.1:80,198.18.0.2:80"),
        (
            [subset(["198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5"], [80])],
            "198.18.0.1:80,198.18.0.2:80,198.18.0.3:80 + 2 more...",
        ),
        (
            [subset(["198.18.0.1", "198.18.0.2"], [80, 443])],
            "198.18.0.1:80,198.18.0.2:80,198.18.0.1:443 + 1 more...",
        ),
        ([subset(["198.18.0.1", "198.18.0.2"], [])], "198.18.0.1,198.18.0.2"),  # headless
        ([subset(["fd00::1"], [80])], "[fd00::1]:80"),
        ([{"notReadyAddresses": [{"ip": "198.18.0.9"}], "ports": [{"port": 80}]}], "<none>"),
    ],
)
def test_endpoints_cell(subsets: Any, text: str) -> None:
    obj = {"metadata": meta("web"), "subsets": subsets}
    assert cells("Endpoints", obj) == ["web", text, "5m"]
    assert headers("Endpoints") == ["NAME", "ENDPOINTS", "AGE"]


@pytest.mark.parametrize(
    ("ports", "endpoints", "port_text", "endpoint_text"),
    [
        ([], [], "<unset>", "<unset>"),
        (
            [{"name": "http", "port": 80, "protocol": "TCP"}],
            [{"addresses": ["198.18.0.1"]}, {"addresses": ["198.18.0.2"]}],
            "80",
            "198.18.0.1,198.18.0.2",
        ),
        (
            [{"port": 1}, {"port": 2}, {"name": "named"}, {}, {"port": 5}],
            [{"addresses": [f"198.18.0.{i}"]} for i in range(1, 6)],
            "1,2,named + 2 more...",
            "198.18.0.1,198.18.0.2,198.18.0.3 + 2 more...",
        ),
        ([{}], [{"addresses": []}], "*", "<unset>"),
    ],
)
def test_endpoint_slice_cells(
    ports: list[Any], endpoints: list[Any], port_text: str, endpoint_text: str
) -> None:
    obj = {
        "metadata": meta("web-abc"),
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    }
    assert cells("EndpointSlice", obj) == ["web-abc", "IPv4", port_text, endpoint_text, "5m"]
    assert headers("EndpointSlice") == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]


# ----------------------------------------------------- namespaces, events


def test_namespace_rows() -> None:
    assert headers("Namespace") == ["NAME", "STATUS", "AGE"]
    obj = {
        "metadata": {"name": "dev", "creationTimestamp": ago(days=3)},
        "status": {"phase": "Active"},
    }
    assert cells("Namespace", obj) == ["dev", "Active", "3d"]


def event(**fields: Any) -> dict[str, Any]:
    return {
        "metadata": meta("web.17a"),
        "involvedObject": {"kind": "Service", "name": "web", "namespace": "default"},
        "reason": "AllocationFailed",
        "message": "  no ports left \n",
        "type": "Warning",
        **fields,
    }


def test_event_columns() -> None:
    assert headers("Event") == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert headers("Event", wide=True)[4:] == [
        "SUBOBJECT",
        "SOURCE",
        "MESSAGE",
        "FIRST SEEN",
        "COUNT",
        "NAME",
    ]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            event(
                firstTimestamp=ago(minutes=10),
                lastTimestamp=ago(seconds=30),
                count=4,
                source={"component": "kubesvc-controllers", "host": "node-1"},
            ),
            ["30s", "Warning", "AllocationFailed", "service/web", "", "kubesvc-controllers, node-1",
             "no ports left", "10m", 4, "web.17a"],
        ),
        (
            event(eventTime="2024-06-01T11:59:50.000000Z", reportingComponent="kubelet"),
            ["10s", "Warning", "AllocationFailed", "service/web", "", "kubelet", "no ports left",
             "10s", 1, "web.17a"],
        ),
        (
            event(
                eventTime=ago(minutes=20),
                series={"count": 7, "lastObservedTime": ago(minutes=1)},
                involvedObject={"kind": "Pod", "fieldPath": "spec.containers{web}", "name": "p"},
                reportingComponent="kubelet",
                reportingInstance="n1",
            ),
            ["60s", "Warning", "AllocationFailed", "pod/p", "spec.containers{web}", "kubelet, n1",
             "no ports left", "20m", 7, "web.17a"],
        ),
        (
            event(involvedObject={"kind": "Node"}),
            ["<unknown>", "Warning", "AllocationFailed", "node", "", "", "no ports left",
             "<unknown>", 1, "web.17a"],
        ),
    ],
)  # fmt: skip
def test_event_rows(obj: dict[str, Any], expected: list[Any]) -> None:
    assert cells("Event", obj) == expected


def test_unknown_kinds_get_name_and_age() -> None:
    assert headers("Widget") == ["NAME", "AGE"]
    assert cells("Widget", {"metadata": meta("w")}) == ["w", "5m"]


# ----------------------------------------------------------------- table


def test_table_shape_and_partial_object_metadata() -> None:
    service = svc(ports=[{"port": 80, "protocol": "TCP"}])
    service["metadata"]["labels"] = {"app": "web"}
    result = tables.table("Service", [service, svc()], NOW)
    assert result["kind"] == "Table" and result["apiVersion"] == "meta.k8s.io/v1"
    assert result["metadata"] == {}
    assert len(result["rows"]) == 2
    for column in result["columnDefinitions"]:
        assert set(column) == {"name", "type", "format", "description", "priority"}
    assert result["columnDefinitions"][0]["format"] == "name"
    row = result["rows"][0]
    assert len(row["cells"]) == len(result["columnDefinitions"])
    assert row["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": service["metadata"],
    }
    # The row holds a copy: changing it leaves the stored object alone.
    row["object"]["metadata"]["labels"]["app"] = "changed"
    assert service["metadata"]["labels"] == {"app": "web"}


@pytest.mark.parametrize(
    "kind", ["Service", "Pod", "Endpoints", "EndpointSlice", "Namespace", "Event", "Widget"]
)
def test_every_row_has_a_cell_per_column(kind: str) -> None:
    result = tables.table(kind, [{"metadata": meta()}, {}], NOW)
    for row in result["rows"]:
        assert len(row["cells"]) == len(result["columnDefinitions"])


@pytest.mark.parametrize(
    ("include", "expected"),
    [
        ("None", None),
        ("Object", "full"),
        ("Metadata", "partial"),
        (None, "partial"),
    ],
)
def test_include_object(include: str | None, expected: str | None) -> None:
    service = svc()
    [row] = tables.table("Service", [service], NOW, include_object=include)["rows"]
    if expected is None:
        assert row["object"] is None
    elif expected == "full":
        assert row["object"] == service and row["object"] is not service
    else:
        assert row["object"]["kind"] == "PartialObjectMetadata"


def test_bad_include_object_is_a_bad_request() -> None:
    with pytest.raises(StatusError) as err:
        tables.table("Service", [], NOW, include_object="Everything")
    assert err.value.code == 400


def test_no_headers_for_watch_events_after_the_first() -> None:
    result = tables.table("Service", [svc()], NOW, no_headers=True)
    assert result["columnDefinitions"] == [] and len(result["rows"]) == 1


def test_table_does_not_change_its_input_or_shared_columns() -> None:
    service = svc(ports=[{"port": 80}])
    before = copy.deepcopy(service)
    result = tables.table("Service", [service], NOW)
    result["columnDefinitions"][0]["name"] = "Changed"
    assert service == before
    assert tables.table("Service", [], NOW)["columnDefinitions"][0]["name"] == "Name"


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        (
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
            True,
        ),
        ("application/json;as=Table;g=meta.k8s.io;v=v1", True),
        ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", False),
        ("application/json", False),
        ("", False),
        (None, False),
    ],
)
def test_wants_table(accept: str | None, wanted: bool) -> None:
    assert tables.wants_table(accept) is wanted


def test_format_labels() -> None:
    assert tables.format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert tables.format_labels({}) == "<none>"
    assert tables.format_labels(None) == "<none>"
