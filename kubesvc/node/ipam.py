"""Pure: picking a pod IP from the pod CIDR.

The first address after the network address is the gateway (the node
bridge's, in namespace mode; kept free in host mode too, so both modes hand
out the same addresses). Allocation goes round-robin from the last address
handed out, as CNI's host-local IPAM does, so an address just released is
not reused at once while Endpoints may still point at it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Container

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def gateway(cidr: Network) -> str:
    """The network's first usable address: the node bridge's in namespace mode."""
    return str(cidr.network_address + 1)


def _bounds(cidr: Network) -> tuple[int, int]:
    """Offsets of the first and last address pods may get (no network, gateway, broadcast)."""
    last = cidr.num_addresses - (2 if cidr.version == 4 else 1)
    return 2, last


def next_free(cidr: Network, used: Container[str], last: str | None = None) -> str | None:
    """The first free pod address after `last` (wrapping around), or None when the range is full."""
    first, final = _bounds(cidr)
    if final < first:
        return None
    start = first
    if last is not None:
        try:
            offset = int(ipaddress.ip_address(last)) - int(cidr.network_address)
        except ValueError:
            offset = -1
        if first <= offset <= final:
            start = offset + 1 if offset < final else first
    size = final - first + 1
    base = int(cidr.network_address)
    for i in range(size):
        offset = first + (start - first + i) % size
        candidate = str(ipaddress.ip_address(base + offset))
        if candidate not in used:
            return candidate
    return None
