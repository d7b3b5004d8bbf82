"""Typed reads from wire-shaped objects that report, rather than raise on, wrong types.

Objects arrive as parsed JSON or YAML, so any field may hold any JSON type.
Validation reads fields through these helpers: a value of the wrong type
becomes a `FieldValueTypeInvalid` error at its path and reads as absent,
so the rest of the object is still checked and nothing raises.
"""

from __future__ import annotations

from typing import Any

from kubesvc.api.field import FieldError, type_invalid

Errors = list[FieldError]


def mapping(value: Any, path: str, errs: Errors) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    errs.append(type_invalid(path, value, "must be an object"))
    return {}


def sequence(value: Any, path: str, errs: Errors) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    errs.append(type_invalid(path, value, "must be a list"))
    return []


def string(value: Any, path: str, errs: Errors) -> str | None:
    if value is None or isinstance(value, str):
        return value
    errs.append(type_invalid(path, value, "must be a string"))
    return None


def integer(value: Any, path: str, errs: Errors) -> int | None:
    # JSON has one number type; a whole float (80.0) is as good as 80, a bool is not a number.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        errs.append(type_invalid(path, value, "must be an integer"))
        return None
    if isinstance(value, float):
        if not value.is_integer():
            errs.append(type_invalid(path, value, "must be an integer"))
            return None
        return int(value)
    return value


def boolean(value: Any, path: str, errs: Errors) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    errs.append(type_invalid(path, value, "must be a boolean"))
    return None


def string_map(value: Any, path: str, errs: Errors) -> dict[str, str]:
    """A map of string to string (labels, annotations, selectors); bad entries are reported."""
    out: dict[str, str] = {}
    for key, item in mapping(value, path, errs).items():
        if isinstance(item, str):
            out[key] = item
        else:
            errs.append(type_invalid(f"{path}[{key}]", item, "must be a string"))
    return out


def dicts(value: Any) -> list[dict[str, Any]]:
    """The dict items of a list, for defaulting (which skips what validation will report)."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def child(obj: Any, key: str) -> dict[str, Any] | None:
    """`obj[key]` when both are dicts, for defaulting; None otherwise."""
    if isinstance(obj, dict):
        value = obj.get(key)
        if isinstance(value, dict):
            return value
    return None


def kind_of(obj: Any) -> str | None:
    """The object's `kind` when it is a string, else None."""
    if isinstance(obj, dict) and isinstance(obj.get("kind"), str):
        return obj["kind"]
    return None
