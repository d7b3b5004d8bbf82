"""The narrow interface the resolver reads the cluster through, and the facts it returns.

As in CoreDNS's `kubernetes` plugin, the query logic never sees the API
client: it asks a `Lookup` for a Service, its endpoints, what owns an IP, and
whether the data has synced. The live implementation is `index.ClusterIndex`
(fed by informers); tests use a fake backed by dicts.

Every answer the resolver computes depends on a few lookups. Those are named
by *tags* (`("svc", ns, name)`, `("ns", ns)`, `("rev", reverse-name)`): the
index announces the tags a watch event touched, and the precomputed answers
that used them — and only those — are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# ("svc", namespace, name) | ("ns", namespace) | ("rev", lowercase reverse name with the dot)
Tag = tuple[str, ...]

CLUSTER_IP = "ClusterIP"
HEADLESS = "Headless"
EXTERNAL_NAME = "ExternalName"


@dataclass(frozen=True)
class Port:
    """A port as DNS names it: `_<name>._<protocol>`; `name` may be empty (unnamed port)."""

    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class ServiceInfo:
    """What DNS needs of a Service."""

    namespace: str
    name: str
    kind: str  # CLUSTER_IP, HEADLESS or EXTERNAL_NAME
    cluster_ips: tuple[str, ...] = ()
    ports: tuple[Port, ...] = ()
    external_name: str = ""
    publish_not_ready: bool = False


@dataclass(frozen=True)
class EndpointAddress:
    """One address of one endpoint, with the ports it serves (Endpoints subsets or slices)."""

    ip: str
    hostname: str = ""  # the endpoint's own hostname field; empty when it has none
    ready: bool = True
    ports: tuple[Port, ...] = ()

    @property
    def dns_hostname(self) -> str:
        """The hostname DNS publishes: its own, else the dashed IP (CoreDNS's choice)."""
        if self.hostname:
            return self.hostname
        return self.ip.replace(".", "-").replace(":", "-")


class Lookup(Protocol):
    """What the resolver may ask of the cluster. Names are compared lowercase."""

    def has_synced(self) -> bool:
        """True once the first full list of every watched kind is in."""
        ...

    def service(self, namespace: str, name: str) -> ServiceInfo | None:
        """The Service `namespace/name`, or None."""
        ...

    def endpoints(self, namespace: str, name: str) -> Sequence[EndpointAddress]:
        """Every address of the Service's endpoints, ready or not, in a stable order."""
        ...

    def namespace_exists(self, namespace: str) -> bool:
        """Whether the namespace exists (a Namespace object, or any Service in it)."""
        ...

    def services_by_ip(self, ip: str) -> Sequence[ServiceInfo]:
        """Services whose cluster IPs include `ip` (normalised text form)."""
        ...

    def endpoints_by_ip(self, ip: str) -> Sequence[tuple[ServiceInfo, EndpointAddress]]:
        """(Service, address) for every endpoint address equal to `ip`."""
        ...

    def reverse_in_use(self, reverse_name: str) -> bool:
        """Whether any indexed IP's reverse name is `reverse_name` or lies below it."""
        ...
