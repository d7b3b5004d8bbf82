"""The nftables mode's rendered objects and scripts: whole tables, and the difference a change makes."""

from __future__ import annotations

import pytest

from kubesvc.proxy import nftables as nft
from kubesvc.proxy.netexec import FakeExec, Result
from tests.proxy.kernel_fixtures import delta_between, eps, port, snapshot

WEB = port("web", "198.19.0.10", 80, node_port=30080)
STICKY = port("sticky", "198.19.0.11", 80, affinity_s=60)
EMPTY = port("empty", "198.19.0.12", 80, node_port=30012)
DNS = port("dns", "198.19.0.13", 53, "UDP")
OTHER = port("other", "198.19.0.20", 80)


def test_one_service_objects() -> None:
    r = nft.render_service(WEB, eps("198.18.1.2", "198.18.1.3"), None)
    assert r.chains == {}  # no chain of its own: the shared picker for two endpoints
    assert r.pickers == {("ip", "tcp", 2), ("np", "tcp", 2)}
    assert r.elements == {
        ("service-ips", "198.19.0.10 . tcp . 80"): "goto pick-tcp-2",
        ("eps-tcp-2", "198.19.0.10 . 80 . 0"): "198.18.1.2 . 8080",
        ("eps-tcp-2", "198.19.0.10 . 80 . 1"): "198.18.1.3 . 8080",
        ("service-nodeports", "tcp . 30080"): "goto nppick-tcp-2",
        ("npeps-tcp-2", "30080 . 0"): "198.18.1.2 . 8080",
        ("npeps-tcp-2", "30080 . 1"): "198.18.1.3 . 8080",
        ("nodeport-masq", "tcp . 30080"): "",  # NodePort traffic is masqueraded
    }
    assert r.hairpin == {"198.18.1.2", "198.18.1.3"}
    assert nft.picker_decl(("ip", "tcp", 2)) == [
        "add map ip kubesvc eps-tcp-2 { typeof ip daddr . th dport . numgen random mod 2 : "
        "ip daddr . th dport ; }",
        "add chain ip kubesvc pick-tcp-2",
        "add rule ip kubesvc pick-tcp-2 meta l4proto tcp dnat ip to ip daddr . th dport . "
        "numgen random mod 2 map @eps-tcp-2",
    ]


def test_affinity_port_has_its_own_chain() -> None:
    r = nft.render_service(STICKY, eps("198.18.1.5", "198.18.1.6"), None, aff_id=7)
    svc = nft.svc_chain(STICKY.name)
    aff = nft.aff_map(STICKY.name, 60)
    assert r.chains[svc] == (
        "ct mark set 0x7",
        f"meta l4proto tcp dnat ip to ip saddr map @{aff}",
        "numgen random mod 2 == 0 meta l4proto tcp dnat ip to 198.18.1.5:8080",
        "meta l4proto tcp dnat ip to 198.18.1.6:8080",
    )
    assert r.elements[("affinity-updates", "0x7")] == f"jump {nft.aff_update_chain(STICKY.name)}"
    assert r.affinity == {aff: 60} and not r.pickers


CASES = [
    # (port, endpoints, script lines expected)
    (
        DNS,
        eps("198.18.1.7", port_no=5353),
        [
            "add element ip kubesvc eps-udp-1 { 198.19.0.13 . 53 . 0 : 198.18.1.7 . 5353 }",
            "add rule ip kubesvc pick-udp-1 meta l4proto udp dnat ip to",
            "198.19.0.13 . udp . 53 : goto pick-udp-1",
        ],
    ),
    (
        EMPTY,
        (),
        [
            "add element ip kubesvc no-endpoint-services { 198.19.0.12 . tcp . 80 : goto reject-chain }",
            "add element ip kubesvc no-endpoint-nodeports { tcp . 30012 : goto reject-chain }",
        ],
    ),
    (
        STICKY,
        eps("198.18.1.5", "198.18.1.6"),
        [
            "flags dynamic,timeout ; timeout 60s",
            "dnat ip to ip saddr map @aff-",
            "update @aff-",
            "add element ip kubesvc affinity-updates",
        ],
    ),
]


@pytest.mark.parametrize("svc,endpoints,want", CASES, ids=["udp", "no-endpoints", "affinity"])
def test_full_script_table(svc, endpoints, want) -> None:
    script = nft.full_script(nft.render(snapshot((svc, endpoints))))
    assert script.startswith("add table ip kubesvc\ndelete table ip kubesvc\n")
    for line in want:
        assert line in script, line
    # Dispatch is one map lookup, whatever the number of Services.
    assert "ip daddr . meta l4proto . th dport vmap @service-ips" in script


def _proxier():
    fake = FakeExec()
    return nft.NftablesProxier(fake, node_name="n1"), fake


def scripts(fake: FakeExec) -> list[str]:
    return [stdin or "" for argv, stdin in fake.commands("nft") if argv[:2] == ("nft", "-f")]


def test_local_policy_picks_among_local_endpoints_without_masquerade() -> None:
    local = port("local", "198.19.0.14", 80, node_port=30014, external_local=True)
    r = nft.render_service(local, eps("198.18.1.8", node="n1") + eps("198.18.1.9", node="n2"), "n1")
    assert r.elements[("service-nodeports", "tcp . 30014")] == "goto nppick-tcp-1"
    assert r.elements[("npeps-tcp-1", "30014 . 0")] == "198.18.1.8 . 8080"
    assert r.elements[("service-ips", "198.19.0.14 . tcp . 80")] == "goto pick-tcp-2"
    assert ("nodeport-masq", "tcp . 30014") not in r.elements


def test_one_endpoint_change_is_one_element() -> None:
    proxier, fake = _proxier()
    s1 = snapshot((WEB, eps("198.18.1.2", "198.18.1.3")), (OTHER, eps("198.18.1.9")))
    proxier.sync(s1, delta_between(snapshot(), s1))
    assert proxier.full_syncs == 1
    fake.calls.clear()
    s2 = snapshot((WEB, eps("198.18.1.2", "198.18.1.4")), (OTHER, eps("198.18.1.9")))
    proxier.sync(s2, delta_between(s1, s2))
    (script,) = scripts(fake)
    assert script.splitlines() == [
        "delete element ip kubesvc eps-tcp-2 { 198.19.0.10 . 80 . 1 }",
        "delete element ip kubesvc npeps-tcp-2 { 30080 . 1 }",
        "add element ip kubesvc eps-tcp-2 { 198.19.0.10 . 80 . 1 : 198.18.1.4 . 8080 }",
        "add element ip kubesvc npeps-tcp-2 { 30080 . 1 : 198.18.1.4 . 8080 }",
        "delete element ip kubesvc hairpin { 198.18.1.3 . 198.18.1.3 }",
        "add element ip kubesvc hairpin { 198.18.1.4 . 198.18.1.4 }",
    ]


def test_shared_pickers_are_counted() -> None:
    proxier, fake = _proxier()
    a, b = port("a", "198.19.0.30", 80), port("b", "198.19.0.31", 80)
    s1 = snapshot((a, eps("198.18.1.2")), (b, eps("198.18.1.3")))
    proxier.sync(s1, delta_between(snapshot(), s1))
    fake.calls.clear()
    s2 = snapshot((b, eps("198.18.1.3")))  # pick-tcp-1 is still used by b
    proxier.sync(s2, delta_between(s1, s2))
    assert "delete map ip kubesvc eps-tcp-1" not in scripts(fake)[0]
    fake.calls.clear()
    s3 = snapshot((b, eps("198.18.1.3", "198.18.1.4")))  # b moves to pick-tcp-2
    proxier.sync(s3, delta_between(s2, s3))
    (script,) = scripts(fake)
    assert script.splitlines()[0] == nft.picker_decl(("ip", "tcp", 2))[0]
    assert script.rstrip().endswith("delete map ip kubesvc eps-tcp-1")


def test_service_without_endpoints_moves_between_maps_and_back() -> None:
    proxier, fake = _proxier()
    s1 = snapshot((WEB, eps("198.18.1.2")))
    proxier.sync(s1, delta_between(snapshot(), s1))
    fake.calls.clear()
    s2 = snapshot((WEB, ()))
    proxier.sync(s2, delta_between(s1, s2))
    (script,) = scripts(fake)
    assert "delete element ip kubesvc service-ips { 198.19.0.10 . tcp . 80 }" in script
    assert (
        "add element ip kubesvc no-endpoint-services { 198.19.0.10 . tcp . 80 : goto reject-chain }"
        in script
    )
    assert "delete element ip kubesvc service-nodeports { tcp . 30080 }" in script
    assert (
        "add element ip kubesvc no-endpoint-nodeports { tcp . 30080 : goto reject-chain }" in script
    )
    assert script.rstrip().endswith("delete map ip kubesvc npeps-tcp-1")
    fake.calls.clear()
    proxier.sync(s1, delta_between(s2, s1))
    (script,) = scripts(fake)
    assert "add chain ip kubesvc pick-tcp-1" in script


def test_affinity_map_flushed_when_endpoints_change_and_removed_with_service() -> None:
    proxier, fake = _proxier()
    s1 = snapshot((STICKY, eps("198.18.1.5", "198.18.1.6")))
    proxier.sync(s1, delta_between(snapshot(), s1))
    fake.calls.clear()
    s2 = snapshot((STICKY, eps("198.18.1.5")))
    proxier.sync(s2, delta_between(s1, s2))
    (script,) = scripts(fake)
    aff = nft.aff_map(STICKY.name, 60)
    assert f"flush map ip kubesvc {aff}" in script
    fake.calls.clear()
    s3 = snapshot()
    proxier.sync(s3, delta_between(s2, s3))
    (script,) = scripts(fake)
    assert script.rstrip().endswith(f"delete map ip kubesvc {aff}")


def test_nothing_changed_writes_nothing_and_lost_table_is_rebuilt() -> None:
    proxier, fake = _proxier()
    s1 = snapshot((WEB, eps("198.18.1.2")))
    proxier.sync(s1, delta_between(snapshot(), s1))
    fake.calls.clear()
    proxier.sync(s1, delta_between(s1, s1))
    assert scripts(fake) == []
    fake.responder = lambda argv, stdin: (
        Result(argv, 1) if argv[:3] == ("nft", "list", "map") else None
    )
    proxier.sync(s1, delta_between(s1, s1))
    assert proxier.full_syncs == 2 and scripts(fake)[0].startswith(
        "add table ip kubesvc\ndelete table"
    )


def test_failure_forces_full_rewrite() -> None:
    fake = FakeExec(
        responder=lambda argv, stdin: (
            Result(argv, 1, "", "nope") if argv[:2] == ("nft", "-f") else None
        )
    )
    proxier = nft.NftablesProxier(fake)
    s1 = snapshot((WEB, eps("198.18.1.2")))
    with pytest.raises(Exception, match="nope"):
        proxier.sync(s1, delta_between(snapshot(), s1))
    fake.responder = None
    s2 = snapshot((WEB, eps("198.18.1.3")))
    proxier.sync(s2, delta_between(s1, s2))
    assert proxier.full_syncs == 1 and proxier.last_script.startswith("add table")
