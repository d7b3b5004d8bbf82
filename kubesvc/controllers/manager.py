"""Runs the controllers against an API server: shared informers, then the controllers on them."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from kubesvc.api import nodes
from kubesvc.client.http import Client
from kubesvc.client.informer import Informer
from kubesvc.client.kubeconfig import ClusterAccess
from kubesvc.controllers.base import Controller
from kubesvc.controllers.endpoints import EndpointsController
from kubesvc.controllers.endpointslice import EndpointSliceController
from kubesvc.controllers.loadbalancer import LoadBalancerController, Pool
from kubesvc.controllers.mirroring import EndpointSliceMirroringController
from kubesvc.controllers.scheduler import Scheduler
from kubesvc.controllers.slices import DEFAULT_MAX_ENDPOINTS_PER_SLICE

# Informers list everything again this often, so a missed event cannot leave
# Endpoints wrong for long (the controllers are level-triggered).
RESYNC_S = 300.0


@dataclass
class ControllerManager:
    access: ClusterAccess
    workers: int = 4
    max_endpoints_per_slice: int = DEFAULT_MAX_ENDPOINTS_PER_SLICE
    # The scheduler places pods on Ready nodes; a node whose heartbeat is older than
    # node_grace_s is NotReady (its Ready condition Unknown) and gets no new pods.
    scheduler: bool = True
    node_grace_s: float = nodes.DEFAULT_GRACE_S
    # LoadBalancer Services get their addresses from this pool; None: they stay pending.
    load_balancer_pool: Pool | None = None
    client: Client = field(init=False)
    informers: dict[str, Informer] = field(init=False, default_factory=dict)
    controllers: list[Controller] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.client = Client(self.access, user_agent="kubesvc-controllers")

    def informer(self, kind: str) -> Informer:
        if kind not in self.informers:
            self.informers[kind] = Informer(self.client, kind, resync_s=RESYNC_S)
        return self.informers[kind]

    async def start(self, *, sync_timeout_s: float = 30.0) -> None:
        self.controllers = [
            EndpointsController(
                self.client,
                self.informer("Service"),
                self.informer("Pod"),
                self.informer("Endpoints"),
                workers=self.workers,
            ),
            EndpointSliceController(
                self.client,
                self.informer("Service"),
                self.informer("Pod"),
                self.informer("EndpointSlice"),
                max_endpoints_per_slice=self.max_endpoints_per_slice,
                workers=self.workers,
            ),
            EndpointSliceMirroringController(
                self.client,
                self.informer("Service"),
                self.informer("Endpoints"),
                self.informer("EndpointSlice"),
                max_endpoints_per_slice=self.max_endpoints_per_slice,
                # Selector-less Services are few: two workers keep up.
                workers=min(2, self.workers),
            ),
        ]
        if self.scheduler:
            self.controllers.append(
                Scheduler(
                    self.client,
                    self.informer("Pod"),
                    self.informer("Node"),
                    grace_s=self.node_grace_s,
                )
            )
        if self.load_balancer_pool is not None:
            self.controllers.append(
                LoadBalancerController(
                    self.client, self.informer("Service"), self.load_balancer_pool
                )
            )
        for informer in self.informers.values():
            informer.start()
        # Work from a complete picture: a sync before every cache is filled would delete good
        # Endpoints, or create slices that already exist.
        await asyncio.gather(*(i.wait_synced(sync_timeout_s) for i in self.informers.values()))
        for controller in self.controllers:
            controller.start()

    @property
    def synced(self) -> bool:
        return all(i.has_synced for i in self.informers.values())

    async def stop(self) -> None:
        for controller in self.controllers:
            await controller.stop()
        for informer in self.informers.values():
            await informer.stop()
        with contextlib.suppress(Exception):
            await self.client.close()
