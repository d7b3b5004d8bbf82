"""Field paths and field errors, the unit of every validation failure.

A `FieldError` names the field (`spec.ports[1].name`), the kind of failure
(the `reason` strings Kubernetes puts in `Status.details.causes`), the bad
value and why it is bad. Its text follows Kubernetes' layout:
`spec.ports[0].name: Invalid value: "123_abc": <why>`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

INVALID = "FieldValueInvalid"
REQUIRED = "FieldValueRequired"
DUPLICATE = "FieldValueDuplicate"
NOT_SUPPORTED = "FieldValueNotSupported"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
TYPE_INVALID = "FieldValueTypeInvalid"
TOO_MANY = "FieldValueTooMany"

_TITLE = {
    INVALID: "Invalid value",
    REQUIRED: "Required value",
    DUPLICATE: "Duplicate value",
    NOT_SUPPORTED: "Unsupported value",
    FORBIDDEN: "Forbidden",
    TOO_LONG: "Too long",
    TYPE_INVALID: "Invalid value",
    TOO_MANY: "Too many",
}

# Reasons whose text shows the offending value.
_SHOWS_VALUE = {INVALID, DUPLICATE, NOT_SUPPORTED, TYPE_INVALID, TOO_MANY}

_OMITTED = object()


class Path(str):
    """A field path that builds its children: `Path("spec").child("ports").index(1)`."""

    def child(self, *names: str) -> Path:
        out = str(self)
        for name in names:
            out = f"{out}.{name}" if out else name
        return Path(out)

    def index(self, i: int) -> Path:
        return Path(f"{self}[{i}]")

    def key(self, k: str) -> Path:
        return Path(f"{self}[{k}]")


ROOT = Path("")


def show_value(value: Any) -> str:
    """Render a bad value as Kubernetes does: strings quoted, numbers bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "null"
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


@dataclass(frozen=True)
class FieldError:
    reason: str
    field: str
    value: Any = _OMITTED
    detail: str = ""

    def body(self) -> str:
        """The message without the field name, as Status causes carry it."""
        text = _TITLE[self.reason]
        if self.reason in _SHOWS_VALUE and self.value is not _OMITTED:
            text += f": {show_value(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def summary(self) -> str:
        return f"{self.field}: {self.body()}" if self.field else self.body()

    def cause(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.body(), "field": self.field}

    def __str__(self) -> str:
        return self.summary()


def invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError(INVALID, field, value, detail)


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(REQUIRED, field, _OMITTED, detail)


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError(DUPLICATE, field, value)


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    shown = ", ".join(json.dumps(s) for s in supported)
    return FieldError(NOT_SUPPORTED, field, value, f"supported values: {shown}")


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(FORBIDDEN, field, _OMITTED, detail)


def too_long(field: str, max_length: int) -> FieldError:
    return FieldError(TOO_LONG, field, _OMITTED, f"may not be more than {max_length} bytes")


def type_invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError(TYPE_INVALID, field, value, detail)


def too_many(field: str, count: int, max_items: int) -> FieldError:
    return FieldError(TOO_MANY, field, count, f"must have at most {max_items} items")
