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
import functools
import hashlib
import logging
import shutil
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
# kube-proxy's largeClusterEndpointsThreshold: above this many endpoints in all, the per-endpoint
# rules (KUBE-SVC-* balancing and KUBE-SEP-*) carry no `-m comment` (about a fifth less to write,
# and a smaller table for the kernel to copy on every restore). KUBE-SERVICES keeps its comments.
LARGE_CLUSTER_ENDPOINTS = 1000
BACKENDS = ("auto", "nft", "legacy")

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


@functools.lru_cache(maxsize=1 << 18)
def _hash16(text: str) -> str:
    # 10 bytes are exactly 16 base32 characters: the same prefix as encoding the whole digest.
    return base64.b32encode(hashlib.sha256(text.encode()).digest()[:10]).decode()


def port_proto_hash(name: ServicePortName) -> str:
    """kube-proxy's portProtoHash: 16 chars of base32(sha256(servicePortName + protocol))."""
    return _hash16(str(name) + name.protocol.lower())


def svc_chain(name: ServicePortName) -> str:
    return "KUBE-SVC-" + port_proto_hash(name)


def svl_chain(name: ServicePortName) -> str:
    return "KUBE-SVL-" + port_proto_hash(name)


def ext_chain(name: ServicePortName) -> str:
    return "KUBE-EXT-" + port_proto_hash(name)


def fw_chain(name: ServicePortName) -> str:
    return "KUBE-FW-" + port_proto_hash(name)


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
    chain: str,
    name: ServicePortName,
    port: ServicePort,
    eps: tuple[Endpoint, ...],
    seps: Mapping[Endpoint, str],
    comments: bool,
) -> tuple[str, ...]:
    rules: list[str] = []
    head = f"-A {chain} "

    def comment(ep: Endpoint) -> str:
        return f"-m comment --comment {_quote(f'{name} -> {ep}')} " if comments else ""

    if port.affinity_timeout_s:
        for ep in eps:
            sep = seps[ep]
            rules.append(
                f"{head}{comment(ep)}-m recent "
                f"--name {sep} --rcheck --seconds {port.affinity_timeout_s} --reap -j {sep}"
            )
    n = len(eps)
    for i, ep in enumerate(eps):
        stat = (
            f"-m statistic --mode random --probability {1.0 / (n - i):.10f} " if i < n - 1 else ""
        )
        rules.append(f"{head}{comment(ep)}{stat}-j {seps[ep]}")
    return tuple(rules)


def _sep_rules(
    name: ServicePortName, port: ServicePort, ep: Endpoint, sep: str, comments: bool
) -> tuple[str, ...]:
    head = f"-A {sep} -m comment --comment {_quote(str(name))} " if comments else f"-A {sep} "
    recent = f" -m recent --name {sep} --set" if port.affinity_timeout_s else ""
    p = port.protocol.lower()
    return (
        # Hairpin: a pod reaching itself through the service must see the reply come from the node.
        f"{head}-s {ep.ip}/32 -j {KUBE_MARK_MASQ}",
        f"{head}-p {p}{recent} -m {p} -j DNAT --to-destination {ep}",
    )


def render_service(
    port: ServicePort,
    endpoints: Iterable[Endpoint],
    node_name: str | None,
    comments: bool = True,
) -> RenderedService:
    """The rules of one service port (IPv4 only: IPv6 addresses are left to the ip6tables twin).

    `comments=False` (large clusters, see LARGE_CLUSTER_ENDPOINTS) leaves the comments out of
    the per-endpoint rules, as kube-proxy does.
    """
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
    used = set(cluster_eps) | (set(external_eps) if has_external else set())
    seps = {ep: sep_chain(name, ep) for ep in used}

    if cluster_eps:
        chains[svc] = _balance_rules(svc, name, port, cluster_eps, seps, comments)
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
                chains[svl] = _balance_rules(svl, name, port, external_eps, seps, comments)
                chains[ext] = (f"-A {ext} -j {svl}",)
            else:
                chains[ext] = (
                    f"-A {ext} -m comment --comment "
                    f"{_quote(f'masquerade traffic for {name} external destinations')} "
                    f"-j {KUBE_MARK_MASQ}",
                    f"-A {ext} -j {svc}",
                )
                if svc not in chains:  # cannot happen (external ⊆ cluster when not Local)
                    chains[svc] = _balance_rules(svc, name, port, external_eps, seps, comments)
            fw = fw_chain(name)
            for ip in external_ips:
                guarded = port.source_ranges and ip in port.load_balancer_ips
                nat_services.append(
                    f"-A {KUBE_SERVICES} -m comment --comment {_quote(f'{name} external IP')} "
                    f"-d {ip}/32 {match} -j {fw if guarded else ext}"
                )
            if port.source_ranges and any(ip in port.load_balancer_ips for ip in external_ips):
                # Admitted sources go on to the Service; the others are not DNATed, and the
                # filter rules below drop what still heads for the load balancer address.
                chains[fw] = tuple(
                    f"-A {fw} -m comment --comment {_quote(f'{name} loadbalancer IP')} "
                    f"-s {cidr} -j {ext}"
                    for cidr in port.source_ranges
                    if ":" not in cidr
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
    if port.source_ranges:
        for ip in external_ips:
            if ip in port.load_balancer_ips:
                why = _quote(f"{name} traffic not accepted by the load balancer source ranges")
                drop = f"-m comment --comment {why} -d {ip}/32 {match} -j DROP"
                filter_external.append(f"-A {KUBE_EXTERNAL_SERVICES} {drop}")
                filter_services.append(f"-A {KUBE_SERVICES} {drop}")
    for ep in sorted(used):
        chains[seps[ep]] = _sep_rules(name, port, ep, seps[ep], comments)
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


def large_cluster(snapshot: Snapshot) -> bool:
    """kube-proxy's large-cluster mode: more than LARGE_CLUSTER_ENDPOINTS endpoints in all."""
    return (
        sum(len(snapshot.endpoints_of(name)) for name in snapshot.services)
        > LARGE_CLUSTER_ENDPOINTS
    )


def render(snapshot: Snapshot, node_name: str | None = None) -> Ruleset:
    """The whole ruleset for a snapshot (what a full sync writes)."""
    comments = not large_cluster(snapshot)
    return assemble(
        {
            name: render_service(port, snapshot.endpoints_of(name), node_name, comments)
            for name, port in snapshot.services.items()
        }
    )


def restore_text(
    tables: Mapping[str, Mapping[str, tuple[str, ...]]],
    deleted: Mapping[str, Iterable[str]] | None = None,
    extra: Mapping[str, Iterable[str]] | None = None,
) -> str:
    """`iptables-restore --noflush` input: the given chains rewritten, `deleted` chains removed.

    `extra` lines (per table) follow the chains' rules: the built-in chains' jumps.
    """
    out: list[str] = []
    deleted = deleted or {}
    extra = extra or {}
    for table in ("mangle", "filter", "nat"):
        chains = tables.get(table, {})
        gone = sorted(deleted.get(table, ()))
        more = list(extra.get(table, ()))
        if not chains and not gone and not more:
            continue
        out.append(f"*{table}")
        out.extend(f":{chain} - [0:0]" for chain in chains)
        out.extend(f":{chain} - [0:0]" for chain in gone)
        for rules in chains.values():
            out.extend(rules)
        out.extend(more)
        out.extend(f"-X {chain}" for chain in gone)
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def full_restore_text(
    ruleset: Ruleset,
    deleted: Mapping[str, Iterable[str]] | None = None,
    jumps: Mapping[str, Iterable[str]] | None = None,
) -> str:
    """The whole ruleset as one restore text (one commit per table), with the canary chains."""
    canary: dict[str, tuple[str, ...]] = {CANARY_CHAIN: ()}
    return restore_text(
        {
            "mangle": canary,
            "filter": {**canary, **ruleset.filter},
            "nat": {**canary, **ruleset.nat},
        },
        deleted,
        jumps,
    )


def jump_rule_lines() -> list[str]:
    """The built-in chain jumps as `-A` lines (for the packet tracer and for reading)."""
    return [
        f"{table} -A {chain} -m comment --comment {JUMP_COMMENT} {' '.join(spec)}"
        for table, chain, spec in JUMP_RULES
    ]


def _jump_spec(table: str, chain: str, spec: tuple[str, ...]) -> tuple[str, str, tuple[str, ...]]:
    return (table, chain, ("-m", "comment", "--comment", JUMP_COMMENT, *spec))


def present_jumps(save_text: str) -> set[tuple[str, str, tuple[str, ...]]]:
    """The JUMP_RULES found in `iptables-save` output (comment placement does not matter).

    iptables-legacy prints matches in the order given, iptables-nft prints the comment last:
    a line counts when it carries our comment and, without it, is exactly one of the specs.
    """
    wanted = {(t, c, spec) for t, c, spec in JUMP_RULES}
    marker = ("-m", "comment", "--comment", JUMP_COMMENT)
    found: set[tuple[str, str, tuple[str, ...]]] = set()
    table = ""
    for line in save_text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        if not line.startswith("-A ") or JUMP_COMMENT not in line:
            continue
        words = line.split()
        chain, rest = words[1], words[2:]
        for i in range(len(rest) - len(marker) + 1):
            if tuple(rest[i : i + len(marker)]) == marker:
                spec = tuple(rest[:i] + rest[i + len(marker) :])
                if (table, chain, spec) in wanted:
                    found.add((table, chain, spec))
                break
    return found


def missing_jump_lines(save_text: str | None) -> dict[str, list[str]]:
    """`-I <chain> 1 …` restore lines, per table, for the jumps `save_text` lacks (all if None).

    They go into the full sync's restore text, so ensuring the jumps costs no extra
    iptables run (each one would copy the whole table in and out of the kernel).
    """
    present = present_jumps(save_text) if save_text is not None else set()
    lines: dict[str, list[str]] = {}
    for table, chain, spec in JUMP_RULES:  # each at the top, in this order (as -C/-I did)
        if (table, chain, spec) not in present:
            rule = " ".join(_jump_spec(table, chain, spec)[2])
            lines.setdefault(table, []).append(f"-I {chain} 1 {rule}")
    return lines


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


LEGACY_TOOLS = ("iptables-legacy", "iptables-legacy-save", "iptables-legacy-restore")


def choose_backend(
    requested: str, which: Callable[[str], str | None] = shutil.which
) -> tuple[bool, str]:
    """(legacy?, why) for `--iptables-backend auto|nft|legacy`.

    `auto` prefers iptables-legacy whenever its tools are installed: with the nf_tables
    backend a 10k Services × 3 endpoints full sync did not finish in 4 minutes, with legacy
    it takes seconds. The kernel runs the x_tables and nf_tables hooks side by side, so our
    legacy chains work next to a host whose other rules are in nf_tables. Without the legacy
    tools, `auto` is the nf_tables backend (`iptables`, Debian's default).
    """
    if requested not in BACKENDS:
        raise ValueError(f"iptables backend must be one of {', '.join(BACKENDS)}")
    if requested == "legacy":
        return True, "as requested"
    if requested == "nft":
        return False, "as requested"
    missing = [tool for tool in LEGACY_TOOLS if which(tool) is None]
    if missing:
        return False, f"auto: {', '.join(missing)} not installed; using the nf_tables backend"
    return True, "auto: iptables-legacy is installed (much faster restores at scale)"


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
        self._comments = True
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
        comments = not large_cluster(snapshot)
        if full or comments != self._comments:
            # A full sync, or the cluster crossed LARGE_CLUSTER_ENDPOINTS: render every service.
            node = self.node_name
            self._rendered = {
                name: render_service(port, snapshot.endpoints_of(name), node, comments)
                for name, port in snapshot.services.items()
            }
            self._comments = comments
        else:
            for name in delta.removed:
                self._rendered.pop(name, None)
            for name in delta.added | delta.updated | delta.endpoints_changed:
                port = snapshot.services.get(name)
                if port is None:
                    self._rendered.pop(name, None)
                else:
                    self._rendered[name] = render_service(
                        port, snapshot.endpoints_of(name), self.node_name, comments
                    )
        ruleset = assemble(self._rendered)
        self.timings["render_s"] = time.perf_counter() - started
        if full:
            # The save is part of applying (it reads the kernel's tables), not of rendering.
            started = time.perf_counter()
            save = self.exec.run([self.tools.save], check=False)
            present = existing_chains(save.stdout) if save.ok else {}
            deleted = {
                t: present.get(t, set()) - set(getattr(ruleset, t)) - {CANARY_CHAIN}
                for t in ("nat", "filter")
            }
            save_s = time.perf_counter() - started
            started = time.perf_counter()
            jumps = missing_jump_lines(save.stdout if save.ok else None)
            text = full_restore_text(ruleset, deleted, jumps)
        else:
            save_s = 0.0
            started = time.perf_counter()
            changed: dict[str, dict[str, tuple[str, ...]]] = {}
            deleted = {}
            for t in ("nat", "filter"):
                new, old = getattr(ruleset, t), getattr(self._applied, t)
                changed[t] = {c: rules for c, rules in new.items() if old.get(c) != rules}
                deleted[t] = set(old) - set(new)
            text = restore_text(changed, deleted)
        self.timings["render_s"] += time.perf_counter() - started
        started = time.perf_counter()
        if text.strip():
            self.exec.run([self.tools.restore, "-w", "--noflush"], stdin=text)
        self.timings["apply_s"] = save_s + time.perf_counter() - started
        self.last_restore = text
        self._applied = ruleset
        if full:
            self.needs_full = False
            self._last_full = now
            self.full_syncs += 1
        else:
            self.partial_syncs += 1
        clear_stale_udp(self.exec, snapshot, delta)

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
