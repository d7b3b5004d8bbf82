"""Schedulers: which backend a new connection goes to. Pure, no sockets, no clock.

The names and rules are IPVS's (the schedulers kube-proxy's IPVS mode
offers), so a Service behaves alike in userspace and IPVS mode:

- rr: round-robin over the backends, in the snapshot's order.
- random: uniformly at random.
- lc: least connections (fewest active; ties go to the first).
- sed: shortest expected delay, (active + 1) / weight.
- nq: never queue: an idle backend if there is one, else sed.
- dh: destination hashing: the service address picks a bucket of a 256-entry
  table filled with the backends in turn.
- sh: source hashing: the client address picks the bucket.

Departure from IPVS: dh and sh fall back to the next bucket when the hashed
backend cannot be used (IPVS only does so for sh with the sh-fallback flag),
because the userspace proxy must try the next backend when a connect fails.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

TABLE_BITS = 8
TABLE_SIZE = 1 << TABLE_BITS


@dataclass(slots=True, eq=False)
class Backend:
    """A backend as schedulers see it: address, weight and the connections it holds now."""

    ip: str
    port: int
    weight: int = 1
    active: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return (self.ip, self.port)

    def __repr__(self) -> str:
        return f"Backend({self.ip}:{self.port}, active={self.active})"


@dataclass(frozen=True, slots=True)
class Request:
    """What a scheduler may look at about a new connection."""

    client_ip: str
    client_port: int = 0
    service_ip: str = ""
    service_port: int = 0


Usable = Callable[[Backend], bool]


def _always(_b: Backend) -> bool:
    return True


class Scheduler:
    """Picks a backend among those `usable` says may be used; None when there is none."""

    name = ""

    def reset(self, backends: Sequence[Backend]) -> None:
        """The backend list changed (tables are rebuilt here, not on every pick)."""

    def pick(
        self, backends: Sequence[Backend], request: Request, usable: Usable = _always
    ) -> Backend | None:
        raise NotImplementedError


class RoundRobin(Scheduler):
    name = "rr"

    def __init__(self) -> None:
        self._next = 0

    def reset(self, backends: Sequence[Backend]) -> None:
        # Keep the position (modulo the new size) so a change does not send a burst to the first.
        self._next = self._next % len(backends) if backends else 0

    def pick(
        self, backends: Sequence[Backend], request: Request, usable: Usable = _always
    ) -> Backend | None:
        n = len(backends)
        for i in range(n):
            index = (self._next + i) % n
            backend = backends[index]
            if backend.weight > 0 and usable(backend):
                self._next = (index + 1) % n
                return backend
        return None


class Random(Scheduler):
    name = "random"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(
        self, backends: Sequence[Backend], request: Request, usable: Usable = _always
    ) -> Backend | None:
        choices = [b for b in backends if b.weight > 0 and usable(b)]
        return self._rng.choice(choices) if choices else None


class LeastConnections(Scheduler):
    name = "lc"

    def pick(
        self, backends: Sequence[Backend], request: Request, usable: Usable = _always
    ) -> Backend | None:
        best: Backend | None = None
        for backend in backends:
            if (
                backend.weight > 0
                and usable(backend)
                and (best is None or backend.active < best.active)
            ):
                best = backend
        return best


def _sed_better(a: Backend, b: Backend) -> bool:
    """(a.active + 1) / a.weight < (b.active + 1) / b.weight, without division."""
    return (a.active + 1) * b.weight < (b.active + 1) * a.weight


class ShortestExpectedDelay(Scheduler):
    name = "sed"

    def pick(
        self, backends: Sequence[Backend], request: Request, usable: Usable = _always
    ) -> Backend | None:
        best: Backend | None = None
        for backend in backends:
            if (
                backend.weight > 0
                and usable(backend)
                and (best is None or _sed_better(backend, best))
            ):
                best = backend
        return best


class NeverQueue(ShortestExpectedDelay):
    name = "nq"

    def pick(
        self, backends: Sequence[Backend], request: Request, usable: Usable = _always
    ) -> Backend | None:
        for backend in backends:
            if backend.active == 0 and backend.weight > 0 and usable(backend):
                return backend
        return super().pick(backends, request, usable)


def _fold(ip: str) -> int:
    """A 32-bit value of an address (IPv6: the XOR of its four words, as IPVS folds it)."""
    try:
        value = int(ipaddress.ip_address(ip))
    except ValueError:
        return 0
    folded = 0
    while value:
        folded ^= value & 0xFFFFFFFF
        value >>= 32
    return folded


class _Hashing(Scheduler):
    """A 256-bucket table filled with the backends in turn (by weight), as IPVS dh and sh build it."""

    def __init__(self) -> None:
        self._table: list[Backend] = []
        self._built_for: Sequence[Backend] | None = None

    def reset(self, backends: Sequence[Backend]) -> None:
        self._build(backends)

    def _build(self, backends: Sequence[Backend]) -> None:
        self._built_for = backends
        cycle = [b for b in backends for _ in range(self._repeat(b))]
        self._table = [cycle[i % len(cycle)] for i in range(TABLE_SIZE)] if cycle else []

    def _repeat(self, backend: Backend) -> int:
        return 1

    def _bucket(self, request: Request) -> int:
        raise NotImplementedError

    def pick(
        self, backends: Sequence[Backend], request: Request, usable: Usable = _always
    ) -> Backend | None:
        if backends is not self._built_for:  # callers replace the list when it changes
            self._build(backends)
        if not self._table:
            return None
        start = self._bucket(request)
        for offset in range(TABLE_SIZE):
            backend = self._table[(start + offset) % TABLE_SIZE]
            if backend.weight > 0 and usable(backend):
                return backend
        return None


class DestinationHashing(_Hashing):
    name = "dh"

    def _bucket(self, request: Request) -> int:
        # ip_vs_dh_hashkey: Knuth's multiplicative hash of the destination address.
        return ((_fold(request.service_ip) * 2654435761) >> (32 - TABLE_BITS)) & (TABLE_SIZE - 1)


class SourceHashing(_Hashing):
    name = "sh"

    def _repeat(self, backend: Backend) -> int:
        return max(backend.weight, 1)  # sh gives a backend `weight` consecutive buckets

    def _bucket(self, request: Request) -> int:
        # ip_vs_sh_hashkey with hash_32 (golden ratio), port not included (IPVS's default).
        return ((_fold(request.client_ip) * 0x61C88647) & 0xFFFFFFFF) >> (32 - TABLE_BITS)


SCHEDULERS: dict[str, Callable[[], Scheduler]] = {
    "rr": RoundRobin,
    "random": Random,
    "lc": LeastConnections,
    "sed": ShortestExpectedDelay,
    "nq": NeverQueue,
    "dh": DestinationHashing,
    "sh": SourceHashing,
}


def make_scheduler(name: str) -> Scheduler:
    """A new scheduler by IPVS name; ValueError for unknown names."""
    try:
        return SCHEDULERS[name]()
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r}; one of {', '.join(SCHEDULERS)}") from None
