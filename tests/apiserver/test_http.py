"""The API over HTTPS as any client sees it: codes, Status bodies, verbs, watch."""

from __future__ import annotations

import http.client
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.apiserver.conftest import Cluster

SVC_PATH = "/api/v1/namespaces/default/services"


def service(name: str, port: int = 80, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": 9376}]},
    }
    body["spec"].update(spec)
    return body


def assert_status(body: Any, code: int, reason: str) -> None:
    assert isinstance(body, dict), body
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert (body["code"], body["reason"]) == (code, reason), body


def test_version_and_health_need_no_token(cluster: Cluster) -> None:
    status, body, _ = cluster.request("GET", "/version", token=None)
    assert status == 200 and body["major"] == "1" and body["minor"] == "32"
    for path in ("/healthz", "/livez", "/readyz"):
        assert cluster.request("GET", path, token=None)[0] == 200


def test_no_token_or_a_bad_token_is_401(cluster: Cluster) -> None:
    for token in (None, "not-a-token"):
        status, body, _ = cluster.request("GET", SVC_PATH, token=token)
        assert status == 401
        assert_status(body, 401, "Unauthorized")


def test_read_only_token_reads_but_may_not_write(cluster: Cluster) -> None:
    viewer = cluster.viewer_token()
    status, body, _ = cluster.request("GET", SVC_PATH, token=viewer)
    assert status == 200 and body["kind"] == "ServiceList"
    status, body, _ = cluster.request("POST", SVC_PATH, service("viewer-made"), token=viewer)
    assert status == 403
    assert_status(body, 403, "Forbidden")
    assert 'User "viewer" cannot create resource "services"' in body["message"]


def test_create_defaults_and_returns_201(cluster: Cluster) -> None:
    status, body, _ = cluster.request("POST", SVC_PATH, service("web-created"))
    assert status == 201, body
    meta = body["metadata"]
    assert (
        meta["namespace"] == "default" and meta["uid"] and meta["creationTimestamp"].endswith("Z")
    )
    assert int(meta["resourceVersion"]) > 0
    assert body["spec"]["ports"][0] == {"port": 80, "targetPort": 9376, "protocol": "TCP"}
    assert body["spec"]["type"] == "ClusterIP" and body["spec"]["sessionAffinity"] == "None"
    status, again, _ = cluster.request("GET", f"{SVC_PATH}/web-created")
    assert status == 200 and again == body
    status, dup, _ = cluster.request("POST", SVC_PATH, service("web-created"))
    assert status == 409
    assert_status(dup, 409, "AlreadyExists")
    assert dup["message"] == 'services "web-created" already exists'


def test_invalid_object_is_422_with_one_cause_per_field(cluster: Cluster) -> None:
    bad = service("bad-ports")
    bad["spec"]["ports"] = [{"name": "123_abc", "port": 80}, {"name": "-web", "port": 70000}]
    status, body, _ = cluster.request("POST", SVC_PATH, bad)
    assert status == 422
    assert_status(body, 422, "Invalid")
    assert body["details"]["kind"] == "Service" and body["details"]["name"] == "bad-ports"
    fields = [(c["field"], c["reason"]) for c in body["details"]["causes"]]
    assert ("spec.ports[0].name", "FieldValueInvalid") in fields
    assert ("spec.ports[1].name", "FieldValueInvalid") in fields
    assert ("spec.ports[1].port", "FieldValueInvalid") in fields


@pytest.mark.parametrize(
    ("raw", "content_type", "fragment"),
    [
        (b'{"kind": "Service",', "application/json", "not valid JSON"),
        (b"kind: [oops", "application/yaml", "not valid YAML"),
        (b"", "application/json", "empty"),
    ],
)
def test_bad_bodies_are_400(cluster: Cluster, raw: bytes, content_type: str, fragment: str) -> None:
    status, body, _ = cluster.request("POST", SVC_PATH, raw=raw, content_type=content_type)
    assert status == 400
    assert_status(body, 400, "BadRequest")
    assert fragment in body["message"]


def test_unknown_content_type_is_415(cluster: Cluster) -> None:
    status, body, _ = cluster.request("POST", SVC_PATH, raw=b"hello", content_type="text/plain")
    assert status == 415
    assert_status(body, 415, "UnsupportedMediaType")


def test_yaml_bodies_are_accepted(cluster: Cluster) -> None:
    manifest = b"apiVersion: v1\nkind: Service\nmetadata:\n  name: from-yaml\nspec:\n  ports:\n  - port: 81\n"
    status, body, _ = cluster.request(
        "POST", SVC_PATH, raw=manifest, content_type="application/yaml"
    )
    assert status == 201, body
    assert body["spec"]["ports"][0]["targetPort"] == 81


def test_oversized_body_is_413_without_reading_it_all(cluster: Cluster) -> None:
    # Announce 10 MiB but send only the start: the server must answer at once.
    host, port = cluster.url.removeprefix("https://").rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=cluster.ssl_context(), timeout=10)
    conn.putrequest("POST", SVC_PATH)
    conn.putheader("Authorization", f"Bearer {cluster.token}")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(10 * 1024 * 1024))
    conn.endheaders()
    conn.send(b"{" + b" " * 1024)
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 413
    assert_status(body, 413, "RequestEntityTooLarge")


def test_chunked_oversized_body_is_413(cluster: Cluster) -> None:
    host, port = cluster.url.removeprefix("https://").rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=cluster.ssl_context(), timeout=20)
    chunk = b" " * (1024 * 1024)
    status = 0
    try:
        conn.request(
            "POST",
            SVC_PATH,
            body=iter([chunk] * 4),
            headers={
                "Authorization": f"Bearer {cluster.token}",
                "Content-Type": "application/json",
            },
            encode_chunked=True,
        )
        status = conn.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        status = 413  # the server may close before reading the rest, after answering
    finally:
        conn.close()
    assert status == 413


def test_missing_namespace_is_404(cluster: Cluster) -> None:
    status, body, _ = cluster.request(
        "POST", "/api/v1/namespaces/nowhere/services", service("lost")
    )
    assert status == 404
    assert_status(body, 404, "NotFound")
    assert body["message"] == 'namespaces "nowhere" not found'


def test_initial_namespaces_exist(cluster: Cluster) -> None:
    _, body, _ = cluster.request("GET", "/api/v1/namespaces")
    names = {ns["metadata"]["name"] for ns in body["items"]}
    assert {"default", "kube-system", "kube-public"} <= names
    assert all(ns["status"]["phase"] == "Active" for ns in body["items"])


def test_get_missing_is_404_status(cluster: Cluster) -> None:
    status, body, _ = cluster.request("GET", f"{SVC_PATH}/nope")
    assert status == 404
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'services "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "services"},
        "code": 404,
    }


def test_update_with_stale_resource_version_is_409_and_no_op_keeps_version(
    cluster: Cluster,
) -> None:
    _, created, _ = cluster.request("POST", SVC_PATH, service("web-update"))
    status, same, _ = cluster.request("PUT", f"{SVC_PATH}/web-update", created)
    assert status == 200
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    changed = json.loads(json.dumps(created))
    changed["spec"]["ports"][0]["port"] = 8080
    status, updated, _ = cluster.request("PUT", f"{SVC_PATH}/web-update", changed)
    assert status == 200 and updated["spec"]["ports"][0]["port"] == 8080
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    status, body, _ = cluster.request("PUT", f"{SVC_PATH}/web-update", changed)  # stale version
    assert status == 409
    assert_status(body, 409, "Conflict")
    assert "the object has been modified" in body["message"]


def test_dry_run_persists_nothing(cluster: Cluster) -> None:
    _, before, _ = cluster.request("GET", SVC_PATH)
    status, body, _ = cluster.request("POST", f"{SVC_PATH}?dryRun=All", service("dry"))
    assert status == 201 and body["metadata"]["name"] == "dry"
    assert cluster.request("GET", f"{SVC_PATH}/dry")[0] == 404
    _, after, _ = cluster.request("GET", SVC_PATH)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_generate_name(cluster: Cluster) -> None:
    body = service("x")
    del body["metadata"]["name"]
    body["metadata"]["generateName"] = "gen-"
    status, created, _ = cluster.request("POST", SVC_PATH, body)
    assert status == 201
    assert created["metadata"]["name"].startswith("gen-") and len(created["metadata"]["name"]) == 9


def test_label_and_field_selectors(cluster: Cluster) -> None:
    for name in ("sel-a", "sel-b"):
        cluster.request("POST", SVC_PATH, service(name))
    _, body, _ = cluster.request("GET", f"{SVC_PATH}?labelSelector=app%20in%20(sel-a,zzz)")
    assert [o["metadata"]["name"] for o in body["items"]] == ["sel-a"]
    _, body, _ = cluster.request("GET", "/api/v1/services?fieldSelector=metadata.name%3Dsel-b")
    assert [o["metadata"]["name"] for o in body["items"]] == ["sel-b"]
    status, body, _ = cluster.request("GET", f"{SVC_PATH}?labelSelector=app%20in%20(")
    assert status == 400
    assert_status(body, 400, "BadRequest")
    status, body, _ = cluster.request("GET", f"{SVC_PATH}?fieldSelector=spec.bogus%3D1")
    assert status == 400


def test_list_pages_with_limit_and_continue(cluster: Cluster) -> None:
    cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": "paging"}})
    for i in range(5):
        cluster.request("POST", "/api/v1/namespaces/paging/services", service(f"p{i}"))
    names: list[str] = []
    path = "/api/v1/namespaces/paging/services?limit=2"
    for _ in range(5):
        _, body, _ = cluster.request("GET", path)
        names += [o["metadata"]["name"] for o in body["items"]]
        token = body["metadata"].get("continue")
        if not token:
            break
        path = f"/api/v1/namespaces/paging/services?limit=2&continue={token}"
    assert names == ["p0", "p1", "p2", "p3", "p4"]


def test_deleting_a_namespace_deletes_its_contents(cluster: Cluster) -> None:
    cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": "doomed"}})
    status, _, _ = cluster.request("POST", "/api/v1/namespaces/doomed/services", service("inside"))
    assert status == 201
    status, body, _ = cluster.request("DELETE", "/api/v1/namespaces/doomed")
    assert status == 200 and body["metadata"]["name"] == "doomed"
    assert cluster.request("GET", "/api/v1/namespaces/doomed")[0] == 404
    assert cluster.request("GET", "/api/v1/namespaces/doomed/services/inside")[0] == 404


def test_delete_with_stale_precondition_is_409(cluster: Cluster) -> None:
    _, created, _ = cluster.request("POST", SVC_PATH, service("guarded"))
    options = {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "preconditions": {"resourceVersion": "1"},
    }
    status, body, _ = cluster.request("DELETE", f"{SVC_PATH}/guarded", options)
    assert status == 409
    assert_status(body, 409, "Conflict")
    options["preconditions"] = {"resourceVersion": created["metadata"]["resourceVersion"]}
    status, body, _ = cluster.request("DELETE", f"{SVC_PATH}/guarded", options)
    assert status == 200 and body["metadata"]["name"] == "guarded"


def test_delete_options_in_protobuf_as_kubectl_drain_sends_them(cluster: Cluster) -> None:
    from tests.apiserver.test_protobuf import envelope, ld

    _, created, _ = cluster.request("POST", SVC_PATH, service("drained"))
    stale = envelope(ld(2, ld(2, "1")), kind="DeleteOptions")  # preconditions.resourceVersion
    status, body, _ = cluster.request(
        "DELETE",
        f"{SVC_PATH}/drained",
        raw=stale,
        content_type="application/vnd.kubernetes.protobuf",
    )
    assert status == 409, body  # the protobuf preconditions are applied
    status, body, _ = cluster.request(
        "DELETE",
        f"{SVC_PATH}/drained",
        raw=envelope(b"", kind="DeleteOptions"),
        content_type="application/vnd.kubernetes.protobuf",
    )
    assert status == 200 and body["metadata"]["uid"] == created["metadata"]["uid"]


def _watch_lines(cluster: Cluster, path: str, out: list[dict[str, Any]], stop_after: int) -> None:
    host, port = cluster.url.removeprefix("https://").rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=cluster.ssl_context(), timeout=20)
    conn.request("GET", path, headers={"Authorization": f"Bearer {cluster.token}"})
    response = conn.getresponse()
    while len(out) < stop_after:
        line = response.readline()
        if not line:
            break
        out.append(json.loads(line))
    conn.close()


def test_watch_replays_then_follows(cluster: Cluster) -> None:
    cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": "watched"}})
    base = "/api/v1/namespaces/watched/services"
    cluster.request("POST", base, service("first"))
    events: list[dict[str, Any]] = []
    reader = threading.Thread(
        target=_watch_lines, args=(cluster, f"{base}?watch=true&timeoutSeconds=20", events, 4)
    )
    reader.start()
    deadline = time.monotonic() + 10
    while not events and time.monotonic() < deadline:
        time.sleep(0.02)
    _, second, _ = cluster.request("POST", base, service("second"))
    second["spec"]["ports"][0]["port"] = 99
    cluster.request("PUT", f"{base}/second", second)
    cluster.request("DELETE", f"{base}/second")
    reader.join(timeout=20)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "first"),
        ("ADDED", "second"),
        ("MODIFIED", "second"),
        ("DELETED", "second"),
    ]
    assert events[2]["object"]["spec"]["ports"][0]["port"] == 99


def test_watch_times_out(cluster: Cluster) -> None:
    started = time.monotonic()
    events: list[dict[str, Any]] = []
    _, listed, _ = cluster.request("GET", SVC_PATH)
    rv = listed["metadata"]["resourceVersion"]
    _watch_lines(
        cluster, f"{SVC_PATH}?watch=true&resourceVersion={rv}&timeoutSeconds=1", events, 10
    )
    assert events == []
    assert time.monotonic() - started < 5


def test_unknown_paths_and_methods_get_status(cluster: Cluster) -> None:
    status, body, _ = cluster.request("GET", "/api/v1/widgets")
    assert status == 404
    assert_status(body, 404, "NotFound")
    status, body, _ = cluster.request("PUT", SVC_PATH, service("x"))
    assert status == 405
    assert_status(body, 405, "MethodNotAllowed")


def test_field_validation_strict_warn_ignore(cluster: Cluster) -> None:
    body = service("fv-strict")
    body["spec"]["foo"] = 1
    status, err, _ = cluster.request("POST", f"{SVC_PATH}?fieldValidation=Strict", body)
    assert status == 400
    assert_status(err, 400, "BadRequest")
    assert err["message"] == 'strict decoding error: unknown field "spec.foo"'
    body["metadata"]["name"] = "fv-warn"
    status, created, headers = cluster.request("POST", f"{SVC_PATH}?fieldValidation=Warn", body)
    assert status == 201 and "foo" not in created["spec"]
    assert headers.get("Warning") == '299 - "unknown field \\"spec.foo\\""'
    body["metadata"]["name"] = "fv-ignore"
    status, created, headers = cluster.request("POST", f"{SVC_PATH}?fieldValidation=Ignore", body)
    assert status == 201 and "foo" not in created["spec"] and "Warning" not in headers


def test_kubectl_create_refuses_unknown_fields(cluster: Cluster, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: typo\nspec:\n  portz:\n  - port: 80\n  ports:\n  - port: 80\n"
    )
    result = cluster.kubectl("create", "-f", str(manifest), check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.portz"' in result.stderr
