"""Pure: which records answer a question about the cluster zone. No sockets, no wire format.

Follows the Kubernetes DNS specification 1.1.0 and, where it is silent, the
CoreDNS `kubernetes` plugin (shared/reference/dns-spec.md):

- `<svc>.<ns>.svc.<zone>`: A/AAAA of the cluster IPs; for a headless Service
  one per ready endpoint (no ready endpoint: NXDOMAIN); CNAME for ExternalName.
- `_<port>._<proto>.<svc>.<ns>.svc.<zone>`: SRV per named port (per ready
  endpoint × port when headless), with the targets' addresses as Additional.
- `<hostname>.<svc>.<ns>.svc.<zone>`: A/AAAA of the ready endpoints of that name.
- PTR under in-addr.arpa/ip6.arpa for cluster IPs and endpoint addresses.
- `dns-version.<zone>` TXT "1.1.0"; SOA and NS at the apex.
- `<a-b-c-d>.<ns>.pod.<zone>` only with `pod_records="insecure"` (not in the
  specification; what kubeadm's CoreDNS serves): the address the name spells.
- Name exists but not the type: NODATA (NOERROR + SOA); missing name: NXDOMAIN + SOA.

ANY is answered minimally (RFC 8482): one RRset of the name, never all of them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.rrset

from kubesvc.dns.lookup import (
    EXTERNAL_NAME,
    HEADLESS,
    EndpointAddress,
    Lookup,
    Port,
    ServiceInfo,
    Tag,
)

IN = dns.rdataclass.IN
A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT, ANY = (
    dns.rdatatype.A,
    dns.rdatatype.AAAA,
    dns.rdatatype.CNAME,
    dns.rdatatype.NS,
    dns.rdatatype.PTR,
    dns.rdatatype.SOA,
    dns.rdatatype.SRV,
    dns.rdatatype.TXT,
    dns.rdatatype.ANY,
)
NOERROR, NXDOMAIN = dns.rcode.NOERROR, dns.rcode.NXDOMAIN

SCHEMA_VERSION = "1.1.0"
# CoreDNS serves the schema version with a long TTL: it only changes with the software.
SCHEMA_TTL_S = 28800
# RFC 8482: ANY gets one RRset; this is the order in which we pick it.
ANY_ORDER = (A, AAAA, CNAME, SRV, PTR, TXT, SOA, NS)
# An ExternalName may point at another in-zone name; follow at most this many links.
MAX_CNAME_CHAIN = 8
PROTOCOLS = {"_tcp": "TCP", "_udp": "UDP", "_sctp": "SCTP"}

IN_ADDR = dns.name.from_text("in-addr.arpa.")
IP6 = dns.name.from_text("ip6.arpa.")


@dataclass(frozen=True)
class ResolverConfig:
    """The zone and the fixed parts of every answer."""

    zone: str = "cluster.local"
    ttl_s: int = 5
    # Without zone transfers nobody reads the serial, so it is fixed for the process:
    # a serial that moved on every change would stale every precomputed negative answer.
    soa_serial: int = 1
    # Addresses of ns.dns.<zone> (the server itself), served with the apex NS record.
    ns_addresses: tuple[str, ...] = ()
    # Unknown reverse names are not ours when an upstream exists (CoreDNS `fallthrough`).
    reverse_fallthrough: bool = False
    # `<a-b-c-d>.<ns>.pod.<zone>`: "disabled" (CoreDNS's default: no such names) or
    # "insecure" (kubeadm's CoreDNS: the address the name spells, unchecked).
    pod_records: str = "disabled"


@dataclass
class Result:
    """An answer: the sections, and what it depended on (for precise invalidation)."""

    rcode: int
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    tags: frozenset[Tag] = frozenset()
    # False: the name is not ours to answer (refuse it, or forward it upstream).
    ours: bool = True
    # An out-of-zone CNAME target an upstream may resolve to complete the answer.
    chase: dns.name.Name | None = None


class _Recorder:
    """A Lookup wrapper that notes which tags an answer read."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.tags: set[Tag] = set()

    def service(self, namespace: str, name: str) -> ServiceInfo | None:
        self.tags.add(("svc", namespace, name))
        return self.lookup.service(namespace, name)

    def endpoints(self, namespace: str, name: str) -> Sequence[EndpointAddress]:
        self.tags.add(("svc", namespace, name))
        return self.lookup.endpoints(namespace, name)

    def namespace_exists(self, namespace: str) -> bool:
        self.tags.add(("ns", namespace))
        return self.lookup.namespace_exists(namespace)

    def services_by_ip(self, ip: str) -> Sequence[ServiceInfo]:
        self.tags.add(("rev", reverse_name(ip)))
        return self.lookup.services_by_ip(ip)

    def endpoints_by_ip(self, ip: str) -> Sequence[tuple[ServiceInfo, EndpointAddress]]:
        self.tags.add(("rev", reverse_name(ip)))
        return self.lookup.endpoints_by_ip(ip)

    def reverse_in_use(self, name: str) -> bool:
        self.tags.add(("rev", name))
        return self.lookup.reverse_in_use(name)


def reverse_name(ip: str) -> str:
    """`10.0.96.127.in-addr.arpa.` for 127.96.0.10 (nibbles under ip6.arpa for IPv6)."""
    return ipaddress.ip_address(ip).reverse_pointer + "."


def reverse_ancestors(ip: str) -> list[str]:
    """The reverse name of `ip` and each of its parents below in-addr.arpa/ip6.arpa."""
    labels = reverse_name(ip).split(".")[:-1]  # drop the empty root label
    keep = 2  # "in-addr" "arpa" / "ip6" "arpa"
    return [".".join(labels[i:]) + "." for i in range(len(labels) - keep)]


def pod_record_ip(label: str) -> str | None:
    """The address a pod record's first label spells (`10-244-1-5`, `fd00--5`), or None."""
    for text in (label.replace("-", "."), label.replace("-", ":")):
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            pass
    return None


def _rrset(
    name: dns.name.Name, rdtype: int, ttl: int, rdatas: Iterable[dns.rdata.Rdata]
) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, IN, dns.rdatatype.RdataType.make(rdtype))
    for rdata in rdatas:
        rrset.add(rdata, ttl)
    return rrset


def _is_v6(ip: str) -> bool:
    return ":" in ip


def _addresses(
    name: dns.name.Name, ips: Iterable[str], qtype: int, ttl: int
) -> list[dns.rrset.RRset]:
    """The A (or AAAA) RRset of `ips` at `name`, or [] when none is of that family."""
    rdatas: list[dns.rdata.Rdata]
    if qtype == A:
        rdatas = [dns.rdtypes.IN.A.A(IN, A, ip) for ip in dict.fromkeys(ips) if not _is_v6(ip)]
    else:
        rdatas = [dns.rdtypes.IN.AAAA.AAAA(IN, AAAA, ip) for ip in dict.fromkeys(ips) if _is_v6(ip)]
    return [_rrset(name, qtype, ttl, rdatas)] if rdatas else []


def _both_families(name: dns.name.Name, ips: Iterable[str], ttl: int) -> list[dns.rrset.RRset]:
    ips = list(ips)
    return _addresses(name, ips, A, ttl) + _addresses(name, ips, AAAA, ttl)


def _label(raw: bytes) -> str:
    # Kubernetes names are ASCII; any other byte simply never matches one.
    return raw.decode("latin-1").lower()


@dataclass
class _Found:
    """An intermediate answer: NXDOMAIN, or NOERROR with records (none = NODATA)."""

    exists: bool
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    chase: dns.name.Name | None = None


_NX = _Found(False)


class Resolver:
    """Answers questions about the cluster zone and the reverse zones from a Lookup."""

    def __init__(self, lookup: Lookup, config: ResolverConfig | None = None) -> None:
        self.lookup = lookup
        self.config = config or ResolverConfig()
        self.zone = dns.name.from_text(self.config.zone.strip(".") + ".").canonicalize()
        self.ttl = self.config.ttl_s
        self.ns_name = dns.name.from_text("ns.dns", self.zone)
        hostmaster = dns.name.from_text("hostmaster", self.zone)
        self._soa = {
            apex: _rrset(
                apex,
                SOA,
                self.ttl,
                [
                    dns.rdtypes.ANY.SOA.SOA(
                        IN,
                        SOA,
                        self.ns_name,
                        hostmaster,
                        self.config.soa_serial,
                        7200,
                        1800,
                        86400,
                        self.ttl,
                    )
                ],
            )
            for apex in (self.zone, IN_ADDR, IP6)
        }

    # ------------------------------------------------------------ entry points

    def apex_of(self, qname: dns.name.Name) -> dns.name.Name | None:
        """The zone of ours that `qname` is in (cluster zone or a reverse zone), or None."""
        for apex in (self.zone, IN_ADDR, IP6):
            if qname.is_subdomain(apex):
                return apex
        return None

    def resolve(self, qname: dns.name.Name, qtype: int) -> Result:
        """The answer to (qname, IN, qtype). Names compare case-insensitively."""
        qname = qname.canonicalize()
        apex = self.apex_of(qname)
        if apex is None:
            return Result(dns.rcode.REFUSED, ours=False)
        rec = _Recorder(self.lookup)
        found = self._any(qname, apex, rec) if qtype == ANY else self._find(qname, apex, qtype, rec)
        if found is None:  # an unknown reverse name, left to the upstream
            return Result(dns.rcode.REFUSED, ours=False, tags=frozenset(rec.tags))
        result = Result(
            NOERROR if found.exists else NXDOMAIN,
            answer=found.answer,
            additional=found.additional,
            tags=frozenset(rec.tags),
            chase=found.chase,
        )
        if not found.answer or (found.chase is None and not self._ends_in_data(found, qtype)):
            result.authority = [self._soa[apex]]
        return result

    @staticmethod
    def _ends_in_data(found: _Found, qtype: int) -> bool:
        # A CNAME chain that ends at an in-zone name without the type is NODATA: add the SOA.
        last = found.answer[-1]
        return last.rdtype != CNAME or qtype in (CNAME, ANY)

    def _any(self, qname: dns.name.Name, apex: dns.name.Name, rec: _Recorder) -> _Found | None:
        found: _Found | None = None
        for rdtype in ANY_ORDER:
            found = self._find(qname, apex, rdtype, rec)
            if found is None or not found.exists:
                return found
            if found.answer:
                # One RRset (RFC 8482), no chasing, no Additional.
                return _Found(True, [found.answer[0]])
        return found

    def _find(
        self, qname: dns.name.Name, apex: dns.name.Name, qtype: int, rec: _Recorder
    ) -> _Found | None:
        if apex == self.zone:
            return self._in_zone(qname, qtype, rec, 0)
        return self._reverse(qname, apex, qtype, rec)

    # ------------------------------------------------------------ cluster zone

    def _in_zone(self, qname: dns.name.Name, qtype: int, rec: _Recorder, depth: int) -> _Found:
        rel = tuple(_label(raw) for raw in qname.relativize(self.zone).labels)
        if not rel:
            return self._apex(qtype)
        if rel == ("dns-version",):
            if qtype == TXT:
                txt = dns.rdtypes.ANY.TXT.TXT(IN, TXT, [SCHEMA_VERSION.encode()])
                return _Found(True, [_rrset(qname, TXT, SCHEMA_TTL_S, [txt])])
            return _Found(True)
        if rel == ("dns",):  # empty non-terminal above ns.dns
            return _Found(True)
        if rel == ("ns", "dns"):
            if qtype in (A, AAAA):
                return _Found(True, _addresses(qname, self.config.ns_addresses, qtype, self.ttl))
            return _Found(True)
        if rel[-1] == "pod":
            if self.config.pod_records == "insecure" and len(rel) == 3:
                ip = pod_record_ip(rel[0])
                if ip is None:
                    return _NX
                return _Found(
                    True, _addresses(qname, [ip], qtype, self.ttl) if qtype in (A, AAAA) else []
                )
            # Disabled (CoreDNS's default), or an empty non-terminal above the records.
            return _Found(
                len(rel) == 1 or (self.config.pod_records == "insecure" and len(rel) == 2)
            )
        if rel[-1] != "svc":
            return _NX
        if len(rel) == 1:
            return _Found(True)
        namespace = rel[-2]
        if len(rel) == 2:
            return _Found(rec.namespace_exists(namespace))
        svc = rec.service(namespace, rel[-3])
        if svc is None:
            return _NX
        if len(rel) == 3:
            return self._service(qname, svc, qtype, rec, depth)
        if len(rel) == 4:
            return self._hostname(qname, svc, rel[0], qtype, rec)
        if len(rel) == 5 and rel[0].startswith("_") and rel[1].startswith("_"):
            return self._named_port(qname, svc, rel[0][1:], rel[1], qtype, rec)
        return _NX

    def _apex(self, qtype: int) -> _Found:
        if qtype == SOA:
            return _Found(True, [self._soa[self.zone]])
        if qtype == NS:
            ns = _rrset(self.zone, NS, self.ttl, [dns.rdtypes.ANY.NS.NS(IN, NS, self.ns_name)])
            glue = _both_families(self.ns_name, self.config.ns_addresses, self.ttl)
            return _Found(True, [ns], glue)
        return _Found(True)

    def fqdn(self, svc: ServiceInfo, hostname: str = "") -> dns.name.Name:
        """`[<hostname>.]<svc>.<ns>.svc.<zone>.`"""
        labels = ([hostname] if hostname else []) + [svc.name, svc.namespace, "svc"]
        return dns.name.Name([label.encode() for label in labels] + list(self.zone.labels))

    def _ready(self, svc: ServiceInfo, rec: _Recorder) -> list[EndpointAddress]:
        return [
            a for a in rec.endpoints(svc.namespace, svc.name) if a.ready or svc.publish_not_ready
        ]

    def _service(
        self, qname: dns.name.Name, svc: ServiceInfo, qtype: int, rec: _Recorder, depth: int
    ) -> _Found:
        if svc.kind == EXTERNAL_NAME:
            return self._external(qname, svc, qtype, rec, depth)
        if svc.kind == HEADLESS:
            ready = self._ready(svc, rec)
            if not ready:
                # The reference behaviour: a headless name with nothing ready does not exist.
                return _NX
            if qtype in (A, AAAA):
                return _Found(True, _addresses(qname, (a.ip for a in ready), qtype, self.ttl))
            if qtype == SRV:
                return self._headless_srv(qname, svc, ready, None, None)
            return _Found(True)
        # ClusterIP (also NodePort/LoadBalancer); a Service still waiting for its IP has no A.
        if qtype in (A, AAAA):
            return _Found(True, _addresses(qname, svc.cluster_ips, qtype, self.ttl))
        if qtype == SRV:
            return self._cluster_srv(qname, svc, list(svc.ports))
        return _Found(True)

    def _external(
        self, qname: dns.name.Name, svc: ServiceInfo, qtype: int, rec: _Recorder, depth: int
    ) -> _Found:
        try:
            target = dns.name.from_text(svc.external_name.strip(".") + ".").canonicalize()
        except dns.exception.DNSException:
            return _Found(True)  # validation refuses such names; serve nothing rather than fail
        cname = _rrset(qname, CNAME, self.ttl, [dns.rdtypes.ANY.CNAME.CNAME(IN, CNAME, target)])
        if qtype in (CNAME, ANY):
            return _Found(True, [cname])
        if not target.is_subdomain(self.zone):
            return _Found(True, [cname], chase=target)
        if depth >= MAX_CNAME_CHAIN:
            return _Found(True, [cname])
        # An in-zone target is answered here, as CoreDNS does (CNAME then its records).
        inner = self._in_zone(target, qtype, rec, depth + 1)
        return _Found(inner.exists, [cname, *inner.answer], inner.additional, inner.chase)

    def _hostname(
        self, qname: dns.name.Name, svc: ServiceInfo, label: str, qtype: int, rec: _Recorder
    ) -> _Found:
        if svc.kind == EXTERNAL_NAME:
            return _NX
        if label in PROTOCOLS:
            # `_tcp.<svc>...` is an empty non-terminal when a named port of that protocol exists.
            exists = any(
                p.name and p.protocol == PROTOCOLS[label] for p in self._ports_of(svc, rec)
            )
            return _Found(exists)
        matches = [a for a in self._ready(svc, rec) if a.dns_hostname.lower() == label]
        if not matches:
            return _NX
        if qtype in (A, AAAA):
            return _Found(True, _addresses(qname, (a.ip for a in matches), qtype, self.ttl))
        if qtype == SRV:
            return self._headless_srv(qname, svc, matches, None, None)
        return _Found(True)

    def _ports_of(self, svc: ServiceInfo, rec: _Recorder) -> list[Port]:
        if svc.kind == HEADLESS:
            return [p for a in self._ready(svc, rec) for p in a.ports]
        return list(svc.ports)

    def _named_port(
        self,
        qname: dns.name.Name,
        svc: ServiceInfo,
        port_name: str,
        proto_label: str,
        qtype: int,
        rec: _Recorder,
    ) -> _Found:
        protocol = PROTOCOLS.get(proto_label)
        if protocol is None or not port_name or svc.kind == EXTERNAL_NAME:
            return _NX
        if svc.kind == HEADLESS:
            ready = self._ready(svc, rec)
            found = self._headless_srv(qname, svc, ready, port_name, protocol)
        else:
            ports = [p for p in svc.ports if p.name.lower() == port_name and p.protocol == protocol]
            found = self._cluster_srv(qname, svc, ports)
        if not found.answer:
            return _NX  # no such named port: the name does not exist
        return found if qtype == SRV else _Found(True)

    def _cluster_srv(self, qname: dns.name.Name, svc: ServiceInfo, ports: list[Port]) -> _Found:
        target = self.fqdn(svc)
        # CoreDNS's weights: 100 split evenly over the records before duplicates merge.
        count = len(ports) * max(1, len(svc.cluster_ips))
        rdatas = _srv_rdatas([(p.port, target) for p in ports if p.port > 0], count)
        if not rdatas:
            return _Found(True)
        extra = _both_families(target, svc.cluster_ips, self.ttl)
        return _Found(True, [_rrset(qname, SRV, self.ttl, rdatas)], extra)

    def _headless_srv(
        self,
        qname: dns.name.Name,
        svc: ServiceInfo,
        addresses: list[EndpointAddress],
        port_name: str | None,
        protocol: str | None,
    ) -> _Found:
        pairs: list[tuple[int, dns.name.Name]] = []
        targets: dict[dns.name.Name, list[str]] = {}
        for address in addresses:
            target = self.fqdn(svc, address.dns_hostname.lower())
            for port in address.ports:
                if port_name is not None and (
                    port.name.lower() != port_name or port.protocol != protocol
                ):
                    continue
                if port.port <= 0:
                    continue
                pairs.append((port.port, target))
                targets.setdefault(target, []).append(address.ip)
        rdatas = _srv_rdatas(pairs, len(pairs))
        if not rdatas:
            return _Found(True)
        extra = [rr for name, ips in targets.items() for rr in _both_families(name, ips, self.ttl)]
        return _Found(True, [_rrset(qname, SRV, self.ttl, rdatas)], extra)

    # ------------------------------------------------------------ reverse zones

    def _reverse(
        self, qname: dns.name.Name, apex: dns.name.Name, qtype: int, rec: _Recorder
    ) -> _Found | None:
        fallthrough = self.config.reverse_fallthrough
        rel = [_label(raw) for raw in qname.relativize(apex).labels]
        if not rel:
            if fallthrough:
                return None
            if qtype == SOA:
                return _Found(True, [self._soa[apex]])
            return _Found(True)
        ip = _ip_from_reverse(rel, apex == IN_ADDR)
        if ip is None:
            full = 4 if apex == IN_ADDR else 32
            # A parent of known addresses is an empty non-terminal, not a missing name.
            partial = len(rel) < full and _valid_reverse_labels(rel, apex == IN_ADDR)
            if partial and rec.reverse_in_use(qname.to_text()):
                return _Found(True)
            return None if fallthrough else _NX
        targets = self._ptr_targets(ip, rec)
        if not targets:
            return None if fallthrough else _NX
        if qtype != PTR:
            return _Found(True)
        rdatas = [dns.rdtypes.ANY.PTR.PTR(IN, PTR, t) for t in dict.fromkeys(targets)]
        return _Found(True, [_rrset(qname, PTR, self.ttl, rdatas)])

    def _ptr_targets(self, ip: str, rec: _Recorder) -> list[dns.name.Name]:
        services = sorted(rec.services_by_ip(ip), key=lambda s: (s.namespace, s.name))
        if services:
            # As CoreDNS: a cluster IP names its Service, only one even if misconfigured twice.
            return [self.fqdn(services[0])]
        return [
            self.fqdn(svc, address.dns_hostname.lower())
            for svc, address in rec.endpoints_by_ip(ip)
            if address.ready or svc.publish_not_ready
        ]


def _srv_rdatas(pairs: list[tuple[int, dns.name.Name]], count: int) -> list[dns.rdata.Rdata]:
    weight = 100 // count if count else 100
    seen = dict.fromkeys(pairs)  # duplicates (same port and target) merge into one record
    return [dns.rdtypes.IN.SRV.SRV(IN, SRV, 0, weight, port, target) for port, target in seen]


def _valid_reverse_labels(rel: list[str], v4: bool) -> bool:
    if v4:
        return all(_octet(label) is not None for label in rel)
    return all(len(label) == 1 and label in "0123456789abcdef" for label in rel)


def _octet(label: str) -> int | None:
    if not label.isdigit() or not label.isascii() or len(label) > 3:
        return None
    value = int(label)
    if value > 255 or str(value) != label:
        return None
    return value


def _ip_from_reverse(rel: list[str], v4: bool) -> str | None:
    """The address a full reverse name stands for (normalised), or None."""
    if v4:
        if len(rel) != 4 or not _valid_reverse_labels(rel, True):
            return None
        return ".".join(reversed(rel))
    if len(rel) != 32 or not _valid_reverse_labels(rel, False):
        return None
    nibbles = "".join(reversed(rel))
    return str(ipaddress.IPv6Address(int(nibbles, 16)))
