"""Pure: the EndpointSlices a Service (or a hand-written Endpoints) should have, and how to get there.

Two steps, both without I/O:
- *desired endpoints*: from backends (`service_endpoints`) or from an Endpoints
  object (`mirrored_endpoints`), endpoints grouped by (addressType, ports) —
  one slice set per group, since a slice has one address type and one port list;
- *plan*: match the desired groups against the slices that exist and say which
  to create, update and delete, with the least churn (Kubernetes' reconciler):
  a slice that is already right is kept as is; an endpoint that changed is
  rewritten in the slice that holds it; new endpoints go first into slices
  being rewritten anyway, then into one unchanged slice that can take them all,
  then into new slices; a slice about to be deleted is reused for a slice about
  to be created (an update instead of a delete plus a create).
So one pod's change rewrites one slice, not the whole set.
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from kubesvc.controllers.backends import (
    HEADLESS_LABEL,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    Backend,
    EndpointPort,
)

Obj = dict[str, Any]
Ports = tuple[EndpointPort, ...]
GroupKey = tuple[str, Ports]  # (addressType, ports sorted)
Desired = dict[GroupKey, dict[str, Obj]]  # group → endpoint key (its first address) → endpoint

API_VERSION = "discovery.k8s.io/v1"
DEFAULT_MAX_ENDPOINTS_PER_SLICE = 100
# Endpoints with this label set to "true" are not mirrored (Kubernetes' opt-out).
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"


@dataclass(frozen=True)
class SliceTemplate:
    """What every slice of one set carries: where it lives, its labels and its owner."""

    namespace: str
    generate_name: str
    labels: dict[str, str]
    owner_references: list[Obj]


@dataclass
class SlicePlan:
    """The writes that take the existing slices to the desired ones."""

    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    unchanged: list[Obj] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


# ------------------------------------------------------------------ desired


def address_type_of(ip: str) -> str:
    """The EndpointSlice addressType of an IP address."""
    return "IPv6" if ":" in ip else "IPv4"


def service_address_types(service: Obj) -> list[str]:
    """The address types of a Service's slices: its ipFamilies, IPv4 when it has none."""
    families = (service.get("spec") or {}).get("ipFamilies")
    out = [f for f in families or [] if f in ("IPv4", "IPv6")] if isinstance(families, list) else []
    return list(dict.fromkeys(out)) or ["IPv4"]


def service_template(service: Obj, controller: str) -> SliceTemplate:
    """Labels and owner of the slices the EndpointSlice controller keeps for `service`."""
    meta = service["metadata"]
    labels = dict(meta.get("labels") or {})
    labels[SERVICE_NAME_LABEL] = meta["name"]
    labels[MANAGED_BY_LABEL] = controller
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    owner = {
        "apiVersion": "v1",
        "kind": "Service",
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return SliceTemplate(meta.get("namespace", ""), f"{meta['name']}-", labels, [owner])


def mirror_template(endpoints: Obj, controller: str) -> SliceTemplate:
    """Labels and owner of the slices that mirror a hand-written Endpoints object.

    As Kubernetes' mirroring controller: the Endpoints' labels are copied, and
    the Endpoints (not the Service) is the owner.
    """
    meta = endpoints["metadata"]
    labels = dict(meta.get("labels") or {})
    labels.pop(SKIP_MIRROR_LABEL, None)
    labels[SERVICE_NAME_LABEL] = meta["name"]
    labels[MANAGED_BY_LABEL] = controller
    owner = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return SliceTemplate(meta.get("namespace", ""), f"{meta['name']}-", labels, [owner])


def backend_endpoint(backend: Backend, address: str) -> Obj:
    """One slice endpoint for a pod, with Kubernetes' ready/serving/terminating conditions."""
    endpoint: Obj = {
        "addresses": [address],
        "conditions": {
            "ready": backend.ready,
            "serving": backend.serving,
            "terminating": backend.terminating,
        },
        "targetRef": backend.target_ref(),
    }
    if backend.node_name:
        endpoint["nodeName"] = backend.node_name
    if backend.hostname:
        endpoint["hostname"] = backend.hostname
    return endpoint


def service_endpoints(service: Obj, backends: list[Backend]) -> Desired:
    """Slice endpoints of `backends`, grouped by address type and the port numbers they resolve.

    Pods resolving a named targetPort to different numbers land in different
    groups. As for Endpoints, a pod that serves none of a Service's ports is
    left out; a Service without ports (headless) still lists its pods.
    """
    has_ports = bool((service.get("spec") or {}).get("ports"))
    desired: Desired = {}
    for address_type in service_address_types(service):
        for backend in backends:
            if has_ports and not backend.ports:
                continue
            address = backend.ip_of_family(address_type)
            if address is None:
                continue
            group = desired.setdefault((address_type, tuple(sorted(backend.ports))), {})
            group.setdefault(address, backend_endpoint(backend, address))
    return desired


def _port_of(port: Obj) -> EndpointPort | None:
    number = port.get("port")
    if not isinstance(number, int):
        return None
    return EndpointPort(
        port.get("name") or "", number, port.get("protocol") or "TCP", port.get("appProtocol")
    )


def _ports_of(ports: Any) -> Ports:
    out = [p for p in (_port_of(x) for x in ports or [] if isinstance(x, dict)) if p is not None]
    return tuple(sorted(out))


def mirrored_endpoints(endpoints: Obj) -> Desired:
    """Slice endpoints mirroring an Endpoints object's subsets.

    `addresses` become ready endpoints, `notReadyAddresses` unready ones; each
    subset's ports become its slices' ports; IPv4 and IPv6 addresses go to slices
    of their own address type. An address listed twice under one port list is
    mirrored once, the ready listing winning.
    """
    desired: Desired = {}
    for subset in endpoints.get("subsets") or []:
        if not isinstance(subset, dict):
            continue
        ports = _ports_of(subset.get("ports"))
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in subset.get(key) or []:
                ip = address.get("ip") if isinstance(address, dict) else None
                if not isinstance(ip, str) or not ip:
                    continue
                endpoint: Obj = {"addresses": [ip], "conditions": {"ready": ready}}
                for source, target in (
                    ("hostname", "hostname"),
                    ("nodeName", "nodeName"),
                    ("targetRef", "targetRef"),
                ):
                    if address.get(source):
                        endpoint[target] = address[source]
                desired.setdefault((address_type_of(ip), ports), {}).setdefault(ip, endpoint)
    return desired


# --------------------------------------------------------------------- plan


def slice_group(slice_: Obj) -> GroupKey:
    """The (addressType, ports) a stored slice serves, ports normalised as the server defaults them."""
    return (str(slice_.get("addressType") or ""), _ports_of(slice_.get("ports")))


def endpoint_key(endpoint: Obj) -> str | None:
    """What identifies an endpoint across syncs: its (first) address."""
    addresses = endpoint.get("addresses") if isinstance(endpoint, dict) else None
    if isinstance(addresses, list) and addresses and isinstance(addresses[0], str):
        return addresses[0]
    return None


def _address_order(address: str) -> tuple[int, int, str]:
    # Numeric order, so neighbouring pod IPs share a slice (and a range of pods leaves together).
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (0, 0, address)
    return (ip.version, int(ip), address)


def _metadata_right(slice_: Obj, template: SliceTemplate) -> bool:
    meta = slice_.get("metadata") or {}
    return (meta.get("labels") or {}) == template.labels and (
        meta.get("ownerReferences") or []
    ) == template.owner_references


def new_slice(template: SliceTemplate, group: GroupKey, endpoints: list[Obj]) -> Obj:
    """A slice body to create (the server names it from generateName)."""
    address_type, ports = group
    return {
        "apiVersion": API_VERSION,
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": template.generate_name,
            "namespace": template.namespace,
            "labels": dict(template.labels),
            "ownerReferences": copy.deepcopy(template.owner_references),
        },
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": [p.to_json() for p in ports],
    }


def _rewritten(
    existing: Obj, template: SliceTemplate, group: GroupKey, endpoints: list[Obj]
) -> Obj:
    """`existing` given new contents: same name and resourceVersion (so the update is guarded)."""
    body = new_slice(template, group, endpoints)
    old_meta = existing.get("metadata") or {}
    meta = body["metadata"]
    meta["name"] = old_meta["name"]
    meta["generateName"] = old_meta.get("generateName") or template.generate_name
    if old_meta.get("resourceVersion"):
        meta["resourceVersion"] = old_meta["resourceVersion"]
    if old_meta.get("annotations"):
        meta["annotations"] = dict(old_meta["annotations"])
    return body


@dataclass
class _Working:
    slice: Obj
    endpoints: list[Obj]
    changed: bool


def _plan_group(
    template: SliceTemplate,
    group: GroupKey,
    wanted: dict[str, Obj],
    existing: list[Obj],
    max_endpoints: int,
    plan: SlicePlan,
) -> None:
    placed: set[str] = set()
    working: list[_Working] = []
    for slice_ in existing:
        changed = not _metadata_right(slice_, template)
        kept: list[Obj] = []
        for endpoint in slice_.get("endpoints") or []:
            key = endpoint_key(endpoint)
            if key is None or key not in wanted or key in placed or len(kept) >= max_endpoints:
                changed = True  # gone, a duplicate, or over the limit: drop it here
                continue
            placed.add(key)
            if endpoint != wanted[key]:
                changed = True
            kept.append(wanted[key])
        if kept:
            working.append(_Working(slice_, kept, changed))
        else:
            plan.delete.append(slice_)
    remaining = [wanted[key] for key in sorted(wanted, key=_address_order) if key not in placed]
    # Slices that will be written anyway take new endpoints first: no extra write.
    for item in working:
        if not item.changed:
            continue
        room = max_endpoints - len(item.endpoints)
        if room > 0 and remaining:
            item.endpoints.extend(remaining[:room])
            remaining = remaining[room:]
    fresh: list[list[Obj]] = []
    while remaining:
        target: _Working | None = None
        if len(remaining) < max_endpoints:
            # One unchanged slice that can take all that is left, the fullest such (best fit).
            fits = [
                w
                for w in working
                if not w.changed and max_endpoints - len(w.endpoints) >= len(remaining)
            ]
            target = min(fits, key=lambda w: max_endpoints - len(w.endpoints), default=None)
        if target is not None:
            target.endpoints.extend(remaining)
            target.changed = True
            remaining = []
        else:
            fresh.append(remaining[:max_endpoints])
            remaining = remaining[max_endpoints:]
    for item in working:
        if item.changed:
            plan.update.append(_rewritten(item.slice, template, group, item.endpoints))
        else:
            plan.unchanged.append(item.slice)
    plan.create.extend(new_slice(template, group, endpoints) for endpoints in fresh)


def _is_placeholder(slice_: Obj, template: SliceTemplate, address_type: str) -> bool:
    return (
        not slice_.get("endpoints")
        and not slice_.get("ports")
        and slice_.get("addressType") == address_type
        and _metadata_right(slice_, template)
    )


def plan_slices(
    template: SliceTemplate,
    desired: Desired,
    existing: list[Obj],
    *,
    max_endpoints: int = DEFAULT_MAX_ENDPOINTS_PER_SLICE,
    placeholder_types: list[str] | tuple[str, ...] = (),
) -> SlicePlan:
    """The creates, updates and deletes that turn `existing` (one set's slices) into `desired`.

    For each address type in `placeholder_types` that ends up with no slice, one
    slice without endpoints or ports is kept (or made), as Kubernetes does for a
    selector Service with no pods: it tells readers that the Service was seen.
    """
    plan = SlicePlan()
    existing = sorted(existing, key=lambda s: (s.get("metadata") or {}).get("name", ""))
    by_group: dict[GroupKey, list[Obj]] = {}
    for slice_ in existing:
        by_group.setdefault(slice_group(slice_), []).append(slice_)
    for group, wanted in sorted(desired.items()):
        if wanted:
            _plan_group(template, group, wanted, by_group.pop(group, []), max_endpoints, plan)
    for slices in by_group.values():
        plan.delete.extend(slices)

    address_types = sorted({group[0] for group in desired} | set(placeholder_types))
    for address_type in address_types:
        kept = [s for s in plan.unchanged + plan.update if s.get("addressType") == address_type]
        created = [s for s in plan.create if s["addressType"] == address_type]
        if address_type in placeholder_types and not kept and not created:
            placeholders = [s for s in plan.delete if _is_placeholder(s, template, address_type)]
            if placeholders:
                plan.delete.remove(placeholders[0])
                plan.unchanged.append(placeholders[0])
            else:
                plan.create.append(new_slice(template, (address_type, ()), []))
        # Reuse slices that would be deleted for slices that would be created: one write, not two.
        for body in [s for s in plan.create if s["addressType"] == address_type]:
            reusable = [s for s in plan.delete if s.get("addressType") == address_type]
            if not reusable:
                break
            old = reusable[0]
            plan.delete.remove(old)
            plan.create.remove(body)
            group = (address_type, _ports_of(body["ports"]))
            plan.update.append(_rewritten(old, template, group, body["endpoints"]))
    return plan
