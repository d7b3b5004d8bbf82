"""ObjectMeta: validation on create and update, shared by every kind."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubesvc.api import formats, shape
from kubesvc.api.field import (
    TOO_LONG,
    FieldError,
    Path,
    forbidden,
    invalid,
    required,
    type_invalid,
)
from kubesvc.api.shape import Errors


def rfc3339(ts: float | None = None, *, nanos: bool = False) -> str:
    """A Kubernetes `Time` (or, with `nanos`, a `MicroTime`-like) stamp; now by default."""
    moment = datetime.fromtimestamp(ts if ts is not None else time.time(), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if nanos else "%Y-%m-%dT%H:%M:%SZ")


NameCheck = Callable[[str], list[str]]

# Kubernetes caps the sum of annotation keys and values at 256 KiB.
ANNOTATIONS_MAX_BYTES = 256 * 1024
IMMUTABLE = "field is immutable"


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    """Field errors for a label map (`metadata.labels`, a Service's `spec.selector`).

    As Kubernetes' ValidateLabels, errors for keys and values alike point at `path` itself.
    """
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [type_invalid(path, labels, "must be an object")]
    errs: list[FieldError] = []
    for key, value in labels.items():
        errs.extend(invalid(path, key, m) for m in formats.qualified_name(key))
        if not isinstance(value, str):
            errs.append(type_invalid(path, value, "must be a string"))
        else:
            errs.extend(invalid(path, value, m) for m in formats.label_value(value))
    return errs


def validate_annotations(value: Any, path: Path, errs: Errors) -> None:
    annotations = shape.string_map(value, path, errs)
    total = 0
    for key, val in annotations.items():
        for msg in formats.qualified_name(key.lower()):
            errs.append(invalid(path, key, msg))
        total += len(key.encode()) + len(val.encode())
    if total > ANNOTATIONS_MAX_BYTES:
        errs.append(
            FieldError(TOO_LONG, path, detail=f"must have at most {ANNOTATIONS_MAX_BYTES} bytes")
        )


def validate_object_meta(
    obj: dict[str, Any], *, namespaced: bool, name_check: NameCheck, errs: Errors
) -> dict[str, Any]:
    """Check `obj["metadata"]`; returns it (or {} when it is not an object)."""
    path = Path("metadata")
    meta = shape.mapping(obj.get("metadata"), path, errs)
    name = shape.string(meta.get("name"), path.child("name"), errs)
    generate_name = shape.string(meta.get("generateName"), path.child("generateName"), errs)
    if name:
        for msg in name_check(name):
            errs.append(invalid(path.child("name"), name, msg))
    elif generate_name:
        # The prefix will get random characters appended, so a trailing "-" is fine.
        for msg in name_check(generate_name.rstrip("-") or "a"):
            errs.append(invalid(path.child("generateName"), generate_name, msg))
    else:
        errs.append(required(path.child("name"), "name or generateName is required"))

    namespace = shape.string(meta.get("namespace"), path.child("namespace"), errs)
    if namespaced:
        if not namespace:
            errs.append(required(path.child("namespace")))
        else:
            for msg in formats.dns1123_label(namespace):
                errs.append(invalid(path.child("namespace"), namespace, msg))
    elif namespace:
        errs.append(forbidden(path.child("namespace"), "not allowed on this type"))

    errs.extend(validate_labels(meta.get("labels"), path.child("labels")))
    validate_annotations(meta.get("annotations"), path.child("annotations"), errs)
    for i, fin in enumerate(shape.sequence(meta.get("finalizers"), path.child("finalizers"), errs)):
        fin_path = path.child("finalizers").index(i)
        text = shape.string(fin, fin_path, errs)
        if text is not None:
            for msg in formats.qualified_name(text):
                errs.append(invalid(fin_path, text, msg))
    for key in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp"):
        shape.string(meta.get(key), path.child(key), errs)
    shape.integer(meta.get("generation"), path.child("generation"), errs)
    shape.sequence(meta.get("ownerReferences"), path.child("ownerReferences"), errs)
    shape.sequence(meta.get("managedFields"), path.child("managedFields"), errs)
    return meta


def validate_object_meta_update(new: dict[str, Any], old: dict[str, Any], errs: Errors) -> None:
    """Fields of metadata that no update may change."""
    new_meta = new.get("metadata") if isinstance(new.get("metadata"), dict) else {}
    old_meta = old.get("metadata") if isinstance(old.get("metadata"), dict) else {}
    path = Path("metadata")
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        before, after = old_meta.get(key), new_meta.get(key)
        # An update that leaves a server-set field out keeps the stored value.
        if key in ("uid", "creationTimestamp") and after in (None, ""):
            continue
        if before != after:
            errs.append(invalid(path.child(key), after, IMMUTABLE))
