"""PROXY protocol v1 and v2 headers (HAProxy's spec), to tell a backend who the client was.

The proxy sends one header first on each backend connection of a Service
annotated `proxy.kubesvc.io/proxy-protocol: v1` or `v2` (TCP ports only).
A backend must be configured to expect it, never sniff for it, and accept it
only from trusted sources. `parse` is here for such backends and for tests.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX_LENGTH = 107  # the spec's bound, CRLF included
_V2_HEADER = struct.Struct("!12sBBH")
_TRANSPORT = {"TCP": 0x1, "UDP": 0x2}


class ProxyProtocolError(ValueError):
    """A malformed PROXY protocol header."""


@dataclass(frozen=True)
class ProxyHeader:
    """Who connected to whom: source is the client, destination the service address."""

    source_ip: str
    source_port: int
    dest_ip: str
    dest_port: int
    protocol: str = "TCP"
    local: bool = False  # v2 LOCAL / v1 UNKNOWN: no addresses, the connection is the proxy's own


def _family(ip: str) -> int:
    return ipaddress.ip_address(ip).version


def encode_v1(header: ProxyHeader) -> bytes:
    """`PROXY TCP4 src dst sport dport\\r\\n`; UNKNOWN when the families differ or it is not TCP."""
    if (
        header.local
        or header.protocol != "TCP"
        or _family(header.source_ip) != _family(header.dest_ip)
    ):
        return b"PROXY UNKNOWN\r\n"
    proto = "TCP4" if _family(header.source_ip) == 4 else "TCP6"
    line = (
        f"PROXY {proto} {header.source_ip} {header.dest_ip} "
        f"{header.source_port} {header.dest_port}\r\n"
    ).encode("ascii")
    assert len(line) <= V1_MAX_LENGTH
    return line


def encode_v2(header: ProxyHeader) -> bytes:
    """The binary header: signature, version 2 + PROXY (or LOCAL), family/transport, addresses."""
    if header.local or _family(header.source_ip) != _family(header.dest_ip):
        return _V2_HEADER.pack(V2_SIGNATURE, 0x20, 0x00, 0)  # LOCAL, AF_UNSPEC
    transport = _TRANSPORT.get(header.protocol, 0x1)
    src = ipaddress.ip_address(header.source_ip)
    dst = ipaddress.ip_address(header.dest_ip)
    family = 0x10 if src.version == 4 else 0x20
    body = src.packed + dst.packed + struct.pack("!HH", header.source_port, header.dest_port)
    return _V2_HEADER.pack(V2_SIGNATURE, 0x21, family | transport, len(body)) + body


def encode(version: int, header: ProxyHeader) -> bytes:
    if version == 1:
        return encode_v1(header)
    if version == 2:
        return encode_v2(header)
    raise ValueError(f"PROXY protocol version {version} does not exist")


def parse(data: bytes) -> tuple[ProxyHeader, int] | None:
    """(header, bytes it took) from the start of `data`; None while incomplete.

    Raises ProxyProtocolError when `data` cannot start a PROXY header.
    """
    if data[:1] == b"\r":
        return _parse_v2(data)
    if data[:1] == b"P":
        return _parse_v1(data)
    if data:
        raise ProxyProtocolError("no PROXY protocol header")
    return None


def _parse_v1(data: bytes) -> tuple[ProxyHeader, int] | None:
    n = min(len(data), 6)
    if data[:n] != b"PROXY "[:n]:
        raise ProxyProtocolError("no PROXY protocol header")
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyProtocolError("PROXY v1 line longer than 107 bytes")
        return None
    parts = data[:end].decode("ascii", "replace").split(" ")
    if parts[:2] == ["PROXY", "UNKNOWN"]:
        return ProxyHeader("", 0, "", 0, local=True), end + 2
    if len(parts) != 6 or parts[0] != "PROXY" or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyProtocolError(f"malformed PROXY v1 line {data[:end]!r}")
    try:
        src, dst = ipaddress.ip_address(parts[2]), ipaddress.ip_address(parts[3])
        sport, dport = int(parts[4]), int(parts[5])
    except ValueError as err:
        raise ProxyProtocolError(f"malformed PROXY v1 line: {err}") from None
    if src.version != dst.version or src.version != (4 if parts[1] == "TCP4" else 6):
        raise ProxyProtocolError("PROXY v1 addresses do not match the family")
    if not (0 <= sport < 65536 and 0 <= dport < 65536):
        raise ProxyProtocolError("PROXY v1 port out of range")
    return ProxyHeader(str(src), sport, str(dst), dport), end + 2


def _parse_v2(data: bytes) -> tuple[ProxyHeader, int] | None:
    if not V2_SIGNATURE.startswith(data[:12]):
        raise ProxyProtocolError("no PROXY protocol header")
    if len(data) < _V2_HEADER.size:
        return None
    _sig, ver_cmd, fam, length = _V2_HEADER.unpack_from(data)
    if ver_cmd >> 4 != 2 or ver_cmd & 0xF not in (0, 1):
        raise ProxyProtocolError(f"PROXY v2 version/command byte {ver_cmd:#x} is not supported")
    total = _V2_HEADER.size + length
    if len(data) < total:
        return None
    body = data[_V2_HEADER.size : total]
    if ver_cmd & 0xF == 0 or fam >> 4 == 0:
        return ProxyHeader("", 0, "", 0, local=True), total
    protocol = {1: "TCP", 2: "UDP"}.get(fam & 0xF)
    size = {1: 4, 2: 16}.get(fam >> 4)
    if protocol is None or size is None or len(body) < 2 * size + 4:
        raise ProxyProtocolError(f"PROXY v2 family {fam:#x} is not supported or too short")
    src = ipaddress.ip_address(body[:size])
    dst = ipaddress.ip_address(body[size : 2 * size])
    sport, dport = struct.unpack_from("!HH", body, 2 * size)
    # Anything after the addresses is TLVs, which this parser skips.
    return ProxyHeader(str(src), sport, str(dst), dport, protocol), total
