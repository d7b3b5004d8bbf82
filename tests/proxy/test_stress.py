"""Connection-close load against the proxy in its own process, on uvloop (bounded: a few seconds).

A relay built on asyncio transports that passed half-closes on with
`transport.write_eof()` aborted uvloop 0.23 under this very load ("double
free or corruption", exit 134). The proxy copies with os.splice on raw
sockets and half-closes with shutdown(SHUT_WR) instead; it must survive,
leak nothing, and still serve afterwards. Clients mix: half-close and wait
for the echo, backends that close or reset at once, clients that reset
mid-transfer, and clients that connect and leave.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from tests.proxy.conftest import cluster_ip, eventually, pod_ip

LOAD_S = 3.0
CLIENTS = 48
RESET = struct.pack("ii", 1, 0)


async def _backend(ip: str, port: int) -> asyncio.base_events.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            mode = await reader.read(1)
            if mode == b"c":  # close at once
                return
            if mode == b"r":  # reset at once
                writer.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, RESET
                )
                writer.transport.abort()
                return
            data = await reader.read()  # until the client's half-close
            writer.write(mode + data)
            writer.write_eof()
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, ip, port)


async def _client(vip: str, port: int, deadline: float, stats: dict[str, int]) -> None:
    rng = random.Random()
    while time.monotonic() < deadline:
        mode = rng.choice("hhcrxa")
        writer = None
        try:
            reader, writer = await asyncio.open_connection(vip, port)
            if mode == "x":  # connect and leave
                continue
            payload = b"y" * rng.randint(0, 300_000)
            if mode == "a":  # reset in the middle of sending
                writer.write(b"h" + payload)
                writer.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, RESET
                )
                writer.transport.abort()
                writer = None
                continue
            writer.write(mode.encode() + payload)
            writer.write_eof()
            answer = await asyncio.wait_for(reader.read(), 5)
            if mode == "h":
                assert answer == b"h" + payload
                stats["echoed"] += 1
        except (TimeoutError, ConnectionError, OSError):
            stats["errors"] += 1
        finally:
            if writer is not None:
                writer.close()


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")
    )


async def test_the_proxy_survives_connection_close_load_on_uvloop(tmp_path: Path) -> None:
    vip, backend_ip = cluster_ip(), pod_ip()
    objects = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "stress", "namespace": "default"},
            "spec": {"clusterIP": vip, "ports": [{"port": 19000}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "stress", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": backend_ip}], "ports": [{"port": 9001}]}],
        },
    ]
    (tmp_path / "objects.yaml").write_text(yaml.safe_dump_all(objects))
    server = await _backend(backend_ip, 9001)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubesvc.proxy.standalone",
            "--objects",
            str(tmp_path / "objects.yaml"),
            "--loop",
            "uvloop",
            "--metrics-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "proxy.log").open("w"),
        text=True,
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 15)  # type: ignore[union-attr]
        assert line.startswith("ready "), (tmp_path / "proxy.log").read_text()
        metrics_port = json.loads(line.split(" ", 1)[1])["metrics"]

        stats = {"echoed": 0, "errors": 0}
        deadline = time.monotonic() + LOAD_S
        await asyncio.gather(*(_client(vip, 19000, deadline, stats) for _ in range(CLIENTS)))

        assert process.poll() is None, (
            f"proxy died ({process.returncode}): {(tmp_path / 'proxy.log').read_text()[-2000:]}"
        )
        assert stats["echoed"] > 100, stats
        # Every connection is over on both sides: the proxy holds none.
        active = "kubesvc_proxy_connections_active"
        await eventually(lambda: _metric(metrics_port, active) == 0, 5, "no connection left")
        # And it still serves.
        reader, writer = await asyncio.open_connection(vip, 19000)
        writer.write(b"hfinal")
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b"hfinal"
        writer.close()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        returncode = process.wait(10)
        server.close()
    assert returncode == 0, (tmp_path / "proxy.log").read_text()[-2000:]
    assert "Traceback" not in (tmp_path / "proxy.log").read_text()
