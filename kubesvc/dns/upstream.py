"""Forwarding names outside the cluster to upstream resolvers, with a small cache.

Only used when `--upstream` is given: without it the server refuses such
names and is never an open resolver. Each upstream query gets a fresh random
ID and its own socket (a random source port), answers must match the
question, and identical questions in flight share one upstream exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

log = logging.getLogger("kubesvc.dns.upstream")

UPSTREAM_PAYLOAD = 1232


def parse_upstreams(values: Sequence[str]) -> list[tuple[str, int]]:
    """`1.1.1.1`, `127.0.0.1:5300`, `[::1]:53`, or a resolv.conf path → (host, port) pairs."""
    out: list[tuple[str, int]] = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        if value.startswith("/"):
            try:
                text = Path(value).read_text()
            except OSError as err:
                raise ValueError(f"upstream {value!r}: {err.strerror or err}") from None
            for line in text.splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    out.append((parts[1].split("%")[0], 53))
            continue
        if value.startswith("["):
            host, _, rest = value[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else "53"
        elif value.count(":") == 1:
            host, _, port_text = value.partition(":")
        else:
            host, port_text = value, "53"
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"upstream {value!r}: {host!r} is not an IP address") from None
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"upstream {value!r}: {port_text!r} is not a port number")
        out.append((host, int(port_text)))
    return out


class _OneAnswer(asyncio.DatagramProtocol):
    def __init__(self, query: dns.message.Message) -> None:
        self.query = query
        self.query_id = query.id.to_bytes(2, "big")
        self.answer: asyncio.Future[dns.message.Message] = (
            asyncio.get_running_loop().create_future()
        )

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.answer.done() or len(data) < 12 or data[:2] != self.query_id:
            return  # not ours (or late): keep waiting for the real one
        try:
            reply = dns.message.from_wire(data)
        except Exception:
            return
        if self.query.is_response(reply):
            self.answer.set_result(reply)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class Forwarder:
    """Asks the upstreams in order; caches answers up to their TTL (capped)."""

    def __init__(
        self,
        upstreams: Sequence[tuple[str, int]],
        *,
        timeout_s: float = 2.0,
        cache_entries: int = 10_000,
        max_ttl_s: int = 300,
        max_negative_ttl_s: int = 30,
    ) -> None:
        if not upstreams:
            raise ValueError("no upstream servers")
        self.upstreams = list(upstreams)
        self.timeout_s = timeout_s
        self.cache_entries = cache_entries
        self.max_ttl_s = max_ttl_s
        self.max_negative_ttl_s = max_negative_ttl_s
        # key → (expires at, stored at, wire); monotonic clock.
        self._cache: OrderedDict[tuple[bytes, int, bool], tuple[float, float, bytes]] = (
            OrderedDict()
        )
        self._pending: dict[
            tuple[bytes, int, bool], asyncio.Future[dns.message.Message | None]
        ] = {}
        self.sent = 0
        self.failed = 0
        self.cache_hits = 0

    async def resolve(
        self, qname: dns.name.Name, qtype: int, do: bool = False
    ) -> dns.message.Message | None:
        """The upstream's answer (perhaps from cache, TTLs counted down), or None on failure."""
        key = (qname.to_digestable(), qtype, do)
        cached = self._cached(key)
        if cached is not None:
            self.cache_hits += 1
            return cached
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[dns.message.Message | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[key] = future
        try:
            answer = await self._exchange(qname, qtype, do)
            if answer is not None:
                self._store(key, answer)
            future.set_result(answer)
            return answer
        except BaseException:
            future.set_result(None)
            raise
        finally:
            del self._pending[key]

    def _cached(self, key: tuple[bytes, int, bool]) -> dns.message.Message | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        expires, stored, data = entry
        now = time.monotonic()
        if now >= expires:
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        message = dns.message.from_wire(data)
        elapsed = int(now - stored)
        for section in (message.answer, message.authority, message.additional):
            for rrset in section:
                rrset.ttl = max(0, rrset.ttl - elapsed)
        return message

    def _store(self, key: tuple[bytes, int, bool], answer: dns.message.Message) -> None:
        rcode = answer.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) or answer.flags & dns.flags.TC:
            return
        if answer.answer and rcode == dns.rcode.NOERROR:
            ttl = min(min(rr.ttl for rr in answer.answer), self.max_ttl_s)
        else:
            # Negative answers live as long as the SOA says (RFC 2308), capped lower.
            soa = [rr for rr in answer.authority if rr.rdtype == dns.rdatatype.SOA]
            ttl = min(soa[0].ttl, soa[0][0].minimum) if soa else 0
            ttl = min(ttl, self.max_negative_ttl_s)
        if ttl <= 0:
            return
        now = time.monotonic()
        self._cache[key] = (now + ttl, now, answer.to_wire())
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_entries:
            self._cache.popitem(last=False)

    async def _exchange(
        self, qname: dns.name.Name, qtype: int, do: bool
    ) -> dns.message.Message | None:
        query = dns.message.make_query(
            qname,
            dns.rdatatype.RdataType.make(qtype),
            use_edns=0,
            payload=UPSTREAM_PAYLOAD,
            want_dnssec=do,
        )
        for host, port in self.upstreams:
            self.sent += 1
            try:
                async with asyncio.timeout(self.timeout_s):
                    answer = await self._udp(query, host, port)
                if answer.flags & dns.flags.TC:
                    async with asyncio.timeout(self.timeout_s):
                        answer = await self._tcp(query, host, port)
                return answer
            except (OSError, TimeoutError, EOFError, dns.exception.DNSException) as err:
                self.failed += 1
                log.debug("upstream %s:%d failed for %s: %r", host, port, qname, err)
        return None

    @staticmethod
    async def _udp(query: dns.message.Message, host: str, port: int) -> dns.message.Message:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _OneAnswer(query), remote_addr=(host, port)
        )
        try:
            transport.sendto(query.to_wire())
            return await protocol.answer
        finally:
            transport.close()

    @staticmethod
    async def _tcp(query: dns.message.Message, host: str, port: int) -> dns.message.Message:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            data = query.to_wire()
            writer.write(len(data).to_bytes(2, "big") + data)
            await writer.drain()
            size = int.from_bytes(await reader.readexactly(2), "big")
            reply = dns.message.from_wire(await reader.readexactly(size))
            if not query.is_response(reply):
                raise dns.exception.FormError("upstream answer does not match the question")
            return reply
        except asyncio.IncompleteReadError as err:
            raise EOFError(str(err)) from err
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
