"""iptables mode: the snapshot rendered as kube-proxy's chains, applied with one iptables-restore.

Render, then apply (see /work/shared/style.md):

- `render_service()` turns one service port and its endpoints into its
  chains (KUBE-SVC-*, KUBE-SVL-*, KUBE-EXT-*, KUBE-SEP-*) and its lines in the
  shared dispatch chains (KUBE-SERVICES, KUBE-NODEPORTS, and the filter
  table's REJECTs for ports without endpoints). Pure.
- `restore_text()` writes chains as `iptables-restore --noflush` input: a
  chain that is declared is flushed and rewritten, a chain that is not
  declared is left alone, so a partial sync writes only what changed.
- `IptablesProxier.sync()` keeps what it last applied, writes the changed
  chains (all of them on a full sync), deletes the chains that went away,
  and falls back to a full sync after a failure, periodically, and when its
  canary chain has vanished (someone flushed the tables).

Jumps from the built-in chains are not in the restore text (with --noflush an
`-A PREROUTING` would add one more each time); they are ensured with
`iptables -C || -I` on full syncs.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from kubesvc.proxy.model import (
    Endpoint,
    ServicePort,
    ServicePortName,
    Snapshot,
    SyncDelta,
    usable_endpoints,
)
from kubesvc.proxy.netexec import Executor

log = logging.getLogger("kubesvc.proxy")

MASQ_MARK = 0x4000
MAX_CHAIN_NAME = 28  # iptables refuses longer chain names
CANARY_CHAIN = "KUBE-PROXY-CANARY"
KUBE_SERVICES = "KUBE-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_FORWARD = "KUBE-FORWARD"
JUMP_COMMENT = "kubesvc"

# (table, built-in chain, rule spec) jumps into our chains, ensured with -C/-I.
JUMP_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("nat", "PREROUTING", ("-j", KUBE_SERVICES)),
    ("nat", "OUTPUT", ("-j", KUBE_SERVICES)),
    ("nat", "POSTROUTING", ("-j", KUBE_POSTROUTING)),
    ("filter", "INPUT", ("-m", "conntrack", "--ctstate", "NEW", "-j", KUBE_EXTERNAL_SERVICES)),
    ("filter", "FORWARD", ("-m", "conntrack", "--ctstate", "NEW", "-j", KUBE_SERVICES)),
    ("filter", "FORWARD", ("-m", "conntrack", "--ctstate", "NEW", "-j", KUBE_EXTERNAL_SERVICES)),
    ("filter", "FORWARD", ("-j", KUBE_FORWARD)),
    ("filter", "OUTPUT", ("-m", "conntrack", "--ctstate", "NEW", "-j", KUBE_SERVICES)),
)


def _hash16(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def port_proto_hash(name: ServicePortName) -> str:
    """kube-proxy's portProtoHash: 16 chars of base32(sha256(servicePortName + protocol))."""
    return _hash16(str(name) + name.protocol.lower())


def svc_chain(name: ServicePortName) -> str:
    return "KUBE-SVC-" + port_proto_hash(name)


def svl_chain(name: ServicePortName) -> str:
    return "KUBE-SVL-" + port_proto_hash(name)


def ext_chain(name: ServicePortName) -> str:
    return "KUBE-EXT-" + port_proto_hash(name)


def sep_chain(name: ServicePortName, ep: Endpoint) -> str:
    return "KUBE-SEP-" + _hash16(str(name) + name.protocol.lower() + str(ep))


def _quote(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


def _proto_match(protocol: str, port: int) -> str:
    p = protocol.lower()
    return f"-p {p} -m {p} --dport {port}"


@dataclass(frozen=True)
class RenderedService:
    """One service port's share of the rules; the dispatch lines are merged across services."""

    nat_chains: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    nat_services: tuple[str, ...] = ()
    nat_nodeports: tuple[str, ...] = ()
    filter_services: tuple[str, ...] = ()
    filter_external: tuple[str, ...] = ()


def _balance_rules(
    chain: str, name: ServicePortName, port: ServicePort, eps: tuple[Endpoint, ...]
) -> list[str]:
    rules: list[str] = []
    if port.affinity_timeout_s:
        for ep in eps:
            sep = sep_chain(name, ep)
            rules.append(
                f"-A {chain} -m comment --comment {_quote(f'{name} -> {ep}')} -m recent "
                f"--name {sep} --rcheck --seconds {port.affinity_timeout_s} --reap -j {sep}"
            )
    n = len(eps)
    for i, ep in enumerate(eps):
        sep = sep_chain(name, ep)
        stat = (
            f" -m statistic --mode random --probability {1.0 / (n - i):.10f}" if i < n - 1 else ""
        )
        rules.append(f"-A {chain} -m comment --comment {_quote(f'{name} -> {ep}')}{stat} -j {sep}")
    return rules


def _sep_rules(name: ServicePortName, port: ServicePort, ep: Endpoint) -> tuple[str, ...]:
    sep = sep_chain(name, ep)
    comment = f"-m comment --comment {_quote(str(name))}"
    recent = f" -m recent --name {sep} --set" if port.affinity_timeout_s else ""
    p = port.protocol.lower()
    return (
        # Hairpin: a pod reaching itself through the service must see the reply come from the node.
        f"-A {sep} {comment} -s {ep.ip}/32 -j {KUBE_MARK_MASQ}",
        f"-A {sep} {comment} -p {p}{recent} -m {p} -j DNAT --to-destination {ep}",
    )


def render_service(
    port: ServicePort, endpoints: Iterable[Endpoint], node_name: str | None
) -> RenderedService:
    """The rules of one service port (IPv4 only: IPv6 addresses are left to the ip6tables twin)."""
    name = port.name
    all_eps = tuple(e for e in endpoints if ":" not in e.ip)
    cluster_eps = usable_endpoints(port, all_eps, node_name=node_name, external=False)
    external_eps = usable_endpoints(port, all_eps, node_name=node_name, external=True)
    match = _proto_match(port.protocol, port.port)
    chains: dict[str, tuple[str, ...]] = {}
    nat_services: list[str] = []
    nat_nodeports: list[str] = []
    filter_services: list[str] = []
    filter_external: list[str] = []
    svc = svc_chain(name)
    cluster_ips = [ip for ip in port.cluster_ips if ":" not in ip]
    external_ips = [ip for ip in port.external_ips + port.load_balancer_ips if ":" not in ip]
    has_external = bool(external_ips or port.node_port)

    if cluster_eps:
        chains[svc] = tuple(_balance_rules(svc, name, port, cluster_eps))
        for ip in cluster_ips:
            nat_services.append(
                f"-A {KUBE_SERVICES} -m comment --comment {_quote(f'{name} cluster IP')} "
                f"-d {ip}/32 {match} -j {svc}"
            )
    else:
        for ip in cluster_ips:
            filter_services.append(
                f"-A {KUBE_SERVICES} -m comment --comment "
                f"{_quote(f'{name} has no endpoints')} -d {ip}/32 {match} "
                "-j REJECT --reject-with icmp-port-unreachable"
            )
    if has_external:
        ext = ext_chain(name)
        if external_eps:
            if port.external_local:
                svl = svl_chain(name)
                chains[svl] = tuple(_balance_rules(svl, name, port, external_eps))
                chains[ext] = (f"-A {ext} -j {svl}",)
            else:
                chains[ext] = (
                    f"-A {ext} -m comment --comment "
                    f"{_quote(f'masquerade traffic for {name} external destinations')} "
                    f"-j {KUBE_MARK_MASQ}",
                    f"-A {ext} -j {svc}",
                )
                if svc not in chains:  # cannot happen (external ⊆ cluster when not Local)
                    chains[svc] = tuple(_balance_rules(svc, name, port, external_eps))
            for ip in external_ips:
                nat_services.append(
                    f"-A {KUBE_SERVICES} -m comment --comment {_quote(f'{name} external IP')} "
                    f"-d {ip}/32 {match} -j {ext}"
                )
            if port.node_port:
                nat_nodeports.append(
                    f"-A {KUBE_NODEPORTS} -m comment --comment {_quote(f'{name} node port')} "
                    f"{_proto_match(port.protocol, port.node_port)} -j {ext}"
                )
        else:
            reject = "-j REJECT --reject-with icmp-port-unreachable"
            for ip in external_ips:
                filter_external.append(
                    f"-A {KUBE_EXTERNAL_SERVICES} -m comment --comment "
                    f"{_quote(f'{name} has no endpoints')} -d {ip}/32 {match} {reject}"
                )
            if port.node_port:
                filter_external.append(
                    f"-A {KUBE_EXTERNAL_SERVICES} -m comment --comment "
                    f"{_quote(f'{name} has no endpoints')} -m addrtype --dst-type LOCAL "
                    f"{_proto_match(port.protocol, port.node_port)} {reject}"
                )
    used = {e for e in cluster_eps} | ({e for e in external_eps} if has_external else set())
    for ep in sorted(used):
        chains[sep_chain(name, ep)] = _sep_rules(name, port, ep)
    return RenderedService(
        chains,
        tuple(nat_services),
        tuple(nat_nodeports),
        tuple(filter_services),
        tuple(filter_external),
    )


BASE_NAT: dict[str, tuple[str, ...]] = {
    KUBE_POSTROUTING: (
        f"-A {KUBE_POSTROUTING} -m mark ! --mark {MASQ_MARK:#x}/{MASQ_MARK:#x} -j RETURN",
        f"-A {KUBE_POSTROUTING} -j MARK --xor-mark {MASQ_MARK:#x}",
        f"-A {KUBE_POSTROUTING} -m comment --comment "
        '"kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ),
    KUBE_MARK_MASQ: (f"-A {KUBE_MARK_MASQ} -j MARK --or-mark {MASQ_MARK:#x}",),
}
BASE_FILTER_FORWARD = (
    f"-A {KUBE_FORWARD} -m comment --comment "
    '"kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
    f"-A {KUBE_FORWARD} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
)
NODEPORTS_LAST = (
    f"-A {KUBE_SERVICES} -m comment --comment "
    '"kubernetes service nodeports; NOTE: this must be the last rule in this chain" '
    f"-m addrtype --dst-type LOCAL -j {KUBE_NODEPORTS}"
)


@dataclass
class Ruleset:
    """The whole desired state: chains (in writing order) per table."""

    nat: dict[str, tuple[str, ...]] = field(default_factory=dict)
    filter: dict[str, tuple[str, ...]] = field(default_factory=dict)


def assemble(rendered: Mapping[ServicePortName, RenderedService]) -> Ruleset:
    """The tables from the per-service renders (sorted by name, so the text is stable)."""
    order = sorted(rendered)
    nat: dict[str, tuple[str, ...]] = dict(BASE_NAT)
    services: list[str] = []
    nodeports: list[str] = []
    f_services: list[str] = []
    f_external: list[str] = []
    for key in order:
        r = rendered[key]
        services.extend(r.nat_services)
        nodeports.extend(r.nat_nodeports)
        f_services.extend(r.filter_services)
        f_external.extend(r.filter_external)
    services.append(NODEPORTS_LAST)
    nat[KUBE_SERVICES] = tuple(services)
    nat[KUBE_NODEPORTS] = tuple(nodeports)
    for key in order:
        nat.update(rendered[key].nat_chains)
    filt = {
        KUBE_SERVICES: tuple(f_services),
        KUBE_EXTERNAL_SERVICES: tuple(f_external),
        KUBE_FORWARD: BASE_FILTER_FORWARD,
    }
    return Ruleset(nat, filt)


def render(snapshot: Snapshot, node_name: str | None = None) -> Ruleset:
    """The whole ruleset for a snapshot (what a full sync writes)."""
    return assemble(
        {
            name: render_service(port, snapshot.endpoints_of(name), node_name)
            for name, port in snapshot.services.items()
        }
    )


def restore_text(
    tables: Mapping[str, Mapping[str, tuple[str, ...]]],
    deleted: Mapping[str, Iterable[str]] | None = None,
) -> str:
    """`iptables-restore --noflush` input: the given chains rewritten, `deleted` chains removed."""
    out: list[str] = []
    deleted = deleted or {}
    for table in ("mangle", "filter", "nat"):
        chains = tables.get(table, {})
        gone = sorted(deleted.get(table, ()))
        if not chains and not gone:
            continue
        out.append(f"*{table}")
        out.extend(f":{chain} - [0:0]" for chain in chains)
        out.extend(f":{chain} - [0:0]" for chain in gone)
        for rules in chains.values():
            out.extend(rules)
        out.extend(f"-X {chain}" for chain in gone)
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def full_restore_text(ruleset: Ruleset, deleted: Mapping[str, Iterable[str]] | None = None) -> str:
    """The whole ruleset as one restore text (one commit per table), with the canary chains."""
    canary: dict[str, tuple[str, ...]] = {CANARY_CHAIN: ()}
    return restore_text(
        {
            "mangle": canary,
            "filter": {**canary, **ruleset.filter},
            "nat": {**canary, **ruleset.nat},
        },
        deleted,
    )


def jump_rule_lines() -> list[str]:
    """The built-in chain jumps as `-A` lines (for the packet tracer and for reading)."""
    return [
        f"{table} -A {chain} -m comment --comment {JUMP_COMMENT} {' '.join(spec)}"
        for table, chain, spec in JUMP_RULES
    ]


def _our_chain(chain: str) -> bool:
    return chain.startswith("KUBE-")


def existing_chains(save_text: str) -> dict[str, set[str]]:
    """Our chains per table in `iptables-save` output."""
    found: dict[str, set[str]] = {}
    table = ""
    for line in save_text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":") and table:
            chain = line[1:].split()[0]
            if _our_chain(chain):
                found.setdefault(table, set()).add(chain)
    return found


@dataclass(frozen=True)
class Tools:
    """The command names of one iptables backend."""

    legacy: bool = False

    @property
    def iptables(self) -> str:
        return "iptables-legacy" if self.legacy else "iptables"

    @property
    def save(self) -> str:
        return "iptables-legacy-save" if self.legacy else "iptables-save"

    @property
    def restore(self) -> str:
        return "iptables-legacy-restore" if self.legacy else "iptables-restore"


class IptablesProxier:
    """The iptables backend: full and partial syncs of the rendered ruleset."""

    mode = "iptables"

    def __init__(
        self,
        executor: Executor,
        node_name: str | None = None,
        full_sync_period_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        legacy: bool = False,
    ) -> None:
        self.exec = executor
        # iptables-nft (the default here) or the legacy x_tables backend (see README for figures).
        self.tools = Tools(legacy)
        self.node_name = node_name
        self.full_sync_period_s = full_sync_period_s
        self.clock = clock
        self.needs_full = True
        self._last_full = 0.0
        self._rendered: dict[ServicePortName, RenderedService] = {}
        self._applied = Ruleset()
        self.last_restore = ""  # what was last written (tests, debugging)
        self.full_syncs = 0
        self.partial_syncs = 0
        self.timings: dict[str, float] = {}

    # -- sync

    def sync(self, snapshot: Snapshot, delta: SyncDelta) -> None:
        try:
            self._sync(snapshot, delta)
        except Exception:
            self.needs_full = True
            raise

    def _canary_present(self) -> bool:
        result = self.exec.run(
            [self.tools.iptables, "-w", "-t", "mangle", "-S", CANARY_CHAIN], check=False
        )
        return result.ok

    def _sync(self, snapshot: Snapshot, delta: SyncDelta) -> None:
        now = self.clock()
        full = (
            self.needs_full
            or (delta.empty and now - self._last_full >= self.full_sync_period_s)
            or not self._canary_present()
        )
        started = time.perf_counter()
        if full:
            self._rendered = {
                name: render_service(port, snapshot.endpoints_of(name), self.node_name)
                for name, port in snapshot.services.items()
            }
        else:
            for name in delta.removed:
                self._rendered.pop(name, None)
            for name in delta.added | delta.updated | delta.endpoints_changed:
                port = snapshot.services.get(name)
                if port is None:
                    self._rendered.pop(name, None)
                else:
                    self._rendered[name] = render_service(
                        port, snapshot.endpoints_of(name), self.node_name
                    )
        ruleset = assemble(self._rendered)
        if full:
            save = self.exec.run([self.tools.save], check=False)
            present = existing_chains(save.stdout) if save.ok else {}
            deleted = {
                t: present.get(t, set()) - set(getattr(ruleset, t)) - {CANARY_CHAIN}
                for t in ("nat", "filter")
            }
            text = full_restore_text(ruleset, deleted)
        else:
            changed: dict[str, dict[str, tuple[str, ...]]] = {}
            deleted = {}
            for t in ("nat", "filter"):
                new, old = getattr(ruleset, t), getattr(self._applied, t)
                changed[t] = {c: rules for c, rules in new.items() if old.get(c) != rules}
                deleted[t] = set(old) - set(new)
            text = restore_text(changed, deleted)
        self.timings["render_s"] = time.perf_counter() - started
        started = time.perf_counter()
        if text.strip():
            self.exec.run([self.tools.restore, "-w", "--noflush"], stdin=text)
        if full:
            self._ensure_jumps()
        self.timings["apply_s"] = time.perf_counter() - started
        self.last_restore = text
        self._applied = ruleset
        if full:
            self.needs_full = False
            self._last_full = now
            self.full_syncs += 1
        else:
            self.partial_syncs += 1
        clear_stale_udp(self.exec, snapshot, delta)

    def _ensure_jumps(self) -> None:
        for table, chain, spec in JUMP_RULES:
            rule = ["-m", "comment", "--comment", JUMP_COMMENT, *spec]
            check = self.exec.run(
                [self.tools.iptables, "-w", "-t", table, "-C", chain, *rule], check=False
            )
            if not check.ok:
                self.exec.run([self.tools.iptables, "-w", "-t", table, "-I", chain, "1", *rule])

    def close(self) -> None:
        """Leave the rules in place (kube-proxy's behaviour); `cleanup()` removes them."""


def cleanup(executor: Executor, legacy: bool = False) -> list[str]:
    """Remove every jump and chain the iptables mode made; what was removed, for the log."""
    tools = Tools(legacy)
    removed: list[str] = []
    for table, chain, spec in JUMP_RULES:
        rule = ["-m", "comment", "--comment", JUMP_COMMENT, *spec]
        for _ in range(100):  # bounded: a duplicate added by hand is removed too
            argv = [tools.iptables, "-w", "-t", table, "-D", chain, *rule]
            if not executor.run(argv, check=False).ok:
                break
            removed.append(f"{table} {chain} -> {spec[-1]}")
    save = executor.run([tools.save], check=False)
    present = existing_chains(save.stdout) if save.ok else {}
    if any(present.values()):
        executor.run([tools.restore, "-w", "--noflush"], stdin=restore_text({}, present))
        for table, chains in sorted(present.items()):
            removed.extend(f"{table} chain {c}" for c in sorted(chains))
    return removed


def clear_stale_udp(executor: Executor, snapshot: Snapshot, delta: SyncDelta) -> None:
    """Delete conntrack entries that still lead UDP flows to endpoints that went away.

    UDP has no connection to break: without this, a client that keeps its
    source port would keep talking to the removed endpoint for as long as
    the conntrack entry lives.
    """
    for name, ep in delta.stale_udp_endpoints:
        if ":" in ep.ip:
            continue
        port = snapshot.services.get(name)
        targets = list(port.addresses) if port else []
        for ip in targets:
            executor.run(
                ["conntrack", "-D", "-p", "udp", "--orig-dst", ip, "--dst-nat", ep.ip],
                check=False,  # exit 1 means "nothing to delete"
            )
        if port and port.node_port:
            executor.run(
                [
                    "conntrack",
                    "-D",
                    "-p",
                    "udp",
                    "--orig-port-dst",
                    str(port.node_port),
                    "--dst-nat",
                    ep.ip,
                ],
                check=False,
            )
        # A removed service port: its address is gone from the snapshot; match on the endpoint.
        if port is None:
            executor.run(["conntrack", "-D", "-p", "udp", "--dst-nat", ep.ip], check=False)
