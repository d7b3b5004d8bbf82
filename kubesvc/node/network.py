"""Pod networking: host mode (a loopback address) and namespace mode (netns + veth + bridge).

Host mode needs no root: every 127.x.y.z address already reaches the
loopback interface on Linux, so a pod's IP is simply an address from the
loopback pod range that its process binds to (`$POD_IP`). Nothing to set
up or tear down; the agent only keeps addresses unique.

Namespace mode gives each pod what a CNI bridge plugin gives it: a network
namespace of its own, a veth pair with one end (`eth0`) inside and the other
on the node bridge, an address from the pod CIDR, a default route via the
bridge, and a `resolv.conf` pointing at the cluster DNS. The namespaces are
held by a small "pause" process (the pod sandbox, as in Kubernetes) rather
than by a name under /run/netns: a name is a mount, which is private to the
mount namespace of whoever made it (an agent started with `ip netns exec`
could not share it), while a process is visible to every later agent. The
pause process also holds a mount namespace in which the pod's `resolv.conf`
is bind-mounted over /etc/resolv.conf; containers and exec probes enter
both namespaces with `nsenter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kubesvc.node import ipam
from kubesvc.node.process import ProcessRef, Started, alive, start_ticks

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PAUSE_SCRIPT = 'mount --bind "$1" /etc/resolv.conf && exec sleep infinity'


class NetworkError(Exception):
    """Setting up or tearing down a pod's network failed; the message has the tool's words."""


@dataclass
class Sandbox:
    """A pod's network: its address and, in namespace mode, the pause process and host-side veth."""

    ip: str
    pause: ProcessRef | None = None
    veth: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ip": self.ip,
            "pause": self.pause.to_json() if self.pause else None,
            "veth": self.veth,
        }

    @classmethod
    def from_json(cls, data: Any) -> Sandbox | None:
        if not isinstance(data, dict) or not isinstance(data.get("ip"), str):
            return None
        return cls(data["ip"], ProcessRef.from_json(data.get("pause")), data.get("veth"))


def network_problem(mode: str, cidr: Network, root: bool) -> str | None:
    """Why a network mode cannot work with this pod range (or user), or None if it can."""
    if mode == "host":
        if not cidr.is_loopback:
            return (
                f"--pod-network host needs a loopback --pod-cidr (like 127.244.0.0/16): "
                f"processes bind their pod IP, and {cidr} is not on the loopback interface"
            )
        return None
    if mode == "netns":
        if not root:
            return "--pod-network netns needs root (network namespaces, veth pairs, a bridge)"
        if cidr.is_loopback:
            return f"--pod-network netns needs a routable --pod-cidr, not loopback {cidr}"
        if cidr.version != 4 or cidr.num_addresses < 4:
            return f"--pod-network netns needs an IPv4 --pod-cidr of /30 or larger, not {cidr}"
        return None
    return f"--pod-network {mode!r}: must be host or netns"


def resolv_conf(nameserver: str, namespace: str, domain: str) -> str:
    """A pod's resolv.conf under ClusterFirst, as the kubelet writes it."""
    return (
        f"nameserver {nameserver}\n"
        f"search {namespace}.svc.{domain} svc.{domain} {domain}\n"
        "options ndots:5\n"
    )


def veth_name(node: str, uid: str) -> str:
    """The host end's name: ≤ 15 characters (IFNAMSIZ), stable for a pod, unique per node."""
    return "kv" + hashlib.sha1(f"{node}/{uid}".encode()).hexdigest()[:11]


class PodNetwork(Protocol):
    mode: str

    async def prepare(self) -> None: ...

    async def setup(self, pod_dir: Path, uid: str, ip: str, namespace: str) -> Sandbox: ...

    def intact(self, sandbox: Sandbox) -> bool: ...

    def prefix(self, sandbox: Sandbox, workdir: str | None = None) -> list[str]: ...

    async def teardown(self, sandbox: Sandbox) -> None: ...

    async def close(self, *, remove: bool) -> None: ...


class HostNetwork:
    """Pods share the node's network namespace; each binds its own loopback address."""

    mode = "host"

    async def prepare(self) -> None:
        return None

    async def setup(self, pod_dir: Path, uid: str, ip: str, namespace: str) -> Sandbox:
        return Sandbox(ip)

    def intact(self, sandbox: Sandbox) -> bool:
        return True

    def prefix(self, sandbox: Sandbox, workdir: str | None = None) -> list[str]:
        return []

    async def teardown(self, sandbox: Sandbox) -> None:
        return None

    async def close(self, *, remove: bool) -> None:
        return None


async def run(*argv: str, stdin: str | None = None, timeout_s: float = 10.0) -> str:
    """Run a tool; its stdout, or NetworkError carrying its stderr."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise NetworkError(f"{' '.join(argv)}: timed out after {timeout_s} s") from None
    if proc.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


class NamespaceNetwork:
    """Each pod in network and mount namespaces of its own, on a bridge of the node (root only)."""

    mode = "netns"

    def __init__(
        self,
        cidr: Network,
        *,
        node_name: str,
        bridge: str = "kubesvc0",
        dns: str | None = None,
        domain: str = "cluster.local",
    ) -> None:
        self.cidr = cidr
        self.node_name = node_name
        self.bridge = bridge
        self.gateway = ipam.gateway(cidr)
        self.dns = dns or self.gateway
        self.domain = domain
        self._pauses: dict[int, Started] = {}  # our own pause children, to reap them
        self._made_bridge = False

    async def prepare(self) -> None:
        """The node bridge, holding the gateway address; made once, kept across agent restarts."""
        try:
            await run("ip", "link", "show", "dev", self.bridge)
        except NetworkError:
            await run("ip", "link", "add", "name", self.bridge, "type", "bridge")
            self._made_bridge = True
        await run(
            "ip", "addr", "replace", f"{self.gateway}/{self.cidr.prefixlen}", "dev", self.bridge
        )
        await run("ip", "link", "set", "dev", self.bridge, "up")

    async def _start_pause(self, pod_dir: Path) -> Started:
        resolv = pod_dir / "resolv.conf"
        with open(pod_dir / "pause.log", "ab") as log:
            popen = subprocess.Popen(
                [
                    "unshare",
                    "--net",
                    "--mount",
                    "--propagation",
                    "slave",  # the node's later mounts still show; the pod's stay its own
                    "--",
                    "sh",
                    "-c",
                    PAUSE_SCRIPT,
                    "pause",
                    str(resolv),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        own_netns = os.readlink("/proc/self/ns/net")
        # Ready once it has exec'd `sleep`: the namespaces exist and resolv.conf is mounted.
        for _ in range(500):
            if popen.poll() is not None:
                log_text = (pod_dir / "pause.log").read_text(errors="replace").strip()
                raise NetworkError(f"the pod sandbox did not start: {log_text[-500:]}")
            try:
                comm = Path(f"/proc/{popen.pid}/comm").read_text().strip()
                netns = os.readlink(f"/proc/{popen.pid}/ns/net")
            except OSError:
                comm, netns = "", own_netns
            if comm == "sleep" and netns != own_netns:
                ticks = start_ticks(popen.pid)
                if ticks is not None:
                    started = Started(ProcessRef(popen.pid, ticks), popen)
                    self._pauses[popen.pid] = started
                    return started
            await asyncio.sleep(0.01)
        popen.kill()
        popen.wait()
        raise NetworkError("the pod sandbox did not start within 5 s")

    async def setup(self, pod_dir: Path, uid: str, ip: str, namespace: str) -> Sandbox:
        pod_dir.mkdir(parents=True, exist_ok=True)
        (pod_dir / "resolv.conf").write_text(resolv_conf(self.dns, namespace, self.domain))
        pause = await self._start_pause(pod_dir)
        veth = veth_name(self.node_name, uid)
        sandbox = Sandbox(ip, pause.ref, veth)
        try:
            with contextlib.suppress(NetworkError):  # a leftover of an earlier try
                await run("ip", "link", "del", "dev", veth)
            await run(
                "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns",
                str(pause.ref.pid),
            )  # fmt: skip
            await run("ip", "link", "set", "dev", veth, "master", self.bridge, "up")
            batch = (
                f"addr add {ip}/{self.cidr.prefixlen} dev eth0\n"
                "link set dev eth0 up\n"
                "link set dev lo up\n"
                f"route add default via {self.gateway} dev eth0\n"
            )
            await run("nsenter", "-t", str(pause.ref.pid), "-n", "ip", "-batch", "-", stdin=batch)
        except BaseException:
            await self.teardown(sandbox)
            raise
        return sandbox

    def intact(self, sandbox: Sandbox) -> bool:
        return sandbox.pause is not None and alive(sandbox.pause)

    def prefix(self, sandbox: Sandbox, workdir: str | None = None) -> list[str]:
        assert sandbox.pause is not None
        wd = [f"--wd={workdir}"] if workdir else []
        return ["nsenter", "-t", str(sandbox.pause.pid), "-n", "-m", *wd, "--"]

    async def teardown(self, sandbox: Sandbox) -> None:
        """End the pause process (the namespaces go with their last process) and the veth."""
        if sandbox.pause is not None:
            started = self._pauses.pop(sandbox.pause.pid, None) or Started(sandbox.pause)
            if alive(sandbox.pause):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(sandbox.pause.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await started.wait()
        if sandbox.veth:
            with contextlib.suppress(NetworkError):  # usually gone with the namespace already
                await run("ip", "link", "del", "dev", sandbox.veth)

    async def close(self, *, remove: bool) -> None:
        """Remove the bridge if this agent made it and its pods are gone too (`remove`)."""
        if remove and self._made_bridge:
            with contextlib.suppress(NetworkError):
                await run("ip", "link", "del", "dev", self.bridge)
