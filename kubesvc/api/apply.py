"""Field ownership: server-side apply and the `managedFields` every write keeps up to date.

A field set is a set of paths; a path is a tuple of FieldsV1 tokens, exactly as
they appear in `metadata.managedFields[].fieldsV1`: `f:<name>` for a field,
`k:{"port":80,"protocol":"TCP"}` for an item of a list-type map, `v:"x"` for an
item of a list-type set, and `i:<n>` for anything else addressed by index.

`server_side_apply` is structured-merge-diff's `Apply` in miniature: merge the
applied configuration into the live object by the list types of `patch.SCHEMAS`,
drop what this manager applied last time and no longer applies (unless someone
else owns it), and refuse to change a field another manager owns unless forced.
`track_update` records who changed what on every other write (create, update,
patch), so that apply can conflict with `kubectl patch` or client-side apply.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from kubesvc.api.errors import StatusError, bad_request
from kubesvc.api.patch import (
    ListRule,
    Schema,
    canonical,
    child_path,
    guarded,
    json_equal,
    schema_for,
)

Path = tuple[str, ...]
FieldSet = set[Path]
_ManagerId = tuple[str, str, str]  # manager, operation, subresource

APPLY = "Apply"
UPDATE = "Update"
# Owner of everything in an object that had no managedFields when first applied to.
BEFORE_FIRST_APPLY = "before-first-apply"

# metadata fields the server sets; like Kubernetes' stripMeta, nobody owns them.
_SERVER_META = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    }
)
_MISSING: Any = object()


@dataclass
class _Manager:
    manager: str
    operation: str
    api_version: str
    time: str | None
    fields: FieldSet
    subresource: str = ""

    @property
    def id(self) -> _ManagerId:
        return (self.manager, self.operation, self.subresource)

    def describe(self) -> str:
        """How Kubernetes names a manager in conflict messages."""
        if self.operation == UPDATE:
            return f"{json.dumps(self.manager)} using {self.api_version}"
        return json.dumps(self.manager)


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def server_side_apply(
    live: dict[str, Any] | None, applied: dict[str, Any], manager: str, force: bool, now: str
) -> dict[str, Any]:
    """Apply `applied` (an apply configuration) to `live` (None: create) as `manager`.

    Returns the new object with `metadata.managedFields` updated. Raises a 409
    `Conflict` with `FieldManagerConflict` causes when the configuration would
    change a field another manager owns, unless `force` (then ownership moves).
    Re-applying the same configuration returns an object equal to `live`.
    """
    if not isinstance(manager, str) or not manager:
        raise StatusError(
            422,
            'PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
            "Required value: is required for apply patch",
            "Invalid",
        )
    if not isinstance(applied, dict):
        raise bad_request("the apply configuration must be an object")
    meta = applied.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    if isinstance(meta, dict) and meta.get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    if live is not None and not isinstance(live, dict):
        raise bad_request("the live object must be an object")
    return guarded(lambda: _apply(live, applied, manager, force, now))


def track_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    operation: str,
    now: str,
) -> dict[str, Any]:
    """Record a non-apply write of `new` over `old` (None: create) by `manager` at `now`.

    `operation` is `"Update"` for create, update and patch alike, as in Kubernetes.

    The fields that changed become `manager`'s (operation `Update`) and leave every
    other manager's set; removed fields leave every set. A client may replace the
    bookkeeping by sending `managedFields` itself (`[]` or `[{}]` clears it), as
    Kubernetes allows. Returns a copy of `new` with `metadata.managedFields` set.
    """
    if not isinstance(new, dict):
        raise bad_request("the object must be an object")
    if old is not None and not isinstance(old, dict):
        raise bad_request("the live object must be an object")
    return guarded(lambda: _track(old, new, manager, operation, now))


def fields_of(entry: dict[str, Any]) -> FieldSet:
    """The paths a managedFields entry's `fieldsV1` names (handy for tests and tools)."""
    return _decode_fields(entry.get("fieldsV1", {}), ())


def path_string(path: Path) -> str:
    """`.spec.ports[port=80,protocol="TCP"].targetPort`, as Kubernetes prints a field path."""
    out = []
    for token in path:
        kind, body = token[:2], token[2:]
        if kind == "f:":
            out.append(f".{body}")
        elif kind == "k:":
            try:
                keys = json.loads(body)
                shown = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(keys.items()))
            except (ValueError, AttributeError):
                shown = body
            out.append(f"[{shown}]")
        elif kind == "v:":
            out.append(f"[={body}]")
        else:
            out.append(f"[{body}]")
    return "".join(out)


# ---------------------------------------------------------------------------
# Apply and update
# ---------------------------------------------------------------------------


def _apply(
    live: dict[str, Any] | None, applied: dict[str, Any], manager: str, force: bool, now: str
) -> dict[str, Any]:
    kind = applied.get("kind") or (live or {}).get("kind")
    schema = schema_for(kind)
    base = copy.deepcopy(live) if live is not None else {}
    managers = _take_managers(base)
    if live is not None and not managers:
        everything = _ignoring(_compare({}, base, schema)[0])
        if everything:
            first = _Manager(
                BEFORE_FIRST_APPLY, UPDATE, str(base.get("apiVersion", "")), now, everything
            )
            managers[first.id] = first

    config = copy.deepcopy(applied)
    config.pop("status", None)  # status is the status subresource's, never the main resource's
    if isinstance(config.get("metadata"), dict):
        for name in _SERVER_META - {"name", "namespace"}:
            config["metadata"].pop(name, None)

    applied_set = _ignoring(_config_fields(config, "", (), schema))
    new = _merge(copy.deepcopy(base), config, "", schema)
    me = (manager, APPLY, "")
    previous = managers.get(me)
    api_version = str(applied.get("apiVersion") or base.get("apiVersion") or "")
    managers[me] = _Manager(
        manager, APPLY, api_version, previous.time if previous else None, applied_set
    )

    # Fields this manager applied before and dropped now go, unless someone still owns them.
    owned = set().union(*(m.fields for m in managers.values()))
    _prune(new, (previous.fields if previous else set()) - owned, owned, schema)

    added, modified, removed = (_ignoring(s) for s in _compare(base, new, schema))
    changed = added | modified
    clashes = [
        (m, sorted(m.fields & changed, key=_path_order))
        for mid, m in sorted(managers.items())
        if mid != me and m.fields & changed
    ]
    if clashes and not force:
        raise _conflict_error(clashes)
    for mid, m in managers.items():
        if mid != me:
            m.fields -= changed | removed

    mine = managers[me]
    if previous is None or previous.fields != mine.fields or added or modified or removed:
        mine.time = now
    _store_managers(new, managers)
    return new


def _track(
    old: dict[str, Any] | None, new: dict[str, Any], manager: str, operation: str, now: str
) -> dict[str, Any]:
    kind = new.get("kind") or (old or {}).get("kind")
    schema = schema_for(kind)
    before = copy.deepcopy(old) if old is not None else {}
    after = copy.deepcopy(new)
    if after.get("metadata") is not None and not isinstance(after["metadata"], dict):
        raise bad_request("metadata must be an object")
    live_managers = _take_managers(before)
    meta = after.get("metadata")
    sent = meta.pop("managedFields", None) if isinstance(meta, dict) else None
    # Kubernetes' decodeLiveOrNew: the request's managedFields win when it sends some;
    # an empty list (or one empty entry) resets them; none keeps the live ones.
    if isinstance(sent, list) and (sent == [] or sent == [{}]):
        managers: dict[_ManagerId, _Manager] = {}
    elif isinstance(sent, list) and (decoded := _decode_managers(sent)):
        managers = decoded
    else:
        managers = live_managers

    added, modified, removed = (_ignoring(s) for s in _compare(before, after, schema))
    took = added | modified
    for m in managers.values():
        m.fields -= took | removed
    if took:
        me = (manager, operation, "")
        mine = managers.get(me)
        if mine is None:
            mine = managers[me] = _Manager(manager, operation, "", None, set())
        mine.fields |= took
        mine.api_version = str(after.get("apiVersion") or before.get("apiVersion") or "")
        mine.time = now
    _store_managers(after, managers)
    return after


def _conflict_error(clashes: list[tuple[_Manager, list[Path]]]) -> StatusError:
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {m.describe()}",
            "field": path_string(p),
        }
        for m, paths in clashes
        for p in paths
    ]
    if len(causes) == 1:
        m, paths = clashes[0]
        where = path_string(paths[0])
        message = f"Apply failed with 1 conflict: conflict with {m.describe()}: {where}"
    else:
        lines = []
        for m, paths in clashes:
            lines.append(f"conflicts with {m.describe()}:")
            lines.extend(f"- {path_string(p)}" for p in paths)
        message = f"Apply failed with {len(causes)} conflicts: " + "\n".join(lines)
    return StatusError(409, message, "Conflict", causes=causes)


def _ignoring(paths: FieldSet) -> FieldSet:
    """Drop what nobody owns: apiVersion, kind, status and server-set metadata."""
    return {p for p in paths if not _ignored(p)}


def _ignored(path: Path) -> bool:
    head = path[0] if path else ""
    if head in ("f:apiVersion", "f:kind", "f:status"):
        return True
    return head == "f:metadata" and (len(path) == 1 or path[1][2:] in _SERVER_META)


# ---------------------------------------------------------------------------
# managedFields encoding
# ---------------------------------------------------------------------------


def _take_managers(obj: dict[str, Any]) -> dict[_ManagerId, _Manager]:
    """Remove and decode `obj`'s managedFields (entries that do not parse are dropped)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return {}
    return _decode_managers(meta.pop("managedFields", None))


def _decode_managers(entries: Any) -> dict[_ManagerId, _Manager]:
    out: dict[_ManagerId, _Manager] = {}
    if not isinstance(entries, list):
        return out
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        try:
            fields = _decode_fields(entry.get("fieldsV1", {}), ())
        except ValueError:
            continue
        m = _Manager(
            manager=str(entry.get("manager", "")),
            operation=str(entry.get("operation", "")),
            api_version=str(entry.get("apiVersion", "")),
            time=entry["time"] if isinstance(entry.get("time"), str) else None,
            fields=fields,
            subresource=str(entry.get("subresource", "")),
        )
        if m.id in out:
            out[m.id].fields |= m.fields
        else:
            out[m.id] = m
    return out


def _decode_fields(tree: Any, prefix: Path) -> FieldSet:
    if not isinstance(tree, dict):
        raise ValueError("fieldsV1 must be an object")
    out: FieldSet = set()
    for token, sub in tree.items():
        if token == ".":
            if prefix:
                out.add(prefix)
            continue
        if not isinstance(token, str) or token[:2] not in ("f:", "k:", "v:", "i:"):
            raise ValueError(f"bad fieldsV1 key {token!r}")
        if not isinstance(sub, dict):
            raise ValueError("fieldsV1 values must be objects")
        path = (*prefix, token)
        if sub:
            out |= _decode_fields(sub, path)
        else:
            out.add(path)
    return out


def _encode_fields(paths: FieldSet) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for token in path:
            node = node.setdefault(token, {})

    def emit(node: dict[str, Any], prefix: Path) -> dict[str, Any]:
        out: dict[str, Any] = {".": {}} if node and prefix in paths else {}
        for token in sorted(node, key=_token_order):
            out[token] = emit(node[token], (*prefix, token))
        return out

    return emit(tree, ())


def _store_managers(obj: dict[str, Any], managers: dict[_ManagerId, _Manager]) -> None:
    live = [m for m in managers.values() if m.fields]
    # Kubernetes' order: operation (Apply before Update), then time, then manager.
    live.sort(key=lambda m: (m.operation, m.time or "", m.manager, m.api_version, m.subresource))
    meta = obj.get("metadata")
    if not live:
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
        return
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    entries = []
    for m in live:
        entry: dict[str, Any] = {
            "manager": m.manager,
            "operation": m.operation,
            "apiVersion": m.api_version,
        }
        if m.time is not None:
            entry["time"] = m.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = _encode_fields(m.fields)
        if m.subresource:
            entry["subresource"] = m.subresource
        entries.append(entry)
    meta["managedFields"] = entries


def _value_order(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, canonical(value))


def _token_order(token: str) -> tuple[Any, ...]:
    """structured-merge-diff's PathElement order: fields, then keys, values, indexes."""
    kind, body = token[:2], token[2:]
    rank = {"f:": 0, "k:": 1, "v:": 2, "i:": 3}.get(kind, 4)
    try:
        if kind == "k:":
            keys = json.loads(body)
            return (rank, 0, tuple((k, _value_order(v)) for k, v in sorted(keys.items())))
        if kind == "v:":
            return (rank, 0, _value_order(json.loads(body)))
        if kind == "i:":
            return (rank, 0, int(body))
    except (ValueError, AttributeError):
        return (rank, 1, body)
    return (rank, 0, body)


def _path_order(path: Path) -> tuple[Any, ...]:
    return tuple(_token_order(t) for t in path)


# ---------------------------------------------------------------------------
# Walking objects by the schema
# ---------------------------------------------------------------------------


def _shape(value: Any, spath: str, schema: Schema) -> str:
    """`map` (merged field by field), `list` (merged item by item) or `leaf` (atomic)."""
    if spath in schema.atomic:
        return "leaf"
    if isinstance(value, dict):
        return "map"
    rule = schema.lists.get(spath)
    if isinstance(value, list) and rule is not None and (rule.keys or rule.is_set):
        return "list"
    return "leaf"


def _item_token(item: Any, rule: ListRule, index: int, spath: str, strict: bool) -> str:
    """The FieldsV1 token naming one list item. `strict` (apply configs) rejects keyless items."""
    if rule.is_set:
        if not isinstance(item, dict | list):
            return "v:" + canonical(item)
        problem = "a list-type set may hold only scalars"
    elif isinstance(item, dict):
        defaults = dict(rule.key_defaults)
        key = {}
        for name in rule.keys:
            value = item.get(name, defaults.get(name))
            if value is None:
                value = defaults.get(name)
            if value is None:
                problem = f"an element omits key field {name!r} and it has no default"
                break
            key[name] = value
        else:
            return "k:" + canonical(key)
    else:
        problem = "the elements of a list-type map must be objects"
    if strict:
        raise StatusError(422, f".{spath}: element {index}: {problem}", "Invalid")
    return f"i:{index}"


def _items(value: list[Any], spath: str, schema: Schema, strict: bool) -> dict[str, Any]:
    rule = schema.lists[spath]
    out: dict[str, Any] = {}
    for i, item in enumerate(value):
        token = _item_token(item, rule, i, spath, strict)
        if token in out:
            if strict:
                raise StatusError(
                    422, f".{spath}: duplicate entries for key {token[2:]}", "Invalid"
                )
            continue
        out[token] = item
    return out


def _config_fields(value: Any, spath: str, prefix: Path, schema: Schema) -> FieldSet:
    """The fields an apply configuration sets (structured-merge-diff's ToFieldSet)."""
    shape = "leaf" if value is None else _shape(value, spath, schema)
    if shape == "map":
        out: FieldSet = set()
        for key, sub in value.items():
            out |= _config_fields(sub, child_path(spath, key), (*prefix, f"f:{key}"), schema)
        return out
    if shape == "list":
        out = set()
        for token, item in _items(value, spath, schema, strict=True).items():
            out.add((*prefix, token))
            if _shape(item, f"{spath}[]", schema) == "map":
                out |= _config_fields(item, f"{spath}[]", (*prefix, token), schema)
        return out
    return {prefix} if prefix else set()


def _merge(live: Any, config: Any, spath: str, schema: Schema) -> Any:
    """Merge an apply configuration into (a private copy of) the live value."""
    shape = _shape(config, spath, schema)
    if shape == "map":
        out = live if isinstance(live, dict) else {}
        for key, sub in config.items():
            if sub is None:
                out.pop(key, None)  # applying null clears the field (and owns it)
            else:
                out[key] = _merge(out.get(key), sub, child_path(spath, key), schema)
        return out
    if shape == "list":
        return _merge_list(live if isinstance(live, list) else [], config, spath, schema)
    return copy.deepcopy(config)


def _merge_list(live: list[Any], config: list[Any], spath: str, schema: Schema) -> list[Any]:
    """Keep live-only items where they are; configured items follow the configuration's order."""
    rule = schema.lists[spath]
    wanted = _items(config, spath, schema, strict=True)
    order = list(wanted)
    have = _items(live, spath, schema, strict=False)
    out: list[Any] = []
    done: set[str] = set()
    next_wanted = 0

    def emit(token: str) -> None:
        item = wanted[token]
        out.append(_merge(have.get(token), item, f"{spath}[]", schema))
        done.add(token)

    for i, item in enumerate(live):
        token = _item_token(item, rule, i, spath, strict=False)
        if token in wanted:
            while token not in done:
                candidate = order[next_wanted]
                next_wanted += 1
                if candidate not in done:
                    emit(candidate)
        elif token not in done:
            out.append(item)
            done.add(token)
    for token in order:
        if token not in done:
            emit(token)
    return out


def _compare(old: Any, new: Any, schema: Schema) -> tuple[FieldSet, FieldSet, FieldSet]:
    """Fields added, modified and removed going from `old` to `new`."""
    added: FieldSet = set()
    modified: FieldSet = set()
    removed: FieldSet = set()

    def walk(a: Any, b: Any, spath: str, prefix: Path) -> None:
        sa = _shape(a, spath, schema) if a is not _MISSING else None
        sb = _shape(b, spath, schema) if b is not _MISSING else None
        if sa is None and sb is None:
            return
        if sa == sb and sa in ("map", "list"):
            children(a, b, sa, spath, prefix)
        elif sa is None and sb in ("map", "list"):
            if len(prefix) > 1:  # top-level spec/metadata are structs nobody owns as a whole
                added.add(prefix)
            children(_empty(b), b, sb, spath, prefix)
        elif sb is None and sa in ("map", "list"):
            if len(prefix) > 1:
                removed.add(prefix)
            children(a, _empty(a), sa, spath, prefix)
        elif sa is None:
            added.add(prefix)
        elif sb is None:
            removed.add(prefix)
        elif not json_equal(a, b):
            modified.add(prefix)

    def children(a: Any, b: Any, shape: str, spath: str, prefix: Path) -> None:
        if shape == "map":
            for key in {**a, **b}:
                walk(
                    a.get(key, _MISSING),
                    b.get(key, _MISSING),
                    child_path(spath, key),
                    (*prefix, f"f:{key}"),
                )
            return
        ia = _items(a, spath, schema, strict=False)
        ib = _items(b, spath, schema, strict=False)
        for token in {**ia, **ib}:
            # An added or removed item shows up as its own path (`.` in FieldsV1).
            walk(ia.get(token, _MISSING), ib.get(token, _MISSING), f"{spath}[]", (*prefix, token))

    walk(old, new, "", ())
    return added, modified, removed


def _empty(value: Any) -> Any:
    return {} if isinstance(value, dict) else []


def _prune(obj: dict[str, Any], doomed: FieldSet, owned: FieldSet, schema: Schema) -> None:
    """Remove the `doomed` fields from `obj`, keeping any that hold an owned field."""
    holders = {p[:i] for p in owned for i in range(1, len(p))}
    for path in sorted(doomed, key=len):
        if path in holders or not path or _is_key_field(path):
            continue
        trail: list[tuple[Any, Any, str]] = []  # (container, accessor, spath of container)
        node: Any = obj
        spath = ""
        for token in path:
            step = _child(node, token, spath, schema)
            if step is None:
                break
            accessor, child, child_spath = step
            trail.append((node, accessor, spath))
            node, spath = child, child_spath
        else:
            container, accessor, _ = trail[-1]
            del container[accessor]
            # Containers emptied by the removal go too (not top-level ones, nor owned ones).
            for depth in range(len(trail) - 1, 1, -1):
                parent, key, _ = trail[depth - 1]
                if parent[key] or path[:depth] in owned:
                    break
                del parent[key]


def _is_key_field(path: Path) -> bool:
    """Whether `path` is a key field of a list-map item (`…k:{"port":80}.f:port`).

    An item kept because another manager owns part of it must keep its key.
    """
    if len(path) < 2 or not path[-2].startswith("k:") or not path[-1].startswith("f:"):
        return False
    try:
        return path[-1][2:] in json.loads(path[-2][2:])
    except (ValueError, TypeError):
        return False


def _child(node: Any, token: str, spath: str, schema: Schema) -> tuple[Any, Any, str] | None:
    if token.startswith("f:"):
        name = token[2:]
        if isinstance(node, dict) and name in node:
            return name, node[name], child_path(spath, name)
        return None
    rule = schema.lists.get(spath)
    if isinstance(node, list) and rule is not None:
        for i, item in enumerate(node):
            if _item_token(item, rule, i, spath, strict=False) == token:
                return i, item, f"{spath}[]"
    return None
