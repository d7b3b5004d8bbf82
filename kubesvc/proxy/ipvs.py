"""IPVS mode: detection of kernel support, and the snapshot rendered as `ipvsadm-restore` text.

The seed says kube-proxy falls back to iptables when the kernel lacks IPVS
(today's kube-proxy exits instead). `ProxyServer` follows the seed: it calls
`ipvs_support()`, and when IPVS is missing runs the iptables mode and says
so loudly (a warning at start, `effectiveMode` in /healthz, the
`kubesvc_proxy_mode` metric).

Rendering follows kube-proxy's IPVS layout: one virtual server per
ClusterIP:port (and per external IP, and per node address for NodePorts),
one real server per endpoint, masquerading forwarding (`-m`), the Service's
scheduler (rr, lc, dh, sh, sed, nq), ClientIP affinity as persistence
(`-p timeout`). The ClusterIPs also go on a dummy interface (`kube-ipvs0`)
so that the kernel accepts packets for them; `ipvs_addresses()` lists them.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable

from kubesvc.proxy.model import Endpoint, ServicePort, Snapshot, SyncDelta, usable_endpoints
from kubesvc.proxy.netexec import Executor

log = logging.getLogger("kubesvc.proxy")

IPVS_SCHEDULERS = ("rr", "lc", "dh", "sh", "sed", "nq")
DUMMY_INTERFACE = "kube-ipvs0"
PROC_IP_VS = "/proc/net/ip_vs"


def ipvs_support(
    proc_path: str = PROC_IP_VS,
    modprobe: Callable[[], bool] | None = None,
) -> tuple[bool, str]:
    """(supported, why): IPVS is there when /proc/net/ip_vs exists or `modprobe -n ip_vs` works."""
    if os.path.exists(proc_path):
        return True, f"{proc_path} exists"
    if modprobe is None:

        def modprobe() -> bool:
            if shutil.which("modprobe") is None:
                return False
            probe = subprocess.run(
                ["modprobe", "-n", "ip_vs"], capture_output=True, timeout=10, check=False
            )
            return probe.returncode == 0

    if modprobe():
        return True, "the ip_vs module can be loaded"
    return False, f"{proc_path} is missing and the ip_vs module cannot be loaded"


def ipvs_scheduler(port: ServicePort, default: str) -> str:
    """The IPVS scheduler for a port: its annotation, else the node's; `random` has no IPVS twin."""
    wanted = port.scheduler or default
    return wanted if wanted in IPVS_SCHEDULERS else "rr"


def _flag(protocol: str) -> str:
    return {"TCP": "-t", "UDP": "-u", "SCTP": "--sctp-service"}[protocol]


def _virtual(
    flag: str, vip: str, port_no: int, port: ServicePort, scheduler: str, eps: Iterable[Endpoint]
) -> list[str]:
    persist = f" -p {port.affinity_timeout_s}" if port.affinity_timeout_s else ""
    lines = [f"-A {flag} {vip}:{port_no} -s {scheduler}{persist}"]
    lines.extend(f"-a {flag} {vip}:{port_no} -r {ep} -m -w 1" for ep in eps)
    return lines


def render(
    snapshot: Snapshot,
    node_addresses: Iterable[str] = (),
    default_scheduler: str = "rr",
    node_name: str | None = None,
) -> str:
    """The whole IPVS table as `ipvsadm-restore` input (IPv4 only; sorted, so it is stable)."""
    lines: list[str] = []
    nodes = [a for a in node_addresses if ":" not in a]
    for name in sorted(snapshot.services):
        port = snapshot.services[name]
        flag = _flag(port.protocol)
        scheduler = ipvs_scheduler(port, default_scheduler)
        eps = tuple(e for e in snapshot.endpoints_of(name) if ":" not in e.ip)
        cluster = usable_endpoints(port, eps, node_name=node_name, external=False)
        external = usable_endpoints(port, eps, node_name=node_name, external=True)
        for vip in port.cluster_ips:
            if ":" not in vip:
                lines.extend(_virtual(flag, vip, port.port, port, scheduler, cluster))
        for vip in port.external_ips + port.load_balancer_ips:
            if ":" not in vip:
                lines.extend(_virtual(flag, vip, port.port, port, scheduler, external))
        if port.node_port:
            for addr in nodes:
                lines.extend(_virtual(flag, addr, port.node_port, port, scheduler, external))
    return "\n".join(lines) + ("\n" if lines else "")


def ipvs_addresses(snapshot: Snapshot) -> list[str]:
    """The addresses the dummy interface must hold (every ClusterIP, external and LB IP)."""
    return sorted({a for p in snapshot.services.values() for a in p.addresses if ":" not in a})


class IpvsProxier:
    """Applies the rendered table with `ipvsadm -C` + `ipvsadm-restore` (whole table each sync).

    Not atomic (IPVS has no transaction); never exercised against a kernel
    here, since this kernel has no IPVS: `ProxyServer` falls back to iptables.
    """

    mode = "ipvs"

    def __init__(
        self,
        executor: Executor,
        node_addresses: Iterable[str] = (),
        scheduler: str = "rr",
        node_name: str | None = None,
    ) -> None:
        self.exec = executor
        self.node_addresses = tuple(node_addresses)
        self.scheduler = scheduler
        self.node_name = node_name
        self._last = ""

    def sync(self, snapshot: Snapshot, _delta: SyncDelta) -> None:
        text = render(snapshot, self.node_addresses, self.scheduler, self.node_name)
        if text == self._last:
            return
        self.exec.run(["ipvsadm", "-C"])
        if text:
            self.exec.run(["ipvsadm-restore"], stdin=text)
        self._last = text

    def close(self) -> None:
        """Leave the table in place; `cleanup()` removes it."""


def cleanup(executor: Executor) -> list[str]:
    """Clear the IPVS table when there is one."""
    if shutil.which("ipvsadm") is None or not ipvs_support()[0]:
        return []
    executor.run(["ipvsadm", "-C"], check=False)
    return ["ipvs table"]
