"""The repair loop's decisions: given the Services and the records, what to create, free, report.

Pure: the loop in `repair.py` lists, calls `plan_repair`, and applies the plan.
One routine serves ClusterIPs and node ports; `Wording` holds what differs.

Why a leak is freed only after several passes: the records and the Services
are listed one after the other, not in one snapshot, so a Service deleted
between the two lists (its record goes in the same transaction) makes its
record look leaked for one pass. Freeing only what stayed leaked, at the same
record version, across `threshold` consecutive passes never frees a live value.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kubesvc.allocator import records
from kubesvc.allocator.records import Owner

V = TypeVar("V", bound=Hashable)

LEAK_THRESHOLD = 3


@dataclass(frozen=True)
class Claim(Generic[V]):
    """A Service holding a value in its spec."""

    value: V
    owner: Owner
    created: str = ""  # creationTimestamp: the oldest claimant wins a contested value
    resource_version: int = 0


@dataclass(frozen=True)
class Held(Generic[V]):
    """An allocation record in storage."""

    value: V
    owner: Owner | None  # None: a malformed record (always a leak)
    resource_version: int


@dataclass(frozen=True)
class Problem:
    """Something to report as a Warning Event on the Service `owner`."""

    owner: Owner
    reason: str
    message: str


@dataclass(frozen=True)
class Wording:
    """Event reasons and messages of one allocation space (Kubernetes' own)."""

    out_of_range: str
    already_allocated: str
    not_allocated: str
    describe: Callable[[Any], str]  # "Cluster IP [IPv4]:127.96.0.9" / "Port 30080"
    range_text: str

    def out_of_range_message(self, value: Any) -> str:
        return (
            f"{self.describe(value)} is not within the configured range {self.range_text}; "
            "please recreate service"
        )

    def already_allocated_message(self, value: Any) -> str:
        return f"{self.describe(value)} was assigned to multiple services; please recreate service"

    def not_allocated_message(self, value: Any) -> str:
        return f"{self.describe(value)} is not allocated; repairing"


def ip_wording(range_text: str) -> Wording:
    return Wording(
        "ClusterIPOutOfRange",
        "ClusterIPAlreadyAllocated",
        "ClusterIPNotAllocated",
        lambda ip: f"Cluster IP [{'IPv6' if ':' in str(ip) else 'IPv4'}]:{ip}",
        range_text,
    )


def port_wording(range_text: str) -> Wording:
    return Wording(
        "PortOutOfRange",
        "PortAlreadyAllocated",
        "PortNotAllocated",
        lambda port: f"Port {port}",
        range_text,
    )


@dataclass
class RepairPlan(Generic[V]):
    """What one pass does: records to create and delete, problems to report.

    `leaks` is the leak bookkeeping to hand to the next pass: (value, record
    version) → consecutive passes it has been seen leaked.
    """

    create: list[tuple[V, Owner]] = field(default_factory=list)
    delete: list[tuple[V, int]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    leaks: dict[tuple[V, int], int] = field(default_factory=dict)


def plan_repair(
    claims: Iterable[Claim[V]],
    held: Iterable[Held[V]],
    in_range: Callable[[V], bool],
    wording: Wording,
    *,
    records_rv: int,
    leaks: Mapping[tuple[V, int], int],
    threshold: int = LEAK_THRESHOLD,
) -> RepairPlan[V]:
    """Reconcile Services' claims with the records listed at `records_rv`.

    - A value claimed by Services but without a record gets one, for the oldest
      claimant; the others are reported as duplicates. A claim written after
      the records were listed (`resource_version > records_rv`) is left for the
      next pass: its record may simply not have been listed yet.
    - A value claimed by several Services is reported on every claimant but the
      holder (`already_allocated`).
    - A claimed value outside the range is reported (`out_of_range`) and never
      recreated; a record for it is kept while a claimant holds it.
    - A record whose owner does not claim its value is a leak; it is freed (its
      deletion planned at the listed version) on the `threshold`-th consecutive
      pass that sees it so.
    """
    plan: RepairPlan[V] = RepairPlan()
    by_value: dict[V, list[Claim[V]]] = {}
    for claim in claims:
        same = by_value.setdefault(claim.value, [])
        if not any(c.owner.same_service(claim.owner) for c in same):
            same.append(claim)
    by_record = {h.value: h for h in held}

    for value, claimants in by_value.items():
        claimants.sort(key=lambda c: (c.created, str(c.owner)))
        if not in_range(value):
            plan.problems.extend(
                Problem(c.owner, wording.out_of_range, wording.out_of_range_message(value))
                for c in claimants
            )
            continue
        record = by_record.get(value)
        if record is not None:
            holder = _holder(record, claimants)
            if holder is None:
                continue  # held by a non-claimant: a leak (below); claimants wait for it
            duplicates = [c for c in claimants if c is not holder]
        else:
            settled = [c for c in claimants if c.resource_version <= records_rv]
            if not settled:
                continue
            winner = settled[0]
            plan.create.append((value, winner.owner))
            plan.problems.append(
                Problem(winner.owner, wording.not_allocated, wording.not_allocated_message(value))
            )
            duplicates = [c for c in claimants if c is not winner]
        plan.problems.extend(
            Problem(c.owner, wording.already_allocated, wording.already_allocated_message(value))
            for c in duplicates
        )

    for record in by_record.values():
        if _holder(record, by_value.get(record.value, [])) is not None:
            continue
        mark = (record.value, record.resource_version)
        seen = leaks.get(mark, 0) + 1
        if seen >= threshold:
            plan.delete.append(mark)
        else:
            plan.leaks[mark] = seen
    return plan


def _holder(record: Held[V], claimants: list[Claim[V]]) -> Claim[V] | None:
    if record.owner is None:
        return None
    return next((c for c in claimants if record.owner.same_service(c.owner)), None)


# ------------------------------------------------- reading the listed objects


def _rv(obj: Mapping[str, Any]) -> int:
    meta = obj.get("metadata")
    try:
        return int(meta.get("resourceVersion", 0)) if isinstance(meta, Mapping) else 0
    except (TypeError, ValueError):
        return 0


def _created(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    value = meta.get("creationTimestamp") if isinstance(meta, Mapping) else None
    return value if isinstance(value, str) else ""


def ip_claims(services: Iterable[Mapping[str, Any]]) -> list[Claim[str]]:
    """Each Service's ClusterIPs (canonical spelling) as claims."""
    out: list[Claim[str]] = []
    for svc in services:
        owner = records.service_owner(svc)
        for ip in records.claimed_ips(svc):
            if records.is_ip(ip):
                out.append(Claim(records.canonical_ip(ip), owner, _created(svc), _rv(svc)))
    return out


def node_port_claims(services: Iterable[Mapping[str, Any]]) -> list[Claim[int]]:
    """Each Service's node ports as claims."""
    return [
        Claim(port, records.service_owner(svc), _created(svc), _rv(svc))
        for svc in services
        for port in records.claimed_node_ports(svc)
    ]


def ip_held(items: Iterable[Mapping[str, Any]]) -> list[Held[str]]:
    out: list[Held[str]] = []
    for record in items:
        ip = records.ip_of_record(record)
        if ip is not None and records.is_ip(ip):
            out.append(Held(records.canonical_ip(ip), records.record_owner(record), _rv(record)))
    return out


def node_port_held(items: Iterable[Mapping[str, Any]]) -> list[Held[int]]:
    out: list[Held[int]] = []
    for record in items:
        port = records.port_of_record(record)
        if port is not None:
            out.append(Held(port, records.record_owner(record), _rv(record)))
    return out
