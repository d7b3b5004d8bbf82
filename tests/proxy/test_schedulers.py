"""Each scheduler's choice on a table of cases: backends (weight, active), a request, the
backends that may not be used, and the indexes picked on successive picks. No sockets."""

from __future__ import annotations

import random

import pytest

from kubesvc.proxy.schedulers import (
    SCHEDULERS,
    Backend,
    Random,
    Request,
    make_scheduler,
)

# (case, scheduler, backends as (weight, active), client IP, service IP, unusable, picks)
CASES: list[tuple[str, str, list[tuple[int, int]], str, str, set[int], list[int | None]]] = [
    ("rr cycles in order", "rr", [(1, 0)] * 3, "127.0.0.1", "", set(), [0, 1, 2, 0, 1]),
    ("rr skips an unusable backend", "rr", [(1, 0)] * 3, "127.0.0.1", "", {1}, [0, 2, 0, 2]),
    ("rr skips weight 0", "rr", [(1, 0), (0, 0), (1, 0)], "127.0.0.1", "", set(), [0, 2, 0]),
    ("rr with nothing usable", "rr", [(1, 0)] * 2, "127.0.0.1", "", {0, 1}, [None]),
    ("lc takes the fewest active", "lc", [(1, 3), (1, 1), (1, 2)], "c", "", set(), [1]),
    ("lc tie goes to the first", "lc", [(1, 1), (1, 0), (1, 0)], "c", "", set(), [1]),
    ("lc ignores weights", "lc", [(5, 2), (1, 1)], "c", "", set(), [1]),
    ("lc skips unusable", "lc", [(1, 0), (1, 1)], "c", "", {0}, [1]),
    # sed: (active + 1) / weight → 2/1 against 4/3
    ("sed weighs by weight", "sed", [(1, 1), (3, 3)], "c", "", set(), [1]),
    ("sed tie goes to the first", "sed", [(2, 1), (1, 0)], "c", "", set(), [0]),
    ("sed prefers heavier idle", "sed", [(1, 0), (4, 0)], "c", "", set(), [1]),
    ("nq takes an idle backend first", "nq", [(1, 2), (5, 5), (1, 0)], "c", "", set(), [2]),
    ("nq without idle falls back to sed", "nq", [(1, 2), (3, 3)], "c", "", set(), [1]),
    ("nq skips an unusable idle one", "nq", [(1, 0), (1, 1), (2, 1)], "c", "", {0}, [2]),
    # dh: bucket = ((ip * 2654435761) >> 24) & 255; 127.96.1.10 → 215; table = backends in turn.
    (
        "dh: one service, one backend",
        "dh",
        [(1, 0)] * 3,
        "127.0.0.1",
        "127.96.1.10",
        set(),
        [2, 2, 2],
    ),
    ("dh: another service", "dh", [(1, 0)] * 3, "127.0.0.9", "127.96.1.11", set(), [0]),
    ("dh: falls back to the next bucket", "dh", [(1, 0)] * 3, "c", "127.96.1.10", {2}, [0]),
    # sh: bucket = ((ip * 0x61C88647) mod 2^32) >> 24; 127.0.0.1 → 154, 127.0.0.2 → 252.
    ("sh: a client sticks", "sh", [(1, 0)] * 3, "127.0.0.1", "127.96.1.10", set(), [1, 1, 1]),
    ("sh: another client", "sh", [(1, 0)] * 3, "127.0.0.2", "127.96.1.10", set(), [0]),
    ("sh: falls back to the next bucket", "sh", [(1, 0)] * 3, "127.0.0.1", "", {1}, [2]),
    (
        "sh: weight 2 takes two buckets in a row",
        "sh",
        [(2, 0), (1, 0)],
        "127.0.0.1",
        "",
        set(),
        [0],
    ),
    ("sh: IPv6 clients fold to 32 bits", "sh", [(1, 0)] * 3, "::1", "", set(), [1]),
    ("dh with no backends", "dh", [], "c", "127.96.1.10", set(), [None]),
]


def _backends(spec: list[tuple[int, int]]) -> list[Backend]:
    return [
        Backend(f"127.244.0.{i + 1}", 8080, weight, active)
        for i, (weight, active) in enumerate(spec)
    ]


@pytest.mark.parametrize(
    ("scheduler", "spec", "client", "service_ip", "unusable", "picks"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_scheduler_choices(
    scheduler: str,
    spec: list[tuple[int, int]],
    client: str,
    service_ip: str,
    unusable: set[int],
    picks: list[int | None],
) -> None:
    backends = _backends(spec)
    sched = make_scheduler(scheduler)
    sched.reset(backends)
    blocked = {backends[i].key for i in unusable}
    request = Request(client, 40000, service_ip, 80)
    got = []
    for _ in picks:
        chosen = sched.pick(backends, request, lambda b: b.key not in blocked)
        got.append(None if chosen is None else backends.index(chosen))
    assert got == picks


def test_random_picks_only_usable_backends_and_all_of_them() -> None:
    backends = _backends([(1, 0)] * 4)
    sched = Random(random.Random(7))
    seen = {sched.pick(backends, Request("c"), lambda b: b is not backends[3]) for _ in range(200)}
    assert seen == set(backends[:3])
    assert sched.pick(backends, Request("c"), lambda b: False) is None


def test_rr_keeps_its_place_when_the_list_changes() -> None:
    backends = _backends([(1, 0)] * 3)
    sched = make_scheduler("rr")
    sched.reset(backends)
    assert sched.pick(backends, Request("c")) is backends[0]
    assert sched.pick(backends, Request("c")) is backends[1]
    smaller = backends[:2]
    sched.reset(smaller)
    # Position 2 modulo 2 = 0: the next pick starts over instead of running off the end.
    assert sched.pick(smaller, Request("c")) is smaller[0]


def test_hash_table_follows_a_replaced_list() -> None:
    backends = _backends([(1, 0)] * 3)
    sched = make_scheduler("sh")
    first = sched.pick(backends, Request("127.0.0.1"))
    again = _backends([(1, 0)] * 2)
    assert first is backends[1]
    assert sched.pick(again, Request("127.0.0.1")) is again[0]  # bucket 154, two backends → 0


def test_every_ipvs_scheduler_is_offered_and_unknown_names_are_refused() -> None:
    assert set(SCHEDULERS) == {"rr", "random", "lc", "sed", "nq", "dh", "sh"}
    with pytest.raises(ValueError, match="unknown scheduler 'wlc'"):
        make_scheduler("wlc")
