"""API server benchmark: `python bench/apiserver.py [--dir D]`. Prints one JSON line per figure.

The server runs as a real process (`kubesvc apiserver --api-port 0`, SQLite with
fsync per commit); this process is the client, over keep-alive HTTPS with the
cluster CA and the admin token from the kubeconfig it writes. Figures:

- creates/s of Services: the first `--sequential` one at a time, the rest of
  `--services` with `--clients` requests in flight. Peer: the raw store
  (`SqliteStore.create`, in this process, no HTTP) at the same concurrency, on
  the same disk — what HTTP, auth, decoding, defaulting and validation cost.
- GETs/s of single Services with `--clients` in flight, and the time to list all
  of them. Peer: a bare aiohttp HTTPS server in its own process (same
  certificate, same event loop), answering the very same JSON from a dict — what
  our stack costs over aiohttp itself.
- watch fan-out: `--watchers` concurrent watches on the namespace, then
  `--updates` merge patches one at a time; latency from the moment a patch is
  sent to each watcher reading its event, p50/p99. Peer: the patch's own
  request latency (its acknowledgement), so `ratio` shows what fan-out adds.

`ratio` is always ours / peer: above 1 is better for rates, worse for times.
Run `python bench/apiserver.py --peer-server DIR` only as this script does.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from kubesvc.storage.sqlite import SqliteStore

KUBESVC = Path(sys.executable).parent / "kubesvc"
SVC_PATH = "/api/v1/namespaces/default/services"
STORE_PREFIX = "/registry/services/default/"
MERGE_PATCH = "application/merge-patch+json"
START_TIMEOUT_S = 30.0


def service(n: int) -> dict[str, Any]:
    """A Service as a client sends it (the server adds uid, timestamps, defaults)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"svc-{n}",
            "labels": {"app": f"app-{n % 50}", "tier": "backend"},
            "annotations": {"seq": "-1"},
        },
        "spec": {
            "selector": {"app": f"app-{n % 50}"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }


def emit(figure: str, value: float, unit: str, **extra: Any) -> None:
    """One JSON line per figure, flushed at once."""
    line = {"bench": "apiserver", "figure": figure, "value": round(value, 3), "unit": unit}
    print(json.dumps({**line, **extra}), flush=True)


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(p * 10) - 1]


async def rate(ops: list[Callable[[], Awaitable[Any]]], in_flight: int) -> float:
    """Operations per second running `ops` with at most `in_flight` at a time."""
    pending = iter(ops)

    async def worker() -> None:
        for op in pending:
            await op()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return len(ops) / (time.perf_counter() - start)


# ------------------------------------------------------------------ processes


@dataclass
class Endpoint:
    """Where a server answers, and how to trust and authenticate to it."""

    url: str
    ssl_context: ssl.SSLContext
    headers: dict[str, str]

    def session(self, limit: int) -> aiohttp.ClientSession:
        """A keep-alive session with up to `limit` connections (0: no limit)."""
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl_context, limit=limit),
            headers=self.headers,
            timeout=aiohttp.ClientTimeout(total=None),
        )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process by PID, SIGKILL if it does not exit within 10 s."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a running process has used (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(path: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not path.exists():
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited: {log.read_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear in {START_TIMEOUT_S} s")
        time.sleep(0.02)


def start_kubesvc(data_dir: Path) -> tuple[subprocess.Popen[bytes], Endpoint]:
    """`kubesvc apiserver` on a free port; its endpoint read from the kubeconfig it writes."""
    data_dir.mkdir(parents=True)
    log = data_dir / "apiserver.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(KUBESVC), "apiserver", "--data-dir", str(data_dir), "--api-port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(data_dir / "kubeconfig", process, log)
        config = yaml.safe_load((data_dir / "kubeconfig").read_text())
        cluster = config["clusters"][0]["cluster"]
        ca_pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
        endpoint = Endpoint(
            cluster["server"],
            ssl.create_default_context(cadata=ca_pem),
            {"Authorization": f"Bearer {config['users'][0]['user']['token']}"},
        )
    except BaseException:
        stop_process(process)
        raise
    return process, endpoint


def start_peer(directory: Path, ca: ssl.SSLContext) -> tuple[subprocess.Popen[bytes], Endpoint]:
    """The bare aiohttp server (this script in --peer-server mode) in its own process."""
    log = directory / "peer.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, __file__, "--peer-server", str(directory)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(directory / "peer.port", process, log)
    except BaseException:
        stop_process(process)
        raise
    port = int((directory / "peer.port").read_text())
    return process, Endpoint(f"https://127.0.0.1:{port}", ca, {})


async def serve_peer(directory: Path) -> None:
    """Serve the objects in peer-objects.json as GET-one and list, over HTTPS, until SIGTERM."""
    listed = json.loads((directory / "peer-objects.json").read_text())
    by_name = {obj["metadata"]["name"]: obj for obj in listed["items"]}

    async def get_one(request: web.Request) -> web.Response:
        obj = by_name.get(request.match_info["name"])
        if obj is None:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        return web.Response(
            body=json.dumps(obj, separators=(",", ":")).encode(), content_type="application/json"
        )

    async def list_all(request: web.Request) -> web.Response:
        return web.Response(
            body=json.dumps(listed, separators=(",", ":")).encode(),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_get(SVC_PATH, list_all)
    app.router.add_get(SVC_PATH + "/{name}", get_one)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_dir = directory / "kubesvc"
    tls.load_cert_chain(server_dir / "apiserver.crt", server_dir / "apiserver.key")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    port_file = directory / "peer.port"
    port_file.with_suffix(".tmp").write_text(str(runner.addresses[0][1]))
    port_file.with_suffix(".tmp").replace(port_file)
    await stop.wait()
    await runner.cleanup()


# ---------------------------------------------------------------- the figures


async def wait_ready(endpoint: Endpoint) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with endpoint.session(1) as session:
        while True:
            try:
                async with session.get(endpoint.url + "/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API server did not become ready")
            await asyncio.sleep(0.05)


async def create_services(
    endpoint: Endpoint, numbers: range, in_flight: int
) -> tuple[float, dict[str, Any]]:
    """POST Services; returns (creates/s, one created object)."""
    created: dict[str, Any] = {}
    async with endpoint.session(in_flight) as session:

        async def create(n: int) -> None:
            async with session.post(endpoint.url + SVC_PATH, json=service(n)) as resp:
                body = await resp.read()
                if resp.status != 201:
                    raise RuntimeError(f"create svc-{n}: {resp.status} {body[:300]!r}")
                if not created:
                    created.update(json.loads(body))

        ours = await rate([lambda n=n: create(n) for n in numbers], in_flight)
    return ours, created


async def store_create_rate(
    path: Path, template: dict[str, Any], numbers: range, in_flight: int
) -> float:
    """The raw store's creates/s for the same objects at the same concurrency."""
    store = await SqliteStore.open(path)
    try:

        def obj(n: int) -> dict[str, Any]:
            copy = json.loads(json.dumps(template))
            copy["metadata"]["name"] = f"svc-{n}"
            copy["metadata"]["uid"] = f"00000000-0000-0000-0000-{n:012d}"
            return copy

        return await rate(
            [lambda n=n: store.create(f"{STORE_PREFIX}svc-{n}", obj(n)) for n in numbers],
            in_flight,
        )
    finally:
        await store.close()


async def get_rate(
    endpoint: Endpoint, names: list[str], in_flight: int, server_pid: int
) -> tuple[float, float | None]:
    """Single-object GETs per second with `in_flight` at a time, and server CPU µs per GET."""
    async with endpoint.session(in_flight) as session:

        async def get(name: str) -> None:
            async with session.get(f"{endpoint.url}{SVC_PATH}/{name}") as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"GET {name}: {resp.status}")

        # Warm up: open every connection (TLS handshakes are not what is measured).
        await rate([lambda: get(names[0]) for _ in range(in_flight * 2)], in_flight)
        cpu_before = cpu_seconds(server_pid)
        ops = await rate([lambda name=name: get(name) for name in names], in_flight)
        cpu_after = cpu_seconds(server_pid)
    if cpu_before is None or cpu_after is None:
        return ops, None
    return ops, round((cpu_after - cpu_before) / len(names) * 1e6, 1)


async def list_time(endpoint: Endpoint, repeats: int, expect: int) -> tuple[float, int]:
    """Median seconds to GET the whole namespace's list (body read and parsed), and its size."""
    times: list[float] = []
    size = 0
    async with endpoint.session(1) as session:
        for _ in range(repeats):
            start = time.perf_counter()
            async with session.get(endpoint.url + SVC_PATH) as resp:
                body = await resp.read()
            items = json.loads(body)["items"]
            times.append(time.perf_counter() - start)
            size = len(body)
            if len(items) != expect:
                raise RuntimeError(f"listed {len(items)} Services, expected {expect}")
    return statistics.median(times), size


async def watch_fan_out(
    endpoint: Endpoint, watchers: int, updates: int, objects: int
) -> tuple[list[float], list[float]]:
    """Latencies (s) from sending each patch to each watcher reading it, and the patches' own."""
    submitted: dict[int, float] = {}
    latencies: list[float] = []
    acks: list[float] = []
    async with endpoint.session(0) as watch_session, endpoint.session(1) as session:
        async with session.get(f"{endpoint.url}{SVC_PATH}?limit=1") as resp:
            rv = (await resp.json())["metadata"]["resourceVersion"]
        url = f"{endpoint.url}{SVC_PATH}?watch=true&resourceVersion={rv}"
        streams = await asyncio.gather(*(watch_session.get(url) for _ in range(watchers)))
        for stream in streams:
            if stream.status != 200:
                raise RuntimeError(f"watch refused: {stream.status} {await stream.text()}")

        async def consume(stream: aiohttp.ClientResponse) -> None:
            seen = 0
            while seen < updates:
                line = await stream.content.readline()
                if not line:
                    raise RuntimeError(f"a watch ended after {seen} events")
                now = time.perf_counter()
                event = json.loads(line)
                seq = int(event["object"]["metadata"]["annotations"]["seq"])
                latencies.append(now - submitted[seq])
                seen += 1

        consumers = [asyncio.create_task(consume(s)) for s in streams]
        try:
            for seq in range(updates):
                name = f"svc-{random.randrange(objects)}"
                patch = json.dumps({"metadata": {"annotations": {"seq": str(seq)}}})
                submitted[seq] = start = time.perf_counter()
                async with session.patch(
                    f"{endpoint.url}{SVC_PATH}/{name}",
                    data=patch,
                    headers={"Content-Type": MERGE_PATCH},
                ) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"patch {name}: {resp.status}")
                acks.append(time.perf_counter() - start)
            await asyncio.wait_for(asyncio.gather(*consumers), 120)
        finally:
            for task in consumers:
                task.cancel()
            for stream in streams:
                stream.close()
    return latencies, acks


async def main(directory: Path, args: argparse.Namespace) -> None:
    objects, sequential, clients = args.services, args.sequential, args.clients
    process, endpoint = start_kubesvc(directory / "kubesvc")
    try:
        await wait_ready(endpoint)
        seq_rate, template = await create_services(endpoint, range(sequential), 1)
        conc_rate, _ = await create_services(endpoint, range(sequential, objects), clients)
        names = [f"svc-{random.randrange(objects)}" for _ in range(args.gets)]
        get_ours, get_cpu = await get_rate(endpoint, names, clients, process.pid)
        list_ours, list_bytes = await list_time(endpoint, args.lists, objects)
        async with endpoint.session(1) as session, session.get(endpoint.url + SVC_PATH) as resp:
            (directory / "peer-objects.json").write_bytes(await resp.read())
        latencies, acks = await watch_fan_out(endpoint, args.watchers, args.updates, objects)
    finally:
        stop_process(process)

    # Peers, each alone on the machine as ours was.
    # The store peer writes the object exactly as our server stored it (defaulted, with uid).
    seq_peer = await store_create_rate(directory / "peer-seq.db", template, range(sequential), 1)
    conc_peer = await store_create_rate(
        directory / "peer-conc.db", template, range(sequential, objects), clients
    )
    peer_process, peer = start_peer(directory, endpoint.ssl_context)
    try:
        get_peer, get_peer_cpu = await get_rate(peer, names, clients, peer_process.pid)
        list_peer, _ = await list_time(peer, args.lists, objects)
    finally:
        stop_process(peer_process)

    store_peer = "SqliteStore.create in-process, same concurrency"
    for in_flight, ours, theirs, count in (
        (1, seq_rate, seq_peer, sequential),
        (clients, conc_rate, conc_peer, objects - sequential),
    ):
        emit(
            "creates_per_s",
            ours,
            "ops/s",
            in_flight=in_flight,
            count=count,
            peer=store_peer,
            peer_value=round(theirs, 1),
            ratio=round(ours / theirs, 3),
        )
    emit(
        "get_per_s",
        get_ours,
        "ops/s",
        in_flight=clients,
        count=len(names),
        objects=objects,
        server_cpu_us_per_op=get_cpu,
        peer_server_cpu_us_per_op=get_peer_cpu,
        peer="bare aiohttp",
        peer_value=round(get_peer, 1),
        ratio=round(get_ours / get_peer, 3),
    )
    emit(
        "list_all_s",
        list_ours,
        "s",
        objects=objects,
        bytes=list_bytes,
        repeats=args.lists,
        peer="bare aiohttp",
        peer_value=round(list_peer, 4),
        ratio=round(list_ours / list_peer, 3),
    )
    for p in (50, 99):
        ours = percentile(latencies, p) * 1000
        theirs = percentile(acks, p) * 1000
        emit(
            f"watch_latency_p{p}_ms",
            ours,
            "ms",
            watchers=args.watchers,
            updates=args.updates,
            samples=len(latencies),
            objects=objects,
            peer="patch acknowledgement latency",
            peer_value=round(theirs, 3),
            ratio=round(ours / theirs, 3),
        )


def _install_uvloop() -> None:
    """Use uvloop where present, as `kubesvc` itself does, so both sides run the same loop."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to put the data dirs")
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--sequential", type=int, default=500, help="creates sent one at a time")
    parser.add_argument("--clients", type=int, default=32, help="requests in flight")
    parser.add_argument("--gets", type=int, default=10_000)
    parser.add_argument("--lists", type=int, default=3, help="list-all repeats (median)")
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--updates", type=int, default=500)
    parser.add_argument("--peer-server", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    _install_uvloop()
    if args.peer_server is not None:
        asyncio.run(serve_peer(args.peer_server))
    else:
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="kubesvc-bench-") as tmp:
            asyncio.run(main(Path(tmp), args))
