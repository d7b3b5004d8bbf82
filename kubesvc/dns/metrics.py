"""Prometheus metrics of the DNS server, on a small HTTP port of its own.

The query path only bumps plain integers (`Engine.counts`); they become
Prometheus samples when scraped, so the fast path pays no lock or label lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import dns.rcode
import dns.rdatatype
from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from kubesvc.dns.engine import Engine
    from kubesvc.dns.upstream import Forwarder

# From 50 µs (a re-render of a few answers) to seconds (an overloaded loop).
PROGRAMMING_BUCKETS_S = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


def qtype_label(qtype: int) -> str:
    """The type's mnemonic; unknown numbers share one label so cardinality stays bounded."""
    if qtype == 0:
        return "none"
    try:
        return dns.rdatatype.RdataType(qtype).name
    except ValueError:
        return "other"


class _EngineCollector(Collector):
    def __init__(self, engine: Engine, forwarder: Callable[[], Forwarder | None]) -> None:
        self.engine = engine
        self.forwarder = forwarder

    def collect(self) -> Iterator[Metric]:
        queries = CounterMetricFamily(
            "kubesvc_dns_queries",
            "DNS queries answered, by question type, response code and transport.",
            labels=["qtype", "rcode", "proto"],
        )
        merged: dict[tuple[str, str, str], int] = {}
        for (qtype, rcode, proto), count in list(self.engine.counts.items()):
            label = (qtype_label(qtype), dns.rcode.to_text(dns.rcode.Rcode.make(rcode)), proto)
            merged[label] = merged.get(label, 0) + count
        for labels, count in sorted(merged.items()):
            queries.add_metric(list(labels), count)
        yield queries
        yield CounterMetricFamily(
            "kubesvc_dns_dropped",
            "Packets dropped without an answer (no header, or not a query).",
            value=self.engine.dropped,
        )
        yield CounterMetricFamily(
            "kubesvc_dns_internal_errors",
            "Queries that failed inside the server (a bug; the packet was dropped).",
            value=self.engine.internal_errors,
        )
        yield GaugeMetricFamily(
            "kubesvc_dns_precomputed_answers",
            "Answers held as ready wire messages.",
            value=len(self.engine.store),
        )
        yield GaugeMetricFamily(
            "kubesvc_dns_synced",
            "1 once the cluster data has been listed completely.",
            value=1 if self.engine.lookup.has_synced() else 0,
        )
        forwarder = self.forwarder()
        if forwarder is not None:
            yield CounterMetricFamily(
                "kubesvc_dns_upstream_requests",
                "Queries sent to upstream servers.",
                value=forwarder.sent,
            )
            yield CounterMetricFamily(
                "kubesvc_dns_upstream_failures",
                "Upstream queries that timed out or failed.",
                value=forwarder.failed,
            )
            yield CounterMetricFamily(
                "kubesvc_dns_upstream_cache_hits",
                "Out-of-cluster answers served from the forwarding cache.",
                value=forwarder.cache_hits,
            )


class DNSMetrics:
    """A registry of its own (several servers may live in one process, as in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.programming = Histogram(
            "kubesvc_dns_programming_duration_seconds",
            "From a watch event's arrival to its records being served (index updated, "
            "stale answers dropped, answers in use rendered again).",
            buckets=PROGRAMMING_BUCKETS_S,
            registry=self.registry,
        )

    def attach(self, engine: Engine, forwarder: Callable[[], Forwarder | None]) -> None:
        """Export `engine`'s counters (and the forwarder's, when there is one) at scrape time."""
        self.registry.register(_EngineCollector(engine, forwarder))

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)


async def start_metrics_server(
    metrics: DNSMetrics, address: str, port: int, ready: Callable[[], bool]
) -> web.AppRunner:
    """Serve `/metrics`, `/healthz` and `/readyz` (200 once synced) on address:port."""

    async def metrics_handler(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ok")
        return web.Response(status=503, text="not synced")

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner
