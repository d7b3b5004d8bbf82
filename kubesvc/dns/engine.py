"""Sans-io query handling: bytes in, bytes out (or a request to ask the upstream).

Two paths share one answer store:
- fast: `wire.scan_query` keys an ordinary query; a precomputed `Template`
  for that (name, type) is patched and returned. No parsing, no building.
- slow: dnspython parses anything else (and every miss), the pure `Resolver`
  answers, the answer is rendered once into a Template and stored, so the
  next identical question takes the fast path.

Templates carry the lookup tags they read. When a watch event changes a tag,
exactly the templates that read it are dropped and the ones that were in use
are rendered again at once (`on_change`), so the next query gets the new
records: there is no TTL cache in front of cluster data.
"""

from __future__ import annotations

import logging
import struct
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from kubesvc.dns import wire
from kubesvc.dns.errors import ShortMessage, WireError
from kubesvc.dns.lookup import Tag
from kubesvc.dns.resolver import Resolver

log = logging.getLogger("kubesvc.dns")

# After a change, re-render at most this many of the dropped answers on the spot;
# the rest are rendered by their next query (a slow-path miss, still fresh).
REWARM_MAX = 512
REFUSED_TYPES = {dns.rdatatype.AXFR, dns.rdatatype.IXFR}
NOTIMP_TYPES = {dns.rdatatype.MAILA, dns.rdatatype.MAILB}
# Pseudo-types that make no sense as a question.
FORMERR_TYPES = {dns.rdatatype.OPT, dns.rdatatype.TSIG, dns.rdatatype.TKEY}
QTYPE_NONE = 0  # metrics label for packets without a readable question


@dataclass
class Forward:
    """A question for the upstream, and how to finish the client's reply with its answer."""

    query: dns.message.Message
    qname: dns.name.Name
    qtype: int
    do: bool
    udp: bool
    limit: int
    # Our own records that come first (an ExternalName's CNAME), and the reply to send
    # if the upstream fails or is busy (the CNAME alone); None: SERVFAIL / REFUSED.
    prefix: list[dns.rrset.RRset] = field(default_factory=list)
    fallback: bytes | None = None


class AnswerStore:
    """Precomputed answers by (lowercase question name, type, class), indexed by lookup tag.

    Bounded; eviction is FIFO with a second chance for answers used since their
    last pass (CLOCK), so a flood of one-off names cannot push out the hot ones.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max(1, max_entries)
        self.entries: OrderedDict[bytes, wire.Template] = OrderedDict()
        self.by_tag: dict[Tag, set[bytes]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: bytes) -> wire.Template | None:
        """The answer stored for `key`, or None."""
        return self.entries.get(key)

    def put(self, key: bytes, template: wire.Template) -> None:
        """Store `template` (replacing any), evicting the oldest unused answers when full."""
        self.remove(key)
        for _ in range(2 * self.max_entries + 1):  # bounded: each pass clears a hit count
            if len(self.entries) < self.max_entries:
                break
            old_key, old = self.entries.popitem(last=False)
            if old.hits:
                old.hits = 0
                self.entries[old_key] = old
            else:
                self._untag(old_key, old)
                old.live = False
        self.entries[key] = template
        for tag in template.tags:
            self.by_tag.setdefault(tag, set()).add(key)

    def remove(self, key: bytes) -> wire.Template | None:
        """Drop one answer (it stops being served, memoised or not); returns it."""
        template = self.entries.pop(key, None)
        if template is not None:
            self._untag(key, template)
            template.live = False
        return template

    def _untag(self, key: bytes, template: wire.Template) -> None:
        for tag in template.tags:
            keys = self.by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.by_tag[tag]

    def invalidate(self, tags: set[Tag]) -> list[tuple[bytes, wire.Template]]:
        """Drop every answer that read one of `tags`; returns what was dropped."""
        dropped = []
        for tag in tags:
            for key in self.by_tag.pop(tag, ()):
                template = self.remove(key)
                if template is not None:
                    dropped.append((key, template))
        return dropped

    def clear(self) -> None:
        """Drop everything."""
        for template in self.entries.values():
            template.live = False
        self.entries.clear()
        self.by_tag.clear()


class Engine:
    """The DNS server's logic without sockets; `handle` never raises on any input bytes."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        upstream: bool = False,
        max_udp_payload: int = 1232,
        max_entries: int = 100_000,
        precompute: bool = True,
        on_programmed: Callable[[float], None] | None = None,
    ) -> None:
        self.resolver = resolver
        self.lookup = resolver.lookup
        self.upstream = upstream
        self.max_udp_payload = max_udp_payload
        self.precompute = precompute
        self.store = AnswerStore(max_entries)
        # Bytes after the header's ID and flags → (template, question end, payload, DO, metric key).
        self.memo: dict[bytes, tuple[wire.Template, int, int, bool, tuple[int, int, str]]] = {}
        self.opt = wire.opt_record(max_udp_payload, False)
        self.on_programmed = on_programmed
        # (qtype, rcode, "udp"|"tcp") → count; plain ints here, exported at scrape time.
        self.counts: defaultdict[tuple[int, int, str], int] = defaultdict(int)
        self.dropped = 0
        self.internal_errors = 0

    # ------------------------------------------------------------ queries

    def handle(self, data: bytes, udp: bool) -> bytes | Forward | None:
        """The reply to `data`, a Forward for the upstream, or None to stay silent."""
        try:
            # Clients repeat the very same bytes after the ID and flags (stub resolvers,
            # retries, load generators): those skip even the scan. The memo holds only
            # what a scan already accepted, and a template dropped from the store is not used.
            rest = data[4:]
            memo = self.memo.get(rest)
            if memo is not None and not data[2] & 0xFE:
                template, qend, payload, do, metric = memo
                if template.live:
                    template.hits += 1
                    self.counts[metric if udp else (metric[0], metric[1], "tcp")] += 1
                    limit = wire.udp_limit(payload, self.max_udp_payload) if udp else wire.TCP_MAX
                    return template.reply(data, data[12:qend], payload, do, limit, self.opt)
            scanned = wire.scan_query(data)
            if scanned is not None:
                key, qend, qtype, payload, do = scanned
                hit = self.store.entries.get(key)
                if hit is not None and not hit.chase:
                    hit.hits += 1
                    metric = (qtype, hit.rcode, "udp")
                    self.counts[metric if udp else (qtype, hit.rcode, "tcp")] += 1
                    if len(self.memo) >= self.store.max_entries:
                        self.memo.clear()  # cheaper than tracking; the next queries refill it
                    self.memo[rest] = (hit, qend, payload, do, metric)
                    limit = wire.udp_limit(payload, self.max_udp_payload) if udp else wire.TCP_MAX
                    return hit.reply(data, data[12:qend], payload, do, limit, self.opt)
            return self._slow(data, udp)
        except Exception:  # a bug must cost one answer, never the server
            self.internal_errors += 1
            log.exception("dns: failed to answer a query")
            return None

    def _count(self, qtype: int, rcode: int, udp: bool) -> None:
        self.counts[(qtype, rcode, "udp" if udp else "tcp")] += 1

    def _error(
        self, query: dns.message.Message, qtype: int, rcode: int, udp: bool, limit: int
    ) -> bytes:
        self._count(qtype, rcode, udp)
        reply = wire.error_reply(
            query, rcode, recursion_available=self.upstream, max_udp_payload=self.max_udp_payload
        )
        return wire.fit(reply, limit)

    def _slow(self, data: bytes, udp: bool) -> bytes | Forward | None:
        try:
            query = wire.parse_query(data)
        except ShortMessage:
            self.dropped += 1
            return None
        except WireError:
            reply = wire.formerr(data)
            if reply is None:
                self.dropped += 1
            else:
                self._count(QTYPE_NONE, dns.rcode.FORMERR, udp)
            return reply
        if query.flags & dns.flags.QR:
            self.dropped += 1  # never answer a response: two servers could ping-pong forever
            return None
        payload = query.payload if query.edns >= 0 else -1
        limit = wire.udp_limit(payload, self.max_udp_payload) if udp else wire.TCP_MAX
        if len(query.question) != 1:
            qtype = query.question[0].rdtype if query.question else QTYPE_NONE
            return self._error(query, qtype, dns.rcode.FORMERR, udp, limit)
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        if query.opcode() != dns.opcode.QUERY:
            return self._error(query, qtype, dns.rcode.NOTIMP, udp, limit)
        if query.edns > 0:
            return self._error(query, qtype, dns.rcode.BADVERS, udp, limit)
        if question.rdclass != dns.rdataclass.IN or qtype in REFUSED_TYPES:
            return self._error(query, qtype, dns.rcode.REFUSED, udp, limit)
        if qtype in FORMERR_TYPES:
            return self._error(query, qtype, dns.rcode.FORMERR, udp, limit)
        if qtype in NOTIMP_TYPES:
            return self._error(query, qtype, dns.rcode.NOTIMP, udp, limit)
        do = bool(query.ednsflags & wire.DO) if query.edns >= 0 else False
        if self.resolver.apex_of(qname) is None:
            return self._outside(query, qname, qtype, do, udp, limit)
        if not self.lookup.has_synced():
            # Answering from a partial picture would hand out NXDOMAINs that are not true.
            return self._error(query, qtype, dns.rcode.SERVFAIL, udp, limit)
        key = qname.to_digestable() + struct.pack("!HH", qtype, question.rdclass)
        template = self.store.get(key)
        prefix: list[dns.rrset.RRset] = []
        chase: dns.name.Name | None = None
        if template is None:
            result = self.resolver.resolve(qname, qtype)
            if not result.ours:  # an unknown reverse name, with an upstream to ask
                return self._outside(query, qname, qtype, do, udp, limit)
            chase = result.chase if self.upstream else None
            template = wire.build_template(
                qname,
                qtype,
                result,
                recursion_available=self.upstream,
                chase=chase is not None,
            )
            if chase is not None:
                prefix = result.answer
            elif self.precompute:
                self.store.put(key, template)
        template.hits += 1
        # The client's own spelling of the name (to_digestable would lowercase it).
        question_bytes = (qname.to_wire() or b"") + struct.pack("!HH", qtype, question.rdclass)
        reply = template.reply(data, question_bytes, payload, do, limit, self.opt)
        if chase is not None:
            return Forward(query, chase, qtype, do, udp, limit, prefix, fallback=reply)
        self._count(qtype, template.rcode, udp)
        return reply

    def _outside(
        self,
        query: dns.message.Message,
        qname: dns.name.Name,
        qtype: int,
        do: bool,
        udp: bool,
        limit: int,
    ) -> bytes | Forward:
        if not self.upstream:
            # Never an open resolver: names outside the cluster are refused without an upstream.
            return self._error(query, qtype, dns.rcode.REFUSED, udp, limit)
        return Forward(query, qname, qtype, do, udp, limit)

    def finish(self, forward: Forward, answer: dns.message.Message | None) -> bytes:
        """The client's reply once the upstream answered (`answer`) or failed (None)."""
        qtype = forward.qtype
        if answer is None:
            if forward.fallback is not None:
                self._count(qtype, dns.rcode.NOERROR, forward.udp)
                return forward.fallback
            return self._error(forward.query, qtype, dns.rcode.SERVFAIL, forward.udp, forward.limit)
        self._count(qtype, answer.rcode(), forward.udp)
        reply = wire.message_reply(
            forward.query, answer, forward.prefix, max_udp_payload=self.max_udp_payload
        )
        return wire.fit(reply, forward.limit)

    def overloaded(self, forward: Forward) -> bytes:
        """The reply when too many upstream queries are in flight (CoreDNS answers REFUSED)."""
        if forward.fallback is not None:
            self._count(forward.qtype, dns.rcode.NOERROR, forward.udp)
            return forward.fallback
        return self._error(
            forward.query, forward.qtype, dns.rcode.REFUSED, forward.udp, forward.limit
        )

    # ------------------------------------------------------------ changes

    def on_change(self, tags: set[Tag], started: float) -> None:
        """Index listener: drop the answers that read `tags`, render the used ones again."""
        dropped = self.store.invalidate(tags)
        if not self.lookup.has_synced():
            return
        for key, old in dropped[:REWARM_MAX]:
            if not old.hits:
                continue  # never asked since it was rendered: let the next query do it
            result = self.resolver.resolve(old.qname, old.qtype)
            if not result.ours or (result.chase is not None and self.upstream):
                continue
            self.store.put(
                key,
                wire.build_template(
                    old.qname, old.qtype, result, recursion_available=self.upstream, chase=False
                ),
            )
        if self.on_programmed is not None:
            self.on_programmed(time.perf_counter() - started)
