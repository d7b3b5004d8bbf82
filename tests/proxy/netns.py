"""Test nodes as network namespaces: a node namespace with a bridge, pods in namespaces of their own.

    with Node() as node:
        pod = node.add_pod("198.18.0.11")
        pod.serve("pod-a")          # a small python server (TCP and UDP, port 8080), killed by PID
        node.run_client(...)        # clients run as `ip netns exec NS python netns.py tcp …`

Everything lives in namespaces named `kst-<random>`; addresses come from
198.18.0.0/15 only. The namespaces (and with them every rule applied in them)
are deleted at teardown, also when a test fails. Run as a script, this file
is the backend server and the client the tests start inside namespaces.
"""

from __future__ import annotations

import json
import secrets
import select
import socket
import subprocess
import sys
import threading
import time
from typing import Any

NODE_IP = "198.18.0.1"
BRIDGE = "kbr0"
SERVICE_NET = "198.19.0.0/16"  # ClusterIPs (inside 198.18.0.0/15)
BACKEND_PORT = 8080


def require_root_tools(*binaries: str) -> None:
    """Skip (or, under CI=true, fail) unless we are root and `binaries` are installed."""
    from tests.needs import require_root_tools as need

    need("ip", *binaries)


def sh(*argv: str, netns: str | None = None, stdin: str | None = None, check: bool = True) -> str:
    full = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    proc = subprocess.run(
        full, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(full)}: {proc.returncode} {proc.stderr.strip()}")
    return proc.stdout


def _new_name() -> str:
    return f"kst-{secrets.token_hex(4)}"


class Pod:
    def __init__(self, node: Node, ip: str, index: int) -> None:
        self.node = node
        self.ip = ip
        self.ns = _new_name()
        self.procs: list[subprocess.Popen[str]] = []
        sh("ip", "netns", "add", self.ns)
        node.namespaces.append(self.ns)
        veth = f"kv{index}"
        sh(
            "ip",
            "link",
            "add",
            veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            self.ns,
            netns=node.ns,
        )
        sh("ip", "link", "set", veth, "master", BRIDGE, "up", netns=node.ns)
        # As the CNI bridge plugin's hairpinMode: with bridge netfilter on, a pod's packet that
        # DNAT sends back to the same pod is bridged out of the port it came in on.
        sh("ip", "link", "set", veth, "type", "bridge_slave", "hairpin", "on", netns=node.ns)
        sh("ip", "link", "set", "lo", "up", netns=self.ns)
        sh("ip", "addr", "add", f"{ip}/16", "dev", "eth0", netns=self.ns)
        sh("ip", "link", "set", "eth0", "up", netns=self.ns)
        sh("ip", "route", "add", "default", "via", NODE_IP, netns=self.ns)

    def serve(self, name: str, port: int = BACKEND_PORT) -> subprocess.Popen[str]:
        """Start the backend server in this pod; returns once it listens."""
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.ns,
                sys.executable,
                "-u",
                __file__,
                "serve",
                name,
                str(port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        if not ready or proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"backend {name} did not start")
        return proc

    def client(self, *args: Any) -> Any:
        return self.node.client(*args, netns=self.ns)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=3)
        self.procs.clear()


class Node:
    """A node namespace: bridge kbr0 with NODE_IP, forwarding on, a route for the service range."""

    def __init__(self) -> None:
        self.ns = _new_name()
        self.namespaces: list[str] = []
        self.pods: list[Pod] = []

    def __enter__(self) -> Node:
        try:
            sh("ip", "netns", "add", self.ns)
            self.namespaces.append(self.ns)
            sh("ip", "link", "set", "lo", "up", netns=self.ns)
            sh("ip", "link", "add", BRIDGE, "type", "bridge", netns=self.ns)
            sh("ip", "addr", "add", f"{NODE_IP}/16", "dev", BRIDGE, netns=self.ns)
            sh("ip", "link", "set", BRIDGE, "up", netns=self.ns)
            sh("sysctl", "-qw", "net.ipv4.ip_forward=1", netns=self.ns)
            # Traffic to a ClusterIP needs a route before DNAT rewrites it; a device of its own (like
            # kube-ipvs0) rather than the bridge, or the node answers pods with ICMP redirects,
            # which use up the ICMP rate-limit token the REJECT of a Service without endpoints needs.
            # (This kernel has no dummy driver: a veth pair whose both ends stay here does the same.)
            sh("ip", "link", "add", "ksvc0", "type", "veth", "peer", "name", "ksvc1", netns=self.ns)
            sh("ip", "link", "set", "ksvc1", "up", netns=self.ns)
            sh("ip", "link", "set", "ksvc0", "up", netns=self.ns)
            sh("ip", "route", "add", SERVICE_NET, "dev", "ksvc0", netns=self.ns)
            sh("sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0", netns=self.ns)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def add_pod(self, ip: str) -> Pod:
        pod = Pod(self, ip, len(self.pods))
        self.pods.append(pod)
        return pod

    def client(self, *args: Any, netns: str | None = None) -> Any:
        """Run the client (see `_client`) in `netns` (default: the node) and return its JSON."""
        out = sh(sys.executable, __file__, *map(str, args), netns=netns or self.ns)
        return json.loads(out)

    def close(self) -> None:
        for pod in self.pods:
            pod.stop()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30, check=False)
        self.namespaces.clear()


# ------------------------------------------------------- the in-namespace side


def _serve(name: str, port: int) -> None:
    """TCP: answer "<name> <peer ip>" and close. UDP: answer each datagram the same way."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", port))
    tcp.listen(128)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", port))

    def udp_loop() -> None:
        while True:
            _data, peer = udp.recvfrom(2048)
            udp.sendto(f"{name} {peer[0]}".encode(), peer)

    threading.Thread(target=udp_loop, daemon=True).start()
    print("ready", flush=True)
    while True:
        conn, peer = tcp.accept()
        with conn:
            conn.sendall(f"{name} {peer[0]}\n".encode())


def _tcp(host: str, port: int, count: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        started = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=3) as s:
                data = s.recv(200).decode().split()
            out.append({"name": data[0], "peer": data[1], "s": time.monotonic() - started})
        except OSError as exc:
            out.append({"error": type(exc).__name__, "s": time.monotonic() - started})
    return out


def _udp(host: str, port: int, count: int, src_port: int) -> list[dict[str, Any]]:
    out = []
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", src_port))
    s.settimeout(1.0)
    for i in range(count):
        s.sendto(f"ping {i}".encode(), (host, port))
        try:
            data, _ = s.recvfrom(2048)
            name, peer = data.decode().split()
            out.append({"name": name, "peer": peer})
        except OSError as exc:
            out.append({"error": type(exc).__name__})
    return out


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        _serve(sys.argv[2], int(sys.argv[3]))
    elif cmd == "tcp":
        print(json.dumps(_tcp(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    elif cmd == "udp":
        print(json.dumps(_udp(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))))
    else:
        raise SystemExit(f"unknown command {cmd}")
