"""Service ports and snapshots for the kernel-mode tests (addresses from 198.18.0.0/15 only)."""

from __future__ import annotations

from kubesvc.proxy.model import Endpoint, ServicePort, ServicePortName, Snapshot, SyncDelta


def port(
    name: str,
    cluster_ip: str,
    port_no: int = 80,
    protocol: str = "TCP",
    *,
    node_port: int = 0,
    affinity_s: int = 0,
    external_ips: tuple[str, ...] = (),
    external_local: bool = False,
    scheduler: str | None = None,
    lb_ips: tuple[str, ...] = (),
    source_ranges: tuple[str, ...] = (),
) -> ServicePort:
    return ServicePort(
        name=ServicePortName("default", name, "", protocol),
        cluster_ips=(cluster_ip,),
        port=port_no,
        protocol=protocol,
        node_port=node_port,
        external_ips=external_ips,
        affinity_timeout_s=affinity_s,
        external_local=external_local,
        scheduler=scheduler,
        load_balancer_ips=lb_ips,
        source_ranges=source_ranges,
    )


def eps(*ips: str, port_no: int = 8080, node: str | None = None) -> tuple[Endpoint, ...]:
    return tuple(Endpoint(ip, port_no, node_name=node) for ip in ips)


def snapshot(*items: tuple[ServicePort, tuple[Endpoint, ...]], generation: int = 1) -> Snapshot:
    return Snapshot({p.name: p for p, _ in items}, {p.name: e for p, e in items if e}, generation)


def delta_between(old: Snapshot, new: Snapshot) -> SyncDelta:
    """The delta ProxyState.commit would give between two snapshots."""
    added = new.services.keys() - old.services.keys()
    removed = old.services.keys() - new.services.keys()
    updated = {
        k for k in new.services.keys() & old.services.keys() if new.services[k] != old.services[k]
    }
    changed = {
        k
        for k in new.endpoints.keys() | old.endpoints.keys()
        if new.endpoints_of(k) != old.endpoints_of(k)
    }
    stale = tuple(
        (k, ep)
        for k in changed
        if k.protocol == "UDP"
        for ep in old.endpoints_of(k)
        if ep.key not in {e.key for e in new.endpoints_of(k)}
    )
    return SyncDelta(
        frozenset(added), frozenset(updated), frozenset(removed), frozenset(changed), stale
    )
