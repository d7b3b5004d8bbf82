"""ClusterIP and node-port allocation inside the Service write path.

Every Service create, update and delete is ONE storage transaction that also
creates the allocation records of the values the Service newly holds and
deletes those of the values it gives up:

- create: ``[Create(service), Create(ip record), Create(node-port record)…]``
- update: ``[Update(service, expected_rv), Create(new records)…, Delete(released records, their rv)…]``
- delete: ``[Delete(service, expected_rv), Delete(its records, their rv)…]``

A record is created with `Create`, which fails if the key exists, so two API
servers on one store can never hand out one value twice, whatever their
memories say. The in-memory `Pool` is only a hint that makes a good first
guess likely; a lost race (KeyExists on a picked value) marks the value taken
and tries the next candidate. A release deletes a record only at the version
read and only if it names this Service, so it never frees another's value.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kubesvc.allocator import records
from kubesvc.allocator.plan import (
    ALREADY_ALLOCATED_IP,
    ALREADY_ALLOCATED_PORT,
    CLUSTER_IPS,
    HEALTH_CHECK,
    ServicePlan,
    plan_service,
    range_full_error,
)
from kubesvc.allocator.ranges import PortRange, ServiceCIDR, candidate_offsets
from kubesvc.allocator.records import Owner
from kubesvc.api import errors
from kubesvc.api.errors import StatusError
from kubesvc.api.field import FieldError, invalid
from kubesvc.storage.errors import Conflict, KeyExists, KeyNotFound
from kubesvc.storage.interface import (
    Create,
    Delete,
    Store,
    TxnOp,
    Update,
    resource_version_of,
    same_content,
)

log = logging.getLogger("kubesvc.allocator")

Obj = dict[str, Any]
V = TypeVar("V", str, int)

# Transactions one write may spend on lost races and moved records before giving up.
MAX_ATTEMPTS = 64


@dataclass
class Pool(Generic[V]):
    """A hint of which values of one range are taken, plus this server's in-flight picks.

    `used` is refreshed from storage (`load`) at start, by every repair pass and
    whenever the pool looks full; this server's own commits keep it current in
    between. `pending` holds values picked by requests whose transaction has
    not finished, so concurrent requests of this server pick different values.
    """

    space: Any  # ServiceCIDR (values are str) or PortRange (values are int)
    prefix: str
    value_of_record: Callable[[Obj], V | None]
    rng: random.Random = field(default_factory=random.Random)
    used: set[int] = field(default_factory=set)
    pending: set[int] = field(default_factory=set)

    def taken(self, offset: int) -> bool:
        return offset in self.used or offset in self.pending

    def candidates(self) -> Iterator[int]:
        return candidate_offsets(self.space.size, self.space.static_size, self.taken, self.rng)

    def load(self, items: Iterable[Obj]) -> None:
        """Replace the hint by the records listed from storage."""
        used: set[int] = set()
        for record in items:
            value = self.value_of_record(record)
            offset = self.space.offset_of(value) if value is not None else None
            if offset is not None:
                used.add(offset)
        self.used = used

    async def reload(self, store: Store) -> None:
        self.load((await store.list(self.prefix)).items)

    def mark(self, value: V, used: bool) -> None:
        offset = self.space.offset_of(value)
        if offset is None:
            return
        if used:
            self.used.add(offset)
        else:
            self.used.discard(offset)

    @property
    def free(self) -> int:
        """How many values the hint believes free (for logs and tests)."""
        return self.space.size - len(self.used | self.pending)


class _Picks(Generic[V]):
    """The dynamic picks of one request, reserved in the pool until the request ends."""

    def __init__(self, pool: Pool[V], store: Store) -> None:
        self.pool = pool
        self.store = store
        self.held: list[int] = []
        self._candidates: Iterator[int] | None = None
        self._reloaded = False

    async def pick(self, avoid: Iterable[V] = ()) -> V | None:
        """A value believed free, reserved; None once even a fresh look at storage finds none.

        Values in `avoid` are skipped (but not marked taken).
        """
        skip = {self.pool.space.offset_of(v) for v in avoid}
        while True:
            if self._candidates is None:
                self._candidates = self.pool.candidates()
            for offset in self._candidates:
                if offset in skip:
                    continue
                self.pool.pending.add(offset)
                self.held.append(offset)
                return self.pool.space.value_at(offset)
            if self._reloaded:
                return None
            # The hint says full; it may be stale (another server freed values).
            self._reloaded = True
            await self.pool.reload(self.store)
            self._candidates = None

    def lost(self, value: V) -> None:
        """Another writer holds `value`: remember that, and drop our reservation."""
        offset = self.pool.space.offset_of(value)
        if offset is None:
            return
        self.pool.used.add(offset)
        self.pool.pending.discard(offset)
        if offset in self.held:
            self.held.remove(offset)

    def finish(self, committed: Iterable[V]) -> None:
        """End the request: committed picks become used, the rest return to the pool."""
        keep = {self.pool.space.offset_of(v) for v in committed}
        for offset in self.held:
            self.pool.pending.discard(offset)
            if offset in keep:
                self.pool.used.add(offset)
        self.held = []


def _invalid(svc: Obj, errs: list[FieldError]) -> StatusError:
    name = (svc.get("metadata") or {}).get("name") or ""
    return errors.invalid("Service", name, errs)


def _filled(svc: Obj, ip: str | None, node_ports: dict[int, int]) -> Obj:
    """`svc` with the picked ClusterIP and node ports written into its spec."""
    out = copy.deepcopy(svc)
    spec = out["spec"]
    if ip is not None:
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
    elif not spec.get("clusterIP") and isinstance(spec.get("clusterIPs"), list):
        # Only clusterIPs given: clusterIP mirrors its first entry, as Kubernetes keeps them.
        first = spec["clusterIPs"][0] if spec["clusterIPs"] else None
        if isinstance(first, str) and first:
            spec["clusterIP"] = first
    for index, port in node_ports.items():
        if index == HEALTH_CHECK:
            spec["healthCheckNodePort"] = port
        else:
            spec["ports"][index]["nodePort"] = port
    return out


class ServiceAllocator:
    """Allocates ClusterIPs from `cidr` and node ports from `ports`, atomically with Service writes."""

    def __init__(
        self,
        store: Store,
        cidr: ServiceCIDR,
        ports: PortRange,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.cidr = cidr
        self.ports = ports
        rng = rng or random.Random()
        self.ips: Pool[str] = Pool(cidr, records.IP_PREFIX, records.ip_of_record, rng)
        self.node_ports: Pool[int] = Pool(
            ports, records.NODE_PORT_PREFIX, records.port_of_record, rng
        )

    async def load(self) -> None:
        """Fill the in-memory hints from storage (at start; repair passes refresh them)."""
        await self.ips.reload(self.store)
        await self.node_ports.reload(self.store)

    # ------------------------------------------------------------------ writes

    async def create(self, key: str, svc: Obj, *, dry_run: bool = False) -> Obj:
        """Store a new, validated Service with its ClusterIP and node ports, in one transaction.

        Raises StatusError 422 for a value outside its range, already held, or an
        exhausted range; storage's KeyExists if the Service exists (the caller
        translates it to 409 AlreadyExists). With `dry_run`, checks and picks but
        writes nothing.
        """
        return await self._write(key, svc, None, dry_run=dry_run)

    async def update(
        self,
        key: str,
        change: Callable[[Obj], Awaitable[Obj]],
        *,
        dry_run: bool = False,
    ) -> Obj:
        """Read the Service, apply `change`, and write the result with its allocation changes.

        `change` gets a copy of the stored Service and returns the new one (or the
        stored one for "nothing to do"); it may raise to refuse. Retries from a
        fresh read when the Service changed under it.
        """
        for _ in range(MAX_ATTEMPTS):
            current = await self.store.get(key)
            new = await change(copy.deepcopy(current))
            if new is current or same_content(new, current):
                return current
            if dry_run:
                return await self._write(key, new, current, dry_run=True)
            try:
                return await self._write(key, new, current, dry_run=False)
            except Conflict as err:
                if err.key != key:
                    raise
        raise errors.conflict(
            "services", key.rsplit("/", 1)[-1], "the Service keeps changing; try again"
        )

    async def delete(self, key: str, current: Obj, expected_rv: int | None) -> Obj:
        """Delete the Service and release its records, in one transaction.

        With `expected_rv` None the delete is unconditional: a Service changed
        since `current` was read is read again (its values may have changed).
        """
        for _ in range(MAX_ATTEMPTS):
            owner = records.service_owner(current)
            releases, freed_ips, freed_ports = await self._release_ops(
                records.claimed_ips(current), records.claimed_node_ports(current), owner
            )
            rv = expected_rv if expected_rv is not None else resource_version_of(current)
            try:
                result = await self.store.txn([Delete(key, rv), *releases])
            except (Conflict, KeyNotFound) as err:
                if err.key == key:
                    if expected_rv is not None or isinstance(err, KeyNotFound):
                        raise
                    current = await self.store.get(key)
                continue  # a record moved between our read and the delete: read again
            self._released(freed_ips, freed_ports)
            deleted = result.objects[0]
            assert deleted is not None
            return deleted
        raise errors.conflict(
            "services", key.rsplit("/", 1)[-1], "its allocations keep changing; try again"
        )

    async def _write(self, key: str, new: Obj, old: Obj | None, *, dry_run: bool) -> Obj:
        """Allocate what `new` needs beyond `old`, and write both in one transaction."""
        plan = plan_service(new, old, self.cidr, self.ports)
        if plan.errors:
            raise _invalid(new, plan.errors)
        owner = records.service_owner(new)
        ip_picks: _Picks[str] = _Picks(self.ips, self.store)
        port_picks: _Picks[int] = _Picks(self.node_ports, self.store)
        picked_ip: str | None = None
        picked_ports: dict[int, int] = {}
        claim_ips, claim_ports = list(plan.claim_ips), list(plan.claim_ports)
        committed: list[Any] = []
        try:
            releases, freed_ips, freed_ports = (
                await self._release_ops(plan.release_ips, plan.release_ports, owner)
                if old is not None and not dry_run
                else ([], plan.release_ips, plan.release_ports)
            )
            for _ in range(MAX_ATTEMPTS):
                if plan.dynamic_ip and picked_ip is None:
                    picked_ip = await ip_picks.pick(avoid=plan.release_ips)
                    if picked_ip is None:
                        raise _invalid(new, [range_full_error("ip", self.cidr, self.ports)])
                for index in plan.dynamic_ports:
                    if index not in picked_ports:
                        # One key may appear once in a transaction: never pick a value
                        # this write also claims or releases.
                        avoid = {*claim_ports, *plan.release_ports, *picked_ports.values()}
                        port = await port_picks.pick(avoid=avoid)
                        if port is None:
                            raise _invalid(
                                new, [range_full_error("port", self.cidr, self.ports, index)]
                            )
                        picked_ports[index] = port
                result = _filled(new, picked_ip, picked_ports)
                if dry_run:
                    await self._check_claims(new, plan, claim_ips, claim_ports, owner)
                    return result
                ips = claim_ips + ([picked_ip] if picked_ip is not None else [])
                node_ports = claim_ports + list(picked_ports.values())
                ops: list[TxnOp] = [
                    Update(key, result, resource_version_of(old))
                    if old is not None
                    else Create(key, result)
                ]
                ops += [Create(records.ip_key(ip), records.ip_record(ip, owner)) for ip in ips]
                ops += [
                    Create(records.node_port_key(p), records.node_port_record(p, owner))
                    for p in node_ports
                ]
                ops += releases
                try:
                    written = await self.store.txn(ops)
                except KeyExists as err:
                    if err.key == key:
                        raise
                    if picked_ip is not None and err.key == records.ip_key(picked_ip):
                        ip_picks.lost(picked_ip)  # another writer won it: pick again
                        picked_ip = None
                        continue
                    lost_port = next(
                        (i for i, p in picked_ports.items() if err.key == records.node_port_key(p)),
                        None,
                    )
                    if lost_port is not None:
                        port_picks.lost(picked_ports.pop(lost_port))
                        continue
                    # A value the user chose: ours already (a repaired record), or taken.
                    if await self._owned_by(err.key, owner):
                        claim_ips = [i for i in claim_ips if records.ip_key(i) != err.key]
                        claim_ports = [
                            p for p in claim_ports if records.node_port_key(p) != err.key
                        ]
                        continue
                    raise _invalid(new, [self._taken_error(err.key, plan)]) from None
                except (Conflict, KeyNotFound) as err:
                    if err.key == key:
                        raise
                    # A record we release changed between the read and the write.
                    releases, freed_ips, freed_ports = await self._release_ops(
                        plan.release_ips, plan.release_ports, owner
                    )
                    continue
                committed = [*ips, *node_ports]
                for ip in ips:
                    self.ips.mark(ip, True)
                for port in node_ports:
                    self.node_ports.mark(port, True)
                self._released(freed_ips, freed_ports)
                stored = written.objects[0]
                assert stored is not None
                return stored
            raise errors.service_unavailable(
                "failed to allocate for the Service: too many concurrent allocations; try again"
            )
        finally:
            ip_picks.finish(v for v in committed if isinstance(v, str))
            port_picks.finish(v for v in committed if isinstance(v, int))

    # ----------------------------------------------------------------- helpers

    async def _release_ops(
        self, ips: Iterable[str], ports: Iterable[int], owner: Owner
    ) -> tuple[list[TxnOp], list[str], list[int]]:
        """Deletes for the records of `ips` and `ports` that name `owner`, at the version read.

        A missing record, or one naming another Service, is left alone: the value
        is not this Service's to free (the repair loop sorts such states out).
        """
        ops: list[TxnOp] = []
        freed_ips: list[str] = []
        freed_ports: list[int] = []
        for ip in ips:
            rv = await self._owned_rv(records.ip_key(ip), owner)
            if rv is not None:
                ops.append(Delete(records.ip_key(ip), rv))
                freed_ips.append(ip)
        for port in ports:
            rv = await self._owned_rv(records.node_port_key(port), owner)
            if rv is not None:
                ops.append(Delete(records.node_port_key(port), rv))
                freed_ports.append(port)
        return ops, freed_ips, freed_ports

    async def _owned_rv(self, key: str, owner: Owner, *, releasing: bool = True) -> int | None:
        """The version of the record at `key` if it names `owner`, else None."""
        try:
            record = await self.store.get(key)
        except KeyNotFound:
            return None
        holder = records.record_owner(record)
        if holder is None or not holder.same_service(owner):
            if releasing:
                log.warning("not releasing %s: it is held by %s, not %s", key, holder, owner)
            return None
        return resource_version_of(record)

    async def _owned_by(self, key: str, owner: Owner) -> bool:
        return await self._owned_rv(key, owner, releasing=False) is not None

    def _released(self, ips: Iterable[str], ports: Iterable[int]) -> None:
        for ip in ips:
            self.ips.mark(ip, False)
        for port in ports:
            self.node_ports.mark(port, False)

    def _taken_error(self, key: str, plan: ServicePlan) -> FieldError:
        if key.startswith(records.IP_PREFIX):
            ip = key.removeprefix(records.IP_PREFIX)
            return invalid(CLUSTER_IPS.index(0), ip, ALREADY_ALLOCATED_IP)
        port = int(key.removeprefix(records.NODE_PORT_PREFIX))
        return invalid(plan.port_paths.get(port, "spec.ports"), port, ALREADY_ALLOCATED_PORT)

    async def _check_claims(
        self, svc: Obj, plan: ServicePlan, ips: list[str], ports: list[int], owner: Owner
    ) -> None:
        """Dry run: the user's values must be free (or this Service's), as a real write would find."""
        keys = [records.ip_key(ip) for ip in ips] + [records.node_port_key(p) for p in ports]
        for key in keys:
            try:
                record = await self.store.get(key)
            except KeyNotFound:
                continue
            holder = records.record_owner(record)
            if holder is None or not holder.same_service(owner):
                raise _invalid(svc, [self._taken_error(key, plan)])

    # ------------------------------------------------------------------- reads

    async def ip_owners(self, addresses: Iterable[str]) -> dict[str, str]:
        """For each address that is some Service's ClusterIP, that Service as `ns/name`.

        One point read of the per-IP record per distinct address, so the answer is
        storage's (not this server's hint) and its cost grows with the object
        checked, not with the cluster (about 20 µs a read on SQLite).
        """
        canonical = {a: records.canonical_ip(a) for a in set(addresses) if records.is_ip(a)}
        found: dict[str, Obj] = {}

        async def read(ip: str) -> None:
            with contextlib.suppress(KeyNotFound):
                found[ip] = await self.store.get(records.ip_key(ip))

        await asyncio.gather(*(read(ip) for ip in set(canonical.values())))
        owners: dict[str, str] = {}
        for address, ip in canonical.items():
            holder = records.record_owner(found[ip]) if ip in found else None
            if holder is not None:
                owners[address] = str(holder)
        return owners
