"""A node agent's Node object: registered when the agent starts, its status posted as a heartbeat.

The agent creates its Node (labels `kubernetes.io/hostname` and
`kubernetes.io/os`, `spec.podCIDR`) if there is none, then writes its status
every `heartbeat_s` seconds: addresses, capacity and allocatable pods, what
runs there, and the `Ready` condition with a fresh `lastHeartbeatTime`
(`lastTransitionTime` moves only when the condition's value does). The status
goes as a merge patch of `nodes/<name>/status`, so a Node edited by someone else
(labels, `unschedulable`) keeps those edits. When the agent stops nothing is
written: the heartbeat just ends, and the node lifecycle controller marks the
Node's readiness Unknown after its grace period, as for a node that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import platform
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from kubesvc.api import nodes
from kubesvc.api.errors import StatusError
from kubesvc.client.http import APIUnavailable, Client
from kubesvc.node import placement

log = logging.getLogger("kubesvc.node")

Obj = dict[str, Any]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_PODS = 110  # the kubelet's default


def _version() -> str:
    try:
        return "v" + version("kubesvc")
    except PackageNotFoundError:
        return "unknown"


def pod_capacity(cidr: Network) -> int:
    """How many pods the node takes: its range's pod addresses, at most the kubelet's 110."""
    # Not the network address, the gateway, nor (IPv4) the broadcast address: as ipam.py.
    usable = cidr.num_addresses - (3 if cidr.version == 4 else 2)
    return max(0, min(MAX_PODS, usable))


@dataclass
class NodeIdentity:
    name: str
    node_ip: str
    pod_cidr: Network
    pod_network: str = "host"
    log_port: int = 0


def node_object(ident: NodeIdentity) -> Obj:
    """The Node as first created (its status follows in the first heartbeat)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": ident.name, "labels": placement.node_labels(ident.name)},
        "spec": {"podCIDR": str(ident.pod_cidr), "podCIDRs": [str(ident.pod_cidr)]},
    }


def node_status(ident: NodeIdentity, previous: Obj | None, now: float) -> Obj:
    """The status to post: Ready, with this moment as its heartbeat."""
    stamp = nodes.rfc3339(now)
    before = nodes.ready_condition(previous or {}) or {}
    transition = before.get("lastTransitionTime") if before.get("status") == "True" else None
    pods = str(pod_capacity(ident.pod_cidr))
    uname = platform.uname()
    return {
        "capacity": {"pods": pods},
        "allocatable": {"pods": pods},
        "addresses": [
            {"type": "InternalIP", "address": ident.node_ip},
            {"type": "Hostname", "address": ident.name},
        ],
        "conditions": [
            {
                "type": nodes.READY,
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubesvc node agent is posting ready status",
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": transition or stamp,
            }
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": ident.log_port}},
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": uname.release,
            "osImage": _os_image(),
            "containerRuntimeVersion": f"kubesvc-process://{ident.pod_network}",
            "kubeletVersion": _version(),
            "kubeProxyVersion": _version(),
            "operatingSystem": "linux",
            "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(
                uname.machine, uname.machine
            ),
        },
    }


def _os_image() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
    except OSError:
        return "Linux"


class NodeRegistration:
    """Registers the Node, then posts its status every `heartbeat_s` seconds until stopped."""

    def __init__(self, client: Client, ident: NodeIdentity, heartbeat_s: float) -> None:
        self.client = client
        self.ident = ident
        self.heartbeat_s = heartbeat_s
        self.current: Obj | None = None
        self._task: asyncio.Task[None] | None = None
        self.beats = 0

    async def start(self) -> None:
        """Register and post the first heartbeat (so the node is Ready when this returns)."""
        await self._register()
        await self.beat()
        self._task = asyncio.create_task(self._loop(), name=f"heartbeat-{self.ident.name}")

    async def _register(self) -> None:
        try:
            self.current = await self.client.get("Node", self.ident.name)
            return
        except StatusError as err:
            if err.code != 404:
                raise
        try:
            self.current = await self.client.create(node_object(self.ident))
            log.info("node %s: registered", self.ident.name)
        except StatusError as err:
            if err.code != 409:  # registered meanwhile by an earlier run of this node
                raise
            self.current = await self.client.get("Node", self.ident.name)

    async def beat(self) -> None:
        status = node_status(self.ident, self.current, time.time())
        try:
            self.current = await self.client.patch(
                "Node", self.ident.name, {"status": status}, subresource="status"
            )
        except StatusError as err:
            if err.code != 404:
                raise
            # Deleted by someone (kubectl delete node): register again, as the kubelet does.
            await self._register()
            self.current = await self.client.patch(
                "Node", self.ident.name, {"status": status}, subresource="status"
            )
        self.beats += 1

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self.beat()
            except (StatusError, APIUnavailable) as err:
                log.warning("node %s: heartbeat failed: %s", self.ident.name, err)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
