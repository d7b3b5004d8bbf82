"""Label and field selectors, parsed and matched as Kubernetes' `labels` and `fields` packages do.

Label selectors come from `?labelSelector=` (the string form, `parse_label_selector`), from
`LabelSelector` objects inside API objects (`from_label_selector`), and from plain
Service-style `selector` maps (`from_set`). Field selectors come from `?fieldSelector=`
(`parse_field_selector`) and match against the per-kind field sets of `object_fields`.

Parse errors are `bad_request` (400) with Kubernetes' own messages, quirks included (the
`<nil>` field path in a bad key, rune numbers in field-selector escape errors), because
kubectl users and client libraries recognise them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum, auto
from typing import Any

from kubesvc.api import field, formats
from kubesvc.api.errors import bad_request
from kubesvc.api.field import FieldError, Path
from kubesvc.api.meta import validate_labels

__all__ = [
    "DEFAULT_SELECTABLE_FIELDS",
    "SELECTABLE_FIELDS",
    "FieldSelector",
    "FieldTerm",
    "LabelSelector",
    "Operator",
    "Requirement",
    "escape_field_value",
    "from_label_selector",
    "from_set",
    "object_fields",
    "parse_field_selector",
    "parse_label_selector",
    "selectable_fields",
    "validate_label_selector",
]

_GO_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
_GO_ESCAPES |= {"\v": r"\v", "\\": r"\\", '"': r"\""}


def _go_quote(s: str) -> str:
    """Go's `%q`, so bad keys and values read as they do in Kubernetes' messages."""
    out = []
    for ch in s:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif (cp := ord(ch)) < 0x80:
            out.append(f"\\x{cp:02x}")
        elif cp < 0x10000:
            out.append(f"\\u{cp:04x}")
        else:
            out.append(f"\\U{cp:08x}")
    return '"' + "".join(out) + '"'


def _aggregate(errs: list[str]) -> str:
    # utilerrors.Aggregate's text: one error bare, several deduplicated inside brackets.
    unique = list(dict.fromkeys(errs))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def _parse_int64(s: str) -> int | None:
    # strconv.ParseInt(s, 10, 64): ASCII digits with an optional sign, nothing else.
    if not re.fullmatch(r"[+-]?[0-9]+", s):
        return None
    n = int(s)
    return n if -(2**63) <= n < 2**63 else None


# --- Requirements and label selectors ---------------------------------------------------------


class Operator(StrEnum):
    """A requirement's operator, spelled as Kubernetes' `selection.Operator`."""

    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GT = "gt"
    LT = "lt"


_SHOWN_OPERATOR = {
    Operator.EQUALS: "=",
    Operator.DOUBLE_EQUALS: "==",
    Operator.NOT_EQUALS: "!=",
    Operator.IN: " in ",
    Operator.NOT_IN: " notin ",
    Operator.GT: ">",
    Operator.LT: "<",
}


@dataclass(frozen=True)
class Requirement:
    """One `key <op> values` term. Build through the parsers: this constructor validates nothing."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` satisfy this term; a missing key satisfies only !, notin and !=."""
        op = self.operator
        if op is Operator.EXISTS:
            return self.key in labels
        if op is Operator.DOES_NOT_EXIST:
            return self.key not in labels
        if self.key not in labels:
            return op in (Operator.NOT_IN, Operator.NOT_EQUALS)
        value = labels[self.key]
        if op in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            return value in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            return value not in self.values
        # Gt/Lt: a label that is not an integer simply does not match.
        have = _parse_int64(value)
        want = _parse_int64(self.values[0]) if len(self.values) == 1 else None
        if have is None or want is None:
            return False
        return have > want if op is Operator.GT else have < want

    def __str__(self) -> str:
        if self.operator is Operator.EXISTS:
            return self.key
        if self.operator is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        values = ",".join(sorted(self.values))
        if self.operator in (Operator.IN, Operator.NOT_IN):
            values = f"({values})"
        return f"{self.key}{_SHOWN_OPERATOR[self.operator]}{values}"


@dataclass(frozen=True)
class LabelSelector:
    """An AND of requirements, kept sorted by key; or, with `match_none`, Kubernetes' Nothing()."""

    requirements: tuple[Requirement, ...] = ()
    match_none: bool = False

    def __post_init__(self) -> None:
        # Kubernetes sorts by key so that the string form is deterministic; sorted() is stable,
        # so requirements on the same key keep their written order.
        ordered = tuple(sorted(self.requirements, key=lambda r: r.key))
        object.__setattr__(self, "requirements", ordered)

    @classmethod
    def everything(cls) -> LabelSelector:
        """The selector that matches every label set."""
        return cls()

    @classmethod
    def nothing(cls) -> LabelSelector:
        """The selector that matches no label set (a `null` LabelSelector)."""
        return cls(match_none=True)

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with these labels (None = no labels) is selected."""
        if self.match_none:
            return False
        present = labels or {}
        return all(r.matches(present) for r in self.requirements)

    def empty(self) -> bool:
        """True if the selector does not restrict anything (matches everything)."""
        return not self.match_none and not self.requirements

    def __str__(self) -> str:
        return "" if self.match_none else ",".join(str(r) for r in self.requirements)


def _requirement_errors(key: str, op: Operator, values: Sequence[str]) -> list[str]:
    """Kubernetes' NewRequirement checks, as `field.Error` texts (its field path is nil)."""
    errs = []
    if msgs := formats.qualified_name(key):
        errs.append(f"key: Invalid value: {_go_quote(key)}: {'; '.join(msgs)}")
    # An empty Go slice from a LabelSelector object is nil, which JSON shows as null.
    shown = (
        json.dumps(list(values), ensure_ascii=False, separators=(",", ":")) if values else "null"
    )
    if op in (Operator.IN, Operator.NOT_IN) and not values:
        detail = "for 'in', 'notin' operators, values set can't be empty"
        errs.append(f"values: Invalid value: {shown}: {detail}")
    elif op in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS) and len(values) != 1:
        detail = "exact-match compatibility requires one single value"
        errs.append(f"values: Invalid value: {shown}: {detail}")
    elif op in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
        detail = "values set must be empty for exists and does not exist"
        errs.append(f"values: Invalid value: {shown}: {detail}")
    elif op in (Operator.GT, Operator.LT):
        if len(values) != 1:
            detail = "for 'Gt', 'Lt' operators, exactly one value is required"
            errs.append(f"values: Invalid value: {shown}: {detail}")
        for i, v in enumerate(values):
            if _parse_int64(v) is None:
                detail = "for 'Gt', 'Lt' operators, the value must be an integer"
                errs.append(f"values[{i}]: Invalid value: {_go_quote(v)}: {detail}")
    for i, v in enumerate(values):
        if msgs := formats.label_value(v):
            errs.append(f"values[{i}][{key}]: Invalid value: {_go_quote(v)}: {'; '.join(msgs)}")
    return errs


def _checked_requirement(key: Any, op: Operator, values: Any) -> Requirement:
    """A requirement from decoded JSON, raising bad_request as Kubernetes' converters do."""
    if not isinstance(key, str):
        raise bad_request(f"label selector key must be a string, not {field.show_value(key)}")
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise bad_request(f"label selector values must be strings, not {field.show_value(values)}")
    if errs := _requirement_errors(key, op, values):
        raise bad_request(_aggregate(errs))
    return Requirement(key, op, tuple(values))


def from_set(labels: Mapping[str, str] | None, *, validate: bool = True) -> LabelSelector:
    """A selector requiring exactly these labels, as `labels.SelectorFromSet`.

    An empty or None map matches EVERYTHING (Kubernetes' rule for sets). A Service with no
    selector selects no pods, so callers handling Services must check for an empty
    selector themselves and not rely on this function. With `validate` (the default), keys
    and values are checked like `ValidatedSelectorFromSet` and errors raise bad_request.
    """
    if not labels:
        return LabelSelector()
    if not validate:
        return LabelSelector(
            tuple(Requirement(k, Operator.EQUALS, (v,)) for k, v in labels.items())
        )
    # Sorted so that, of several bad labels, the same one is always reported.
    return LabelSelector(
        tuple(_checked_requirement(k, Operator.EQUALS, [labels[k]]) for k in sorted(labels))
    )


_EXPRESSION_OPERATORS = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}


def from_label_selector(sel: Mapping[str, Any] | None) -> LabelSelector:
    """The selector a `LabelSelector` object means, as `metav1.LabelSelectorAsSelector`.

    None (a null selector) matches nothing; `{}` (no matchLabels, no matchExpressions)
    matches everything. Invalid content raises bad_request.
    """
    if sel is None:
        return LabelSelector.nothing()
    if not isinstance(sel, Mapping):
        raise bad_request(f"label selector must be an object, not {field.show_value(sel)}")
    match_labels = sel.get("matchLabels") or {}
    expressions = sel.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping):
        raise bad_request(f"matchLabels must be an object, not {field.show_value(match_labels)}")
    if not isinstance(expressions, list):
        raise bad_request(f"matchExpressions must be a list, not {field.show_value(expressions)}")
    if not match_labels and not expressions:
        return LabelSelector()
    reqs = [
        _checked_requirement(k, Operator.EQUALS, [match_labels[k]]) for k in sorted(match_labels)
    ]
    for expr in expressions:
        if not isinstance(expr, Mapping):
            raise bad_request(
                f"matchExpressions entry must be an object, not {field.show_value(expr)}"
            )
        raw_op = expr.get("operator") or ""
        op = _EXPRESSION_OPERATORS.get(raw_op) if isinstance(raw_op, str) else None
        if op is None:
            shown = _go_quote(raw_op) if isinstance(raw_op, str) else field.show_value(raw_op)
            raise bad_request(f"{shown} is not a valid label selector operator")
        reqs.append(_checked_requirement(expr.get("key") or "", op, expr.get("values") or []))
    return LabelSelector(tuple(reqs))


# --- The string form: a transliteration of Kubernetes' lexer and parser -----------------------


class _Tok(Enum):
    EOS = auto()
    CLOSE_PAR = auto()
    COMMA = auto()
    NOT = auto()
    DOUBLE_EQUALS = auto()
    EQUALS = auto()
    GT = auto()
    IDENT = auto()
    IN = auto()
    LT = auto()
    NOT_EQUALS = auto()
    NOT_IN = auto()
    OPEN_PAR = auto()


_TOKENS = {
    ")": _Tok.CLOSE_PAR,
    ",": _Tok.COMMA,
    "!": _Tok.NOT,
    "==": _Tok.DOUBLE_EQUALS,
    "=": _Tok.EQUALS,
    ">": _Tok.GT,
    "in": _Tok.IN,
    "<": _Tok.LT,
    "!=": _Tok.NOT_EQUALS,
    "notin": _Tok.NOT_IN,
    "(": _Tok.OPEN_PAR,
}
_BINARY_OPERATORS = {
    _Tok.IN: Operator.IN,
    _Tok.NOT_IN: Operator.NOT_IN,
    _Tok.EQUALS: Operator.EQUALS,
    _Tok.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS,
    _Tok.NOT_EQUALS: Operator.NOT_EQUALS,
    _Tok.GT: Operator.GT,
    _Tok.LT: Operator.LT,
}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")  # only these: Kubernetes treats other spaces as key text
_END = "\0"  # Go's lexer reads a NUL byte as it reads the end of the string
_WORD_END = _SPECIAL | _WHITESPACE | {_END}


def _lex(text: str) -> list[tuple[_Tok, str]]:
    """Tokens up to and including EOS, as Kubernetes' Lexer produces them."""
    items: list[tuple[_Tok, str]] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in _WHITESPACE:
            pos += 1
        if pos == end or text[pos] == _END:
            items.append((_Tok.EOS, ""))
            return items
        start = pos
        if text[pos] in _SPECIAL:
            # Longest run of symbols that is still a token: "!=" and "==", else one symbol.
            pos += 1
            while pos < end and text[start : pos + 1] in _TOKENS:
                pos += 1
        else:
            while pos < end and text[pos] not in _WORD_END:
                pos += 1
        literal = text[start:pos]
        if pos < end and text[pos] == _END:
            pos += 1  # Go consumes a NUL that ends a token, then lexes on after it
        items.append((_TOKENS.get(literal, _Tok.IDENT), literal))


class _RequirementError(Exception):
    """A failure inside one requirement; parse() prefixes it as Kubernetes does."""


class _Parser:
    """Kubernetes' recursive-descent label selector parser, error texts and all."""

    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.pos = 0

    def peek(self, values: bool = True) -> tuple[_Tok, str]:
        tok, lit = self.items[self.pos]
        # Where a value may stand, `in` and `notin` are ordinary words: `in in (in)` is valid.
        if values and tok in (_Tok.IN, _Tok.NOT_IN):
            tok = _Tok.IDENT
        return tok, lit

    def next(self, values: bool = True) -> tuple[_Tok, str]:
        item = self.peek(values)
        self.pos += 1
        return item

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.peek()
            if tok is _Tok.EOS:
                return reqs
            if tok not in (_Tok.IDENT, _Tok.NOT):
                raise bad_request(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                reqs.append(self.requirement())
            except _RequirementError as err:
                raise bad_request(f"unable to parse requirement: {err}") from None
            tok, lit = self.next()
            if tok is _Tok.EOS:
                return reqs
            if tok is not _Tok.COMMA:
                raise bad_request(f"found '{lit}', expected: ',' or 'end of string'")
            tok, lit = self.peek()
            if tok not in (_Tok.IDENT, _Tok.NOT):
                raise bad_request(f"found '{lit}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        key, op = self.key_and_inferred_operator()
        values: set[str] = set()
        if op is None:
            tok, lit = self.next(values=False)
            if tok not in _BINARY_OPERATORS:
                raise _RequirementError(f"found '{lit}', expected: in, notin, =, ==, !=, gt, lt")
            op = _BINARY_OPERATORS[tok]
            values = (
                self.value_set() if op in (Operator.IN, Operator.NOT_IN) else self.exact_value()
            )
        # Parsed values are a set: deduplicated and sorted, as sets.String.List() gives them.
        ordered = tuple(sorted(values))
        if errs := _requirement_errors(key, op, ordered):
            raise _RequirementError(_aggregate(errs))
        return Requirement(key, op, ordered)

    def key_and_inferred_operator(self) -> tuple[str, Operator | None]:
        op = None
        tok, lit = self.next()
        if tok is _Tok.NOT:
            op = Operator.DOES_NOT_EXIST
            tok, lit = self.next()
        if tok is not _Tok.IDENT:
            raise _RequirementError(f"found '{lit}', expected: identifier")
        if msgs := formats.qualified_name(lit):
            # "<nil>" is the string of the parser's absent field path, verbatim from Kubernetes.
            raise _RequirementError(f"<nil>: Invalid value: {_go_quote(lit)}: {'; '.join(msgs)}")
        if op is None and self.peek()[0] in (_Tok.EOS, _Tok.COMMA):
            op = Operator.EXISTS
        # `!key` is complete whatever follows; the caller rejects anything but , or the end.
        return lit, op

    def value_set(self) -> set[str]:
        tok, lit = self.next()
        if tok is not _Tok.OPEN_PAR:
            raise _RequirementError(f"found '{lit}' expected: '('")
        tok, lit = self.peek()
        if tok is _Tok.CLOSE_PAR:
            self.next()
            return {""}  # "()" is the set holding the empty value
        if tok not in (_Tok.IDENT, _Tok.COMMA):
            raise _RequirementError(f"found '{lit}', expected: ',', ')' or identifier")
        values = self.identifiers()
        self.next()  # the ")" that identifiers() stopped at
        return values

    def identifiers(self) -> set[str]:
        # Empty items are empty values: "(,a)", "(a,)" and "(a,,b)" all include "".
        values: set[str] = set()
        while True:
            tok, lit = self.next()
            if tok is _Tok.IDENT:
                values.add(lit)
                tok, lit = self.peek()
                if tok is _Tok.CLOSE_PAR:
                    return values
                if tok is not _Tok.COMMA:
                    raise _RequirementError(f"found '{lit}', expected: ',' or ')'")
            elif tok is _Tok.COMMA:
                if not values:
                    values.add("")
                tok, _ = self.peek()
                if tok is _Tok.CLOSE_PAR:
                    values.add("")
                    return values
                if tok is _Tok.COMMA:
                    self.next()
                    values.add("")
            else:
                raise _RequirementError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        if self.peek()[0] in (_Tok.EOS, _Tok.COMMA):
            return {""}  # "a=" requires the empty value
        tok, lit = self.next()
        if tok is not _Tok.IDENT:
            raise _RequirementError(f"found '{lit}', expected: identifier")
        return {lit}


def parse_label_selector(text: str) -> LabelSelector:
    """Parse the `?labelSelector=` form (`a=b,c in (x,y),!d,e>1`) as `labels.Parse` does.

    The empty string matches everything. Errors raise bad_request with Kubernetes' text.
    """
    return LabelSelector(tuple(_Parser(text).parse()))


# --- Validating LabelSelector objects inside API objects --------------------------------------


def validate_label_selector(sel: Any, path: str) -> list[FieldError]:
    """Field errors for a `LabelSelector` object at `path` (e.g. `spec.selector`).

    Follows metav1 ValidateLabelSelector: an unknown operator is Invalid ("not a valid
    selector operator"), In/NotIn without values Required, Exists/DoesNotExist with values
    Forbidden; keys and values must be valid label keys and values. None is valid.
    """
    if sel is None:
        return []
    where = Path(path)
    if not isinstance(sel, Mapping):
        return [field.type_invalid(where, sel, "must be an object")]
    errs = validate_labels(sel.get("matchLabels"), where.child("matchLabels"))
    expressions = sel.get("matchExpressions")
    if expressions is None:
        return errs
    if not isinstance(expressions, list):
        return [
            *errs,
            field.type_invalid(where.child("matchExpressions"), expressions, "must be an array"),
        ]
    for i, expr in enumerate(expressions):
        at = where.child("matchExpressions").index(i)
        if not isinstance(expr, Mapping):
            errs.append(field.type_invalid(at, expr, "must be an object"))
            continue
        # A missing operator or key decodes to "" in Kubernetes; report it the same way.
        op, key, values = (
            expr.get("operator") or "",
            expr.get("key") or "",
            expr.get("values") or [],
        )
        if not isinstance(values, list):
            errs.append(field.type_invalid(at.child("values"), values, "must be an array"))
            values = []
        if op in ("In", "NotIn"):
            if not values:
                detail = "must be specified when `operator` is 'In' or 'NotIn'"
                errs.append(field.required(at.child("values"), detail))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                detail = "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                errs.append(field.forbidden(at.child("values"), detail))
        else:
            errs.append(field.invalid(at.child("operator"), op, "not a valid selector operator"))
        if not isinstance(key, str):
            errs.append(field.type_invalid(at.child("key"), key, "must be a string"))
        else:
            errs.extend(field.invalid(at.child("key"), key, m) for m in formats.qualified_name(key))
        for j, value in enumerate(values):
            vpath = at.child("values").index(j)
            if not isinstance(value, str):
                errs.append(field.type_invalid(vpath, value, "must be a string"))
            else:
                errs.extend(field.invalid(vpath, value, m) for m in formats.label_value(value))
    return errs


# --- Field selectors (k8s.io/apimachinery/pkg/fields) -----------------------------------------

DEFAULT_SELECTABLE_FIELDS: frozenset[str] = frozenset({"metadata.name", "metadata.namespace"})

SELECTABLE_FIELDS: dict[str, frozenset[str]] = {
    "Pod": DEFAULT_SELECTABLE_FIELDS
    | {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "Event": DEFAULT_SELECTABLE_FIELDS
    | {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    "Namespace": DEFAULT_SELECTABLE_FIELDS | {"status.phase"},
    "Service": DEFAULT_SELECTABLE_FIELDS | {"spec.clusterIP", "spec.type"},
}


def selectable_fields(kind: str) -> frozenset[str]:
    """The field selector fields `kind` supports; kinds not listed have only the metadata two."""
    return SELECTABLE_FIELDS.get(kind, DEFAULT_SELECTABLE_FIELDS)


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        obj = obj.get(name) if isinstance(obj, Mapping) else None
    return obj


def _text(obj: Any, *path: str) -> str:
    # Absent and non-string fields read as "", as Go's zero value does.
    value = _get(obj, *path)
    return value if isinstance(value, str) else ""


def object_fields(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """The selectable fields of `obj` (a `kind` object as JSON), as its registry's ToSelectableFields."""
    fields = {
        "metadata.name": _text(obj, "metadata", "name"),
        "metadata.namespace": _text(obj, "metadata", "namespace"),
    }
    if kind == "Pod":
        # Kubernetes reads status.podIP from podIPs[0]; fall back to podIP if podIPs is unset.
        pod_ips = _get(obj, "status", "podIPs")
        first_ip = _text(pod_ips[0], "ip") if isinstance(pod_ips, list) and pod_ips else ""
        fields |= {
            "spec.nodeName": _text(obj, "spec", "nodeName"),
            "spec.restartPolicy": _text(obj, "spec", "restartPolicy"),
            "spec.schedulerName": _text(obj, "spec", "schedulerName"),
            "spec.serviceAccountName": _text(obj, "spec", "serviceAccountName"),
            "status.phase": _text(obj, "status", "phase"),
            "status.podIP": first_ip or _text(obj, "status", "podIP"),
            "status.nominatedNodeName": _text(obj, "status", "nominatedNodeName"),
        }
    elif kind == "Event":
        involved = {
            f"involvedObject.{name}": _text(obj, "involvedObject", name)
            for name in (
                "kind",
                "namespace",
                "name",
                "uid",
                "apiVersion",
                "resourceVersion",
                "fieldPath",
            )
        }
        fields |= involved | {
            "reason": _text(obj, "reason"),
            "reportingComponent": _text(obj, "reportingComponent"),
            # An event from the events.k8s.io API has no source; Kubernetes falls back.
            "source": _text(obj, "source", "component") or _text(obj, "reportingComponent"),
            "type": _text(obj, "type"),
        }
    elif kind == "Namespace":
        fields["status.phase"] = _text(obj, "status", "phase")
    elif kind == "Service":
        fields |= {
            "spec.clusterIP": _text(obj, "spec", "clusterIP"),
            "spec.type": _text(obj, "spec", "type"),
        }
    return fields


def escape_field_value(value: str) -> str:
    """Escape `\\`, `,` and `=` so `value` can stand in a field selector (fields.EscapeValue)."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


@dataclass(frozen=True)
class FieldTerm:
    """`field=value`, or `field!=value` when `negated`."""

    field: str
    value: str
    negated: bool = False

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Compare with the object's field; an absent field compares as ""."""
        return (fields.get(self.field, "") == self.value) != self.negated

    def __str__(self) -> str:
        return f"{self.field}{'!=' if self.negated else '='}{escape_field_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    """An AND of field terms, kept in the order of their string forms."""

    terms: tuple[FieldTerm, ...] = ()

    def __post_init__(self) -> None:
        # Kubernetes sorts the raw terms; sorting the canonical ones keeps str() a fixed point.
        object.__setattr__(self, "terms", tuple(sorted(self.terms, key=str)))

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether an object with this field set (see `object_fields`) is selected."""
        return all(t.matches(fields) for t in self.terms)

    def empty(self) -> bool:
        """True if the selector does not restrict anything."""
        return not self.terms

    def requires_exact_match(self, name: str) -> str | None:
        """The value `name` must equal for a match (`name=value` term), if there is one."""
        return next((t.value for t in self.terms if t.field == name and not t.negated), None)

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)


def _split_terms(text: str) -> list[str]:
    # Split on commas that are not escaped; escapes themselves are decoded later.
    terms, start, escaped = [], 0, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    # The first operator from the left wins, trying "!=" and "==" before "=".
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def _unescape(value: str) -> str:
    out, escaped = [], False
    for ch in value:
        if escaped:
            # Kubernetes knows \\ \, \=; \! is accepted too, as kubesvc documents it.
            if ch not in "\\,=!":
                raise bad_request(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            # Go prints the rune with %v, i.e. as its number: "... in value: 61" for "=".
            raise bad_request(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if escaped:
        raise bad_request("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(text: str, allowed: Collection[str]) -> FieldSelector:
    """Parse `?fieldSelector=` (`f=v`, `f==v`, `f!=v`, comma-separated) as `fields.ParseSelector`.

    No whitespace is trimmed, as in Kubernetes. Values unescape `\\\\`, `\\,`, `\\=` (and
    `\\!`). A field outside `allowed` raises bad_request: when `allowed` is just
    metadata.name/metadata.namespace the text is Kubernetes' generic one (`"foo" is not a
    known field selector: only "metadata.name", "metadata.namespace"`), otherwise the
    per-kind one (`field label not supported: foo`), as the API server answers for kinds
    without and with their own field conversions.
    """
    terms = []
    # Sorted like Kubernetes, so that of several bad terms the same one is reported.
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        lhs, op, rhs = split
        terms.append(FieldTerm(lhs, _unescape(rhs), negated=op == "!="))
    for term in terms:
        if term.field not in allowed:
            if frozenset(allowed) == DEFAULT_SELECTABLE_FIELDS:
                raise bad_request(
                    f"{_go_quote(term.field)} is not a known field selector: "
                    'only "metadata.name", "metadata.namespace"'
                )
            raise bad_request(f"field label not supported: {term.field}")
    return FieldSelector(tuple(terms))
