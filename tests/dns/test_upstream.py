"""Upstream configuration parsing and the forwarding cache (no network: a stub exchange)."""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import dns.rrset
import pytest

from kubesvc.dns.upstream import Forwarder, parse_upstreams


def test_parse_upstreams(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# comment\nnameserver 127.0.0.53\nsearch example\nnameserver fe80::1%eth0\n")
    assert parse_upstreams(["1.1.1.1", "127.0.0.1:5300", "[::1]:5353", "::1", str(resolv)]) == [
        ("1.1.1.1", 53),
        ("127.0.0.1", 5300),
        ("::1", 5353),
        ("::1", 53),
        ("127.0.0.53", 53),
        ("fe80::1", 53),
    ]
    with pytest.raises(ValueError):
        parse_upstreams(["127.0.0.1:0"])


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("300.1.1.1", "'300.1.1.1' is not an IP address"),
        ("dns.google", "'dns.google' is not an IP address"),
        (":53", "'' is not an IP address"),
        ("1.1.1.1:x", "'x' is not a port number"),
        ("1.1.1.1:99999", "'99999' is not a port number"),
        ("[::1]:", "'' is not a port number"),
        ("/no/such/resolv.conf", "No such file or directory"),
    ],
)
def test_bad_upstreams_say_why(value: str, why: str) -> None:
    with pytest.raises(ValueError) as bad:
        parse_upstreams([value])
    assert str(bad.value) == f"upstream {value!r}: {why}"


class StubForwarder(Forwarder):
    def __init__(self, **kw: object) -> None:
        super().__init__([("127.0.0.1", 53)], **kw)  # type: ignore[arg-type]
        self.exchanges = 0
        self.ttl = 60
        self.rcode = dns.rcode.NOERROR

    async def _exchange(
        self, qname: dns.name.Name, qtype: int, do: bool
    ) -> dns.message.Message | None:
        self.exchanges += 1
        reply = dns.message.make_response(dns.message.make_query(qname, qtype))
        reply.set_rcode(self.rcode)
        if self.rcode == dns.rcode.NOERROR:
            reply.answer.append(dns.rrset.from_text(qname, self.ttl, "IN", "A", "192.0.2.1"))
        else:
            reply.authority.append(
                dns.rrset.from_text("test.", 3600, "IN", "SOA", "ns.test. h.test. 1 2 3 4 10")
            )
        return reply


async def test_cache_respects_ttl_and_case() -> None:
    fwd = StubForwarder()
    name = dns.name.from_text("www.example.test.")
    first = await fwd.resolve(name, 1)
    again = await fwd.resolve(dns.name.from_text("WWW.Example.TEST."), 1)
    assert first is not None and again is not None and fwd.exchanges == 1 and fwd.cache_hits == 1
    assert again.answer[0].ttl <= 60
    fwd.ttl = 0  # a zero TTL is never cached
    await fwd.resolve(dns.name.from_text("zero.example.test."), 1)
    await fwd.resolve(dns.name.from_text("zero.example.test."), 1)
    assert fwd.exchanges == 3


async def test_negative_answers_cached_for_the_soa_minimum_capped() -> None:
    fwd = StubForwarder(max_negative_ttl_s=5)
    fwd.rcode = dns.rcode.NXDOMAIN
    name = dns.name.from_text("nx.example.test.")
    await fwd.resolve(name, 1)
    await fwd.resolve(name, 1)
    assert fwd.exchanges == 1
    key = next(iter(fwd._cache))
    expires, stored, _ = fwd._cache[key]
    assert expires - stored == pytest.approx(5)


async def test_cache_is_bounded() -> None:
    fwd = StubForwarder(cache_entries=3)
    for i in range(10):
        await fwd.resolve(dns.name.from_text(f"n{i}.example.test."), 1)
    assert len(fwd._cache) == 3
