"""Choosing a backend for a connection: scheduler, ClientIP affinity, retries, failure hold.

Sans-io: the caller owns the clock and the sockets. For each new connection
it asks `ServiceBalancer.plan()` for a `DialPlan` and then plays it:

    plan = balancer.plan(Request(client_ip, ...), now)
    while (choice := plan.next(now)) is not None:
        backend, timeout_s = choice
        ... connect with timeout_s ...
        on success: plan.connected(backend, now); break
        on failure: plan.failed(backend, now, refused=...)
    (no choice left: the connection fails)

and calls `balancer.released(backend)` when the connection ends, so the
least-connection schedulers see how many each backend holds.

The seed's userspace retry: a failed connect moves on to another backend,
and a backend that failed is kept out of new choices for `failure_hold_s`
(unless every backend is held; then they are all tried anyway).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kubesvc.proxy.schedulers import Backend, Request, RoundRobin, Scheduler

# kube-proxy's userspace dial timeouts: a slow backend gets a longer chance on each retry.
DEFAULT_DIAL_TIMEOUTS_S = (0.25, 0.5, 1.0, 2.0)
DEFAULT_FAILURE_HOLD_S = 2.0
# Affinity entries kept per service port at most (one per client IP); the oldest go first.
MAX_AFFINITY_ENTRIES = 65536

Key = tuple[str, int]


class AffinityTable:
    """Client IP → backend, forgotten `timeout_s` after the client's last new connection."""

    def __init__(self, timeout_s: float, max_entries: int = MAX_AFFINITY_ENTRIES) -> None:
        self.timeout_s = timeout_s
        self.max_entries = max_entries
        # Insertion order is last-use order (remember() moves an entry to the end).
        self._entries: dict[str, tuple[Key, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, client_ip: str, now: float) -> Key | None:
        entry = self._entries.get(client_ip)
        if entry is None:
            return None
        if now - entry[1] >= self.timeout_s:
            del self._entries[client_ip]
            return None
        return entry[0]

    def remember(self, client_ip: str, key: Key, now: float) -> None:
        self._entries.pop(client_ip, None)
        self._entries[client_ip] = (key, now)
        if len(self._entries) > self.max_entries:
            self.sweep(now)
            while len(self._entries) > self.max_entries:
                del self._entries[next(iter(self._entries))]

    def forget_backends_except(self, keep: set[Key]) -> None:
        """Drop entries that point at backends no longer there (the client gets a new choice)."""
        for ip in [ip for ip, (key, _) in self._entries.items() if key not in keep]:
            del self._entries[ip]

    def sweep(self, now: float) -> int:
        """Remove expired entries (oldest first, stopping at the first live one); how many went."""
        removed = 0
        while self._entries:
            ip, (_key, used) = next(iter(self._entries.items()))
            if now - used < self.timeout_s:
                break
            del self._entries[ip]
            removed += 1
        return removed


class ServiceBalancer:
    """The backends of one service port (for one kind of traffic) and how to choose among them."""

    def __init__(
        self,
        scheduler: Scheduler | None = None,
        *,
        affinity_timeout_s: float = 0,
        failure_hold_s: float = DEFAULT_FAILURE_HOLD_S,
        dial_timeouts_s: Sequence[float] = DEFAULT_DIAL_TIMEOUTS_S,
    ) -> None:
        self.scheduler = scheduler or RoundRobin()
        self.failure_hold_s = failure_hold_s
        self.dial_timeouts_s = tuple(dial_timeouts_s) or DEFAULT_DIAL_TIMEOUTS_S
        self.backends: list[Backend] = []
        self._by_key: dict[Key, Backend] = {}
        self._held_until: dict[Key, float] = {}
        self.affinity: AffinityTable | None = (
            AffinityTable(affinity_timeout_s) if affinity_timeout_s > 0 else None
        )

    # ------------------------------------------------------------ configuration

    def set_endpoints(self, addresses: Iterable[Key]) -> bool:
        """Use these backends from now on; True when the list changed.

        Backends that stay keep their connection counts; connections to one
        that goes keep running (the proxy leaves them alone) and release into
        its now-orphaned Backend object.
        """
        keys = list(dict.fromkeys(addresses))
        if keys == [b.key for b in self.backends]:
            return False
        self.backends = [self._by_key.get(k) or Backend(k[0], k[1]) for k in keys]
        self._by_key = {b.key: b for b in self.backends}
        self._held_until = {k: t for k, t in self._held_until.items() if k in self._by_key}
        if self.affinity is not None:
            self.affinity.forget_backends_except(set(self._by_key))
        self.scheduler.reset(self.backends)
        return True

    def set_scheduler(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        scheduler.reset(self.backends)

    def set_affinity_timeout(self, timeout_s: float) -> None:
        if timeout_s <= 0:
            self.affinity = None
        elif self.affinity is None:
            self.affinity = AffinityTable(timeout_s)
        else:
            self.affinity.timeout_s = timeout_s

    # ------------------------------------------------------------------- choices

    def held(self, backend: Backend, now: float) -> bool:
        until = self._held_until.get(backend.key)
        if until is None:
            return False
        if until > now:
            return True
        del self._held_until[backend.key]
        return False

    def plan(self, request: Request, now: float) -> DialPlan:
        return DialPlan(self, request)

    def released(self, backend: Backend) -> None:
        """A connection (or UDP session) to `backend` ended."""
        if backend.active > 0:
            backend.active -= 1

    def sweep(self, now: float) -> None:
        """Periodic housekeeping: expired affinity entries and holds."""
        if self.affinity is not None:
            self.affinity.sweep(now)
        for key in [k for k, until in self._held_until.items() if until <= now]:
            del self._held_until[key]


class DialPlan:
    """The attempts for one new connection: each backend at most once, except after a timeout.

    A refused (or otherwise failed) backend is not tried again by this plan;
    one that timed out may be, with the next longer timeout, once every
    backend has had its turn (a single slow backend still gets its chance).
    """

    __slots__ = ("_balancer", "_failed", "_request", "_timeouts", "attempts", "tried")

    def __init__(self, balancer: ServiceBalancer, request: Request) -> None:
        self._balancer = balancer
        self._request = request
        self.tried: set[Key] = set()
        self._failed: set[Key] = set()  # refused or broken: never again in this plan
        self._timeouts = 0
        self.attempts = 0

    def next(self, now: float) -> tuple[Backend, float] | None:
        """The next backend to try and its connect timeout, or None when there is nothing left."""
        backend = self._choose(now)
        if backend is None:
            return None
        self.attempts += 1
        self.tried.add(backend.key)
        timeouts = self._balancer.dial_timeouts_s
        return backend, timeouts[min(self._timeouts, len(timeouts) - 1)]

    def _choose(self, now: float) -> Backend | None:
        bal = self._balancer
        if not bal.backends:
            return None
        request = self._request
        if self.attempts == 0 and bal.affinity is not None:
            key = bal.affinity.lookup(request.client_ip, now)
            backend = bal._by_key.get(key) if key is not None else None
            if backend is not None and not bal.held(backend, now):
                return backend
        tried = self.tried
        pick = bal.scheduler.pick
        backend = pick(bal.backends, request, lambda b: b.key not in tried and not bal.held(b, now))
        if backend is None:  # every untried backend is held: better to try one than to fail
            backend = pick(bal.backends, request, lambda b: b.key not in tried)
        if backend is None and self._timeouts < len(bal.dial_timeouts_s):
            failed = self._failed
            backend = pick(bal.backends, request, lambda b: b.key not in failed)
        return backend

    def failed(self, backend: Backend, now: float, *, timed_out: bool = False) -> None:
        """The connect to `backend` failed: keep it out of new choices for a while."""
        bal = self._balancer
        if backend.key in bal._by_key:
            bal._held_until[backend.key] = now + bal.failure_hold_s
        if timed_out:
            self._timeouts += 1
            if self._timeouts >= len(bal.dial_timeouts_s):
                self._failed.update(self.tried)  # out of time: no more retries
        else:
            self._failed.add(backend.key)

    def connected(self, backend: Backend, now: float) -> None:
        """The connect succeeded: count the connection, and stick the client to it."""
        bal = self._balancer
        backend.active += 1
        bal._held_until.pop(backend.key, None)
        if bal.affinity is not None and backend.key in bal._by_key:
            bal.affinity.remember(self._request.client_ip, backend.key, now)
