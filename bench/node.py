"""Node agent benchmark: `python bench/node.py [--pods N]`. Prints one JSON line per figure.

Against a real `kubesvc apiserver` (a subprocess on a temporary data dir) with
the node agent running in this process (host mode, a loopback pod range of
its own), every figure seen through the API as a client would see it:
- start: a pod created, until its status says Running with its container
  running (the whole path: create → watch → bind → record → shim → status →
  watch), one pod at a time, p50/p99. Peer, in the same run: starting the same
  command directly (`Popen`, until /proc shows it has exec'd). `ratio` = ours /
  peer: what being a pod costs over being a process;
- burst: N pods created at once, until all are Running. Peer: N direct spawns;
- delete: a DELETE until the pod object is gone (graceful deletion: mark,
  SIGTERM, the agent's final delete). Peer: SIGTERM to the process and reaping it.
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
from pathlib import Path
from typing import Any

from kubesvc.api.errors import StatusError
from kubesvc.client.http import Client
from kubesvc.client.kubeconfig import load_kubeconfig
from kubesvc.node.agent import NodeAgent, NodeConfig
from kubesvc.node.network import Network

Obj = dict[str, Any]
KUBESVC = str(Path(sys.executable).parent / "kubesvc")
NS = "bench"
COMMAND = ["sleep", "300"]


def emit(figure: str, value: float, unit: str, **extra: Any) -> None:
    print(
        json.dumps(
            {"bench": "node", "figure": figure, "value": round(value, 4), "unit": unit} | extra
        ),
        flush=True,
    )


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def pod(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "c", "command": COMMAND}],
        },
    }


def is_running(obj: Obj) -> bool:
    status = obj.get("status") or {}
    containers = status.get("containerStatuses") or [{}]
    return status.get("phase") == "Running" and "running" in (containers[0].get("state") or {})


class Watch:
    """One watch on the namespace's pods; waiters are told when their condition holds."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.latest: dict[str, Obj | None] = {}
        self.changed = asyncio.Condition()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listed = await self.client.list("Pod", NS)
        rv = listed["metadata"]["resourceVersion"]
        self.task = asyncio.create_task(self._run(rv))

    async def _run(self, rv: str) -> None:
        async for kind, obj in self.client.watch("Pod", NS, resource_version=rv):
            if kind == "BOOKMARK":
                continue
            name = obj["metadata"]["name"]
            async with self.changed:
                self.latest[name] = None if kind == "DELETED" else obj
                self.changed.notify_all()

    async def until(self, name: str, check: Any, timeout_s: float = 30) -> None:
        async with asyncio.timeout(timeout_s), self.changed:
            await self.changed.wait_for(lambda: check(self.latest.get(name, {})))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


def direct_start() -> tuple[float, subprocess.Popen[bytes]]:
    began = time.perf_counter()
    proc = subprocess.Popen(COMMAND, start_new_session=True)
    while True:
        try:
            if Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep":
                break
        except OSError:
            pass
        time.sleep(0.0002)
    return time.perf_counter() - began, proc


async def main(pods: int) -> None:
    block = os.getpid() % 250
    pod_cidr: Network = ipaddress.ip_network(f"127.245.{block}.0/24")
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp:
        data = Path(tmp)
        log = (data / "apiserver.log").open("wb")
        server = subprocess.Popen(
            [
                KUBESVC,
                "apiserver",
                "--data-dir",
                str(data),
                "--api-port",
                "0",
                "--pod-cidr",
                str(pod_cidr),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        agent: NodeAgent | None = None
        try:
            for _ in range(300):
                if (data / "kubeconfig").exists():
                    break
                await asyncio.sleep(0.05)
            access = load_kubeconfig(str(data / "kubeconfig"))
            client = Client(access, user_agent="bench-node")
            for _ in range(200):
                with contextlib.suppress(Exception):
                    await client.create(
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
                    )
                    break
                await asyncio.sleep(0.05)
            agent = NodeAgent(
                access,
                NodeConfig(
                    node_name="bench-node",
                    data_dir=data / "node",
                    pod_cidr=pod_cidr,
                    stop_pods_on_exit=True,
                ),
            )
            await agent.start()
            watch = Watch(client)
            await watch.start()

            # start: one at a time
            ours, peer = [], []
            for i in range(pods):
                began = time.perf_counter()
                await client.create(pod(f"s{i}"))
                await watch.until(f"s{i}", lambda o: bool(o) and is_running(o))
                ours.append(time.perf_counter() - began)
                took, proc = direct_start()
                peer.append(took)
                proc.kill()
                proc.wait()
            for p in (50, 99):
                ours_p, peer_p = percentile(ours, p), percentile(peer, p)
                emit(
                    f"start_to_running_p{p}",
                    ours_p * 1000,
                    "ms",
                    peer_ms=round(peer_p * 1000, 3),
                    ratio=round(ours_p / peer_p, 1),
                    pods=pods,
                )

            # delete: one at a time, through graceful deletion
            ours, peer = [], []
            for i in range(pods):
                began = time.perf_counter()
                await client.delete("Pod", f"s{i}", NS)
                await watch.until(f"s{i}", lambda o: o is None)
                ours.append(time.perf_counter() - began)
                _, proc = direct_start()
                began = time.perf_counter()
                proc.send_signal(signal.SIGTERM)
                proc.wait()
                peer.append(time.perf_counter() - began)
            ours_p, peer_p = percentile(ours, 50), percentile(peer, 50)
            emit(
                "delete_to_gone_p50",
                ours_p * 1000,
                "ms",
                peer_ms=round(peer_p * 1000, 3),
                ratio=round(ours_p / peer_p, 1),
                pods=pods,
            )

            # burst: all at once
            began = time.perf_counter()
            await asyncio.gather(*(client.create(pod(f"b{i}")) for i in range(pods)))
            await asyncio.gather(
                *(
                    watch.until(f"b{i}", lambda o: bool(o) and is_running(o), 60)
                    for i in range(pods)
                )
            )
            ours_s = time.perf_counter() - began
            began = time.perf_counter()
            procs = [direct_start()[1] for _ in range(pods)]
            peer_s = time.perf_counter() - began
            for proc in procs:
                proc.kill()
                proc.wait()
            emit(
                "burst_all_running",
                ours_s,
                "s",
                peer_s=round(peer_s, 4),
                ratio=round(ours_s / peer_s, 1),
                pods=pods,
            )
            await watch.stop()
            for i in range(pods):
                with contextlib.suppress(StatusError):
                    await client.delete("Pod", f"b{i}", NS)
            await client.close()
        finally:
            if agent is not None:
                await agent.stop()  # stops the pods still running
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=30, help="pods per phase (default: 30)")
    asyncio.run(main(parser.parse_args().pods))
