"""The iptables mode's rendered rules: exact text, tables of services, and traced packets."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kubesvc.proxy import iptables as ipt
from kubesvc.proxy.model import ServicePortName
from kubesvc.proxy.netexec import FakeExec, Result
from tests.proxy.iptables_trace import Outcome, Packet, Tracer
from tests.proxy.kernel_fixtures import delta_between, eps, port, snapshot

NODE = "198.18.0.1"
WEB = port("web", "198.19.0.10", 80, node_port=30080)
STICKY = port("sticky", "198.19.0.11", 80, affinity_s=60)
EMPTY = port("empty", "198.19.0.12", 80, node_port=30012)
DNS = port("dns", "198.19.0.13", 53, "UDP")
LOCAL = port("local", "198.19.0.14", 80, node_port=30014, external_local=True)


def test_chain_names_follow_kube_proxy_hashing() -> None:
    spn = ServicePortName("ns1", "svc1", "p80", "TCP")
    # kube-proxy: base32(sha256("ns1/svc1:p80" + "tcp"))[:16]
    import base64
    import hashlib

    want = base64.b32encode(hashlib.sha256(b"ns1/svc1:p80tcp").digest()).decode()[:16]
    assert ipt.svc_chain(spn) == "KUBE-SVC-" + want
    assert len(ipt.svc_chain(spn)) <= ipt.MAX_CHAIN_NAME
    ep = eps("198.18.1.2")[0]
    assert len(ipt.sep_chain(spn, ep)) <= ipt.MAX_CHAIN_NAME
    assert ipt.sep_chain(spn, ep) != ipt.sep_chain(spn, eps("198.18.1.3")[0])


def test_one_service_exact_text() -> None:
    p = port("a", "198.19.0.2", 80)
    r = ipt.render_service(p, eps("198.18.1.2", "198.18.1.3"), None)
    svc = ipt.svc_chain(p.name)
    sep2 = ipt.sep_chain(p.name, eps("198.18.1.2")[0])
    sep3 = ipt.sep_chain(p.name, eps("198.18.1.3")[0])
    assert r.nat_services == (
        f'-A KUBE-SERVICES -m comment --comment "default/a: cluster IP" '
        f"-d 198.19.0.2/32 -p tcp -m tcp --dport 80 -j {svc}",
    )
    assert r.nat_chains[svc] == (
        f'-A {svc} -m comment --comment "default/a: -> 198.18.1.2:8080" '
        f"-m statistic --mode random --probability 0.5000000000 -j {sep2}",
        f'-A {svc} -m comment --comment "default/a: -> 198.18.1.3:8080" -j {sep3}',
    )
    assert r.nat_chains[sep2] == (
        f'-A {sep2} -m comment --comment "default/a:" -s 198.18.1.2/32 -j KUBE-MARK-MASQ',
        f'-A {sep2} -m comment --comment "default/a:" -p tcp -m tcp '
        "-j DNAT --to-destination 198.18.1.2:8080",
    )
    assert r.filter_services == () and r.nat_nodeports == ()


# (service port, endpoints, substrings the nat text must hold, substrings the filter text must hold)
CASES = [
    (
        WEB,
        eps("198.18.1.2", "198.18.1.3", "198.18.1.4"),
        [
            "--probability 0.3333333333",
            "--probability 0.5000000000",
            "-A KUBE-NODEPORTS",
            "-p tcp -m tcp --dport 30080 -j KUBE-EXT-",
            "-j KUBE-MARK-MASQ",
        ],
        [],
    ),
    (
        STICKY,
        eps("198.18.1.5", "198.18.1.6"),
        ["--rcheck --seconds 60 --reap -j KUBE-SEP-", "-m recent --name KUBE-SEP-", "--set -m tcp"],
        [],
    ),
    (
        EMPTY,
        (),
        [],
        [
            "-d 198.19.0.12/32 -p tcp -m tcp --dport 80 -j REJECT",
            "-A KUBE-EXTERNAL-SERVICES",
            "--dst-type LOCAL -p tcp -m tcp --dport 30012 -j REJECT",
        ],
    ),
    (
        DNS,
        eps("198.18.1.7", port_no=5353),
        ["-p udp -m udp --dport 53", "--to-destination 198.18.1.7:5353"],
        [],
    ),
    (
        LOCAL,
        eps("198.18.1.8", node="n1") + eps("198.18.1.9", node="n2"),
        ["-j KUBE-SVL-", "KUBE-NODEPORTS"],
        [],
    ),
]


@pytest.mark.parametrize(
    "svc,endpoints,nat_has,filter_has",
    CASES,
    ids=lambda v: getattr(v, "name", None) and v.name.name,
)
def test_rendered_rules_table(svc, endpoints, nat_has, filter_has) -> None:
    ruleset = ipt.render(snapshot((svc, endpoints)), node_name="n1")
    text = ipt.full_restore_text(ruleset)
    nat = text[text.index("*nat") :]
    filt = text[text.index("*filter") : text.index("*nat")]
    for want in nat_has:
        assert want in nat, want
    for want in filter_has:
        assert want in filt, want
    for chain in ruleset.nat:
        assert len(chain) <= ipt.MAX_CHAIN_NAME
    # The nodeports jump is the last rule of KUBE-SERVICES.
    assert ruleset.nat["KUBE-SERVICES"][-1] == ipt.NODEPORTS_LAST


def test_local_policy_keeps_only_local_endpoints_for_external_traffic() -> None:
    r = ipt.render_service(LOCAL, eps("198.18.1.8", node="n1") + eps("198.18.1.9", node="n2"), "n1")
    svl = ipt.svl_chain(LOCAL.name)
    assert len(r.nat_chains[svl]) == 1 and "198.18.1.8" in r.nat_chains[svl][0]
    assert len(r.nat_chains[ipt.svc_chain(LOCAL.name)]) == 2


# ---------------------------------------------------------------- packet tracer


def tracer(*items, recent=None) -> Tracer:
    text = ipt.full_restore_text(ipt.render(snapshot(*items), node_name="n1"))
    return Tracer(text, ipt.jump_rule_lines(), local_addresses=[NODE], recent=recent)


def test_trace_cluster_ip_spreads_evenly() -> None:
    t = tracer((WEB, eps("198.18.1.2", "198.18.1.3", "198.18.1.4")))
    out = t.trace(Packet("198.18.0.1", "198.19.0.10", 80), local_origin=True)
    got = {(o.dst, o.dport): p for o, p in out.items()}
    assert set(got) == {("198.18.1.2", 8080), ("198.18.1.3", 8080), ("198.18.1.4", 8080)}
    for p in got.values():
        assert p == pytest.approx(1 / 3)
    assert all(o.verdict == "ACCEPT" and not o.masquerade for o in out)


def test_trace_other_port_and_address_untouched() -> None:
    t = tracer((WEB, eps("198.18.1.2")))
    out = t.trace(Packet("198.18.0.1", "198.19.0.10", 81), local_origin=True)
    assert out == {Outcome("ACCEPT", "198.19.0.10", 81): 1.0}
    out = t.trace(Packet("198.18.0.1", "198.19.0.99", 80), local_origin=True)
    assert out == {Outcome("ACCEPT", "198.19.0.99", 80): 1.0}


def test_trace_no_endpoints_rejected_in_filter() -> None:
    t = tracer((EMPTY, ()))
    assert t.trace(Packet("198.18.0.1", "198.19.0.12", 80), local_origin=True) == {
        Outcome("REJECT", "198.19.0.12", 80): 1.0
    }
    assert t.trace(Packet("198.18.1.50", "198.19.0.12", 80), local_origin=False) == {
        Outcome("REJECT", "198.19.0.12", 80): 1.0
    }
    # Its NodePort too (INPUT, on the node's address).
    assert t.trace(Packet("198.18.1.50", NODE, 30012), local_origin=False) == {
        Outcome("REJECT", NODE, 30012): 1.0
    }


def test_trace_nodeport_masquerades() -> None:
    t = tracer((WEB, eps("198.18.1.2", "198.18.1.3")))
    out = t.trace(Packet("198.18.1.50", NODE, 30080), local_origin=False)
    assert {(o.dst, o.masquerade) for o in out} == {("198.18.1.2", True), ("198.18.1.3", True)}
    assert sum(out.values()) == pytest.approx(1.0)


def test_trace_hairpin_masquerades_only_the_pod_itself() -> None:
    t = tracer((WEB, eps("198.18.1.2")))
    out = t.trace(Packet("198.18.1.2", "198.19.0.10", 80), local_origin=False)
    assert out == {Outcome("ACCEPT", "198.18.1.2", 8080, True): 1.0}
    out = t.trace(Packet("198.18.1.3", "198.19.0.10", 80), local_origin=False)
    assert out == {Outcome("ACCEPT", "198.18.1.2", 8080, False): 1.0}


def test_trace_affinity_sticks_to_the_recent_endpoint() -> None:
    two = eps("198.18.1.5", "198.18.1.6")
    sep6 = ipt.sep_chain(STICKY.name, two[1])
    t = tracer((STICKY, two), recent={sep6: {"198.18.1.50"}})
    out = t.trace(Packet("198.18.1.50", "198.19.0.11", 80), local_origin=False)
    assert out == {Outcome("ACCEPT", "198.18.1.6", 8080, False, (sep6,)): 1.0}
    # A new client is balanced, and its choice is recorded in that endpoint's list.
    out = t.trace(Packet("198.18.1.51", "198.19.0.11", 80), local_origin=False)
    assert {o.recent_set for o in out} == {(ipt.sep_chain(STICKY.name, two[0]),), (sep6,)}


def test_trace_udp() -> None:
    t = tracer((DNS, eps("198.18.1.7", port_no=5353)))
    out = t.trace(Packet("198.18.1.50", "198.19.0.13", 53, "udp"), local_origin=False)
    assert out == {Outcome("ACCEPT", "198.18.1.7", 5353): 1.0}
    out = t.trace(Packet("198.18.1.50", "198.19.0.13", 53, "tcp"), local_origin=False)
    assert out == {Outcome("ACCEPT", "198.19.0.13", 53): 1.0}


# ------------------------------------------------------------- syncs on a fake


def _proxier() -> tuple[ipt.IptablesProxier, FakeExec]:
    fake = FakeExec()
    return ipt.IptablesProxier(fake, node_name="n1"), fake


def restores(fake: FakeExec) -> list[str]:
    return [stdin or "" for argv, stdin in fake.commands("iptables-restore")]


def test_first_sync_is_full_with_canary_and_jumps() -> None:
    proxier, fake = _proxier()
    s1 = snapshot((WEB, eps("198.18.1.2")), (EMPTY, ()))
    proxier.sync(s1, delta_between(snapshot(), s1))
    (text,) = restores(fake)
    assert "*mangle\n:KUBE-PROXY-CANARY - [0:0]" in text
    assert ":KUBE-SERVICES - [0:0]" in text
    # The jumps the (empty) iptables-save lacks are inserted by the restore itself, not by
    # one `iptables -C`/`-I` run each (every run copies the whole table in and out).
    inserts = [line for line in text.splitlines() if line.startswith("-I ")]
    assert len(inserts) == len(ipt.JUMP_RULES)
    assert "-I PREROUTING 1 -m comment --comment kubesvc -j KUBE-SERVICES" in inserts
    assert not [a for a, _ in fake.commands("iptables") if "-C" in a or "-I" in a]
    assert proxier.full_syncs == 1


# iptables-legacy-save keeps the matches in order; iptables-nft-save prints the comment last.
SAVED_JUMPS_LEGACY = """*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -m comment --comment kubesvc -j KUBE-SERVICES
-A OUTPUT -m comment --comment kubesvc -j KUBE-SERVICES
-A POSTROUTING -m comment --comment kubesvc -j KUBE-POSTROUTING
COMMIT
*filter
-A INPUT -m comment --comment kubesvc -m conntrack --ctstate NEW -j KUBE-EXTERNAL-SERVICES
-A FORWARD -m comment --comment kubesvc -j KUBE-FORWARD
-A FORWARD -m comment --comment kubesvc -m conntrack --ctstate NEW -j KUBE-EXTERNAL-SERVICES
-A FORWARD -m comment --comment kubesvc -m conntrack --ctstate NEW -j KUBE-SERVICES
-A OUTPUT -m comment --comment kubesvc -m conntrack --ctstate NEW -j KUBE-SERVICES
COMMIT
"""


def test_jumps_already_present_are_not_inserted_again() -> None:
    assert ipt.missing_jump_lines(SAVED_JUMPS_LEGACY) == {}
    nft = SAVED_JUMPS_LEGACY.replace(
        "-m comment --comment kubesvc -m conntrack --ctstate NEW",
        "-m conntrack --ctstate NEW -m comment --comment kubesvc",
    )
    assert ipt.missing_jump_lines(nft) == {}
    # Another table's rule, or one without our comment, does not count.
    partial = SAVED_JUMPS_LEGACY.replace(
        "-A OUTPUT -m comment --comment kubesvc -j KUBE-SERVICES\n", "-A OUTPUT -j KUBE-SERVICES\n"
    )
    assert ipt.missing_jump_lines(partial) == {
        "nat": ["-I OUTPUT 1 -m comment --comment kubesvc -j KUBE-SERVICES"]
    }
    assert sum(map(len, ipt.missing_jump_lines(None).values())) == len(ipt.JUMP_RULES)


def test_partial_sync_writes_only_the_changed_chains() -> None:
    proxier, fake = _proxier()
    other = port("other", "198.19.0.20", 80)
    s1 = snapshot((WEB, eps("198.18.1.2", "198.18.1.3")), (other, eps("198.18.1.9")))
    proxier.sync(s1, delta_between(snapshot(), s1))
    fake.calls.clear()
    s2 = snapshot((WEB, eps("198.18.1.2", "198.18.1.4")), (other, eps("198.18.1.9")))
    proxier.sync(s2, delta_between(s1, s2))
    (text,) = restores(fake)
    assert proxier.partial_syncs == 1
    declared = {line[1:].split()[0] for line in text.splitlines() if line.startswith(":")}
    gone = ipt.sep_chain(WEB.name, eps("198.18.1.3")[0])
    new = ipt.sep_chain(WEB.name, eps("198.18.1.4")[0])
    assert declared == {ipt.svc_chain(WEB.name), gone, new}
    assert f"-X {gone}" in text
    assert ipt.svc_chain(other.name) not in text and "KUBE-SERVICES" not in text


def test_removed_service_chains_are_deleted_and_dispatch_rewritten() -> None:
    proxier, fake = _proxier()
    s1 = snapshot((WEB, eps("198.18.1.2")))
    proxier.sync(s1, delta_between(snapshot(), s1))
    fake.calls.clear()
    s2 = snapshot()
    proxier.sync(s2, delta_between(s1, s2))
    (text,) = restores(fake)
    assert f"-X {ipt.svc_chain(WEB.name)}" in text and f"-X {ipt.ext_chain(WEB.name)}" in text
    assert ":KUBE-SERVICES - [0:0]" in text and ":KUBE-NODEPORTS - [0:0]" in text


def test_failure_then_full_resync_and_canary_loss_forces_full() -> None:
    fail = {"on": True}

    def responder(argv, stdin):
        if argv[0] == "iptables-restore" and fail["on"]:
            return Result(argv, 1, "", "boom")
        return None

    fake = FakeExec(responder=responder)
    proxier = ipt.IptablesProxier(fake)
    s1 = snapshot((WEB, eps("198.18.1.2")))
    with pytest.raises(Exception, match="boom"):
        proxier.sync(s1, delta_between(snapshot(), s1))
    fail["on"] = False
    s2 = snapshot((WEB, eps("198.18.1.3")))
    proxier.sync(s2, delta_between(s1, s2))
    assert proxier.full_syncs == 1 and "KUBE-PROXY-CANARY" in proxier.last_restore
    # Someone flushed the tables: the canary is gone, so the next sync writes everything.
    fake.responder = lambda argv, stdin: (
        Result(argv, 1) if argv[:5] == ("iptables", "-w", "-t", "mangle", "-S") else None
    )
    proxier.sync(s2, delta_between(s2, s2))
    assert proxier.full_syncs == 2


def test_stale_udp_endpoints_are_cleared_from_conntrack() -> None:
    proxier, fake = _proxier()
    s1 = snapshot((DNS, eps("198.18.1.7", "198.18.1.8", port_no=5353)))
    proxier.sync(s1, delta_between(snapshot(), s1))
    fake.calls.clear()
    s2 = snapshot((DNS, eps("198.18.1.7", port_no=5353)))
    proxier.sync(s2, delta_between(s1, s2))
    assert [a for a, _ in fake.commands("conntrack")] == [
        ("conntrack", "-D", "-p", "udp", "--orig-dst", "198.19.0.13", "--dst-nat", "198.18.1.8")
    ]


def test_cleanup_removes_jumps_and_our_chains() -> None:
    save = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-X - [0:0]\nCOMMIT\n"
    deletes = {"n": 0}

    def responder(argv, stdin):
        if argv[0] == "iptables-save":
            return Result(argv, 0, save)
        if "-D" in argv:
            deletes["n"] += 1
            return Result(argv, 0 if deletes["n"] <= 1 else 1)
        return None

    fake = FakeExec(responder=responder)
    removed = ipt.cleanup(fake)
    (text,) = restores(fake)
    assert "-X KUBE-SERVICES" in text and "-X KUBE-SVC-X" in text and "PREROUTING" not in text
    assert "nat chain KUBE-SVC-X" in removed


def test_full_sync_deletes_chains_left_by_an_earlier_run() -> None:
    save = "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-LEFTOVER - [0:0]\nCOMMIT\n"
    fake = FakeExec(
        responder=lambda argv, stdin: Result(argv, 0, save) if argv[0] == "iptables-save" else None
    )
    proxier = ipt.IptablesProxier(fake)
    s1 = snapshot((WEB, eps("198.18.1.2")))
    proxier.sync(s1, delta_between(snapshot(), s1))
    (text,) = restores(fake)
    assert ":KUBE-SVC-LEFTOVER - [0:0]" in text and "-X KUBE-SVC-LEFTOVER" in text
    assert text.count("*nat") == 1  # one commit for the table


def test_backend_choice() -> None:
    def installed(*names: str) -> Callable[[str], str | None]:
        return lambda tool: f"/usr/sbin/{tool}" if tool in names else None

    everything = installed("iptables", *ipt.LEGACY_TOOLS)
    assert ipt.choose_backend("auto", everything)[0] is True
    legacy, why = ipt.choose_backend("auto", installed("iptables", "iptables-legacy"))
    assert legacy is False and "iptables-legacy-restore" in why
    assert ipt.choose_backend("nft", everything)[0] is False
    assert ipt.choose_backend("legacy", installed())[0] is True  # as asked, even if it will fail
    with pytest.raises(ValueError):
        ipt.choose_backend("xtables", everything)


def test_backend_flag_reaches_the_config() -> None:
    from kubesvc.cli import _proxy_config, build_parser
    from kubesvc.proxy.server import ProxyConfig

    args = build_parser().parse_args(["proxy", "--iptables-backend", "nft"])
    assert _proxy_config(args).iptables_backend == "nft"
    assert _proxy_config(build_parser().parse_args(["proxy"])).iptables_backend == "auto"
    with pytest.raises(ValueError):
        ProxyConfig(iptables_backend="xtables").check()


def test_large_clusters_drop_the_per_endpoint_comments() -> None:
    # kube-proxy's large-cluster mode: above LARGE_CLUSTER_ENDPOINTS endpoints in all, the
    # KUBE-SVC-* and KUBE-SEP-* rules carry no comment; KUBE-SERVICES keeps its comments.
    small = ipt.render(snapshot((WEB, eps("198.18.1.2"))))
    n = ipt.LARGE_CLUSTER_ENDPOINTS + 1
    many = tuple(f"198.18.{1 + i // 250}.{1 + i % 250}" for i in range(n))
    big = ipt.render(snapshot((WEB, eps(*many))))
    svc = ipt.svc_chain(WEB.name)
    assert all("-m comment" in r for r in small.nat[svc])
    assert not any(
        "-m comment" in r
        for c, rs in big.nat.items()
        if c != "KUBE-SERVICES" and c.startswith(("KUBE-SVC-", "KUBE-SEP-"))
        for r in rs
    )
    assert all("-m comment" in r for r in big.nat["KUBE-SERVICES"])
    assert len(big.nat[svc]) == n


def test_partial_sync_rerenders_everything_when_crossing_the_threshold() -> None:
    proxier, fake = _proxier()
    other = port("other", "198.19.0.20", 80)
    s1 = snapshot((WEB, eps("198.18.1.2")), (other, eps("198.18.1.9")))
    proxier.sync(s1, delta_between(snapshot(), s1))
    n = ipt.LARGE_CLUSTER_ENDPOINTS + 1
    many = tuple(f"198.18.{1 + i // 250}.{1 + i % 250}" for i in range(n))
    s2 = snapshot((WEB, eps(*many)), (other, eps("198.18.1.9")))
    fake.calls.clear()
    proxier.sync(s2, delta_between(s1, s2))
    assert proxier.partial_syncs == 1
    (text,) = restores(fake)
    other_svc = ipt.svc_chain(other.name)
    # The untouched service's chains were rewritten without their comments too.
    assert f"-A {other_svc} -j " in text
    assert "-m comment" not in "\n".join(
        line for line in text.splitlines() if line.startswith(("-A KUBE-SVC-", "-A KUBE-SEP-"))
    )
