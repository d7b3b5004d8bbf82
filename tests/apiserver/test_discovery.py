"""Discovery documents, Accept negotiation, and the real kubectl reading them.

The live tests serve `discovery` and `openapi` from a throwaway http.server on
127.0.0.1 (no storage, no API server) and run kubectl 1.27 (which asks for
aggregated discovery v2beta1), 1.33 (v2) and legacy discovery against it.
`test_openapi.py` reuses the server and the kubectl runner from here.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubesvc.api.errors import StatusError
from kubesvc.apiserver import discovery, openapi
from kubesvc.apiserver.resources import RESOURCES

# The Accept headers kubectl sends for /api and /apis, recorded from each version.
ACCEPT_V2BETA1 = (
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)
ACCEPT_V2 = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)
ACCEPT_NOPEER = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;profile=nopeer,"
    + ACCEPT_V2
)


# ------------------------------------------------------------ pure tests


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (ACCEPT_V2BETA1, "aggregated-v2beta1"),  # kubectl 1.27-1.29
        (ACCEPT_V2, "aggregated-v2"),  # kubectl 1.30-1.33
        (ACCEPT_NOPEER, "aggregated-v2"),  # client-go's nopeer profile: same document
        ("application/json", "legacy"),  # the Python client
        ("application/json, */*", "legacy"),
        ("*/*", "legacy"),
        ("", "legacy"),
        (None, "legacy"),
        ("application/yaml", "legacy"),  # nothing usable: legacy JSON, which all clients read
        ("application/vnd.kubernetes.protobuf,application/json", "legacy"),
        (
            "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json",
            "legacy",
        ),
        (
            "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            "legacy",
        ),
        (
            "application/json;q=0.5,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            "aggregated-v2",
        ),
        (
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0,application/json",
            "legacy",
        ),
        (
            "application/json ; g=apidiscovery.k8s.io ; v=v2beta1 ; as=APIGroupDiscoveryList",
            "aggregated-v2beta1",
        ),
    ],
)
def test_negotiate_discovery(accept: str | None, expected: str) -> None:
    assert discovery.negotiate_discovery(accept) == expected


def test_version_info_names_a_minor_kubectl_has_a_binary_for() -> None:
    info = discovery.version_info()
    assert info["major"] == "1" and info["minor"] == "32"
    assert info["gitVersion"] == "v1.32.0-kubesvc"
    for key in ("gitCommit", "gitTreeState", "buildDate", "goVersion", "compiler", "platform"):
        assert isinstance(info[key], str) and info[key]


def test_api_versions_and_group_list() -> None:
    assert discovery.api_versions() == {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    }
    with_address = discovery.api_versions("127.0.0.1:6443")
    assert with_address["serverAddressByClientCIDRs"] == [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}
    ]
    groups = discovery.api_group_list()
    assert groups["kind"] == "APIGroupList"
    assert groups["groups"] == [
        {
            "name": "discovery.k8s.io",
            "versions": [{"groupVersion": "discovery.k8s.io/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "discovery.k8s.io/v1", "version": "v1"},
        }
    ]
    assert discovery.api_group("discovery.k8s.io")["kind"] == "APIGroup"
    with pytest.raises(StatusError) as err:
        discovery.api_group("apps")
    assert err.value.code == 404


def _by_name(resource_list: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in resource_list["resources"]}


@pytest.mark.parametrize(
    ("name", "kind", "namespaced", "short_names", "categories"),
    [
        ("services", "Service", True, ["svc"], ["all"]),
        ("pods", "Pod", True, ["po"], ["all"]),
        ("endpoints", "Endpoints", True, ["ep"], None),
        ("events", "Event", True, ["ev"], None),
        ("namespaces", "Namespace", False, ["ns"], None),
    ],
)
def test_core_resource_list(
    name: str, kind: str, namespaced: bool, short_names: list[str], categories: list[str] | None
) -> None:
    listed = discovery.api_resource_list("v1")
    assert listed["kind"] == "APIResourceList" and listed["groupVersion"] == "v1"
    entry = _by_name(listed)[name]
    assert entry["kind"] == kind
    assert entry["namespaced"] is namespaced
    assert entry.get("shortNames") == short_names
    assert entry.get("categories") == categories
    assert {"get", "list", "watch", "create", "update", "patch", "delete"} <= set(entry["verbs"])
    assert len(entry["storageVersionHash"]) == 12  # base64 of 8 bytes, as Kubernetes makes it


def test_subresources_are_listed_as_their_own_entries() -> None:
    entries = _by_name(discovery.api_resource_list("v1"))
    status = entries["services/status"]
    assert status["kind"] == "Service" and status["namespaced"] is True
    assert status["verbs"] == ["get", "patch", "update"]
    assert "namespaces/status" in entries
    assert "endpoints/status" not in entries


def test_group_resource_list_and_unknown_group_version() -> None:
    entries = _by_name(discovery.api_resource_list("discovery.k8s.io/v1"))
    assert entries["endpointslices"]["kind"] == "EndpointSlice"
    assert entries["endpointslices"]["singularName"] == "endpointslice"
    for gv in ("v2", "apps/v1", "discovery.k8s.io/v1beta1", ""):
        with pytest.raises(StatusError) as err:
            discovery.api_resource_list(gv)
        assert err.value.code == 404


@pytest.mark.parametrize(
    ("mode", "content_type", "api_version"),
    [
        (
            "aggregated-v2",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            "apidiscovery.k8s.io/v2",
        ),
        (
            "aggregated-v2beta1",
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
            "apidiscovery.k8s.io/v2beta1",
        ),
        (
            "v2",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            "apidiscovery.k8s.io/v2",
        ),
    ],
)
def test_aggregated_discovery(mode: str, content_type: str, api_version: str) -> None:
    core, core_type = discovery.aggregated_discovery(True, mode)
    assert core_type == content_type
    assert core["kind"] == "APIGroupDiscoveryList" and core["apiVersion"] == api_version
    [group] = core["items"]
    assert group["metadata"].get("name", "") == ""  # the core group has no name
    [version] = group["versions"]
    assert version["version"] == "v1" and version["freshness"] == "Current"
    services = {r["resource"]: r for r in version["resources"]}["services"]
    assert services["responseKind"] == {"group": "", "version": "v1", "kind": "Service"}
    assert services["scope"] == "Namespaced"
    assert services["singularResource"] == "service"
    assert services["shortNames"] == ["svc"] and services["categories"] == ["all"]
    assert services["subresources"] == [
        {
            "subresource": "status",
            "responseKind": {"group": "", "version": "v1", "kind": "Service"},
            "verbs": ["get", "patch", "update"],
        }
    ]
    namespaces = {r["resource"]: r for r in version["resources"]}["namespaces"]
    assert namespaces["scope"] == "Cluster"

    named, named_type = discovery.aggregated_discovery(False, mode)
    assert named_type == content_type
    assert [g["metadata"]["name"] for g in named["items"]] == ["discovery.k8s.io"]
    slices = named["items"][0]["versions"][0]["resources"][0]
    assert slices["resource"] == "endpointslices"
    assert slices["responseKind"]["group"] == "discovery.k8s.io"


def test_aggregated_discovery_rejects_legacy_mode() -> None:
    with pytest.raises(ValueError):
        discovery.aggregated_discovery(True, "legacy")


@pytest.mark.parametrize(
    ("for_core", "accept", "kind", "content_type"),
    [
        (True, ACCEPT_V2, "APIGroupDiscoveryList", discovery.CONTENT_TYPE_V2),
        (False, ACCEPT_V2BETA1, "APIGroupDiscoveryList", discovery.CONTENT_TYPE_V2BETA1),
        (True, "application/json", "APIVersions", "application/json"),
        (False, "application/json", "APIGroupList", "application/json"),
    ],
)
def test_discovery_document(for_core: bool, accept: str, kind: str, content_type: str) -> None:
    body, got_type = discovery.discovery_document(for_core, accept)
    assert body["kind"] == kind and got_type == content_type


def test_every_resource_is_discoverable_both_ways() -> None:
    legacy = {
        (gv, r["name"])
        for gv in ("v1", "discovery.k8s.io/v1")
        for r in discovery.api_resource_list(gv)["resources"]
        if "/" not in r["name"]
    }
    aggregated = set()
    for for_core in (True, False):
        body, _ = discovery.aggregated_discovery(for_core)
        for group in body["items"]:
            name = group["metadata"].get("name", "")
            for version in group["versions"]:
                gv = f"{name}/{version['version']}" if name else version["version"]
                aggregated |= {(gv, r["resource"]) for r in version["resources"]}
    assert legacy == aggregated == {(r.group_version, r.plural) for r in RESOURCES}


# ---------------------------------------------- a tiny server for kubectl


@dataclass
class FakeAPIServer:
    """Discovery and OpenAPI over plain HTTP on 127.0.0.1, recording every request.

    `legacy` answers /api and /apis with legacy documents whatever kubectl
    accepts; `serve_v2` controls /openapi/v2. `objects` are served on GET by
    path. Writes (POST, PUT, PATCH) are recorded and answered with the stored
    object, or 201 and the body echoed back.
    """

    legacy: bool = False
    serve_v2: bool = True
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # path → object for GET
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def answer(
        self, method: str, target: str, headers: Any, body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        parsed = urllib.parse.urlsplit(target)
        path = parsed.path
        self.requests.append(
            {
                "method": method,
                "path": path,
                "query": parsed.query,
                "headers": dict(headers),
                "body": body,
            }
        )
        json_type = {"Content-Type": "application/json"}
        try:
            if method in ("POST", "PUT", "PATCH"):
                stored = self.objects.get(path)
                return (
                    (200, json.dumps(stored).encode(), json_type)
                    if stored
                    else (201, body or b"{}", json_type)
                )
            if method == "GET" and path in self.objects:
                return 200, json.dumps(self.objects[path]).encode(), json_type
            if path == "/version":
                return 200, json.dumps(discovery.version_info()).encode(), json_type
            if path in ("/api", "/apis"):
                accept = "application/json" if self.legacy else headers.get("Accept")
                doc, content_type = discovery.discovery_document(path == "/api", accept)
                return 200, json.dumps(doc).encode(), {"Content-Type": content_type}
            if path == "/api/v1" or (path.startswith("/apis/") and path.count("/") == 3):
                gv = path.removeprefix("/api/").removeprefix("/apis/")
                return 200, json.dumps(discovery.api_resource_list(gv)).encode(), json_type
            if path == "/openapi/v2" and self.serve_v2:
                return (
                    200,
                    openapi.openapi_v2_document(),
                    {"Content-Type": openapi.OPENAPI_V2_CONTENT_TYPE},
                )
            if path == "/openapi/v3":
                return 200, json.dumps(openapi.openapi_v3_root()).encode(), json_type
            if path.startswith("/openapi/v3/"):
                gv = path.removeprefix("/openapi/v3/")
                etag = f'"{openapi.document_hash(gv)}"'
                if headers.get("If-None-Match") == etag:
                    return 304, b"", {"ETag": etag}
                return 200, openapi.openapi_v3_document(gv), {**json_type, "ETag": etag}
            raise StatusError(404, "the server could not find the requested resource")
        except StatusError as err:
            return err.code, json.dumps(err.status()).encode(), json_type


@pytest.fixture
def fake_api() -> Iterator[FakeAPIServer]:
    server_state = FakeAPIServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            code, payload, headers = server_state.answer(
                self.command, self.path, self.headers, body
            )
            self.send_response(code)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server_state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def kubectl_binary(minor: int) -> Path:
    """kubectl 1.<minor>, which sits beside the `kubectl` dispatcher; skips when absent."""
    found = shutil.which("kubectl")
    if found:
        candidate = Path(found).resolve().parent / f"kubectl.1.{minor}"
        if candidate.exists():
            return candidate
    pytest.skip(f"kubectl.1.{minor} is not installed")


def run_kubectl(
    minor: int, server: FakeAPIServer, tmp_path: Path, *args: str, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run kubectl 1.<minor> against `server`, with its own kubeconfig and cache in tmp_path."""
    config = tmp_path / "kubeconfig"
    if not config.exists():
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "t", "cluster": {"server": server.url}}],
                    "users": [{"name": "t", "user": {}}],
                    "contexts": [
                        {
                            "name": "t",
                            "context": {"cluster": "t", "user": "t", "namespace": "default"},
                        }
                    ],
                    "current-context": "t",
                }
            )
        )
    result = subprocess.run(
        [
            str(kubectl_binary(minor)),
            "--kubeconfig",
            str(config),
            "--cache-dir",
            str(tmp_path / f"cache-{minor}"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def _api_resources(output: str) -> dict[str, list[str]]:
    rows = [line.split() for line in output.splitlines()[1:] if line.strip()]
    return {row[0]: row for row in rows}


@pytest.mark.parametrize(("minor", "legacy"), [(27, False), (33, False), (33, True)])
def test_kubectl_api_resources(
    fake_api: FakeAPIServer, tmp_path: Path, minor: int, legacy: bool
) -> None:
    fake_api.legacy = legacy
    result = run_kubectl(minor, fake_api, tmp_path, "api-resources")
    rows = _api_resources(result.stdout)
    assert rows["services"] == ["services", "svc", "v1", "true", "Service"]
    assert rows["namespaces"] == ["namespaces", "ns", "v1", "false", "Namespace"]
    assert rows["endpointslices"] == [
        "endpointslices",
        "discovery.k8s.io/v1",
        "true",
        "EndpointSlice",
    ]
    asked = [r["path"] for r in fake_api.requests]
    # Aggregated discovery answers everything in two requests; legacy needs the lists too.
    assert ("/api/v1" in asked) is legacy
    if not legacy:
        wanted = "v=v2beta1" if minor == 27 else "v=v2;"
        accept = next(r["headers"]["Accept"] for r in fake_api.requests if r["path"] == "/api")
        assert accept.startswith(f"application/json;g=apidiscovery.k8s.io;{wanted}")


def test_kubectl_resolves_short_names_and_categories(
    fake_api: FakeAPIServer, tmp_path: Path
) -> None:
    result = run_kubectl(33, fake_api, tmp_path, "api-resources", "--categories=all", "-o", "name")
    assert sorted(result.stdout.split()) == ["pods", "services"]


@pytest.mark.parametrize("minor", [27, 33])
def test_kubectl_explain_service_ports(fake_api: FakeAPIServer, tmp_path: Path, minor: int) -> None:
    result = run_kubectl(minor, fake_api, tmp_path, "explain", "svc.spec.ports")
    text = " ".join(result.stdout.split())
    assert "FIELD: ports <[]ServicePort>" in text
    assert "The ports the service exposes." in text
    assert "targetPort <IntOrString>" in text
    assert "port <integer> -required-" in text
