"""OpenAPI documents, strict field validation, and kubectl using both."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from kubesvc.api.errors import StatusError
from kubesvc.apiserver import openapi, protobuf
from kubesvc.apiserver.resources import RESOURCES, group_versions
from tests.api import objects
from tests.apiserver.test_discovery import FakeAPIServer, fake_api, run_kubectl

__all__ = ["fake_api"]  # the fixture, imported for the live tests below

SCHEMAS_PREFIX = "#/components/schemas/"
SERVICE_SPEC_FIELDS = {
    "allocateLoadBalancerNodePorts",
    "clusterIP",
    "clusterIPs",
    "externalIPs",
    "externalName",
    "externalTrafficPolicy",
    "healthCheckNodePort",
    "internalTrafficPolicy",
    "ipFamilies",
    "ipFamilyPolicy",
    "loadBalancerClass",
    "loadBalancerIP",
    "loadBalancerSourceRanges",
    "ports",
    "publishNotReadyAddresses",
    "selector",
    "sessionAffinity",
    "sessionAffinityConfig",
    "trafficDistribution",
    "type",
}


def _doc(gv: str) -> dict[str, Any]:
    return json.loads(openapi.openapi_v3_document(gv))


def _schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return doc["components"]["schemas"][name]


# ------------------------------------------------------------ documents


def test_root_lists_each_group_version_with_its_hash() -> None:
    root = openapi.openapi_v3_root()
    assert set(root["paths"]) == {"api/v1", "apis/discovery.k8s.io/v1"}
    for key, entry in root["paths"].items():
        gv = key.removeprefix("api/").removeprefix("apis/")
        assert entry["serverRelativeURL"] == f"/openapi/v3/{key}?hash={openapi.document_hash(gv)}"


@pytest.mark.parametrize(
    ("form", "gv"),
    [
        ("v1", "v1"),
        ("api/v1", "v1"),
        ("discovery.k8s.io/v1", "discovery.k8s.io/v1"),
        ("apis/discovery.k8s.io/v1", "discovery.k8s.io/v1"),
    ],
)
def test_documents_are_found_by_group_version_or_path(form: str, gv: str) -> None:
    assert openapi.openapi_v3_document(form) == openapi.openapi_v3_document(gv)
    assert openapi.document_hash(form) == openapi.document_hash(gv)


@pytest.mark.parametrize("gv", ["apps/v1", "v2", "", "api"])
def test_unknown_group_version_is_404(gv: str) -> None:
    with pytest.raises(StatusError) as err:
        openapi.openapi_v3_document(gv)
    assert err.value.code == 404


def test_documents_are_deterministic_and_hashes_differ() -> None:
    first = openapi.openapi_v3_document("v1")
    openapi._document.cache_clear()
    assert openapi.openapi_v3_document("v1") == first
    assert openapi.document_hash("v1") != openapi.document_hash("discovery.k8s.io/v1")
    assert re.fullmatch(r"[0-9A-F]{64}", openapi.document_hash("v1"))


@pytest.mark.parametrize("gv", group_versions())
def test_every_reference_resolves_inside_its_document(gv: str) -> None:
    doc = _doc(gv)
    text = json.dumps(doc)
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text))
    assert refs
    assert refs <= set(doc["components"]["schemas"])


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
def test_each_kind_and_list_kind_is_tagged_with_its_gvk(resource: Any) -> None:
    doc = _doc(resource.group_version)
    for kind in (resource.kind, resource.list_kind):
        tagged = [
            name
            for name, schema in doc["components"]["schemas"].items()
            if {"group": resource.group, "version": resource.version, "kind": kind}
            in schema.get("x-kubernetes-group-version-kind", [])
        ]
        assert tagged == [openapi.schema_name(kind, resource.group)]
    status = _schema(doc, "io.k8s.apimachinery.pkg.apis.meta.v1.Status")
    assert status["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "Status", "version": "v1"}
    ]
    delete_options = _schema(doc, "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")
    assert {
        "group": resource.group,
        "kind": "DeleteOptions",
        "version": resource.version,
    } in delete_options["x-kubernetes-group-version-kind"]


def _patch_operations(doc: dict[str, Any], resource: Any) -> list[dict[str, Any]]:
    gvk = {"group": resource.group, "kind": resource.kind, "version": resource.version}
    return [
        item["patch"]
        for item in doc["paths"].values()
        if "patch" in item and item["patch"]["x-kubernetes-group-version-kind"] == gvk
    ]


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
def test_every_patch_operation_declares_field_validation_and_strategic_merge(
    resource: Any,
) -> None:
    # kubectl checks whichever PATCH of the kind it meets first (map order): all must qualify.
    operations = _patch_operations(_doc(resource.group_version), resource)
    assert len(operations) == 1 + len(resource.subresources)
    for operation in operations:
        query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
        assert {"fieldValidation", "dryRun", "fieldManager", "force"} <= query
        assert "application/strategic-merge-patch+json" in operation["requestBody"]["content"]
        assert operation["x-kubernetes-action"] == "patch"


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/api/v1/namespaces/{namespace}/services", {"get", "post", "delete"}),
        ("/api/v1/namespaces/{namespace}/services/{name}", {"get", "put", "patch", "delete"}),
        ("/api/v1/namespaces/{namespace}/services/{name}/status", {"get", "put", "patch"}),
        ("/api/v1/services", {"get"}),
        ("/api/v1/namespaces", {"get", "post", "delete"}),
        ("/api/v1/namespaces/{name}", {"get", "put", "patch", "delete"}),
        ("/api/v1/namespaces/{namespace}/endpoints/{name}", {"get", "put", "patch", "delete"}),
    ],
)
def test_core_paths(path: str, methods: set[str]) -> None:
    item = _doc("v1")["paths"][path]
    assert set(item) - {"parameters"} == methods
    for method in methods & {"post", "put"}:
        query = {p["name"] for p in item[method]["parameters"]}
        assert {"fieldValidation", "dryRun", "fieldManager"} <= query


def test_service_spec_has_every_field_described() -> None:
    spec = _schema(_doc("v1"), "io.k8s.api.core.v1.ServiceSpec")
    assert set(spec["properties"]) == SERVICE_SPEC_FIELDS
    for name, prop in spec["properties"].items():
        assert len(prop["description"]) > 20, name
    assert spec["properties"]["type"]["enum"] == [
        "ClusterIP",
        "ExternalName",
        "LoadBalancer",
        "NodePort",
    ]


@pytest.mark.parametrize(
    ("schema", "field", "extensions"),
    [
        (
            "io.k8s.api.core.v1.ServiceSpec",
            "ports",
            {
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["port", "protocol"],
                "x-kubernetes-patch-merge-key": "port",
                "x-kubernetes-patch-strategy": "merge",
            },
        ),
        (
            "io.k8s.api.core.v1.PodSpec",
            "containers",
            {
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "x-kubernetes-patch-merge-key": "name",
                "x-kubernetes-patch-strategy": "merge",
            },
        ),
        (
            "io.k8s.api.core.v1.Container",
            "ports",
            {
                "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                "x-kubernetes-patch-merge-key": "containerPort",
            },
        ),
        (
            "io.k8s.api.core.v1.Container",
            "env",
            {"x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"},
        ),
        (
            "io.k8s.api.core.v1.PodSpec",
            "volumes",
            {"x-kubernetes-patch-strategy": "merge,retainKeys"},
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "finalizers",
            {"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
        ),
        ("io.k8s.api.core.v1.EndpointSubset", "addresses", {"x-kubernetes-list-type": "atomic"}),
        ("io.k8s.api.discovery.v1.Endpoint", "addresses", {"x-kubernetes-list-type": "set"}),
    ],
)
def test_list_and_patch_extensions(schema: str, field: str, extensions: dict[str, Any]) -> None:
    prop = openapi.SCHEMAS[schema]["properties"][field]
    for key, value in extensions.items():
        assert prop[key] == value


def test_references_carry_descriptions_beside_them() -> None:
    port = openapi.SCHEMAS["io.k8s.api.core.v1.ServicePort"]
    assert port["required"] == ["port"]
    target = port["properties"]["targetPort"]
    assert target["allOf"] == [
        {"$ref": SCHEMAS_PREFIX + "io.k8s.apimachinery.pkg.util.intstr.IntOrString"}
    ]
    assert "container port" in target["description"]


# ---------------------------------------------------- field validation


def _service(**spec: Any) -> dict[str, Any]:
    return objects.service(**spec)


@pytest.mark.parametrize(
    ("kind", "obj", "unknown"),
    [
        ("Service", _service(), []),
        ("Service", _service(foo=1), ["spec.foo"]),
        ("Service", {**_service(), "foo": {"bar": 1}}, ["foo"]),
        ("Service", _service(ports=[{"port": 80, "targetPort": "http", "bogus": 1}]), ["spec.ports[0].bogus"]),
        ("Service", _service(ports=[{"port": 80}, {"port": 81, "x": 1, "y": 2}]), ["spec.ports[1].x", "spec.ports[1].y"]),
        ("Service", _service(selector={"any.key/name": "v", "weird key": "x"}), []),
        ("Service", _service(sessionAffinityConfig={"clientIP": {"timeoutSeconds": 5, "z": 1}}), ["spec.sessionAffinityConfig.clientIP.z"]),
        ("Service", {**_service(), "metadata": {"name": "a", "labels": {"a": "b"}, "nam": "x"}}, ["metadata.nam"]),
        ("Service", {**_service(), "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "q": 1}]}}}, ["status.loadBalancer.ingress[0].q"]),
        ("Service", _service(ports="not a list"), []),  # a type error is validation's to report
        ("Namespace", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}, "spec": {"finalizers": ["kubernetes"]}}, []),
        ("Pod", objects.pod(), []),
        ("Pod", {**objects.pod(), "spec": {"containers": [{"name": "c", "imagee": "x"}]}}, ["spec.containers[0].imagee"]),
        ("Pod", {**objects.pod(), "spec": {"containers": [], "volumes": [{"name": "v", "csi": {"driver": "d"}, "glusterfs": {"any": {"thing": 1}}}]}}, []),
        ("Pod", {**objects.pod(), "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "1", "memory": 128}}}]}}, []),
        ("Pod", {**objects.pod(), "spec": {"containers": [{"name": "c", "readinessProbe": {"httpGet": {"port": "http", "paht": "/"}}}]}}, ["spec.containers[0].readinessProbe.httpGet.paht"]),
        ("Pod", {**objects.pod(), "metadata": {"name": "p", "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]}}, []),
        ("Endpoints", {"kind": "Endpoints", "subsets": [{"addresses": [{"ip": "198.18.0.1", "ipp": 1}]}]}, ["subsets[0].addresses[0].ipp"]),
        ("EndpointSlice", {"kind": "EndpointSlice", "addressType": "IPv4", "endpoints": [{"addresses": ["198.18.0.1"], "conditions": {"ready": True, "up": True}}]}, ["endpoints[0].conditions.up"]),
        ("Event", {"kind": "Event", "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "R", "sourc": {}}, ["sourc"]),
        ("ServiceList", {"kind": "ServiceList", "items": [{"spec": {"nope": 1}}]}, ["items[0].spec.nope"]),
        ("Deployment", {"spec": {"anything": 1}}, []),  # not a served kind: nothing to check against
    ],
)  # fmt: skip
def test_unknown_fields(kind: str, obj: Any, unknown: list[str]) -> None:
    before = copy.deepcopy(obj)
    assert openapi.unknown_fields(obj, kind) == unknown
    assert obj == before


@pytest.mark.parametrize(
    "make",
    [objects.service, objects.pod, objects.endpoints, objects.endpoint_slice, objects.namespace],
)
def test_the_shared_valid_objects_have_no_unknown_fields(make: Any) -> None:
    obj = make()
    assert openapi.unknown_fields(obj, obj["kind"]) == []


def test_strict_validation_rejects_unknown_fields_with_kubernetes_wording() -> None:
    obj = _service(foo=1, ports=[{"port": 80, "bar": 2}])
    with pytest.raises(StatusError) as err:
        openapi.validate_fields(obj, "Service", "Strict")
    assert err.value.code == 400
    # In the order the fields appear in the body, as Kubernetes' decoder reports them.
    assert err.value.message == (
        'strict decoding error: unknown field "spec.ports[0].bar", unknown field "spec.foo"'
    )
    assert "foo" in obj["spec"]  # a rejected body is not modified


@pytest.mark.parametrize(
    ("directive", "warnings"),
    [
        ("Warn", ['unknown field "spec.foo"']),
        (None, ['unknown field "spec.foo"']),  # Warn is Kubernetes' default
        ("Ignore", []),
    ],
)
def test_warn_and_ignore_drop_unknown_fields(directive: str | None, warnings: list[str]) -> None:
    obj = _service(foo=1)
    assert openapi.validate_fields(obj, "Service", directive) == warnings
    assert "foo" not in obj["spec"] and obj["spec"]["ports"]


def test_an_unsupported_directive_is_a_bad_request() -> None:
    with pytest.raises(StatusError) as err:
        openapi.validate_fields(_service(), "Service", "strict")
    assert err.value.code == 400


def test_known_fields() -> None:
    assert "spec" in openapi.known_fields("Service")["properties"]
    with pytest.raises(KeyError):
        openapi.known_fields("Deployment")


# ------------------------------------------------------------ OpenAPI v2


def _message(data: bytes) -> dict[int, bytes]:
    """The length-delimited fields of a message, by number (the last one wins)."""
    return {n: v for n, _wire, v in protobuf.fields(data) if isinstance(v, bytes)}


def _named(message: bytes, field_number: int) -> dict[str, bytes]:
    """The (1 name, 2 value) entries of gnostic's NamedSchema/NamedAny lists."""
    out = {}
    for number, _wire, value in protobuf.fields(message):
        if number == field_number and isinstance(value, bytes):
            entry = _message(value)
            out[entry[1].decode()] = entry[2]
    return out


def test_openapi_v2_is_gnostic_protobuf_with_every_definition() -> None:
    doc = _message(openapi.openapi_v2_document())
    assert doc[1] == b"2.0"
    definitions = _named(doc[9], 1)
    assert set(definitions) == set(openapi.SCHEMAS)
    service = definitions["io.k8s.api.core.v1.Service"]
    gvk = _message(_named(service, 31)["x-kubernetes-group-version-kind"])[2]
    assert json.loads(gvk) == [{"group": "", "kind": "Service", "version": "v1"}]
    spec_props = _named(_message(definitions["io.k8s.api.core.v1.ServiceSpec"])[25], 1)
    assert set(spec_props) == SERVICE_SPEC_FIELDS
    # allOf references become plain v2 references, with the description beside them.
    target = _message(
        _named(_message(definitions["io.k8s.api.core.v1.ServicePort"])[25], 1)["targetPort"]
    )
    assert target[1] == b"#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"
    assert b"container port" in target[4]


# ------------------------------------------------------------- kubectl


SERVICE_MANIFEST = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]},
}


@pytest.mark.parametrize("minor", [27, 33])
def test_kubectl_create_leaves_validation_to_the_server(
    fake_api: FakeAPIServer, tmp_path: Path, minor: int
) -> None:
    manifest = tmp_path / "svc.json"
    manifest.write_text(json.dumps(SERVICE_MANIFEST))
    run_kubectl(minor, fake_api, tmp_path, "create", "-f", str(manifest))
    [post] = [r for r in fake_api.requests if r["method"] == "POST"]
    assert post["path"] == "/api/v1/namespaces/default/services"
    assert "fieldValidation=Strict" in post["query"]


def test_kubectl_apply_builds_its_strategic_patch_from_our_schema(
    fake_api: FakeAPIServer, tmp_path: Path
) -> None:
    live = copy.deepcopy(SERVICE_MANIFEST)
    live["metadata"].update(
        resourceVersion="7",
        annotations={"kubectl.kubernetes.io/last-applied-configuration": json.dumps(live)},
    )
    live["spec"]["ports"][0]["protocol"] = "TCP"
    fake_api.objects["/api/v1/namespaces/default/services/web"] = live
    changed = copy.deepcopy(SERVICE_MANIFEST)
    changed["spec"]["ports"] = [{"name": "https", "port": 443}, {"name": "http", "port": 80}]
    manifest = tmp_path / "svc.json"
    manifest.write_text(json.dumps(changed))

    result = run_kubectl(33, fake_api, tmp_path, "apply", "-f", str(manifest))
    assert "openapi" not in result.stderr  # no "error calculating patch from openapi v3 spec"
    [patch] = [r for r in fake_api.requests if r["method"] == "PATCH"]
    assert patch["headers"]["Content-Type"] == "application/strategic-merge-patch+json"
    assert "fieldValidation=Strict" in patch["query"]
    spec = json.loads(patch["body"])["spec"]
    # Merging by `port` (our x-kubernetes-patch-merge-key) keeps the list order in a directive.
    assert spec["$setElementOrder/ports"] == [{"port": 443}, {"port": 80}]
    assert spec["ports"] == [{"name": "https", "port": 443}]


@pytest.mark.parametrize(
    ("minor", "args", "expected"),
    [
        (33, ["pods.spec.containers.readinessProbe.httpGet"], "port <IntOrString> -required-"),
        (33, ["endpointslices.endpoints.conditions"], "terminating <boolean>"),
        (28, ["svc.spec.sessionAffinity"], "ClientIP"),
        (27, ["svc.spec.ports", "--output=plaintext-openapiv2"], "RESOURCE: ports <[]Object>"),
    ],
)
def test_kubectl_explain(
    fake_api: FakeAPIServer, tmp_path: Path, minor: int, args: list[str], expected: str
) -> None:
    result = run_kubectl(minor, fake_api, tmp_path, "explain", *args)
    assert expected in " ".join(result.stdout.split())  # kubectl aligns with tabs


def test_kubectl_1_27_explain_needs_openapi_v2(fake_api: FakeAPIServer, tmp_path: Path) -> None:
    fake_api.serve_v2 = False
    result = run_kubectl(27, fake_api, tmp_path, "explain", "svc", ok=False)
    assert result.returncode != 0
