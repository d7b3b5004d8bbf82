"""Restart decisions and CrashLoopBackOff timing: pure tables."""

from __future__ import annotations

import pytest

from kubesvc.node.restart import Backoff, delay_for, plan_restart, should_restart


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [
        ("Always", 0, True),
        ("Always", 1, True),
        ("OnFailure", 0, False),
        ("OnFailure", 2, True),
        ("OnFailure", 137, True),
        ("Never", 0, False),
        ("Never", 1, False),
    ],
)
def test_should_restart(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


BACKOFF = Backoff(base_s=10, max_s=300)


@pytest.mark.parametrize(
    ("streak", "delay"),
    [(0, 0), (1, 10), (2, 20), (3, 40), (4, 80), (5, 160), (6, 300), (100, 300), (10**6, 300)],
)
def test_delays_double_up_to_the_cap(streak: int, delay: float) -> None:
    assert delay_for(streak, BACKOFF) == delay


def test_a_crash_loop_then_a_long_run_resets_the_count() -> None:
    streak, delays = 0, []
    for ran_for in (0.1, 0.1, 0.1, 0.1, 700.0, 0.1):
        plan = plan_restart("Always", 1, streak=streak, ran_for_s=ran_for, backoff=BACKOFF)
        assert plan.restart
        delays.append(plan.delay_s)
        streak = plan.streak
    # The first restart is immediate; ten minutes of running (2 × max) start the count again.
    assert delays == [0, 10, 20, 40, 0, 10]


def test_no_restart_keeps_the_streak() -> None:
    plan = plan_restart("Never", 1, streak=3, ran_for_s=1, backoff=BACKOFF)
    assert (plan.restart, plan.delay_s, plan.streak) == (False, 0.0, 3)


def test_reset_after_can_be_set() -> None:
    quick = Backoff(base_s=1, max_s=4, reset_after_s=2)
    assert plan_restart("OnFailure", 1, streak=5, ran_for_s=2.5, backoff=quick).delay_s == 0
    assert plan_restart("OnFailure", 1, streak=5, ran_for_s=1.5, backoff=quick).delay_s == 4
