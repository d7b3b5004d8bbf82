"""Per-resource strategies: what the server sets, keeps and checks on each write.

A strategy is the resource-specific part of the write path
(decode → prepare → default → validate → store): which fields the server owns,
what an update keeps from the stored object, which subresource writes what.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from kubesvc.api import defaults, validation
from kubesvc.api.field import FieldError, Path, invalid, required
from kubesvc.api.meta import rfc3339, validate_object_meta
from kubesvc.apiserver.resources import Resource

Obj = dict[str, Any]

# Kubernetes' generateName alphabet: no vowels (no words) and no look-alike characters.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_META_SERVER_FIELDS = ("uid", "creationTimestamp", "generation", "deletionTimestamp")


def generated_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def _validate_event(obj: Obj, ctx: validation.Context) -> list[FieldError]:
    from kubesvc.api import formats

    errs: list[FieldError] = []
    validate_object_meta(obj, namespaced=True, name_check=formats.dns1123_subdomain, errs=errs)
    involved = obj.get("involvedObject")
    if not isinstance(involved, dict):
        errs.append(required(Path("involvedObject")))
    for key in ("reason", "message", "type"):
        if obj.get(key) is not None and not isinstance(obj.get(key), str):
            errs.append(invalid(Path(key), obj.get(key), "must be a string"))
    return errs


@dataclass(frozen=True)
class Strategy:
    resource: Resource
    allow_create_on_update: bool = False
    has_status: bool = False

    @property
    def kind(self) -> str:
        return self.resource.kind

    def prepare_for_create(self, obj: Obj, namespace: str | None) -> Obj:
        """Set the server-owned metadata of a new object; drop what clients may not set."""
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            return obj
        if not meta.get("name") and isinstance(meta.get("generateName"), str):
            meta["name"] = generated_name(meta["generateName"])
        if self.resource.namespaced:
            meta["namespace"] = namespace
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339()  # kubectl expose sends null: overwrite it
        meta["generation"] = 1
        obj["kind"] = self.kind
        obj["apiVersion"] = self.resource.api_version
        if self.has_status and self.kind != "Namespace":
            obj["status"] = {}  # status is the server's (or a controller's, via /status)
        return obj

    def prepare_for_update(self, new: Obj, old: Obj, subresource: str | None) -> Obj:
        """Carry over what an update of the main resource (or of /status) may not change."""
        if subresource == "status":
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status", {})
            meta = new.get("metadata") if isinstance(new.get("metadata"), dict) else {}
            if "resourceVersion" in meta:
                merged["metadata"]["resourceVersion"] = meta["resourceVersion"]
            return merged
        meta = new.setdefault("metadata", {})
        old_meta = old.get("metadata", {})
        if isinstance(meta, dict):
            for key in _META_SERVER_FIELDS:
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            if "managedFields" not in meta and "managedFields" in old_meta:
                meta["managedFields"] = old_meta["managedFields"]
            if self.resource.namespaced:
                meta.setdefault("namespace", old_meta.get("namespace"))
        new["kind"] = self.kind
        new["apiVersion"] = self.resource.api_version
        if self.has_status:
            new["status"] = copy.deepcopy(old.get("status", {}))
        if self.kind == "Service":
            _keep_allocations(new, old)
            _drop_type_dependent_fields(new, old)
        if self._spec_changed(new, old) and isinstance(meta, dict):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        return new

    @staticmethod
    def _spec_changed(new: Obj, old: Obj) -> bool:
        return "spec" in old and new.get("spec") != old.get("spec")

    def default(self, obj: Obj) -> None:
        defaults.apply_defaults(obj)

    def validate(self, obj: Obj, ctx: validation.Context) -> list[FieldError]:
        if self.kind == "Event":
            return _validate_event(obj, ctx)
        return validation.validate(obj, ctx)

    def validate_update(self, new: Obj, old: Obj, ctx: validation.Context) -> list[FieldError]:
        if self.kind == "Event":
            return _validate_event(new, ctx)
        return validation.validate_update(new, old, ctx)


def _keep_allocations(new: Obj, old: Obj) -> None:
    """An update that leaves out clusterIP or nodePorts keeps the allocated ones (as kubectl expects)."""
    new_spec, old_spec = new.get("spec"), old.get("spec")
    if not isinstance(new_spec, dict) or not isinstance(old_spec, dict):
        return
    if (
        new_spec.get("type", "ClusterIP") == "ExternalName"
        or old_spec.get("type") == "ExternalName"
    ):
        return
    for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        if not new_spec.get(key) and old_spec.get(key):
            new_spec[key] = copy.deepcopy(old_spec[key])
    old_node_ports = {
        (p.get("protocol", "TCP"), p.get("port")): p.get("nodePort")
        for p in old_spec.get("ports") or []
        if isinstance(p, dict) and p.get("nodePort")
    }
    if new_spec.get("type") in ("NodePort", "LoadBalancer"):
        for port in new_spec.get("ports") or []:
            if isinstance(port, dict) and not port.get("nodePort"):
                key = (port.get("protocol", "TCP"), port.get("port"))
                if key in old_node_ports:
                    port["nodePort"] = old_node_ports[key]
    if (
        validation.needs_health_check_port(new_spec)
        and validation.needs_health_check_port(old_spec)
        and not new_spec.get("healthCheckNodePort")
        and old_spec.get("healthCheckNodePort")
    ):
        new_spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]


def _needs_cluster_ip(spec: dict[str, Any]) -> bool:
    return spec.get("type", "ClusterIP") != "ExternalName"


def _needs_node_ports(spec: dict[str, Any]) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


def _node_ports(spec: dict[str, Any]) -> list[Any]:
    return [p.get("nodePort") for p in spec.get("ports") or [] if isinstance(p, dict)]


def _drop_type_dependent_fields(new: Obj, old: Obj) -> None:
    """A type change clears what the new type cannot have, if the user left it as it was.

    As Kubernetes does: `kubectl patch -p '{"spec":{"type":"ExternalName",...}}'`
    carries the old clusterIP along; dropping it (the allocator then releases
    it) makes the change work. A value the user changed in the same request is
    kept, so validation can tell them it is not allowed.
    """
    new_spec, old_spec = new.get("spec"), old.get("spec")
    if not isinstance(new_spec, dict) or not isinstance(old_spec, dict):
        return
    if _needs_cluster_ip(old_spec) and not _needs_cluster_ip(new_spec):
        if new_spec.get("clusterIP") == old_spec.get("clusterIP") and new_spec.get(
            "clusterIPs"
        ) in (None, old_spec.get("clusterIPs")):
            new_spec.pop("clusterIP", None)
            new_spec.pop("clusterIPs", None)
        for key in ("ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
            if key in new_spec and new_spec.get(key) == old_spec.get(key):
                del new_spec[key]
    if (
        _needs_node_ports(old_spec)
        and not _needs_node_ports(new_spec)
        and _node_ports(new_spec) == _node_ports(old_spec)
    ):
        for port in new_spec.get("ports") or []:
            if isinstance(port, dict):
                port.pop("nodePort", None)
    if old_spec.get("type") == "LoadBalancer" and new_spec.get("type") != "LoadBalancer":
        for key in ("allocateLoadBalancerNodePorts", "healthCheckNodePort", "loadBalancerClass"):
            if key in new_spec and new_spec.get(key) == old_spec.get(key):
                del new_spec[key]
    if not _needs_node_ports(new_spec) and new_spec.get("externalTrafficPolicy") == old_spec.get(
        "externalTrafficPolicy"
    ):
        new_spec.pop("externalTrafficPolicy", None)
    if (
        validation.needs_health_check_port(old_spec)
        and not validation.needs_health_check_port(new_spec)
        and new_spec.get("healthCheckNodePort") == old_spec.get("healthCheckNodePort")
    ):
        new_spec.pop("healthCheckNodePort", None)  # the allocator releases it


STRATEGIES: dict[str, Strategy] = {}


def strategy_for(resource: Resource) -> Strategy:
    if resource.kind not in STRATEGIES:
        STRATEGIES[resource.kind] = Strategy(
            resource,
            allow_create_on_update=resource.kind in ("Endpoints", "EndpointSlice", "Event"),
            has_status="status" in resource.subresources,
        )
    return STRATEGIES[resource.kind]
