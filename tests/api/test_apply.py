"""Server-side apply and managedFields tracking."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubesvc.api.apply import fields_of, path_string, server_side_apply, track_update
from kubesvc.api.errors import StatusError
from tests.api.objects import KINDS, pod, service
from tests.api.test_patch import json_objects

T1, T2, T3, T4 = (f"2024-01-01T00:00:0{i}Z" for i in range(1, 5))
PORT80 = 'k:{"port":80,"protocol":"TCP"}'


def _entry(obj: dict[str, Any], manager: str, operation: str = "Apply") -> dict[str, Any] | None:
    for entry in obj["metadata"].get("managedFields", []):
        if entry["manager"] == manager and entry["operation"] == operation:
            return entry
    return None


def _owns(obj: dict[str, Any], manager: str, *path: str, operation: str = "Apply") -> bool:
    entry = _entry(obj, manager, operation)
    return entry is not None and tuple(path) in fields_of(entry)


def _conflict(fn: Any, *args: Any) -> StatusError:
    with pytest.raises(StatusError) as err:
        fn(*args)
    assert err.value.code == 409
    assert err.value.reason == "Conflict"
    return err.value


# ---------------------------------------------------------------------------
# Apply by one manager
# ---------------------------------------------------------------------------


def test_create_by_apply_records_fieldsv1() -> None:
    obj = server_side_apply(None, service(), "kubectl", False, T1)
    assert obj["spec"] == service()["spec"]
    assert obj["metadata"]["managedFields"] == [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:spec": {
                    "f:ports": {
                        PORT80: {".": {}, "f:port": {}, "f:protocol": {}, "f:targetPort": {}}
                    },
                    # Service selector is a map of type atomic: owned as one field.
                    "f:selector": {},
                }
            },
        }
    ]


def test_reapply_same_configuration_changes_nothing() -> None:
    obj = server_side_apply(None, service(), "kubectl", False, T1)
    again = server_side_apply(copy.deepcopy(obj), service(), "kubectl", False, T2)
    assert again == obj


def test_apply_removing_fields_removes_them() -> None:
    first = service(ports=[{"port": 80, "targetPort": 80}, {"port": 81, "targetPort": 81}])
    first["metadata"]["labels"] = {"a": "1", "b": "2"}
    obj = server_side_apply(None, first, "kubectl", False, T1)
    second = service(ports=[{"port": 80, "targetPort": 80}])
    second["metadata"]["labels"] = {"a": "1"}
    obj = server_side_apply(obj, second, "kubectl", False, T2)
    assert obj["spec"]["ports"] == [{"port": 80, "targetPort": 80}]
    assert obj["metadata"]["labels"] == {"a": "1"}
    assert not _owns(obj, "kubectl", "f:spec", "f:ports", 'k:{"port":81,"protocol":"TCP"}')
    assert _entry(obj, "kubectl")["time"] == T2  # type: ignore[index]

    third = service(ports=[{"port": 80, "targetPort": 80}])
    obj = server_side_apply(obj, third, "kubectl", False, T3)
    assert "labels" not in obj["metadata"]


def test_apply_default_key_fields_and_live_only_items() -> None:
    # protocol is defaulted to TCP in the key; a port somebody else added stays put.
    live = server_side_apply(None, service(ports=[{"port": 80}]), "a", False, T1)
    live["spec"]["ports"][0]["protocol"] = "TCP"
    live = track_update(
        live,
        {**live, "spec": {**live["spec"], "ports": [*live["spec"]["ports"], {"port": 99}]}},
        "b",
        "Update",
        T2,
    )
    obj = server_side_apply(live, service(ports=[{"port": 80, "name": "web"}]), "a", False, T3)
    assert obj["spec"]["ports"] == [
        {"port": 80, "protocol": "TCP", "name": "web"},
        {"port": 99},
    ]
    assert _owns(obj, "a", "f:spec", "f:ports", PORT80, "f:name")


def test_status_and_server_metadata_are_not_owned() -> None:
    applied = service()
    applied["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    applied["metadata"]["uid"] = "nope"
    live = service()
    live["status"] = {"loadBalancer": {}}
    live["metadata"].update(uid="u1", resourceVersion="7", managedFields=[])
    obj = server_side_apply(live, applied, "kubectl", False, T1)
    assert obj["status"] == {"loadBalancer": {}}
    assert obj["metadata"]["uid"] == "u1"
    owned = fields_of(_entry(obj, "kubectl"))  # type: ignore[arg-type]
    assert not any(p[0] in ("f:status", "f:apiVersion", "f:kind") for p in owned)
    assert ("f:metadata", "f:name") not in owned


def test_pod_list_maps_and_finalizer_sets() -> None:
    applied = pod()
    applied["metadata"]["finalizers"] = ["example.com/x"]
    obj = server_side_apply(None, applied, "kubectl", False, T1)
    web = ("f:spec", "f:containers", 'k:{"name":"web"}')
    assert _owns(obj, "kubectl", *web)
    assert _owns(obj, "kubectl", *web, "f:env", 'k:{"name":"GREETING"}', "f:value")
    assert _owns(obj, "kubectl", *web, "f:ports", 'k:{"containerPort":9376,"protocol":"TCP"}')
    assert _owns(obj, "kubectl", *web, "f:command")  # atomic list
    assert _owns(obj, "kubectl", "f:metadata", "f:finalizers", 'v:"example.com/x"')


# ---------------------------------------------------------------------------
# Several managers
# ---------------------------------------------------------------------------


def test_two_managers_same_value_share_ownership() -> None:
    obj = server_side_apply(None, service(), "alice", False, T1)
    obj = server_side_apply(obj, service(), "bob", False, T2)
    assert _owns(obj, "alice", "f:spec", "f:selector")
    assert _owns(obj, "bob", "f:spec", "f:selector")
    # Alice stops applying the selector: Bob still owns it, so it stays.
    without = service()
    del without["spec"]["selector"]
    obj = server_side_apply(obj, without, "alice", False, T3)
    assert obj["spec"]["selector"] == {"app": "MyApp"}
    assert not _owns(obj, "alice", "f:spec", "f:selector")


def test_conflict_with_other_applier() -> None:
    obj = server_side_apply(None, service(), "other", False, T1)
    changed = service(selector={"app": "Else"})
    err = _conflict(server_side_apply, obj, changed, "kubectl", False, T2)
    assert err.message == 'Apply failed with 1 conflict: conflict with "other": .spec.selector'
    assert err.causes == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "other"',
            "field": ".spec.selector",
        }
    ]
    assert err.status()["details"]["causes"][0]["reason"] == "FieldManagerConflict"


def test_several_conflicts_are_listed_per_manager() -> None:
    obj = server_side_apply(None, service(), "other", False, T1)
    changed = service(selector={"app": "Else"}, ports=[{"port": 80, "targetPort": 1}])
    err = _conflict(server_side_apply, obj, changed, "kubectl", False, T2)
    assert err.message == (
        'Apply failed with 2 conflicts: conflicts with "other":\n'
        '- .spec.ports[port=80,protocol="TCP"].targetPort\n'
        "- .spec.selector"
    )
    assert [c["field"] for c in err.causes] == [
        '.spec.ports[port=80,protocol="TCP"].targetPort',
        ".spec.selector",
    ]


def test_force_takes_ownership() -> None:
    obj = server_side_apply(None, service(), "other", False, T1)
    changed = service(selector={"app": "Else"})
    obj = server_side_apply(obj, changed, "kubectl", True, T2)
    assert obj["spec"]["selector"] == {"app": "Else"}
    assert _owns(obj, "kubectl", "f:spec", "f:selector")
    assert not _owns(obj, "other", "f:spec", "f:selector")
    assert _owns(obj, "other", "f:spec", "f:ports", PORT80, "f:targetPort")


def test_conflict_with_kubectl_patch_update() -> None:
    obj = server_side_apply(None, service(), "kubectl", False, T1)
    patched = copy.deepcopy(obj)
    patched["spec"]["selector"] = {"app": "Patched"}
    obj = track_update(obj, patched, "kubectl-patch", "Update", T2)
    assert not _owns(obj, "kubectl", "f:spec", "f:selector")
    assert _owns(obj, "kubectl-patch", "f:spec", "f:selector", operation="Update")
    err = _conflict(server_side_apply, obj, service(), "kubectl", False, T3)
    assert err.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-patch" using v1: .spec.selector'
    )


def test_conflict_with_client_side_apply_on_port_field() -> None:
    created = service()
    created["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    obj = track_update(None, created, "kubectl-client-side-apply", "Update", T1)
    entry = _entry(obj, "kubectl-client-side-apply", "Update")
    assert entry is not None
    assert entry["fieldsV1"]["f:metadata"]["f:annotations"]["."] == {}  # Update owns the map
    assert entry["fieldsV1"]["f:spec"]["f:ports"]["."] == {}
    assert "." not in entry["fieldsV1"]["f:spec"]
    err = _conflict(
        server_side_apply,
        obj,
        service(ports=[{"port": 80, "targetPort": 8080}]),
        "kubectl",
        False,
        T2,
    )
    assert err.causes == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl-client-side-apply" using v1',
            "field": '.spec.ports[port=80,protocol="TCP"].targetPort',
        }
    ]


def test_object_without_managed_fields_is_owned_before_first_apply() -> None:
    err = _conflict(server_side_apply, service(), service(selector={"x": "y"}), "k", False, T1)
    assert 'conflict with "before-first-apply" using v1' in err.message


# ---------------------------------------------------------------------------
# track_update
# ---------------------------------------------------------------------------


def test_track_update_moves_changed_fields_and_forgets_removed_ones() -> None:
    obj = track_update(None, service(), "creator", "Update", T1)
    assert _owns(obj, "creator", "f:spec", "f:selector", operation="Update")
    changed = copy.deepcopy(obj)
    changed["spec"]["selector"] = {"app": "b"}
    del changed["spec"]["ports"][0]["targetPort"]
    obj = track_update(obj, changed, "editor", "Update", T2)
    assert _owns(obj, "editor", "f:spec", "f:selector", operation="Update")
    assert not _owns(obj, "creator", "f:spec", "f:selector", operation="Update")
    assert not _owns(
        obj, "creator", "f:spec", "f:ports", PORT80, "f:targetPort", operation="Update"
    )
    assert _entry(obj, "creator", "Update")["time"] == T1  # type: ignore[index]
    assert [e["manager"] for e in obj["metadata"]["managedFields"]] == ["creator", "editor"]


def test_track_update_without_change_keeps_managed_fields() -> None:
    obj = track_update(None, service(), "creator", "Update", T1)
    assert track_update(obj, copy.deepcopy(obj), "someone", "Update", T2) == obj


def test_track_update_client_can_reset_managed_fields() -> None:
    obj = track_update(None, service(), "creator", "Update", T1)
    for reset in ([], [{}]):
        sent = copy.deepcopy(obj)
        sent["metadata"]["managedFields"] = reset
        assert "managedFields" not in track_update(obj, sent, "x", "Update", T2)["metadata"]


def test_apply_entries_sort_before_update_entries() -> None:
    obj = track_update(None, service(), "creator", "Update", T1)
    labelled = service()
    labelled["metadata"]["labels"] = {"a": "b"}
    obj = server_side_apply(obj, labelled, "zz", False, T2)
    assert [(e["manager"], e["operation"]) for e in obj["metadata"]["managedFields"]] == [
        ("zz", "Apply"),
        ("creator", "Update"),
    ]


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("applied", "manager", "code"),
    [
        (service(), "", 422),
        ({"metadata": {"name": "x", "managedFields": [{}]}}, "m", 400),
        ({"metadata": "x"}, "m", 400),
        (service(ports=[{"port": 80}, {"port": 80, "name": "dup"}]), "m", 422),
        (service(ports=[{"name": "no-port"}]), "m", 422),
        (["not", "an", "object"], "m", 400),
    ],
)
def test_apply_rejects_bad_input(applied: Any, manager: str, code: int) -> None:
    with pytest.raises(StatusError) as err:
        server_side_apply(None, applied, manager, False, T1)
    assert err.value.code == code


def test_path_string() -> None:
    assert path_string(("f:spec", "f:ports", PORT80, "f:targetPort")) == (
        '.spec.ports[port=80,protocol="TCP"].targetPort'
    )
    assert path_string(("f:metadata", "f:finalizers", 'v:"a"')) == '.metadata.finalizers[="a"]'
    assert path_string(("f:x", "i:3")) == ".x[3]"


ROBUST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@ROBUST
@given(
    kind=st.sampled_from(sorted(KINDS)),
    applied=json_objects,
    force=st.booleans(),
)
def test_apply_and_track_raise_only_status_errors(
    kind: str, applied: dict[str, Any], force: bool
) -> None:
    live = track_update(None, KINDS[kind](), "creator", "Update", T1)
    for args in ((live, applied), (None, applied), (live, {"spec": applied, "kind": kind})):
        before = copy.deepcopy(args)
        with contextlib.suppress(StatusError):
            server_side_apply(*args, "m", force, T2)
        with contextlib.suppress(StatusError):
            track_update(args[0], args[1], "m", "Update", T2)
        assert args == before


def test_dropped_item_stays_with_its_key_while_another_manager_owns_part_of_it() -> None:
    obj = server_side_apply(
        None, service(ports=[{"port": 80}, {"port": 81, "targetPort": 1}]), "a", False, T1
    )
    edited = copy.deepcopy(obj)
    edited["spec"]["ports"][1]["name"] = "named-by-b"
    obj = track_update(obj, edited, "b", "Update", T2)
    obj = server_side_apply(obj, service(ports=[{"port": 80}]), "a", False, T3)
    assert obj["spec"]["ports"] == [{"port": 80}, {"port": 81, "name": "named-by-b"}]
