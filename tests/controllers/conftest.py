"""The controllers' tests against a real API server: one per test module, a namespace per test."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import pytest

from kubesvc.client.http import Client
from kubesvc.client.kubeconfig import load_kubeconfig
from kubesvc.controllers.manager import ControllerManager
from tests.apiserver.conftest import Cluster, start_cluster, stop_cluster

_namespaces = itertools.count(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("ctl"))
    yield running
    stop_cluster(running.process)


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[Client]:
    async with Client(load_kubeconfig(str(cluster.kubeconfig))) as client:
        yield client


@pytest.fixture
async def manager(cluster: Cluster) -> AsyncIterator[ControllerManager]:
    mgr = ControllerManager(load_kubeconfig(str(cluster.kubeconfig)))
    await mgr.start()
    yield mgr
    await mgr.stop()


@pytest.fixture
async def ns(api: Client) -> str:
    name = f"ctl-{next(_namespaces)}"
    await api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name
