"""nftables mode: one `table ip kubesvc`, dispatch by verdict maps, applied with one `nft -f`.

Render, then apply, like the iptables mode, but the layout is built for
O(1) dispatch and small updates, with per-endpoint state in map elements:

- `service-ips` maps `ip daddr . meta l4proto . th dport` to a verdict;
  `service-nodeports` maps `meta l4proto . th dport` on local addresses. One
  lookup, however many Services there are.
- The verdict is `goto pick-<proto>-<n>`, a chain shared by every port with n
  endpoints: `dnat ip to ip daddr . th dport . numgen random mod n map
  @eps-<proto>-<n>`, whose elements are `<ClusterIP> . <port> . <i> : <ip> .
  <port>` (NodePorts: `nppick-*` / `npeps-*`, keyed by `<nodePort> . <i>`).
  A 10k × 10 table has a handful of chains and maps and 100k elements; a
  one-endpoint change is one element (see `picker_decl` for the measured
  reasons against a map or a chain per Service).
- Ports without endpoints are elements of `no-endpoint-services` /
  `no-endpoint-nodeports`, which the filter hooks (priority -110, before
  DNAT) map to `goto reject-chain`.
- External traffic (external IPs, NodePorts) is marked for masquerading by
  membership of `external-masq` / `nodeport-masq` (not with Local policy).
- ClientIP affinity: such a port gets a chain of its own (`svc-<hash>`): the
  client's remembered endpoint from `aff-<hash>-<timeout>` (client →
  endpoint, entries time out), else the `numgen random mod (n-i) == 0`
  cascade; postrouting refreshes the entry for every new connection, finding
  the map through the ct mark the chain set. When the port's endpoints change
  its affinity map is flushed (an entry could name a removed endpoint), so
  its clients are balanced again once.
- Hairpin: the `hairpin` set holds `ep . ep` for every endpoint address;
  postrouting masquerades DNATed packets whose source is their destination.

A sync diffs the rendered objects against what it applied last and writes
only the difference (shared pickers and hairpin elements are reference
counted); the first sync, one after a failure, and one after the table
vanished recreate the table atomically (`add table; delete table; …` in one
script).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from kubesvc.proxy.iptables import MASQ_MARK, clear_stale_udp, port_proto_hash
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

TABLE = "kubesvc"
FAMILY = "ip"
T = f"{FAMILY} {TABLE}"

SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_EP_SERVICES = "no-endpoint-services"
NO_EP_NODEPORTS = "no-endpoint-nodeports"
EXTERNAL_MASQ = "external-masq"
NODEPORT_MASQ = "nodeport-masq"
AFFINITY_UPDATES = "affinity-updates"
HAIRPIN = "hairpin"
FIREWALL_DROP = "firewall-drop"

# The fixed part of the table: maps, sets and chains that do not depend on Services.
BASE: tuple[str, ...] = (
    f'add table {T} {{ comment "kubesvc proxy rules" ; }}',
    f"add map {T} {SERVICE_IPS} {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}",
    f"add map {T} {SERVICE_NODEPORTS} {{ type inet_proto . inet_service : verdict ; }}",
    f"add map {T} {NO_EP_SERVICES} {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}",
    f"add map {T} {NO_EP_NODEPORTS} {{ type inet_proto . inet_service : verdict ; }}",
    f"add map {T} {AFFINITY_UPDATES} {{ type mark : verdict ; }}",
    f"add set {T} {HAIRPIN} {{ type ipv4_addr . ipv4_addr ; }}",
    f"add set {T} {EXTERNAL_MASQ} {{ type ipv4_addr . inet_proto . inet_service ; }}",
    f"add set {T} {NODEPORT_MASQ} {{ type inet_proto . inet_service ; }}",
    f"add set {T} {FIREWALL_DROP} {{ type ipv4_addr . inet_proto . inet_service ; }}",
    f"add chain {T} reject-chain",
    f"add rule {T} reject-chain reject",
    f"add chain {T} mark-for-masquerade",
    f"add rule {T} mark-for-masquerade meta mark set meta mark | {MASQ_MARK:#x}",
    f"add chain {T} services",
    # External traffic is marked for masquerading by set membership rather than by a chain per
    # Service: every chain costs on each later `nft -f` (nft lists them all to fill its cache).
    f"add rule {T} services ip daddr . meta l4proto . th dport @{EXTERNAL_MASQ} "
    "jump mark-for-masquerade",
    f"add rule {T} services ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}",
    f"add rule {T} services fib daddr type local ip daddr != 127.0.0.0/8 "
    f"meta l4proto . th dport @{NODEPORT_MASQ} jump mark-for-masquerade",
    f"add rule {T} services fib daddr type local ip daddr != 127.0.0.0/8 "
    f"meta l4proto . th dport vmap @{SERVICE_NODEPORTS}",
    f"add chain {T} endpoints-check",
    # A load balancer address still the destination here was not DNATed: its source is
    # outside the Service's loadBalancerSourceRanges (see the fw- chains).
    f"add rule {T} endpoints-check ip daddr . meta l4proto . th dport @{FIREWALL_DROP} drop",
    f"add rule {T} endpoints-check ip daddr . meta l4proto . th dport vmap @{NO_EP_SERVICES}",
    f"add rule {T} endpoints-check fib daddr type local ip daddr != 127.0.0.0/8 "
    f"meta l4proto . th dport vmap @{NO_EP_NODEPORTS}",
    f"add chain {T} nat-prerouting {{ type nat hook prerouting priority dstnat ; }}",
    f"add rule {T} nat-prerouting jump services",
    f"add chain {T} nat-output {{ type nat hook output priority -100 ; }}",
    f"add rule {T} nat-output jump services",
    f"add chain {T} nat-postrouting {{ type nat hook postrouting priority srcnat ; }}",
    # (nft cannot key a map by `ct original proto-dst`: the service port's chain tags the
    # connection with its ct mark instead, and the mark finds the affinity map to refresh.)
    f"add rule {T} nat-postrouting ct status dnat ct mark vmap @{AFFINITY_UPDATES}",
    f"add rule {T} nat-postrouting ct status dnat ip saddr . ip daddr @{HAIRPIN} "
    "masquerade fully-random",
    f"add rule {T} nat-postrouting meta mark & {MASQ_MARK:#x} == 0 return",
    f"add rule {T} nat-postrouting meta mark set meta mark ^ {MASQ_MARK:#x} "
    "masquerade fully-random",
    # Before DNAT (-100), so a port without endpoints is refused while it still has its address.
    f"add chain {T} filter-output {{ type filter hook output priority -110 ; }}",
    f"add rule {T} filter-output ct state new jump endpoints-check",
    f"add chain {T} filter-input {{ type filter hook input priority -110 ; }}",
    f"add rule {T} filter-input ct state new jump endpoints-check",
    f"add chain {T} filter-forward {{ type filter hook forward priority -110 ; }}",
    f"add rule {T} filter-forward ct state new jump endpoints-check",
)


def svc_chain(name: ServicePortName) -> str:
    return "svc-" + port_proto_hash(name)


def svl_chain(name: ServicePortName) -> str:
    return "svl-" + port_proto_hash(name)


def fw_chain(name: ServicePortName) -> str:
    return "fw-" + port_proto_hash(name)


def aff_map(name: ServicePortName, timeout_s: int) -> str:
    # The timeout is part of the name: a new timeout is a new map, swapped in with the rules.
    return f"aff-{port_proto_hash(name)}-{timeout_s}"


def aff_update_chain(name: ServicePortName) -> str:
    return "affup-" + port_proto_hash(name)


Picker = tuple[str, str, int]  # ("ip" or "np", protocol, number of endpoints)


@dataclass(frozen=True)
class NftService:
    """One service port's objects: chains, map elements, an affinity map, hairpin addresses."""

    chains: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # (map, key) → value
    elements: Mapping[tuple[str, str], str] = field(default_factory=dict)  # "": a set's
    affinity: Mapping[str, int] = field(default_factory=dict)  # map name → timeout (s)
    hairpin: frozenset[str] = frozenset()
    pickers: frozenset[Picker] = frozenset()


def affinity_id(name: ServicePortName) -> int:
    """A ct mark for a service port with affinity (the proxier hands out unique ones instead)."""
    return int(port_proto_hash(name).encode().hex()[:7], 16) | 1


def picker_names(picker: Picker) -> tuple[str, str]:
    """(chain, map) of a picker: the shared chain and map that choose among n endpoints."""
    kind, p, n = picker
    return (
        (f"pick-{p}-{n}", f"eps-{p}-{n}") if kind == "ip" else (f"nppick-{p}-{n}", f"npeps-{p}-{n}")
    )


def picker_decl(picker: Picker) -> list[str]:
    """A picker: a map (service key . random index → endpoint) and one rule that looks it up.

    Every service port with n endpoints shares the picker for n: its endpoints are elements
    (`<ClusterIP> . <port> . <i> : <ip> . <port>`, or `<nodePort> . <i>` for NodePorts), so
    a one-endpoint change is one element. (A map per Service would be O(n²) here: this kernel
    names each new set by scanning all of the table's sets; one map shared by every Service's
    rule is rechecked element by element at each rule's bind. A chain per Service costs on each
    later `nft -f`, which lists every chain to fill its cache.)
    """
    kind, p, n = picker
    chain, map_name = picker_names(picker)
    key = "ip daddr . th dport" if kind == "ip" else "th dport"
    return [
        f"add map {T} {map_name} {{ typeof {key} . numgen random mod {n} : ip daddr . th dport ; }}",
        f"add chain {T} {chain}",
        f"add rule {T} {chain} meta l4proto {p} dnat ip to {key} . numgen random mod {n} "
        f"map @{map_name}",
    ]


def picker_undo(picker: Picker) -> list[str]:
    chain, map_name = picker_names(picker)
    return [f"flush chain {T} {chain}", f"delete chain {T} {chain}", f"delete map {T} {map_name}"]


def _dnat_rule(
    port: ServicePort, eps: tuple[Endpoint, ...], name: ServicePortName, aff_id: int
) -> list[str]:
    """The rules of an affinity port's own chain: the remembered endpoint, else a random one."""
    p = port.protocol.lower()
    aff = aff_map(name, port.affinity_timeout_s)
    rules = [
        # Tag the connection, so postrouting knows which affinity map to refresh.
        f"ct mark set {aff_id:#x}",
        f"meta l4proto {p} dnat ip to ip saddr map @{aff}",
    ]
    # Endpoint i of n with probability 1/(n-i), the last one unconditional (iptables'
    # statistic cascade): each rule draws its own number.
    n = len(eps)
    for i, ep in enumerate(eps):
        pick = f"numgen random mod {n - i} == 0 " if i < n - 1 else ""
        rules.append(f"{pick}meta l4proto {p} dnat ip to {ep}")
    return rules


def render_service(
    port: ServicePort,
    endpoints: Iterable[Endpoint],
    node_name: str | None,
    aff_id: int = 0,
) -> NftService:
    """The objects of one service port (IPv4; an `ip6` twin would take the IPv6 addresses).

    Without affinity a port has no chain of its own: its addresses map to the shared picker
    for its number of endpoints, and its endpoints are that picker's elements. With ClientIP
    affinity it has a chain (`svc-<hash>`, `svl-<hash>` for other external endpoints).
    """
    name = port.name
    aff_id = aff_id or affinity_id(name)
    all_eps = tuple(e for e in endpoints if ":" not in e.ip)
    cluster_eps = usable_endpoints(port, all_eps, node_name=node_name, external=False)
    external_eps = usable_endpoints(port, all_eps, node_name=node_name, external=True)
    p = port.protocol.lower()
    chains: dict[str, tuple[str, ...]] = {}
    elements: dict[tuple[str, str], str] = {}
    affinity: dict[str, int] = {}
    pickers: set[Picker] = set()
    cluster_ips = [ip for ip in port.cluster_ips if ":" not in ip]
    external_ips = [ip for ip in port.external_ips + port.load_balancer_ips if ":" not in ip]
    sticky = bool(port.affinity_timeout_s)

    def dispatch(ips: list[str], eps: tuple[Endpoint, ...], chain: str) -> str:
        """Elements that send `ips`:port to `eps`; the verdict for a NodePort of the same set."""
        if sticky:
            chains[chain] = tuple(_dnat_rule(port, eps, name, aff_id))
            for ip in ips:
                elements[(SERVICE_IPS, f"{ip} . {p} . {port.port}")] = f"goto {chain}"
            return f"goto {chain}"
        ip_picker: Picker = ("ip", p, len(eps))
        pick_chain, pick_map = picker_names(ip_picker)
        for ip in ips:
            pickers.add(ip_picker)
            elements[(SERVICE_IPS, f"{ip} . {p} . {port.port}")] = f"goto {pick_chain}"
            for i, ep in enumerate(eps):
                elements[(pick_map, f"{ip} . {port.port} . {i}")] = f"{ep.ip} . {ep.port}"
        return ""

    if cluster_eps:
        dispatch(cluster_ips, cluster_eps, svc_chain(name))
    else:
        for ip in cluster_ips:
            elements[(NO_EP_SERVICES, f"{ip} . {p} . {port.port}")] = "goto reject-chain"
    if external_ips or port.node_port:
        if external_eps:
            # Sticky ports share their cluster chain unless external traffic sees other endpoints.
            own = port.external_local or external_eps != cluster_eps
            chain = svl_chain(name) if own else svc_chain(name)
            verdict = dispatch(external_ips, external_eps, chain)
            if not port.external_local:
                for ip in external_ips:
                    elements[(EXTERNAL_MASQ, f"{ip} . {p} . {port.port}")] = ""
            if port.node_port:
                key = f"{p} . {port.node_port}"
                if not verdict:
                    np_picker: Picker = ("np", p, len(external_eps))
                    pickers.add(np_picker)
                    np_chain, np_map = picker_names(np_picker)
                    verdict = f"goto {np_chain}"
                    for i, ep in enumerate(external_eps):
                        elements[(np_map, f"{port.node_port} . {i}")] = f"{ep.ip} . {ep.port}"
                elements[(SERVICE_NODEPORTS, key)] = verdict
                if not port.external_local:
                    elements[(NODEPORT_MASQ, key)] = ""
        else:
            for ip in external_ips:
                elements[(NO_EP_SERVICES, f"{ip} . {p} . {port.port}")] = "goto reject-chain"
            if port.node_port:
                elements[(NO_EP_NODEPORTS, f"{p} . {port.node_port}")] = "goto reject-chain"
    lb_ips = [ip for ip in port.load_balancer_ips if ":" not in ip]
    ranges = [cidr for cidr in port.source_ranges if ":" not in cidr]
    if port.source_ranges and lb_ips:
        # Only admitted sources take the Service's verdict; the rest fall through, not DNATed,
        # to the endpoints check, which drops them.
        fw = fw_chain(name)
        for ip in lb_ips:
            key = (SERVICE_IPS, f"{ip} . {p} . {port.port}")
            verdict = elements.get(key)
            if verdict and ranges:
                chains[fw] = (f"ip saddr {{ {', '.join(ranges)} }} {verdict}",)
                elements[key] = f"goto {fw}"
            elif verdict:
                del elements[key]
            elements[(FIREWALL_DROP, f"{ip} . {p} . {port.port}")] = ""
    if sticky and (cluster_eps or external_eps):
        aff = aff_map(name, port.affinity_timeout_s)
        affinity[aff] = port.affinity_timeout_s
        up = aff_update_chain(name)
        chains[up] = (f"update @{aff} {{ ip saddr : ip daddr . th dport }}",)
        elements[(AFFINITY_UPDATES, f"{aff_id:#x}")] = f"jump {up}"
    used = set(cluster_eps) | set(external_eps)
    return NftService(
        chains, elements, affinity, frozenset(ep.ip for ep in used), frozenset(pickers)
    )


@dataclass
class NftState:
    """Everything rendered, merged over service ports."""

    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    elements: dict[tuple[str, str], str] = field(default_factory=dict)
    affinity: dict[str, int] = field(default_factory=dict)
    hairpin: set[str] = field(default_factory=set)
    pickers: set[Picker] = field(default_factory=set)


def assemble(rendered: Mapping[ServicePortName, NftService]) -> NftState:
    state = NftState()
    for key in sorted(rendered):
        r = rendered[key]
        state.chains.update(r.chains)
        state.elements.update(r.elements)
        state.affinity.update(r.affinity)
        state.hairpin |= r.hairpin
        state.pickers |= r.pickers
    return state


def render(snapshot: Snapshot, node_name: str | None = None) -> NftState:
    return assemble(
        {
            name: render_service(port, snapshot.endpoints_of(name), node_name)
            for name, port in snapshot.services.items()
        }
    )


def _aff_decl(name: str, timeout_s: int) -> str:
    return (
        f"add map {T} {name} {{ type ipv4_addr : ipv4_addr . inet_service ; "
        f"flags dynamic,timeout ; timeout {timeout_s}s ; }}"
    )


def _element_lines(verb: str, items: Iterable[tuple[tuple[str, str], str | None]]) -> list[str]:
    by_map: dict[str, list[str]] = {}
    for (map_name, key), value in items:
        # A map element has a value; a set element ("" or None) has none.
        by_map.setdefault(map_name, []).append(f"{key} : {value}" if value else key)
    out = []
    for map_name in sorted(by_map):
        elems = by_map[map_name]
        for i in range(0, len(elems), 1000):  # keep lines of a sane length
            out.append(f"{verb} element {T} {map_name} {{ {', '.join(elems[i : i + 1000])} }}")
    return out


def _hairpin(ips: Iterable[str]) -> list[tuple[tuple[str, str], None]]:
    return [((HAIRPIN, f"{ip} . {ip}"), None) for ip in sorted(ips)]


def full_script(state: NftState) -> str:
    """The whole table, replacing whatever is there, in one transaction."""
    out = [f"add table {T}", f"delete table {T}", *BASE]
    for name, timeout in sorted(state.affinity.items()):
        out.append(_aff_decl(name, timeout))
    for picker in sorted(state.pickers):
        out.extend(picker_decl(picker))
    for chain in state.chains:
        out.append(f"add chain {T} {chain}")
    for chain, rules in state.chains.items():
        out.extend(f"add rule {T} {chain} {rule}" for rule in rules)
    out.extend(_element_lines("add", state.elements.items()))
    out.extend(_element_lines("add", _hairpin(state.hairpin)))
    return "\n".join(out) + "\n"


def diff_script(old: NftState, new: NftState, flush_affinity: Iterable[str] = ()) -> str:
    """The commands that turn `old` into `new` ("" when they are the same)."""
    out: list[str] = []
    for name, timeout in sorted(new.affinity.items()):
        if name not in old.affinity:
            out.append(_aff_decl(name, timeout))
    for name in sorted(set(flush_affinity) & old.affinity.keys() & new.affinity.keys()):
        out.append(f"flush map {T} {name}")
    for picker in sorted(new.pickers - old.pickers):
        out.extend(picker_decl(picker))
    added_chains = [c for c in new.chains if c not in old.chains]
    out.extend(f"add chain {T} {c}" for c in added_chains)
    for chain, rules in new.chains.items():
        if old.chains.get(chain) != rules:
            if chain in old.chains:
                out.append(f"flush chain {T} {chain}")
            out.extend(f"add rule {T} {chain} {rule}" for rule in rules)
    gone = [(k, None) for k, v in old.elements.items() if new.elements.get(k) != v]
    out.extend(_element_lines("delete", gone))
    fresh = [(k, v) for k, v in new.elements.items() if old.elements.get(k) != v]
    out.extend(_element_lines("add", fresh))
    out.extend(_element_lines("delete", _hairpin(old.hairpin - new.hairpin)))
    out.extend(_element_lines("add", _hairpin(new.hairpin - old.hairpin)))
    # Chains last, once no element or rule refers to them any more; then the maps.
    removed = [c for c in old.chains if c not in new.chains]
    out.extend(f"flush chain {T} {c}" for c in removed)
    out.extend(f"delete chain {T} {c}" for c in removed)
    for picker in sorted(old.pickers - new.pickers):
        out.extend(picker_undo(picker))
    out.extend(f"delete map {T} {m}" for m in sorted(old.affinity.keys() - new.affinity.keys()))
    return "\n".join(out) + "\n" if out else ""


class NftablesProxier:
    """The nftables backend: a full rewrite when needed, otherwise only the difference."""

    mode = "nftables"

    def __init__(
        self,
        executor: Executor,
        node_name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        full_sync_period_s: float = 3600.0,
    ) -> None:
        self.exec = executor
        self.node_name = node_name
        self.clock = clock
        # How often a sync without changes re-renders everything and diffs it against the table
        # we believe is there (otherwise it only checks that the table still exists).
        self.full_sync_period_s = full_sync_period_s
        self._last_full = 0.0
        self.needs_full = True
        self._rendered: dict[ServicePortName, NftService] = {}
        self._applied = NftState()
        self._aff_ids: dict[ServicePortName, int] = {}
        self._hairpin: Counter[str] = Counter()  # endpoint address → service ports it backs
        self._pickers: Counter[Picker] = Counter()  # picker → service ports that use it
        self.last_script = ""
        self.full_syncs = 0
        self.partial_syncs = 0
        self.timings: dict[str, float] = {}

    def _render(self, port: ServicePort, snapshot: Snapshot) -> NftService:
        aff_id = 0
        if port.affinity_timeout_s:
            aff_id = self._aff_ids.setdefault(port.name, len(self._aff_ids) + 1)
        return render_service(port, snapshot.endpoints_of(port.name), self.node_name, aff_id)

    def _table_present(self) -> bool:
        # A small object of ours: listing the whole table would cost as much as rewriting it.
        return self.exec.run(["nft", "list", "map", FAMILY, TABLE, NO_EP_NODEPORTS], check=False).ok

    def sync(self, snapshot: Snapshot, delta: SyncDelta) -> None:
        try:
            self._sync(snapshot, delta)
        except Exception:
            self.needs_full = True
            raise

    def _sync(self, snapshot: Snapshot, delta: SyncDelta) -> None:
        full = self.needs_full or not self._table_present()
        now = self.clock()
        started = time.perf_counter()
        if full or (delta.empty and now - self._last_full >= self.full_sync_period_s):
            self._last_full = now
            # Everything rendered again: written whole, or (a periodic sync) diffed whole.
            self._rendered = {
                name: self._render(port, snapshot) for name, port in snapshot.services.items()
            }
            state = assemble(self._rendered)
            self._hairpin = Counter(ip for r in self._rendered.values() for ip in r.hairpin)
            self._pickers = Counter(k for r in self._rendered.values() for k in r.pickers)
            script = full_script(state) if full else diff_script(self._applied, state)
            self._applied = state
        else:
            script = self._partial(snapshot, delta)
        self.timings["render_s"] = time.perf_counter() - started
        started = time.perf_counter()
        if script:
            self.exec.run(["nft", "-f", "-"], stdin=script)
        self.timings["apply_s"] = time.perf_counter() - started
        self.last_script = script
        if full:
            self.needs_full = False
            self.full_syncs += 1
        else:
            self.partial_syncs += 1
        clear_stale_udp(self.exec, snapshot, delta)

    def _partial(self, snapshot: Snapshot, delta: SyncDelta) -> str:
        """The script for the changed service ports only: O(changes), not O(Services)."""
        flush_affinity: set[str] = set()
        before: list[NftService] = []
        after: list[NftService] = []
        for name in delta.removed | delta.added | delta.updated | delta.endpoints_changed:
            old = self._rendered.pop(name, None)
            if old is not None:
                before.append(old)
            port = snapshot.services.get(name)
            if port is None:
                continue
            new = self._render(port, snapshot)
            self._rendered[name] = new
            after.append(new)
            if name in delta.endpoints_changed and port.affinity_timeout_s:
                flush_affinity.add(aff_map(name, port.affinity_timeout_s))
        old_state = assemble(dict(enumerate(before)))
        new_state = assemble(dict(enumerate(after)))
        # Hairpin elements and pickers are shared by many ports: count the users.
        touched = old_state.hairpin | new_state.hairpin
        old_state.hairpin = {ip for ip in touched if self._hairpin[ip] > 0}
        self._hairpin.subtract(ip for r in before for ip in r.hairpin)
        self._hairpin.update(ip for r in after for ip in r.hairpin)
        new_state.hairpin = {ip for ip in touched if self._hairpin[ip] > 0}
        touched_pickers = old_state.pickers | new_state.pickers
        old_state.pickers = {k for k in touched_pickers if self._pickers[k] > 0}
        self._pickers.subtract(k for r in before for k in r.pickers)
        self._pickers.update(k for r in after for k in r.pickers)
        new_state.pickers = {k for k in touched_pickers if self._pickers[k] > 0}
        script = diff_script(old_state, new_state, flush_affinity)
        applied = self._applied
        for chain in old_state.chains:
            applied.chains.pop(chain, None)
        for key in old_state.elements:
            applied.elements.pop(key, None)
        for aff in old_state.affinity:
            applied.affinity.pop(aff, None)
        applied.chains.update(new_state.chains)
        applied.elements.update(new_state.elements)
        applied.affinity.update(new_state.affinity)
        applied.hairpin -= old_state.hairpin - new_state.hairpin
        applied.hairpin |= new_state.hairpin
        applied.pickers -= old_state.pickers - new_state.pickers
        applied.pickers |= new_state.pickers
        return script

    def close(self) -> None:
        """Leave the table in place; `cleanup()` removes it."""


def cleanup(executor: Executor) -> list[str]:
    """Delete the kubesvc table (everything the nftables mode made)."""
    if executor.run(["nft", "list", "map", FAMILY, TABLE, NO_EP_NODEPORTS], check=False).ok or (
        executor.run(["nft", "list", "table", FAMILY, TABLE], check=False).ok
    ):
        executor.run(["nft", "delete", "table", FAMILY, TABLE])
        return [f"nft table {FAMILY} {TABLE}"]
    return []
