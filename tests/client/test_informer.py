"""The informer against a real API server: sync, follow, relist after 410, reconnect after a restart."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kubesvc.apiserver.app import APIServerConfig, RunningAPIServer, start_apiserver
from kubesvc.client.http import Client
from kubesvc.client.informer import Informer
from kubesvc.client.kubeconfig import load_kubeconfig
from kubesvc.storage.sqlite import SqliteStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start(data_dir: Path, port: int, history: int = 10_000) -> RunningAPIServer:
    store = await SqliteStore.open(data_dir / "kubesvc.db", history=history)
    return await start_apiserver(APIServerConfig(data_dir=data_dir, port=port), store=store)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningAPIServer]:
    running = await start(tmp_path, 0, history=5)
    yield running
    await running.close()


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"ports": [{"port": 80}]},
    }


async def until(check: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met")
        await asyncio.sleep(0.02)


async def test_informer_syncs_follows_and_tells_handlers(server: RunningAPIServer) -> None:
    async with Client(load_kubeconfig(str(server.kubeconfig))) as client:
        await client.create(service("before"))
        informer = Informer(client, "Service", "default")
        seen: list[tuple[str, str]] = []
        informer.add_handler(
            lambda kind, old, new: seen.append((kind, (new or old or {})["metadata"]["name"]))
        )
        informer.start()
        await informer.wait_synced(10)
        assert set(informer.cache) == {"default/before"}
        await client.create(service("after"))
        await client.patch("Service", "after", {"metadata": {"labels": {"x": "y"}}}, "default")
        await client.delete("Service", "before", "default")
        await until(lambda: ("DELETED", "before") in seen)
        assert seen == [
            ("ADDED", "before"),
            ("ADDED", "after"),
            ("MODIFIED", "after"),
            ("DELETED", "before"),
        ]
        assert set(informer.cache) == {"default/after"}
        assert informer.cache["default/after"]["metadata"]["labels"] == {"x": "y"}
        await informer.stop()


async def test_informer_relists_after_410_and_reports_only_the_difference(
    server: RunningAPIServer,
) -> None:
    async with Client(load_kubeconfig(str(server.kubeconfig))) as client:
        await client.create(service("keep"))
        await client.create(service("drop"))
        informer = Informer(client, "Service", "default")
        seen: list[tuple[str, str]] = []
        informer.add_handler(
            lambda kind, old, new: seen.append((kind, (new or old or {})["metadata"]["name"]))
        )
        await informer._relist()  # synced at the current version, no watch running yet
        seen.clear()
        # While the informer is away, history moves past its version and is compacted.
        await client.delete("Service", "drop", "default")
        await client.create(service("new"))
        for i in range(8):
            await client.patch(
                "Service", "keep", {"metadata": {"labels": {"n": str(i)}}}, "default"
            )
        await server.store.compact(
            int((await client.list("Service", "default"))["metadata"]["resourceVersion"])
        )
        informer.start()
        await until(lambda: informer.relists == 2 and "default/new" in informer.cache)
        assert set(informer.cache) == {"default/keep", "default/new"}
        assert sorted(seen) == [("ADDED", "new"), ("DELETED", "drop"), ("MODIFIED", "keep")]
        await informer.stop()


async def test_informer_reconnects_after_the_server_restarts(tmp_path: Path) -> None:
    port = free_port()
    server = await start(tmp_path, port)
    access = load_kubeconfig(str(server.kubeconfig))
    async with Client(access) as client:
        informer = Informer(client, "Service", "default")
        informer.start()
        await informer.wait_synced(10)
        await server.close()
        await asyncio.sleep(0.3)  # the informer sees the connection go and retries
        server = await start(tmp_path, port)
        try:
            await client.create(service("while-back"))
            await until(lambda: "default/while-back" in informer.cache)
        finally:
            await informer.stop()
            await server.close()
