"""The resources kubesvc serves: one table that routing, discovery, OpenAPI and clients read."""

from __future__ import annotations

from dataclasses import dataclass

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # e.g. ("status",)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        """The `apiVersion` objects of this resource carry."""
        return self.group_version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified(self) -> str:
        """`services`, or `endpointslices.discovery.k8s.io`: how messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def key_prefix(self, namespace: str | None = None) -> str:
        """Storage key prefix: all objects, or those of one namespace."""
        base = f"/registry/{self.qualified}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"/registry/{self.qualified}/{namespace}/{name}"
        return f"/registry/{self.qualified}/{name}"


RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "namespace", "Namespace", False, ("ns",), (), ("status",)),
    Resource("", "v1", "nodes", "node", "Node", False, ("no",), (), ("status",)),
    Resource("", "v1", "pods", "pod", "Pod", True, ("po",), ("all",), ("status",)),
    Resource("", "v1", "services", "service", "Service", True, ("svc",), ("all",), ("status",)),
    Resource("", "v1", "endpoints", "endpoints", "Endpoints", True, ("ep",)),
    Resource("", "v1", "events", "event", "Event", True, ("ev",)),
    Resource("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", True),
)

BY_PLURAL: dict[tuple[str, str], Resource] = {(r.group_version, r.plural): r for r in RESOURCES}
BY_KIND: dict[str, Resource] = {r.kind: r for r in RESOURCES}


def group_versions() -> list[str]:
    """Every group/version served, core first."""
    seen: list[str] = []
    for r in RESOURCES:
        if r.group_version not in seen:
            seen.append(r.group_version)
    return seen


def resources_of(group_version: str) -> list[Resource]:
    return [r for r in RESOURCES if r.group_version == group_version]
