"""DNS benchmark: `python bench/dns.py [--services N] [--seconds S]`. Prints one JSON line per figure.

Figures, measured with dnsperf over UDP on 127.0.0.1 against the same records:
- queries/s at saturation (dnsperf: 4 clients, 100 queries outstanding) and
  the average latency there; the median of `--rounds` rounds that alternate
  between the servers (this is usually a small shared machine);
- p50/p99 latency at a fixed, equal load for every server (a quarter of the
  slower server's saturation rate), from dnsperf's per-query log;
- for kubesvc also the dnspython-only path (precomputed answers off), to
  show what the fast path buys.
The peer, in the same run: Knot DNS (`knotd`, one UDP worker so it uses one
core as our single event loop does), else NSD, else dnsmasq — installed with
apt-get when missing and running as root. `ratio` = kubesvc / peer: above 1 is
better for queries/s, below 1 is better for latency.

The zone: N ClusterIP Services (A + SRV per named port) and N/10 headless
Services with 5 ready endpoints each, in namespace `bench`. The query mix:
70 % A of a ClusterIP Service, 10 % SRV, 10 % headless A, 10 % NXDOMAIN
(search-path misses). kubesvc's records come from its real index, fed the
same Service and Endpoints objects an informer would deliver.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This file is bench/dns.py: run as a script, its folder heads sys.path and would
# shadow dnspython's `dns` package, so that folder leaves the path first.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != _HERE]

import dns.exception  # noqa: E402
import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.rcode  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
ZONE = "cluster.local"
NS = "bench"
HEADLESS_ENDPOINTS = 5


def emit(figure: str, value: float, unit: str, **extra: Any) -> None:
    print(
        json.dumps(
            {"bench": "dns", "figure": figure, "value": round(value, 6), "unit": unit, **extra}
        )
    )
    sys.stdout.flush()


# ---------------------------------------------------------------- the data


def cluster_ip(i: int) -> str:
    return f"127.96.{i // 250}.{i % 250 + 1}"


def endpoint_ip(h: int, e: int) -> str:
    n = h * HEADLESS_ENDPOINTS + e
    return f"198.18.{n // 250}.{n % 250 + 1}"


def objects(services: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Service and Endpoints objects as the API would deliver them."""
    svcs, eps = [], []
    port = [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
    for i in range(services):
        svcs.append(
            {
                "kind": "Service",
                "metadata": {"name": f"svc-{i}", "namespace": NS},
                "spec": {"clusterIP": cluster_ip(i), "clusterIPs": [cluster_ip(i)], "ports": port},
            }
        )
    for h in range(max(1, services // 10)):
        svcs.append(
            {
                "kind": "Service",
                "metadata": {"name": f"hl-{h}", "namespace": NS},
                "spec": {"clusterIP": "None", "ports": port},
            }
        )
        addresses = [{"ip": endpoint_ip(h, e)} for e in range(HEADLESS_ENDPOINTS)]
        eps.append(
            {
                "kind": "Endpoints",
                "metadata": {"name": f"hl-{h}", "namespace": NS},
                "subsets": [{"addresses": addresses, "ports": [{"name": "http", "port": 8080}]}],
            }
        )
    return svcs, eps


def zone_text(services: int) -> str:
    """The same records as a zone file (for Knot and NSD)."""
    out = [
        f"$ORIGIN {ZONE}.",
        "$TTL 5",
        f"@ IN SOA ns.dns.{ZONE}. hostmaster.{ZONE}. 1 7200 1800 86400 5",
        f"@ IN NS ns.dns.{ZONE}.",
        "ns.dns IN A 127.0.0.1",
        'dns-version 28800 IN TXT "1.1.0"',
    ]
    for i in range(services):
        out.append(f"svc-{i}.{NS}.svc IN A {cluster_ip(i)}")
        out.append(f"_http._tcp.svc-{i}.{NS}.svc IN SRV 0 100 80 svc-{i}.{NS}.svc.{ZONE}.")
    for h in range(max(1, services // 10)):
        for e in range(HEADLESS_ENDPOINTS):
            ip = endpoint_ip(h, e)
            out.append(f"hl-{h}.{NS}.svc IN A {ip}")
            out.append(f"{ip.replace('.', '-')}.hl-{h}.{NS}.svc IN A {ip}")
    return "\n".join(out) + "\n"


def query_file(services: int, path: Path) -> None:
    rng = random.Random(42)
    lines = []
    headless = max(1, services // 10)
    for _ in range(max(10 * services, 10_000)):
        roll = rng.random()
        i = rng.randrange(services)
        if roll < 0.7:
            lines.append(f"svc-{i}.{NS}.svc.{ZONE} A")
        elif roll < 0.8:
            lines.append(f"_http._tcp.svc-{i}.{NS}.svc.{ZONE} SRV")
        elif roll < 0.9:
            lines.append(f"hl-{rng.randrange(headless)}.{NS}.svc.{ZONE} A")
        else:
            lines.append(f"example-{i}.com.{NS}.svc.{ZONE} A")
    path.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------- kubesvc (child process)


def serve(port: int, services: int, precompute: bool) -> None:
    """Child mode: kubesvc DNS on `port` over an index fed synthetic objects."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    from kubesvc.dns.index import ClusterIndex
    from kubesvc.dns.server import DNSConfig, DNSServer

    async def main() -> None:
        index = ClusterIndex()
        svcs, eps = objects(services)
        for obj in svcs:
            index.on_service("ADDED", None, obj)
        for obj in eps:
            index.on_endpoints("ADDED", None, obj)
        index.synced = lambda: True
        server = DNSServer(DNSConfig(address=HOST, port=port, precompute=precompute), lookup=index)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("ready", flush=True)
        try:
            await stop.wait()
        finally:
            await server.close()

    asyncio.run(main())


# ---------------------------------------------------------------- peers


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (DNS servers take both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            udp.bind((HOST, 0))
            port = udp.getsockname()[1]
            try:
                tcp.bind((HOST, port))
            except OSError:
                continue  # its TCP twin is taken: draw again
            return port
    raise RuntimeError("no port free for both UDP and TCP")


def wait_answering(port: int, proc: subprocess.Popen[Any], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    q = dns.message.make_query(f"svc-0.{NS}.svc.{ZONE}", "A")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            reply = dns.query.udp(q, HOST, port=port, timeout=0.3)
            if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                return
        except (TimeoutError, OSError, dns.exception.DNSException):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no answer on port {port} within {timeout_s} s")


def find(binary: str) -> str | None:
    return shutil.which(binary) or next(
        (p for p in (f"/usr/sbin/{binary}", f"/sbin/{binary}") if os.access(p, os.X_OK)), None
    )


def ensure_peer(choice: str) -> str | None:
    """The peer to use (installing Knot with apt-get if nothing is there and we are root)."""
    order = ["knot", "nsd", "dnsmasq"] if choice == "auto" else [choice]
    binaries = {"knot": "knotd", "nsd": "nsd", "dnsmasq": "dnsmasq"}
    for name in order:
        if find(binaries[name]):
            return name
    if os.geteuid() == 0 and shutil.which("apt-get"):
        package = {"knot": "knot", "nsd": "nsd", "dnsmasq": "dnsmasq-base"}[order[0]]
        print(f"bench/dns: installing {package} with apt-get", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
        if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(cmd, env=env, capture_output=True)
        if find(binaries[order[0]]):
            return order[0]
    return None


def start_peer(name: str, port: int, services: int, work: Path) -> subprocess.Popen[Any]:
    zone_file = work / f"{ZONE}.zone"
    zone_file.write_text(zone_text(services))
    log = (work / f"{name}.log").open("w")
    if name == "knot":
        conf = work / "knot.conf"
        conf.write_text(
            f"""server:
    listen: {HOST}@{port}
    rundir: "{work}"
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{work}/db"
log:
  - target: stderr
    any: warning
zone:
  - domain: {ZONE}
    storage: "{work}"
    file: "{zone_file.name}"
    journal-content: none
    zonefile-sync: -1
"""
        )
        cmd = [find("knotd") or "knotd", "-c", str(conf)]
    elif name == "nsd":
        conf = work / "nsd.conf"
        conf.write_text(
            f"""server:
    ip-address: {HOST}@{port}
    server-count: 1
    zonesdir: "{work}"
    pidfile: "{work}/nsd.pid"
    xfrdfile: "{work}/xfrd.state"
    zonelistfile: "{work}/zone.list"
    database: ""
    username: ""
    logfile: "{work}/nsd.log"
remote-control:
    control-enable: no
zone:
    name: {ZONE}
    zonefile: "{zone_file.name}"
"""
        )
        cmd = [find("nsd") or "nsd", "-d", "-c", str(conf)]
    else:
        hosts = work / "hosts"
        lines = []
        for i in range(services):
            lines.append(f"{cluster_ip(i)} svc-{i}.{NS}.svc.{ZONE}")
        for h in range(max(1, services // 10)):
            for e in range(HEADLESS_ENDPOINTS):
                lines.append(f"{endpoint_ip(h, e)} hl-{h}.{NS}.svc.{ZONE}")
        hosts.write_text("\n".join(lines) + "\n")
        srv = work / "srv.conf"
        srv.write_text(
            "".join(
                f"srv-host=_http._tcp.svc-{i}.{NS}.svc.{ZONE},svc-{i}.{NS}.svc.{ZONE},80,0,100\n"
                for i in range(services)
            )
        )
        cmd = [
            find("dnsmasq") or "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            f"--addn-hosts={hosts}",
            f"--conf-file={srv}",
            f"--listen-address={HOST}",
            "--bind-interfaces",
            f"--port={port}",
            f"--local=/{ZONE}/",
            "--cache-size=0",
            "--user=root",
        ]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# ---------------------------------------------------------------- dnsperf


def dnsperf(port: int, queries: Path, *args: str) -> str:
    cmd = ["dnsperf", "-s", HOST, "-p", str(port), "-d", str(queries), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout


def saturation(port: int, queries: Path, seconds: float) -> tuple[float, float, float]:
    """(queries/s, average latency s, lost fraction) with 4 clients × 100 outstanding."""
    out = dnsperf(port, queries, "-l", str(seconds), "-c", "4", "-q", "100")
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    avg = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    sent = int(re.search(r"Queries sent:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    return qps, avg, lost / max(sent, 1)


def latency_at(port: int, queries: Path, rate: int, seconds: float) -> tuple[float, float]:
    """(p50, p99) latency in s at a fixed query rate, from dnsperf's per-query log."""
    out = dnsperf(port, queries, "-l", str(seconds), "-Q", str(rate), "-v")
    samples = sorted(
        float(line.rsplit(None, 1)[1]) for line in out.splitlines() if line.startswith("> ")
    )
    if not samples:
        raise RuntimeError("dnsperf logged no answers")
    return samples[len(samples) // 2], samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per saturation round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server (median)")
    parser.add_argument(
        "--peer", choices=["auto", "knot", "nsd", "dnsmasq", "none"], default="auto"
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # child mode: port
    parser.add_argument("--no-precompute", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.services, not args.no_precompute)
        return 0
    if shutil.which("dnsperf") is None:
        print(
            "bench/dns: dnsperf is missing (Debian package dnsperf; `make setup` as root)",
            file=sys.stderr,
        )
        return 1

    peer = None if args.peer == "none" else ensure_peer(args.peer)
    if peer is None and args.peer != "none":
        print(
            "bench/dns: no peer DNS server (knot, nsd, dnsmasq) available; kubesvc alone",
            file=sys.stderr,
        )

    with tempfile.TemporaryDirectory(prefix="kubesvc-bench-dns-") as tmp:
        work = Path(tmp)
        queries = work / "queries.txt"
        query_file(args.services, queries)
        servers: dict[str, tuple[subprocess.Popen[Any], int]] = {}
        try:
            for label, extra in (("kubesvc", []), ("kubesvc-dnspython", ["--no-precompute"])):
                port = free_port()
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--serve",
                        str(port),
                        "--services",
                        str(args.services),
                        *extra,
                    ],
                    stdout=subprocess.DEVNULL,
                    cwd=ROOT,
                )
                servers[label] = (proc, port)
            if peer is not None:
                port = free_port()
                servers[peer] = (start_peer(peer, port, args.services, work), port)
            for proc, port in servers.values():
                wait_answering(port, proc)

            for _, port in servers.values():
                dnsperf(port, queries, "-n", "1", "-c", "4")  # warm: every name asked once
            # Rounds alternate between the servers and the median round counts: this is a
            # small shared machine, and a burst of other work must not decide a ratio.
            rounds = args.rounds
            samples: dict[str, list[tuple[float, float, float]]] = {s: [] for s in servers}
            for i in range(rounds):
                for label, (_, port) in servers.items():
                    if label == "kubesvc-dnspython" and i > 0:
                        continue  # a reference point, far from the others: one round will do
                    samples[label].append(saturation(port, queries, args.seconds))
            results: dict[str, dict[str, float]] = {}
            for label, runs in samples.items():
                qps, avg, lost = sorted(runs)[len(runs) // 2]
                results[label] = {"qps": qps, "avg": avg}
                emit(
                    "queries_per_second",
                    qps,
                    "1/s",
                    server=label,
                    lost=round(lost, 5),
                    rounds=[round(r[0]) for r in runs],
                )
                emit("avg_latency_at_saturation", avg * 1e3, "ms", server=label)

            # Equal load for everyone: a quarter of what the slower of the two main servers
            # sustains, so the figure is the server's own latency, not a queue's.
            main_servers = ["kubesvc", *([peer] if peer else [])]
            rate = int(min(results[s]["qps"] for s in main_servers) / 4)
            latencies: dict[str, list[tuple[float, float]]] = {s: [] for s in main_servers}
            for _ in range(rounds):
                for label in main_servers:
                    latencies[label].append(
                        latency_at(servers[label][1], queries, rate, args.seconds / 2)
                    )
            for label in main_servers:
                p50 = sorted(r[0] for r in latencies[label])[rounds // 2]
                p99 = sorted(r[1] for r in latencies[label])[rounds // 2]
                results[label].update(p50=p50, p99=p99)
                emit("p50_latency", p50 * 1e3, "ms", server=label, load_qps=rate)
                emit("p99_latency", p99 * 1e3, "ms", server=label, load_qps=rate)

            ours = results["kubesvc"]
            emit(
                "fast_path_speedup",
                ours["qps"] / results["kubesvc-dnspython"]["qps"],
                "ratio",
                note="precomputed answers vs dnspython per query",
            )
            if peer is not None:
                theirs = results[peer]
                emit(
                    "queries_per_second",
                    ours["qps"] / theirs["qps"],
                    "ratio",
                    peer=peer,
                    ratio=True,
                )
                emit("p99_latency", ours["p99"] / theirs["p99"], "ratio", peer=peer, ratio=True)
                emit(
                    "queries_per_second_dnspython_path",
                    results["kubesvc-dnspython"]["qps"] / theirs["qps"],
                    "ratio",
                    peer=peer,
                    ratio=True,
                )
        finally:
            for proc, _ in servers.values():
                stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
