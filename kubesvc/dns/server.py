"""The DNS server: UDP and TCP on one port, fed by informers, optional upstream and metrics.

All query logic is in `engine.Engine` (sans-io); this module only moves
bytes, runs upstream exchanges as tasks, and wires informers to the index.

Use from the CLI:

    await serve_dns(DNSConfig(port=5353, upstreams=("/etc/resolv.conf",)), access, stop)

or `server = DNSServer(config, access=access); await server.start(); ...; await server.close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from kubesvc.client.http import Client
from kubesvc.client.informer import Informer
from kubesvc.client.kubeconfig import ClusterAccess
from kubesvc.dns.engine import Engine, Forward
from kubesvc.dns.index import ClusterIndex
from kubesvc.dns.lookup import Lookup
from kubesvc.dns.metrics import DNSMetrics, start_metrics_server
from kubesvc.dns.resolver import Resolver, ResolverConfig
from kubesvc.dns.upstream import Forwarder, parse_upstreams

log = logging.getLogger("kubesvc.dns")


@dataclass(frozen=True)
class DNSConfig:
    """How the DNS server listens and answers."""

    address: str = "127.0.0.1"
    port: int = 5353  # 0 picks a free port (the same one for UDP and TCP)
    cluster_domain: str = "cluster.local"
    ttl_s: int = 5
    # Servers for names outside the cluster ("1.1.1.1", "127.0.0.1:5300", "/etc/resolv.conf").
    # Empty: such names are REFUSED (never an open resolver).
    upstreams: tuple[str, ...] = ()
    metrics_port: int = 0  # 0 = no metrics endpoint
    metrics_address: str = ""  # default: `address`
    max_udp_payload: int = 1232  # EDNS0 buffer we advertise and answer up to (DNS flag day 2020)
    max_upstream_inflight: int = 256
    upstream_cache_entries: int = 10_000
    upstream_timeout_s: float = 2.0
    max_precomputed: int = 100_000
    endpoint_source: str = "Endpoints"  # or "EndpointSlice"
    tcp_idle_timeout_s: float = 10.0  # RFC 7766 suggests seconds, not minutes
    max_tcp_connections: int = 1024
    precompute: bool = True  # False only to measure the dnspython path (bench)
    pod_records: str = "disabled"  # or "insecure": see ResolverConfig


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.engine = server.engine
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        out = self.engine.handle(data, True)
        if out is None or self.transport is None:
            return
        if type(out) is bytes:
            self.transport.sendto(out, addr)
            return
        transport = self.transport
        self.server.forward(out, lambda reply: transport.sendto(reply, addr))  # type: ignore[arg-type]

    def error_received(self, exc: Exception) -> None:
        # ICMP errors from earlier sends (a client gone away): nothing to do.
        log.debug("dns udp: %s", exc)


class _TCPProtocol(asyncio.Protocol):
    """Length-prefixed messages; several per connection, answered as they complete (RFC 7766)."""

    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.engine = server.engine
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if len(self.server.tcp_connections) >= self.server.config.max_tcp_connections:
            transport.close()
            return
        self.server.tcp_connections.add(self)
        self._arm_idle()

    def _arm_idle(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        loop = asyncio.get_running_loop()
        self.idle = loop.call_later(self.server.config.tcp_idle_timeout_s, self._close)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._arm_idle()
        transport = self.transport
        if transport is None:
            return
        while len(self.buffer) >= 2:
            size = (self.buffer[0] << 8) | self.buffer[1]
            if size < 12:
                transport.close()  # not even a header: nothing sensible to answer
                self.buffer.clear()
                return
            if len(self.buffer) < 2 + size:
                return
            message = bytes(self.buffer[2 : 2 + size])
            del self.buffer[: 2 + size]
            out = self.engine.handle(message, False)
            if out is None:
                continue
            if type(out) is bytes:
                transport.write(len(out).to_bytes(2, "big") + out)
            else:
                self.server.forward(out, self._send)  # type: ignore[arg-type]

    def _send(self, reply: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(len(reply).to_bytes(2, "big") + reply)

    # A client that does not read its answers must not make us buffer without limit.
    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.server.tcp_connections.discard(self)
        self.transport = None


class DNSServer:
    """Cluster DNS on UDP and TCP. Give it `access` (live data) or a `lookup` (tests, bench)."""

    def __init__(
        self,
        config: DNSConfig,
        *,
        access: ClusterAccess | None = None,
        lookup: Lookup | None = None,
    ) -> None:
        if (access is None) == (lookup is None):
            raise ValueError("give exactly one of access or lookup")
        self.config = config
        self.access = access
        self.client: Client | None = None
        self.informers: list[Informer] = []
        self.index: ClusterIndex | None = None
        if lookup is None:
            lookup = ClusterIndex(endpoint_source=config.endpoint_source)
        if isinstance(lookup, ClusterIndex):
            self.index = lookup  # its changes drop precomputed answers
        self.lookup: Lookup = lookup
        upstreams = parse_upstreams(config.upstreams)
        self.forwarder = (
            Forwarder(
                upstreams,
                timeout_s=config.upstream_timeout_s,
                cache_entries=config.upstream_cache_entries,
            )
            if upstreams
            else None
        )
        self.metrics = DNSMetrics()
        ns_addresses: tuple[str, ...] = ()
        with contextlib.suppress(ValueError):
            if not ipaddress.ip_address(config.address).is_unspecified:
                ns_addresses = (config.address,)
        self.resolver = Resolver(
            lookup,
            ResolverConfig(
                zone=config.cluster_domain,
                ttl_s=config.ttl_s,
                soa_serial=int(time.time()),
                ns_addresses=ns_addresses,
                reverse_fallthrough=self.forwarder is not None,
                pod_records=config.pod_records,
            ),
        )
        self.engine = Engine(
            self.resolver,
            upstream=self.forwarder is not None,
            max_udp_payload=config.max_udp_payload,
            max_entries=config.max_precomputed,
            precompute=config.precompute,
            on_programmed=self.metrics.programming.observe,
        )
        self.metrics.attach(self.engine, lambda: self.forwarder)
        if self.index is not None:
            self.index.listeners.append(self.engine.on_change)
        self.tcp_connections: set[_TCPProtocol] = set()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._metrics_runner: web.AppRunner | None = None
        self._forwards: set[asyncio.Task[None]] = set()
        self.port = config.port
        self.metrics_port = config.metrics_port

    @property
    def synced(self) -> bool:
        """Whether the cluster data is complete (before that, cluster names get SERVFAIL)."""
        return self.lookup.has_synced()

    async def start(self) -> None:
        """Bind UDP and TCP (and metrics), start the informers; answers SERVFAIL until synced."""
        for upstream in parse_upstreams(self.config.upstreams):
            if upstream == (self.config.address, self.config.port) and self.config.port:
                raise ValueError(f"upstream {upstream} is this server: queries would loop")
        await self._bind()
        try:
            if self.config.metrics_port:
                self._metrics_runner = await start_metrics_server(
                    self.metrics,
                    self.config.metrics_address or self.config.address,
                    self.config.metrics_port,
                    lambda: self.synced,
                )
            if self.access is not None and self.index is not None:
                self._start_informers(self.access, self.index)
        except BaseException:
            await self.close()
            raise
        log.info(
            "dns: serving %s on %s:%d", self.config.cluster_domain, self.config.address, self.port
        )

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        attempts = 20 if self.config.port == 0 else 1
        for attempt in range(attempts):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UDPProtocol(self), local_addr=(self.config.address, self.config.port)
            )
            port = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await loop.create_server(
                    lambda: _TCPProtocol(self), self.config.address, port, reuse_address=True
                )
            except OSError as err:
                transport.close()
                # Port 0 chose a UDP port whose TCP twin is taken: try another one.
                if err.errno != errno.EADDRINUSE or attempt == attempts - 1:
                    raise
                continue
            self._udp = transport  # type: ignore[assignment]
            self.port = port
            return

    def _start_informers(self, access: ClusterAccess, index: ClusterIndex) -> None:
        self.client = Client(access, user_agent="kubesvc-dns")
        endpoints_kind = index.endpoint_source
        handlers: list[tuple[str, Callable[[str, dict | None, dict | None], None]]] = [
            ("Namespace", index.on_namespace),
            ("Service", index.on_service),
            (
                endpoints_kind,
                index.on_endpoints if endpoints_kind == "Endpoints" else index.on_endpoint_slice,
            ),
        ]
        for kind, handler in handlers:
            informer = Informer(self.client, kind)
            informer.add_handler(handler)
            self.informers.append(informer)
        informers = list(self.informers)
        index.synced = lambda: all(i.has_synced for i in informers)
        for informer in informers:
            informer.start()

    async def wait_synced(self, timeout_s: float = 30.0) -> None:
        """Until every informer has listed once (immediately when serving a given lookup)."""
        for informer in self.informers:
            await informer.wait_synced(timeout_s)

    def forward(self, forward: Forward, send: Callable[[bytes], None]) -> None:
        """Ask the upstream for `forward` and `send` the reply; bounded in flight."""
        if self.forwarder is None or len(self._forwards) >= self.config.max_upstream_inflight:
            send(self.engine.overloaded(forward))
            return
        task = asyncio.get_running_loop().create_task(self._run_forward(forward, send))
        self._forwards.add(task)
        task.add_done_callback(self._forwards.discard)

    async def _run_forward(self, forward: Forward, send: Callable[[bytes], None]) -> None:
        assert self.forwarder is not None
        try:
            answer = await self.forwarder.resolve(forward.qname, forward.qtype, forward.do)
        except Exception:
            log.exception("dns: upstream query failed")
            answer = None
        try:
            send(self.engine.finish(forward, answer))
        except Exception:
            log.exception("dns: failed to send an upstream answer")

    async def close(self) -> None:
        """Stop listening, cancel upstream queries, stop the informers."""
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for connection in list(self.tcp_connections):
                if connection.transport is not None:
                    connection.transport.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._tcp.wait_closed()
            self._tcp = None
        for task in list(self._forwards):
            task.cancel()
        if self._forwards:
            await asyncio.gather(*self._forwards, return_exceptions=True)
        for informer in self.informers:
            await informer.stop()
        self.informers = []
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()
            self.client = None
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
            self._metrics_runner = None


async def serve_dns(config: DNSConfig, access: ClusterAccess, stop: asyncio.Event) -> None:
    """Serve cluster DNS from the API at `access` until `stop` is set."""
    server = DNSServer(config, access=access)
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.close()
