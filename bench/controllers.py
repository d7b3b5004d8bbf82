"""Controller benchmark: `python bench/controllers.py [--services N]`. Prints one JSON line per figure.

Against a real `kubesvc apiserver` (a subprocess on a temporary data dir), with
the ControllerManager (Endpoints, EndpointSlice and mirroring controllers)
running in this process:
- load: N Services × 10 pods, each pod made ready through /status (controllers off);
- converge: start the controllers and time until every Service's Endpoints lists
  its 10 ready pods, and until every Service has a slice with its 10 ready
  endpoints. The peer, in the same run against the same server: the raw API
  calls alone — writing the same N Endpoints and N EndpointSlices directly, with
  as many in flight as the controllers have workers. `ratio` = ours / peer, so
  it is the controllers' overhead (informer lists, watch, layout) on top of the
  writes they must make anyway;
- flip: one pod's readiness flipped 50 times; latency from the /status write
  until the Endpoints (and the slice) show it, p50/p99. Peer: writing that
  Endpoints object directly and seeing it come back on the same watch.
N defaults to 10,000 (the issue's size) when the load rate measured in the first
chunks says it fits in the time budget, otherwise to the largest N that does;
the `n_services` figure says which, plainly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kubesvc.client.http import Client
from kubesvc.client.kubeconfig import ClusterAccess, load_kubeconfig
from kubesvc.controllers.manager import ControllerManager

Obj = dict[str, Any]
KUBESVC = str(Path(sys.executable).parent / "kubesvc")
NS, PEER_NS = "bench", "peer"
PODS_PER_SERVICE = 10
FLIPS = 50
TARGET_SERVICES = 10_000
CHUNK = 100  # Services loaded per step (with their pods), so N can stop at any chunk
LOAD_IN_FLIGHT = 64
# What the phases after the load cost, as a multiple of the load time; measured on a
# 2-core machine at N=1,000 and N=2,000 (converge+peer ≈ 0.6 × load), with margin.
AFTER_LOAD_FACTOR = 0.9
FIRST_POD_IP = int(ipaddress.IPv4Address("198.18.0.1"))  # 198.18.0.0/15 holds 131,070 pods


def emit(figure: str, value: float, unit: str, **extra: Any) -> None:
    print(
        json.dumps(
            {"bench": "controllers", "figure": figure, "value": round(value, 4), "unit": unit}
            | extra
        )
    )
    sys.stdout.flush()


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(p * 10) - 1]


# ------------------------------------------------------------------ server


def start_apiserver(data_dir: Path) -> tuple[subprocess.Popen[bytes], ClusterAccess]:
    log = (data_dir / "apiserver.log").open("wb")
    process = subprocess.Popen(
        [KUBESVC, "apiserver", "--data-dir", str(data_dir), "--api-port", "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    kubeconfig = data_dir / "kubeconfig"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"apiserver exited:\n{(data_dir / 'apiserver.log').read_text()}")
        if kubeconfig.exists():
            access = load_kubeconfig(str(kubeconfig))
            try:
                request = urllib.request.Request(access.server + "/readyz")
                with urllib.request.urlopen(request, context=access.ssl_context(), timeout=5) as r:
                    if r.status == 200:
                        return process, access
            except OSError:
                pass
        time.sleep(0.05)
    stop_apiserver(process)
    raise SystemExit("apiserver did not become ready in 60 s")


def stop_apiserver(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


# ----------------------------------------------------------------- objects


def pod_ip(service: int, pod: int) -> str:
    return str(ipaddress.IPv4Address(FIRST_POD_IP + service * PODS_PER_SERVICE + pod))


def service_body(i: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"s{i}"},
        "spec": {
            "selector": {"app": f"s{i}"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def pod_body(i: int, j: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"s{i}-p{j}", "labels": {"app": f"s{i}"}},
        "spec": {
            "nodeName": "node-1",
            "containers": [
                {
                    "name": "c",
                    "image": "none",
                    "ports": [{"name": "http", "containerPort": 8080}],
                }
            ],
        },
    }


def pod_status(ip: str, ready: bool) -> Obj:
    return {
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }
    }


def peer_endpoints(i: int, ready: list[str], not_ready: list[str]) -> Obj:
    """What the Endpoints controller writes for Service i (the peer writes it directly)."""
    subset: Obj = {"ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    if ready:
        subset["addresses"] = [{"ip": ip, "nodeName": "node-1"} for ip in ready]
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip, "nodeName": "node-1"} for ip in not_ready]
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": f"s{i}", "labels": {"kubernetes.io/service-name": f"s{i}"}},
        "subsets": [subset],
    }


def peer_slice(i: int) -> Obj:
    """What the EndpointSlice controller writes for Service i."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"generateName": f"s{i}-", "labels": {"kubernetes.io/service-name": f"s{i}"}},
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [pod_ip(i, j)],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": "node-1",
                "targetRef": {"kind": "Pod", "namespace": PEER_NS, "name": f"s{i}-p{j}"},
            }
            for j in range(PODS_PER_SERVICE)
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


async def run_pool(jobs: list[Callable[[], Awaitable[Any]]], in_flight: int) -> None:
    queue = iter(jobs)

    async def worker() -> None:
        for job in queue:
            await job()

    await asyncio.gather(*(worker() for _ in range(in_flight)))


# ------------------------------------------------------------------- phases


async def load(client: Client, n_target: int, budget_s: float, fixed: bool) -> tuple[int, float]:
    """Create Services and ready pods chunk by chunk; stop early if N would not fit the budget."""
    start = time.perf_counter()
    loaded = 0
    while loaded < n_target:
        first, last = loaded, min(loaded + CHUNK, n_target)
        jobs: list[Callable[[], Awaitable[Any]]] = []
        for i in range(first, last):
            jobs.append(lambda i=i: client.create(service_body(i), NS))
            for j in range(PODS_PER_SERVICE):

                async def pod(i: int = i, j: int = j) -> None:
                    await client.create(pod_body(i, j), NS)
                    await client.patch(
                        "Pod",
                        f"s{i}-p{j}",
                        pod_status(pod_ip(i, j), True),
                        NS,
                        subresource="status",
                    )

                jobs.append(pod)
        await run_pool(jobs, LOAD_IN_FLIGHT)
        loaded = last
        elapsed = time.perf_counter() - start
        if not fixed and loaded >= 5 * CHUNK:
            # Whole run ≈ load × (1 + AFTER_LOAD_FACTOR): cap N where that meets the budget.
            per_service_s = elapsed / loaded
            fits = int(budget_s / (per_service_s * (1 + AFTER_LOAD_FACTOR)))
            fits = max(CHUNK, fits // CHUNK * CHUNK)
            n_target = min(n_target, max(fits, loaded))
    return loaded, time.perf_counter() - start


async def peer_writes(client: Client, n: int, in_flight: int) -> float:
    """The raw API calls alone: the same N Endpoints and N slices, written directly."""
    ready = [[pod_ip(i, j) for j in range(PODS_PER_SERVICE)] for i in range(n)]
    jobs: list[Callable[[], Awaitable[Any]]] = []
    for i in range(n):
        jobs.append(lambda i=i: client.create(peer_endpoints(i, ready[i], []), PEER_NS))
        jobs.append(lambda i=i: client.create(peer_slice(i), PEER_NS))
    start = time.perf_counter()
    await run_pool(jobs, in_flight)
    return time.perf_counter() - start


class Watcher:
    """Handlers on the manager's own informers: when is every object right, when did a flip land."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.right_endpoints: set[str] = set()
        self.slice_ready: dict[str, tuple[str, int]] = {}  # slice key → (service, ready count)
        self.full_slices: dict[str, set[str]] = {}  # service → keys of its slices with all 10 ready
        self.endpoints_done = asyncio.Event()
        self.slices_done = asyncio.Event()
        # The flip target: (namespace, service name, pod IP, wanted ready) and its events.
        self.flip: tuple[str, str, str, bool] | None = None
        self.flip_endpoints = asyncio.Event()
        self.flip_slice = asyncio.Event()

    def on_endpoints(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        meta = obj["metadata"]
        if meta.get("namespace") == NS:
            subsets = (new or {}).get("subsets") or []
            ready = sum(len(s.get("addresses") or []) for s in subsets)
            not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
            if new is not None and ready == PODS_PER_SERVICE and not not_ready:
                self.right_endpoints.add(meta["name"])
            else:
                self.right_endpoints.discard(meta["name"])
            if len(self.right_endpoints) >= self.n:
                self.endpoints_done.set()
        if self.flip and new is not None and (meta.get("namespace"), meta["name"]) == self.flip[:2]:
            key = "addresses" if self.flip[3] else "notReadyAddresses"
            ips = {a["ip"] for s in new.get("subsets") or [] for a in s.get(key) or []}
            if self.flip[2] in ips:
                self.flip_endpoints.set()

    def on_slice(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        meta = obj["metadata"]
        if meta.get("namespace") != NS:
            return
        key = meta["name"]
        service = (meta.get("labels") or {}).get("kubernetes.io/service-name", "")
        ready = sum(
            1
            for e in (new or {}).get("endpoints") or []
            if (e.get("conditions") or {}).get("ready")
        )
        full = self.full_slices.setdefault(service, set())
        if new is not None and ready == PODS_PER_SERVICE:
            full.add(key)
        else:
            full.discard(key)
        if sum(1 for keys in self.full_slices.values() if keys) >= self.n:
            self.slices_done.set()
        if self.flip and new is not None and (NS, service) == self.flip[:2]:
            for e in new.get("endpoints") or []:
                ready_now = bool((e.get("conditions") or {}).get("ready"))
                if self.flip[2] in e.get("addresses", []) and ready_now == self.flip[3]:
                    self.flip_slice.set()


async def flips(
    client: Client, watcher: Watcher, *, direct: bool
) -> tuple[list[float], list[float]]:
    """Flip s0-p0's readiness FLIPS times; latencies to the Endpoints and to the slice.

    `direct`: the peer — write the Endpoints object in PEER_NS directly instead.
    """
    ip = pod_ip(0, 0)
    others = [pod_ip(0, j) for j in range(1, PODS_PER_SERVICE)]
    to_endpoints: list[float] = []
    to_slice: list[float] = []
    ready = True
    for _ in range(FLIPS):
        ready = not ready
        watcher.flip = (PEER_NS if direct else NS, "s0", ip, ready)
        watcher.flip_endpoints.clear()
        watcher.flip_slice.clear()
        start = time.perf_counter()
        if direct:
            current = await client.get("Endpoints", "s0", PEER_NS)
            body = peer_endpoints(0, [*others, ip] if ready else others, [] if ready else [ip])
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            body["metadata"]["namespace"] = PEER_NS
            await client.update(body)
        else:
            await client.patch("Pod", "s0-p0", pod_status(ip, ready), NS, subresource="status")
        await asyncio.wait_for(watcher.flip_endpoints.wait(), 30)
        to_endpoints.append(time.perf_counter() - start)
        if not direct:
            await asyncio.wait_for(watcher.flip_slice.wait(), 30)
            to_slice.append(time.perf_counter() - start)
    watcher.flip = None
    return to_endpoints, to_slice


async def main(n_wanted: int | None, budget_s: float, workers: int) -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kubesvc-bench-") as tmp:
        process, access = start_apiserver(Path(tmp))
        try:
            async with Client(access, user_agent="bench-load") as client:
                for name in (NS, PEER_NS):
                    await client.create(
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                    )
                # Leave ~10% of the budget for the server's start and the flips.
                n, load_s = await load(
                    client,
                    n_wanted or TARGET_SERVICES,
                    budget_s * 0.9 - (time.perf_counter() - started),
                    fixed=n_wanted is not None,
                )
                writes = n * (1 + 2 * PODS_PER_SERVICE)
                if n_wanted is not None:
                    note = f"N={n} as asked on the command line"
                elif n >= TARGET_SERVICES:
                    note = f"N={n:,}, the issue's size, fits the {budget_s:.0f} s budget here"
                else:
                    note = (
                        f"N={n:,}, NOT the issue's 10,000: at this machine's load rate 10,000 "
                        f"would not finish in the {budget_s:.0f} s budget"
                    )
                emit("n_services", n, "services", pods=n * PODS_PER_SERVICE, note=note)
                emit(
                    "load_writes_per_s",
                    writes / load_s,
                    "writes/s",
                    writes=writes,
                    seconds=round(load_s, 1),
                    in_flight=LOAD_IN_FLIGHT,
                    what="Service + Pod creates + Pod /status patches, controllers off",
                )

                # The peer first, in a namespace of its own, so it competes with nothing;
                # the controllers then list (and ignore) its objects too, which is their cost.
                in_flight = 2 * workers  # Endpoints + EndpointSlice controllers' workers
                peer_s = await peer_writes(client, n, in_flight)

                manager = ControllerManager(access, workers=workers)
                watcher = Watcher(n)
                manager.informer("Endpoints").add_handler(watcher.on_endpoints)
                manager.informer("EndpointSlice").add_handler(watcher.on_slice)
                t0 = time.perf_counter()
                await manager.start(sync_timeout_s=600)
                synced_s = time.perf_counter() - t0
                try:
                    await asyncio.wait_for(watcher.endpoints_done.wait(), budget_s)
                    endpoints_s = time.perf_counter() - t0
                    await asyncio.wait_for(watcher.slices_done.wait(), budget_s)
                    slices_s = time.perf_counter() - t0
                    emit(
                        "informer_sync_s",
                        synced_s,
                        "s",
                        what="list Services, Pods, Endpoints, EndpointSlices before any sync",
                        objects=n * (PODS_PER_SERVICE + 1) + 2 * n,
                    )
                    for figure, ours in (
                        ("converge_endpoints_s", endpoints_s),
                        ("converge_endpoints_and_slices_s", slices_s),
                    ):
                        emit(
                            figure,
                            ours,
                            "s",
                            n_services=n,
                            peer="raw API: the same N Endpoints + N EndpointSlices written directly",
                            peer_value=round(peer_s, 3),
                            peer_in_flight=in_flight,
                            ratio=round(ours / peer_s, 3),
                        )
                    await asyncio.sleep(0.5)  # let the echoes of the last writes settle

                    peer_ep, _ = await flips(client, watcher, direct=True)
                    ours_ep, ours_slice = await flips(client, watcher, direct=False)
                    for figure, values in (
                        ("flip_to_endpoints", ours_ep),
                        ("flip_to_slice", ours_slice),
                    ):
                        for p in (50, 99):
                            peer = percentile(peer_ep, p)
                            ours_p = percentile(values, p)
                            emit(
                                f"{figure}_p{p}_ms",
                                ours_p * 1000,
                                "ms",
                                flips=FLIPS,
                                n_services=n,
                                peer="Endpoints written directly, seen on the same watch",
                                peer_value=round(peer * 1000, 3),
                                ratio=round(ours_p / peer, 3),
                            )
                    for controller in manager.controllers:
                        emit(
                            f"{controller.name}_syncs",
                            controller.syncs,
                            "syncs",
                            failures=controller.failures,
                            writes=getattr(controller, "writes", None),
                        )
                finally:
                    await manager.stop()
        finally:
            stop_apiserver(process)
    emit("total_s", time.perf_counter() - started, "s", budget_s=budget_s)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--services", type=int, default=None, help="N (default: 10,000 if it fits the budget)"
    )
    parser.add_argument("--budget-s", type=float, default=300.0, help="time budget of the run")
    parser.add_argument("--workers", type=int, default=4, help="workers per controller")
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(main(args.services, args.budget_s, args.workers))
