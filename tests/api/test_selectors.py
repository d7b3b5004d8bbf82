"""Label and field selectors: parsing, errors, matching and canonical forms, table-driven.

Expected error texts are Kubernetes' own (k8s.io/apimachinery labels and fields packages).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubesvc.api import field, formats
from kubesvc.api.errors import StatusError
from kubesvc.api.meta import validate_labels
from kubesvc.api.selectors import (
    DEFAULT_SELECTABLE_FIELDS,
    SELECTABLE_FIELDS,
    FieldSelector,
    FieldTerm,
    LabelSelector,
    Operator,
    Requirement,
    escape_field_value,
    from_label_selector,
    from_set,
    object_fields,
    parse_field_selector,
    parse_label_selector,
    selectable_fields,
    validate_label_selector,
)

NAME_REGEX = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_REGEX = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
PREFIX_REGEX = (
    "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
    "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
    "'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
PARSE = "unable to parse requirement: "
OPERATORS = "expected: in, notin, =, ==, !=, gt, lt"


def raises_400(fn: Any, *args: Any) -> str:
    """Call fn, expect a 400 StatusError, return its message."""
    with pytest.raises(StatusError) as info:
        fn(*args)
    assert info.value.code == 400
    assert info.value.reason == "BadRequest"
    return info.value.message


# --- Label keys and values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        ("app", []),
        ("A.b_c-9", []),
        ("k8s.io/app", []),
        ("a" * 63, []),
        ("x" * 250 + ".io/a", []),
        ("", ["name part must be non-empty", "name part " + NAME_REGEX]),
        ("a" * 64, ["name part must be no more than 63 characters"]),
        ("-a", ["name part " + NAME_REGEX]),
        ("a_", ["name part " + NAME_REGEX]),
        ("a b", ["name part " + NAME_REGEX]),
        ("/a", ["prefix part must be non-empty"]),
        ("a/", ["name part must be non-empty", "name part " + NAME_REGEX]),
        ("Example.com/a", [PREFIX_REGEX]),
        ("x" * 254 + "/a", ["prefix part must be no more than 253 characters"]),
        (
            "a/b/c",
            [
                "a qualified name " + NAME_REGEX + " with an optional DNS subdomain prefix "
                "and '/' (e.g. 'example.com/MyName')"
            ],
        ),
        ("é", ["name part " + NAME_REGEX]),
    ],
)
def test_qualified_name_errors(value: str, errors: list[str]) -> None:
    assert formats.qualified_name(value) == errors


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        ("", []),
        ("v1.2_3-x", []),
        ("a" * 63, []),
        ("a" * 64, ["must be no more than 63 characters"]),
        ("-a", [VALUE_REGEX]),
        ("a.", [VALUE_REGEX]),
        ("a/b", [VALUE_REGEX]),
        # Length counts UTF-8 bytes, as Go does: 32 two-byte characters are 64 bytes.
        ("é" * 32, ["must be no more than 63 characters", VALUE_REGEX]),
    ],
)
def test_label_value_errors(value: str, errors: list[str]) -> None:
    assert formats.label_value(value) == errors


# --- Parsing label selectors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("", ""),
        ("a=b", "a=b"),
        ("a==b", "a==b"),
        ("a!=b", "a!=b"),
        ("a in (x,y)", "a in (x,y)"),
        ("a in (y,x,y)", "a in (x,y)"),  # values are a set: sorted, deduplicated
        ("a notin (x)", "a notin (x)"),
        ("a", "a"),
        ("!a", "!a"),
        ("a>1", "a>1"),
        ("a<10", "a<10"),
        ("a=", "a="),  # the empty value
        ("a!=", "a!="),
        ("a in ()", "a in ()"),
        ("a in (,x)", "a in (,x)"),
        ("a in (x,)", "a in (,x)"),
        ("a notin (x,,y)", "a notin (,x,y)"),
        ("a in (,)", "a in ()"),
        ("z,a=b,m", "a=b,m,z"),  # sorted by key
        ("b=1,a=2,b!=3", "a=2,b=1,b!=3"),  # stable for equal keys
        ("  a  =  b  ,  c  ", "a=b,c"),
        ("a\tin\n(\rx , y )", "a in (x,y)"),
        ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
        ("in in (in)", "in in (in)"),  # keywords are words where a key or value may stand
        ("notin notin (in,notin)", "notin notin (in,notin)"),
        ("a=in", "a=in"),
        ("k8s.io/app=web", "k8s.io/app=web"),
        ("!tier,app.kubernetes.io/name in (a,b)", "app.kubernetes.io/name in (a,b),!tier"),
        ("a>05", "a>05"),
        # Kubernetes' lexer reads a NUL as the end of the string (a quirk kept for fidelity).
        ("a\0", "a"),
        ("a\0,b", "a,b"),
        ("a,\0b", "a,b"),  # a NUL right after a token is consumed with it
        ("a=\0b", "a=b"),
    ],
)
def test_parse_label_selector(text: str, canonical: str) -> None:
    sel = parse_label_selector(text)
    assert str(sel) == canonical
    assert parse_label_selector(canonical) == sel  # the canonical form round-trips


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (",", "found ',', expected: !, identifier, or 'end of string'"),
        ("=a", "found '=', expected: !, identifier, or 'end of string'"),
        ("(", "found '(', expected: !, identifier, or 'end of string'"),
        ("a,", "found '', expected: identifier after ','"),
        ("a,,b", "found ',', expected: identifier after ','"),
        ("a b", PARSE + f"found 'b', {OPERATORS}"),
        ("a ! b", PARSE + f"found '!', {OPERATORS}"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("a=b=c", "found '=', expected: ',' or 'end of string'"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("a=b)", "found ')', expected: ',' or 'end of string'"),
        ("!", PARSE + "found '', expected: identifier"),
        ("!!a", PARSE + "found '!', expected: identifier"),
        ("a=(", PARSE + "found '(', expected: identifier"),
        ("a<=1", PARSE + "found '=', expected: identifier"),
        ("a in x", PARSE + "found 'x' expected: '('"),
        ("a in", PARSE + "found '' expected: '('"),
        ("a in (", PARSE + "found '', expected: ',', ')' or identifier"),
        ("a in (=", PARSE + "found '=', expected: ',', ')' or identifier"),
        ("a in (b", PARSE + "found '', expected: ',' or ')'"),
        ("a in (b c)", PARSE + "found 'c', expected: ',' or ')'"),
        ("a in (b,=)", PARSE + "found '=', expected: ',', or identifier"),
        ("-a", PARSE + '<nil>: Invalid value: "-a": name part ' + NAME_REGEX),
        ("!a_", PARSE + '<nil>: Invalid value: "a_": name part ' + NAME_REGEX),
        ("/a=b", PARSE + '<nil>: Invalid value: "/a": prefix part must be non-empty'),
        (
            "a" * 64,
            PARSE
            + f'<nil>: Invalid value: "{"a" * 64}": name part must be no more than 63 characters',
        ),
        (
            "a/=b",
            PARSE
            + '<nil>: Invalid value: "a/": name part must be non-empty; name part '
            + NAME_REGEX,
        ),
        ("a=-b", PARSE + 'values[0][a]: Invalid value: "-b": ' + VALUE_REGEX),
        ("a in (x,-y)", PARSE + 'values[0][a]: Invalid value: "-y": ' + VALUE_REGEX),
        (
            "a>x",
            PARSE
            + "values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        (
            "a<",
            PARSE
            + "values[0]: Invalid value: \"\": for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        (
            "a>99999999999999999999",
            PARSE
            + "values[0]: Invalid value: \"99999999999999999999\": for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        # "-1" is an integer but not a valid label value, so Kubernetes rejects it.
        ("a>-1", PARSE + 'values[0][a]: Invalid value: "-1": ' + VALUE_REGEX),
        (
            "a>-x",
            PARSE
            + "[values[0]: Invalid value: \"-x\": for 'Gt', 'Lt' operators, the value must be an integer, "
            + 'values[0][a]: Invalid value: "-x": '
            + VALUE_REGEX
            + "]",
        ),
        (
            "a=" + "b" * 64,
            PARSE
            + f'values[0][a]: Invalid value: "{"b" * 64}": must be no more than 63 characters',
        ),
        ('a"b', PARSE + '<nil>: Invalid value: "a\\"b": name part ' + NAME_REGEX),
        ("a\x01", PARSE + '<nil>: Invalid value: "a\\x01": name part ' + NAME_REGEX),
        ("a\u00a0b", PARSE + '<nil>: Invalid value: "a\\u00a0b": name part ' + NAME_REGEX),
        ("a, \0b", "found '', expected: identifier after ','"),
        ("a=\ud800", PARSE + 'values[0][a]: Invalid value: "\\ud800": ' + VALUE_REGEX),
    ],
)
def test_parse_label_selector_errors(text: str, message: str) -> None:
    assert raises_400(parse_label_selector, text) == message


def test_parsed_requirements() -> None:
    sel = parse_label_selector("b in (y,x),!c,a==1,d>3")
    assert sel.requirements == (
        Requirement("a", Operator.DOUBLE_EQUALS, ("1",)),
        Requirement("b", Operator.IN, ("x", "y")),
        Requirement("c", Operator.DOES_NOT_EXIST),
        Requirement("d", Operator.GT, ("3",)),
    )


# --- Matching labels -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("", {}, True),
        ("", None, True),
        ("", {"a": "b"}, True),
        ("a=b", {"a": "b"}, True),
        ("a=b", {"a": "b", "c": "d"}, True),
        ("a==b", {"a": "b"}, True),
        ("a=b", {"a": "c"}, False),
        ("a=b", {}, False),
        ("a=b", None, False),
        ("a=", {"a": ""}, True),
        ("a=", {}, False),
        ("a!=b", {}, True),
        ("a!=b", {"a": "b"}, False),
        ("a!=b", {"a": "c"}, True),
        ("a in (x,y)", {"a": "y"}, True),
        ("a in (x,y)", {"a": "z"}, False),
        ("a in (x,y)", {}, False),
        ("a in ()", {"a": ""}, True),
        ("a in (,x)", {"a": ""}, True),
        ("a notin (x,y)", {}, True),
        ("a notin (x,y)", {"a": "x"}, False),
        ("a notin (x,y)", {"a": "z"}, True),
        ("a", {"a": ""}, True),
        ("a", {"b": "a"}, False),
        ("!a", {}, True),
        ("!a", {"a": "x"}, False),
        ("a>1", {"a": "2"}, True),
        ("a>1", {"a": "1"}, False),
        ("a>1", {"a": "+5"}, True),  # strconv.ParseInt accepts a sign
        ("a>1", {"a": "-3"}, False),
        ("a>1", {"a": "x"}, False),
        ("a>1", {"a": "1_000"}, False),  # no Python-only integer syntax
        ("a>1", {"a": " 5"}, False),
        ("a>1", {"a": "99999999999999999999"}, False),  # beyond int64
        ("a>1", {}, False),
        ("a<1", {"a": "-3"}, True),
        ("a<1", {"a": "0"}, True),
        ("a<1", {"a": "1"}, False),
        ("a<1", {}, False),
        ("a=b,c", {"a": "b", "c": "x"}, True),
        ("a=b,c", {"a": "b"}, False),
        ("a=b,!c", {"a": "b"}, True),
        ("a=1,a=2", {"a": "1"}, False),
        ("k8s.io/app=web,tier notin (db)", {"k8s.io/app": "web", "tier": "fe"}, True),
    ],
)
def test_label_selector_matches(text: str, labels: dict[str, str] | None, expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


def test_everything_and_nothing() -> None:
    assert LabelSelector.everything().empty()
    assert LabelSelector.everything().matches({"a": "b"})
    assert parse_label_selector("").empty()
    assert not parse_label_selector("a").empty()
    nothing = LabelSelector.nothing()
    assert not nothing.empty()
    assert not nothing.matches({})
    assert not nothing.matches(None)
    assert str(nothing) == ""


def test_label_selector_is_immutable_and_hashable() -> None:
    sel = parse_label_selector("b,a")
    with pytest.raises(AttributeError):
        sel.requirements = ()  # type: ignore[misc]
    assert hash(sel) == hash(parse_label_selector("a,b"))
    # Built directly, requirements are still kept in key order.
    direct = LabelSelector((Requirement("b", Operator.EXISTS), Requirement("a", Operator.EXISTS)))
    assert direct == sel
    assert str(direct) == "a,b"


# --- Selectors from maps and LabelSelector objects -------------------------------------------


@pytest.mark.parametrize(
    ("labels", "canonical", "empty"),
    [
        (None, "", True),
        ({}, "", True),
        ({"app": "web"}, "app=web", False),
        ({"tier": "fe", "app": "web"}, "app=web,tier=fe", False),
        ({"a": ""}, "a=", False),
    ],
)
def test_from_set(labels: dict[str, str] | None, canonical: str, empty: bool) -> None:
    sel = from_set(labels)
    assert str(sel) == canonical
    assert sel.empty() is empty
    assert sel.matches({"app": "web", "tier": "fe", "a": ""})


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"-a": "b"}, 'key: Invalid value: "-a": name part ' + NAME_REGEX),
        ({"a": "-b"}, 'values[0][a]: Invalid value: "-b": ' + VALUE_REGEX),
        ({"z": "-", "a": "-"}, 'values[0][a]: Invalid value: "-": ' + VALUE_REGEX),
        ({"a": 1}, "label selector values must be strings, not [1]"),
    ],
)
def test_from_set_errors(labels: dict[str, Any], message: str) -> None:
    assert raises_400(from_set, labels) == message


def test_from_set_without_validation() -> None:
    assert from_set({"-a": "b"}, validate=False).matches({"-a": "b"})


@pytest.mark.parametrize(
    ("sel", "canonical", "matching", "not_matching"),
    [
        ({}, "", {}, None),
        ({"matchLabels": {}, "matchExpressions": []}, "", {"x": "y"}, None),
        ({"matchLabels": {"app": "web"}}, "app=web", {"app": "web"}, {"app": "db"}),
        (
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]},
            "tier in (be,fe)",
            {"tier": "be"},
            {"tier": "db"},
        ),
        (
            {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]},
            "tier notin (db)",
            {},
            {"tier": "db"},
        ),
        (
            {"matchExpressions": [{"key": "canary", "operator": "Exists"}]},
            "canary",
            {"canary": ""},
            {},
        ),
        (
            {"matchExpressions": [{"key": "canary", "operator": "DoesNotExist", "values": []}]},
            "!canary",
            {},
            {"canary": "1"},
        ),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["fe"]},
                    {"key": "env", "operator": "NotIn", "values": ["prod"]},
                ],
            },
            "app=web,env notin (prod),tier in (fe)",
            {"app": "web", "tier": "fe"},
            {"app": "web", "tier": "fe", "env": "prod"},
        ),
    ],
)
def test_from_label_selector(
    sel: dict[str, Any],
    canonical: str,
    matching: dict[str, str],
    not_matching: dict[str, str] | None,
) -> None:
    selector = from_label_selector(sel)
    assert str(selector) == canonical
    assert selector.matches(matching)
    if not_matching is not None:
        assert not selector.matches(not_matching)
    assert parse_label_selector(canonical).matches(matching)


def test_null_label_selector_selects_nothing() -> None:
    sel = from_label_selector(None)
    assert sel == LabelSelector.nothing()
    assert not sel.matches({})


@pytest.mark.parametrize(
    ("sel", "message"),
    [
        (
            {"matchExpressions": [{"key": "a", "operator": "In"}]},
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]},
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            'values: Invalid value: ["x"]: values set must be empty for exists and does not exist',
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
            '"Gt" is not a valid label selector operator',
        ),
        ({"matchExpressions": [{"key": "a"}]}, '"" is not a valid label selector operator'),
        (
            {"matchExpressions": [{"key": "-a", "operator": "Exists"}]},
            'key: Invalid value: "-a": name part ' + NAME_REGEX,
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", "-y"]}]},
            'values[1][a]: Invalid value: "-y": ' + VALUE_REGEX,
        ),
        (
            {"matchExpressions": [{"key": "-a", "operator": "In"}]},
            '[key: Invalid value: "-a": name part '
            + NAME_REGEX
            + ", values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty]",
        ),
        ({"matchLabels": {"a": "-"}}, 'values[0][a]: Invalid value: "-": ' + VALUE_REGEX),
        ({"matchLabels": ["a"]}, 'matchLabels must be an object, not ["a"]'),
        ({"matchExpressions": "a"}, 'matchExpressions must be a list, not "a"'),
        ({"matchExpressions": ["a"]}, 'matchExpressions entry must be an object, not "a"'),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]},
            'label selector values must be strings, not "x"',
        ),
        ("a=b", 'label selector must be an object, not "a=b"'),
    ],
)
def test_from_label_selector_errors(sel: Any, message: str) -> None:
    assert raises_400(from_label_selector, sel) == message


# --- Validating LabelSelector objects --------------------------------------------------------


@pytest.mark.parametrize(
    ("sel", "expected"),
    [
        (None, []),
        ({}, []),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "a", "operator": "In", "values": ["x"]},
                    {"key": "k8s.io/b", "operator": "DoesNotExist"},
                ],
            },
            [],
        ),
        (
            {"matchLabels": {"-a": "b", "c": "-d"}},
            [
                'spec.selector.matchLabels: Invalid value: "-a": name part ' + NAME_REGEX,
                'spec.selector.matchLabels: Invalid value: "-d": ' + VALUE_REGEX,
            ],
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In"}]},
            [
                "spec.selector.matchExpressions[0].values: Required value: "
                "must be specified when `operator` is 'In' or 'NotIn'"
            ],
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]},
            [
                "spec.selector.matchExpressions[0].values: Required value: "
                "must be specified when `operator` is 'In' or 'NotIn'"
            ],
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            [
                "spec.selector.matchExpressions[0].values: Forbidden: "
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
            ],
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]},
            [
                'spec.selector.matchExpressions[0].operator: Invalid value: "in": '
                "not a valid selector operator"
            ],
        ),
        (
            {
                "matchExpressions": [
                    {"operator": "Exists"},
                    {"key": "b", "operator": "In", "values": ["-"]},
                ]
            },
            [
                'spec.selector.matchExpressions[0].key: Invalid value: "": name part must be non-empty',
                'spec.selector.matchExpressions[0].key: Invalid value: "": name part ' + NAME_REGEX,
                'spec.selector.matchExpressions[1].values[0]: Invalid value: "-": ' + VALUE_REGEX,
            ],
        ),
        ("x", ['spec.selector: Invalid value: "x": must be an object']),
        (
            {"matchExpressions": ["x"]},
            ['spec.selector.matchExpressions[0]: Invalid value: "x": must be an object'],
        ),
        (
            {"matchExpressions": {"key": "a"}},
            ['spec.selector.matchExpressions: Invalid value: {"key": "a"}: must be an array'],
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]},
            ["spec.selector.matchExpressions[0].values[0]: Invalid value: 1: must be a string"],
        ),
    ],
)
def test_validate_label_selector(sel: Any, expected: list[str]) -> None:
    errors = validate_label_selector(sel, "spec.selector")
    assert [str(e) for e in errors] == expected


def test_validate_label_selector_reasons() -> None:
    sel = {
        "matchExpressions": [
            {"key": "a", "operator": "Bad"},
            {"key": "a", "operator": "In"},
            {"key": "a", "operator": "Exists", "values": ["x"]},
        ]
    }
    errors = validate_label_selector(sel, "spec.selector")
    assert [(e.reason, e.field) for e in errors] == [
        (field.INVALID, "spec.selector.matchExpressions[0].operator"),
        (field.REQUIRED, "spec.selector.matchExpressions[1].values"),
        (field.FORBIDDEN, "spec.selector.matchExpressions[2].values"),
    ]


def test_validate_labels() -> None:
    assert validate_labels({"app": "web", "k8s.io/x": ""}, "spec.selector") == []
    assert validate_labels(None, "spec.selector") == []
    errors = validate_labels({"app": "-", "b": None}, "spec.selector")
    assert [str(e) for e in errors] == [
        'spec.selector: Invalid value: "-": ' + VALUE_REGEX,
        "spec.selector: Invalid value: null: must be a string",
    ]


# --- Field selectors -------------------------------------------------------------------------

POD = SELECTABLE_FIELDS["Pod"]


@pytest.mark.parametrize(
    ("text", "canonical", "terms"),
    [
        ("", "", ()),
        (",", "", ()),
        ("metadata.name=web", "metadata.name=web", (FieldTerm("metadata.name", "web"),)),
        ("metadata.name==web", "metadata.name=web", (FieldTerm("metadata.name", "web"),)),
        ("metadata.name!=web", "metadata.name!=web", (FieldTerm("metadata.name", "web", True),)),
        ("metadata.name=", "metadata.name=", (FieldTerm("metadata.name", ""),)),
        (
            "status.phase=Running,spec.nodeName=n1",
            "spec.nodeName=n1,status.phase=Running",
            (FieldTerm("spec.nodeName", "n1"), FieldTerm("status.phase", "Running")),
        ),
        ("metadata.name=a\\,b", "metadata.name=a\\,b", (FieldTerm("metadata.name", "a,b"),)),
        ("metadata.name=a\\=b", "metadata.name=a\\=b", (FieldTerm("metadata.name", "a=b"),)),
        ("metadata.name=a\\\\b", "metadata.name=a\\\\b", (FieldTerm("metadata.name", "a\\b"),)),
        ("metadata.name=a\\!b", "metadata.name=a!b", (FieldTerm("metadata.name", "a!b"),)),
        ("metadata.name=!x", "metadata.name=!x", (FieldTerm("metadata.name", "!x"),)),
        ("metadata.name!=!", "metadata.name!=!", (FieldTerm("metadata.name", "!", True),)),
        ("metadata.name==", "metadata.name=", (FieldTerm("metadata.name", ""),)),
        ("metadata.name=\\=", "metadata.name=\\=", (FieldTerm("metadata.name", "="),)),
        ("metadata.name=a b", "metadata.name=a b", (FieldTerm("metadata.name", "a b"),)),
        ("metadata.name=é", "metadata.name=é", (FieldTerm("metadata.name", "é"),)),
    ],
)
def test_parse_field_selector(text: str, canonical: str, terms: tuple[FieldTerm, ...]) -> None:
    sel = parse_field_selector(text, POD)
    assert sel.terms == terms
    assert str(sel) == canonical
    assert parse_field_selector(canonical, POD) == sel


@pytest.mark.parametrize(
    ("text", "allowed", "message"),
    [
        ("x", POD, "invalid selector: 'x'; can't understand 'x'"),
        ("metadata.name=a,b", POD, "invalid selector: 'metadata.name=a,b'; can't understand 'b'"),
        # Terms are sorted before parsing, so the first bad term in sorted order is reported.
        ("z,y", POD, "invalid selector: 'z,y'; can't understand 'y'"),
        ("metadata.name=a=b", POD, "invalid field selector: unescaped character in value: 61"),
        ("metadata.name===", POD, "invalid field selector: unescaped character in value: 61"),
        ("metadata.name=a\\x", POD, "invalid field selector: invalid escape sequence: \\x"),
        ("metadata.name=a\\", POD, "invalid field selector: invalid escape sequence: \\"),
        ("foo=bar", POD, "field label not supported: foo"),
        ("spec.hostname=x", POD, "field label not supported: spec.hostname"),
        ("metadata.name=x,b=1,a=1", POD, "field label not supported: a"),
        # No trimming, as in Kubernetes.
        (" metadata.name=x", POD, "field label not supported:  metadata.name"),
        ("metadata.name =x", POD, "field label not supported: metadata.name "),
        (
            "foo=bar",
            DEFAULT_SELECTABLE_FIELDS,
            '"foo" is not a known field selector: only "metadata.name", "metadata.namespace"',
        ),
        (
            "spec.nodeName=n1",
            selectable_fields("EndpointSlice"),
            '"spec.nodeName" is not a known field selector: only "metadata.name", "metadata.namespace"',
        ),
        (
            "spec.nodeName=n1",
            SELECTABLE_FIELDS["Service"],
            "field label not supported: spec.nodeName",
        ),
        # Syntax errors come before unknown fields.
        ("foo=bar,x", POD, "invalid selector: 'foo=bar,x'; can't understand 'x'"),
    ],
)
def test_parse_field_selector_errors(text: str, allowed: frozenset[str], message: str) -> None:
    assert raises_400(parse_field_selector, text, allowed) == message


@pytest.mark.parametrize(
    ("text", "fields", "expected"),
    [
        ("", {}, True),
        ("metadata.name=web", {"metadata.name": "web"}, True),
        ("metadata.name=web", {"metadata.name": "db"}, False),
        ("metadata.name!=web", {"metadata.name": "db"}, True),
        ("metadata.name!=web", {"metadata.name": "web"}, False),
        # An absent field reads as "", as Go's fields.Set.Get does.
        ("spec.nodeName=", {}, True),
        ("spec.nodeName!=", {}, False),
        ("spec.nodeName=n1", {}, False),
        ("spec.nodeName!=n1", {}, True),
        ("metadata.name=a\\,b", {"metadata.name": "a,b"}, True),
        (
            "metadata.namespace=default,status.phase!=Succeeded",
            {"metadata.namespace": "default", "status.phase": "Running"},
            True,
        ),
        (
            "metadata.namespace=default,status.phase!=Succeeded",
            {"metadata.namespace": "default", "status.phase": "Succeeded"},
            False,
        ),
    ],
)
def test_field_selector_matches(text: str, fields: dict[str, str], expected: bool) -> None:
    assert parse_field_selector(text, POD).matches(fields) is expected


def test_field_selector_helpers() -> None:
    sel = parse_field_selector("spec.nodeName=n1,metadata.name!=x", POD)
    assert sel.requires_exact_match("spec.nodeName") == "n1"
    assert sel.requires_exact_match("metadata.name") is None
    assert sel.requires_exact_match("status.phase") is None
    assert not sel.empty()
    assert FieldSelector().empty()
    assert escape_field_value("a\\b,c=d!") == "a\\\\b\\,c\\=d!"


POD_OBJECT = {
    "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
    "spec": {
        "nodeName": "n1",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "serviceAccountName": "default",
    },
    "status": {
        "phase": "Running",
        "podIP": "10.0.0.9",
        "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
        "nominatedNodeName": "n2",
    },
}
EVENT_OBJECT = {
    "metadata": {"name": "web-1.17", "namespace": "default"},
    "involvedObject": {
        "kind": "Pod",
        "namespace": "default",
        "name": "web-1",
        "uid": "u1",
        "apiVersion": "v1",
        "resourceVersion": "42",
        "fieldPath": "spec.containers{web}",
    },
    "reason": "Started",
    "reportingComponent": "kubelet",
    "source": {"component": "kubelet-n1"},
    "type": "Normal",
}


@pytest.mark.parametrize(
    ("kind", "obj", "expected"),
    [
        (
            "Pod",
            POD_OBJECT,
            {
                "metadata.name": "web-1",
                "metadata.namespace": "default",
                "spec.nodeName": "n1",
                "spec.restartPolicy": "Always",
                "spec.schedulerName": "default-scheduler",
                "spec.serviceAccountName": "default",
                "status.phase": "Running",
                "status.podIP": "10.0.0.5",  # podIPs[0], as Kubernetes reads it
                "status.nominatedNodeName": "n2",
            },
        ),
        (
            "Pod",
            {"metadata": {"name": "p"}, "status": {"podIP": "10.0.0.9"}},
            {
                "metadata.name": "p",
                "metadata.namespace": "",
                "spec.nodeName": "",
                "spec.restartPolicy": "",
                "spec.schedulerName": "",
                "spec.serviceAccountName": "",
                "status.phase": "",
                "status.podIP": "10.0.0.9",
                "status.nominatedNodeName": "",
            },
        ),
        (
            "Event",
            EVENT_OBJECT,
            {
                "metadata.name": "web-1.17",
                "metadata.namespace": "default",
                "involvedObject.kind": "Pod",
                "involvedObject.namespace": "default",
                "involvedObject.name": "web-1",
                "involvedObject.uid": "u1",
                "involvedObject.apiVersion": "v1",
                "involvedObject.resourceVersion": "42",
                "involvedObject.fieldPath": "spec.containers{web}",
                "reason": "Started",
                "reportingComponent": "kubelet",
                "source": "kubelet-n1",
                "type": "Normal",
            },
        ),
        (
            "Namespace",
            {"metadata": {"name": "default"}, "status": {"phase": "Active"}},
            {"metadata.name": "default", "metadata.namespace": "", "status.phase": "Active"},
        ),
        (
            "Service",
            {
                "metadata": {"name": "web", "namespace": "ns"},
                "spec": {"clusterIP": "10.96.0.10", "type": "ClusterIP"},
            },
            {
                "metadata.name": "web",
                "metadata.namespace": "ns",
                "spec.clusterIP": "10.96.0.10",
                "spec.type": "ClusterIP",
            },
        ),
        (
            "EndpointSlice",
            {"metadata": {"name": "web-abc", "namespace": "ns"}, "endpoints": []},
            {"metadata.name": "web-abc", "metadata.namespace": "ns"},
        ),
        ("ConfigMap", {}, {"metadata.name": "", "metadata.namespace": ""}),
        ("Pod", {"metadata": None, "spec": "x", "status": {"phase": 3}}, None),
    ],
)
def test_object_fields(kind: str, obj: dict[str, Any], expected: dict[str, str] | None) -> None:
    fields = object_fields(kind, obj)
    assert set(fields) == selectable_fields(kind)
    if expected is not None:
        assert fields == expected
    assert all(isinstance(v, str) for v in fields.values())


def test_event_source_falls_back_to_reporting_component() -> None:
    event = {**EVENT_OBJECT, "source": {}}
    assert object_fields("Event", event)["source"] == "kubelet"


def test_selectable_fields() -> None:
    assert set(SELECTABLE_FIELDS) == {"Pod", "Event", "Namespace", "Service"}
    for kind, fields in SELECTABLE_FIELDS.items():
        assert fields >= DEFAULT_SELECTABLE_FIELDS, kind
        assert isinstance(fields, frozenset)
    assert selectable_fields("Endpoints") == DEFAULT_SELECTABLE_FIELDS


def test_field_selector_on_objects() -> None:
    sel = parse_field_selector("spec.nodeName=n1,status.phase!=Failed", selectable_fields("Pod"))
    assert sel.matches(object_fields("Pod", POD_OBJECT))
    assert not sel.matches(object_fields("Pod", {**POD_OBJECT, "spec": {"nodeName": "n2"}}))


# --- Properties ------------------------------------------------------------------------------

# Text dense in selector syntax, so that generated input reaches deep into the parsers.
SYNTAX = st.lists(st.sampled_from([*"ab1/.-_ =!(),<>\\\t\0é", "in", "notin"]), max_size=30).map(
    "".join
)


@given(st.one_of(st.text(), SYNTAX))
def test_label_parser_raises_only_status_errors(text: str) -> None:
    try:
        sel = parse_label_selector(text)
    except StatusError as err:
        assert err.code == 400
        return
    # Whatever parses has a canonical form that parses back to the same selector.
    assert parse_label_selector(str(sel)) == sel


@given(st.one_of(st.text(), SYNTAX), st.sampled_from([POD, DEFAULT_SELECTABLE_FIELDS]))
def test_field_parser_raises_only_status_errors(text: str, allowed: frozenset[str]) -> None:
    try:
        sel = parse_field_selector(text, allowed)
    except StatusError as err:
        assert err.code == 400
        return
    assert parse_field_selector(str(sel), allowed) == sel


LABEL_KEYS = st.sampled_from(["a", "b", "k8s.io/app", "in", "x-1"])
LABEL_VALUES = st.sampled_from(["", "x", "y", "1", "20", "in"])
REQUIREMENT_TEXT = st.one_of(
    st.builds(
        lambda k, op, v: f"{k}{op}{v}", LABEL_KEYS, st.sampled_from(["=", "==", "!="]), LABEL_VALUES
    ),
    st.builds(
        lambda k, op, vs: f"{k} {op} ({','.join(vs)})",
        LABEL_KEYS,
        st.sampled_from(["in", "notin"]),
        # Kubernetes refuses "()" and two empty values in a row ("(,,)"): generate neither.
        st.lists(LABEL_VALUES, min_size=1, max_size=3, unique=True).filter(any),
    ),
    st.builds(
        lambda k, op, v: f"{k}{op}{v}",
        LABEL_KEYS,
        st.sampled_from([">", "<"]),
        st.sampled_from(["0", "1", "20"]),
    ),
    st.builds(lambda neg, k: f"{neg}{k}", st.sampled_from(["", "!"]), LABEL_KEYS),
)


@given(
    st.lists(REQUIREMENT_TEXT, max_size=4),
    st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=4),
)
def test_canonical_form_selects_the_same(terms: list[str], labels: dict[str, str]) -> None:
    sel = parse_label_selector(",".join(terms))
    again = parse_label_selector(str(sel))
    assert again == sel
    assert again.matches(labels) == sel.matches(labels)
    # AND semantics: the selector matches exactly when every term does on its own.
    assert sel.matches(labels) == all(parse_label_selector(t).matches(labels) for t in terms)


@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(POD)), st.booleans(), st.text(max_size=8)), max_size=4
    )
)
def test_escaped_field_values_round_trip(terms: list[tuple[str, bool, str]]) -> None:
    text = ",".join(f"{f}{'!=' if neg else '='}{escape_field_value(v)}" for f, neg, v in terms)
    sel = parse_field_selector(text, POD)
    assert sorted((t.field, t.negated, t.value) for t in sel.terms) == sorted(
        (f, neg, v) for f, neg, v in terms
    )
