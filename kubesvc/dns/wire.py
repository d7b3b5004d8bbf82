"""DNS wire format: a fast scan of ordinary queries, precomputed answers, and dnspython for the rest.

The fast path never builds a message. An ordinary query (one question, no
compression, at most one well-formed OPT record, nothing after it) is scanned
with a few byte operations into the key of a precomputed answer; the answer's
bytes are then patched with the query's ID, RD and CD bits, and the client's
own question bytes (so the answer echoes the case it was asked in).
Everything else is parsed by dnspython, whose errors become our `WireError`
family here, once.
"""

from __future__ import annotations

import struct

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from kubesvc.dns.errors import BadCounts, BadEDNS, BadName, ShortMessage, TrailingJunk, WireError
from kubesvc.dns.resolver import Result

HEADER_LEN = 12
# Without EDNS0 a UDP answer may not exceed 512 bytes (RFC 1035 4.2.1).
CLASSIC_UDP_MAX = 512
TCP_MAX = 65535
OPT_TYPE = 41
# Header byte 2 bits: QR, opcode (4 bits), AA, TC, RD; byte 3: RA, Z, AD, CD, rcode.
QR, AA, TC, RD = 0x80, 0x04, 0x02, 0x01
RA, CD = 0x80, 0x10
DO = 0x8000
# Distinct orders of a multi-address answer kept ready; more buys no better spread.
MAX_ROTATIONS = 8

_COUNTS = struct.Struct("!HHHH")


def opt_record(payload: int, do: bool) -> bytes:
    """Our OPT pseudo-record: root owner, advertised UDP size, version 0, no options."""
    return b"\x00\x00\x29" + struct.pack("!HBBHH", payload, 0, 0, DO if do else 0, 0)


def scan_query(data: bytes) -> tuple[bytes, int, int, int, bool] | None:
    """(key, question end, qtype, EDNS payload or -1, DO) for an ordinary query, else None.

    `key` is the lowercased question name in wire form plus the qtype and
    qclass bytes. None sends the packet to the slow path, which decides
    between an answer, FORMERR and silence; this function never raises.
    """
    n = len(data)
    # A query (QR=0), opcode QUERY, no AA/TC; exactly one question and no answer/authority.
    if n < 17 or data[2] & 0xFE or data[4:10] != b"\x00\x01\x00\x00\x00\x00":
        return None
    arcount = (data[10] << 8) | data[11]
    if arcount > 1:
        return None
    pos = HEADER_LEN
    # At most 128 labels fit in 255 bytes; the bound keeps the loop finite on any input.
    for _ in range(128):
        length = data[pos]
        if length == 0:
            break
        if length > 63:  # a compression pointer or a reserved label type: slow path
            return None
        pos += length + 1
        if pos >= n:
            return None
    else:
        return None
    name_end = pos + 1
    if name_end - HEADER_LEN > 255:
        return None
    qend = name_end + 4
    if qend > n:
        return None
    qtype = (data[name_end] << 8) | data[name_end + 1]
    if arcount == 0:
        if qend != n:
            return None
        payload, do = -1, False
    else:
        # OPT: root owner (1), type (2), class = payload (2), ext-rcode, version, flags (4), rdlen (2).
        if qend + 11 > n or data[qend] != 0 or data[qend + 1 : qend + 3] != b"\x00\x29":
            return None
        if data[qend + 6] != 0 or data[qend + 5] != 0:  # EDNS version 0, no extended rcode
            return None
        rdlen = (data[qend + 9] << 8) | data[qend + 10]
        end = qend + 11 + rdlen
        if end != n:
            return None
        # The options must tile the body exactly (each: code, length, data).
        opt = qend + 11
        while opt < end:
            if opt + 4 > end:
                return None
            opt += 4 + ((data[opt + 2] << 8) | data[opt + 3])
        if opt != end:
            return None
        payload = (data[qend + 3] << 8) | data[qend + 4]
        do = bool(data[qend + 7] & 0x80)
    key = data[HEADER_LEN:name_end].lower() + data[name_end:qend]
    return key, qend, qtype, payload, do


def udp_limit(payload: int, max_udp_payload: int) -> int:
    """The largest UDP answer for a query advertising `payload` (-1: no EDNS)."""
    if payload < 0:
        return CLASSIC_UDP_MAX
    return max(CLASSIC_UDP_MAX, min(payload, max_udp_payload))


def parse_query(data: bytes) -> dns.message.Message:
    """A full parse with dnspython; every failure is raised as a `WireError`."""
    if len(data) < HEADER_LEN:
        raise ShortMessage(f"{len(data)} bytes")
    try:
        return dns.message.from_wire(data)
    except dns.message.ShortHeader as err:
        raise ShortMessage(str(err)) from err
    except dns.message.TrailingJunk as err:
        raise TrailingJunk(str(err)) from err
    except dns.message.BadEDNS as err:
        raise BadEDNS(str(err)) from err
    except (
        dns.name.BadPointer,
        dns.name.BadLabelType,
        dns.name.LabelTooLong,
        dns.name.NameTooLong,
    ) as err:
        raise BadName(str(err)) from err
    except dns.exception.FormError as err:
        raise BadCounts(str(err)) from err
    except Exception as err:  # dnspython raises others on odd record bodies; all are malformed
        raise WireError(f"{type(err).__name__}: {err}") from err


def formerr(data: bytes) -> bytes | None:
    """A header-only FORMERR echoing the ID, opcode and RD; None when there is no header.

    No question is echoed: the question itself may be what is malformed.
    """
    if len(data) < HEADER_LEN or data[2] & QR:
        return None  # no header to answer, or a response: answering could start a loop
    return data[:2] + bytes((QR | (data[2] & 0x79), dns.rcode.FORMERR)) + bytes(8)


class Template:
    """A precomputed answer: everything but the ID, RD/CD, and the question's case."""

    __slots__ = (
        "chase",
        "counts",
        "counts_edns",
        "f2",
        "f3",
        "hits",
        "live",
        "min_counts",
        "min_counts_edns",
        "min_tail",
        "qname",
        "qtype",
        "rcode",
        "tags",
        "tails",
        "turn",
    )

    def __init__(
        self,
        qname: dns.name.Name,
        qtype: int,
        rcode: int,
        f2: int,
        f3: int,
        counts: tuple[int, int, int, int],
        tails: list[bytes],
        minimal: tuple[tuple[int, int, int, int], bytes] | None,
        tags: frozenset[tuple[str, ...]],
        chase: bool,
    ) -> None:
        self.qname = qname
        self.qtype = qtype
        self.rcode = rcode
        self.f2 = f2
        self.f3 = f3
        self.counts = _COUNTS.pack(*counts)
        self.counts_edns = _COUNTS.pack(counts[0], counts[1], counts[2], counts[3] + 1)
        # Rotations of a multi-address answer, served in turn (CoreDNS's `loadbalance`):
        # clients take the first address, so a fixed order would send them all to one pod.
        self.tails = tails
        self.turn = 0
        # The answer without its Additional records (only when it has some), as bytes
        # ready to join: counts, counts with OPT, and the sections.
        self.min_counts = self.min_counts_edns = self.min_tail = b""
        if minimal is not None:
            mc, self.min_tail = minimal
            self.min_counts = _COUNTS.pack(*mc)
            self.min_counts_edns = _COUNTS.pack(mc[0], mc[1], mc[2], mc[3] + 1)
        self.tags = tags
        self.chase = chase  # an upstream must complete this answer: not for the fast path
        self.hits = 0
        self.live = True  # False once dropped from the store: memoised queries re-check

    def reply(
        self, data: bytes, question: bytes, payload: int, do: bool, limit: int, opt: bytes
    ) -> bytes:
        """This answer for the query `data` (whose question bytes are `question`)."""
        flags = bytes((self.f2 | (data[2] & RD), self.f3 | (data[3] & CD)))
        tail = self.tails[0]
        if len(self.tails) > 1:
            self.turn = (self.turn + 1) % len(self.tails)
            tail = self.tails[self.turn]
        if payload < 0:
            out = data[:2] + flags + self.counts + question + tail
            if len(out) <= limit:
                return out
            if self.min_tail:
                out = data[:2] + flags + self.min_counts + question + self.min_tail
                if len(out) <= limit:
                    return out
            return truncated(data, question, flags, b"")
        if do:
            opt = opt[:7] + b"\x80" + opt[8:]
        out = data[:2] + flags + self.counts_edns + question + tail + opt
        if len(out) <= limit:
            return out
        if self.min_tail:
            # RFC 2181 9: dropping Additional records is not truncation; TC stays clear.
            out = data[:2] + flags + self.min_counts_edns + question + self.min_tail + opt
            if len(out) <= limit:
                return out
        return truncated(data, question, flags, opt)


def truncated(data: bytes, question: bytes, flags: bytes, opt: bytes) -> bytes:
    """TC set, only the question (and OPT): the client asks again over TCP."""
    counts = _COUNTS.pack(1, 0, 0, 1 if opt else 0)
    return data[:2] + bytes((flags[0] | TC, flags[1])) + counts + question + opt


def build_template(
    qname: dns.name.Name, qtype: int, result: Result, *, recursion_available: bool, chase: bool
) -> Template:
    """Render `result` once with dnspython, split around the question for patching."""
    qname = qname.canonicalize()
    f2 = QR | AA
    f3 = (RA if recursion_available else 0) | (result.rcode & 0x0F)
    question_len = len(qname.to_digestable()) + 4
    cut = HEADER_LEN + question_len
    tails = []
    counts = (0, 0, 0, 0)
    for answer in _rotations(result.answer):
        wire, counts = _render(qname, qtype, f2, f3, (answer, result.authority, result.additional))
        tails.append(wire[cut:])
    minimal = None
    if result.additional:
        min_wire, min_counts = _render(qname, qtype, f2, f3, (result.answer, result.authority, []))
        minimal = (min_counts, min_wire[cut:])
    return Template(qname, qtype, result.rcode, f2, f3, counts, tails, minimal, result.tags, chase)


def _rotations(answer: list[dns.rrset.RRset]) -> list[list[dns.rrset.RRset]]:
    """The answer, and for an address RRset of several records its rotations (at most 8)."""
    if not answer or len(answer[0]) < 2 or answer[0].rdtype not in (1, 28):  # A, AAAA
        return [answer]
    first = answer[0]
    records = list(first)
    out = []
    for turn in range(min(len(records), MAX_ROTATIONS)):
        rotated = dns.rrset.RRset(first.name, first.rdclass, first.rdtype)
        for rdata in records[turn:] + records[:turn]:
            rotated.add(rdata, first.ttl)
        out.append([rotated, *answer[1:]])
    return out


def _render(
    qname: dns.name.Name,
    qtype: int,
    f2: int,
    f3: int,
    sections: tuple[list[dns.rrset.RRset], ...],
) -> tuple[bytes, tuple[int, int, int, int]]:
    msg = dns.message.Message(id=0)
    msg.flags = (f2 << 8) | f3
    msg.question = [dns.rrset.RRset(qname, dns.rdataclass.IN, dns.rdatatype.RdataType.make(qtype))]
    answer, authority, additional = (list(s) for s in sections)
    for _ in range(3):
        msg.answer, msg.authority, msg.additional = answer, authority, additional
        try:
            wire = msg.to_wire(max_size=TCP_MAX, want_shuffle=False)
            break
        except dns.exception.TooBig:
            # Larger than any DNS message can be: shed Additional, then the answer (TC).
            if additional:
                additional = []
            else:
                answer, authority = [], []
                msg.flags |= TC << 8
    else:  # pragma: no cover - an empty message always fits
        raise WireError("answer does not fit in a DNS message")
    counts = _COUNTS.unpack(wire[4:12])
    return wire, counts  # type: ignore[return-value]


def error_reply(
    query: dns.message.Message, rcode: int, *, recursion_available: bool, max_udp_payload: int
) -> bytes:
    """A reply with only a response code (and the question), built by dnspython."""
    response = dns.message.make_response(query, our_payload=max_udp_payload)
    code = dns.rcode.Rcode.make(rcode)
    response.set_rcode(code)
    if recursion_available:
        response.flags |= dns.flags.RA
    if code == dns.rcode.BADVERS:
        response.use_edns(0, 0, max_udp_payload)
        response.set_rcode(code)
    if query.edns >= 0 and query.ednsflags & DO:
        response.ednsflags |= DO
    return response.to_wire(max_size=TCP_MAX)


def message_reply(
    query: dns.message.Message,
    upstream: dns.message.Message,
    prefix: list[dns.rrset.RRset],
    *,
    max_udp_payload: int,
) -> bytes:
    """The client's reply carrying an upstream's answer (after our own CNAME `prefix`)."""
    response = dns.message.make_response(query, our_payload=max_udp_payload)
    response.flags |= dns.flags.RA
    response.set_rcode(upstream.rcode())
    response.answer = [*prefix, *upstream.answer]
    response.authority = list(upstream.authority)
    response.additional = [rr for rr in upstream.additional if rr.rdtype != OPT_TYPE]
    if query.edns >= 0 and query.ednsflags & DO:
        response.ednsflags |= DO
    return response.to_wire(max_size=TCP_MAX)


def fit(reply: bytes, limit: int) -> bytes:
    """`reply` if it fits in `limit`, else the same header and question with TC and no records."""
    if len(reply) <= limit:
        return reply
    pos = HEADER_LEN
    for _ in range(128):  # our own replies: a plain question name, bounded walk
        length = reply[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0:
            pos += 1
            break
        pos += length
    question = reply[HEADER_LEN : pos + 4]
    qdcount = (reply[4] << 8) | reply[5]
    if qdcount == 0:
        question = b""
    opt = _find_opt(reply)
    counts = _COUNTS.pack(1 if question else 0, 0, 0, 1 if opt else 0)
    return reply[:2] + bytes((reply[2] | TC, reply[3])) + counts + question + opt


def _find_opt(reply: bytes) -> bytes:
    # Our replies put OPT last, with no options: the final 11 bytes when present.
    tail = reply[-11:]
    arcount = (reply[10] << 8) | reply[11]
    if arcount and len(tail) == 11 and tail[0] == 0 and tail[1:3] == b"\x00\x29":
        return tail
    return b""
