"""Playbooks for the choice of a backend: events in (connect results, time), choices out.

No sockets: the tests play the part of the userspace proxy's connect loop.
"""

from __future__ import annotations

from kubesvc.proxy.balancer import AffinityTable, DialPlan, ServiceBalancer
from kubesvc.proxy.schedulers import Backend, Request, make_scheduler

A, B, C = ("127.244.0.1", 80), ("127.244.0.2", 80), ("127.244.0.3", 80)


def balancer(
    *keys: tuple[str, int], affinity_s: float = 0, scheduler: str = "rr"
) -> ServiceBalancer:
    bal = ServiceBalancer(
        make_scheduler(scheduler), affinity_timeout_s=affinity_s, failure_hold_s=2.0
    )
    bal.set_endpoints(keys)
    return bal


def connect(
    bal: ServiceBalancer, client: str, now: float, dead: set[tuple[str, int]] = frozenset()
) -> tuple[str, int] | None:  # type: ignore[assignment]
    """Play one connection: refused by `dead` backends, accepted by the others."""
    plan = bal.plan(Request(client), now)
    while (choice := plan.next(now)) is not None:
        backend, _timeout = choice
        if backend.key in dead:
            plan.failed(backend, now)
            continue
        plan.connected(backend, now)
        return backend.key
    return None


def test_round_robin_without_affinity_spreads_every_connection() -> None:
    bal = balancer(A, B, C)
    assert [connect(bal, "127.0.0.1", 0) for _ in range(6)] == [A, B, C, A, B, C]


def test_client_ip_affinity_sticks_then_moves_after_the_timeout() -> None:
    bal = balancer(A, B, C, affinity_s=10)
    assert [connect(bal, "127.0.0.1", t) for t in (0, 1, 2, 3)] == [A, A, A, A]
    # Another client gets the scheduler's next choice, and sticks to it.
    assert [connect(bal, "127.0.0.2", t) for t in (4, 5)] == [B, B]
    # Ten seconds after its last connection, the first client is scheduled again.
    assert connect(bal, "127.0.0.1", 13) == C
    assert connect(bal, "127.0.0.1", 14) == C


def test_affinity_to_a_removed_backend_is_forgotten() -> None:
    bal = balancer(A, B, affinity_s=100)
    assert connect(bal, "127.0.0.1", 0) == A
    bal.set_endpoints([B, C])
    assert connect(bal, "127.0.0.1", 1) in (B, C)
    assert bal.affinity is not None and len(bal.affinity) == 1


def test_a_refused_backend_is_skipped_and_kept_out_for_a_while() -> None:
    bal = balancer(A, B, C)
    dead = {A}
    # A refuses: the same connection moves on to B; nothing fails.
    plan = bal.plan(Request("127.0.0.1"), 0)
    first = plan.next(0)
    assert first is not None and first[0].key == A
    plan.failed(first[0], 0)
    second = plan.next(0)
    assert second is not None and second[0].key == B
    plan.connected(second[0], 0)
    # During the hold, A is not chosen at all.
    assert [connect(bal, "c", 1, dead) for _ in range(4)] == [C, B, C, B]
    # After the hold A is tried again (and skipped again, still without a failed connection).
    assert [connect(bal, "c", 3, dead) for _ in range(3)] == [C, B, C]


def test_when_every_backend_is_held_they_are_tried_anyway() -> None:
    bal = balancer(A, B)
    assert connect(bal, "c", 0, {A, B}) is None  # both refuse: the connection fails
    assert connect(bal, "c", 0.5) in (A, B)  # held, but better tried than failing


def test_a_slow_backend_gets_longer_timeouts_then_the_plan_ends() -> None:
    bal = balancer(A)
    plan = bal.plan(Request("c"), 0)
    timeouts = []
    while (choice := plan.next(0)) is not None:
        timeouts.append(choice[1])
        plan.failed(choice[0], 0, timed_out=True)
    assert timeouts == [0.25, 0.5, 1.0, 2.0]


def test_each_backend_is_tried_once_when_all_refuse() -> None:
    bal = balancer(A, B, C)
    plan: DialPlan = bal.plan(Request("c"), 0)
    tried = []
    while (choice := plan.next(0)) is not None:
        tried.append(choice[0].key)
        plan.failed(choice[0], 0)
    assert tried == [A, B, C]


def test_no_backends_means_no_choice() -> None:
    assert balancer().plan(Request("c"), 0).next(0) is None


def test_connection_counts_feed_least_connection() -> None:
    bal = balancer(A, B, scheduler="lc")
    plan = bal.plan(Request("c"), 0)
    choice = plan.next(0)
    assert choice is not None
    plan.connected(choice[0], 0)
    held: Backend = choice[0]
    assert connect(bal, "c", 0) == B  # A holds one connection
    bal.released(held)
    bal.set_endpoints([A, B])  # unchanged list: counts stay
    assert [b.active for b in bal.backends] == [0, 1]
    assert connect(bal, "c", 0) == A


def test_affinity_table_expires_oldest_first_and_stays_bounded() -> None:
    table = AffinityTable(timeout_s=10, max_entries=3)
    for i, ip in enumerate(["a", "b", "c", "d"]):
        table.remember(ip, A, float(i))
    assert len(table) == 3 and table.lookup("a", 4) is None  # the oldest went
    assert table.lookup("b", 11.0) is None  # 10 s after its use: gone
    assert table.lookup("d", 12.4) == A
    assert table.sweep(12.5) == 1  # c (used at 2) expired; d (used at 3) is still live
    assert len(table) == 1
