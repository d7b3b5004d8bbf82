"""The health check node ports of LoadBalancer Services with `externalTrafficPolicy: Local`.

With a Local policy, a node only serves the Service's traffic through its own
endpoints, so a load balancer must know which nodes have any: it asks each
node on `spec.healthCheckNodePort`. As kube-proxy's, the answer is 200 with
the number of local endpoints when there is one, 503 when there is none:

    {"service": {"namespace": "default", "name": "web"}, "localEndpoints": 2,
     "serviceProxyHealthy": true}

`HealthChecks` is updated from each applied snapshot (its `sync` wraps the
mode's backend), binds new ports at once (so a clash is logged at that sync)
and closes the ones no Service needs any more. The counts are read when a
request comes, so they are as fresh as the last sync.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from dataclasses import dataclass

from kubesvc.proxy.model import ProxyBackend, Snapshot, SyncDelta

log = logging.getLogger("kubesvc.proxy")

MAX_REQUEST_BYTES = 8192


@dataclass(frozen=True)
class Check:
    namespace: str
    name: str
    local_endpoints: int


def desired_checks(snapshot: Snapshot, node_name: str | None) -> dict[int, Check]:
    """Health check port → what it reports, from the snapshot (pure)."""
    out: dict[int, Check] = {}
    for name, port in snapshot.services.items():
        if not port.health_check_node_port:
            continue
        local = {
            ep.ip
            for ep in snapshot.endpoints_of(name)
            if ep.ready and (node_name is None or ep.node_name == node_name)
        }
        key = port.health_check_node_port
        before = out.get(key)
        # One Service, several ports: its pods are counted once.
        count = max(len(local), before.local_endpoints if before else 0)
        out[key] = Check(name.namespace, name.name, count)
    return out


def response(check: Check) -> bytes:
    body = json.dumps(
        {
            "service": {"namespace": check.namespace, "name": check.name},
            "localEndpoints": check.local_endpoints,
            "serviceProxyHealthy": True,
        }
    ).encode()
    status = "200 OK" if check.local_endpoints else "503 Service Unavailable"
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"X-Content-Type-Options: nosniff\r\n"
        f"X-Load-Balancing-Endpoint-Weight: {check.local_endpoints}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class _Responder(asyncio.Protocol):
    """Answers one HTTP request with the port's current check, then closes."""

    def __init__(self, checks: HealthChecks, port: int) -> None:
        self.checks, self.port = checks, port
        self.buffer = b""
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses: no isinstance check.)
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer and len(self.buffer) < MAX_REQUEST_BYTES:
            return
        check = self.checks.current.get(self.port)
        if check is not None:
            self.transport.write(response(check))
        self.transport.close()


class HealthChecks:
    """The listening health check ports of this node."""

    def __init__(self, addresses: tuple[str, ...], node_name: str | None) -> None:
        self.addresses = addresses
        self.node_name = node_name
        self.current: dict[int, Check] = {}
        self.servers: dict[int, list[asyncio.AbstractServer]] = {}

    def update(self, snapshot: Snapshot) -> None:
        self.current = desired_checks(snapshot, self.node_name)
        for port in set(self.servers) - set(self.current):
            for server in self.servers.pop(port):
                server.close()
        for port in set(self.current) - set(self.servers):
            self.servers[port] = self._listen(port)

    def _listen(self, port: int) -> list[asyncio.AbstractServer]:
        loop = asyncio.get_running_loop()
        servers: list[asyncio.AbstractServer] = []
        for address in self.addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, port))
                sock.listen(64)
                sock.setblocking(False)
            except OSError as err:
                sock.close()
                log.warning(
                    "proxy: health check port %s:%d: %s", address, port, err.strerror or err
                )
                continue
            task = loop.create_task(
                loop.create_server(lambda port=port: _Responder(self, port), sock=sock)
            )
            task.add_done_callback(
                lambda t, port=port, servers=servers: self._started(t, port, servers)
            )
        return servers

    def _started(
        self,
        task: asyncio.Task[asyncio.AbstractServer],
        port: int,
        servers: list[asyncio.AbstractServer],
    ) -> None:
        if task.cancelled() or task.exception() is not None:
            log.warning("proxy: health check port %d did not start: %r", port, task.exception())
            return
        server = task.result()
        if self.servers.get(port) is servers:
            servers.append(server)
        else:
            server.close()  # no Service wants the port any more

    def close(self) -> None:
        for servers in self.servers.values():
            for server in servers:
                server.close()
        self.servers.clear()


@dataclass
class WithHealthChecks:
    """A mode's backend, and the health check ports kept in step with what it applied."""

    backend: ProxyBackend
    checks: HealthChecks

    def sync(self, snapshot: Snapshot, delta: SyncDelta) -> None:
        self.backend.sync(snapshot, delta)
        self.checks.update(snapshot)
