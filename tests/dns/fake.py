"""A `Lookup` backed by dicts, and the zone-file-text helpers the DNS tables use."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import dns.message
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from kubesvc.dns.lookup import (
    CLUSTER_IP,
    EXTERNAL_NAME,
    HEADLESS,
    EndpointAddress,
    Port,
    ServiceInfo,
)
from kubesvc.dns.resolver import reverse_ancestors

HTTP = Port("http", 80, "TCP")


@dataclass
class FakeLookup:
    services: dict[tuple[str, str], ServiceInfo] = field(default_factory=dict)
    endpoint_map: dict[tuple[str, str], tuple[EndpointAddress, ...]] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)
    synced: bool = True

    def add(self, svc: ServiceInfo, *addresses: EndpointAddress) -> None:
        self.services[(svc.namespace, svc.name)] = svc
        if addresses:
            self.endpoint_map[(svc.namespace, svc.name)] = tuple(addresses)

    def has_synced(self) -> bool:
        return self.synced

    def service(self, namespace: str, name: str) -> ServiceInfo | None:
        return self.services.get((namespace, name))

    def endpoints(self, namespace: str, name: str) -> Sequence[EndpointAddress]:
        return self.endpoint_map.get((namespace, name), ())

    def namespace_exists(self, namespace: str) -> bool:
        return namespace in self.namespaces or any(ns == namespace for ns, _ in self.services)

    def services_by_ip(self, ip: str) -> Sequence[ServiceInfo]:
        return [s for s in self.services.values() if ip in s.cluster_ips]

    def endpoints_by_ip(self, ip: str) -> Sequence[tuple[ServiceInfo, EndpointAddress]]:
        return [
            (self.services[key], a)
            for key, addresses in sorted(self.endpoint_map.items())
            if key in self.services
            for a in addresses
            if a.ip == ip
        ]

    def reverse_in_use(self, reverse_name: str) -> bool:
        ips = {ip for s in self.services.values() for ip in s.cluster_ips}
        ips |= {a.ip for addresses in self.endpoint_map.values() for a in addresses}
        return any(reverse_name in reverse_ancestors(ip) for ip in ips)


def cluster_zone() -> FakeLookup:
    """The cluster the resolver tables are written against (after CoreDNS's handler tests)."""
    z = FakeLookup(namespaces={"testns", "emptyns"})
    ns = "testns"
    z.add(
        ServiceInfo(ns, "svc1", CLUSTER_IP, ("127.96.0.10",), (HTTP,)),
        EndpointAddress("198.18.1.1", "", True, (Port("http", 8080),)),
    )
    z.add(ServiceInfo(ns, "svcempty", CLUSTER_IP, ("127.96.0.11",), (HTTP,)))
    z.add(ServiceInfo(ns, "svc6", CLUSTER_IP, ("1234:abcd::1",), (HTTP,)))
    z.add(ServiceInfo(ns, "svc-dual-stack", CLUSTER_IP, ("127.96.0.3", "10::3"), (HTTP,)))
    z.add(
        ServiceInfo(
            ns,
            "multiport",
            CLUSTER_IP,
            ("127.96.0.12",),
            (HTTP, Port("dns", 53, "UDP"), Port("dns-tcp", 53, "TCP"), Port("", 8080)),
        )
    )
    z.add(ServiceInfo(ns, "pending", CLUSTER_IP, (), (HTTP,)))
    z.add(
        ServiceInfo(ns, "hdls1", HEADLESS, (), (HTTP,)),
        EndpointAddress("198.18.0.2", "", True, (HTTP,)),
        EndpointAddress("198.18.0.3", "", True, (HTTP,)),
        EndpointAddress("198.18.0.4", "dup-name", True, (HTTP,)),
        EndpointAddress("198.18.0.5", "dup-name", True, (HTTP,)),
        EndpointAddress("5678:abcd::1", "", True, (HTTP,)),
        EndpointAddress("5678:abcd::2", "", True, (HTTP,)),
        EndpointAddress("198.18.0.9", "", False, (HTTP,)),
    )
    z.add(ServiceInfo(ns, "hdlsprtls", HEADLESS), EndpointAddress("198.18.0.20"))
    z.add(
        ServiceInfo(ns, "hdls-none-ready", HEADLESS, (), (HTTP,)),
        EndpointAddress("198.18.0.25", "", False, (HTTP,)),
    )
    z.add(
        ServiceInfo(ns, "hdls-publish", HEADLESS, (), (HTTP,), publish_not_ready=True),
        EndpointAddress("198.18.0.30", "web-0", False, (HTTP,)),
    )
    z.add(ServiceInfo(ns, "external", EXTERNAL_NAME, external_name="ext.interwebs.test"))
    z.add(
        ServiceInfo(
            ns,
            "external-to-service",
            EXTERNAL_NAME,
            external_name="svc1.testns.svc.cluster.local",
        )
    )
    return z


def norm(line: str) -> str:
    """A zone-file line in dnspython's canonical text (`name ttl IN type rdata`)."""
    name, ttl, rdclass, rdtype, rdata = line.split(None, 4)
    rrset = dns.rrset.from_text(name.lower(), int(ttl), rdclass, rdtype, rdata)
    return rrset.to_text()


def lines(rrsets: Iterable[dns.rrset.RRset]) -> list[str]:
    """Sorted zone-file lines of RRsets (OPT left out)."""
    out = []
    for rrset in rrsets:
        if rrset.rdtype == dns.rdatatype.OPT:
            continue
        out.extend(rrset.to_text().splitlines())
    return sorted(line.lower() for line in out)


def expected(zone_lines: Iterable[str]) -> list[str]:
    return sorted(norm(line).lower() for line in zone_lines)


def query(
    name: str,
    rdtype: str | int,
    *,
    edns: bool = True,
    payload: int = 1232,
    rdclass: int = dns.rdataclass.IN,
    want_dnssec: bool = False,
) -> dns.message.Message:
    return dns.message.make_query(
        name,
        rdtype,
        rdclass,
        use_edns=0 if edns else False,
        payload=payload,
        want_dnssec=want_dnssec,
    )
