"""The repair loop: reconcile allocation records with Services, at start and every interval.

Each pass lists the records (ClusterIPs, node ports) and then the Services,
asks `reconcile.plan_repair` what to do, and does it: recreates missing
records, frees records leaked for `threshold` consecutive passes, and reports
duplicates and out-of-range values as Warning Events on the Services. It then
refreshes the allocator's in-memory hints from what it listed.

All writes are conditional (Create fails on an existing key, Delete names the
record version it judged), so a pass racing with Service writes, or with the
loop of another API server, changes nothing it did not mean to.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubesvc.allocator import records
from kubesvc.allocator.reconcile import (
    LEAK_THRESHOLD,
    Problem,
    RepairPlan,
    ip_claims,
    ip_held,
    ip_wording,
    node_port_claims,
    node_port_held,
    plan_repair,
    port_wording,
)
from kubesvc.allocator.service import ServiceAllocator
from kubesvc.api.resources import BY_KIND
from kubesvc.storage.errors import Conflict, KeyExists, KeyNotFound, StorageError
from kubesvc.storage.interface import Store

log = logging.getLogger("kubesvc.allocator.repair")

IP_COMPONENT = "ipallocator-repair-controller"
PORT_COMPONENT = "portallocator-repair-controller"

EVENTS = BY_KIND["Event"]

Obj = dict[str, Any]


@dataclass
class PassReport:
    """What one pass did (for logs and tests)."""

    created: list[str] = field(default_factory=list)  # record keys recreated
    freed: list[str] = field(default_factory=list)  # record keys of leaks freed
    problems: list[Problem] = field(default_factory=list)
    leaks_pending: int = 0  # leaks seen, not yet freed


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_name(problem: Problem) -> str:
    """A stable Event name per (Service, reason, message): a repeat bumps `count` instead of
    adding an Event each pass."""
    digest = hashlib.sha256(
        f"{problem.owner.uid}\0{problem.reason}\0{problem.message}".encode()
    ).hexdigest()
    return f"{problem.owner.name}.{digest[:16]}"


def event_object(problem: Problem, component: str, now: str) -> Obj:
    """A core/v1 Warning Event about `problem` on its Service."""
    owner = problem.owner
    return {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {
            "name": event_name(problem),
            "namespace": owner.namespace,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": now,
        },
        "involvedObject": {
            "kind": "Service",
            "apiVersion": "v1",
            "namespace": owner.namespace,
            "name": owner.name,
            "uid": owner.uid,
        },
        "reason": problem.reason,
        "message": problem.message,
        "type": "Warning",
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": "",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


async def record_event(store: Store, problem: Problem, component: str) -> None:
    """Write the Event for `problem`, or count one more occurrence of an existing one."""
    now = _now()
    event = event_object(problem, component, now)
    key = EVENTS.key(problem.owner.namespace, event["metadata"]["name"])
    try:
        await store.create(key, event)
        return
    except KeyExists:
        pass

    def bump(current: Obj) -> Obj:
        current["count"] = int(current.get("count") or 1) + 1
        current["lastTimestamp"] = now
        return current

    with contextlib.suppress(KeyNotFound):  # deleted meanwhile: the next pass writes it anew
        await store.guaranteed_update(key, bump)


class RepairLoop:
    """Runs repair passes for one allocator: `run_once`, or `start` for a loop every `interval` s."""

    def __init__(
        self,
        store: Store,
        allocator: ServiceAllocator,
        interval: float,
        *,
        threshold: int = LEAK_THRESHOLD,
    ) -> None:
        self.store = store
        self.allocator = allocator
        self.interval = interval
        self.threshold = threshold
        self.passes = 0
        self._ip_leaks: dict[tuple[str, int], int] = {}
        self._port_leaks: dict[tuple[int, int], int] = {}
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> PassReport:
        """One pass: list, plan, apply, refresh the allocator's hints."""
        report = PassReport()
        allocator = self.allocator
        # Records first, Services second: see reconcile.plan_repair on why the order matters.
        ip_list = await self.store.list(records.IP_PREFIX)
        port_list = await self.store.list(records.NODE_PORT_PREFIX)
        services = (await self.store.list(records.SERVICE_PREFIX)).items

        ip_plan = plan_repair(
            ip_claims(services),
            ip_held(ip_list.items),
            lambda ip: allocator.cidr.offset_of(ip) is not None,
            ip_wording(str(allocator.cidr)),
            records_rv=ip_list.resource_version,
            leaks=self._ip_leaks,
            threshold=self.threshold,
        )
        port_plan = plan_repair(
            node_port_claims(services),
            node_port_held(port_list.items),
            lambda port: allocator.ports.offset_of(port) is not None,
            port_wording(str(allocator.ports)),
            records_rv=port_list.resource_version,
            leaks=self._port_leaks,
            threshold=self.threshold,
        )
        self._ip_leaks, self._port_leaks = ip_plan.leaks, port_plan.leaks

        allocator.ips.load(ip_list.items)
        allocator.node_ports.load(port_list.items)
        await self._apply(ip_plan, records.ip_key, records.ip_record, IP_COMPONENT, report)
        await self._apply(
            port_plan, records.node_port_key, records.node_port_record, PORT_COMPONENT, report
        )
        for ip, _owner in ip_plan.create:
            allocator.ips.mark(ip, True)
        for port, _owner in port_plan.create:
            allocator.node_ports.mark(port, True)
        for ip, _rv in ip_plan.delete:
            allocator.ips.mark(ip, False)
        for port, _rv in port_plan.delete:
            allocator.node_ports.mark(port, False)
        report.leaks_pending = len(ip_plan.leaks) + len(port_plan.leaks)
        self.passes += 1
        return report

    async def _apply(
        self,
        plan: RepairPlan[Any],
        key_of: Any,
        record_of: Any,
        component: str,
        report: PassReport,
    ) -> None:
        for value, owner in plan.create:
            key = key_of(value)
            try:
                await self.store.create(key, record_of(value, owner))
            except KeyExists:
                continue  # written meanwhile (a Service write or another server's pass)
            log.warning("repair: %s had no allocation record; recreated it for %s", key, owner)
            report.created.append(key)
        for value, rv in plan.delete:
            key = key_of(value)
            try:
                await self.store.delete(key, expected_rv=rv)
            except (KeyNotFound, Conflict):
                continue  # released or re-used meanwhile: not a leak any more
            log.warning(
                "repair: freed %s: no Service claimed it for %d passes", key, self.threshold
            )
            report.freed.append(key)
        for problem in plan.problems:
            log.warning("repair: Service %s: %s", problem.owner, problem.message)
            report.problems.append(problem)
            try:
                await record_event(self.store, problem, component)
            except StorageError as err:
                log.warning("repair: cannot record an event for %s: %s", problem.owner, err)

    # ------------------------------------------------------------------ loop

    def start(self) -> None:
        """Run a pass every `interval` seconds in the background until `close`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="ip-repair")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                report = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed pass must not end the loop; the next one retries
                log.exception("repair pass failed")
                continue
            if report.created or report.freed or report.leaks_pending:
                log.info(
                    "repair pass %d: recreated %d, freed %d, %d leak(s) being watched",
                    self.passes,
                    len(report.created),
                    len(report.freed),
                    report.leaks_pending,
                )

    async def close(self) -> None:
        """Stop the loop (a pass in progress is cancelled). Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
