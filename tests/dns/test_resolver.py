"""The resolver's answers, written as zone-file text, for every record form and response code.

Each case runs twice: against the pure resolver, and through the engine (wire
format, slow path then fast path), which must give the same sections.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from kubesvc.dns.engine import Engine
from kubesvc.dns.resolver import Resolver, ResolverConfig
from tests.dns.fake import cluster_zone, expected, lines, query

SERIAL = 1499347823
SOA = f"cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {SERIAL} 7200 1800 86400 5"
REV_SOA = f"in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {SERIAL} 7200 1800 86400 5"
REV6_SOA = (
    f"ip6.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {SERIAL} 7200 1800 86400 5"
)
T = "testns.svc.cluster.local."


@dataclass
class Case:
    qname: str
    qtype: str
    rcode: str = "NOERROR"
    answer: list[str] = field(default_factory=list)
    ns: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.qname} {self.qtype}"


CASES = [
    # ClusterIP services: A/AAAA, dual stack, and NODATA for the other family or type.
    Case(f"svc1.{T}", "A", answer=[f"svc1.{T} 5 IN A 127.96.0.10"]),
    Case(f"svc1.{T}", "AAAA", ns=[SOA]),
    Case(f"svc1.{T}", "TXT", ns=[SOA]),
    Case(f"svc1.{T}", "SOA", ns=[SOA]),
    Case(f"svcempty.{T}", "A", answer=[f"svcempty.{T} 5 IN A 127.96.0.11"]),
    Case(f"pending.{T}", "A", ns=[SOA]),
    Case(f"svc6.{T}", "AAAA", answer=[f"svc6.{T} 5 IN AAAA 1234:abcd::1"]),
    Case(f"svc6.{T}", "A", ns=[SOA]),
    Case(f"svc-dual-stack.{T}", "A", answer=[f"svc-dual-stack.{T} 5 IN A 127.96.0.3"]),
    Case(f"svc-dual-stack.{T}", "AAAA", answer=[f"svc-dual-stack.{T} 5 IN AAAA 10::3"]),
    # SRV per named port, the target's address in Additional.
    Case(
        f"_http._tcp.svc1.{T}",
        "SRV",
        answer=[f"_http._tcp.svc1.{T} 5 IN SRV 0 100 80 svc1.{T}"],
        extra=[f"svc1.{T} 5 IN A 127.96.0.10"],
    ),
    Case(
        f"svc1.{T}",
        "SRV",
        answer=[f"svc1.{T} 5 IN SRV 0 100 80 svc1.{T}"],
        extra=[f"svc1.{T} 5 IN A 127.96.0.10"],
    ),
    Case(
        f"_http._tcp.svc6.{T}",
        "SRV",
        answer=[f"_http._tcp.svc6.{T} 5 IN SRV 0 100 80 svc6.{T}"],
        extra=[f"svc6.{T} 5 IN AAAA 1234:abcd::1"],
    ),
    Case(
        f"svc-dual-stack.{T}",
        "SRV",
        answer=[f"svc-dual-stack.{T} 5 IN SRV 0 50 80 svc-dual-stack.{T}"],
        extra=[f"svc-dual-stack.{T} 5 IN A 127.96.0.3", f"svc-dual-stack.{T} 5 IN AAAA 10::3"],
    ),
    Case(
        f"_dns._udp.multiport.{T}",
        "SRV",
        answer=[f"_dns._udp.multiport.{T} 5 IN SRV 0 100 53 multiport.{T}"],
        extra=[f"multiport.{T} 5 IN A 127.96.0.12"],
    ),
    Case(f"_dns._tcp.multiport.{T}", "SRV", "NXDOMAIN", ns=[SOA]),
    Case(f"_http._udp.svc1.{T}", "SRV", "NXDOMAIN", ns=[SOA]),
    Case(f"_nope._tcp.svc1.{T}", "SRV", "NXDOMAIN", ns=[SOA]),
    Case(f"_http._bogus.svc1.{T}", "SRV", "NXDOMAIN", ns=[SOA]),
    Case(f"_http._tcp.svc1.{T}", "A", ns=[SOA]),
    Case(f"_tcp.svc1.{T}", "SRV", ns=[SOA]),  # empty non-terminal above _http._tcp
    Case(f"_udp.svc1.{T}", "SRV", "NXDOMAIN", ns=[SOA]),
    Case(f"a.b._http._tcp.svc1.{T}", "A", "NXDOMAIN", ns=[SOA]),
    # Headless: one address per ready endpoint; hostnames; SRV per endpoint × port.
    Case(
        f"hdls1.{T}",
        "A",
        answer=[f"hdls1.{T} 5 IN A 198.18.0.{i}" for i in (2, 3, 4, 5)],
    ),
    Case(
        f"hdls1.{T}",
        "AAAA",
        answer=[f"hdls1.{T} 5 IN AAAA 5678:abcd::1", f"hdls1.{T} 5 IN AAAA 5678:abcd::2"],
    ),
    Case(
        f"_http._tcp.hdls1.{T}",
        "SRV",
        answer=[
            f"_http._tcp.hdls1.{T} 5 IN SRV 0 16 80 198-18-0-2.hdls1.{T}",
            f"_http._tcp.hdls1.{T} 5 IN SRV 0 16 80 198-18-0-3.hdls1.{T}",
            f"_http._tcp.hdls1.{T} 5 IN SRV 0 16 80 dup-name.hdls1.{T}",
            f"_http._tcp.hdls1.{T} 5 IN SRV 0 16 80 5678-abcd--1.hdls1.{T}",
            f"_http._tcp.hdls1.{T} 5 IN SRV 0 16 80 5678-abcd--2.hdls1.{T}",
        ],
        extra=[
            f"198-18-0-2.hdls1.{T} 5 IN A 198.18.0.2",
            f"198-18-0-3.hdls1.{T} 5 IN A 198.18.0.3",
            f"dup-name.hdls1.{T} 5 IN A 198.18.0.4",
            f"dup-name.hdls1.{T} 5 IN A 198.18.0.5",
            f"5678-abcd--1.hdls1.{T} 5 IN AAAA 5678:abcd::1",
            f"5678-abcd--2.hdls1.{T} 5 IN AAAA 5678:abcd::2",
        ],
    ),
    Case(f"198-18-0-2.hdls1.{T}", "A", answer=[f"198-18-0-2.hdls1.{T} 5 IN A 198.18.0.2"]),
    Case(
        f"dup-name.hdls1.{T}",
        "A",
        answer=[f"dup-name.hdls1.{T} 5 IN A 198.18.0.4", f"dup-name.hdls1.{T} 5 IN A 198.18.0.5"],
    ),
    Case(
        f"5678-abcd--1.hdls1.{T}", "AAAA", answer=[f"5678-abcd--1.hdls1.{T} 5 IN AAAA 5678:abcd::1"]
    ),
    Case(f"5678-abcd--1.hdls1.{T}", "A", ns=[SOA]),
    Case(f"bogusendpoint.hdls1.{T}", "A", "NXDOMAIN", ns=[SOA]),
    Case(f"198-18-0-9.hdls1.{T}", "A", "NXDOMAIN", ns=[SOA]),  # not ready
    Case(f"hdlsprtls.{T}", "A", answer=[f"hdlsprtls.{T} 5 IN A 198.18.0.20"]),
    Case(f"hdlsprtls.{T}", "SRV", ns=[SOA]),
    Case(
        f"198-18-0-20.hdlsprtls.{T}", "A", answer=[f"198-18-0-20.hdlsprtls.{T} 5 IN A 198.18.0.20"]
    ),
    Case(f"hdls-none-ready.{T}", "A", "NXDOMAIN", ns=[SOA]),
    Case(f"hdls-none-ready.{T}", "AAAA", "NXDOMAIN", ns=[SOA]),
    Case(f"hdls-publish.{T}", "A", answer=[f"hdls-publish.{T} 5 IN A 198.18.0.30"]),
    Case(f"web-0.hdls-publish.{T}", "A", answer=[f"web-0.hdls-publish.{T} 5 IN A 198.18.0.30"]),
    # Endpoint hostnames of a ClusterIP service resolve too (as CoreDNS does).
    Case(f"198-18-1-1.svc1.{T}", "A", answer=[f"198-18-1-1.svc1.{T} 5 IN A 198.18.1.1"]),
    # ExternalName: a CNAME; an in-zone target is answered too.
    Case(f"external.{T}", "CNAME", answer=[f"external.{T} 5 IN CNAME ext.interwebs.test."]),
    Case(f"external.{T}", "A", answer=[f"external.{T} 5 IN CNAME ext.interwebs.test."]),
    Case(f"external.{T}", "SRV", answer=[f"external.{T} 5 IN CNAME ext.interwebs.test."]),
    Case(f"endpoint.external.{T}", "CNAME", "NXDOMAIN", ns=[SOA]),
    Case(f"_http._tcp.external.{T}", "SRV", "NXDOMAIN", ns=[SOA]),
    Case(
        f"external-to-service.{T}",
        "A",
        answer=[
            f"external-to-service.{T} 5 IN CNAME svc1.{T}",
            f"svc1.{T} 5 IN A 127.96.0.10",
        ],
    ),
    Case(
        f"external-to-service.{T}",
        "AAAA",
        answer=[f"external-to-service.{T} 5 IN CNAME svc1.{T}"],
        ns=[SOA],
    ),
    # Missing service, namespace or hostname: NXDOMAIN; the tree above services: NODATA.
    Case(f"svc0.{T}", "A", "NXDOMAIN", ns=[SOA]),
    Case(f"svc0.{T}", "AAAA", "NXDOMAIN", ns=[SOA]),
    Case("svc0.svc-nons.svc.cluster.local.", "A", "NXDOMAIN", ns=[SOA]),
    Case(f"bogusendpoint.svc0.{T}", "A", "NXDOMAIN", ns=[SOA]),
    Case(T, "A", ns=[SOA]),
    Case("emptyns.svc.cluster.local.", "A", ns=[SOA]),
    Case("svc-nons.svc.cluster.local.", "A", "NXDOMAIN", ns=[SOA]),
    Case("svc.cluster.local.", "A", ns=[SOA]),
    Case("svc.cluster.local.", "NS", ns=[SOA]),
    Case("pod.cluster.local.", "A", ns=[SOA]),
    Case("1-2-3-4.testns.pod.cluster.local.", "A", "NXDOMAIN", ns=[SOA]),
    Case("foo.cluster.local.", "A", "NXDOMAIN", ns=[SOA]),
    Case("foo.cluster.local.", "NS", "NXDOMAIN", ns=[SOA]),
    # Apex, name server, schema version.
    Case("cluster.local.", "SOA", answer=[SOA]),
    Case(
        "cluster.local.",
        "NS",
        answer=["cluster.local. 5 IN NS ns.dns.cluster.local."],
        extra=["ns.dns.cluster.local. 5 IN A 127.0.0.1"],
    ),
    Case("cluster.local.", "A", ns=[SOA]),
    Case("ns.dns.cluster.local.", "A", answer=["ns.dns.cluster.local. 5 IN A 127.0.0.1"]),
    Case("ns.dns.cluster.local.", "AAAA", ns=[SOA]),
    Case("dns.cluster.local.", "A", ns=[SOA]),
    Case(
        "dns-version.cluster.local.",
        "TXT",
        answer=['dns-version.cluster.local. 28800 IN TXT "1.1.0"'],
    ),
    Case("dns-version.cluster.local.", "A", ns=[SOA]),
    # ANY: one RRset, never all (RFC 8482).
    Case(f"svc1.{T}", "ANY", answer=[f"svc1.{T} 5 IN A 127.96.0.10"]),
    Case(f"svc6.{T}", "ANY", answer=[f"svc6.{T} 5 IN AAAA 1234:abcd::1"]),
    Case(
        f"hdls1.{T}",
        "ANY",
        answer=[f"hdls1.{T} 5 IN A 198.18.0.{i}" for i in (2, 3, 4, 5)],
    ),
    Case(f"external.{T}", "ANY", answer=[f"external.{T} 5 IN CNAME ext.interwebs.test."]),
    Case(f"svc0.{T}", "ANY", "NXDOMAIN", ns=[SOA]),
    Case("cluster.local.", "ANY", answer=[SOA]),
    Case(T, "ANY", ns=[SOA]),
    # Reverse: cluster IPs name their Service, endpoint addresses their hostname.
    Case(
        "10.0.96.127.in-addr.arpa.", "PTR", answer=[f"10.0.96.127.in-addr.arpa. 5 IN PTR svc1.{T}"]
    ),
    Case("10.0.96.127.in-addr.arpa.", "A", ns=[REV_SOA]),
    Case(
        "2.0.18.198.in-addr.arpa.",
        "PTR",
        answer=[f"2.0.18.198.in-addr.arpa. 5 IN PTR 198-18-0-2.hdls1.{T}"],
    ),
    Case(
        "4.0.18.198.in-addr.arpa.",
        "PTR",
        answer=[f"4.0.18.198.in-addr.arpa. 5 IN PTR dup-name.hdls1.{T}"],
    ),
    Case(
        "30.0.18.198.in-addr.arpa.",
        "PTR",
        answer=[f"30.0.18.198.in-addr.arpa. 5 IN PTR web-0.hdls-publish.{T}"],
    ),
    Case("9.0.18.198.in-addr.arpa.", "PTR", "NXDOMAIN", ns=[REV_SOA]),  # not ready
    Case("99.99.99.99.in-addr.arpa.", "PTR", "NXDOMAIN", ns=[REV_SOA]),
    Case("96.127.in-addr.arpa.", "PTR", ns=[REV_SOA]),  # parent of known addresses
    Case("55.127.in-addr.arpa.", "PTR", "NXDOMAIN", ns=[REV_SOA]),
    Case("010.0.96.127.in-addr.arpa.", "PTR", "NXDOMAIN", ns=[REV_SOA]),
    Case("1.10.0.96.127.in-addr.arpa.", "PTR", "NXDOMAIN", ns=[REV_SOA]),
    Case("in-addr.arpa.", "SOA", answer=[REV_SOA]),
    Case(
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.",
        "PTR",
        answer=[
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa. 5 IN PTR "
            f"svc6.{T}"
        ],
    ),
    Case(
        "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.8.7.6.5.ip6.arpa.",
        "PTR",
        answer=[
            "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.8.7.6.5.ip6.arpa. 5 IN PTR "
            f"5678-abcd--2.hdls1.{T}"
        ],
    ),
    Case("f.f.ip6.arpa.", "PTR", "NXDOMAIN", ns=[REV6_SOA]),
]


@pytest.fixture(scope="module")
def resolver() -> Resolver:
    config = ResolverConfig(soa_serial=SERIAL, ns_addresses=("127.0.0.1",))
    return Resolver(cluster_zone(), config)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_resolver_table(resolver: Resolver, case: Case) -> None:
    result = resolver.resolve(dns.name.from_text(case.qname), dns.rdatatype.from_text(case.qtype))
    assert result.ours
    assert dns.rcode.to_text(result.rcode) == case.rcode
    assert lines(result.answer) == expected(case.answer)
    assert lines(result.authority) == expected(case.ns)
    assert lines(result.additional) == expected(case.extra)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_engine_table(resolver: Resolver, case: Case) -> None:
    """The same answers on the wire, from the slow path and then from the fast path."""
    engine = Engine(resolver)
    request = query(case.qname, case.qtype, payload=4096)
    data = request.to_wire()
    first = engine.handle(data, False)
    second = engine.handle(data, False)
    assert isinstance(first, bytes) and isinstance(second, bytes)
    assert engine.store.get(data[12 : 12 + len(request.question[0].name.to_wire()) + 4])
    # Equal up to the rotation of multi-address answers.
    assert len(first) == len(second)
    assert lines(dns.message.from_wire(second).answer) == lines(dns.message.from_wire(first).answer)
    reply = dns.message.from_wire(first)
    assert reply.id == request.id
    assert reply.flags & dns.flags.AA and reply.flags & dns.flags.QR
    assert dns.rcode.to_text(reply.rcode()) == case.rcode
    assert lines(reply.answer) == expected(case.answer)
    assert lines(reply.authority) == expected(case.ns)
    assert lines(reply.additional) == expected(case.extra)


P = "testns.pod.cluster.local."
POD_CASES = [
    # `--pod-records insecure`: the address the name spells, whatever the namespace.
    Case(f"10-244-1-5.{P}", "A", answer=[f"10-244-1-5.{P} 5 IN A 10.244.1.5"]),
    Case(f"10-244-1-5.{P}", "AAAA", ns=[SOA]),
    Case(f"10-244-1-5.{P}", "TXT", ns=[SOA]),
    Case(f"fd00--5.{P}", "AAAA", answer=[f"fd00--5.{P} 5 IN AAAA fd00::5"]),
    Case(
        "1-2-3-4.nowhere.pod.cluster.local.",
        "A",
        answer=["1-2-3-4.nowhere.pod.cluster.local. 5 IN A 1.2.3.4"],
    ),
    Case(f"not-an-ip.{P}", "A", "NXDOMAIN", ns=[SOA]),
    Case(f"300-1-1-1.{P}", "A", "NXDOMAIN", ns=[SOA]),
    Case(P, "A", ns=[SOA]),
    Case(f"x.10-244-1-5.{P}", "A", "NXDOMAIN", ns=[SOA]),
]


@pytest.mark.parametrize("case", POD_CASES, ids=str)
def test_insecure_pod_records(case: Case) -> None:
    config = ResolverConfig(soa_serial=SERIAL, pod_records="insecure")
    resolver = Resolver(cluster_zone(), config)
    result = resolver.resolve(dns.name.from_text(case.qname), dns.rdatatype.from_text(case.qtype))
    assert dns.rcode.to_text(result.rcode) == case.rcode
    assert lines(result.answer) == expected(case.answer)
    assert lines(result.authority) == expected(case.ns)
    reply = dns.message.from_wire(
        Engine(resolver).handle(query(case.qname, case.qtype).to_wire(), False)
    )  # type: ignore[arg-type]
    assert lines(reply.answer) == expected(case.answer)


def test_out_of_zone_is_not_ours(resolver: Resolver) -> None:
    result = resolver.resolve(dns.name.from_text("example.com."), dns.rdatatype.A)
    assert not result.ours and result.rcode == dns.rcode.REFUSED


def test_external_name_out_of_zone_is_left_to_the_upstream(resolver: Resolver) -> None:
    result = resolver.resolve(dns.name.from_text(f"external.{T}"), dns.rdatatype.A)
    assert result.chase == dns.name.from_text("ext.interwebs.test.")
    assert not result.authority


def test_unknown_reverse_falls_through_when_an_upstream_exists() -> None:
    resolver = Resolver(cluster_zone(), ResolverConfig(reverse_fallthrough=True))
    unknown = resolver.resolve(dns.name.from_text("99.99.99.99.in-addr.arpa."), dns.rdatatype.PTR)
    assert not unknown.ours
    known = resolver.resolve(dns.name.from_text("10.0.96.127.in-addr.arpa."), dns.rdatatype.PTR)
    assert known.ours and known.answer


def test_names_compare_case_insensitively(resolver: Resolver) -> None:
    upper = resolver.resolve(dns.name.from_text("SVC1.TestNS.SVC.Cluster.Local."), dns.rdatatype.A)
    assert lines(upper.answer) == expected([f"svc1.{T} 5 IN A 127.96.0.10"])


def test_ttl_is_configurable() -> None:
    resolver = Resolver(cluster_zone(), ResolverConfig(ttl_s=30))
    result = resolver.resolve(dns.name.from_text(f"svc1.{T}"), dns.rdatatype.A)
    assert result.answer[0].ttl == 30
    missing = resolver.resolve(dns.name.from_text(f"svc0.{T}"), dns.rdatatype.A)
    assert missing.authority[0].ttl == 30 and missing.authority[0][0].minimum == 30


def test_answers_record_what_they_read(resolver: Resolver) -> None:
    result = resolver.resolve(dns.name.from_text(f"external-to-service.{T}"), dns.rdatatype.A)
    assert ("svc", "testns", "external-to-service") in result.tags
    assert ("svc", "testns", "svc1") in result.tags
    ptr = resolver.resolve(dns.name.from_text("10.0.96.127.in-addr.arpa."), dns.rdatatype.PTR)
    assert ("rev", "10.0.96.127.in-addr.arpa.") in ptr.tags
    ns = resolver.resolve(dns.name.from_text(T), dns.rdatatype.A)
    assert ns.tags == {("ns", "testns")}
    static = resolver.resolve(dns.name.from_text("dns-version.cluster.local."), dns.rdatatype.TXT)
    assert static.tags == frozenset()
