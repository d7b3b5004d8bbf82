"""Real packets through the kernel modes: a node namespace, pods in namespaces, python backends.

Root only (skipped otherwise; failing under CI=true). Every rule goes into
the node namespace the fixture made, and goes away with it.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from kubesvc.proxy import iptables as ipt
from kubesvc.proxy.model import Snapshot
from kubesvc.proxy.netexec import NetExec
from tests.proxy.kernel_fixtures import delta_between, eps, port, snapshot
from tests.proxy.netns import NODE_IP, Node, Pod, require_root_tools, sh

A, B, C, CLIENT = "198.18.0.11", "198.18.0.12", "198.18.0.13", "198.18.0.50"
WEB = port("web", "198.19.0.10", 80, node_port=30080)
STICKY = port("sticky", "198.19.0.11", 80, affinity_s=300)
EMPTY = port("empty", "198.19.0.12", 80)
DNS = port("dns", "198.19.0.13", 53, "UDP")
SELF = port("self", "198.19.0.14", 80)  # only endpoint: pod A (hairpin)
# This kernel has no SCTP sockets, so no SCTP traffic: the rules must load all the same.
SCTP = port("sctp", "198.19.0.15", 9000, "SCTP", node_port=30090)
# A load balancer address that only the client pod may use (loadBalancerSourceRanges).
LB_IP = "198.19.0.40"
LB = port("lb", "198.19.0.16", 80, lb_ips=(LB_IP,), source_ranges=(f"{CLIENT}/32",))

MODES = ["iptables", "iptables-legacy", "nftables"]
TOOLS = {"iptables": "iptables-restore", "iptables-legacy": "iptables-legacy-restore"}


def make_proxier(mode: str, node: Node) -> Any:
    executor = NetExec(netns=node.ns)
    if mode.startswith("iptables"):
        return ipt.IptablesProxier(executor, node_name="n1", legacy=mode == "iptables-legacy")
    from kubesvc.proxy import nftables

    return nftables.NftablesProxier(executor, node_name="n1")


def cleanup(mode: str, node: Node) -> None:
    executor = NetExec(netns=node.ns)
    if mode.startswith("iptables"):
        ipt.cleanup(executor, legacy=mode == "iptables-legacy")
    else:
        from kubesvc.proxy import nftables

        nftables.cleanup(executor)


@dataclass
class Cluster:
    mode: str
    node: Node
    pods: dict[str, Pod]
    proxier: Any
    current: Snapshot = field(default_factory=snapshot)

    def apply(self, *items: Any) -> None:
        new = snapshot(*items, generation=self.current.generation + 1)
        self.proxier.sync(new, delta_between(self.current, new))
        self.current = new


def all_services(**over: Any) -> list[Any]:
    items = {
        "web": (WEB, eps(A, B, C)),
        "sticky": (STICKY, eps(A, B, C)),
        "empty": (EMPTY, ()),
        "dns": (DNS, eps(A, B)),
        "self": (SELF, eps(A)),
        "sctp": (SCTP, eps(A, B)),
        "lb": (LB, eps(A, B)),
    }
    items.update(over)
    return list(items.values())


@pytest.fixture(scope="module", params=MODES)
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    mode = request.param
    require_root_tools(TOOLS.get(mode, "nft"), "conntrack")
    with Node() as node:
        pods = {}
        for name, ip in (("a", A), ("b", B), ("c", C), ("client", CLIENT)):
            pods[name] = node.add_pod(ip)
            if name != "client":
                pods[name].serve(name)
        c = Cluster(mode, node, pods, make_proxier(mode, node))
        c.apply(*all_services())
        yield c


def names(replies: list[dict[str, Any]]) -> collections.Counter[str]:
    return collections.Counter(r.get("name", r.get("error")) for r in replies)


def test_node_reaches_cluster_ip_and_traffic_spreads(cluster: Cluster) -> None:
    got = names(cluster.node.client("tcp", WEB.cluster_ips[0], 80, 60))
    assert set(got) == {"a", "b", "c"}, got
    assert min(got.values()) >= 5, got


def test_pod_reaches_cluster_ip(cluster: Cluster) -> None:
    replies = cluster.pods["client"].client("tcp", WEB.cluster_ips[0], 80, 30)
    assert set(names(replies)) <= {"a", "b", "c"} and len(names(replies)) >= 2
    assert {r["peer"] for r in replies} == {CLIENT}  # pod-to-service keeps the client's address


def test_client_ip_affinity_holds(cluster: Cluster) -> None:
    got = names(cluster.pods["client"].client("tcp", STICKY.cluster_ips[0], 80, 20))
    assert len(got) == 1 and set(got) <= {"a", "b", "c"}, got


def test_node_port_works_and_masquerades(cluster: Cluster) -> None:
    replies = cluster.pods["client"].client("tcp", NODE_IP, WEB.node_port, 30)
    assert set(names(replies)) <= {"a", "b", "c"} and len(names(replies)) >= 2, replies
    assert {r["peer"] for r in replies} == {NODE_IP}


def test_no_endpoints_is_refused_at_once(cluster: Cluster) -> None:
    for who in (cluster.node, cluster.pods["client"]):
        (reply,) = who.client("tcp", EMPTY.cluster_ips[0], 80, 1)
        assert reply.get("error") == "ConnectionRefusedError", reply
        assert reply["s"] < 0.5


def test_hairpin(cluster: Cluster) -> None:
    replies = cluster.pods["a"].client("tcp", SELF.cluster_ips[0], 80, 3)
    assert names(replies) == {"a": 3}, replies
    assert {r["peer"] for r in replies} == {NODE_IP}  # masqueraded, so the reply comes back


def test_udp_through_cluster_ip_and_endpoint_removal(cluster: Cluster) -> None:
    ip = DNS.cluster_ips[0]
    first = cluster.pods["client"].client("udp", ip, 53, 5, 40000)
    assert len(names(first)) == 1 and set(names(first)) <= {"a", "b"}, first  # one conntrack flow
    chosen = first[0]["name"]
    keep = B if chosen == "a" else A
    cluster.apply(*all_services(dns=(DNS, eps(keep))))
    try:
        after = cluster.pods["client"].client("udp", ip, 53, 10, 40000)  # the same source port
        assert names(after) == {("b" if chosen == "a" else "a"): 10}, after
    finally:
        cluster.apply(*all_services())


def test_endpoint_change_moves_tcp_traffic(cluster: Cluster) -> None:
    cluster.apply(*all_services(web=(WEB, eps(C))))
    try:
        assert names(cluster.node.client("tcp", WEB.cluster_ips[0], 80, 10)) == {"c": 10}
    finally:
        cluster.apply(*all_services())


def test_load_balancer_source_ranges_admit_only_their_sources(cluster: Cluster) -> None:
    admitted = names(cluster.pods["client"].client("tcp", LB_IP, 80, 10))
    assert set(admitted) <= {"a", "b"} and sum(admitted.values()) == 10, admitted
    (reply,) = cluster.node.client("tcp", LB_IP, 80, 1)  # the node is not in the range
    assert reply.get("error") == "TimeoutError", reply  # dropped, as kube-proxy drops it
    # The ClusterIP of the same Service stays open to everyone.
    assert set(names(cluster.node.client("tcp", LB.cluster_ips[0], 80, 4))) <= {"a", "b"}


def test_sctp_service_rules_are_in_the_kernel(cluster: Cluster) -> None:
    if cluster.mode == "nftables":
        ruleset = sh("nft", "list", "ruleset", netns=cluster.node.ns)
        assert "198.19.0.15 . sctp . 9000" in ruleset, ruleset
        assert "sctp . 30090" in ruleset, ruleset
        return
    save = "iptables-legacy-save" if cluster.mode == "iptables-legacy" else "iptables-save"
    nat = sh(save, "-t", "nat", netns=cluster.node.ns)
    # (iptables-save puts the comment match between the protocol and its port.)
    assert re.search(r"-d 198\.19\.0\.15/32 -p sctp .*-m sctp --dport 9000 -j KUBE-SVC-", nat)
    assert re.search(r"-p sctp .*-m sctp --dport 30090 -j KUBE-EXT-", nat), nat
    # Both endpoints, each DNATed on SCTP.
    assert len(re.findall(r"-p sctp .*-j DNAT --to-destination", nat)) == 2, nat


def test_zz_cleanup_leaves_no_rule(cluster: Cluster) -> None:
    cleanup(cluster.mode, cluster.node)
    ns = cluster.node.ns
    for save in ("iptables-save", "iptables-legacy-save"):
        saved = sh(save, netns=ns)
        assert "KUBE-" not in saved and "kubesvc" not in saved, saved
    assert "kubesvc" not in sh("nft", "list", "ruleset", netns=ns)
    # And the service addresses no longer lead anywhere.
    (reply,) = cluster.node.client("tcp", WEB.cluster_ips[0], 80, 1)
    assert "error" in reply
