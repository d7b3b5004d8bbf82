"""Helpers for the proxy tests: backends on pod addresses, clients, addresses that do not collide.

Every address is on loopback: ClusterIPs from 127.96.0.0/12, pod IPs from
127.244.0.0/16 (host mode). Servers are closed by the fixture that made them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from kubesvc.proxy.proxyprotocol import parse
from tests.waiting import eventually_async as eventually  # noqa: F401  (the proxy tests' name)

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
    uvloop = None  # type: ignore[assignment]


def pytest_asyncio_loop_factories(config: Any, item: Any) -> Mapping[str, Callable[[], Any]]:
    """The proxy runs on uvloop in production, so its socket tests do too."""
    if uvloop is not None:
        return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


# Per-process address blocks, so that test runs in parallel (or by colleagues) do not collide.
_BLOCK = os.getpid() % 200 + 20
_service_ips = itertools.count(1)
_pod_ips = itertools.count(1)


def cluster_ip() -> str:
    n = next(_service_ips)
    return f"127.{96 + _BLOCK % 16}.{_BLOCK}.{n % 250 + 1}"


def pod_ip() -> str:
    n = next(_pod_ips)
    return f"127.244.{_BLOCK}.{n % 250 + 1}"


class Backends:
    """TCP and UDP servers on pod IPs. A TCP backend first sends its name and a newline, then
    echoes what it gets until EOF, then closes; a UDP backend echoes each datagram."""

    def __init__(self) -> None:
        self.servers: list[asyncio.base_events.Server] = []
        self.transports: list[asyncio.DatagramTransport] = []
        self.hits: dict[str, int] = {}
        self.open: dict[str, int] = {}  # connections each backend holds now
        self.headers: list[Any] = []  # PROXY protocol headers received

    async def tcp(self, ip: str, port: int, *, proxy_protocol: bool = False) -> None:
        name = f"{ip}:{port}"
        self.hits.setdefault(name, 0)
        self.open.setdefault(name, 0)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.hits[name] += 1
            self.open[name] += 1
            try:
                if proxy_protocol:
                    data = b""
                    while (found := parse(data)) is None:
                        chunk = await reader.read(1)
                        if not chunk:
                            return
                        data += chunk
                    self.headers.append(found[0])
                writer.write(name.encode() + b"\n")
                while chunk := await reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()
                writer.write_eof()
                await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                self.open[name] -= 1
                writer.close()

        self.servers.append(await asyncio.start_server(handle, ip, port))

    async def udp(self, ip: str, port: int) -> None:
        name = f"{ip}:{port}"
        self.hits.setdefault(name, 0)
        hits = self.hits

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport: Any) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                hits[name] += 1
                self.transport.sendto(data, addr)

        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            Echo, local_addr=(ip, port)
        )
        self.transports.append(transport)

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for transport in self.transports:
            transport.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1)


@pytest.fixture
async def backends() -> AsyncIterator[Backends]:
    running = Backends()
    yield running
    await running.close()


async def whoami(ip: str, port: int, payload: bytes = b"", timeout_s: float = 3.0) -> str:
    """Connect through the proxy, read the backend's name, send `payload`, expect it back."""

    async def talk() -> str:
        reader, writer = await asyncio.open_connection(ip, port)
        try:
            name = (await reader.readline()).decode().strip()
            if payload:
                writer.write(payload)
            writer.write_eof()
            echoed = await reader.read()
            assert echoed == payload, (len(echoed), len(payload))
            return name
        finally:
            writer.close()

    return await asyncio.wait_for(talk(), timeout_s)


async def udp_echo(ip: str, port: int, payload: bytes, timeout_s: float = 2.0) -> tuple[bytes, Any]:
    """One datagram to (ip, port) from a new client socket; the answer and where it came from."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[tuple[bytes, Any]] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            if not answer.done():
                answer.set_result((data, addr))

    transport, _ = await loop.create_datagram_endpoint(Client, family=socket.AF_INET)
    try:
        transport.sendto(payload, (ip, port))
        return await asyncio.wait_for(answer, timeout_s)
    finally:
        transport.close()


def service(
    name: str,
    ip: str,
    ports: list[dict[str, Any]],
    *,
    namespace: str = "default",
    selector: dict[str, str] | None = None,
    affinity_s: int | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"clusterIP": ip, "ports": ports, **spec}
    if selector:
        body["selector"] = selector
    if affinity_s is not None:
        body["sessionAffinity"] = "ClientIP"
        body["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": affinity_s}}
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": body}


def endpoints(
    name: str,
    ready: list[str],
    ports: list[dict[str, Any]],
    *,
    not_ready: list[str] = (),  # type: ignore[assignment]
    namespace: str = "default",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    subset: dict[str, Any] = {"ports": ports}
    if ready:
        subset["addresses"] = [{"ip": ip} for ip in ready]
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": meta,
        "subsets": [subset] if ready or not_ready else [],
    }
