"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and Kubernetes strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubesvc.api.errors import StatusError
from kubesvc.api.patch import json_patch, merge_patch, strategic_merge_patch
from tests.api.objects import KINDS, pod, service

# ---------------------------------------------------------------------------
# RFC 7386, Appendix A
# ---------------------------------------------------------------------------

RFC7386 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386)
def test_merge_patch_rfc7386(target: Any, patch: Any, expected: Any) -> None:
    before = copy.deepcopy(target)
    assert merge_patch(target, patch) == expected
    assert target == before


def test_merge_patch_label_as_kubectl_label_sends() -> None:
    out = merge_patch(service(), {"metadata": {"labels": {"tier": "web"}}})
    assert out["metadata"]["labels"] == {"tier": "web"}
    assert out["spec"] == service()["spec"]


# ---------------------------------------------------------------------------
# RFC 6902, Appendix A
# ---------------------------------------------------------------------------

RFC6902 = [
    (
        "A.1",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"baz": "qux", "foo": "bar"},
    ),
    (
        "A.2",
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    ("A.3", {"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    (
        "A.4",
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
    ),
    (
        "A.5",
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        "A.6",
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        "A.7",
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        "A.8",
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [
            {"op": "test", "path": "/baz", "value": "qux"},
            {"op": "test", "path": "/foo/1", "value": 2},
        ],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        "A.10",
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        "A.11",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
    ),
    ("A.14", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    (
        "A.16",
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
    (
        "copy",
        {"a": {"b": 1}},
        [{"op": "copy", "from": "/a", "path": "/c"}],
        {"a": {"b": 1}, "c": {"b": 1}},
    ),
    ("replace root", {"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}], {"b": 2}),
    ("slash key", {"a/b": 1}, [{"op": "replace", "path": "/a~1b", "value": 2}], {"a/b": 2}),
    ("add at end", {"a": [1]}, [{"op": "add", "path": "/a/1", "value": 2}], {"a": [1, 2]}),
    ("test 1 == 1.0", {"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}], {"a": 1}),
]


@pytest.mark.parametrize(("case", "doc", "ops", "expected"), RFC6902, ids=[c[0] for c in RFC6902])
def test_json_patch_rfc6902(case: str, doc: Any, ops: Any, expected: Any) -> None:
    before = copy.deepcopy(doc)
    assert json_patch(doc, ops) == expected
    assert doc == before


JSON_PATCH_ERRORS = [
    (
        "A.9 test fails",
        {"baz": "qux"},
        [{"op": "test", "path": "/baz", "value": "bar"}],
        'jsonpatch test operation does not apply: testing value "/baz" failed',
    ),
    (
        "A.12 add to missing parent",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz/bat", "value": 1}],
        'jsonpatch add operation does not apply: doc is missing path: "/baz/bat"',
    ),
    (
        "A.15 string is not number",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": "10"}],
        "testing value",
    ),
    (
        "replace missing",
        {"spec": {}},
        [{"op": "replace", "path": "/spec/foo", "value": 1}],
        'jsonpatch replace operation does not apply: doc is missing path: "/spec/foo"',
    ),
    (
        "remove missing",
        {},
        [{"op": "remove", "path": "/a"}],
        'jsonpatch remove operation does not apply: doc is missing path: "/a"',
    ),
    ("remove past end", {"a": [1]}, [{"op": "remove", "path": "/a/1"}], "missing path"),
    (
        "leading zero index",
        {"a": [1, 2]},
        [{"op": "replace", "path": "/a/01", "value": 0}],
        "missing path",
    ),
    ("add past end", {"a": [1]}, [{"op": "add", "path": "/a/5", "value": 2}], "missing path"),
    (
        "move from missing",
        {},
        [{"op": "move", "from": "/x", "path": "/y"}],
        'doc is missing from path: "/x"',
    ),
    (
        "move into itself",
        {"a": {"b": 1}},
        [{"op": "move", "from": "/a", "path": "/a/b/c"}],
        "into itself",
    ),
    ("unknown op", {}, [{"op": "frob", "path": "/a"}], 'unsupported operation "frob"'),
    ("no path", {}, [{"op": "add", "value": 1}], '"path" must be a string'),
    ("no value", {}, [{"op": "add", "path": "/a"}], 'missing "value"'),
    ("bad pointer", {}, [{"op": "add", "path": "a", "value": 1}], "invalid JSON pointer"),
    ("op not object", {}, ["add"], "must be a JSON object"),
    ("test true != 1", {"a": True}, [{"op": "test", "path": "/a", "value": 1}], "testing value"),
]


@pytest.mark.parametrize(
    ("case", "doc", "ops", "message"), JSON_PATCH_ERRORS, ids=[c[0] for c in JSON_PATCH_ERRORS]
)
def test_json_patch_errors_are_422(case: str, doc: Any, ops: Any, message: str) -> None:
    with pytest.raises(StatusError) as err:
        json_patch(doc, ops)
    assert err.value.code == 422
    assert err.value.reason == "Invalid"
    assert message in err.value.message


def test_json_patch_is_all_or_nothing_and_needs_a_list() -> None:
    doc = {"a": 1}
    with pytest.raises(StatusError):
        json_patch(doc, [{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/z"}])
    assert doc == {"a": 1}
    with pytest.raises(StatusError) as err:
        json_patch(doc, {"op": "add"})
    assert err.value.code == 400


# ---------------------------------------------------------------------------
# Strategic merge patch
# ---------------------------------------------------------------------------


def _svc_ports(*ports: dict[str, Any]) -> dict[str, Any]:
    return service(ports=list(ports))


def test_smp_kubectl_apply_service_port_change() -> None:
    # What `kubectl apply` sends when the manifest's port 80 becomes 8080.
    live = _svc_ports({"name": "http", "protocol": "TCP", "port": 80, "targetPort": 9376})
    patch = {
        "spec": {
            "$setElementOrder/ports": [{"port": 8080}],
            "ports": [
                {"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 9376},
                {"$patch": "delete", "port": 80},
            ],
        }
    }
    out = strategic_merge_patch(live, patch, "Service")
    assert out["spec"]["ports"] == [
        {"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 9376}
    ]
    assert out["spec"]["selector"] == {"app": "MyApp"}


def test_smp_port_change_keeps_server_fields_of_untouched_ports() -> None:
    live = _svc_ports(
        {"name": "a", "protocol": "TCP", "port": 80, "targetPort": 80, "nodePort": 30080},
        {"name": "b", "protocol": "TCP", "port": 443, "targetPort": 443, "nodePort": 30443},
    )
    patch = {
        "spec": {
            "$setElementOrder/ports": [{"port": 80}, {"port": 8443}],
            "ports": [
                {"name": "b", "port": 8443, "targetPort": 443},
                {"$patch": "delete", "port": 443},
            ],
        }
    }
    ports = strategic_merge_patch(live, patch, "Service")["spec"]["ports"]
    assert [p["port"] for p in ports] == [80, 8443]
    assert ports[0]["nodePort"] == 30080
    assert "nodePort" not in ports[1]


def test_smp_delete_one_port() -> None:
    live = _svc_ports({"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"})
    patch = {"spec": {"ports": [{"$patch": "delete", "port": 80}]}}
    assert strategic_merge_patch(live, patch, "Service")["spec"]["ports"] == [
        {"port": 81, "protocol": "TCP"}
    ]


def test_smp_merges_ports_by_port_and_prefers_protocol_match() -> None:
    live = _svc_ports(
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        {"name": "dns", "port": 53, "protocol": "UDP"},
    )
    patch = {"spec": {"ports": [{"port": 53, "protocol": "UDP", "targetPort": 5353}]}}
    ports = strategic_merge_patch(live, patch, "Service")["spec"]["ports"]
    assert ports == [
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353},
    ]


def test_smp_adds_a_port_and_changes_protocol_by_port() -> None:
    live = _svc_ports({"port": 80, "protocol": "TCP"})
    patch = {"spec": {"ports": [{"port": 80, "protocol": "UDP"}, {"port": 90}]}}
    ports = strategic_merge_patch(live, patch, "Service")["spec"]["ports"]
    assert ports == [{"port": 80, "protocol": "UDP"}, {"port": 90}]


def test_smp_env_merges_by_name() -> None:
    live = pod()
    live["spec"]["containers"][0]["env"] = [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
    ]
    patch = {
        "spec": {
            "containers": [
                {"name": "web", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}
            ]
        }
    }
    out = strategic_merge_patch(live, patch, "Pod")
    container = out["spec"]["containers"][0]
    assert container["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "3"},
        {"name": "C", "value": "4"},
    ]
    assert container["command"] == live["spec"]["containers"][0]["command"]


def test_smp_container_ports_merge_by_container_port_and_command_replaces() -> None:
    live = pod()
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "command": ["sleep"],
                    "ports": [{"containerPort": 9376, "protocol": "TCP"}, {"containerPort": 1}],
                },
                {"name": "sidecar", "image": "busybox"},
            ]
        }
    }
    out = strategic_merge_patch(live, patch, "Pod")
    web, sidecar = out["spec"]["containers"]
    assert web["command"] == ["sleep"]
    assert web["ports"] == [
        {"name": "http", "containerPort": 9376, "protocol": "TCP"},
        {"containerPort": 1},
    ]
    assert sidecar == {"name": "sidecar", "image": "busybox"}


def test_smp_set_element_order_reorders_and_keeps_server_only_items_last() -> None:
    live = pod()
    live["spec"]["containers"] = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "b", "image": "new"}],
        }
    }
    out = strategic_merge_patch(live, patch, "Pod")
    assert out["spec"]["containers"] == [
        {"name": "b", "image": "new"},
        {"name": "a"},
        {"name": "c"},
    ]


def test_smp_set_element_order_alone_reorders() -> None:
    live = _svc_ports({"port": 80}, {"port": 81})
    patch = {"spec": {"$setElementOrder/ports": [{"port": 81}, {"port": 80}]}}
    out = strategic_merge_patch(live, patch, "Service")
    assert [p["port"] for p in out["spec"]["ports"]] == [81, 80]


def test_smp_retain_keys_clears_the_other_volume_source() -> None:
    live = pod()
    live["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}, {"name": "keep", "emptyDir": {}}]
    patch = {
        "spec": {
            "$setElementOrder/volumes": [{"name": "data"}, {"name": "keep"}],
            "volumes": [
                {"$retainKeys": ["hostPath", "name"], "name": "data", "hostPath": {"path": "/x"}}
            ],
        }
    }
    out = strategic_merge_patch(live, patch, "Pod")
    assert out["spec"]["volumes"] == [
        {"name": "data", "hostPath": {"path": "/x"}},
        {"name": "keep", "emptyDir": {}},
    ]


def test_smp_finalizers_primitive_list_add_delete_and_order() -> None:
    # kubectl apply: last-applied [a, b] → manifest [a, c]; "x" was added by the server.
    live = service()
    live["metadata"]["finalizers"] = ["a", "b", "x"]
    patch = {
        "metadata": {
            "$setElementOrder/finalizers": ["a", "c"],
            "$deleteFromPrimitiveList/finalizers": ["b"],
            "finalizers": ["c"],
        }
    }
    out = strategic_merge_patch(live, patch, "Service")
    assert out["metadata"]["finalizers"] == ["a", "c", "x"]


def test_smp_delete_from_primitive_list_alone() -> None:
    live = service()
    live["metadata"]["finalizers"] = ["a", "b"]
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "zzz"]}}
    assert strategic_merge_patch(live, patch, "Service")["metadata"]["finalizers"] == ["b"]


def test_smp_null_deletes() -> None:
    live = service()
    live["metadata"]["labels"] = {"a": "1", "b": "2"}
    patch = {"metadata": {"labels": {"a": None, "nope": None}}, "spec": {"selector": None}}
    out = strategic_merge_patch(live, patch, "Service")
    assert out["metadata"]["labels"] == {"b": "2"}
    assert "selector" not in out["spec"]


SMP_DIRECTIVES = [
    (
        "replace list",
        {"spec": {"ports": [{"$patch": "replace"}, {"port": 1}]}},
        lambda o: o["spec"]["ports"] == [{"port": 1}],
    ),
    (
        "replace map",
        {"spec": {"selector": {"$patch": "replace", "app": "b"}}},
        lambda o: o["spec"]["selector"] == {"app": "b"},
    ),
    (
        "merge map",
        {"spec": {"selector": {"$patch": "merge", "tier": "x"}}},
        lambda o: o["spec"]["selector"] == {"app": "MyApp", "tier": "x"},
    ),
    (
        "delete map",
        {"spec": {"selector": {"$patch": "delete"}}},
        lambda o: o["spec"]["selector"] == {},
    ),
    (
        "merge map selector",
        {"spec": {"selector": {"tier": "x"}}},
        lambda o: o["spec"]["selector"] == {"app": "MyApp", "tier": "x"},
    ),
    (
        "explicit merge item",
        {"spec": {"ports": [{"$patch": "merge", "port": 80, "name": "h"}]}},
        lambda o: (
            o["spec"]["ports"] == [{"protocol": "TCP", "port": 80, "targetPort": 9376, "name": "h"}]
        ),
    ),
    (
        "new map field is cleaned",
        {"spec": {"sessionAffinityConfig": {"a": None, "b": 1}}},
        lambda o: o["spec"]["sessionAffinityConfig"] == {"b": 1},
    ),
    (
        "atomic list replaces",
        {"spec": {"externalIPs": ["192.0.2.1"]}},
        lambda o: o["spec"]["externalIPs"] == ["192.0.2.1"],
    ),
]


@pytest.mark.parametrize(
    ("case", "patch", "check"), SMP_DIRECTIVES, ids=[c[0] for c in SMP_DIRECTIVES]
)
def test_smp_directives(case: str, patch: dict[str, Any], check: Any) -> None:
    assert check(strategic_merge_patch(service(), patch, "Service"))


@pytest.mark.parametrize(
    ("kind", "obj", "patch", "field"),
    [
        (
            "EndpointSlice",
            KINDS["EndpointSlice"](),
            {"endpoints": [{"addresses": ["192.0.2.9"]}]},
            "endpoints",
        ),
        ("EndpointSlice", KINDS["EndpointSlice"](), {"ports": [{"port": 1}]}, "ports"),
        (
            "Endpoints",
            KINDS["Endpoints"](),
            {"subsets": [{"addresses": [{"ip": "192.0.2.9"}]}]},
            "subsets",
        ),
        ("Widget", {"items": [{"name": "a"}]}, {"items": [{"name": "b"}]}, "items"),
    ],
)
def test_smp_atomic_lists_are_replaced(
    kind: str, obj: dict[str, Any], patch: Any, field: str
) -> None:
    assert strategic_merge_patch(obj, patch, kind)[field] == patch[field]


SMP_ERRORS = [
    ("unknown map directive", {"spec": {"$patch": "frob"}}, 400),
    ("unknown list directive", {"spec": {"ports": [{"$patch": "frob", "port": 80}]}}, 400),
    ("item without merge key", {"spec": {"ports": [{"name": "x"}]}}, 400),
    ("delete without merge key", {"spec": {"ports": [{"$patch": "delete"}]}}, 400),
    ("retainKeys not a list", {"spec": {"$retainKeys": "x"}}, 400),
    ("retainKeys misses a key", {"spec": {"$retainKeys": ["type"], "selector": {}}}, 400),
    ("setElementOrder not a list", {"spec": {"$setElementOrder/ports": {}}}, 400),
    ("setElementOrder without key", {"spec": {"$setElementOrder/ports": [{"name": "x"}]}}, 400),
    ("setElementOrder bad form", {"spec": {"$setElementOrder": []}}, 400),
    ("deleteFromPrimitiveList bad form", {"metadata": {"$deleteFromPrimitiveList": []}}, 400),
    ("list of lists", {"spec": {"ports": [[1]]}}, 422),
    ("patch not an object", ["x"], 400),
]


@pytest.mark.parametrize(("case", "patch", "code"), SMP_ERRORS, ids=[c[0] for c in SMP_ERRORS])
def test_smp_errors(case: str, patch: Any, code: int) -> None:
    with pytest.raises(StatusError) as err:
        strategic_merge_patch(service(), patch, "Service")
    assert err.value.code == code


def test_smp_does_not_mutate_inputs() -> None:
    live = pod()
    patch = {
        "spec": {"containers": [{"name": "web", "env": [{"$patch": "delete", "name": "GREETING"}]}]}
    }
    before_live, before_patch = copy.deepcopy(live), copy.deepcopy(patch)
    out = strategic_merge_patch(live, patch, "Pod")
    assert out["spec"]["containers"][0]["env"] == []
    assert (live, patch) == (before_live, before_patch)


# ---------------------------------------------------------------------------
# Robustness: arbitrary JSON in, StatusError or a result out, inputs untouched
# ---------------------------------------------------------------------------

_KEYS = st.sampled_from(
    [
        "spec",
        "metadata",
        "ports",
        "port",
        "protocol",
        "name",
        "containers",
        "env",
        "selector",
        "finalizers",
        "volumes",
        "$patch",
        "$retainKeys",
        "$setElementOrder/ports",
        "$setElementOrder/containers",
        "$setElementOrder/finalizers",
        "$deleteFromPrimitiveList/finalizers",
        "$setElementOrder",
        "delete",
        "replace",
        "merge",
    ]
) | st.text(max_size=6)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-5, 100)
    | st.floats(allow_nan=False)
    | st.sampled_from(["delete", "replace", "merge", "TCP", "web", "a"])
    | st.text(max_size=5)
)
json_values = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=25,
)
json_objects = st.dictionaries(_KEYS, json_values, max_size=5)
kinds = st.sampled_from([*KINDS, "Event", "Other", None, 7])

ROBUST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _unchanged_after(fn: Any, *args: Any) -> None:
    before = copy.deepcopy(args)
    try:
        fn(*args)
    except StatusError as err:
        err.status()
    assert args == before


@ROBUST
@given(original=json_values, patch=json_values)
def test_merge_patch_never_raises_never_mutates(original: Any, patch: Any) -> None:
    _unchanged_after(merge_patch, original, patch)


_pointers = st.lists(_KEYS | st.sampled_from(["0", "1", "-", "~0", "~1", "01"]), max_size=3).map(
    lambda parts: "".join("/" + p for p in parts)
) | st.text(max_size=4)
_ops = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "x"]) | st.none()},
    optional={"path": _pointers | json_values, "from": _pointers, "value": json_values},
)


@ROBUST
@given(original=json_values, ops=st.lists(_ops | json_values, max_size=4) | json_values)
def test_json_patch_raises_only_status_errors(original: Any, ops: Any) -> None:
    _unchanged_after(json_patch, original, ops)


@ROBUST
@given(kind=kinds, original=json_objects | json_values, patch=json_objects | json_values)
def test_strategic_merge_patch_raises_only_status_errors(
    kind: Any, original: Any, patch: Any
) -> None:
    _unchanged_after(strategic_merge_patch, original, patch, kind)


@ROBUST
@given(kind=st.sampled_from(sorted(KINDS)), patch=json_objects)
def test_strategic_merge_patch_on_real_objects(kind: str, patch: dict[str, Any]) -> None:
    obj = KINDS[kind]()
    obj.setdefault("spec", {})
    obj["metadata"]["finalizers"] = ["a", "b"]
    # Point some of the generated patch at the fields that have merge strategies.
    for nested in (patch, {"spec": patch}, {"metadata": patch}):
        _unchanged_after(strategic_merge_patch, obj, nested, kind)
