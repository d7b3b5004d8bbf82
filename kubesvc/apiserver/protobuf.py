"""Decode the Kubernetes protobuf request bodies kubectl sends, into the JSON shape.

kubectl 1.32+ creates namespaces (`kubectl create namespace`) and services
(`kubectl create service clusterip|nodeport|...`) with
`Content-Type: application/vnd.kubernetes.protobuf` and does not retry as JSON
when refused, so the API server must read these bodies. The format is:

    "k8s\\x00" + runtime.Unknown{1: TypeMeta{1: apiVersion, 2: kind},
                                 2: raw, 3: contentEncoding, 4: contentType}

where `raw` is the object itself, encoded from the field numbers of
k8s.io/api/core/v1/generated.proto. This module holds a small wire-format
reader (varints, length-delimited, fixed 32/64; unknown fields skipped) and
the message layouts of the two kinds, and produces the dict a JSON body would
have decoded to. Malformed input raises a 400 `StatusError` and nothing else.

Kubernetes' generated encoders write every non-pointer field, empty strings
and zeros included, where JSON would leave them out (`omitempty`). Those
empty values are dropped here, so the result equals the JSON kubectl would
have sent; pointer fields (`*bool`, `*string`) keep their value when present.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubesvc.api import errors
from kubesvc.api.errors import StatusError

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
MAX_VARINT_BYTES = 10

# Wire types of the protobuf encoding.
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class _Malformed(Exception):
    """Raised inside the decoder; turned into one 400 at the entry point."""


# ------------------------------------------------------------ wire reader


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value = 0
    for i in range(MAX_VARINT_BYTES):
        if pos >= end:
            raise _Malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    raise _Malformed("varint longer than 10 bytes")


def fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """Split one encoded message into (field number, wire type, value) triples.

    Varint and fixed values come back as unsigned ints, length-delimited ones as
    bytes. Raises a 400 StatusError for malformed input.
    """
    try:
        return _fields(buf)
    except _Malformed as err:
        raise errors.bad_request(f"invalid protobuf body: {err}") from None


def _fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    out: list[tuple[int, int, int | bytes]] = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Malformed("field number 0")
        value: int | bytes
        if wire == VARINT:
            value, pos = _varint(buf, pos, end)
        elif wire == FIXED64:
            if pos + 8 > end:
                raise _Malformed("truncated fixed64")
            value = int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        elif wire == LENGTH:
            length, pos = _varint(buf, pos, end)
            if length > end - pos:
                raise _Malformed(f"field {number} runs past the end of its message")
            value = buf[pos : pos + length]
            pos += length
        elif wire == FIXED32:
            if pos + 4 > end:
                raise _Malformed("truncated fixed32")
            value = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        else:
            # Groups (3, 4) are obsolete and never used by Kubernetes; 6 and 7 do not exist.
            raise _Malformed(f"unsupported wire type {wire} for field {number}")
        out.append((number, wire, value))
    return out


# ------------------------------------------------------- message layouts


@dataclass(frozen=True)
class Field:
    """One field of a message layout: JSON name, value type, and how to treat it."""

    name: str
    kind: str  # string, bytes, int32, int64, bool, message, map, intorstr, time, json
    repeated: bool = False
    keep: bool = False  # keep zero values: pointer fields, and fields JSON never omits
    message: dict[int, Field] | None = None


def _s(name: str, *, keep: bool = False) -> Field:
    return Field(name, "string", keep=keep)


def _strings(name: str) -> Field:
    return Field(name, "string", repeated=True)


def _msg(name: str, layout: dict[int, Field], *, repeated: bool = False) -> Field:
    return Field(name, "message", repeated=repeated, message=layout)


TYPE_META = {1: _s("apiVersion"), 2: _s("kind")}
UNKNOWN = {
    1: _msg("typeMeta", TYPE_META),
    2: Field("raw", "bytes"),
    3: _s("contentEncoding"),
    4: _s("contentType"),
}
OWNER_REFERENCE = {
    1: _s("kind"),
    3: _s("name"),
    4: _s("uid"),
    5: _s("apiVersion"),
    6: Field("controller", "bool", keep=True),
    7: Field("blockOwnerDeletion", "bool", keep=True),
}
MANAGED_FIELDS_ENTRY = {
    1: _s("manager"),
    2: _s("operation"),
    3: _s("apiVersion"),
    4: Field("time", "time"),
    6: _s("fieldsType"),
    7: _msg("fieldsV1", {1: Field("raw", "json")}),
    8: _s("subresource"),
}
OBJECT_META = {
    1: _s("name"),
    2: _s("generateName"),
    3: _s("namespace"),
    4: _s("selfLink"),
    5: _s("uid"),
    6: _s("resourceVersion"),
    7: Field("generation", "int64"),
    8: Field("creationTimestamp", "time"),
    9: Field("deletionTimestamp", "time"),
    10: Field("deletionGracePeriodSeconds", "int64", keep=True),
    11: Field("labels", "map"),
    12: Field("annotations", "map"),
    13: _msg("ownerReferences", OWNER_REFERENCE, repeated=True),
    14: _strings("finalizers"),
    17: _msg("managedFields", MANAGED_FIELDS_ENTRY, repeated=True),
}
CONDITION = {
    1: _s("type"),
    2: _s("status"),
    3: Field("observedGeneration", "int64"),
    4: Field("lastTransitionTime", "time"),
    5: _s("reason"),
    6: _s("message"),
}
NAMESPACE = {
    1: _msg("metadata", OBJECT_META),
    2: _msg("spec", {1: _strings("finalizers")}),
    3: _msg(
        "status",
        {
            1: _s("phase"),
            2: _msg(
                "conditions",
                {
                    1: _s("type"),
                    2: _s("status"),
                    4: Field("lastTransitionTime", "time"),
                    5: _s("reason"),
                    6: _s("message"),
                },
                repeated=True,
            ),
        },
    ),
}
SERVICE_PORT = {
    1: _s("name"),
    2: _s("protocol"),
    3: Field("port", "int32", keep=True),  # `json:"port"`: never omitted
    4: Field("targetPort", "intorstr"),
    5: Field("nodePort", "int32"),
    6: _s("appProtocol", keep=True),
}
SERVICE_SPEC = {
    1: _msg("ports", SERVICE_PORT, repeated=True),
    2: Field("selector", "map"),
    3: _s("clusterIP"),
    4: _s("type"),
    5: _strings("externalIPs"),
    7: _s("sessionAffinity"),
    8: _s("loadBalancerIP"),
    9: _strings("loadBalancerSourceRanges"),
    10: _s("externalName"),
    11: _s("externalTrafficPolicy"),
    12: Field("healthCheckNodePort", "int32"),
    13: Field("publishNotReadyAddresses", "bool"),
    14: _msg(
        "sessionAffinityConfig",
        {1: _msg("clientIP", {1: Field("timeoutSeconds", "int32", keep=True)})},
    ),
    17: _s("ipFamilyPolicy", keep=True),
    18: _strings("clusterIPs"),
    19: _strings("ipFamilies"),
    20: Field("allocateLoadBalancerNodePorts", "bool", keep=True),
    21: _s("loadBalancerClass", keep=True),
    22: _s("internalTrafficPolicy", keep=True),
    23: _s("trafficDistribution", keep=True),
}
PORT_STATUS = {1: Field("port", "int32", keep=True), 2: _s("protocol"), 3: _s("error", keep=True)}
LOAD_BALANCER_INGRESS = {
    1: _s("ip"),
    2: _s("hostname"),
    3: _s("ipMode", keep=True),
    4: _msg("ports", PORT_STATUS, repeated=True),
}
SERVICE = {
    1: _msg("metadata", OBJECT_META),
    2: _msg("spec", SERVICE_SPEC),
    3: _msg(
        "status",
        {
            1: _msg("loadBalancer", {1: _msg("ingress", LOAD_BALANCER_INGRESS, repeated=True)}),
            2: _msg("conditions", CONDITION, repeated=True),
        },
    ),
}

# What `kubectl drain` (and client-go's protobuf clients) send with a DELETE.
DELETE_OPTIONS = {
    1: Field("gracePeriodSeconds", "int64", keep=True),  # a pointer: 0 means "now"
    2: _msg("preconditions", {1: _s("uid"), 2: _s("resourceVersion")}),
    3: Field("orphanDependents", "bool", keep=True),
    4: _s("propagationPolicy"),
    5: _strings("dryRun"),
}

# What `kubectl auth can-i` sends.
SELF_SUBJECT_ACCESS_REVIEW = {
    1: _msg("metadata", OBJECT_META),
    2: _msg(
        "spec",
        {
            1: _msg(
                "resourceAttributes",
                {
                    1: _s("namespace"),
                    2: _s("verb"),
                    3: _s("group"),
                    4: _s("version"),
                    5: _s("resource"),
                    6: _s("subresource"),
                    7: _s("name"),
                },
            ),
            2: _msg("nonResourceAttributes", {1: _s("path"), 2: _s("verb")}),
        },
    ),
}

# The kinds whose protobuf bodies are understood, by (apiVersion, kind).
LAYOUTS: dict[tuple[str, str], dict[int, Field]] = {
    ("v1", "Namespace"): NAMESPACE,
    ("v1", "Service"): SERVICE,
    ("v1", "DeleteOptions"): DELETE_OPTIONS,
    ("meta.k8s.io/v1", "DeleteOptions"): DELETE_OPTIONS,
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): SELF_SUBJECT_ACCESS_REVIEW,
}


# ---------------------------------------------------------------- decoding


def _signed(value: int, bits: int) -> int:
    # Negative int32/int64 values travel as 64-bit two's complement varints.
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    if bits == 32 and not -(1 << 31) <= value < 1 << 31:
        raise _Malformed(f"value {value} out of range for int32")
    return value


def _text(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed(f"field {name!r} is not valid UTF-8") from None


def _varint_of(wire: int, value: int | bytes, name: str) -> int:
    if wire != VARINT or not isinstance(value, int):
        raise _Malformed(f"field {name!r} has wire type {wire}, expected {VARINT}")
    return value


def _bytes_of(wire: int, value: int | bytes, name: str) -> bytes:
    if wire != LENGTH or not isinstance(value, bytes):
        raise _Malformed(f"field {name!r} has wire type {wire}, expected {LENGTH}")
    return value


def _time(raw: bytes) -> str | None:
    seconds = nanos = 0
    for number, wire, value in _fields(raw):
        if number == 1:
            seconds = _signed(_varint_of(wire, value, "seconds"), 64)
        elif number == 2:
            nanos = _signed(_varint_of(wire, value, "nanos"), 32)
    if seconds == 0 and nanos == 0:
        return None  # the zero Time, which JSON writes as null
    try:
        when = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise _Malformed(f"timestamp {seconds} out of range") from None
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(raw: bytes) -> int | str:
    kind, number, text = 0, 0, ""
    for field_number, wire, value in _fields(raw):
        if field_number == 1:
            kind = _signed(_varint_of(wire, value, "type"), 64)
        elif field_number == 2:
            number = _signed(_varint_of(wire, value, "intVal"), 32)
        elif field_number == 3:
            text = _text(_bytes_of(wire, value, "strVal"), "strVal")
    if kind == 0:
        return number
    if kind == 1:
        return text
    raise _Malformed(f"IntOrString has unknown type {kind}")


def _map_entry(raw: bytes) -> tuple[str, str]:
    key = value = ""
    for number, wire, item in _fields(raw):
        if number in (1, 2):
            text = _text(_bytes_of(wire, item, "map entry"), "map entry")
            if number == 1:
                key = text
            else:
                value = text
    return key, value


def _scalar(field: Field, wire: int, value: int | bytes) -> Any:
    if field.kind in ("int32", "int64", "bool"):
        number = _varint_of(wire, value, field.name)
        if field.kind == "bool":
            return number != 0
        return _signed(number, 32 if field.kind == "int32" else 64)
    raw = _bytes_of(wire, value, field.name)
    if field.kind == "string":
        return _text(raw, field.name)
    if field.kind == "bytes":
        return raw
    if field.kind == "time":
        return _time(raw)
    if field.kind == "intorstr":
        return _int_or_string(raw)
    if field.kind == "json":
        try:
            return json.loads(raw) if raw else {}
        except (ValueError, RecursionError):
            raise _Malformed(f"field {field.name!r} holds invalid JSON") from None
    if field.kind == "message" and field.message is not None:
        return _message(raw, field.message)
    raise _Malformed(f"field {field.name!r} has an unknown type")  # pragma: no cover


def _is_zero(value: Any) -> bool:
    return value is None or value == "" or value == 0 or value is False


def _message(raw: bytes, layout: dict[int, Field]) -> dict[str, Any]:
    values: dict[int, Any] = {}
    for number, wire, value in _fields(raw):
        field = layout.get(number)
        if field is None:
            continue  # a field newer than this layout: skipped, as protobuf intends
        if field.kind == "map":
            key, item = _map_entry(_bytes_of(wire, value, field.name))
            values.setdefault(number, {})[key] = item
            continue
        decoded = _scalar(field, wire, value)
        if field.repeated:
            values.setdefault(number, []).append(decoded)
        elif field.kind == "message" and isinstance(values.get(number), dict):
            values[number].update(decoded)  # a repeated occurrence merges, per protobuf
        else:
            values[number] = decoded
    out: dict[str, Any] = {}
    for number in sorted(values):
        field = layout[number]
        value = values[number]
        if field.kind == "time" and value is None:
            continue
        if field.kind == "intorstr" and value in (0, ""):
            continue  # the zero IntOrString means "not set"
        scalar = field.kind not in ("message", "map") and not field.repeated
        if scalar and not field.keep and _is_zero(value):
            continue
        out[field.name] = value
    return out


def decode(data: bytes, expected_kind: str | None = None) -> dict[str, Any]:
    """Decode a `k8s\\x00`-prefixed protobuf request body into the object's JSON dict.

    The result has `kind` and `apiVersion` from the envelope's TypeMeta. A kind
    other than Namespace or Service (or other than `expected_kind`, when given)
    is a 415 StatusError; every malformed body is a 400 StatusError.
    """
    try:
        return _decode(bytes(data), expected_kind)
    except StatusError:
        raise
    except _Malformed as err:
        raise errors.bad_request(f"invalid protobuf body: {err}") from None
    except (RecursionError, MemoryError, ValueError, TypeError, IndexError, OverflowError) as err:
        # Belt and braces: whatever slipped past the checks above is still the client's fault.
        raise errors.bad_request(f"invalid protobuf body: {err}") from None


def _decode(data: bytes, expected_kind: str | None) -> dict[str, Any]:
    if not data.startswith(MAGIC):
        raise _Malformed("missing the k8s\\x00 prefix")
    envelope = _message(data[len(MAGIC) :], UNKNOWN)
    type_meta = envelope.get("typeMeta", {})
    api_version = type_meta.get("apiVersion", "")
    kind = type_meta.get("kind", "")
    if envelope.get("contentEncoding"):
        raise _Malformed(f"unsupported contentEncoding {envelope['contentEncoding']!r}")
    content_type = envelope.get("contentType", "")
    if content_type not in ("", CONTENT_TYPE):
        raise _Malformed(f"unsupported contentType {content_type!r}")
    if not kind or not api_version:
        raise _Malformed("the envelope names no kind or apiVersion")
    if expected_kind is not None and kind != expected_kind:
        raise errors.bad_request(
            f"the body holds a {kind}, but this endpoint takes a {expected_kind}"
        )
    layout = LAYOUTS.get((api_version, kind))
    if layout is None:
        raise StatusError(
            415,
            f"protobuf bodies of {api_version} {kind} are not supported; send"
            " application/json instead",
        )
    obj: dict[str, Any] = {"kind": kind, "apiVersion": api_version}
    obj.update(_message(envelope.get("raw", b""), layout))
    return obj
