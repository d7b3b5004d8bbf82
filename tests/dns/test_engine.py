"""The engine on the wire, without sockets: headers, EDNS0, truncation, malformed input, changes."""

from __future__ import annotations

import struct

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubesvc.dns import wire
from kubesvc.dns.engine import AnswerStore, Engine, Forward
from kubesvc.dns.lookup import HEADLESS, EndpointAddress, ServiceInfo
from kubesvc.dns.resolver import Resolver, ResolverConfig
from tests.dns.fake import HTTP, FakeLookup, cluster_zone, lines, query

T = "testns.svc.cluster.local."


def make_engine(lookup: FakeLookup | None = None, **kw: object) -> Engine:
    return Engine(Resolver(lookup or cluster_zone(), ResolverConfig()), **kw)  # type: ignore[arg-type]


def ask(
    engine: Engine, message: dns.message.Message | bytes, udp: bool = True
) -> dns.message.Message:
    data = message if isinstance(message, bytes) else message.to_wire()
    out = engine.handle(data, udp)
    assert isinstance(out, bytes), out
    return dns.message.from_wire(out)


def big_headless(n: int) -> FakeLookup:
    zone = cluster_zone()
    zone.add(
        ServiceInfo("testns", "big", HEADLESS, (), (HTTP,)),
        *(
            EndpointAddress(f"198.18.{i // 250}.{i % 250 + 1}", f"w{i}", True, (HTTP,))
            for i in range(n)
        ),
    )
    return zone


# ---------------------------------------------------------------- headers


def test_reply_echoes_id_case_and_rd_cd_bits() -> None:
    engine = make_engine()
    for _ in range(2):  # slow path, then fast path
        q = query("SvC1.TESTns.svc.cluster.local.", "A")
        q.flags |= dns.flags.CD
        reply = ask(engine, q)
        assert reply.id == q.id
        assert reply.question[0].name.to_text() == "SvC1.TESTns.svc.cluster.local."
        assert reply.flags & dns.flags.QR and reply.flags & dns.flags.AA
        assert reply.flags & dns.flags.RD and reply.flags & dns.flags.CD
        assert not reply.flags & dns.flags.RA  # no upstream: recursion is not available
        q2 = query(f"svc1.{T}", "A")
        q2.flags &= ~dns.flags.RD
        assert not ask(engine, q2).flags & dns.flags.RD


def test_edns_mirrored_and_do_bit_echoed() -> None:
    engine = make_engine()
    for _ in range(2):
        plain = ask(engine, query(f"svc1.{T}", "A", edns=False))
        assert plain.edns == -1
        edns = ask(engine, query(f"svc1.{T}", "A", payload=4096))
        assert edns.edns == 0 and edns.payload == 1232 and not edns.ednsflags & wire.DO
        signed = ask(engine, query(f"svc1.{T}", "A", want_dnssec=True))
        assert signed.ednsflags & wire.DO


def test_edns_options_are_ignored_but_must_be_well_formed() -> None:
    engine = make_engine()
    q = query(f"svc1.{T}", "A")
    q.use_edns(0, options=[dns.edns.GenericOption(10, b"\x01" * 8)])  # a DNS cookie
    reply = ask(engine, q)
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer


def test_large_answer_truncated_over_udp_and_whole_over_tcp() -> None:
    engine = make_engine(big_headless(100))
    name = f"big.{T}"
    for _ in range(2):
        classic = ask(engine, query(name, "A", edns=False))
        assert classic.flags & dns.flags.TC and not classic.answer
        assert classic.question[0].name == dns.name.from_text(name)
        edns = ask(engine, query(name, "A", payload=4096))
        assert edns.flags & dns.flags.TC and edns.edns == 0  # 100 records exceed our 1232
        small = engine.handle(query(name, "A", payload=512).to_wire(), True)
        assert isinstance(small, bytes) and len(small) <= 512
        full = ask(engine, query(name, "A", edns=False), udp=False)
        assert not full.flags & dns.flags.TC and len(full.answer[0]) == 100


def test_additional_records_are_shed_before_truncating() -> None:
    engine = make_engine(big_headless(8))
    reply = ask(engine, query(f"_http._tcp.big.{T}", "SRV", edns=False))
    assert not reply.flags & dns.flags.TC
    assert len(reply.answer[0]) == 8 and not reply.additional
    whole = ask(engine, query(f"_http._tcp.big.{T}", "SRV"))
    assert len(whole.additional) == 8


def test_multi_address_answers_rotate() -> None:
    engine = make_engine()
    firsts = {ask(engine, query(f"hdls1.{T}", "A")).answer[0][0].address for _ in range(8)}
    assert firsts == {"198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5"}


# ---------------------------------------------------------------- response codes


def test_out_of_zone_refused_without_upstream() -> None:
    engine = make_engine()
    for name in ("example.com.", "kubernetes.io.", "."):
        reply = ask(engine, query(name, "A"))
        assert reply.rcode() == dns.rcode.REFUSED and not reply.answer
        assert not reply.flags & dns.flags.RA


def test_servfail_until_synced() -> None:
    zone = cluster_zone()
    zone.synced = False
    engine = make_engine(zone)
    for name, qtype in (
        (f"svc1.{T}", "A"),
        ("10.0.96.127.in-addr.arpa.", "PTR"),
        ("cluster.local.", "SOA"),
    ):
        assert ask(engine, query(name, qtype)).rcode() == dns.rcode.SERVFAIL
    assert ask(engine, query("example.com.", "A")).rcode() == dns.rcode.REFUSED
    assert len(engine.store) == 0  # nothing learnt from a partial picture
    zone.synced = True
    assert ask(engine, query(f"svc1.{T}", "A")).rcode() == dns.rcode.NOERROR


def with_counts(body: bytes, qd: int, an: int, ns: int, ar: int) -> bytes:
    return body[:4] + struct.pack("!HHHH", qd, an, ns, ar) + body[12:]


BASE = query(f"svc1.{T}", "A", edns=False).to_wire()
QUESTION = BASE[12:]
OPT = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
HEADER = BASE[:12]

MALFORMED = {
    "empty": (b"", None),
    "short header": (BASE[:5], None),
    "header, nothing else, one question announced": (BASE[:12], "FORMERR"),
    "no question": (with_counts(BASE[:12], 0, 0, 0, 0), "FORMERR"),
    "two questions": (with_counts(BASE + QUESTION, 2, 0, 0, 0), "FORMERR"),
    "pointer loop": (HEADER + b"\xc0\x0c\x00\x01\x00\x01", "FORMERR"),
    "forward pointer": (HEADER + b"\xc0\x20\x00\x01\x00\x01" + bytes(30), "FORMERR"),
    "label over 63": (HEADER + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01", "FORMERR"),
    "name over 255": (HEADER + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01", "FORMERR"),
    "answer count without answers": (with_counts(BASE, 1, 5, 0, 0), "FORMERR"),
    "trailing junk": (BASE + b"junk", "FORMERR"),
    "truncated question": (BASE[:-3], "FORMERR"),
    "OPT in the answer section": (with_counts(BASE + OPT, 1, 1, 0, 0), "FORMERR"),
    "two OPT records": (with_counts(BASE + OPT + OPT, 1, 0, 0, 2), "FORMERR"),
    "OPT with an owner name": (with_counts(BASE + b"\x01a" + OPT[1:], 1, 0, 0, 1), "FORMERR"),
    "OPT body shorter than its length": (
        with_counts(BASE + OPT[:-2] + b"\x00\x09abc", 1, 0, 0, 1),
        "FORMERR",
    ),
    "OPT option overrunning the body": (
        with_counts(BASE + OPT[:-2] + b"\x00\x05\x00\x0a\x00\x09x", 1, 0, 0, 1),
        "FORMERR",
    ),
    "a response": (BASE[:2] + bytes((BASE[2] | 0x80, BASE[3])) + BASE[4:], None),
    "reserved label type": (HEADER + b"\x80abc\x00\x00\x01\x00\x01", "FORMERR"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_packets_get_formerr_or_silence(name: str) -> None:
    data, outcome = MALFORMED[name]
    engine = make_engine()
    out = engine.handle(data, True)
    if outcome is None:
        assert out is None
        return
    assert isinstance(out, bytes)
    reply = dns.message.from_wire(out)
    assert dns.rcode.to_text(reply.rcode()) == outcome
    assert out[:2] == data[:2] and reply.flags & dns.flags.QR
    assert len(out) <= max(len(data), 12) + 11  # never an amplifier
    # The server keeps answering.
    assert ask(engine, query(f"svc1.{T}", "A")).rcode() == dns.rcode.NOERROR


def test_opcodes_versions_classes_and_types() -> None:
    engine = make_engine()
    notify = query(f"svc1.{T}", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert ask(engine, notify).rcode() == dns.rcode.NOTIMP
    v1 = query(f"svc1.{T}", "A")
    v1.use_edns(1)
    reply = ask(engine, v1)
    assert reply.rcode() == dns.rcode.BADVERS and reply.edns == 0
    chaos = query("version.bind.", "TXT", rdclass=dns.rdataclass.CH)
    assert ask(engine, chaos).rcode() == dns.rcode.REFUSED
    in_zone_chaos = query(f"svc1.{T}", "A", rdclass=dns.rdataclass.CH)
    assert ask(engine, in_zone_chaos).rcode() == dns.rcode.REFUSED
    for transfer in ("AXFR", "IXFR"):
        assert (
            ask(engine, query("cluster.local.", transfer), udp=False).rcode() == dns.rcode.REFUSED
        )
    assert ask(engine, query(f"svc1.{T}", "OPT")).rcode() == dns.rcode.FORMERR
    assert ask(engine, query(f"svc1.{T}", "MAILB")).rcode() == dns.rcode.NOTIMP
    unknown = ask(engine, query(f"svc1.{T}", 65280))
    assert unknown.rcode() == dns.rcode.NOERROR and not unknown.answer and unknown.authority


# ---------------------------------------------------------------- changes


def test_changes_drop_exactly_the_answers_that_read_them() -> None:
    zone = cluster_zone()
    programmed: list[float] = []
    engine = make_engine(zone, on_programmed=programmed.append)
    svc1 = query(f"svc1.{T}", "A").to_wire()
    svc6 = query(f"svc6.{T}", "AAAA").to_wire()
    svc0 = query(f"svc0.{T}", "A").to_wire()
    for data in (svc1, svc6, svc0):
        engine.handle(data, True)
    key = lambda data: wire.scan_query(data)[0]  # noqa: E731
    kept = engine.store.get(key(svc6))
    old_svc1 = engine.store.get(key(svc1))

    # svc1 goes away, svc0 appears: one watch event each.
    svc = zone.services.pop(("testns", "svc1"))
    engine.on_change({("svc", "testns", "svc1"), ("ns", "testns")}, 0.0)
    zone.add(ServiceInfo("testns", "svc0", svc.kind, ("127.96.0.20",), svc.ports))
    engine.on_change({("svc", "testns", "svc0"), ("ns", "testns")}, 0.0)

    assert engine.store.get(key(svc6)) is kept  # untouched
    assert engine.store.get(key(svc1)) is not old_svc1  # rendered again at once (it was in use)
    assert ask(engine, svc1).rcode() == dns.rcode.NXDOMAIN
    assert lines(ask(engine, svc0).answer) == [f"svc0.{T} 5 in a 127.96.0.20"]
    assert len(programmed) == 2


def test_store_is_bounded_and_keeps_hot_answers() -> None:
    engine = make_engine(max_entries=50)
    hot = query(f"svc1.{T}", "A").to_wire()
    engine.handle(hot, True)
    for i in range(500):
        engine.handle(query(f"nothing-{i}.{T}", "A").to_wire(), True)
        engine.handle(hot, True)
    assert len(engine.store) <= 50
    assert engine.store.get(wire.scan_query(hot)[0]) is not None
    assert sum(len(keys) for keys in engine.store.by_tag.values()) <= 50 * 2


def test_store_invalidate_unknown_tag_is_harmless() -> None:
    store = AnswerStore(4)
    assert store.invalidate({("svc", "x", "y")}) == []


def test_precompute_off_answers_the_same() -> None:
    engine = make_engine(precompute=False)
    assert lines(ask(engine, query(f"svc1.{T}", "A")).answer) == [f"svc1.{T} 5 in a 127.96.0.10"]
    assert len(engine.store) == 0


# ---------------------------------------------------------------- upstream side (sans-io)


def upstream_answer(request: dns.message.Message, text: str) -> dns.message.Message:
    answer = dns.message.make_response(request)
    answer.answer.append(dns.rrset.from_text(request.question[0].name, 60, "IN", "A", text))
    return answer


def test_forward_requests_and_replies() -> None:
    engine = make_engine(upstream=True)
    out = engine.handle(query("example.com.", "A").to_wire(), True)
    assert isinstance(out, Forward) and out.qname == dns.name.from_text("example.com.")
    reply = dns.message.from_wire(
        engine.finish(out, upstream_answer(dns.message.make_query(out.qname, "A"), "192.0.2.1"))
    )
    assert (
        reply.id == out.query.id and reply.flags & dns.flags.RA and not reply.flags & dns.flags.AA
    )
    assert lines(reply.answer) == ["example.com. 60 in a 192.0.2.1"]
    assert dns.message.from_wire(engine.finish(out, None)).rcode() == dns.rcode.SERVFAIL
    assert dns.message.from_wire(engine.overloaded(out)).rcode() == dns.rcode.REFUSED
    # Cluster names are still answered here, with RA now set.
    assert ask(engine, query(f"svc1.{T}", "A")).flags & dns.flags.RA


def test_external_name_chased_upstream() -> None:
    engine = make_engine(upstream=True)
    for _ in range(2):  # never served from the fast path: it needs the upstream each time
        out = engine.handle(query(f"external.{T}", "A").to_wire(), True)
        assert isinstance(out, Forward) and out.qname == dns.name.from_text("ext.interwebs.test.")
    reply = dns.message.from_wire(
        engine.finish(out, upstream_answer(dns.message.make_query(out.qname, "A"), "192.0.2.7"))
    )
    assert lines(reply.answer) == sorted(
        [f"external.{T} 5 in cname ext.interwebs.test.", "ext.interwebs.test. 60 in a 192.0.2.7"]
    )
    # Upstream down: the CNAME alone, as without an upstream.
    alone = dns.message.from_wire(engine.finish(out, None))
    assert lines(alone.answer) == [f"external.{T} 5 in cname ext.interwebs.test."]


def test_unknown_reverse_forwarded_with_upstream() -> None:
    engine = make_engine(upstream=True)
    reverse = engine.resolver.config.reverse_fallthrough
    assert not reverse  # this engine's resolver was built without fallthrough
    engine = Engine(
        Resolver(cluster_zone(), ResolverConfig(reverse_fallthrough=True)), upstream=True
    )
    assert isinstance(
        engine.handle(query("99.99.99.99.in-addr.arpa.", "PTR").to_wire(), True), Forward
    )
    assert isinstance(
        engine.handle(query("10.0.96.127.in-addr.arpa.", "PTR").to_wire(), True), bytes
    )


# ---------------------------------------------------------------- fuzz


def _valid_queries() -> list[bytes]:
    out = []
    for name, qtype in (
        (f"svc1.{T}", "A"),
        (f"_http._tcp.hdls1.{T}", "SRV"),
        ("example.com.", "AAAA"),
    ):
        out.append(query(name, qtype).to_wire())
        out.append(query(name, qtype, edns=False).to_wire())
    return out


VALID = _valid_queries()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "set"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            data[pos] = draw(st.sampled_from([0, 0x3F, 0x40, 0xC0, 0xFF, 0x29]))
    return bytes(data)


ENGINE = make_engine(upstream=True)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=600), mutated()), udp=st.booleans())
def test_fuzz_engine_never_raises(data: bytes, udp: bool) -> None:
    before = ENGINE.internal_errors
    out = ENGINE.handle(data, udp)
    assert ENGINE.internal_errors == before
    if isinstance(out, bytes):
        assert out[:2] == data[:2]
        dns.message.from_wire(out)  # whatever we send is a well-formed message
        if udp:
            assert len(out) <= 1232
    else:
        assert out is None or isinstance(out, Forward)
    assert ask(ENGINE, VALID[0]).rcode() == dns.rcode.NOERROR
