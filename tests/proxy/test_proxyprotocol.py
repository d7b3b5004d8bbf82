"""PROXY protocol headers, byte for byte (HAProxy's spec examples), and the parser."""

from __future__ import annotations

import pytest

from kubesvc.proxy.proxyprotocol import ProxyHeader, ProxyProtocolError, encode, parse

V4 = ProxyHeader("127.0.0.1", 40000, "127.96.1.10", 80)
V6 = ProxyHeader("::1", 40000, "fd00::10", 443)


@pytest.mark.parametrize(
    ("version", "header", "wire"),
    [
        (1, V4, b"PROXY TCP4 127.0.0.1 127.96.1.10 40000 80\r\n"),
        (1, V6, b"PROXY TCP6 ::1 fd00::10 40000 443\r\n"),
        (1, ProxyHeader("127.0.0.1", 1, "::1", 2), b"PROXY UNKNOWN\r\n"),  # mixed families
        (
            2,
            V4,
            b"\r\n\r\n\x00\r\nQUIT\n"  # signature
            b"\x21"  # version 2, PROXY
            b"\x11"  # AF_INET, STREAM
            b"\x00\x0c"  # 12 bytes of addresses
            b"\x7f\x00\x00\x01\x7f\x60\x01\x0a"
            b"\x9c\x40\x00\x50",
        ),
        (
            2,
            V6,
            b"\r\n\r\n\x00\r\nQUIT\n\x21\x21\x00\x24"
            + b"\x00" * 15
            + b"\x01"
            + b"\xfd"
            + b"\x00" * 14
            + b"\x10"
            + b"\x9c\x40\x01\xbb",
        ),
        (2, ProxyHeader("", 0, "", 0, local=True), b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"),
    ],
    ids=["v1-tcp4", "v1-tcp6", "v1-unknown", "v2-tcp4", "v2-tcp6", "v2-local"],
)
def test_encode_and_parse_back(version: int, header: ProxyHeader, wire: bytes) -> None:
    assert encode(version, header) == wire
    parsed, used = parse(wire + b"GET / HTTP/1.1\r\n")  # type: ignore[misc]
    assert used == len(wire)
    if header.local or wire == b"PROXY UNKNOWN\r\n":
        assert parsed.local
    else:
        assert parsed == header


def test_v1_line_is_at_most_107_bytes() -> None:
    longest = ProxyHeader(
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        65535,
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        65535,
    )
    assert len(encode(1, longest)) <= 107


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"PRO",
        b"PROXY TCP4 127.0.0.1",
        b"\r\n\r\n\x00",
        b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x7f",
    ],
)
def test_incomplete_headers_wait_for_more(wire: bytes) -> None:
    assert parse(wire) is None


@pytest.mark.parametrize(
    "wire",
    [
        b"GET / HTTP/1.1\r\n",
        b"PROXY TCP4 127.0.0.1 ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n",
        b"PROXY " + b"x" * 120,
        b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x00",
    ],
    ids=["not-proxy", "family-mismatch", "port-range", "too-long", "v3"],
)
def test_malformed_headers_are_refused(wire: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        parse(wire)
