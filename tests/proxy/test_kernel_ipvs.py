"""IPVS: detection, the fallback to iptables (said loudly), and the rendered ipvsadm-restore text."""

from __future__ import annotations

import json
import logging
import shutil

import aiohttp
import pytest

from kubesvc.proxy import ipvs
from kubesvc.proxy.netexec import FakeExec
from kubesvc.proxy.server import MemorySource, ProxyConfig, ProxyServer, choose_mode
from tests.proxy.kernel_fixtures import eps, port, snapshot
from tests.proxy.netns import Node, require_root_tools, sh


def test_detection(tmp_path) -> None:
    present = tmp_path / "ip_vs"
    present.write_text("IP Virtual Server version 1.2.1\n")
    assert ipvs.ipvs_support(str(present), modprobe=lambda: False)[0] is True
    missing = str(tmp_path / "nope")
    assert ipvs.ipvs_support(missing, modprobe=lambda: True) == (
        True,
        "the ip_vs module can be loaded",
    )
    ok, why = ipvs.ipvs_support(missing, modprobe=lambda: False)
    assert not ok and "missing" in why


def test_this_kernel_has_no_ipvs_so_ipvs_falls_back() -> None:
    # The machine these tests run on has no IPVS; the seed's rule applies.
    mode, why = choose_mode("ipvs")
    if ipvs.ipvs_support()[0]:
        pytest.skip("this kernel has IPVS")
    assert mode == "iptables" and "falling back to iptables" in why


def test_choose_mode_is_the_identity_for_other_modes() -> None:
    for mode in ("userspace", "iptables", "nftables"):
        assert choose_mode(mode, lambda: (False, "x"))[0] == mode
    assert choose_mode("ipvs", lambda: (True, "ok")) == ("ipvs", "ok")


WEB = port("web", "198.19.0.10", 80, node_port=30080)
STICKY = port("sticky", "198.19.0.11", 80, affinity_s=600)
DNS = port("dns", "198.19.0.13", 53, "UDP")


@pytest.mark.parametrize("scheduler", ["rr", "lc", "dh", "sh", "sed", "nq"])
def test_render_schedulers(scheduler: str) -> None:
    p = port("s", "198.19.0.30", 80, scheduler=scheduler)
    text = ipvs.render(snapshot((p, eps("198.18.1.2", "198.18.1.3"))))
    assert text == (
        f"-A -t 198.19.0.30:80 -s {scheduler}\n"
        "-a -t 198.19.0.30:80 -r 198.18.1.2:8080 -m -w 1\n"
        "-a -t 198.19.0.30:80 -r 198.18.1.3:8080 -m -w 1\n"
    )


def test_render_table() -> None:
    text = ipvs.render(
        snapshot(
            (WEB, eps("198.18.1.2")),
            (STICKY, eps("198.18.1.5")),
            (DNS, eps("198.18.1.7", port_no=5353)),
            (port("empty", "198.19.0.12", 80), ()),
            (port("rand", "198.19.0.40", 80, scheduler="random"), eps("198.18.1.8")),
        ),
        node_addresses=["198.18.0.1"],
        default_scheduler="lc",
    )
    lines = text.splitlines()
    assert "-A -u 198.19.0.13:53 -s lc" in lines
    assert "-a -u 198.19.0.13:53 -r 198.18.1.7:5353 -m -w 1" in lines
    assert "-A -t 198.19.0.11:80 -s lc -p 600" in lines  # ClientIP affinity = persistence
    assert "-A -t 198.18.0.1:30080 -s lc" in lines  # a NodePort: a virtual server per node address
    assert "-a -t 198.18.0.1:30080 -r 198.18.1.2:8080 -m -w 1" in lines
    assert "-A -t 198.19.0.12:80 -s lc" in lines  # no endpoints: no real servers
    assert not any(line.startswith("-a -t 198.19.0.12:80") for line in lines)
    assert "-A -t 198.19.0.40:80 -s rr" in lines  # IPVS has no "random"
    assert ipvs.ipvs_addresses(snapshot((WEB, ()), (DNS, ()))) == ["198.19.0.10", "198.19.0.13"]


def test_ipvs_proxier_on_a_fake() -> None:
    fake = FakeExec()
    proxier = ipvs.IpvsProxier(fake)
    s = snapshot((WEB, eps("198.18.1.2")))
    from kubesvc.proxy.model import SyncDelta

    proxier.sync(s, SyncDelta())
    proxier.sync(s, SyncDelta())  # unchanged: nothing run
    assert [c[0] for c in fake.calls] == [("ipvsadm", "-C"), ("ipvsadm-restore",)]


SERVICE = {
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"clusterIP": "198.19.0.10", "ports": [{"port": 80, "targetPort": 8080}]},
}
ENDPOINTS = {
    "kind": "Endpoints",
    "metadata": {"name": "web", "namespace": "default"},
    "subsets": [{"addresses": [{"ip": "198.18.0.11"}], "ports": [{"port": 8080}]}],
}


async def test_ipvs_request_runs_iptables_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    require_root_tools("iptables-restore")
    with Node() as node:
        config = ProxyConfig(
            mode="ipvs", netns=node.ns, healthz_port=0, metrics_port=0, node_name="n1"
        )
        server = ProxyServer(
            config, MemorySource([SERVICE, ENDPOINTS]), ipvs_probe=lambda: (False, "no ip_vs")
        )
        with caplog.at_level(logging.WARNING, logger="kubesvc.proxy"):
            await server.start()
        try:
            await server.wait_synced(10)
            assert any("falling back to iptables" in r.getMessage() for r in caplog.records)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{server.healthz_port}/healthz") as r:
                    body = json.loads(await r.text())
                async with http.get(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
                    metrics = await r.text()
            assert body["mode"] == "ipvs" and body["effectiveMode"] == "iptables"
            assert "no ip_vs" in body["details"]
            assert 'kubesvc_proxy_mode{effective="iptables",requested="ipvs"} 1.0' in metrics
            # The backend is `auto` (iptables-legacy where installed): look in both.
            saved = "".join(
                sh(save, "-t", "nat", netns=node.ns)
                for save in ("iptables-save", "iptables-legacy-save")
                if shutil.which(save)
            )
            assert "198.19.0.10/32" in saved
        finally:
            await server.close()
        from kubesvc.proxy.server import cleanup

        removed = cleanup(node.ns)
        assert any("KUBE-SERVICES" in r for r in removed)
        for save in ("iptables-save", "iptables-legacy-save"):
            if shutil.which(save):
                assert "KUBE-" not in sh(save, netns=node.ns)
