"""The pure range logic: band sizes, flag parsing, and candidate choice (table-driven)."""

from __future__ import annotations

import ipaddress
import random

import pytest

from kubesvc.allocator.ranges import (
    PortRange,
    ServiceCIDR,
    candidate_offsets,
    parse_pod_cidr,
    parse_port_range,
    parse_service_cidr,
    static_band_size,
)


@pytest.mark.parametrize(
    ("cidr", "usable", "static"),
    [
        ("127.96.0.0/12", 2**20 - 2, 256),  # 2**20/16 = 65536, capped at 256
        ("10.0.0.0/16", 65534, 256),  # 65536/16 = 4096 → 256
        ("10.0.0.0/20", 4094, 256),  # 4096/16 = 256
        ("10.0.0.0/22", 1022, 64),  # 1024/16 = 64
        ("10.0.0.0/24", 254, 16),  # 256/16 = 16
        ("10.0.0.0/26", 62, 16),  # 64/16 = 4 → at least 16
        ("10.0.0.0/28", 14, 14),  # 16 → 16, but only 14 usable: all static
        ("10.0.0.0/29", 6, 0),  # fewer than 16 addresses: no static band
        ("10.0.0.0/30", 2, 0),
    ],
)
def test_service_cidr_bands(cidr: str, usable: int, static: int) -> None:
    space = parse_service_cidr(cidr)
    assert space.size == usable
    assert space.static_size == static


@pytest.mark.parametrize(
    ("text", "base", "size", "static"),
    [
        ("30000-32767", 30000, 2768, 86),  # 2768/32 = 86
        ("30000+767", 30000, 768, 24),
        ("20000-29999", 20000, 10000, 128),  # 312 → capped at 128
        ("30000-30099", 30000, 100, 16),  # 3 → at least 16
        ("30000-30009", 30000, 10, 0),  # fewer than 16 ports: no static band
        ("30080", 30080, 1, 0),
    ],
)
def test_port_range_bands(text: str, base: int, size: int, static: int) -> None:
    ports = parse_port_range(text)
    assert (ports.base, ports.size, ports.static_size) == (base, size, static)


@pytest.mark.parametrize(
    ("total", "step", "maximum", "expected"),
    [(15, 16, 256, 0), (16, 16, 256, 16), (4096, 16, 256, 256), (1024, 16, 256, 64)],
)
def test_static_band_size(total: int, step: int, maximum: int, expected: int) -> None:
    assert static_band_size(total, step=step, maximum=maximum) == expected


def test_offsets_skip_network_and_broadcast() -> None:
    space = ServiceCIDR(ipaddress.IPv4Network("127.96.0.0/28"))
    assert space.first == "127.96.0.1" and space.value_at(13) == "127.96.0.14"
    assert space.offset_of("127.96.0.0") is None  # network
    assert space.offset_of("127.96.0.15") is None  # broadcast
    assert space.offset_of("127.96.0.16") is None
    assert space.offset_of("127.96.0.1") == 0 and space.offset_of("127.96.0.14") == 13
    assert space.offset_of("fd00::1") is None and space.offset_of("nonsense") is None
    ports = PortRange(30000, 10)
    assert ports.offset_of(29999) is None and ports.offset_of(30010) is None
    assert ports.offset_of(30009) == 9 and str(ports) == "30000-30009"


@pytest.mark.parametrize(
    ("flag", "text", "message"),
    [
        ("service", "10.0.0.0/33", "--service-cidr '10.0.0.0/33': not a CIDR"),
        ("service", "banana", "--service-cidr 'banana': not a CIDR"),
        ("service", "127.96.0.1/12", "has host bits set; did you mean 127.96.0.0/12?"),
        ("service", "fd00::/108", "IPv6 service ranges are not supported yet"),
        ("service", "10.0.0.0/31", "too small: the range needs at least a /30"),
        ("ports", "30000-", "expected FIRST-LAST"),
        ("ports", "32767-30000", "the last port is below the first"),
        ("ports", "0-100", "ports must be within 1-65535"),
        ("ports", "60000-70000", "ports must be within 1-65535"),
        ("pod", "127.244.0.0/33", "--pod-cidr '127.244.0.0/33': not a CIDR"),
    ],
)
def test_bad_flags_say_why_in_one_line(flag: str, text: str, message: str) -> None:
    parse = {"service": parse_service_cidr, "ports": parse_port_range, "pod": parse_pod_cidr}[flag]
    with pytest.raises(ValueError) as caught:
        parse(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def _order(size: int, static: int, taken: set[int], seed: int = 1, tries: int = 32) -> list[int]:
    return list(candidate_offsets(size, static, taken.__contains__, random.Random(seed), tries))


@pytest.mark.parametrize(
    ("size", "static", "taken"),
    [
        (14, 14, set()),  # all static: one band
        (254, 16, set()),
        (254, 16, set(range(16, 254))),  # upper band full: the lower one serves
        (254, 16, set(range(254)) - {3, 200}),
        (1000, 64, {i for i in range(1000) if i % 7}),
        (6, 0, {0, 1, 2}),
    ],
)
def test_candidates_cover_each_free_offset_once(size: int, static: int, taken: set[int]) -> None:
    order = _order(size, static, taken)
    assert sorted(order) == sorted(set(range(size)) - taken)
    assert len(order) == len(set(order))


def test_candidates_prefer_the_upper_band() -> None:
    order = _order(254, 16, set())
    assert all(o >= 16 for o in order[: 254 - 16])
    assert sorted(order[254 - 16 :]) == list(range(16))


def test_first_choice_is_random_not_sequential() -> None:
    firsts = {_order(254, 16, set(), seed=seed)[0] for seed in range(20)}
    assert len(firsts) > 10


def test_a_full_range_has_no_candidates() -> None:
    assert _order(254, 16, set(range(254))) == []


def test_offsets_taken_while_iterating_are_skipped() -> None:
    taken: set[int] = set()
    seen = []
    for offset in candidate_offsets(30, 0, taken.__contains__, random.Random(3)):
        seen.append(offset)
        taken.update({offset, (offset + 1) % 30})  # a racing writer takes the neighbour too
    assert len(seen) == len(set(seen))
    for i, offset in enumerate(seen):
        assert offset not in {(o + 1) % 30 for o in seen[:i]}


def test_a_nearly_full_range_is_found_quickly() -> None:
    size = 2**20 - 2
    taken = set(range(size)) - {777_777}
    rng = random.Random(5)
    calls = 0

    def is_taken(offset: int) -> bool:
        nonlocal calls
        calls += 1
        return offset in taken

    assert next(candidate_offsets(size, 256, is_taken, rng)) == 777_777
    assert calls <= 32 + size  # random tries, then at most one scan of the band
