"""Pure: whether a container that ended starts again, and after how long.

The kubelet's rule: `Always` restarts every exit, `OnFailure` only a non-zero
exit, `Never` none; a container killed for failing its liveness or startup
probe counts as failed whatever its exit code. A container that keeps failing waits longer each time
(CrashLoopBackOff): the first restart is immediate, then `base`, `2·base`,
`4·base` … up to `max`. A container that ran for `reset_after` before it
ended starts the count again, so an occasional crash of a long-lived process
is restarted at once.

Init containers follow the pod's policy with one difference: one that
exited 0 is done and never runs again, so `Always` acts as `OnFailure`.
"""

from __future__ import annotations

from dataclasses import dataclass

RESTART_POLICIES = ("Always", "OnFailure", "Never")


@dataclass(frozen=True)
class Backoff:
    """The back-off schedule (the kubelet's: 10 s doubling to 5 min, reset after 10 min)."""

    base_s: float = 10.0
    max_s: float = 300.0
    reset_after_s: float | None = None  # None: twice max_s, as the kubelet does

    @property
    def reset_s(self) -> float:
        return self.reset_after_s if self.reset_after_s is not None else 2 * self.max_s


@dataclass(frozen=True)
class RestartPlan:
    restart: bool
    delay_s: float = 0.0
    streak: int = 0  # restarts in a row without a long enough run, this one included


def init_policy(pod_policy: str) -> str:
    """The restart policy an init container of a pod with `pod_policy` is run under."""
    return "Never" if pod_policy == "Never" else "OnFailure"


def should_restart(policy: str, exit_code: int, *, probe_failed: bool = False) -> bool:
    if policy == "Always":
        return True
    if policy == "OnFailure":
        # A process may well exit 0 on the SIGTERM that a failed probe brought it.
        return exit_code != 0 or probe_failed
    return False


def delay_for(streak: int, backoff: Backoff) -> float:
    """The wait before the restart number `streak` of a row (0 = the first: none)."""
    if streak <= 0:
        return 0.0
    # Cap the exponent: 2**1000 is a float overflow long before it matters.
    return min(backoff.base_s * 2 ** min(streak - 1, 60), backoff.max_s)


def plan_restart(
    policy: str,
    exit_code: int,
    *,
    streak: int,
    ran_for_s: float,
    backoff: Backoff,
    probe_failed: bool = False,
) -> RestartPlan:
    """What to do after a container exited with `exit_code` having run `ran_for_s`.

    `streak` is the value from the previous plan (0 for a container never restarted);
    `probe_failed` says the agent killed it for failing its liveness or startup probe.
    """
    if not should_restart(policy, exit_code, probe_failed=probe_failed):
        return RestartPlan(False, 0.0, streak)
    if ran_for_s >= backoff.reset_s:
        streak = 0
    return RestartPlan(True, delay_for(streak, backoff), streak + 1)
