"""API discovery: /version, /api, /apis and the per-group-version resource lists.

Everything is derived from `resources.RESOURCES`, so a resource added there
shows up in every discovery document at once. The functions are pure: they
return the JSON body (and, for aggregated discovery, the exact Content-Type)
and leave HTTP to the caller.

Clients ask in two ways. kubectl and client-go send an Accept header listing
the aggregated `APIGroupDiscoveryList` first (kubectl 1.27-1.29 ask only for
`apidiscovery.k8s.io/v2beta1`, 1.30+ for `v2` and then `v2beta1`), with plain
`application/json` last as the fallback. client-go decides how to parse the
answer from the *response* Content-Type alone, so an aggregated body must go
out with the matching `;g=...;v=...;as=APIGroupDiscoveryList` parameters and a
legacy body with plain `application/json`. Other clients (the Python client)
only ever get the legacy documents.
"""

from __future__ import annotations

import base64
import hashlib
import platform
from typing import Any, Literal

from kubesvc.api import errors
from kubesvc.apiserver.resources import RESOURCES, VERBS, Resource, group_versions, resources_of

# The Kubernetes release whose API kubesvc speaks; kubectl's dispatcher picks its binary by "minor".
MAJOR = "1"
MINOR = "32"
GIT_VERSION = f"v{MAJOR}.{MINOR}.0-kubesvc"

DISCOVERY_GROUP = "apidiscovery.k8s.io"
DISCOVERY_LIST_KIND = "APIGroupDiscoveryList"
JSON = "application/json"
CONTENT_TYPE_V2 = f"{JSON};g={DISCOVERY_GROUP};v=v2;as={DISCOVERY_LIST_KIND}"
CONTENT_TYPE_V2BETA1 = f"{JSON};g={DISCOVERY_GROUP};v=v2beta1;as={DISCOVERY_LIST_KIND}"

Mode = Literal["aggregated-v2", "aggregated-v2beta1", "legacy"]
_AGGREGATED_BY_VERSION: dict[str, Mode] = {
    "v2": "aggregated-v2",
    "v2beta1": "aggregated-v2beta1",
}
_CONTENT_TYPE_BY_MODE: dict[str, str] = {
    "aggregated-v2": CONTENT_TYPE_V2,
    "aggregated-v2beta1": CONTENT_TYPE_V2BETA1,
}

# What a subresource such as services/status supports: read it and write it, nothing else.
SUBRESOURCE_VERBS = ("get", "patch", "update")


def version_info() -> dict[str, str]:
    """The `/version` body (`version.Info`)."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine or "unknown")
    return {
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        # kubesvc is no Go program; the field still has to be there for clients that print it.
        "goVersion": f"python{platform.python_version()}",
        "compiler": platform.python_implementation().lower(),
        "platform": f"{platform.system().lower() or 'unknown'}/{arch}",
    }


# ------------------------------------------------------------------ legacy


def api_versions(server_address: str = "") -> dict[str, Any]:
    """`GET /api`: the legacy `APIVersions` (just `v1`).

    `server_address` ("host:port"), when given, is published for every client
    CIDR as the Kubernetes API server does; clients do not need it.
    """
    body: dict[str, Any] = {"kind": "APIVersions", "versions": ["v1"]}
    body["serverAddressByClientCIDRs"] = (
        [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}] if server_address else []
    )
    return body


def _groups() -> list[str]:
    """Named groups (not the core group), in the order of the resource table."""
    names: list[str] = []
    for r in RESOURCES:
        if r.group and r.group not in names:
            names.append(r.group)
    return names


def _versions_of(group: str) -> list[str]:
    seen: list[str] = []
    for r in RESOURCES:
        if r.group == group and r.version not in seen:
            seen.append(r.version)
    return seen


def _group_body(group: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in _versions_of(group)]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict[str, Any]:
    """`GET /apis`: the legacy `APIGroupList` of every named group."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_body(g) for g in _groups()],
    }


def api_group(group: str) -> dict[str, Any]:
    """`GET /apis/<group>`: one `APIGroup`; 404 StatusError for a group not served."""
    if group not in _groups():
        raise errors.StatusError(404, "the server could not find the requested resource")
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_body(group)}


def storage_version_hash(r: Resource) -> str:
    """Kubernetes' opaque storage version hash: 8 bytes of sha256("group/version/kind")."""
    digest = hashlib.sha256(f"{r.group}/{r.version}/{r.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _legacy_resource(r: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(VERBS),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    entry["storageVersionHash"] = storage_version_hash(r)
    return entry


def api_resource_list(group_version: str) -> dict[str, Any]:
    """`GET /api/v1` or `GET /apis/<group>/<version>`: the `APIResourceList`.

    Subresources are listed as their own entries (`services/status`), as the
    Kubernetes API server does; kubectl skips names with a slash where it
    wants top-level resources only. 404 StatusError for an unknown group/version.
    """
    if group_version not in group_versions():
        raise errors.StatusError(404, "the server could not find the requested resource")
    entries: list[dict[str, Any]] = []
    for r in resources_of(group_version):
        entries.append(_legacy_resource(r))
        for sub in r.subresources:
            entries.append(
                {
                    "name": f"{r.plural}/{sub}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": list(SUBRESOURCE_VERBS),
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }


# -------------------------------------------------------------- aggregated


def _gvk(r: Resource) -> dict[str, str]:
    return {"group": r.group, "version": r.version, "kind": r.kind}


def _aggregated_resource(r: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": r.plural,
        "responseKind": _gvk(r),
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": list(VERBS),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    if r.subresources:
        entry["subresources"] = [
            {"subresource": sub, "responseKind": _gvk(r), "verbs": list(SUBRESOURCE_VERBS)}
            for sub in r.subresources
        ]
    return entry


def _aggregated_group(group: str) -> dict[str, Any]:
    versions = [
        {
            "version": v,
            "resources": [
                _aggregated_resource(r) for r in RESOURCES if r.group == group and r.version == v
            ],
            "freshness": "Current",
        }
        for v in _versions_of(group)
    ]
    # The core group has the empty name; Go's encoder then leaves `name` out of the metadata.
    metadata: dict[str, Any] = {"name": group} if group else {}
    return {"metadata": metadata, "versions": versions}


def aggregated_discovery(for_core: bool, mode: str = "aggregated-v2") -> tuple[dict[str, Any], str]:
    """The aggregated `APIGroupDiscoveryList` for `/api` (`for_core`) or `/apis`.

    `mode` is what `negotiate_discovery` chose ("aggregated-v2" or
    "aggregated-v2beta1"; "v2"/"v2beta1" are accepted too). Returns the body
    and the Content-Type it must be sent with; the two versions have the same
    JSON shape, only `apiVersion` and the Content-Type differ.
    """
    mode = _AGGREGATED_BY_VERSION.get(mode, mode)
    if mode not in _CONTENT_TYPE_BY_MODE:
        raise ValueError(f"not an aggregated discovery mode: {mode!r}")
    version = mode.removeprefix("aggregated-")
    groups = [""] if for_core else _groups()
    body = {
        "kind": DISCOVERY_LIST_KIND,
        "apiVersion": f"{DISCOVERY_GROUP}/{version}",
        "metadata": {},
        "items": [_aggregated_group(g) for g in groups],
    }
    return body, _CONTENT_TYPE_BY_MODE[mode]


def _media_ranges(accept: str) -> list[tuple[str, dict[str, str], float]]:
    """Accept header → [(type/subtype, params, q)], best first, ties in header order."""
    ranges: list[tuple[str, dict[str, str], float]] = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        if not media:
            continue
        params: dict[str, str] = {}
        for piece in pieces[1:]:
            key, sep, value = piece.partition("=")
            if sep:
                params[key.strip().lower()] = value.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        if q > 0:
            ranges.append((media, params, q))
    # sorted() is stable, so equal q keeps the client's order.
    return sorted(ranges, key=lambda item: -item[2])


def negotiate_discovery(accept_header: str | None) -> Mode:
    """Which `/api`, `/apis` document to answer an Accept header with.

    The first acceptable media range wins: an `application/json` range naming
    `g=apidiscovery.k8s.io;as=APIGroupDiscoveryList` with `v=v2` or `v=v2beta1`
    selects that aggregated version (extra parameters such as
    `profile=nopeer` are ignored); plain JSON or a wildcard selects legacy.
    Ranges we cannot produce (protobuf, other versions) are skipped, and an
    Accept with nothing usable gets legacy JSON, the format every client reads.
    """
    for media, params, _q in _media_ranges(accept_header or ""):
        if media not in (JSON, "application/*", "*/*"):
            continue
        if "as" not in params and "g" not in params:
            return "legacy"  # plain JSON (or a wildcard): the legacy documents
        if (
            media == JSON
            and params.get("g") == DISCOVERY_GROUP
            and params.get("as") == DISCOVERY_LIST_KIND
            and params.get("v") in _AGGREGATED_BY_VERSION
        ):
            return _AGGREGATED_BY_VERSION[params["v"]]
    return "legacy"


def discovery_document(for_core: bool, accept_header: str | None) -> tuple[dict[str, Any], str]:
    """`/api` or `/apis` in one call: (body, Content-Type) as the Accept header asks.

    The answer depends on Accept, so the caller should send `Vary: Accept`.
    """
    mode = negotiate_discovery(accept_header)
    if mode == "legacy":
        return (api_versions() if for_core else api_group_list()), JSON
    return aggregated_discovery(for_core, mode)
