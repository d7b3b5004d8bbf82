"""Storage benchmark on etcd: `python bench/storage_etcd.py [--members 1|3]`. One JSON line per figure.

The figures of `bench/storage.py`, for the etcd backend, on an etcd this script
starts (loopback ports, a temp dir, etcd's default durability: it fsyncs before
acknowledging):
- creates/s and updates/s, one at a time and with 64 in flight;
- watch delivery latency p50/p99, from submitting an update to each of 10
  watchers receiving it.
The peer, measured in the same run on the same etcd: bare puts through the
same JSON gateway with the same HTTP client (no transaction, no conditions, no
JSON object handling). `ratio` = ours / peer, so above 1 is better for
throughput; for latency the peer is our own write acknowledgement latency, so
`ratio` shows what the watch path adds on top.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.etcd_cluster

from kubesvc.storage.etcd import EtcdStore
from kubesvc.storage.etcd_gateway import GatewayClient, b64
from kubesvc.storage.interface import WatchStream

# The object shape, the rate loop and the watch latency report are bench/storage.py's own.
_spec = importlib.util.spec_from_file_location(
    "bench_storage", Path(__file__).with_name("storage.py")
)
assert _spec is not None and _spec.loader is not None
sqlite_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sqlite_bench)
service, rate = sqlite_bench.service, sqlite_bench.rate

PREFIX = "/registry/services/default/"


def emit(figure: str, value: float, unit: str, **extra: Any) -> None:
    line = {"bench": "storage_etcd", "figure": figure, "value": round(value, 3), "unit": unit}
    print(json.dumps({**line, **extra}))
    sys.stdout.flush()


async def peer_rate(client: GatewayClient, n: int, in_flight: int, tag: str) -> float:
    """Bare gateway puts per second (one key each), `in_flight` at a time."""
    values = [
        (b64(f"/peer/{tag}/{i}".encode()), b64(json.dumps(service(i)).encode())) for i in range(n)
    ]

    def put(key: str, value: str) -> Any:
        return client.call("kv/put", {"key": key, "value": value}, writes=True)

    return await rate([lambda k=k, v=v: put(k, v) for k, v in values], in_flight)


async def main(
    endpoints: list[str], members: int, objects: int, watchers: int, sequential: int
) -> None:
    peer = GatewayClient(endpoints)
    store = await EtcdStore.open(endpoints, prefix="/bench")
    extra = {"members": members}

    def throughput(figure: str, ours: float, peer_value: float, **more: Any) -> None:
        emit(
            figure,
            ours,
            "ops/s",
            **extra,
            **more,
            peer="bare gateway put",
            peer_value=round(peer_value, 1),
            ratio=round(ours / peer_value, 3),
        )

    try:
        peer_one = await peer_rate(peer, sequential, 1, "one")
        peer_many = await peer_rate(peer, objects, 64, "many")
        ours = await rate(
            [lambda i=i: store.create(f"{PREFIX}seq-{i}", service(i)) for i in range(sequential)], 1
        )
        throughput("creates_per_s", ours, peer_one, in_flight=1)
        ours = await rate(
            [lambda i=i: store.create(f"{PREFIX}svc-{i}", service(i)) for i in range(objects)], 64
        )
        throughput("creates_per_s", ours, peer_many, in_flight=64)

        submitted: dict[int, float] = {}
        latency: dict[bool, list[float]] = {True: [], False: []}
        acks: dict[bool, list[float]] = {True: [], False: []}
        streams: list[WatchStream] = [await store.watch(PREFIX) for _ in range(watchers)]
        total = sequential + objects

        async def consume(stream: WatchStream) -> None:
            for _ in range(total):
                event = await anext(stream)
                seq = int(event.object["metadata"]["annotations"]["seq"])
                latency[seq < sequential].append(time.perf_counter() - submitted[seq])

        consumers = [asyncio.create_task(consume(s)) for s in streams]

        async def update(seq: int) -> None:
            n = seq % objects
            submitted[seq] = start = time.perf_counter()
            await store.update(f"{PREFIX}svc-{n}", service(n, seq), expected_rv=None)
            acks[seq < sequential].append(time.perf_counter() - start)

        ours = await rate([lambda s=s: update(s) for s in range(sequential)], 1)
        throughput("updates_per_s", ours, peer_one, in_flight=1, watchers=watchers)
        ours = await rate([lambda s=s: update(s) for s in range(sequential, total)], 64)
        throughput("updates_per_s", ours, peer_many, in_flight=64, watchers=watchers)
        await asyncio.wait_for(asyncio.gather(*consumers), 120)
        sqlite_bench.watch_latency(emit, latency, acks, **extra, watchers=watchers, objects=objects)
        for stream in streams:
            await stream.close()
    finally:
        await store.close()
        await peer.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1, choices=[1, 3])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--watchers", type=int, default=10)
    parser.add_argument("--sequential", type=int, default=1_000)
    args = parser.parse_args()
    if shutil.which("etcd") is None:
        print(json.dumps({"bench": "storage_etcd", "skipped": "etcd is not installed"}))
        sys.exit(0)
    from tests.etcd_cluster import EtcdCluster

    cluster = EtcdCluster(args.members).start()
    try:
        asyncio.run(
            main(cluster.endpoints, args.members, args.objects, args.watchers, args.sequential)
        )
    finally:
        cluster.stop()
