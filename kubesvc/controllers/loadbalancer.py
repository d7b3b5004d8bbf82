"""LoadBalancer Services without a cloud: addresses from a pool of the cluster's own.

On a cloud, a controller asks the provider for a load balancer and writes its
address to `status.loadBalancer.ingress`; until then `kubectl get svc` shows
`<pending>`. kubesvc's proxies already answer on those addresses, as they do on
ClusterIPs, so handing one out is all it takes (what MetalLB or k3s's service
load balancer do on bare metal): with a pool (`--load-balancer-cidr`), each
LoadBalancer Service gets its `spec.loadBalancerIP` when that is in the pool
and free, else the first free address, and loses it when it stops being a
LoadBalancer. Services with a `spec.loadBalancerClass` are left to whoever
implements that class, as Kubernetes' own service controller leaves them.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from kubesvc.api.errors import StatusError
from kubesvc.client.http import Client
from kubesvc.client.informer import Informer, object_key
from kubesvc.controllers.base import Controller, record_event

Obj = dict[str, Any]
log = logging.getLogger("kubesvc.controllers")

COMPONENT = "service-controller"
Pool = ipaddress.IPv4Network | ipaddress.IPv6Network


# ------------------------------------------------------------------ pure parts


def parse_pool(text: str) -> Pool:
    """The pool of `--load-balancer-cidr`; ValueError naming the flag's problem."""
    try:
        pool = ipaddress.ip_network(text, strict=True)
    except ValueError as err:
        raise ValueError(f"--load-balancer-cidr {text!r}: not a CIDR ({err})") from None
    return pool


def wants_address(svc: Obj) -> bool:
    """A LoadBalancer Service of no other implementation's class."""
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def ingress_ips(svc: Obj) -> list[str]:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(i["ip"]) for i in ingress if isinstance(i, dict) and i.get("ip")]


def in_pool(ip: str, pool: Pool) -> bool:
    try:
        return ipaddress.ip_address(ip) in pool
    except ValueError:
        return False


def _hosts(pool: Pool) -> Iterator[str]:
    # hosts() skips the network and broadcast addresses (and is the whole of a /32 or /31).
    for host in pool.hosts() if pool.num_addresses > 2 else pool:
        yield str(host)


def pick_address(svc: Obj, pool: Pool, taken: Iterable[str]) -> tuple[str | None, str]:
    """The address for `svc` (its own request first), or None and why not."""
    used = set(taken)
    wanted = str((svc.get("spec") or {}).get("loadBalancerIP") or "")
    if wanted:
        if not in_pool(wanted, pool):
            return None, f"requested loadBalancerIP {wanted} is not in the pool {pool}"
        if wanted in used:
            return None, f"requested loadBalancerIP {wanted} is in use by another Service"
        return wanted, ""
    for host in _hosts(pool):
        if host not in used:
            return host, ""
    return None, f"no free address in the pool {pool}"


# ---------------------------------------------------------------- controller


class LoadBalancerController(Controller):
    name = "loadbalancer"

    def __init__(self, client: Client, services: Informer, pool: Pool) -> None:
        # One worker: each pick sees the ones before it.
        super().__init__(client, workers=1)
        self.services = services
        self.pool = pool
        self._assumed: dict[str, str] = {}  # service key → address, until the cache shows it
        self._reported: dict[str, str] = {}  # service key → the last failure told in an Event
        services.add_handler(self._on_service)

    def _on_service(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        key = object_key(obj)
        if new is None:
            self._assumed.pop(key, None)
            self._reported.pop(key, None)
            self._wake_pending()  # its address may be what another waits for
            return
        self.queue.add(key)
        if old is not None and set(ingress_ips(old)) - set(ingress_ips(new)):
            self._wake_pending()  # an address went back to the pool (seen in the cache now)

    def _wake_pending(self) -> None:
        for svc in self.services.list():
            if wants_address(svc) and not ingress_ips(svc):
                self.queue.add(object_key(svc))

    def _taken(self, key: str) -> set[str]:
        taken = {
            ip
            for svc in self.services.list()
            if object_key(svc) != key
            for ip in ingress_ips(svc)
            if in_pool(ip, self.pool)
        }
        taken.update(ip for k, ip in self._assumed.items() if k != key)
        return taken

    async def sync(self, key: str) -> None:
        svc = self.services.get(key)
        if svc is None:
            return
        have = [ip for ip in ingress_ips(svc) if in_pool(ip, self.pool)]
        if have:
            self._assumed.pop(key, None)
        if wants_address(svc):
            if have or ingress_ips(svc):
                return  # provisioned (by us, or by someone who set the status)
            if key in self._assumed:
                return  # written; the cache has not caught up
            ip, why = pick_address(svc, self.pool, self._taken(key))
            if ip is None:
                if self._reported.get(key) != why:
                    self._reported[key] = why
                    log.warning("service %s: load balancer address: %s", key, why)
                    await record_event(
                        self.client, svc, "Warning", "AllocationFailed", why, COMPONENT
                    )
                return
            await self._write(svc, [{"ip": ip, "ipMode": "VIP"}])
            self._assumed[key] = ip
            self._reported.pop(key, None)
            log.info("service %s: load balancer address %s", key, ip)
            await record_event(
                self.client,
                svc,
                "Normal",
                "EnsuredLoadBalancer",
                "Ensured load balancer",
                COMPONENT,
            )
        elif have and not (svc.get("spec") or {}).get("loadBalancerClass"):
            # No longer a LoadBalancer: the address goes back to the pool.
            await self._write(svc, None)
            self._assumed.pop(key, None)
            await record_event(
                self.client,
                svc,
                "Normal",
                "DeletedLoadBalancer",
                "Deleted load balancer",
                COMPONENT,
            )

    async def _write(self, svc: Obj, ingress: list[Obj] | None) -> None:
        meta = svc.get("metadata") or {}
        patch = {
            "metadata": {"resourceVersion": meta.get("resourceVersion")},
            "status": {"loadBalancer": {"ingress": ingress}},
        }
        try:
            await self.client.patch(
                "Service", meta["name"], patch, meta.get("namespace"), subresource="status"
            )
        except StatusError as err:
            if err.code == 404:
                return  # deleted meanwhile
            raise  # 409: changed meanwhile; the retry reads the newer Service
