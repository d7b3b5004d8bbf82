"""Run the userspace proxy from manifest files, without an API server.

    python -m kubesvc.proxy.standalone --objects services.yaml [--scheduler rr] [--loop uvloop]

The file holds Services and Endpoints (YAML or JSON, several documents, or a
`List`). The benchmarks and the crash-safety stress test run the proxy this
way, in a process of its own. Prints `ready {"healthz": port, "metrics": port}`
on stdout once it listens (port 0 in the flags: a free one); stops on SIGTERM
or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from kubesvc.proxy.server import MemorySource, ProxyConfig, ProxyServer


def read_objects(path: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(Path(path).read_text()):
        if isinstance(doc, dict) and doc.get("kind") == "List":
            out.extend(doc.get("items") or [])
        elif isinstance(doc, dict):
            out.append(doc)
    return out


async def run(args: argparse.Namespace) -> None:
    config = ProxyConfig(
        scheduler=args.scheduler,
        healthz_port=args.healthz_port,
        metrics_port=args.metrics_port,
        tcp_idle_timeout_s=args.tcp_idle_timeout,
    )
    server = ProxyServer(config, MemorySource(read_objects(args.objects)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        await server.wait_synced(10)
        assert server.proxier is not None
        if server.proxier.bind_errors:
            print(f"bind errors: {server.proxier.bind_errors}", file=sys.stderr, flush=True)
        ports = {"healthz": server.healthz_port, "metrics": server.metrics_port}
        print(f"ready {json.dumps(ports)}", flush=True)
        await stop.wait()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubesvc.proxy.standalone", description=__doc__)
    parser.add_argument("--objects", required=True, help="YAML/JSON file of Services and Endpoints")
    parser.add_argument("--scheduler", default="rr")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--healthz-port", type=int, default=None)
    parser.add_argument("--metrics-port", type=int, default=None)
    parser.add_argument("--tcp-idle-timeout", type=float, default=3600.0)
    args = parser.parse_args(argv)
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            args.loop = "asyncio"
        else:
            uvloop.run(run(args))
            return 0
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
