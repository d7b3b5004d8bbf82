"""Proxy benchmark: `python bench/proxy.py [--seconds 2] [--rounds 5] [--bulk-mb 1024] [--idle 1000]`.

Prints one JSON line per figure. In one run, on the same backends, three targets:
- direct: the client talks to the backend itself (the ceiling);
- haproxy: HAProxy in TCP mode with splicing on (`option splice-request/response`),
  one thread, as the peer;
- kubesvc: the userspace proxy (`python -m kubesvc.proxy.standalone`, uvloop) on a
  ClusterIP from an in-memory Service and Endpoints.
Figures:
- bulk: one stream carrying `--bulk-mb` MiB from the backend (MB/s); both proxies
  splice through pipes of the same size (1 MiB);
- keepalive: wrk, 1 thread, 50 connections, short HTTP requests (req/s, p99);
- newconn: the same with `Connection: close`, a new connection per request;
- idle: `--idle` idle connections held open (memory per connection from the
  proxy process's RSS).
Each figure is the median of `--rounds` runs that interleave the targets. `ratio` =
kubesvc / haproxy (for p99 and memory, lower is better); `target` is the prototype's
goal for that ratio and `met` whether this run reached it.

The HTTP backend is HAProxy too (`http-request return`), so neither proxy is
measured against a slow server. All traffic stays on 127.0.0.0/8; every process
started here is stopped by its PID at the end, and the bulk backend exits on its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PID_BLOCK = os.getpid() % 200 + 20
BACKEND_IP = f"127.244.{PID_BLOCK}.1"
CLUSTER_IP = f"127.{96 + PID_BLOCK % 16}.{PID_BLOCK}.10"
HAPROXY_IP = f"127.{96 + PID_BLOCK % 16}.{PID_BLOCK}.20"
HTTP_PORT, BULK_PORT = 8080, 8081  # on the backend
FRONT_HTTP, FRONT_BULK = 18080, 18081  # on the ClusterIP and the HAProxy frontend
# HAProxy gets the pipe size kubesvc uses (UserspaceConfig.pipe_size), so neither has an edge there.
PIPE_SIZE = 1 << 20

BULK_SERVER = r"""
import signal, socket, sys
signal.alarm(int(sys.argv[2]))  # stops itself whatever happens
chunk = memoryview(bytearray(4 << 20))
srv = socket.create_server((sys.argv[1], int(sys.argv[3])), backlog=64)
while True:
    conn, _ = srv.accept()
    try:
        ask = b""
        while len(ask) < 8 and (part := conn.recv(8 - len(ask))):
            ask += part
        left = int.from_bytes(ask, "big")  # the client says how much it wants
        while left:
            left -= conn.send(chunk[: min(left, len(chunk))])
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)
    except OSError:
        pass
    conn.close()
"""


def emit(figure: str, target: str, value: float, unit: str, **extra: Any) -> None:
    line = {
        "bench": "proxy",
        "figure": figure,
        "target": target,
        "value": round(value, 3),
        "unit": unit,
    }
    print(json.dumps({**line, **extra}), flush=True)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_port(ip: str, port: int, logs: Path, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((ip, port), timeout=0.5):
            return
        time.sleep(0.05)
    shown = "\n".join(f"== {log.name}\n{log.read_text()[-1500:]}" for log in logs.glob("*.log"))
    raise RuntimeError(f"nothing listens on {ip}:{port}\n{shown}")


@contextlib.contextmanager
def started(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[Any]]:
    process = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop(process)


def haproxy_configs(work: Path) -> tuple[Path, Path]:
    backend = work / "backend.cfg"
    backend.write_text(
        f"""global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 120s
frontend web
    bind {BACKEND_IP}:{HTTP_PORT}
    http-request return status 200 content-type text/plain string "hello, world\\n"
"""
    )
    peer = work / "peer.cfg"
    peer.write_text(
        f"""global
    nbthread 1
    maxconn 4000
    tune.pipesize {PIPE_SIZE}
defaults
    mode tcp
    option splice-request
    option splice-response
    timeout connect 5s
    timeout client 120s
    timeout server 120s
frontend http
    bind {HAPROXY_IP}:{FRONT_HTTP}
    default_backend http
frontend bulk
    bind {HAPROXY_IP}:{FRONT_BULK}
    default_backend bulk
backend http
    server s1 {BACKEND_IP}:{HTTP_PORT}
backend bulk
    server s1 {BACKEND_IP}:{BULK_PORT}
"""
    )
    return backend, peer


def objects_file(work: Path) -> Path:
    ports = [{"name": "http", "port": FRONT_HTTP}, {"name": "bulk", "port": FRONT_BULK}]
    ep_ports = [{"name": "http", "port": HTTP_PORT}, {"name": "bulk", "port": BULK_PORT}]
    objects = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {"clusterIP": CLUSTER_IP, "ports": ports},
        },
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "bench", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": BACKEND_IP}], "ports": ep_ports}],
        },
    ]
    path = work / "objects.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    return path


def bulk(ip: str, port: int, size: int) -> float:
    """MB/s of one stream carrying `size` bytes from the backend."""
    buf = memoryview(bytearray(4 << 20))
    started_at = time.perf_counter()
    got = 0
    with socket.create_connection((ip, port), timeout=60) as sock:
        sock.sendall(size.to_bytes(8, "big"))
        while n := sock.recv_into(buf):
            got += n
    elapsed = time.perf_counter() - started_at
    if got != size:
        raise RuntimeError(f"bulk through {ip}:{port}: {got} of {size} bytes")
    return size / elapsed / 1e6


def _seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def wrk(ip: str, port: int, seconds: int, close: bool) -> tuple[float, float, int]:
    """(requests/s, p99 latency in s, errors) from wrk."""
    cmd = ["wrk", "-t1", "-c50", f"-d{seconds}s", "--latency", f"http://{ip}:{port}/"]
    if close:
        cmd[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _seconds(re.search(r"99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors = sum(int(x) for x in m.groups())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    return rps, p99, errors


def idle_memory(ip: str, port: int, pid: int, count: int) -> float:
    """Bytes of the proxy's RSS per idle connection (both its sockets), with `count` open."""
    before = rss_kib(pid)
    socks = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection((ip, port), timeout=5))
        time.sleep(1.0)  # every backend connection made
        after = rss_kib(pid)
    finally:
        for sock in socks:
            sock.close()
    return (after - before) * 1024 / count


def ensure_tools() -> None:
    missing = [tool for tool in ("haproxy", "wrk") if shutil.which(tool) is None]
    if missing and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "haproxy", "wrk"], check=False)
        missing = [tool for tool in ("haproxy", "wrk") if shutil.which(tool) is None]
    if missing:
        sys.exit(
            f"bench/proxy.py needs {', '.join(missing)} (Debian packages; `make setup` installs them)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=2, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs per figure")
    parser.add_argument("--bulk-mb", type=int, default=1024, help="MiB of the bulk transfer")
    parser.add_argument("--idle", type=int, default=1000, help="idle connections to hold")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    ensure_tools()
    size = args.bulk_mb << 20

    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        work = Path(tmp)
        backend_cfg, peer_cfg = haproxy_configs(work)
        python = sys.executable
        env_cmd = [python, "-m", "kubesvc.proxy.standalone", "--objects", str(objects_file(work))]
        with (
            started(["haproxy", "-db", "-f", str(backend_cfg)], work / "backend.log"),
            started(
                [python, "-c", BULK_SERVER, BACKEND_IP, "900", str(BULK_PORT)],
                work / "bulk.log",
            ),
            started(["haproxy", "-db", "-f", str(peer_cfg)], work / "peer.log") as peer,
            started([*env_cmd, "--loop", args.loop], work / "kubesvc.log") as ours,
        ):
            for ip, port in (
                (BACKEND_IP, HTTP_PORT),
                (BACKEND_IP, BULK_PORT),
                (HAPROXY_IP, FRONT_HTTP),
                (CLUSTER_IP, FRONT_HTTP),
            ):
                wait_port(ip, port, work)
            targets = {
                "direct": (BACKEND_IP, HTTP_PORT, BULK_PORT, None),
                "haproxy": (HAPROXY_IP, FRONT_HTTP, FRONT_BULK, peer.pid),
                "kubesvc": (CLUSTER_IP, FRONT_HTTP, FRONT_BULK, ours.pid),
            }
            results: dict[tuple[str, str], float] = {}
            context = {"cpus": os.cpu_count(), "loop": args.loop}

            # Idle memory first: after the load runs, freed memory the allocators keep would
            # hide what new connections cost.
            for name, (ip, http, _bulk, pid) in targets.items():
                if pid is None:
                    continue
                per_conn = idle_memory(ip, http, pid, args.idle)
                results[("idle", name)] = per_conn
                emit("idle_memory_per_connection", name, per_conn, "bytes", connections=args.idle)

            # Rounds interleave the targets, and medians are reported: on a shared machine,
            # load from elsewhere then hits every target alike instead of one of them.
            samples: dict[tuple[str, str], list[float]] = {}
            for ip, _http, bulk_port, _pid in targets.values():
                bulk(ip, bulk_port, 64 << 20)  # warm up
            for _ in range(args.rounds):
                for name, (ip, _http, bulk_port, _pid) in targets.items():
                    samples.setdefault(("bulk", name), []).append(bulk(ip, bulk_port, size))
            for name in targets:
                results[("bulk", name)] = statistics.median(samples[("bulk", name)])
                emit("bulk", name, results[("bulk", name)], "MB/s", bytes=size, **context)

            for figure, close in (("keepalive", False), ("newconn", True)):
                errors: dict[str, int] = {}
                for _ in range(args.rounds):
                    for name, (ip, http, _bulk, _pid) in targets.items():
                        rps, p99, errs = wrk(ip, http, args.seconds, close)
                        samples.setdefault((figure, name), []).append(rps)
                        samples.setdefault((figure + "_p99", name), []).append(p99)
                        errors[name] = errors.get(name, 0) + errs
                        time.sleep(0.5)  # let the last run's closing sockets settle
                for name in targets:
                    rps = statistics.median(samples[(figure, name)])
                    p99 = statistics.median(samples[(figure + "_p99", name)])
                    results[(figure, name)] = rps
                    results[(figure + "_p99", name)] = p99
                    emit(f"{figure}_rps", name, rps, "req/s", errors=errors[name], **context)
                    emit(f"{figure}_p99", name, p99 * 1e3, "ms", **context)

            goals = [
                ("bulk", "bulk", 1.0, True),
                ("keepalive_rps", "keepalive", 0.85, True),
                ("keepalive_p99", "keepalive_p99", 1.5, False),
                ("newconn_rps", "newconn", 0.6, True),
                ("newconn_p99", "newconn_p99", None, False),
                ("idle_memory_per_connection", "idle", None, False),
            ]
            for figure, key, goal, higher_is_better in goals:
                peer_value = results.get((key, "haproxy"))
                ours_value = results.get((key, "kubesvc"))
                if not peer_value or ours_value is None:
                    continue
                ratio = ours_value / peer_value
                extra: dict[str, Any] = {"target": goal}
                if goal is not None:
                    extra["met"] = ratio >= goal if higher_is_better else ratio <= goal
                print(
                    json.dumps(
                        {"bench": "proxy", "figure": figure, "ratio": round(ratio, 3), **extra}
                    ),
                    flush=True,
                )
            if ours.poll() is not None:
                print((work / "kubesvc.log").read_text(), file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
