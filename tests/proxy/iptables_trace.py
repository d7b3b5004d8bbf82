"""A tiny interpreter of rendered iptables rules: where does a packet (source, destination, port) go?

It knows only the matches and targets the iptables mode writes. Random
choices (`-m statistic`) fork the trace, so the answer is a distribution:
{Outcome: probability}. `-m recent --rcheck` consults the lists given.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    dport: int
    proto: str = "tcp"
    mark: int = 0
    masquerade: bool = False
    recent_set: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    verdict: str  # ACCEPT, REJECT, DROP
    dst: str
    dport: int
    masquerade: bool = False
    recent_set: tuple[str, ...] = ()


def parse(restore: str, extra_lines: Iterable[str] = ()) -> dict[str, dict[str, list[list[str]]]]:
    """Tables → chains → rules (each a token list after `-A CHAIN`); `extra_lines`: "table -A …"."""
    tables: dict[str, dict[str, list[list[str]]]] = defaultdict(lambda: defaultdict(list))
    table = ""
    for line in restore.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            tables[table][line[1:].split()[0]]
        elif line.startswith("-A "):
            tokens = shlex.split(line)
            tables[table][tokens[1]].append(tokens[2:])
    for line in extra_lines:
        tokens = shlex.split(line)
        tables[tokens[0]][tokens[2]].append(tokens[3:])
    return tables


def _opts(tokens: list[str]) -> dict[str, list[str | bool]]:
    """Option → values; a `!` before an option is recorded as (negated) on that option."""
    out: dict[str, list[str | bool]] = {}
    i = 0
    negate = False
    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            negate = True
            i += 1
            continue
        if tok.startswith("-"):
            value: list[str | bool] = [negate]
            j = i + 1
            while j < len(tokens) and not tokens[j].startswith("-") and tokens[j] != "!":
                value.append(tokens[j])
                j += 1
            out.setdefault(tok, []).extend(value)
            i = j
            negate = False
        else:
            i += 1
    return out


class Tracer:
    def __init__(
        self,
        restore: str,
        extra_lines: Iterable[str] = (),
        local_addresses: Iterable[str] = (),
        recent: Mapping[str, set[str]] | None = None,
    ) -> None:
        self.tables = parse(restore, extra_lines)
        self.local = set(local_addresses)
        self.recent = dict(recent or {})

    def _match_prob(self, o: dict[str, list[str | bool]], pkt: Packet) -> float:
        def cidr(v: str) -> ipaddress.IPv4Network:
            return ipaddress.ip_network(v, strict=False)

        for opt, attr in (("-s", "src"), ("-d", "dst")):
            if opt in o:
                neg, value = o[opt][0], str(o[opt][1])
                inside = ipaddress.ip_address(getattr(pkt, attr)) in cidr(value)
                if inside == bool(neg):
                    return 0.0
        if "-p" in o and str(o["-p"][1]) != pkt.proto:
            return 0.0
        if "--dport" in o and int(str(o["--dport"][1])) != pkt.dport:
            return 0.0
        if "--dst-type" in o and str(o["--dst-type"][1]) == "LOCAL" and pkt.dst not in self.local:
            return 0.0
        if "--mark" in o:
            neg = bool(o["--mark"][0])
            value, _, mask = str(o["--mark"][1]).partition("/")
            hit = (pkt.mark & int(mask or "0xffffffff", 16)) == int(value, 16)
            if hit == neg:
                return 0.0
        if "--rcheck" in o:
            name = str(o["--name"][1])
            if pkt.src not in self.recent.get(name, set()):
                return 0.0
        if "--probability" in o:
            return float(str(o["--probability"][1]))
        return 1.0

    def run_chain(
        self, table: str, chain: str, pkt: Packet
    ) -> list[tuple[float, Packet, str | None]]:
        """(probability, packet after, verdict or None for fall-through/RETURN)."""
        rules = self.tables[table].get(chain, [])
        results: list[tuple[float, Packet, str | None]] = []

        def walk(i: int, pkt: Packet, p: float, depth: int = 0) -> None:
            assert depth < 1000
            while i < len(rules):
                o = _opts(rules[i])
                m = self._match_prob(o, pkt)
                if m == 0.0:
                    i += 1
                    continue
                if m < 1.0:
                    walk(i + 1, pkt, p * (1.0 - m), depth + 1)
                    p *= m
                if "--set" in o:
                    pkt = replace(pkt, recent_set=(*pkt.recent_set, str(o["--name"][1])))
                target = str(o["-j"][1])
                if target in self.tables[table]:
                    for sp, spkt, verdict in self.run_chain(table, target, pkt):
                        if verdict is None:
                            walk(i + 1, spkt, p * sp, depth + 1)
                        else:
                            results.append((p * sp, spkt, verdict))
                    return
                if target == "RETURN":
                    break
                if target == "MARK":
                    if "--or-mark" in o:
                        pkt = replace(pkt, mark=pkt.mark | int(str(o["--or-mark"][1]), 16))
                    if "--xor-mark" in o:
                        pkt = replace(pkt, mark=pkt.mark ^ int(str(o["--xor-mark"][1]), 16))
                    i += 1
                    continue
                if target == "DNAT":
                    host, _, port = str(o["--to-destination"][1]).rpartition(":")
                    results.append((p, replace(pkt, dst=host, dport=int(port)), "ACCEPT"))
                    return
                if target == "MASQUERADE":
                    results.append((p, replace(pkt, masquerade=True), "ACCEPT"))
                    return
                results.append((p, pkt, target))
                return
            results.append((p, pkt, None))

        walk(0, pkt, 1.0)
        return results

    def _hooks(self, pkt: Packet, hooks: list[tuple[str, str]]) -> list[tuple[float, Packet, str]]:
        states: list[tuple[float, Packet, str]] = [(1.0, pkt, "ACCEPT")]
        for table, chain in hooks:
            nxt: list[tuple[float, Packet, str]] = []
            for p, q, verdict in states:
                if verdict != "ACCEPT":
                    nxt.append((p, q, verdict))
                    continue
                for sp, sq, v in self.run_chain(table, chain, q):
                    nxt.append((p * sp, sq, v or "ACCEPT"))
            states = nxt
        return states

    def trace(self, pkt: Packet, *, local_origin: bool) -> dict[Outcome, float]:
        """Where `pkt` ends up: sent from this node (OUTPUT) or arriving at it (PREROUTING)."""
        if local_origin:
            hooks = [("nat", "OUTPUT"), ("filter", "OUTPUT"), ("nat", "POSTROUTING")]
            states = self._hooks(pkt, hooks)
        else:
            first = self._hooks(pkt, [("nat", "PREROUTING")])
            states = []
            for p, q, v in first:
                chain = "INPUT" if q.dst in self.local else "FORWARD"
                rest = [("filter", chain)] + (
                    [("nat", "POSTROUTING")] if chain == "FORWARD" else []
                )
                for sp, sq, sv in self._hooks(q, rest) if v == "ACCEPT" else [(1.0, q, v)]:
                    states.append((p * sp, sq, sv))
        out: dict[Outcome, float] = defaultdict(float)
        for p, q, v in states:
            if p > 0:
                out[Outcome(v, q.dst, q.dport, q.masquerade, q.recent_set)] += p
        return dict(out)
