"""Arbitrary JSON-shaped input to defaulting and validation: errors come back, nothing raises."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubesvc.api import defaults, validation
from kubesvc.api.field import FieldError
from tests.api.objects import KINDS

KIND_NAMES = sorted(KINDS)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["name", "port", "ports", "spec", "metadata", "ip", "addresses", "x"])
            | st.text(max_size=8),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


def _run(obj: Any) -> None:
    defaults.apply_defaults(obj)
    errors = validation.validate(obj)
    assert all(isinstance(e, FieldError) for e in errors)
    for err in errors:
        str(err)  # every error renders
        json.dumps(err.cause())  # and serialises into a Status
    if isinstance(obj, dict):
        errors = validation.validate_update(obj, copy.deepcopy(obj))
        assert all(isinstance(e, FieldError) for e in errors)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    kind=st.sampled_from([*KIND_NAMES, "Other", None, 3]),
    body=st.dictionaries(st.text(max_size=10), json_values, max_size=6),
)
def test_any_json_object_gets_errors_never_an_exception(kind: Any, body: dict[str, Any]) -> None:
    body["kind"] = kind
    _run(body)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a valid object, so mutations reach deep fields."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


@st.composite
def mutated_objects(draw: st.DrawFn) -> dict[str, Any]:
    obj = KINDS[draw(st.sampled_from(KIND_NAMES))]()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(obj)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        node: Any = obj
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = draw(json_values)
    return obj


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(obj=mutated_objects())
def test_valid_objects_with_any_field_replaced_never_raise(obj: dict[str, Any]) -> None:
    _run(obj)


@settings(max_examples=200, deadline=None)
@given(old=mutated_objects(), new=mutated_objects())
def test_updates_between_any_two_objects_never_raise(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    defaults.apply_defaults(old)
    defaults.apply_defaults(new)
    errors = validation.validate_update(new, old)
    assert all(isinstance(e, FieldError) for e in errors)
