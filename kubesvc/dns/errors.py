"""One error family for malformed DNS messages, as dnspython has `FormError`.

Parsing raises a subclass deep inside; the query engine catches `WireError`
once and answers FORMERR (or drops the packet when not even a header can be
echoed). Nothing else about a packet's bytes may raise past the engine.
"""

from __future__ import annotations


class WireError(Exception):
    """The bytes are not a DNS message we can answer: the server replies FORMERR."""


class ShortMessage(WireError):
    """Fewer than the 12 bytes of a header: there is no ID to answer to, so it is dropped."""


class BadName(WireError):
    """A name with a pointer loop, a forward pointer, an over-long label or name."""


class BadCounts(WireError):
    """Section counts that disagree with the bytes, or a question count other than one."""


class TrailingJunk(WireError):
    """Bytes after the last record the counts announce."""


class BadEDNS(WireError):
    """An OPT record out of place, repeated, or with a malformed body."""
