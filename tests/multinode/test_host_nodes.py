"""Two `kubesvc node` processes (host mode, their own loopback pod ranges) against one API
server, with `kubesvc controllers` placing pods: nodes register and stay Ready by heartbeat,
`kubectl get nodes` lists them, pods go to the node with the fewest pods, and a node that
stops its heartbeat goes NotReady, its pods leave their Services' ready addresses, and it
gets no new pods."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apiserver.conftest import Cluster, start_cluster, stop_cluster
from tests.multinode.conftest import (
    API_POD_CIDR,
    GRACE_S,
    Proc,
    bound_node,
    controllers,
    get_json,
    host_node,
    nodes_by_name,
    pod_counts,
    ready_status,
)
from tests.node.conftest import (
    PYTHON,
    create,
    eventually,
    kill_leftovers,
    pod,
    pod_status,
    service,
)

_NET = ipaddress.ip_network(API_POD_CIDR)
_SUBNETS = [str(net) for net in _NET.subnets(2)]
CIDRS = {"mn-a": _SUBNETS[0], "mn-b": _SUBNETS[1]}
NAMES = sorted(CIDRS)


class Setup:
    def __init__(self, api: Cluster, ctl: Proc, nodes: dict[str, Proc]) -> None:
        self.api, self.ctl, self.nodes = api, ctl, nodes


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    api = start_cluster(tmp_path_factory.mktemp("api"), "apiserver", "--pod-cidr", API_POD_CIDR)
    base: Path = tmp_path_factory.mktemp("nodes")
    ctl = controllers(api, base)
    nodes = {
        # Node A runs this machine's proxy and DNS (on free ports); B only its agent, as
        # two userspace proxies on one machine would both listen on every ClusterIP.
        "mn-a": host_node(
            api,
            base / "a",
            "mn-a",
            CIDRS["mn-a"],
            "--dns-port",
            "0",
            "--healthz-port",
            "0",
            "--metrics-port",
            "0",
        ),
        "mn-b": host_node(api, base / "b", "mn-b", CIDRS["mn-b"], "--no-proxy", "--no-dns"),
    }
    for proc in nodes.values():
        Path(proc.log_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        ctl.start()
        for proc in nodes.values():
            proc.start()
        yield Setup(api, ctl, nodes)
    finally:
        # Pods go with their namespaces; running agents stop their processes.
        for ns in get_json(api, "namespaces")["items"]:
            name = ns["metadata"]["name"]
            if name.startswith("mn-"):
                api.kubectl("delete", "namespace", name, "--wait=false", check=False)
        for proc in nodes.values():
            if proc.process is None or proc.process.poll() is not None:
                proc.start()  # a stopped node comes back to end its pods
        eventually(
            lambda: (
                not [
                    p
                    for p in get_json(api, "pods", "-A")["items"]
                    if p["metadata"]["namespace"].startswith("mn-")
                ]
            ),
            20,
            what="test pods gone",
        )
        time.sleep(0.5)
        for proc in (*nodes.values(), ctl):
            proc.stop()
        stop_cluster(api.process)
        leftovers = kill_leftovers(str(base))
    assert not leftovers, f"pod processes left behind: {leftovers}"


def test_kubectl_get_nodes_lists_the_registered_nodes_ready(setup: Setup) -> None:
    api = setup.api
    table = api.kubectl("get", "nodes").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert sorted(rows) == NAMES
    assert all(row[1] == "Ready" and row[2] == "<none>" for row in rows.values()), table
    wide = api.kubectl("get", "no", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:6] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"]
    assert all(line.split()[5] == "127.0.0.1" for line in wide[1:]), wide

    node = nodes_by_name(api)["mn-a"]
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "mn-a"
    assert node["spec"]["podCIDR"] == CIDRS["mn-a"]
    assert node["status"]["capacity"]["pods"] == node["status"]["allocatable"]["pods"]
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
    # The heartbeat moves lastHeartbeatTime; lastTransitionTime stays.
    first = node["status"]["conditions"][0]
    assert first["type"] == "Ready" and first["reason"] == "KubeletReady"

    def moved() -> bool:
        cond = nodes_by_name(api)["mn-a"]["status"]["conditions"][0]
        return (
            cond["lastHeartbeatTime"] > first["lastHeartbeatTime"]
            and cond["lastTransitionTime"] == first["lastTransitionTime"]
        )

    eventually(moved, 5, what="a later heartbeat")


def _expected(counts: dict[str, int]) -> str:
    return min((count, name) for name, count in counts.items())[1]


def test_the_scheduler_places_pods_on_the_node_with_the_fewest(setup: Setup) -> None:
    api = setup.api
    api.kubectl("create", "namespace", "mn-spread")
    # A pod pinned to mn-a by its node selector makes the two nodes uneven.
    pinned = pod("pinned", ["sleep", "300"], nodeSelector={"kubernetes.io/hostname": "mn-a"})
    create(api, pinned, "mn-spread")
    eventually(lambda: bound_node(api, "mn-spread", "pinned"), what="pinned bound")
    assert bound_node(api, "mn-spread", "pinned") == "mn-a"
    # One at a time: each goes where the fewest pods are (ties: the first name).
    for i in range(3):
        expected = _expected(pod_counts(api, NAMES))
        create(api, pod(f"one-{i}", ["sleep", "300"]), "mn-spread")
        got = eventually(lambda i=i: bound_node(api, "mn-spread", f"one-{i}"), what=f"one-{i}")  # type: ignore[misc]
        assert got == expected, (i, got, expected)
    # A burst of six is spread evenly: bindings not yet in the cache count.
    before = pod_counts(api, NAMES)
    burst = [pod(f"burst-{i}", ["sleep", "300"]) for i in range(6)]
    api.kubectl(
        "create",
        "-n",
        "mn-spread",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": burst}),
    )
    eventually(
        lambda: all(bound_node(api, "mn-spread", f"burst-{i}") for i in range(6)), what="burst"
    )
    after = pod_counts(api, NAMES)
    added = {n: after[n] - before[n] for n in NAMES}
    assert sum(added.values()) == 6 and abs(after["mn-a"] - after["mn-b"]) <= 1, (before, after)
    # Each node runs its pods, with addresses from its own range.
    for i in range(3):
        name = f"one-{i}"
        status = eventually(
            lambda n=name: (s := pod_status(api, n, "mn-spread")).get("phase") == "Running" and s,  # type: ignore[misc]
            what=f"{name} running",
        )
        node = bound_node(api, "mn-spread", name)
        assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network(CIDRS[node])
    events = get_json(api, "events", "-n", "mn-spread")["items"]
    assert any(e["reason"] == "Scheduled" and "one-0" in e["message"] for e in events)


def test_a_pod_no_node_can_take_waits_with_an_event(setup: Setup) -> None:
    api = setup.api
    api.kubectl("create", "namespace", "mn-nofit")
    create(api, pod("nowhere", ["sleep", "300"], nodeSelector={"disk": "ssd"}), "mn-nofit")

    def failed() -> list[str]:
        items = get_json(api, "events", "-n", "mn-nofit")["items"]
        return [e["message"] for e in items if e["reason"] == "FailedScheduling"]

    messages = eventually(failed, what="FailedScheduling event")
    assert "0/2 nodes are available" in messages[0], messages
    assert bound_node(api, "mn-nofit", "nowhere") is None
    # Labelling a node makes it fit; the waiting pod goes there.
    api.kubectl("label", "node", "mn-b", "disk=ssd")
    assert eventually(lambda: bound_node(api, "mn-nofit", "nowhere")) == "mn-b"


def pod_ip(api: Cluster) -> str:
    return str(get_json(api, "pod", "web-b", "-n", "mn-down")["status"].get("podIP", ""))


def endpoint_ips(api: Cluster) -> tuple[list[str], list[str]]:
    """The web-b Service's (ready, not ready) addresses."""
    subsets = get_json(api, "endpoints", "web-b", "-n", "mn-down").get("subsets") or []
    ready = [a["ip"] for s in subsets for a in s.get("addresses") or []]
    not_ready = [a["ip"] for s in subsets for a in s.get("notReadyAddresses") or []]
    return ready, not_ready


def test_a_node_without_heartbeat_goes_not_ready_and_gets_no_new_pods(setup: Setup) -> None:
    api = setup.api
    api.kubectl("create", "namespace", "mn-down")
    # A Service backed by a pod on mn-b, ready by its probe.
    web = pod(
        "web-b",
        [PYTHON, "-m", "http.server", "--bind", "$(POD_IP)", "8080"],
        labels={"app": "web-b"},
        nodeSelector={"kubernetes.io/hostname": "mn-b"},
        readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1},
    )
    create(api, web, "mn-down")
    create(api, service("web-b", 8080, selector={"app": "web-b"}), "mn-down")
    eventually(lambda: endpoint_ips(api) == ([pod_ip(api)], []), 20, what="web-b ready")
    # mn-a gets more pods than mn-b first: the new pods below go there all the same.
    counts = pod_counts(api, NAMES)
    for i in range(counts["mn-b"] - counts["mn-a"] + 1):
        pinned = pod(f"pin-{i}", ["sleep", "300"], nodeSelector={"kubernetes.io/hostname": "mn-a"})
        create(api, pinned, "mn-down")
        eventually(lambda i=i: bound_node(api, "mn-down", f"pin-{i}"), what=f"pin-{i} bound")  # type: ignore[misc]
    assert pod_counts(api, NAMES)["mn-a"] > pod_counts(api, NAMES)["mn-b"]
    # The agent stops (as if its machine died): no more heartbeats.
    setup.nodes["mn-b"].stop()
    stopped = time.monotonic()
    eventually(
        lambda: ready_status(nodes_by_name(api)["mn-b"]) == "Unknown",
        GRACE_S + 10,
        what="mn-b NotReady",
    )
    assert time.monotonic() - stopped >= GRACE_S - 1
    cond = nodes_by_name(api)["mn-b"]["status"]["conditions"][0]
    assert cond["reason"] == "NodeStatusUnknown"
    rows = {
        line.split()[0]: line.split()[1]
        for line in api.kubectl("get", "nodes").stdout.splitlines()[1:]
    }
    assert rows == {"mn-a": "Ready", "mn-b": "NotReady"}
    # Its pod is NotReady now, and out of the Service's ready addresses.
    ip = pod_ip(api)
    eventually(lambda: endpoint_ips(api) == ([], [ip]), 10, what="web-b out of Endpoints")
    ready = next(
        c
        for c in get_json(api, "pod", "web-b", "-n", "mn-down")["status"]["conditions"]
        if c["type"] == "Ready"
    )
    assert (ready["status"], ready["reason"]) == ("False", "NodeNotReady")
    # Even though mn-a runs more pods, every new pod goes to mn-a.
    for i in range(3):
        create(api, pod(f"after-{i}", ["sleep", "300"]), "mn-down")
    for i in range(3):
        assert eventually(lambda i=i: bound_node(api, "mn-down", f"after-{i}")) == "mn-a"  # type: ignore[misc]
    # Back again: Ready, and it takes pods once more (it has the fewest).
    setup.nodes["mn-b"].start()
    eventually(lambda: ready_status(nodes_by_name(api)["mn-b"]) == "True", 10, what="mn-b Ready")
    # Its agent writes the pod's real readiness again: back in the Service.
    eventually(lambda: endpoint_ips(api) == ([ip], []), 15, what="web-b back in Endpoints")
    create(api, pod("back", ["sleep", "300"]), "mn-down")
    assert eventually(lambda: bound_node(api, "mn-down", "back")) == "mn-b"
