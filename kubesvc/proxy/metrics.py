"""Prometheus metrics of the proxy: kube-proxy's names where one exists, kubesvc_proxy_* otherwise.

Per-service connection figures are read from the proxier when scraped (a
custom collector), so the data path never touches a metric object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kubesvc.proxy.sync import SyncStats
from kubesvc.proxy.userspace import PortProxy

# kube-proxy's buckets: sync durations from 1 ms doubling; programming latency in seconds to minutes.
SYNC_BUCKETS = tuple(0.001 * 2**i for i in range(15))
PROGRAMMING_BUCKETS = (
    0.25,
    0.5,
    *(float(s) for s in range(1, 60)),
    *(float(s) for s in range(60, 120, 5)),
    *(float(s) for s in range(120, 330, 30)),
)

LABELS = ("namespace", "service", "port", "protocol")


class ProxyMetrics:
    """The proxy's metrics, in a registry of its own (several proxies may share a process in tests)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.sync_duration = Histogram(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "How long a sync of the proxy's state (render and apply) took.",
            buckets=SYNC_BUCKETS,
            registry=self.registry,
        )
        self.programming_duration = Histogram(
            "kubeproxy_network_programming_duration_seconds",
            "Time from an Endpoints change (its last-change-trigger-time annotation) to the proxy "
            "serving it.",
            buckets=PROGRAMMING_BUCKETS,
            registry=self.registry,
        )
        self.last_synced = Gauge(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "When the proxy last applied its state (Unix seconds).",
            registry=self.registry,
        )
        self.last_queued = Gauge(
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
            "When a change was last queued for the proxy (Unix seconds).",
            registry=self.registry,
        )
        self.sync_failures = Counter(
            "kubesvc_proxy_sync_failures",
            "Syncs whose apply failed (retried at the next sync).",
            registry=self.registry,
        )

    def stats(self) -> SyncStats:
        """The observers a SyncLoop reports to."""
        return SyncStats(
            on_sync_duration=self.sync_duration.observe,
            on_programming_duration=self.programming_duration.observe,
            on_synced=self.last_synced.set,
            on_queued=self.last_queued.set,
        )

    def watch_ports(self, ports: Callable[[], Iterable[PortProxy]]) -> None:
        """Report per-service-port figures from `ports()` at each scrape."""
        self.registry.register(_PortCollector(ports))


class _PortCollector(Collector):
    def __init__(self, ports: Callable[[], Iterable[PortProxy]]) -> None:
        self._ports = ports

    def collect(self) -> Iterator[Metric]:
        active = GaugeMetricFamily(
            "kubesvc_proxy_connections_active",
            "Open connections (TCP) or sessions (UDP) per service port.",
            labels=LABELS,
        )
        total = CounterMetricFamily(
            "kubesvc_proxy_connections",
            "Connections (TCP) or sessions (UDP) accepted per service port.",
            labels=LABELS,
        )
        failures = CounterMetricFamily(
            "kubesvc_proxy_backend_connect_failures",
            "Failed connects to backends (each was retried on another backend when one was left).",
            labels=LABELS,
        )
        rejected = CounterMetricFamily(
            "kubesvc_proxy_connections_rejected",
            "Connections reset for want of a backend that accepted them.",
            labels=LABELS,
        )
        backends = GaugeMetricFamily(
            "kubesvc_proxy_backends",
            "Usable backends per service port (cluster traffic).",
            labels=LABELS,
        )
        for port in self._ports():
            name = port.name
            labels = [name.namespace, name.name, name.port, name.protocol]
            active.add_metric(labels, port.active())
            total.add_metric(labels, port.connections_total)
            failures.add_metric(labels, port.connect_failures)
            rejected.add_metric(labels, port.rejected)
            backends.add_metric(labels, len(port.cluster_balancer.backends))
        yield from (active, total, failures, rejected, backends)
