"""Kernel-mode sync benchmark: `python bench/sync.py [--services 1000,10000] [--endpoints 3,10]`.

Root only. For nftables and iptables mode (iptables-nft, the system's default
here, and iptables-legacy), in a network namespace of its own
(`kst-bench-…`, deleted at the end; the host's rules are never touched):
- full: the first sync of N Services × E endpoints (everything written);
- resync: a later full sync over those rules (hourly, or after a failure);
- one-endpoint: then one endpoint of one Service replaced (a partial sync),
  median of several changes.
Rule generation (`render_s`) and apply (`apply_s`, the iptables-restore / nft
run) are measured separately; `total_s` is the whole `sync()` (with the
canary / table check). One JSON line per figure.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubesvc.proxy import iptables, nftables
from kubesvc.proxy.model import (
    Endpoint,
    ServicePort,
    ServicePortName,
    Snapshot,
    SyncDelta,
)
from kubesvc.proxy.netexec import NetExec

SERVICE_BASE = int(ipaddress.ip_address("198.19.0.0"))
POD_BASE = int(ipaddress.ip_address("198.18.1.0"))
POD_SPAN = 60000  # pod addresses are reused across Services: 198.18.1.0 – 198.18.235.x


def build(n_services: int, n_eps: int) -> Snapshot:
    services: dict[ServicePortName, ServicePort] = {}
    endpoints: dict[ServicePortName, tuple[Endpoint, ...]] = {}
    for i in range(n_services):
        name = ServicePortName("bench", f"svc-{i}", "", "TCP")
        ip = str(ipaddress.ip_address(SERVICE_BASE + 1 + i))
        services[name] = ServicePort(name, (ip,), 80, node_port=30000 + i % 2700)
        endpoints[name] = tuple(
            Endpoint(str(ipaddress.ip_address(POD_BASE + (i * n_eps + e) % POD_SPAN)), 8080)
            for e in range(n_eps)
        )
    return Snapshot(services, endpoints, 1)


def change_one(snap: Snapshot, i: int, round_no: int) -> tuple[Snapshot, SyncDelta]:
    name = ServicePortName("bench", f"svc-{i}", "", "TCP")
    eps = list(snap.endpoints[name])
    eps[0] = Endpoint(str(ipaddress.ip_address(POD_BASE + POD_SPAN + 100 + round_no)), 8080)
    endpoints = dict(snap.endpoints)
    endpoints[name] = tuple(eps)
    new = Snapshot(snap.services, endpoints, snap.generation + 1)
    return new, SyncDelta(endpoints_changed=frozenset({name}))


def run(mode: str, n_services: int, n_eps: int, rounds: int) -> list[dict[str, object]]:
    ns = f"kst-bench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    out: list[dict[str, object]] = []
    try:
        executor = NetExec(ns, timeout_s=600)
        proxier: iptables.IptablesProxier | nftables.NftablesProxier
        if mode.startswith("iptables"):
            proxier = iptables.IptablesProxier(executor, legacy=mode == "iptables-legacy")
        else:
            proxier = nftables.NftablesProxier(executor)
        snap = build(n_services, n_eps)
        added = SyncDelta(added=frozenset(snap.services))
        started = time.perf_counter()
        proxier.sync(snap, added)
        total = time.perf_counter() - started
        base = {"mode": mode, "services": n_services, "endpoints": n_eps}
        out.append(
            {**base, "figure": "full", **_rounded(proxier.timings), "total_s": round(total, 4)}
        )
        # A later full sync (periodic, or after a failure) over the rules already there.
        proxier.needs_full = True
        started = time.perf_counter()
        proxier.sync(snap, SyncDelta())
        total = time.perf_counter() - started
        out.append(
            {**base, "figure": "resync", **_rounded(proxier.timings), "total_s": round(total, 4)}
        )
        figures: dict[str, list[float]] = {"render_s": [], "apply_s": [], "total_s": []}
        for r in range(rounds):
            snap, delta = change_one(snap, (r * 7919) % n_services, r)
            started = time.perf_counter()
            proxier.sync(snap, delta)
            figures["total_s"].append(time.perf_counter() - started)
            figures["render_s"].append(proxier.timings["render_s"])
            figures["apply_s"].append(proxier.timings["apply_s"])
        medians = {k: round(statistics.median(v), 4) for k, v in figures.items()}
        out.append({**base, "figure": "one-endpoint", "rounds": rounds, **medians})
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    return out


def _rounded(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", default="1000,10000")
    parser.add_argument("--endpoints", default="3,10")
    parser.add_argument("--modes", default="nftables,iptables-legacy,iptables")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/sync.py needs root (it works in a network namespace)")
    for mode in args.modes.split(","):
        for n_services in map(int, args.services.split(",")):
            for n_eps in map(int, args.endpoints.split(",")):
                for line in run(mode, n_services, n_eps, args.rounds):
                    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
