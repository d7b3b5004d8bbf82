"""The allocation spaces (ClusterIP range, node-port range), their bands, and candidate choice.

Pure: no I/O. Both spaces are seen as offsets ``0 .. size-1`` so one band rule
and one selection routine serve them:

- ClusterIPs: offset 0 is the first address after the network address; the
  broadcast address is past the end. Neither is ever handed out.
- Node ports: offset 0 is the first port of the range.

KEP-3070 splits a space into a static band at the bottom (for values users
choose) and a dynamic band above it. Dynamic allocation tries the upper band
first and falls back to the lower one, so a user who picks a value from the
static band rarely collides with an automatic choice.
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_SERVICE_CIDR = "127.96.0.0/12"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
DEFAULT_POD_CIDR = "127.244.0.0/16"

# Random picks per band before the scan. With a band three quarters full, 32
# picks miss a free value with probability 0.75**32 ≈ 1e-4, so the scan (linear
# in the number of used values) is almost only paid when the band is nearly full.
RANDOM_TRIES = 32

# Smallest service range: a /30 has two usable addresses, one for `kubernetes`.
MAX_SERVICE_PREFIX = 30


def static_band_size(total: int, *, step: int, minimum: int = 16, maximum: int) -> int:
    """KEP-3070's static band: min(max(minimum, total/step), maximum), none below `minimum`.

    `total` is the size of the whole range (for IPs, the CIDR's size including
    the network and broadcast addresses, as Kubernetes computes it). A range
    smaller than `minimum` has no static band at all.
    """
    if total < minimum:
        return 0
    return min(max(minimum, total // step), maximum)


@dataclass(frozen=True)
class ServiceCIDR:
    """The ClusterIP range (`--service-cidr`): IPv4, usable addresses only."""

    network: ipaddress.IPv4Network

    @property
    def size(self) -> int:
        """How many addresses can be handed out: all but the network and broadcast ones."""
        return self.network.num_addresses - 2

    @property
    def static_size(self) -> int:
        # Kubernetes: min(max(16, cidrSize/16), 256), cidrSize counting every address.
        return min(static_band_size(self.network.num_addresses, step=16, maximum=256), self.size)

    def offset_of(self, value: str) -> int | None:
        """The offset of an address, or None if it is not a usable address of the range."""
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            return None
        if ip.version != 4:
            return None
        offset = int(ip) - int(self.network.network_address) - 1
        return offset if 0 <= offset < self.size else None

    def value_at(self, offset: int) -> str:
        return str(self.network.network_address + 1 + offset)

    @property
    def first(self) -> str:
        """The first usable address: the `kubernetes` Service's."""
        return self.value_at(0)

    def __str__(self) -> str:
        return str(self.network)


@dataclass(frozen=True)
class PortRange:
    """The node-port range (`--service-node-port-range`): `base` .. `base + size - 1`."""

    base: int
    size: int

    @property
    def last(self) -> int:
        return self.base + self.size - 1

    @property
    def static_size(self) -> int:
        # Kubernetes: min(max(16, size/32), 128).
        return min(static_band_size(self.size, step=32, maximum=128), self.size)

    def offset_of(self, value: int) -> int | None:
        """The offset of a port, or None if the port is outside the range."""
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        offset = value - self.base
        return offset if 0 <= offset < self.size else None

    def value_at(self, offset: int) -> int:
        return self.base + offset

    def __str__(self) -> str:
        return f"{self.base}-{self.last}"


# ------------------------------------------------------------------- parsing


def parse_service_cidr(text: str) -> ServiceCIDR:
    """A `--service-cidr` value; ValueError with a one-line reason if it is unusable."""
    network = _parse_network(text, "--service-cidr")
    if network.version != 4:
        raise ValueError(
            f"--service-cidr {text}: IPv6 service ranges are not supported yet (give an IPv4 CIDR)"
        )
    if network.prefixlen > MAX_SERVICE_PREFIX:
        raise ValueError(
            f"--service-cidr {text}: too small: the range needs at least a /{MAX_SERVICE_PREFIX} "
            "(its network and broadcast addresses are never handed out)"
        )
    return ServiceCIDR(network)


def parse_pod_cidr(text: str) -> Network:
    """A `--pod-cidr` value (IPv4 or IPv6); ValueError with a one-line reason."""
    return _parse_network(text, "--pod-cidr")


def _parse_network(text: str, flag: str) -> Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as err:
        try:
            loose = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{flag} {text!r}: not a CIDR ({err})") from None
        raise ValueError(f"{flag} {text}: has host bits set; did you mean {loose}?") from None


_PORT_RANGE = re.compile(r"^\s*(\d+)\s*(?:([-+])\s*(\d+)\s*)?$")


def parse_port_range(text: str) -> PortRange:
    """A `--service-node-port-range` value: `30000-32767`, `30000+767` or one port."""
    match = _PORT_RANGE.match(text)
    if match is None:
        raise ValueError(
            f"--service-node-port-range {text!r}: expected FIRST-LAST, such as 30000-32767"
        )
    base = int(match.group(1))
    if match.group(2) is None:
        last = base
    elif match.group(2) == "+":
        last = base + int(match.group(3))
    else:
        last = int(match.group(3))
    if not 1 <= base <= 65535 or not 1 <= last <= 65535:
        raise ValueError(f"--service-node-port-range {text}: ports must be within 1-65535")
    if last < base:
        raise ValueError(f"--service-node-port-range {text}: the last port is below the first")
    return PortRange(base, last - base + 1)


# ----------------------------------------------------------------- selection


def candidate_offsets(
    size: int,
    static_size: int,
    taken: Callable[[int], bool],
    rng: random.Random,
    tries: int = RANDOM_TRIES,
) -> Iterator[int]:
    """Offsets worth trying for a dynamic allocation, best first; each at most once.

    The upper (dynamic) band comes first, then the lower (static) band; a range
    with no upper band has only the lower one. Within a band: up to `tries`
    random picks, then a scan from a random start that wraps around. `taken` is
    consulted lazily, so offsets the caller marks as taken while iterating (a
    lost race) are skipped from then on. The scan is linear in the band's size
    only when the band is nearly full; it stops at the first free offset the
    caller accepts.
    """
    static_size = max(0, min(static_size, size))
    bands = [(static_size, size), (0, static_size)]
    for low, high in bands:
        width = high - low
        if width <= 0:
            continue
        picked: set[int] = set()
        for _ in range(min(tries, width)):
            offset = rng.randrange(low, high)
            if offset in picked or taken(offset):
                continue
            picked.add(offset)
            yield offset
        start = rng.randrange(width)
        for step in range(width):
            offset = low + (start + step) % width
            if offset in picked or taken(offset):
                continue
            yield offset
