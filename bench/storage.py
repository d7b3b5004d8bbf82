"""Storage benchmark: `python bench/storage.py [--dir D]`. Prints one JSON line per figure.

Figures, on the SQLite backend (WAL, synchronous=FULL):
- creates/s and updates/s, one at a time (each waits for its own fsync) and with
  64 in flight (group commit shares fsyncs);
- watch delivery latency p50/p99, from submitting a write to each of 10 watchers
  receiving it, over a store of 10,000 objects.
The peer, measured in the same run on the same disk: plain sqlite3 in this thread,
one INSERT (or UPDATE) + COMMIT per row, same pragmas. `ratio` = ours / peer, so
above 1 is better for throughput; for latency the peer is our own write
acknowledgement latency, so `ratio` shows what the watch path adds on top.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kubesvc.storage.interface import WatchStream
from kubesvc.storage.sqlite import SqliteStore

PREFIX = "/registry/services/default/"


def service(n: int, seq: int = 0) -> dict[str, Any]:
    """A Service of realistic size (~600 bytes of JSON)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"svc-{n}",
            "namespace": "default",
            "uid": f"00000000-0000-0000-0000-{n:012d}",
            "labels": {"app": f"app-{n % 50}", "tier": "backend"},
            "annotations": {"seq": str(seq)},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": f"127.96.{n // 250}.{n % 250 + 1}",
            "selector": {"app": f"app-{n % 50}"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            "sessionAffinity": "None",
        },
    }


def watch_latency(
    out: Callable[..., None],
    latency: dict[bool, list[float]],
    acks: dict[bool, list[float]],
    **fields: Any,
) -> None:
    """p50/p99 watch delivery, one at a time and 64 in flight, against the write's own ack."""
    for one_at_a_time in (True, False):
        for p in (50, 99):
            ours = percentile(latency[one_at_a_time], p) * 1000
            peer = percentile(acks[one_at_a_time], p) * 1000
            out(
                f"watch_latency_p{p}_ms",
                ours,
                "ms",
                **fields,
                in_flight=1 if one_at_a_time else 64,
                samples=len(latency[one_at_a_time]),
                peer="write acknowledgement latency",
                peer_value=round(peer, 3),
                ratio=round(ours / peer, 3),
            )


def emit(figure: str, value: float, unit: str, **extra: Any) -> None:
    print(
        json.dumps(
            {"bench": "storage", "figure": figure, "value": round(value, 3), "unit": unit, **extra}
        )
    )
    sys.stdout.flush()


def peer_rates(path: Path, n: int) -> tuple[float, float]:
    """Plain sqlite3 inserts/s and updates/s, one commit per row, same pragmas, this thread."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE objects (key TEXT PRIMARY KEY, rv INTEGER, value TEXT)")
    rows = [(f"{PREFIX}svc-{i}", json.dumps(service(i))) for i in range(n)]
    start = time.perf_counter()
    for rv, (key, value) in enumerate(rows, 1):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO objects VALUES (?, ?, ?)", (key, rv, value))
        conn.execute("COMMIT")
    inserts = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for rv, (key, value) in enumerate(rows, n + 1):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE objects SET rv = ?, value = ? WHERE key = ?", (rv, value, key))
        conn.execute("COMMIT")
    updates = n / (time.perf_counter() - start)
    conn.close()
    return inserts, updates


async def rate(ops: list[Callable[[], Awaitable[Any]]], in_flight: int) -> float:
    """Operations per second running `ops` with at most `in_flight` at a time."""
    pending = iter(ops)

    async def worker() -> None:
        for op in pending:
            await op()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return len(ops) / (time.perf_counter() - start)


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(p * 10) - 1]


async def main(directory: Path, objects: int, watchers: int, sequential: int) -> None:
    inserts_peer, updates_peer = peer_rates(directory / "peer.db", sequential)
    store = await SqliteStore.open(directory / "kubesvc.db", history=objects * 4)

    def throughput(figure: str, ours: float, peer: float, what: str, **extra: Any) -> None:
        emit(
            figure,
            ours,
            "ops/s",
            **extra,
            peer=what,
            peer_value=round(peer, 1),
            ratio=round(ours / peer, 3),
        )

    try:
        ours = await rate(
            [lambda i=i: store.create(f"{PREFIX}seq-{i}", service(i)) for i in range(sequential)], 1
        )
        throughput(
            "creates_per_s", ours, inserts_peer, "sqlite3 insert+commit per row", in_flight=1
        )
        ours = await rate(
            [lambda i=i: store.create(f"{PREFIX}svc-{i}", service(i)) for i in range(objects)], 64
        )
        throughput(
            "creates_per_s", ours, inserts_peer, "sqlite3 insert+commit per row", in_flight=64
        )

        # Watch latency: each watcher timestamps every update it receives, against the
        # moment that update was submitted. Updates 0..sequential-1 run one at a time.
        submitted: dict[int, float] = {}
        latency: dict[bool, list[float]] = {True: [], False: []}  # keyed by "one at a time"
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
        throughput(
            "updates_per_s",
            ours,
            updates_peer,
            "sqlite3 update+commit per row",
            in_flight=1,
            watchers=watchers,
        )
        ours = await rate([lambda s=s: update(s) for s in range(sequential, total)], 64)
        throughput(
            "updates_per_s",
            ours,
            updates_peer,
            "sqlite3 update+commit per row",
            in_flight=64,
            watchers=watchers,
        )
        await asyncio.wait_for(asyncio.gather(*consumers), 120)
        watch_latency(emit, latency, acks, watchers=watchers, objects=objects)
        for stream in streams:
            await stream.close()
    finally:
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to put the database files")
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--watchers", type=int, default=10)
    parser.add_argument(
        "--sequential", type=int, default=1_000, help="ops in the one-at-a-time runs"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="kubesvc-bench-") as tmp:
        asyncio.run(main(Path(tmp), args.objects, args.watchers, args.sequential))
