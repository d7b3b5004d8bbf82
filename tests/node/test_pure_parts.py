"""Pod IPs, which pods a node takes, network checks, resolv.conf, log tails: pure tables."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from kubesvc.node import ipam, placement
from kubesvc.node.logs import tail_lines
from kubesvc.node.network import network_problem, resolv_conf, veth_name

NET = ipaddress.ip_network("198.18.0.0/29")  # .0 network, .1 gateway, .2–.6 pods, .7 broadcast


@pytest.mark.parametrize(
    ("used", "last", "expected"),
    [
        (set(), None, "198.18.0.2"),
        ({"198.18.0.2"}, None, "198.18.0.3"),
        (set(), "198.18.0.3", "198.18.0.4"),  # round robin from the last one handed out
        (set(), "198.18.0.6", "198.18.0.2"),  # wraps around
        ({"198.18.0.2", "198.18.0.3"}, "198.18.0.6", "198.18.0.4"),
        ({f"198.18.0.{i}" for i in range(2, 7)}, None, None),  # full
        (set(), "10.1.1.1", "198.18.0.2"),  # a last address outside the range is ignored
    ],
)
def test_next_free(used: set[str], last: str | None, expected: str | None) -> None:
    assert ipam.next_free(NET, used, last) == expected


def test_gateway_and_tiny_ranges() -> None:
    assert ipam.gateway(NET) == "198.18.0.1"
    assert ipam.next_free(ipaddress.ip_network("198.18.0.0/31"), set()) is None
    assert ipam.next_free(ipaddress.ip_network("127.244.0.0/16"), set()) == "127.244.0.2"


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": spec, "status": {}}


@pytest.mark.parametrize(
    ("obj", "bind"),
    [
        (pod(), True),
        (pod(schedulerName="default-scheduler"), True),
        (pod(nodeName="n1"), False),
        (pod(schedulerName="my-scheduler"), False),
        (pod(nodeSelector={"kubernetes.io/hostname": "n1"}), True),
        (pod(nodeSelector={"kubernetes.io/hostname": "n2"}), False),
        (pod(nodeSelector={"disk": "ssd"}), False),
        ({**pod(), "metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}, False),
        ({**pod(), "status": {"phase": "Succeeded"}}, False),
    ],
)
def test_which_pods_a_node_binds(obj: dict[str, Any], bind: bool) -> None:
    assert placement.should_bind(obj, "n1") is bind


@pytest.mark.parametrize(
    ("mode", "cidr", "root", "problem"),
    [
        ("host", "127.244.0.0/16", False, None),
        ("host", "198.18.0.0/24", False, "needs a loopback --pod-cidr"),
        ("netns", "198.18.0.0/24", True, None),
        ("netns", "198.18.0.0/24", False, "needs root"),
        ("netns", "127.244.0.0/16", True, "not loopback"),
        ("netns", "198.18.0.0/31", True, "/30 or larger"),
    ],
)
def test_network_checks(mode: str, cidr: str, root: bool, problem: str | None) -> None:
    found = network_problem(mode, ipaddress.ip_network(cidr), root)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_resolv_conf_is_the_kubelets() -> None:
    assert resolv_conf("198.18.0.1", "shop", "cluster.local") == (
        "nameserver 198.18.0.1\n"
        "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
        "options ndots:5\n"
    )


def test_veth_names_fit_ifnamsiz() -> None:
    names = {veth_name("node-a", f"uid-{i}") for i in range(100)}
    assert len(names) == 100 and all(len(n) <= 15 for n in names)
    assert veth_name("node-a", "uid-1") != veth_name("node-b", "uid-1")


@pytest.mark.parametrize(
    ("data", "lines", "expected"),
    [
        (b"a\nb\nc\n", 2, b"b\nc\n"),
        (b"a\nb\nc", 2, b"b\nc"),
        (b"a\nb\nc\n", 5, b"a\nb\nc\n"),
        (b"a\nb\nc\n", 0, b""),
        (b"", 3, b""),
        (b"only", 1, b"only"),
    ],
)
def test_tail_lines(data: bytes, lines: int, expected: bytes) -> None:
    assert tail_lines(data, lines) == expected
