"""The proxy process: a source of Services and endpoints, the model, a backend, healthz and metrics.

    stop = asyncio.Event()
    await serve_proxy(ProxyConfig(...), load_kubeconfig(...), stop)

or, to hold it open and look inside (tests, `kubesvc up`):

    server = ProxyServer(config, ClusterSource(access))
    await server.start()
    ...
    await server.close()

Sources feed the model through the informer handler shape (type, old, new):
`ClusterSource` watches an API server (any Kubernetes-compatible one),
`MemorySource` holds objects given in-process (tests, benchmarks, the
standalone mode that reads manifests). Both feed the same `ProxyState`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from kubesvc.api.meta import rfc3339
from kubesvc.client.http import Client
from kubesvc.client.informer import Informer, object_key
from kubesvc.client.kubeconfig import ClusterAccess
from kubesvc.proxy import iptables, ipvs, nftables
from kubesvc.proxy.balancer import DEFAULT_DIAL_TIMEOUTS_S, DEFAULT_FAILURE_HOLD_S
from kubesvc.proxy.healthcheck import HealthChecks, WithHealthChecks
from kubesvc.proxy.metrics import ProxyMetrics
from kubesvc.proxy.model import ProxyBackend, ProxyState
from kubesvc.proxy.netexec import NetExec
from kubesvc.proxy.schedulers import SCHEDULERS
from kubesvc.proxy.sync import Health, SyncLoop, SyncSchedule
from kubesvc.proxy.userspace import UserspaceConfig, UserspaceProxier

Obj = dict[str, Any]
log = logging.getLogger("kubesvc.proxy")

MODES = ("userspace", "iptables", "nftables", "ipvs")
KERNEL_MODES = ("iptables", "nftables", "ipvs")
ENDPOINT_KINDS = ("Endpoints", "EndpointSlice")


@dataclass(frozen=True)
class ProxyConfig:
    """Everything `kubesvc proxy` can be told (each field is one flag, see kubesvc/proxy/README.md)."""

    mode: str = "userspace"
    scheduler: str = "rr"
    # Userspace syncs are cheap (a dict diff): a short minimum keeps endpoint changes quick.
    min_sync_period_s: float = 0.1
    sync_period_s: float = 30.0
    healthz_address: str = "127.0.0.1"
    healthz_port: int | None = 10256  # None: no healthz server; 0: any free port
    metrics_address: str = "127.0.0.1"
    metrics_port: int | None = 10249
    node_name: str | None = None  # default: the host name
    node_addresses: tuple[str, ...] = ("127.0.0.1",)  # where NodePorts listen
    endpoints_kind: str = "Endpoints"  # or "EndpointSlice"
    tcp_idle_timeout_s: float = 3600.0
    udp_idle_timeout_s: float = 30.0
    dial_timeouts_s: tuple[float, ...] = DEFAULT_DIAL_TIMEOUTS_S
    failure_hold_s: float = DEFAULT_FAILURE_HOLD_S
    # Kernel modes: the network namespace their rules go into (None: the current one).
    netns: str | None = None
    # iptables mode: "auto" (legacy when its tools are installed), "nft" or "legacy".
    iptables_backend: str = "auto"

    def check(self) -> None:
        """ValueError with a readable message for settings that cannot work."""
        if self.mode not in MODES:
            raise ValueError(
                f"proxy mode {self.mode!r} is not available; use one of {', '.join(MODES)}"
            )
        if self.scheduler not in SCHEDULERS:
            raise ValueError(
                f"unknown scheduler {self.scheduler!r}; use one of {', '.join(SCHEDULERS)}"
            )
        if self.iptables_backend not in iptables.BACKENDS:
            raise ValueError(f"iptables backend must be one of {', '.join(iptables.BACKENDS)}")
        if self.endpoints_kind not in ENDPOINT_KINDS:
            raise ValueError(f"endpoints kind must be one of {', '.join(ENDPOINT_KINDS)}")
        if self.min_sync_period_s < 0 or self.sync_period_s <= 0:
            raise ValueError("sync periods must be positive")
        if self.min_sync_period_s > self.sync_period_s:
            raise ValueError("--min-sync-period may not exceed --sync-period")

    def userspace(self) -> UserspaceConfig:
        return UserspaceConfig(
            node_name=self.node_name or socket.gethostname(),
            node_addresses=self.node_addresses,
            scheduler=self.scheduler,
            dial_timeouts_s=self.dial_timeouts_s,
            failure_hold_s=self.failure_hold_s,
            tcp_idle_timeout_s=self.tcp_idle_timeout_s,
            udp_idle_timeout_s=self.udp_idle_timeout_s,
        )


class Sink(Protocol):
    """Where a source delivers events (ProxyServer)."""

    def handle_service(self, kind: str, old: Obj | None, new: Obj | None) -> None: ...
    def handle_endpoints(self, kind: str, old: Obj | None, new: Obj | None) -> None: ...
    def handle_endpoint_slice(self, kind: str, old: Obj | None, new: Obj | None) -> None: ...


class Source(Protocol):
    def attach(self, sink: Sink, endpoints_kind: str) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    @property
    def has_synced(self) -> bool: ...


class ClusterSource:
    """Services and Endpoints (or EndpointSlices) from an API server, through informers.

    The informers reconnect and relist (after 410 Gone) by themselves; while
    the API server is away, the proxy keeps serving what it last knew.
    """

    def __init__(self, access: ClusterAccess) -> None:
        self.client = Client(access, user_agent="kubesvc-proxy")
        self.informers: list[Informer] = []

    def attach(self, sink: Sink, endpoints_kind: str) -> None:
        services = Informer(self.client, "Service")
        services.add_handler(sink.handle_service)
        endpoints = Informer(self.client, endpoints_kind)
        endpoints.add_handler(
            sink.handle_endpoints if endpoints_kind == "Endpoints" else sink.handle_endpoint_slice
        )
        self.informers = [services, endpoints]

    async def start(self) -> None:
        for informer in self.informers:
            informer.start()

    async def stop(self) -> None:
        for informer in self.informers:
            await informer.stop()
        await self.client.close()

    @property
    def has_synced(self) -> bool:
        return all(informer.has_synced for informer in self.informers)


class MemorySource:
    """Objects held in memory and delivered as informer events (tests, benchmarks, manifests)."""

    def __init__(self, objects: Iterable[Obj] = ()) -> None:
        self.objects: dict[tuple[str, str], Obj] = {}
        self._sink: Sink | None = None
        self._endpoints_kind = "Endpoints"
        for obj in objects:
            self.objects[(obj["kind"], object_key(obj))] = obj

    def attach(self, sink: Sink, endpoints_kind: str) -> None:
        self._sink = sink
        self._endpoints_kind = endpoints_kind
        for obj in list(self.objects.values()):
            self._deliver("ADDED", None, obj)

    def _deliver(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        if self._sink is None or obj is None:
            return
        if obj["kind"] == "Service":
            self._sink.handle_service(kind, old, new)
        elif obj["kind"] == "Endpoints" and self._endpoints_kind == "Endpoints":
            self._sink.handle_endpoints(kind, old, new)
        elif obj["kind"] == "EndpointSlice" and self._endpoints_kind == "EndpointSlice":
            self._sink.handle_endpoint_slice(kind, old, new)

    def apply(self, obj: Obj) -> None:
        """Create or replace an object (its metadata.namespace defaults to "default")."""
        obj.setdefault("metadata", {}).setdefault("namespace", "default")
        key = (obj["kind"], object_key(obj))
        old = self.objects.get(key)
        self.objects[key] = obj
        self._deliver("MODIFIED" if old else "ADDED", old, obj)

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        old = self.objects.pop((kind, f"{namespace}/{name}"), None)
        if old is not None:
            self._deliver("DELETED", old, None)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    @property
    def has_synced(self) -> bool:
        return True


def choose_mode(
    requested: str,
    ipvs_probe: Callable[[], tuple[bool, str]] = ipvs.ipvs_support,
) -> tuple[str, str]:
    """(effective mode, why): `ipvs` without kernel support falls back to iptables (the seed's rule)."""
    if requested != "ipvs":
        return requested, "as requested"
    supported, why = ipvs_probe()
    if supported:
        return "ipvs", why
    return "iptables", f"IPVS is not available ({why}); falling back to iptables"


def kernel_backend(mode: str, config: ProxyConfig) -> ProxyBackend:
    """The backend of a kernel mode, running its commands in `config.netns`."""
    executor = NetExec(config.netns)
    node_name = config.node_name or socket.gethostname()
    if mode == "iptables":
        legacy, why = iptables.choose_backend(config.iptables_backend)
        log.info("iptables backend: %s (%s)", "legacy" if legacy else "nft", why)
        return iptables.IptablesProxier(executor, node_name=node_name, legacy=legacy)
    if mode == "nftables":
        return nftables.NftablesProxier(executor, node_name=node_name)
    if mode == "ipvs":
        return ipvs.IpvsProxier(executor, config.node_addresses, config.scheduler, node_name)
    raise ValueError(f"{mode!r} is not a kernel mode")


def cleanup(netns: str | None = None) -> list[str]:
    """`kubesvc proxy --cleanup`: remove every rule any kernel mode made; what was removed."""
    executor = NetExec(netns)
    removed: list[str] = []
    for name, undo in (
        ("iptables", iptables.cleanup),
        ("iptables-legacy", lambda ex: iptables.cleanup(ex, legacy=True)),
        ("nftables", nftables.cleanup),
        ("ipvs", ipvs.cleanup),
    ):
        try:
            removed.extend(undo(executor))
        except (OSError, RuntimeError) as exc:  # a missing tool means there is nothing of it
            log.warning("proxy cleanup: %s: %s", name, exc)
    return removed


class ProxyServer:
    """The model, a backend (userspace or kernel), the sync loop and the HTTP endpoints."""

    def __init__(
        self,
        config: ProxyConfig,
        source: Source,
        ipvs_probe: Callable[[], tuple[bool, str]] = ipvs.ipvs_support,
    ) -> None:
        config.check()
        self.config = config
        self.source = source
        self.state = ProxyState()
        self.metrics = ProxyMetrics()
        self.effective_mode, self.mode_reason = choose_mode(config.mode, ipvs_probe)
        self.mode_metric = Gauge(
            "kubesvc_proxy_mode",
            "1 for the proxy mode in effect (effective), with the one asked for (requested).",
            ["requested", "effective"],
            registry=self.metrics.registry,
        )
        self.mode_metric.labels(config.mode, self.effective_mode).set(1)
        self.proxier: UserspaceProxier | None = None  # the userspace backend, when in that mode
        self.backend: ProxyBackend | None = None
        self.health_checks: HealthChecks | None = None
        self.sync: SyncLoop | None = None
        self.healthz_port: int | None = None
        self.metrics_port: int | None = None
        self._runners: list[web.AppRunner] = []

    # -- the sink: the informer handler shape

    def handle_service(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        if self.state.on_service(kind, old, new) and self.sync is not None:
            self.sync.changed()

    def handle_endpoints(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        if self.state.on_endpoints(kind, old, new) and self.sync is not None:
            self.sync.changed()

    def handle_endpoint_slice(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        if self.state.on_endpoint_slice(kind, old, new) and self.sync is not None:
            self.sync.changed()

    # -- life cycle

    async def start(self) -> None:
        """Listen for health and metrics, start the source and the sync loop (returns at once)."""
        if self.effective_mode != self.config.mode:
            log.warning("proxy: %s", self.mode_reason)
        backend: ProxyBackend
        if self.effective_mode == "userspace":
            proxier = UserspaceProxier(self.config.userspace())
            self.proxier = proxier
            self.metrics.watch_ports(proxier.iter_ports)
            backend = proxier
        else:
            backend = kernel_backend(self.effective_mode, self.config)
        self.health_checks = HealthChecks(
            self.config.node_addresses, self.config.node_name or socket.gethostname()
        )
        backend = WithHealthChecks(backend, self.health_checks)
        self.backend = backend
        self.sync = SyncLoop(
            self.state,
            backend,
            SyncSchedule(self.config.min_sync_period_s, self.config.sync_period_s),
            Health(2 * self.config.sync_period_s),
            ready=lambda: self.source.has_synced,
            stats=self.metrics.stats(),
        )
        self.sync.changed()  # the first sync is queued from the start: healthz watches it too
        try:
            if self.config.healthz_port is not None:
                self.healthz_port = await self._serve(
                    self.config.healthz_address, self.config.healthz_port
                )
            if self.config.metrics_port is not None:
                self.metrics_port = await self._serve(
                    self.config.metrics_address, self.config.metrics_port
                )
            self.source.attach(self, self.config.endpoints_kind)
            await self.source.start()
        except BaseException:
            await self.close()
            raise
        self.sync.start()
        log.info(
            "proxy: %s mode, scheduler %s; healthz on %s, metrics on %s",
            self.effective_mode,
            self.config.scheduler,
            self.healthz_port,
            self.metrics_port,
        )

    async def wait_synced(self, timeout_s: float = 30.0) -> None:
        """Until the source has listed everything and the proxy has applied it."""
        deadline = time.monotonic() + timeout_s
        while not (self.source.has_synced and self.sync is not None and self.sync.syncs > 0):
            if time.monotonic() > deadline:
                raise TimeoutError(f"proxy not synced in {timeout_s} s")
            await asyncio.sleep(0.01)

    def flush(self) -> None:
        """Apply pending changes now, without waiting for the sync loop (tests)."""
        if self.sync is not None and self.source.has_synced:
            self.sync.sync_now()

    def healthy(self) -> bool:
        return self.sync is not None and self.sync.health.healthy(time.monotonic())

    async def close(self) -> None:
        if self.sync is not None:
            await self.sync.stop()
        with contextlib.suppress(Exception):
            await self.source.stop()
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        if self.health_checks is not None:
            self.health_checks.close()
        if self.proxier is not None:
            self.proxier.close()

    # -- HTTP

    async def _serve(self, address: str, port: int) -> int:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/livez", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, address, port)
        await site.start()
        return int(runner.addresses[-1][1])

    async def _healthz(self, _request: web.Request) -> web.Response:
        health = self.sync.health if self.sync is not None else None
        healthy = self.healthy()
        body = {
            "lastUpdated": (
                rfc3339(health.last_updated_wall, nanos=True)
                if health and health.last_updated_wall is not None
                else None
            ),
            "currentTime": rfc3339(nanos=True),
            "healthy": healthy,
            "mode": self.config.mode,
            "effectiveMode": self.effective_mode,
        }
        if self.effective_mode != self.config.mode:
            body["details"] = self.mode_reason
        return web.Response(
            status=200 if healthy else 503,
            text=json.dumps(body),
            content_type="application/json",
        )

    async def _metrics(self, _request: web.Request) -> web.Response:
        payload = generate_latest(self.metrics.registry)
        return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def serve_proxy(config: ProxyConfig, access: ClusterAccess, stop: asyncio.Event) -> None:
    """Run the proxy against the API server `access` points at, until `stop` is set.

    Run it on uvloop where present (the data path is callback-driven; uvloop
    roughly doubles its request rate).
    """
    server = ProxyServer(config, ClusterSource(access))
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.close()
