"""DELETE of an object that changes between the API server's read and its write.

A node agent finishing a pod's graceful deletion races its own last status
write; a Service may be relabelled while someone deletes it. Without a
resourceVersion precondition the delete is of the object as it is now (the
Kubernetes API server reads again); with one, the caller gets its 409.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from kubesvc.allocator.ranges import parse_port_range, parse_service_cidr
from kubesvc.allocator.service import ServiceAllocator
from kubesvc.api.errors import StatusError
from kubesvc.api.resources import BY_KIND
from kubesvc.apiserver.rest import Preconditions, Rest, WriteOptions
from kubesvc.storage.interface import Delete, TxnOp, TxnResult, Update
from kubesvc.storage.sqlite import SqliteStore

PODS, SERVICES = BY_KIND["Pod"], BY_KIND["Service"]


class MeddlingStore(SqliteStore):
    """Before the next `meddle` deletes of a key, someone else writes that key first."""

    meddle = 0

    async def txn(self, ops: Sequence[TxnOp]) -> TxnResult:
        deletes = [op.key for op in ops if isinstance(op, Delete)]
        if deletes and self.meddle > 0:
            self.meddle -= 1
            current = copy.deepcopy(await self.get(deletes[0]))
            labels = current["metadata"].setdefault("labels", {})
            labels["touched"] = str(int(labels.get("touched", "0")) + 1)
            await super().txn([Update(deletes[0], current)])
        return await super().txn(ops)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MeddlingStore]:
    async with await MeddlingStore.open(tmp_path / "kubesvc.db") as opened:
        yield opened  # type: ignore[misc]


async def rest_over(store: MeddlingStore) -> Rest:
    allocator = ServiceAllocator(
        store, parse_service_cidr("198.19.0.0/24"), parse_port_range("30000-30099")
    )
    await allocator.load()
    rest = Rest(store, allocator=allocator)
    await rest.ensure_initial_namespaces()
    return rest


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "command": ["sleep", "9"]}]},
    }


async def test_a_terminating_pods_last_delete_survives_a_concurrent_status_write(
    store: MeddlingStore,
) -> None:
    rest = await rest_over(store)
    created = await rest.create(PODS, "default", pod("web"), WriteOptions())
    uid = created["metadata"]["uid"]
    marked = await rest.delete(PODS, "default", "web", Preconditions(), grace_period_s=30)
    assert marked["metadata"]["deletionTimestamp"]
    store.meddle = 3  # the agent's status writes land between each read and delete
    await rest.delete(PODS, "default", "web", Preconditions(uid=uid), grace_period_s=0)
    with pytest.raises(StatusError) as gone:
        await rest.get(PODS, "default", "web")
    assert gone.value.code == 404


async def test_a_service_deleted_while_relabelled_goes_and_frees_its_cluster_ip(
    store: MeddlingStore,
) -> None:
    rest = await rest_over(store)
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}]},
    }
    created = await rest.create(SERVICES, "default", svc, WriteOptions())
    ip = created["spec"]["clusterIP"]
    store.meddle = 2
    await rest.delete(SERVICES, "default", "web", Preconditions())
    records = await store.list("/registry/ipaddresses/")
    assert ip not in [r["metadata"]["name"] for r in records.items]


async def test_a_resource_version_precondition_still_gets_its_conflict(
    store: MeddlingStore,
) -> None:
    rest = await rest_over(store)
    created = await rest.create(PODS, "default", pod("web"), WriteOptions())
    store.meddle = 1
    with pytest.raises(StatusError) as conflict:
        await rest.delete(
            PODS,
            "default",
            "web",
            Preconditions(resource_version=created["metadata"]["resourceVersion"]),
            grace_period_s=0,
        )
    assert conflict.value.code == 409
    assert (await rest.get(PODS, "default", "web"))["metadata"]["labels"]["touched"] == "1"
