"""The three PATCH body types kubectl sends: JSON merge, JSON patch and strategic merge.

`merge_patch` is RFC 7386, `json_patch` RFC 6902, and `strategic_merge_patch`
is Kubernetes' own dialect (apimachinery `strategicpatch`), which merges some
lists by a key instead of replacing them and understands the `$patch`,
`$setElementOrder/…`, `$retainKeys` and `$deleteFromPrimitiveList/…`
directives that `kubectl apply` (client-side) and `kubectl patch` send.

Which lists merge, and by what key, is the per-kind `Schema` below. It also
carries the server-side-apply list types (`x-kubernetes-list-type`,
`x-kubernetes-list-map-keys`) and atomic maps that `kubesvc.api.apply` needs,
so the two merge flavours read one table.

Every function copies its inputs and raises only `StatusError`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubesvc.api.errors import StatusError, bad_request

# ---------------------------------------------------------------------------
# Schema: how the lists and maps of our kinds merge
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ListRule:
    """How one list field merges, under strategic merge patch and under server-side apply.

    `merge`/`merge_key` are the Go struct tags `patchStrategy:"merge"` and
    `patchMergeKey`; `keys`/`is_set` are `+listType=map` with its
    `+listMapKey`s, or `+listType=set`. A list with neither is atomic.
    """

    merge: bool = False
    merge_key: str | None = None
    keys: tuple[str, ...] = ()
    is_set: bool = False
    # Values server-side apply assumes for absent key fields (the schema's `default`).
    key_defaults: tuple[tuple[str, Any], ...] = ()
    # Strategic merge matches items by `merge_key` alone, as Kubernetes does; when a
    # patch item also names these fields, an exact match is preferred, so a Service
    # serving port 53 over TCP and UDP can have one of the two patched.
    tie_breakers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Schema:
    """Merge metadata for one kind: list rules and atomic maps, by field path.

    Paths are dotted field names with `[]` for "each item of": `spec.containers[].env`.
    """

    lists: dict[str, ListRule] = field(default_factory=dict)
    atomic: frozenset[str] = frozenset()


def _by(key: str, *more: str, merge: bool = True, **kw: Any) -> ListRule:
    return ListRule(merge=merge, merge_key=key if merge else None, keys=(key, *more), **kw)


_TCP = (("protocol", "TCP"),)

_META = {
    "metadata.finalizers": ListRule(merge=True, is_set=True),
    "metadata.ownerReferences": _by("uid"),
}
_META_ATOMIC = {"metadata.ownerReferences[]"}

_CONTAINER = {
    "ports": _by("containerPort", "protocol", key_defaults=_TCP, tie_breakers=("protocol",)),
    "env": _by("name"),
    "volumeMounts": _by("mountPath"),
    "volumeDevices": _by("devicePath"),
    "resources.claims": _by("name", merge=False),
}
_CONTAINER_ATOMIC = {
    "env[].valueFrom.fieldRef",
    "env[].valueFrom.resourceFieldRef",
    "env[].valueFrom.configMapKeyRef",
    "env[].valueFrom.secretKeyRef",
}
_CONTAINER_LISTS = ("spec.containers", "spec.initContainers", "spec.ephemeralContainers")

_POD_LISTS = {
    **{c: _by("name") for c in _CONTAINER_LISTS},
    **{f"{c}[].{k}": rule for c in _CONTAINER_LISTS for k, rule in _CONTAINER.items()},
    "spec.volumes": _by("name"),
    "spec.imagePullSecrets": _by("name"),
    "spec.hostAliases": _by("ip"),
    "spec.topologySpreadConstraints": _by("topologyKey", "whenUnsatisfiable"),
    "spec.schedulingGates": _by("name"),
    "spec.resourceClaims": _by("name"),
    "status.conditions": _by("type"),
    "status.podIPs": _by("ip"),
    "status.hostIPs": ListRule(merge=True, merge_key="ip"),  # SMP merges; SSA treats it atomic
    "status.resourceClaimStatuses": _by("name"),
}
_POD_ATOMIC = {
    "spec.nodeSelector",
    "spec.imagePullSecrets[]",
    "spec.topologySpreadConstraints[].labelSelector",
    *(f"{c}[].{a}" for c in _CONTAINER_LISTS for a in _CONTAINER_ATOMIC),
}

SCHEMAS: dict[str, Schema] = {
    "Service": Schema(
        {
            **_META,
            # The Go tag merges by `port` only; server-side apply keys by port+protocol.
            "spec.ports": _by("port", "protocol", key_defaults=_TCP, tie_breakers=("protocol",)),
            "status.conditions": _by("type"),
        },
        frozenset({*_META_ATOMIC, "spec.selector"}),
    ),
    "Pod": Schema({**_META, **_POD_LISTS}, frozenset({*_META_ATOMIC, *_POD_ATOMIC})),
    "Namespace": Schema({**_META, "status.conditions": _by("type")}, frozenset(_META_ATOMIC)),
    "Event": Schema(dict(_META), frozenset({*_META_ATOMIC, "involvedObject", "related"})),
    # Endpoints.subsets and EndpointSlice.endpoints/ports are atomic lists: no rules.
    "Endpoints": Schema(dict(_META), frozenset(_META_ATOMIC)),
    "EndpointSlice": Schema(dict(_META), frozenset(_META_ATOMIC)),
}
_DEFAULT_SCHEMA = Schema(dict(_META), frozenset(_META_ATOMIC))


def schema_for(kind: Any) -> Schema:
    """The merge metadata for `kind`; unknown kinds get only the ObjectMeta rules."""
    return SCHEMAS.get(kind, _DEFAULT_SCHEMA) if isinstance(kind, str) else _DEFAULT_SCHEMA


def child_path(spath: str, name: str) -> str:
    return f"{spath}.{name}" if spath else name


# ---------------------------------------------------------------------------
# JSON value helpers
# ---------------------------------------------------------------------------


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1 (Python's `==` says otherwise)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _normalized(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return value


def canonical(value: Any) -> str:
    """A hashable, type-aware identity for a JSON value (`80` and `80.0` agree)."""
    return json.dumps(_normalized(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def guarded(fn: Callable[[], Any]) -> Any:
    """Run `fn`, turning a too-deep document into a 400 rather than a crash."""
    try:
        return fn()
    except RecursionError:
        raise bad_request("the patch or object is nested too deeply") from None


# ---------------------------------------------------------------------------
# RFC 7386 JSON merge patch
# ---------------------------------------------------------------------------


def merge_patch(original: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch: objects merge, `null` deletes, anything else replaces."""
    return guarded(lambda: _merge(original, patch))


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


# ---------------------------------------------------------------------------
# RFC 6902 JSON patch
# ---------------------------------------------------------------------------

_OPS = ("add", "remove", "replace", "move", "copy", "test")


def _invalid(message: str) -> StatusError:
    return StatusError(422, message, "Invalid")


def json_patch(original: Any, ops: Any) -> Any:
    """Apply an RFC 6902 JSON patch (a list of operations) to a copy of `original`.

    Any failing operation fails the whole patch with a 422 that names the operation
    and path, e.g. `jsonpatch replace operation does not apply: doc is missing path: "/spec/foo"`.
    """
    if not isinstance(ops, list):
        raise bad_request("json patch must be a JSON array of operations")

    def run() -> Any:
        doc = copy.deepcopy(original)
        for op in ops:
            doc = _apply_op(doc, op)
        return doc

    return guarded(run)


def _pointer(op: str, pointer: Any, what: str = "path") -> list[str]:
    if not isinstance(pointer, str):
        raise _invalid(f'jsonpatch {op} operation: "{what}" must be a string JSON pointer')
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise _invalid(f'jsonpatch {op} operation: invalid JSON pointer "{pointer}"')
    # ~1 before ~0, so "~01" decodes to "~1" (RFC 6901 §4).
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _index(token: str, size: int, *, allow_end: bool) -> int | None:
    """A valid array index for `token`, or None. `-` and `size` only where appending is allowed."""
    if token == "-":
        return size if allow_end else None
    if not token.isdigit() or (len(token) > 1 and token[0] == "0") or not token.isascii():
        return None
    i = int(token)
    return i if i < size or (allow_end and i == size) else None


def _missing(op: str, path: str, what: str = "path") -> StatusError:
    return _invalid(f'jsonpatch {op} operation does not apply: doc is missing {what}: "{path}"')


def _resolve(doc: Any, tokens: list[str], op: str, path: str, what: str = "path") -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif (
            isinstance(node, list) and (i := _index(token, len(node), allow_end=False)) is not None
        ):
            node = node[i]
        else:
            raise _missing(op, path, what)
    return node


def _add(doc: Any, tokens: list[str], value: Any, op: str, path: str) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list) and (i := _index(last, len(parent), allow_end=True)) is not None:
        parent.insert(i, value)
    else:
        raise _missing(op, path)
    return doc


def _remove(doc: Any, tokens: list[str], op: str, path: str, what: str = "path") -> Any:
    if not tokens:
        raise _invalid(f"jsonpatch {op} operation does not apply: cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1], op, path, what)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and (i := _index(last, len(parent), allow_end=False)) is not None:
        return parent.pop(i)
    raise _missing(op, path, what)


def _operand(op: str, spec: dict[str, Any], name: str) -> Any:
    if name not in spec:
        raise _invalid(f'jsonpatch {op} operation: missing "{name}"')
    return spec[name]


def _apply_op(doc: Any, spec: Any) -> Any:
    if not isinstance(spec, dict):
        raise _invalid("jsonpatch: each operation must be a JSON object")
    op = spec.get("op")
    if op not in _OPS:
        raise _invalid(f"jsonpatch: unsupported operation {json.dumps(op)}")
    path = spec.get("path")
    tokens = _pointer(op, path)
    if op == "add":
        return _add(doc, tokens, copy.deepcopy(_operand(op, spec, "value")), op, path)
    if op == "remove":
        _remove(doc, tokens, op, path)
        return doc
    if op == "replace":
        value = copy.deepcopy(_operand(op, spec, "value"))
        if not tokens:
            return value
        _resolve(doc, tokens, op, path)  # replace needs an existing target
        _remove(doc, tokens, op, path)
        return _add(doc, tokens, value, op, path)
    if op == "test":
        if not json_equal(_resolve(doc, tokens, op, path), _operand(op, spec, "value")):
            raise _invalid(
                f'jsonpatch test operation does not apply: testing value "{path}" failed'
            )
        return doc
    source = _operand(op, spec, "from")
    from_tokens = _pointer(op, source, "from")
    if op == "move":
        if from_tokens == tokens:
            _resolve(doc, tokens, op, source, "from path")
            return doc
        if tokens[: len(from_tokens)] == from_tokens:
            raise _invalid(
                f'jsonpatch move operation does not apply: cannot move "{source}" into itself'
            )
        value = _remove(doc, from_tokens, op, source, "from path")
    else:
        value = copy.deepcopy(_resolve(doc, from_tokens, op, source, "from path"))
    return _add(doc, tokens, value, op, path)


# ---------------------------------------------------------------------------
# Kubernetes strategic merge patch
# ---------------------------------------------------------------------------

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder"
DELETE_FROM = "$deleteFromPrimitiveList"


def strategic_merge_patch(original: Any, patch: Any, kind: Any) -> dict[str, Any]:
    """Apply a Kubernetes strategic merge patch to a copy of `original`, a `kind` object.

    Lists with a merge strategy for `kind` (see `SCHEMAS`) merge item by item on
    their merge key; every other list is replaced. Malformed directives answer 400,
    as the API server does. `$patch: merge` is accepted as an explicit "merge"
    (Kubernetes rejects it); everything else follows apimachinery's `strategicpatch`.
    """
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be a JSON object")
    base = copy.deepcopy(original) if isinstance(original, dict) else {}
    schema = schema_for(kind)
    return guarded(lambda: _smp_map(base, copy.deepcopy(patch), "", schema))


def _merge_key_error(item: Any, key: str) -> StatusError:
    return bad_request(f"map: {canonical(item)} does not contain declared merge key: {key}")


def _smp_map(orig: dict[str, Any], patch: dict[str, Any], spath: str, schema: Schema) -> Any:
    """Merge `patch` into `orig` (both already private copies, so mutated freely)."""
    if DIRECTIVE in patch:
        directive = patch.pop(DIRECTIVE)
        if directive == "replace":
            return _smp_map({}, patch, spath, schema)
        if directive == "delete":
            return {}
        if directive != "merge":
            raise bad_request(
                f"unknown patch type: {canonical(directive)} in map: {canonical(patch)}"
            )

    if RETAIN_KEYS in patch:
        retain = patch.pop(RETAIN_KEYS)
        if not isinstance(retain, list):
            raise bad_request("invalid patch format of retainKeys")
        keep = {k for k in retain if isinstance(k, str)}
        for key, value in patch.items():
            if value is not None and not key.startswith("$") and key not in keep:
                raise bad_request("invalid patch format of retainKeys")
        for key in [k for k in orig if k not in keep]:
            del orig[key]

    # Ordering directives go first: they merge their list themselves, then reorder it.
    for key in [k for k in patch if k.startswith(SET_ORDER)]:
        _set_element_order(orig, patch, key, spath, schema)

    deletions = [k for k in patch if k.startswith(DELETE_FROM)]
    for key, value in patch.items():
        if key.startswith(DELETE_FROM):
            continue
        if value is None:
            orig.pop(key, None)
            continue
        orig[key] = _smp_value(orig.get(key), value, child_path(spath, key), schema)

    # Deleting from a primitive list comes last, after any additions to it.
    for key in deletions:
        name = _directive_field(key, DELETE_FROM, "primitive list")
        doomed = patch[key]
        if not isinstance(doomed, list):
            raise bad_request("invalid patch format of primitive list")
        current = orig.get(name)
        if isinstance(current, list):
            gone = {canonical(v) for v in doomed}
            orig[name] = [v for v in current if canonical(v) not in gone]
    return orig


def _directive_field(key: str, prefix: str, what: str) -> str:
    head, sep, name = key.partition("/")
    if head != prefix or not sep:
        raise bad_request(f"invalid patch format of {what}")
    return name


def _smp_value(orig: Any, patch: Any, spath: str, schema: Schema) -> Any:
    """The merged value of one field: maps merge, merge-strategy lists merge, the rest replace."""
    if isinstance(patch, dict):
        return _smp_map(orig if isinstance(orig, dict) else {}, patch, spath, schema)
    if isinstance(patch, list):
        rule = schema.lists.get(spath)
        if rule is not None and rule.merge:
            return _smp_list(orig if isinstance(orig, list) else [], patch, spath, rule, schema)
    return patch


def _identity(rule: ListRule) -> Callable[[Any], str]:
    if rule.merge_key is None:
        return canonical
    key = rule.merge_key
    return lambda item: canonical(item.get(key)) if isinstance(item, dict) else canonical(item)


def _smp_list(
    orig: list[Any], patch: list[Any], spath: str, rule: ListRule, schema: Schema
) -> list[Any]:
    """Merge a list with `patchStrategy: merge`, then order it as apimachinery does."""
    ident = _identity(rule)
    if rule.merge_key is None:
        if any(isinstance(v, dict | list) for v in (*orig, *patch)):
            raise bad_request(f"strategic merge patch: {spath} must be a list of primitives")
        seen = {canonical(v) for v in orig}
        merged = list(orig)
        for value in patch:
            if canonical(value) not in seen:
                seen.add(canonical(value))
                merged.append(value)
        return _normalize_order(merged, patch, orig, ident)

    key = rule.merge_key
    if any(isinstance(v, list) for v in (*orig, *patch)):
        raise StatusError(422, "lists of lists are not supported", "Invalid")
    if not all(isinstance(v, dict) for v in (*orig, *patch)):
        raise bad_request(f"strategic merge patch: {spath} must be a list of objects")

    plain: list[dict[str, Any]] = []
    replace = False
    for item in patch:
        directive = item.get(DIRECTIVE)
        if directive is None or (directive == "merge" and key in item):
            item.pop(DIRECTIVE, None)
            plain.append(item)
        elif directive == "delete":
            if key not in item:
                raise _merge_key_error(item, key)
            orig = [o for o in orig if not _matches(o, item, key, rule.tie_breakers)]
        elif directive == "replace":
            replace = True  # keep scanning: other directive items are dropped
        elif directive != "merge":
            raise bad_request(
                f"unknown patch type: {canonical(directive)} in map: {canonical(item)}"
            )
    if replace:
        return [_smp_map({}, item, f"{spath}[]", schema) for item in plain]

    merged = list(orig)
    for item in plain:
        if key not in item:
            raise _merge_key_error(item, key)
        at = _find(merged, item, key, rule.tie_breakers)
        if at is None:
            merged.append(_smp_map({}, item, f"{spath}[]", schema))
        else:
            merged[at] = _smp_map(merged[at], item, f"{spath}[]", schema)
    return _normalize_order(merged, plain, orig, ident)


def _matches(orig: dict[str, Any], item: dict[str, Any], key: str, tie: tuple[str, ...]) -> bool:
    if key not in orig or not json_equal(orig[key], item[key]):
        return False
    return all(json_equal(orig.get(t), item[t]) for t in tie if t in item)


def _find(items: list[Any], item: dict[str, Any], key: str, tie: tuple[str, ...]) -> int | None:
    """The item sharing `item`'s merge key, preferring one that also agrees on `tie`."""
    loose = None
    for i, candidate in enumerate(items):
        if key in candidate and json_equal(candidate[key], item[key]):
            if _matches(candidate, item, key, tie):
                return i
            if loose is None:
                loose = i
    return loose


def _normalize_order(
    merged: list[Any], order: list[Any], server: list[Any], ident: Callable[[Any], str]
) -> list[Any]:
    """apimachinery's `normalizeElementOrder`: items named in `order` take that order;
    the others keep their live (`server`) order and are interleaved by live position."""
    in_order: dict[str, int] = {}
    for i, item in enumerate(order):
        in_order.setdefault(ident(item), i)
    at_server: dict[str, int] = {}
    for i, item in enumerate(server):
        at_server.setdefault(ident(item), i)
    patched = sorted((m for m in merged if ident(m) in in_order), key=lambda m: in_order[ident(m)])
    others = sorted(
        (m for m in merged if ident(m) not in in_order),
        key=lambda m: at_server.get(ident(m), len(server)),
    )
    out: list[Any] = []
    i = j = 0
    while i < len(others) or j < len(patched):
        if j >= len(patched):
            out.append(others[i])
            i += 1
        elif i >= len(others):
            out.append(patched[j])
            j += 1
        else:
            left, right = at_server.get(ident(others[i])), at_server.get(ident(patched[j]))
            if left is not None and right is not None and left < right:
                out.append(others[i])
                i += 1
            else:
                out.append(patched[j])
                j += 1
    return out


def _set_element_order(
    orig: dict[str, Any], patch: dict[str, Any], key: str, spath: str, schema: Schema
) -> None:
    """Handle `$setElementOrder/<field>`: merge the field's patch list, then reorder."""
    name = _directive_field(key, SET_ORDER, "setElementOrder list")
    order = patch.pop(key)
    if not isinstance(order, list):
        raise bad_request("invalid patch format of setElementOrder list")
    rule = schema.lists.get(child_path(spath, name))
    if rule is None or not rule.merge:
        return  # an atomic list is replaced wholesale; its order is the patch's
    if rule.merge_key is not None:
        for entry in order:
            if not isinstance(entry, dict) or rule.merge_key not in entry:
                raise _merge_key_error(entry, rule.merge_key)
    current = orig.get(name)
    server = current if isinstance(current, list) else []
    if name in patch:
        if not isinstance(patch[name], list):
            return  # not a list: the ordinary merge decides (null deletes, else replace)
        merged = _smp_list(server, patch.pop(name), child_path(spath, name), rule, schema)
    elif isinstance(current, list):
        merged = current
    else:
        return
    orig[name] = _normalize_order(merged, order, server, _identity(rule))
