"""OpenAPI v3 for the served resources, and server-side field validation from the same schemas.

kubectl reads `GET /openapi/v3` (a root naming one document per group/version,
each URL carrying a content hash) and then the group/version document. It
uses the document for three things, so the document is shaped for them:

- `kubectl explain` finds the schema in `components.schemas` whose
  `x-kubernetes-group-version-kind` names the kind, and walks `properties`
  through `allOf: [{$ref}]` references, printing each `description`.
- `create`/`apply`/`replace` look for the PATCH operation tagged with the
  kind's GVK and, when it declares the `fieldValidation` query parameter,
  leave validation to the server (`fieldValidation=Strict`); without it they
  fall back to client-side validation against `/openapi/v2`, which we lack.
- client-side `apply` computes its strategic merge patch from the same
  schemas (`x-kubernetes-patch-merge-key`/`-patch-strategy`), when the PATCH
  operation accepts `application/strategic-merge-patch+json`.

Schema names and extensions follow Kubernetes' own (`io.k8s.api.core.v1.Service`,
list types and merge keys where Kubernetes declares them); the descriptions
are our own. Sub-structures kubesvc has no use for (affinity, most volume
sources, ...) are open objects marked `x-kubernetes-preserve-unknown-fields`,
so that strict validation accepts whatever Kubernetes would.

Output is deterministic (sorted keys), so the sha256 of a document is a
stable ETag and the `?hash=` of its URL in the root.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from typing import Any

from kubesvc.api import errors
from kubesvc.apiserver.resources import RESOURCES, Resource, group_versions, resources_of

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
CORE = "io.k8s.api.core.v1."
DISC = "io.k8s.api.discovery.v1."
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
REF_PREFIX = "#/components/schemas/"

Schema = dict[str, Any]
SCHEMAS: dict[str, Schema] = {}


# ------------------------------------------------------------ schema DSL
# Small constructors that keep the definitions below readable. Each returns
# the schema of one property; `_define` registers a named object schema.


def _define(
    name: str,
    description: str,
    properties: dict[str, Schema],
    *,
    required: tuple[str, ...] = (),
    **extensions: Any,
) -> None:
    schema: Schema = {"description": description, "type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    for key, value in extensions.items():
        schema[key.replace("_", "-")] = value
    SCHEMAS[name] = schema


def _string(
    description: str, *, enum: tuple[str, ...] = (), default: str | None = None, fmt: str = ""
) -> Schema:
    schema: Schema = {"type": "string", "description": description}
    if enum:
        schema["enum"] = list(enum)
    if default is not None:
        schema["default"] = default
    if fmt:
        schema["format"] = fmt
    return schema


def _int(description: str, *, bits: int = 32, default: int | None = None) -> Schema:
    schema: Schema = {"type": "integer", "format": f"int{bits}", "description": description}
    if default is not None:
        schema["default"] = default
    return schema


def _bool(description: str, *, default: bool | None = None) -> Schema:
    schema: Schema = {"type": "boolean", "description": description}
    if default is not None:
        schema["default"] = default
    return schema


def _ref(name: str, description: str = "", *, default: Any = None) -> Schema:
    # Kubernetes wraps references in allOf so a description can sit beside them.
    schema: Schema = {"allOf": [{"$ref": REF_PREFIX + name}]}
    if description:
        schema["description"] = description
    if default is not None:
        schema["default"] = default
    return schema


def _item(name: str) -> Schema:
    return {"allOf": [{"$ref": REF_PREFIX + name}], "default": {}}


def _list(
    items: Schema,
    description: str,
    *,
    list_type: str = "atomic",
    map_keys: tuple[str, ...] = (),
    merge_key: str = "",
    strategy: str = "",
) -> Schema:
    schema: Schema = {"type": "array", "items": items, "description": description}
    if list_type:
        schema["x-kubernetes-list-type"] = list_type
    if map_keys:
        schema["x-kubernetes-list-map-keys"] = list(map_keys)
    if merge_key:
        schema["x-kubernetes-patch-merge-key"] = merge_key
    if strategy:
        schema["x-kubernetes-patch-strategy"] = strategy
    return schema


def _strings(description: str, *, list_type: str = "atomic", strategy: str = "") -> Schema:
    return _list(
        {"type": "string", "default": ""}, description, list_type=list_type, strategy=strategy
    )


def _string_map(description: str, *, atomic: bool = False) -> Schema:
    schema: Schema = {
        "type": "object",
        "additionalProperties": {"type": "string", "default": ""},
        "description": description,
    }
    if atomic:
        schema["x-kubernetes-map-type"] = "atomic"
    return schema


def _quantity_map(description: str) -> Schema:
    return {
        "type": "object",
        "additionalProperties": {"$ref": REF_PREFIX + QUANTITY},
        "description": description,
    }


def _open(description: str) -> Schema:
    """An object kubesvc does not model: any content is kept and accepted."""
    return {
        "type": "object",
        "description": description,
        "x-kubernetes-preserve-unknown-fields": True,
    }


def _open_list(description: str, **kw: Any) -> Schema:
    return _list(
        {"type": "object", "x-kubernetes-preserve-unknown-fields": True}, description, **kw
    )


def _time(description: str) -> Schema:
    return _ref(META + "Time", description)


def _micro_time(description: str) -> Schema:
    return _ref(META + "MicroTime", description)


def _type_meta() -> dict[str, Schema]:
    return {
        "apiVersion": _string(
            "The versioned schema this object is written in, e.g. `v1` or `discovery.k8s.io/v1`."
            " The server converts recognised versions and rejects unknown ones."
        ),
        "kind": _string(
            "The REST resource type this object represents, in CamelCase (e.g. `Service`)."
            " Servers can infer it from the URL; it cannot be updated."
        ),
    }


def _metadata() -> Schema:
    return _ref(
        META + "ObjectMeta",
        "The object's standard metadata: name, namespace, labels, annotations and the"
        " fields the server maintains (uid, resourceVersion, creationTimestamp).",
        default={},
    )


def _list_kind(name: str, item: str, what: str) -> None:
    _define(
        name,
        f"A list of {what}.",
        {
            **_type_meta(),
            "items": _list(_item(item), f"The {what}.", list_type=""),
            "metadata": _ref(
                META + "ListMeta",
                "Standard list metadata: the resourceVersion to watch from and the continue token.",
                default={},
            ),
        },
        required=("items",),
    )


# ------------------------------------------------------------- meta/v1

SCHEMAS[META + "Time"] = {
    "type": "string",
    "format": "date-time",
    "description": "A point in time, written in RFC 3339 form with second precision"
    " (e.g. `2024-05-01T12:00:00Z`).",
}
SCHEMAS[META + "MicroTime"] = {
    "type": "string",
    "format": "date-time",
    "description": "A point in time with microsecond precision, in RFC 3339 form.",
}
SCHEMAS[META + "FieldsV1"] = {
    "type": "object",
    "description": "A set of field paths in Kubernetes' JSON trie encoding, as used by managedFields.",
    "x-kubernetes-preserve-unknown-fields": True,
}
SCHEMAS[META + "Patch"] = {
    "type": "object",
    "description": "The body of a PATCH request; its format depends on the request's Content-Type"
    " (JSON patch, merge patch, strategic merge patch or apply configuration).",
}
SCHEMAS[INT_OR_STRING] = {
    "description": "A value that is either a whole number or a string. In JSON and YAML it is"
    " written as whichever of the two it holds, so a field can accept a port number as well as"
    " a port name.",
    "format": "int-or-string",
    "oneOf": [{"type": "integer"}, {"type": "string"}],
}
SCHEMAS[QUANTITY] = {
    "description": "A fixed-point amount such as `100m`, `1.5`, `128Mi` or `2G`: a number with an"
    " optional binary (Ki, Mi, Gi, ...) or decimal (m, k, M, G, ...) suffix, or an exponent.",
    "oneOf": [{"type": "string"}, {"type": "number"}],
}

_define(
    META + "ObjectMeta",
    "Metadata every persisted object carries: its identity (name, namespace, uid), the labels"
    " and annotations users attach, and bookkeeping the server maintains.",
    {
        "name": _string(
            "The object's name, unique among objects of its kind in its namespace. Required on"
            " create unless generateName is given; cannot be changed afterwards."
        ),
        "generateName": _string(
            "A prefix from which the server makes a unique name when `name` is empty, by"
            " appending random characters."
        ),
        "namespace": _string(
            "The namespace the object lives in. Empty for cluster-wide kinds such as Namespace;"
            " namespaced objects default to the request's namespace."
        ),
        "selfLink": _string("Deprecated and no longer set: the URL of this object."),
        "uid": _string(
            "A unique id the server assigns on create; it never repeats, even for a new object"
            " with the same name. Read-only."
        ),
        "resourceVersion": _string(
            "An opaque version the server bumps on every change. Send it back on update for"
            " optimistic concurrency, or use it to watch for changes after this point. Read-only."
        ),
        "generation": _int(
            "A number that counts changes to the desired state (spec). Read-only.", bits=64
        ),
        "creationTimestamp": _time(
            "When the server created the object. Set by the server, read-only."
        ),
        "deletionTimestamp": _time(
            "When the object will be removed; set once deletion is requested and finalizers are"
            " pending. Read-only."
        ),
        "deletionGracePeriodSeconds": _int(
            "The seconds the object is given to terminate gracefully once deletionTimestamp is"
            " set. Read-only.",
            bits=64,
        ),
        "labels": _string_map(
            "Key/value pairs used to organise and select objects; services pick their pods by"
            " label selectors."
        ),
        "annotations": _string_map(
            "Free-form key/value data for tools and people; unlike labels they cannot be"
            " selected on."
        ),
        "ownerReferences": _list(
            _item(META + "OwnerReference"),
            "The objects this one depends on. When every owner is gone, the object may be"
            " garbage collected. At most one entry may be the managing controller.",
            list_type="map",
            map_keys=("uid",),
            merge_key="uid",
            strategy="merge",
        ),
        "finalizers": _strings(
            "Names of tasks that must finish before the object is removed from storage; the"
            " object stays, with deletionTimestamp set, until the list is empty.",
            list_type="set",
            strategy="merge",
        ),
        "managedFields": _list(
            _item(META + "ManagedFieldsEntry"),
            "Which field manager owns which fields, kept by server-side apply. Users should"
            " not need to set or read this.",
        ),
    },
)
_define(
    META + "OwnerReference",
    "Identifies an object that owns this one.",
    {
        "apiVersion": _string("The API version of the owner.", default=""),
        "kind": _string("The kind of the owner.", default=""),
        "name": _string("The name of the owner.", default=""),
        "uid": _string("The uid of the owner.", default=""),
        "controller": _bool("True when the owner is the managing controller."),
        "blockOwnerDeletion": _bool(
            "When true, foreground deletion of the owner waits until this object is removed."
        ),
    },
    required=("apiVersion", "kind", "name", "uid"),
    x_kubernetes_map_type="atomic",
)
_define(
    META + "ManagedFieldsEntry",
    "One field manager's ownership of a set of fields.",
    {
        "manager": _string("The name of the workflow (field manager) that owns the fields."),
        "operation": _string("The kind of request that last changed them: `Apply` or `Update`."),
        "apiVersion": _string("The API version the field set is expressed in."),
        "time": _time("When the fields were last changed by this manager."),
        "fieldsType": _string("The encoding of fieldsV1; only `FieldsV1` exists."),
        "fieldsV1": _ref(META + "FieldsV1", "The owned fields."),
        "subresource": _string("The subresource the change went through, if any (e.g. `status`)."),
    },
)
_define(
    META + "ListMeta",
    "Metadata of a list response.",
    {
        "selfLink": _string("Deprecated and no longer set."),
        "resourceVersion": _string(
            "The version of the collection this list was read at; watch from it to see later"
            " changes."
        ),
        "continue": _string(
            "Set when the list was cut short by `limit`: pass it as `continue` to fetch the next"
            " page. It expires along with the resourceVersion it was made at."
        ),
        "remainingItemCount": _int(
            "An estimate of the items left after this page, when the server knows it.", bits=64
        ),
    },
)
_define(
    META + "StatusCause",
    "One reason an operation failed, often tied to a field.",
    {
        "reason": _string("A machine-readable cause, e.g. `FieldValueInvalid`."),
        "message": _string("A human-readable explanation."),
        "field": _string("The field the cause concerns, as a path like `spec.ports[0].port`."),
    },
)
_define(
    META + "StatusDetails",
    "Extra data about a failure.",
    {
        "name": _string("The name of the object involved, if any."),
        "group": _string("The API group of the resource involved."),
        "kind": _string("The kind (or resource) involved."),
        "uid": _string("The uid of the object involved."),
        "causes": _list(_item(META + "StatusCause"), "The individual causes of the failure."),
        "retryAfterSeconds": _int("How long the client should wait before retrying."),
    },
)
_define(
    META + "Status",
    "The result of an operation that returns no object, and of every failed request.",
    {
        **_type_meta(),
        "metadata": _ref(META + "ListMeta", "Standard list metadata.", default={}),
        "status": _string("`Success` or `Failure`."),
        "message": _string("A human-readable description of the result."),
        "reason": _string("A machine-readable reason, e.g. `NotFound` or `AlreadyExists`."),
        "details": _ref(META + "StatusDetails", "Extra data, depending on the reason."),
        "code": _int("The HTTP status code of the result."),
    },
    x_kubernetes_group_version_kind=[{"group": "", "kind": "Status", "version": "v1"}],
)
_define(
    META + "Preconditions",
    "Conditions the object must meet for a delete to go ahead.",
    {
        "uid": _string("Delete only if the object still has this uid."),
        "resourceVersion": _string("Delete only if the object is still at this version."),
    },
)
_define(
    META + "DeleteOptions",
    "Options for a DELETE request, sent as its body.",
    {
        **_type_meta(),
        "gracePeriodSeconds": _int(
            "Seconds to wait before the object is removed; 0 means now. Defaults per kind.",
            bits=64,
        ),
        "preconditions": _ref(META + "Preconditions", "Delete only if these hold."),
        "orphanDependents": _bool(
            "Deprecated, use propagationPolicy: whether to leave dependents in place."
        ),
        "propagationPolicy": _string(
            "What happens to dependent objects: `Orphan`, `Background` or `Foreground`."
        ),
        "dryRun": _strings("When `All`, check the request but persist nothing."),
        "ignoreStoreReadErrorWithClusterBreakingPotential": _bool(
            "Delete even an object that cannot be read from storage. Dangerous; off by default."
        ),
    },
    # Filled in below with every served group/version: DeleteOptions is accepted in each.
    x_kubernetes_group_version_kind=[],
)
_define(
    META + "Condition",
    "One aspect of an object's current state.",
    {
        "type": _string("The condition's type in CamelCase, e.g. `Ready`.", default=""),
        "status": _string("`True`, `False` or `Unknown`.", default=""),
        "observedGeneration": _int(
            "The metadata.generation the condition was computed from.", bits=64
        ),
        "lastTransitionTime": _time("When the status last changed."),
        "reason": _string("A CamelCase word for why the condition is as it is.", default=""),
        "message": _string("A human-readable account of the transition.", default=""),
    },
    required=("type", "status", "lastTransitionTime", "reason", "message"),
)


# -------------------------------------------------------------- core/v1

_define(
    CORE + "ObjectReference",
    "Points at another object, possibly a part of it (fieldPath).",
    {
        "kind": _string("The kind of the referent."),
        "namespace": _string("The namespace of the referent."),
        "name": _string("The name of the referent."),
        "uid": _string("The uid of the referent."),
        "apiVersion": _string("The API version of the referent."),
        "resourceVersion": _string("The version of the referent this reference was made from."),
        "fieldPath": _string(
            "A part of the referent, e.g. `spec.containers{web}` for one container of a pod."
        ),
    },
    x_kubernetes_map_type="atomic",
)
_define(
    CORE + "LocalObjectReference",
    "Names an object in the same namespace.",
    {"name": _string("The name of the referent.", default="")},
    x_kubernetes_map_type="atomic",
)

# Namespace
_define(
    CORE + "NamespaceSpec",
    "What a namespace asks for.",
    {
        "finalizers": _strings(
            "Tasks that must finish before the namespace and its contents are removed."
        )
    },
)
_define(
    CORE + "NamespaceCondition",
    "One aspect of a namespace's state.",
    {
        "type": _string("The condition's type.", default=""),
        "status": _string("`True`, `False` or `Unknown`.", default=""),
        "lastTransitionTime": _time("When the status last changed."),
        "reason": _string("A CamelCase word for the last transition."),
        "message": _string("A human-readable account of the last transition."),
    },
    required=("type", "status"),
)
_define(
    CORE + "NamespaceStatus",
    "The observed state of a namespace.",
    {
        "phase": _string(
            "`Active` while the namespace is usable, `Terminating` once it is being deleted.",
            enum=("Active", "Terminating"),
        ),
        "conditions": _list(
            _item(CORE + "NamespaceCondition"),
            "The namespace's current conditions.",
            list_type="map",
            map_keys=("type",),
            merge_key="type",
            strategy="merge",
        ),
    },
)
_define(
    CORE + "Namespace",
    "A namespace scopes names: objects in different namespaces may share a name. Deleting a"
    " namespace deletes everything in it.",
    {
        **_type_meta(),
        "metadata": _metadata(),
        "spec": _ref(CORE + "NamespaceSpec", "What the namespace asks for.", default={}),
        "status": _ref(
            CORE + "NamespaceStatus", "The namespace's observed state. Read-only.", default={}
        ),
    },
)
_list_kind(CORE + "NamespaceList", CORE + "Namespace", "namespaces")

# Node
_define(
    CORE + "NodeSpec",
    "How a node is to be used.",
    {
        "podCIDR": _string("The node's pod address range."),
        "podCIDRs": _strings(
            "The node's pod address ranges (one per IP family).", strategy="merge"
        ),
        "providerID": _string("The node's ID at its provider."),
        "unschedulable": _bool("Place no new pods on the node."),
        "taints": _open_list("Taints (kept, not acted on by kubesvc)."),
    },
)
_define(
    CORE + "NodeAddress",
    "One address of a node.",
    {
        "type": _string("`InternalIP`, `ExternalIP` or `Hostname`.", default=""),
        "address": _string("The address.", default=""),
    },
    required=("type", "address"),
)
_define(
    CORE + "NodeCondition",
    "One aspect of a node's state.",
    {
        "type": _string("The condition's type, e.g. `Ready`.", default=""),
        "status": _string("`True`, `False` or `Unknown`.", default=""),
        "lastHeartbeatTime": _time("When the node last reported this condition."),
        "lastTransitionTime": _time("When the status last changed."),
        "reason": _string("A CamelCase word for the last transition."),
        "message": _string("A human-readable account of the last transition."),
    },
    required=("type", "status"),
)
_define(
    CORE + "NodeSystemInfo",
    "What runs on the node.",
    {
        key: _string(text, default="")
        for key, text in (
            ("machineID", "The machine ID."),
            ("systemUUID", "The system UUID."),
            ("bootID", "The boot ID."),
            ("kernelVersion", "The kernel version (uname -r)."),
            ("osImage", "The operating system."),
            ("containerRuntimeVersion", "What runs the pods."),
            ("kubeletVersion", "The node agent's version."),
            ("kubeProxyVersion", "The proxy's version."),
            ("operatingSystem", "The operating system family."),
            ("architecture", "The CPU architecture."),
        )
    },
)
_define(
    CORE + "NodeStatus",
    "The observed state of a node, written by its node agent.",
    {
        "capacity": _quantity_map("The node's resources in total (kubesvc: pods)."),
        "allocatable": _quantity_map("The node's resources pods may use (kubesvc: pods)."),
        "phase": _string("Deprecated."),
        "conditions": _list(
            _item(CORE + "NodeCondition"),
            "The node's current conditions; `Ready` says whether it takes pods.",
            list_type="map",
            map_keys=("type",),
            merge_key="type",
            strategy="merge",
        ),
        "addresses": _list(
            _item(CORE + "NodeAddress"),
            "The node's addresses.",
            list_type="",
            merge_key="type",
            strategy="merge",
        ),
        "daemonEndpoints": _open("Ports of the node's daemons."),
        "nodeInfo": _ref(CORE + "NodeSystemInfo", "What runs on the node.", default={}),
        "images": _open_list("Images on the node."),
        "volumesInUse": _strings("Volumes in use."),
        "volumesAttached": _open_list("Volumes attached."),
        "config": _open("The node's dynamic configuration."),
    },
)
_define(
    CORE + "Node",
    "A machine that runs pods: a node agent, the proxy and DNS. Its agent registers it and"
    " posts a heartbeat; without one for a while its Ready condition becomes Unknown and the"
    " scheduler places no new pods there.",
    {
        **_type_meta(),
        "metadata": _metadata(),
        "spec": _ref(CORE + "NodeSpec", "How the node is to be used.", default={}),
        "status": _ref(CORE + "NodeStatus", "The node's observed state.", default={}),
    },
)
_list_kind(CORE + "NodeList", CORE + "Node", "nodes")

# Service
_define(
    CORE + "ServicePort",
    "One port a service exposes, and where its traffic goes.",
    {
        "name": _string(
            "The port's name: a DNS label, unique within the service. Required when the"
            " service has more than one port; endpoints carry the same name, and DNS SRV"
            " records are published under it."
        ),
        "protocol": _string(
            "The IP protocol: `TCP` (the default), `UDP` or `SCTP`.",
            enum=("SCTP", "TCP", "UDP"),
            default="TCP",
        ),
        "appProtocol": _string(
            "The application protocol spoken on this port, as a hint to proxies and load"
            " balancers: an IANA service name (`http`, `https`), a `kubernetes.io/`-prefixed"
            " name such as `kubernetes.io/h2c`, or a domain-prefixed name of your own."
        ),
        "port": _int(
            "The port number the service listens on, on its cluster IP and external IPs (1-65535)."
        ),
        "targetPort": _ref(
            INT_OR_STRING,
            "Where the traffic is delivered on the selected pods: a port number, or the name of"
            " a container port (`containerPort.name`), which lets pods use different numbers"
            " under one name. Defaults to the value of `port`. Ignored for services without a"
            " selector, whose endpoints say the port themselves.",
        ),
        "nodePort": _int(
            "For NodePort and LoadBalancer services: the port opened on every node that"
            " forwards to this service. Allocated from the node port range (30000-32767 by"
            " default) when left out; a requested port must be free and in range. Removed when"
            " the service changes to a type that does not need it."
        ),
    },
    required=("port",),
)
_define(
    CORE + "ClientIPConfig",
    "Settings of client-IP based session affinity.",
    {
        "timeoutSeconds": _int(
            "How long, in seconds, a client keeps going to the same endpoint after its last"
            " connection: 1 to 86400, 10800 (three hours) by default."
        )
    },
)
_define(
    CORE + "SessionAffinityConfig",
    "Settings of session affinity.",
    {
        "clientIP": _ref(
            CORE + "ClientIPConfig", "Settings used when sessionAffinity is `ClientIP`."
        )
    },
)
_define(
    CORE + "PortStatus",
    "The state of one port of a load balancer.",
    {
        "port": _int("The port number."),
        "protocol": _string("The port's protocol: TCP, UDP or SCTP.", default=""),
        "error": _string(
            "Why the port could not be set up, as a CamelCase reason; empty when it works."
        ),
    },
    required=("port", "protocol"),
)
_define(
    CORE + "LoadBalancerIngress",
    "An address at which a load balancer receives traffic for the service.",
    {
        "ip": _string("The load balancer's IP address, when it has one."),
        "hostname": _string("The load balancer's DNS name, when it has one instead of an IP."),
        "ipMode": _string(
            "How traffic for the IP reaches the nodes: `VIP` (sent to the IP itself) or"
            " `Proxy` (rewritten to a node address)."
        ),
        "ports": _list(_item(CORE + "PortStatus"), "The state of each of the service's ports."),
    },
)
_define(
    CORE + "LoadBalancerStatus",
    "The state of an external load balancer.",
    {
        "ingress": _list(
            _item(CORE + "LoadBalancerIngress"), "The addresses the load balancer listens on."
        )
    },
)
_define(
    CORE + "ServiceSpec",
    "How a service is exposed and which endpoints receive its traffic.",
    {
        "ports": _list(
            _item(CORE + "ServicePort"),
            "The ports the service exposes. Each port number and protocol pair appears at most"
            " once; when there is more than one port, every port needs a name.",
            list_type="map",
            map_keys=("port", "protocol"),
            merge_key="port",
            strategy="merge",
        ),
        "selector": _string_map(
            "The labels of the pods that receive the service's traffic: endpoints are kept up"
            " to date with the ready pods carrying all of these labels. Without a selector"
            " nothing manages the endpoints and you publish them yourself (Endpoints or"
            " EndpointSlice objects). Ignored for ExternalName services.",
            atomic=True,
        ),
        "clusterIP": _string(
            "The virtual IP address of the service inside the cluster, usually allocated from"
            " the service range. You may ask for a specific free address in range, or `None` for"
            " a headless service that gets no virtual IP, whose DNS name resolves straight to"
            " the endpoints. It cannot change once set, except by switching to or from"
            " ExternalName; it must be empty for ExternalName services."
        ),
        "clusterIPs": _strings(
            "All virtual IPs of the service, one per IP family (at most two, for dual-stack);"
            " the first entry always equals clusterIP. Filled in from clusterIP when left out;"
            " same rules as clusterIP."
        ),
        "type": _string(
            "How the service is reachable. `ClusterIP` (the default) gives it a virtual IP"
            " inside the cluster that balances over its endpoints. `NodePort` adds a port on"
            " every node that forwards to the same endpoints. `LoadBalancer` adds an external"
            " load balancer in front of the node ports, where the platform provides one."
            " `ExternalName` makes the service's DNS name an alias (CNAME) of externalName,"
            " with no proxying at all.",
            enum=("ClusterIP", "ExternalName", "LoadBalancer", "NodePort"),
        ),
        "externalIPs": _strings(
            "Extra IP addresses on which the nodes accept traffic for the service, as if it"
            " were sent to the cluster IP. Kubernetes does not manage these addresses: getting"
            " the packets to a node is up to you."
        ),
        "sessionAffinity": _string(
            "Whether connections from one client stick to one endpoint: `ClientIP` sends each"
            " client address to the same endpoint for a while (see sessionAffinityConfig);"
            " `None` (the default) balances each connection independently.",
            enum=("ClientIP", "None"),
        ),
        "loadBalancerIP": _string(
            "Deprecated: a specific address to ask the load balancer for, for LoadBalancer"
            " services, honoured only by some platforms."
        ),
        "loadBalancerSourceRanges": _strings(
            "Client CIDR ranges allowed through the load balancer, where the platform supports"
            " restricting it; empty means everyone."
        ),
        "externalName": _string(
            "For ExternalName services: the DNS name (an RFC 1123 hostname) the service's own"
            " name is an alias of. Must be empty for other types."
        ),
        "externalTrafficPolicy": _string(
            "How nodes route traffic arriving on the service's external addresses (node ports,"
            " external IPs, load balancer IPs). `Cluster` (the default) spreads it over all"
            " endpoints, hiding the client's source address behind a node address. `Local`"
            " only uses endpoints on the receiving node and keeps the client's source address;"
            " a node without local endpoints drops the traffic.",
            enum=("Cluster", "Local"),
        ),
        "healthCheckNodePort": _int(
            "For LoadBalancer services with externalTrafficPolicy Local: the node port on which"
            " a health check tells the load balancer whether the node has local endpoints."
            " Allocated when left out; cannot change once set."
        ),
        "publishNotReadyAddresses": _bool(
            "When true, endpoints include pods that are not ready, and DNS answers with their"
            " addresses too. Useful for peers that must find each other before they are ready,"
            " as in stateful sets."
        ),
        "sessionAffinityConfig": _ref(
            CORE + "SessionAffinityConfig", "Tuning of session affinity (the ClientIP timeout)."
        ),
        "ipFamilies": _strings(
            "The IP families (`IPv4`, `IPv6`) of the service's cluster IPs, in the order of"
            " clusterIPs. Chosen from the cluster configuration and ipFamilyPolicy when left"
            " out; a secondary family may be added or removed later, the primary never changes."
        ),
        "ipFamilyPolicy": _string(
            "How many IP families the service gets: `SingleStack` (one, the default),"
            " `PreferDualStack` (two where the cluster has both, else one) or `RequireDualStack`"
            " (two, or the request fails).",
            enum=("PreferDualStack", "RequireDualStack", "SingleStack"),
        ),
        "allocateLoadBalancerNodePorts": _bool(
            "For LoadBalancer services: whether node ports are allocated (the default) or left"
            " out, for load balancers that send traffic straight to the pods."
        ),
        "loadBalancerClass": _string(
            "For LoadBalancer services: which load balancer implementation handles this"
            " service, as a label-style name such as `example.com/internal-vip`. Unset means the"
            " default implementation; cannot change once set."
        ),
        "internalTrafficPolicy": _string(
            "How nodes route traffic sent to the cluster IP from inside the cluster. `Cluster`"
            " (the default) uses every endpoint; `Local` only uses endpoints on the sender's own"
            " node and drops the traffic when there are none.",
            enum=("Cluster", "Local"),
        ),
        "trafficDistribution": _string(
            "A preference for how traffic is spread over the endpoints, e.g. `PreferClose` to"
            " favour endpoints topologically close to the client. Proxies that do not"
            " understand it ignore it."
        ),
    },
)
_define(
    CORE + "ServiceStatus",
    "The observed state of a service.",
    {
        "loadBalancer": _ref(
            CORE + "LoadBalancerStatus",
            "The external load balancer's addresses, when there is one.",
            default={},
        ),
        "conditions": _list(
            _item(META + "Condition"),
            "The service's current conditions.",
            list_type="map",
            map_keys=("type",),
            merge_key="type",
            strategy="merge",
        ),
    },
)
_define(
    CORE + "Service",
    "A service gives a set of pods, chosen by label selector, one stable name and virtual IP"
    " address, and balances the connections sent to it over the pods that are ready. It can"
    " also be reached on node ports, external IPs, or be a DNS alias of an outside name.",
    {
        **_type_meta(),
        "metadata": _metadata(),
        "spec": _ref(
            CORE + "ServiceSpec",
            "How the service is exposed and which pods receive its traffic.",
            default={},
        ),
        "status": _ref(
            CORE + "ServiceStatus",
            "The service's observed state, maintained by the system. Read-only.",
            default={},
        ),
    },
)
_list_kind(CORE + "ServiceList", CORE + "Service", "services")

# Endpoints
_define(
    CORE + "EndpointAddress",
    "One address of an endpoint.",
    {
        "ip": _string("The endpoint's IP address.", default=""),
        "hostname": _string("The endpoint's hostname, published in DNS for headless services."),
        "nodeName": _string("The node hosting the endpoint."),
        "targetRef": _ref(
            CORE + "ObjectReference", "The object (usually a pod) behind the address."
        ),
    },
    required=("ip",),
    x_kubernetes_map_type="atomic",
)
_define(
    CORE + "EndpointPort",
    "A port of an Endpoints subset.",
    {
        "name": _string("The port's name; must match the name of the service port it serves."),
        "port": _int("The port number."),
        "protocol": _string(
            "The IP protocol: TCP (the default), UDP or SCTP.", enum=("SCTP", "TCP", "UDP")
        ),
        "appProtocol": _string("The application protocol spoken on this port."),
    },
    required=("port",),
    x_kubernetes_map_type="atomic",
)
_define(
    CORE + "EndpointSubset",
    "A group of addresses that all serve the same ports: every address × every port is an"
    " endpoint.",
    {
        "addresses": _list(
            _item(CORE + "EndpointAddress"), "Addresses that are ready to receive traffic."
        ),
        "notReadyAddresses": _list(
            _item(CORE + "EndpointAddress"),
            "Addresses that exist but are not ready yet (or are shutting down).",
        ),
        "ports": _list(_item(CORE + "EndpointPort"), "The ports every address serves."),
    },
)
_define(
    CORE + "Endpoints",
    "The network endpoints behind a service, grouped in subsets. Kept up to date for services"
    " with a selector; written by hand for those without. Superseded by EndpointSlice but"
    " still maintained.",
    {
        **_type_meta(),
        "metadata": _metadata(),
        "subsets": _list(
            _item(CORE + "EndpointSubset"),
            "The groups of addresses and the ports they serve.",
        ),
    },
)
_list_kind(CORE + "EndpointsList", CORE + "Endpoints", "endpoints")

# Event
_define(
    CORE + "EventSource",
    "Which component reported an event.",
    {
        "component": _string("The reporting component."),
        "host": _string("The node the component runs on."),
    },
)
_define(
    CORE + "EventSeries",
    "A summary of an event that keeps happening.",
    {
        "count": _int("How many times it happened so far."),
        "lastObservedTime": _micro_time("When it last happened."),
    },
)
_define(
    CORE + "Event",
    "A report of something that happened to an object, such as a scheduling decision, a"
    " failed probe or a port that could not be allocated. Events expire after a while.",
    {
        **_type_meta(),
        "metadata": _metadata(),
        "involvedObject": _ref(
            CORE + "ObjectReference", "The object the event is about.", default={}
        ),
        "reason": _string("A short CamelCase word for what happened, e.g. `Created`."),
        "message": _string("A human-readable description of what happened."),
        "source": _ref(CORE + "EventSource", "The component that reported the event.", default={}),
        "firstTimestamp": _time("When the event was first recorded."),
        "lastTimestamp": _time("When the event was most recently recorded."),
        "count": _int("How many times the event has happened."),
        "type": _string("`Normal` or `Warning`."),
        "eventTime": _micro_time("When the event first happened, with microsecond precision."),
        "series": _ref(CORE + "EventSeries", "Data about a recurring event."),
        "action": _string("What was done, or what failed, about the object."),
        "related": _ref(CORE + "ObjectReference", "A second object involved, if any."),
        "reportingComponent": _string("The controller that emitted the event, e.g. `kubelet`."),
        "reportingInstance": _string("The instance of that controller, e.g. a node name."),
    },
    required=("metadata", "involvedObject"),
)
_list_kind(CORE + "EventList", CORE + "Event", "events")

# Pod: the parts kubesvc runs (containers, ports, env, probes) in full, the rest open.
_define(
    CORE + "ContainerPort",
    "A network port a container listens on.",
    {
        "name": _string(
            "A name for the port (an IANA service name, unique in the pod) that services can"
            " use as their targetPort."
        ),
        "hostPort": _int("A port to open on the host for this container port. Rarely needed."),
        "containerPort": _int("The port number the container listens on, on the pod's IP."),
        "protocol": _string(
            "TCP (the default), UDP or SCTP.", enum=("SCTP", "TCP", "UDP"), default="TCP"
        ),
        "hostIP": _string("The host address to bind hostPort to."),
    },
    required=("containerPort",),
)
_define(
    CORE + "ObjectFieldSelector",
    "Selects a field of the pod.",
    {
        "apiVersion": _string("The version the fieldPath is written in; `v1` by default."),
        "fieldPath": _string(
            "The field, e.g. `metadata.name`, `metadata.namespace`, `status.podIP`,"
            " `spec.nodeName` or `metadata.labels['app']`."
        ),
    },
    required=("fieldPath",),
    x_kubernetes_map_type="atomic",
)
_define(
    CORE + "ResourceFieldSelector",
    "Selects a resource limit or request of a container.",
    {
        "containerName": _string("The container; required for volumes."),
        "resource": _string("The resource, e.g. `limits.cpu` or `requests.memory`.", default=""),
        "divisor": _ref(QUANTITY, "The unit the value is expressed in; 1 by default."),
    },
    required=("resource",),
    x_kubernetes_map_type="atomic",
)
for _source, _what in (("ConfigMap", "config map"), ("Secret", "secret")):
    _define(
        CORE + f"{_source}KeySelector",
        f"Selects one key of a {_what}.",
        {
            "name": _string(f"The name of the {_what}.", default=""),
            "key": _string("The key to read.", default=""),
            "optional": _bool(f"Whether a missing {_what} or key is acceptable."),
        },
        required=("key",),
        x_kubernetes_map_type="atomic",
    )
    _define(
        CORE + f"{_source}EnvSource",
        f"Makes every key of a {_what} an environment variable.",
        {
            "name": _string(f"The name of the {_what}.", default=""),
            "optional": _bool(f"Whether a missing {_what} is acceptable."),
        },
    )
_define(
    CORE + "EnvVarSource",
    "Where an environment variable's value comes from.",
    {
        "fieldRef": _ref(CORE + "ObjectFieldSelector", "A field of the pod."),
        "resourceFieldRef": _ref(
            CORE + "ResourceFieldSelector", "A resource limit or request of a container."
        ),
        "configMapKeyRef": _ref(CORE + "ConfigMapKeySelector", "A key of a config map."),
        "secretKeyRef": _ref(CORE + "SecretKeySelector", "A key of a secret."),
    },
)
_define(
    CORE + "EnvVar",
    "An environment variable of a container.",
    {
        "name": _string("The variable's name.", default=""),
        "value": _string(
            "The value. `$(OTHER)` expands to a variable defined earlier or by a service;"
            " `$$(OTHER)` escapes it. Empty by default."
        ),
        "valueFrom": _ref(CORE + "EnvVarSource", "Read the value from elsewhere instead."),
    },
    required=("name",),
)
_define(
    CORE + "EnvFromSource",
    "A source of many environment variables at once.",
    {
        "prefix": _string("A prefix added to every variable name."),
        "configMapRef": _ref(CORE + "ConfigMapEnvSource", "The config map to read."),
        "secretRef": _ref(CORE + "SecretEnvSource", "The secret to read."),
    },
)
_define(
    CORE + "ResourceRequirements",
    "Compute resources a container asks for and is limited to.",
    {
        "limits": _quantity_map("The most of each resource (cpu, memory, ...) it may use."),
        "requests": _quantity_map(
            "The amount of each resource it needs, used for scheduling; defaults to the limits."
        ),
        "claims": _list(
            _item(CORE + "ResourceClaim"),
            "Dynamically allocated resources (resource claims of the pod) this container uses.",
            list_type="map",
            map_keys=("name",),
        ),
    },
)
_define(
    CORE + "VolumeMount",
    "Where a volume appears in a container's filesystem.",
    {
        "name": _string("The volume, by its name in the pod's volumes.", default=""),
        "readOnly": _bool("Mount it read-only. False by default."),
        "recursiveReadOnly": _string("Whether sub-mounts are read-only too."),
        "mountPath": _string("The path inside the container; must not contain ':'.", default=""),
        "subPath": _string("Mount only this path inside the volume."),
        "mountPropagation": _string("How mounts propagate between host and container."),
        "subPathExpr": _string("Like subPath, with $(VAR) expanded from the environment."),
    },
    required=("name", "mountPath"),
)
_define(
    CORE + "ExecAction",
    "Run a command in the container.",
    {
        "command": _strings(
            "The command and its arguments, run directly (no shell). Exit status 0 means success."
        )
    },
)
_define(
    CORE + "HTTPHeader",
    "A header of an HTTP probe request.",
    {
        "name": _string("The header name.", default=""),
        "value": _string("The header value.", default=""),
    },
    required=("name", "value"),
)
_define(
    CORE + "HTTPGetAction",
    "Send an HTTP GET; a status from 200 to 399 means success.",
    {
        "path": _string("The request path; `/` by default."),
        "port": _ref(INT_OR_STRING, "The port, by number or by container port name."),
        "host": _string("The host to connect to; the pod IP by default."),
        "scheme": _string("`HTTP` (the default) or `HTTPS`.", enum=("HTTP", "HTTPS")),
        "httpHeaders": _list(_item(CORE + "HTTPHeader"), "Extra request headers."),
    },
    required=("port",),
)
_define(
    CORE + "TCPSocketAction",
    "Open a TCP connection; success when it is accepted.",
    {
        "port": _ref(INT_OR_STRING, "The port, by number or by container port name."),
        "host": _string("The host to connect to; the pod IP by default."),
    },
    required=("port",),
)
_define(
    CORE + "GRPCAction",
    "Call the gRPC health checking service.",
    {
        "port": _int("The port of the gRPC service."),
        "service": _string(
            "The service name to ask about; empty for the server as a whole.", default=""
        ),
    },
    required=("port",),
)
_define(
    CORE + "SleepAction",
    "Wait for a while.",
    {"seconds": _int("How many seconds to sleep.", bits=64)},
    required=("seconds",),
)
_PROBE_ACTIONS: dict[str, Schema] = {
    "exec": _ref(CORE + "ExecAction", "Check by running a command in the container."),
    "httpGet": _ref(CORE + "HTTPGetAction", "Check with an HTTP GET request."),
    "tcpSocket": _ref(CORE + "TCPSocketAction", "Check by opening a TCP connection."),
}
_define(
    CORE + "Probe",
    "A periodic health check of a container. Exactly one of exec, httpGet, tcpSocket and"
    " grpc says how to check.",
    {
        **_PROBE_ACTIONS,
        "grpc": _ref(CORE + "GRPCAction", "Check with a gRPC health check."),
        "initialDelaySeconds": _int("Seconds to wait after the container starts before probing."),
        "timeoutSeconds": _int(
            "Seconds after which a probe attempt counts as failed; 1 by default."
        ),
        "periodSeconds": _int("Seconds between probes; 10 by default."),
        "successThreshold": _int(
            "Consecutive successes needed to count as healthy after a failure; 1 by default"
            " (and must be 1 for liveness and startup probes)."
        ),
        "failureThreshold": _int(
            "Consecutive failures needed to count as unhealthy; 3 by default."
        ),
        "terminationGracePeriodSeconds": _int(
            "Grace period for a container killed because this probe failed.", bits=64
        ),
    },
)
_define(
    CORE + "LifecycleHandler",
    "An action run at a point of a container's life.",
    {
        **_PROBE_ACTIONS,
        "sleep": _ref(CORE + "SleepAction", "Just wait."),
    },
)
_define(
    CORE + "Lifecycle",
    "Actions run when a container starts and before it stops.",
    {
        "postStart": _ref(CORE + "LifecycleHandler", "Run right after the container starts."),
        "preStop": _ref(
            CORE + "LifecycleHandler",
            "Run before the container is stopped; the stop signal is sent once it finishes.",
        ),
        "stopSignal": _string("The signal that stops the container, e.g. `SIGTERM`."),
    },
)
_define(
    META + "LabelSelectorRequirement",
    "One requirement of a label selector.",
    {
        "key": _string("The label key.", default=""),
        "operator": _string("`In`, `NotIn`, `Exists` or `DoesNotExist`.", default=""),
        "values": _strings("The values for In and NotIn; empty for Exists and DoesNotExist."),
    },
    required=("key", "operator"),
)
_define(
    META + "LabelSelector",
    "Selects objects by label; all of its parts must match. An empty selector matches"
    " everything, a missing one nothing.",
    {
        "matchLabels": _string_map("Labels that must be present with exactly these values."),
        "matchExpressions": _list(
            _item(META + "LabelSelectorRequirement"), "Further requirements."
        ),
    },
    x_kubernetes_map_type="atomic",
)
_define(
    CORE + "NodeSelectorRequirement",
    "One requirement on a node's labels or fields.",
    {
        "key": _string("The label key or field name.", default=""),
        "operator": _string(
            "How the key relates to the values.",
            enum=("DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn"),
        ),
        "values": _strings("The values; one integer for Gt and Lt, none for (Does Not)Exist."),
    },
    required=("key", "operator"),
)
_define(
    CORE + "NodeSelectorTerm",
    "Requirements a node must all meet.",
    {
        "matchExpressions": _list(
            _item(CORE + "NodeSelectorRequirement"), "Requirements on node labels."
        ),
        "matchFields": _list(
            _item(CORE + "NodeSelectorRequirement"), "Requirements on node fields."
        ),
    },
    x_kubernetes_map_type="atomic",
)
_define(
    CORE + "NodeSelector",
    "Selects nodes: a node matches when it meets any one of the terms.",
    {"nodeSelectorTerms": _list(_item(CORE + "NodeSelectorTerm"), "The terms.")},
    required=("nodeSelectorTerms",),
    x_kubernetes_map_type="atomic",
)
_define(
    CORE + "PreferredSchedulingTerm",
    "A weighted node preference.",
    {
        "weight": _int("How much meeting the preference counts, 1-100."),
        "preference": _ref(CORE + "NodeSelectorTerm", "The preferred nodes.", default={}),
    },
    required=("weight", "preference"),
)
_define(
    CORE + "NodeAffinity",
    "Which nodes the pod may, or prefers to, run on.",
    {
        "requiredDuringSchedulingIgnoredDuringExecution": _ref(
            CORE + "NodeSelector", "Nodes the pod may only be placed on."
        ),
        "preferredDuringSchedulingIgnoredDuringExecution": _list(
            _item(CORE + "PreferredSchedulingTerm"), "Nodes the pod prefers, with weights."
        ),
    },
)
_define(
    CORE + "PodAffinityTerm",
    "A set of pods, in some namespaces, and the topology domain the rule applies within.",
    {
        "labelSelector": _ref(META + "LabelSelector", "Which pods."),
        "namespaces": _strings("The namespaces to look in; the pod's own by default."),
        "topologyKey": _string(
            "The node label that defines the domain, e.g. `kubernetes.io/hostname`.", default=""
        ),
        "namespaceSelector": _ref(META + "LabelSelector", "Namespaces to look in, by label."),
        "matchLabelKeys": _strings(
            "Label keys whose values, taken from this pod, are also matched."
        ),
        "mismatchLabelKeys": _strings("Label keys whose values, taken from this pod, must differ."),
    },
    required=("topologyKey",),
)
_define(
    CORE + "WeightedPodAffinityTerm",
    "A weighted pod (anti-)affinity preference.",
    {
        "weight": _int("How much meeting the preference counts, 1-100."),
        "podAffinityTerm": _ref(CORE + "PodAffinityTerm", "The preference.", default={}),
    },
    required=("weight", "podAffinityTerm"),
)
for _name, _verb in (("PodAffinity", "near"), ("PodAntiAffinity", "away from")):
    _define(
        CORE + _name,
        f"Rules that place the pod {_verb} other pods.",
        {
            "requiredDuringSchedulingIgnoredDuringExecution": _list(
                _item(CORE + "PodAffinityTerm"), "Rules that must hold when the pod is placed."
            ),
            "preferredDuringSchedulingIgnoredDuringExecution": _list(
                _item(CORE + "WeightedPodAffinityTerm"), "Preferences, with weights."
            ),
        },
    )
_define(
    CORE + "Affinity",
    "Scheduling constraints relative to nodes and to other pods.",
    {
        "nodeAffinity": _ref(CORE + "NodeAffinity", "Constraints on the node."),
        "podAffinity": _ref(CORE + "PodAffinity", "Run near these pods."),
        "podAntiAffinity": _ref(CORE + "PodAntiAffinity", "Run away from these pods."),
    },
)
_define(
    CORE + "TopologySpreadConstraint",
    "How evenly matching pods are spread over a topology.",
    {
        "maxSkew": _int("The largest allowed difference in matching pods between domains."),
        "topologyKey": _string("The node label that defines the domains.", default=""),
        "whenUnsatisfiable": _string(
            "What to do when the spread cannot be met.", enum=("DoNotSchedule", "ScheduleAnyway")
        ),
        "labelSelector": _ref(META + "LabelSelector", "Which pods are counted."),
        "minDomains": _int("The least number of eligible domains."),
        "nodeAffinityPolicy": _string("Whether node affinity limits the domains: Honor or Ignore."),
        "nodeTaintsPolicy": _string("Whether node taints limit the domains: Honor or Ignore."),
        "matchLabelKeys": _strings(
            "Label keys whose values, taken from this pod, are also matched."
        ),
    },
    required=("maxSkew", "topologyKey", "whenUnsatisfiable"),
)
_define(
    CORE + "SELinuxOptions",
    "An SELinux context.",
    {
        "user": _string("The SELinux user."),
        "role": _string("The SELinux role."),
        "type": _string("The SELinux type."),
        "level": _string("The SELinux level."),
    },
)
for _name, _what in (("SeccompProfile", "seccomp"), ("AppArmorProfile", "AppArmor")):
    _define(
        CORE + _name,
        f"The {_what} profile to apply.",
        {
            "type": _string("`RuntimeDefault`, `Unconfined` or `Localhost`.", default=""),
            "localhostProfile": _string("For Localhost: the profile on the node."),
        },
        required=("type",),
    )
_define(
    CORE + "WindowsSecurityContextOptions",
    "Windows-specific security settings.",
    {
        "gmsaCredentialSpecName": _string("The name of the GMSA credential spec to use."),
        "gmsaCredentialSpec": _string("The GMSA credential spec itself."),
        "runAsUserName": _string("The user to run as."),
        "hostProcess": _bool("Run as a host process container."),
    },
)
_define(
    CORE + "Sysctl",
    "A kernel parameter to set.",
    {
        "name": _string("The parameter.", default=""),
        "value": _string("The value.", default=""),
    },
    required=("name", "value"),
)
_define(
    CORE + "ContainerResizePolicy",
    "Whether resizing a resource restarts the container.",
    {
        "resourceName": _string("`cpu` or `memory`.", default=""),
        "restartPolicy": _string("`NotRequired` or `RestartContainer`.", default=""),
    },
    required=("resourceName", "restartPolicy"),
)
_define(
    CORE + "ResourceClaim",
    "A pod resource claim a container uses.",
    {
        "name": _string("The claim, by its name in the pod's resourceClaims.", default=""),
        "request": _string("One request of the claim, when not all of it."),
    },
    required=("name",),
)
_define(
    CORE + "PodResourceClaim",
    "A dynamically allocated resource of the pod.",
    {
        "name": _string("The claim's name within the pod.", default=""),
        "resourceClaimName": _string("An existing ResourceClaim to use."),
        "resourceClaimTemplateName": _string("A template from which a claim is made."),
    },
    required=("name",),
)
_define(
    CORE + "VolumeDevice",
    "A raw block device inside the container.",
    {
        "name": _string("The volume, by its name in the pod.", default=""),
        "devicePath": _string("The device path inside the container.", default=""),
    },
    required=("name", "devicePath"),
)
_define(
    CORE + "Capabilities",
    "Linux capabilities added to or dropped from a container.",
    {
        "add": _strings("Capabilities to add."),
        "drop": _strings("Capabilities to drop."),
    },
)
_define(
    CORE + "SecurityContext",
    "Security settings of one container; they override the pod's.",
    {
        "capabilities": _ref(CORE + "Capabilities", "Capabilities to add or drop."),
        "privileged": _bool("Run the container privileged, like root on the host."),
        "seLinuxOptions": _ref(CORE + "SELinuxOptions", "SELinux context to apply."),
        "windowsOptions": _ref(
            CORE + "WindowsSecurityContextOptions", "Windows-specific settings."
        ),
        "runAsUser": _int("The user id to run as.", bits=64),
        "runAsGroup": _int("The group id to run as.", bits=64),
        "runAsNonRoot": _bool("Refuse to start the container as root."),
        "readOnlyRootFilesystem": _bool("Mount the root filesystem read-only."),
        "allowPrivilegeEscalation": _bool(
            "Whether a process may gain more privileges than its parent."
        ),
        "procMount": _string("The kind of /proc mount to use."),
        "seccompProfile": _ref(CORE + "SeccompProfile", "The seccomp profile to apply."),
        "appArmorProfile": _ref(CORE + "AppArmorProfile", "The AppArmor profile to apply."),
    },
)
_CONTAINER_COMMON: dict[str, Schema] = {
    "name": _string("The container's name: a DNS label, unique in the pod.", default=""),
    "image": _string(
        "The container image. kubesvc runs containers as local processes from `command`, so"
        " the image is informational there."
    ),
    "command": _strings(
        "The program to run and its arguments (the image's entrypoint when left out)."
        " `$(VAR)` expands environment variables; no shell is involved."
    ),
    "args": _strings("Arguments to the command (the image's CMD when left out)."),
    "workingDir": _string("The working directory of the process."),
    "ports": _list(
        _item(CORE + "ContainerPort"),
        "The ports the container listens on. Listing them is informational, but a named port"
        " can be a service's targetPort.",
        list_type="map",
        map_keys=("containerPort", "protocol"),
        merge_key="containerPort",
        strategy="merge",
    ),
    "envFrom": _list(
        _item(CORE + "EnvFromSource"),
        "Sources of many environment variables at once; `env` wins on a clash.",
    ),
    "env": _list(
        _item(CORE + "EnvVar"),
        "Environment variables to set. Besides these, the process sees the pod's identity and"
        " the variables of the services in its namespace.",
        list_type="map",
        map_keys=("name",),
        merge_key="name",
        strategy="merge",
    ),
    "resources": _ref(
        CORE + "ResourceRequirements", "Compute resources requested and limits.", default={}
    ),
    "resizePolicy": _list(
        _item(CORE + "ContainerResizePolicy"), "How resources may be resized in place."
    ),
    "restartPolicy": _string(
        "For init containers only: `Always` makes it a sidecar that keeps running."
    ),
    "volumeMounts": _list(
        _item(CORE + "VolumeMount"),
        "Volumes to mount into the container's filesystem.",
        list_type="map",
        map_keys=("mountPath",),
        merge_key="mountPath",
        strategy="merge",
    ),
    "volumeDevices": _list(
        _item(CORE + "VolumeDevice"),
        "Block devices to expose to the container.",
        list_type="map",
        map_keys=("devicePath",),
        merge_key="devicePath",
        strategy="merge",
    ),
    "livenessProbe": _ref(
        CORE + "Probe", "Checks that the container is alive; it is restarted when this fails."
    ),
    "readinessProbe": _ref(
        CORE + "Probe",
        "Checks that the container can serve; until it succeeds the pod is left out of its"
        " services' endpoints.",
    ),
    "startupProbe": _ref(
        CORE + "Probe",
        "Checks that the container has started; the other probes wait until it succeeds.",
    ),
    "lifecycle": _ref(CORE + "Lifecycle", "Actions run after start and before stop."),
    "terminationMessagePath": _string(
        "A file whose content becomes the termination message; `/dev/termination-log` by default."
    ),
    "terminationMessagePolicy": _string(
        "`File` (the default) reads the message from terminationMessagePath only;"
        " `FallbackToLogsOnError` falls back to the end of the log.",
        enum=("FallbackToLogsOnError", "File"),
    ),
    "imagePullPolicy": _string(
        "When to pull the image: `Always`, `IfNotPresent` or `Never`. `Always` for `:latest`,"
        " `IfNotPresent` otherwise.",
        enum=("Always", "IfNotPresent", "Never"),
    ),
    "securityContext": _ref(CORE + "SecurityContext", "Security settings of this container."),
    "stdin": _bool("Keep a stdin buffer open for the container."),
    "stdinOnce": _bool("Close stdin after the first client detaches."),
    "tty": _bool("Allocate a terminal for the container."),
}
_define(
    CORE + "Container",
    "One process (container) of a pod.",
    dict(_CONTAINER_COMMON),
    required=("name",),
)
_define(
    CORE + "EphemeralContainer",
    "A temporary container added to a running pod, for debugging.",
    {
        **_CONTAINER_COMMON,
        "targetContainerName": _string(
            "A container of the pod whose namespaces (processes, ...) this one joins."
        ),
    },
    required=("name",),
)
_define(
    CORE + "Toleration",
    "Lets the pod run on nodes with a matching taint.",
    {
        "key": _string("The taint key; empty with operator Exists matches every taint."),
        "operator": _string(
            "`Equal` (the default) compares value; `Exists` matches any value.",
            enum=("Equal", "Exists"),
        ),
        "value": _string("The taint value to match."),
        "effect": _string(
            "The taint effect to match; empty matches all.",
            enum=("NoExecute", "NoSchedule", "PreferNoSchedule"),
        ),
        "tolerationSeconds": _int(
            "For NoExecute: how long the pod may stay after the taint appears.", bits=64
        ),
    },
)
_define(
    CORE + "HostAlias",
    "An extra line for the pod's /etc/hosts.",
    {
        "ip": _string("The IP address.", default=""),
        "hostnames": _strings("Names for the address."),
    },
    required=("ip",),
)
_define(
    CORE + "PodDNSConfigOption",
    "A resolver option.",
    {"name": _string("The option's name."), "value": _string("The option's value.")},
)
_define(
    CORE + "PodDNSConfig",
    "DNS settings merged into the ones dnsPolicy produces.",
    {
        "nameservers": _strings("Extra name server addresses."),
        "searches": _strings("Extra search domains."),
        "options": _list(_item(CORE + "PodDNSConfigOption"), "Extra resolver options."),
    },
)
_define(
    CORE + "PodReadinessGate",
    "An extra condition the pod must meet to be ready.",
    {"conditionType": _string("A condition type among the pod's conditions.", default="")},
    required=("conditionType",),
)
_define(
    CORE + "PodOS",
    "The operating system the pod needs.",
    {"name": _string("`linux` or `windows`.", default="")},
    required=("name",),
)
_define(
    CORE + "PodSchedulingGate",
    "A gate that holds the pod back from scheduling while present.",
    {"name": _string("The gate's name.", default="")},
    required=("name",),
)
_define(
    CORE + "PodSecurityContext",
    "Security settings for every container of the pod.",
    {
        "seLinuxOptions": _ref(CORE + "SELinuxOptions", "SELinux context to apply."),
        "windowsOptions": _ref(
            CORE + "WindowsSecurityContextOptions", "Windows-specific settings."
        ),
        "runAsUser": _int("The user id the processes run as.", bits=64),
        "runAsGroup": _int("The group id the processes run as.", bits=64),
        "runAsNonRoot": _bool("Refuse to start containers as root."),
        "supplementalGroups": _list(
            {"type": "integer", "format": "int64", "default": 0},
            "Extra group ids for the processes.",
        ),
        "supplementalGroupsPolicy": _string("How supplemental groups are computed."),
        "fsGroup": _int("A group that owns the pod's volumes.", bits=64),
        "sysctls": _list(_item(CORE + "Sysctl"), "Kernel parameters set for the pod."),
        "fsGroupChangePolicy": _string("When volume ownership is changed to fsGroup."),
        "seccompProfile": _ref(CORE + "SeccompProfile", "The seccomp profile to apply."),
        "appArmorProfile": _ref(CORE + "AppArmorProfile", "The AppArmor profile to apply."),
        "seLinuxChangePolicy": _string("How the SELinux label is applied to volumes."),
    },
)
_define(
    CORE + "KeyToPath",
    "Maps one key to a file in a volume.",
    {
        "key": _string("The key.", default=""),
        "path": _string("The relative file path to write it to.", default=""),
        "mode": _int("The file mode bits."),
    },
    required=("key", "path"),
)
_define(
    CORE + "EmptyDirVolumeSource",
    "A scratch directory that lives as long as the pod.",
    {
        "medium": _string("Where it is stored: empty for the node's disk, `Memory` for tmpfs."),
        "sizeLimit": _ref(QUANTITY, "The most it may hold."),
    },
)
_define(
    CORE + "HostPathVolumeSource",
    "A file or directory of the host.",
    {
        "path": _string("The path on the host.", default=""),
        "type": _string(
            "What must be at the path (`Directory`, `File`, `DirectoryOrCreate`, ...)."
        ),
    },
    required=("path",),
)
_define(
    CORE + "ConfigMapVolumeSource",
    "The keys of a config map as files.",
    {
        "name": _string("The config map's name.", default=""),
        "items": _list(
            _item(CORE + "KeyToPath"), "Which keys to write, and where; all by default."
        ),
        "defaultMode": _int("The mode bits of the files; 0644 by default."),
        "optional": _bool("Whether a missing config map is acceptable."),
    },
)
_define(
    CORE + "SecretVolumeSource",
    "The keys of a secret as files.",
    {
        "secretName": _string("The secret's name."),
        "items": _list(
            _item(CORE + "KeyToPath"), "Which keys to write, and where; all by default."
        ),
        "defaultMode": _int("The mode bits of the files; 0644 by default."),
        "optional": _bool("Whether a missing secret is acceptable."),
    },
)
_define(
    CORE + "PersistentVolumeClaimVolumeSource",
    "A persistent volume, through a claim in the pod's namespace.",
    {
        "claimName": _string("The claim's name.", default=""),
        "readOnly": _bool("Mount it read-only."),
    },
    required=("claimName",),
)
_define(
    CORE + "DownwardAPIVolumeFile",
    "A file holding a field of the pod.",
    {
        "path": _string("The relative file path.", default=""),
        "fieldRef": _ref(CORE + "ObjectFieldSelector", "A field of the pod."),
        "resourceFieldRef": _ref(CORE + "ResourceFieldSelector", "A resource of a container."),
        "mode": _int("The file's mode bits."),
    },
    required=("path",),
)
_define(
    CORE + "DownwardAPIVolumeSource",
    "Fields of the pod as files.",
    {
        "items": _list(_item(CORE + "DownwardAPIVolumeFile"), "The files."),
        "defaultMode": _int("The mode bits of the files; 0644 by default."),
    },
)
_define(
    CORE + "NFSVolumeSource",
    "An NFS export.",
    {
        "server": _string("The NFS server's address or name.", default=""),
        "path": _string("The exported path.", default=""),
        "readOnly": _bool("Mount it read-only."),
    },
    required=("server", "path"),
)
_define(
    CORE + "CSIVolumeSource",
    "A volume provided by a CSI driver for the pod's life.",
    {
        "driver": _string("The CSI driver's name.", default=""),
        "readOnly": _bool("Mount it read-only."),
        "fsType": _string("The filesystem type."),
        "volumeAttributes": _string_map("Driver-specific settings."),
        "nodePublishSecretRef": _ref(
            CORE + "LocalObjectReference", "A secret passed to the driver."
        ),
    },
    required=("driver",),
)
for _source, _what in (("ConfigMap", "config map"), ("Secret", "secret")):
    _define(
        CORE + f"{_source}Projection",
        f"The keys of a {_what} in a projected volume.",
        {
            "name": _string(f"The {_what}'s name.", default=""),
            "items": _list(_item(CORE + "KeyToPath"), "Which keys to write, and where."),
            "optional": _bool(f"Whether a missing {_what} is acceptable."),
        },
    )
_define(
    CORE + "DownwardAPIProjection",
    "Fields of the pod in a projected volume.",
    {"items": _list(_item(CORE + "DownwardAPIVolumeFile"), "The files.")},
)
_define(
    CORE + "ServiceAccountTokenProjection",
    "A service account token in a projected volume.",
    {
        "audience": _string("The audience the token is meant for."),
        "expirationSeconds": _int("How long the token is valid.", bits=64),
        "path": _string("The file path of the token.", default=""),
    },
    required=("path",),
)
_define(
    CORE + "VolumeProjection",
    "One source of a projected volume.",
    {
        "secret": _ref(CORE + "SecretProjection", "Keys of a secret."),
        "downwardAPI": _ref(CORE + "DownwardAPIProjection", "Fields of the pod."),
        "configMap": _ref(CORE + "ConfigMapProjection", "Keys of a config map."),
        "serviceAccountToken": _ref(
            CORE + "ServiceAccountTokenProjection", "A service account token."
        ),
        "clusterTrustBundle": _open("Certificates of a cluster trust bundle."),
    },
)
_define(
    CORE + "ProjectedVolumeSource",
    "Several sources merged into one directory.",
    {
        "sources": _list(_item(CORE + "VolumeProjection"), "The sources."),
        "defaultMode": _int("The mode bits of the files; 0644 by default."),
    },
)
_OTHER_VOLUME_SOURCES = (
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "image",
    "iscsi",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
)
_define(
    CORE + "Volume",
    "A named volume the pod's containers can mount. Exactly one source is set.",
    {
        "name": _string("The volume's name: a DNS label, unique in the pod.", default=""),
        "emptyDir": _ref(CORE + "EmptyDirVolumeSource", "A scratch directory for the pod's life."),
        "hostPath": _ref(CORE + "HostPathVolumeSource", "A path of the host."),
        "configMap": _ref(CORE + "ConfigMapVolumeSource", "The keys of a config map."),
        "secret": _ref(CORE + "SecretVolumeSource", "The keys of a secret."),
        "persistentVolumeClaim": _ref(
            CORE + "PersistentVolumeClaimVolumeSource", "A persistent volume claim."
        ),
        "downwardAPI": _ref(CORE + "DownwardAPIVolumeSource", "Fields of the pod as files."),
        "projected": _ref(CORE + "ProjectedVolumeSource", "Several sources in one directory."),
        "nfs": _ref(CORE + "NFSVolumeSource", "An NFS export."),
        "csi": _ref(CORE + "CSIVolumeSource", "A volume from a CSI driver."),
        **{
            source: _open(f"A `{source}` volume; kubesvc passes it through without using it.")
            for source in _OTHER_VOLUME_SOURCES
        },
    },
    required=("name",),
)
_define(
    CORE + "PodSpec",
    "What a pod runs and how.",
    {
        "volumes": _list(
            _item(CORE + "Volume"),
            "Volumes the containers can mount.",
            list_type="map",
            map_keys=("name",),
            merge_key="name",
            strategy="merge,retainKeys",
        ),
        "initContainers": _list(
            _item(CORE + "Container"),
            "Containers run one after another, each to completion, before the main containers"
            " start (sidecars, with restartPolicy Always, keep running).",
            list_type="map",
            map_keys=("name",),
            merge_key="name",
            strategy="merge",
        ),
        "containers": _list(
            _item(CORE + "Container"),
            "The pod's containers; at least one. kubesvc runs each one's command as a local"
            " process.",
            list_type="map",
            map_keys=("name",),
            merge_key="name",
            strategy="merge",
        ),
        "ephemeralContainers": _list(
            _item(CORE + "EphemeralContainer"),
            "Temporary debugging containers added to a running pod.",
            list_type="map",
            map_keys=("name",),
            merge_key="name",
            strategy="merge",
        ),
        "restartPolicy": _string(
            "When containers are restarted after they exit: `Always` (the default), `OnFailure`"
            " or `Never`.",
            enum=("Always", "Never", "OnFailure"),
        ),
        "terminationGracePeriodSeconds": _int(
            "Seconds between the stop signal and a forced kill; 30 by default.", bits=64
        ),
        "activeDeadlineSeconds": _int(
            "Seconds the pod may run before it is stopped and marked failed.", bits=64
        ),
        "dnsPolicy": _string(
            "How the pod's DNS is set up: `ClusterFirst` (the default) resolves cluster names"
            " first, `ClusterFirstWithHostNet` does the same for host-network pods, `Default`"
            " uses the node's resolver, `None` only uses dnsConfig.",
            enum=("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"),
        ),
        "nodeSelector": _string_map(
            "Labels a node must have for the pod to run there.", atomic=True
        ),
        "serviceAccountName": _string("The service account the pod runs as."),
        "serviceAccount": _string("Deprecated alias of serviceAccountName."),
        "automountServiceAccountToken": _bool(
            "Whether the service account's token is mounted into the pod."
        ),
        "nodeName": _string("The node the pod runs on; set by the scheduler or by you."),
        "hostNetwork": _bool("Use the node's network namespace instead of one of the pod's own."),
        "hostPID": _bool("Use the node's process id namespace."),
        "hostIPC": _bool("Use the node's IPC namespace."),
        "shareProcessNamespace": _bool("Let the pod's containers see each other's processes."),
        "securityContext": _ref(
            CORE + "PodSecurityContext", "Security settings for all containers.", default={}
        ),
        "imagePullSecrets": _list(
            _item(CORE + "LocalObjectReference"),
            "Secrets with credentials for pulling the images.",
            list_type="map",
            map_keys=("name",),
            merge_key="name",
            strategy="merge",
        ),
        "hostname": _string("The pod's hostname; the pod's name by default."),
        "subdomain": _string(
            "With a headless service of this name in the namespace, the pod gets the DNS name"
            " `<hostname>.<subdomain>.<namespace>.svc.<cluster-domain>`."
        ),
        "affinity": _ref(
            CORE + "Affinity", "Rules for which nodes, and next to which pods, the pod may run."
        ),
        "schedulerName": _string("The scheduler that places the pod; `default-scheduler`."),
        "tolerations": _list(_item(CORE + "Toleration"), "Taints the pod tolerates.", list_type=""),
        "hostAliases": _list(
            _item(CORE + "HostAlias"),
            "Extra /etc/hosts entries.",
            list_type="map",
            map_keys=("ip",),
            merge_key="ip",
            strategy="merge",
        ),
        "priorityClassName": _string("The priority class of the pod."),
        "priority": _int("The pod's priority, resolved from priorityClassName."),
        "dnsConfig": _ref(CORE + "PodDNSConfig", "Extra DNS settings."),
        "readinessGates": _list(
            _item(CORE + "PodReadinessGate"),
            "Extra conditions that must be true for the pod to count as ready.",
        ),
        "runtimeClassName": _string("The runtime class to run the pod with."),
        "enableServiceLinks": _bool(
            "Whether the services of the namespace are passed to the containers as environment"
            " variables (`<NAME>_SERVICE_HOST`, ...). True by default."
        ),
        "preemptionPolicy": _string("Whether the pod may preempt lower-priority pods."),
        "overhead": _quantity_map("Resources the pod's sandbox uses on top of its containers."),
        "topologySpreadConstraints": _list(
            _item(CORE + "TopologySpreadConstraint"),
            "How the pod is spread with its peers across zones, nodes and the like.",
            list_type="map",
            map_keys=("topologyKey", "whenUnsatisfiable"),
            merge_key="topologyKey",
            strategy="merge",
        ),
        "setHostnameAsFQDN": _bool("Use the fully qualified domain name as the hostname."),
        "os": _ref(CORE + "PodOS", "The operating system the pod needs."),
        "hostUsers": _bool("Whether the pod shares the host's user namespace."),
        "schedulingGates": _list(
            _item(CORE + "PodSchedulingGate"),
            "Gates that keep the pod from being scheduled while present.",
            list_type="map",
            map_keys=("name",),
            merge_key="name",
            strategy="merge",
        ),
        "resourceClaims": _list(
            _item(CORE + "PodResourceClaim"),
            "Dynamically allocated resources the pod uses.",
            list_type="map",
            map_keys=("name",),
            merge_key="name",
            strategy="merge,retainKeys",
        ),
        "resources": _ref(CORE + "ResourceRequirements", "Resources for the pod as a whole."),
    },
    required=("containers",),
)
_define(
    CORE + "PodCondition",
    "One aspect of a pod's state.",
    {
        "type": _string(
            "The condition, e.g. `PodScheduled`, `Initialized`, `ContainersReady`, `Ready`.",
            default="",
        ),
        "observedGeneration": _int("The metadata.generation it was computed from.", bits=64),
        "status": _string("`True`, `False` or `Unknown`.", default=""),
        "lastProbeTime": _time("When it was last checked."),
        "lastTransitionTime": _time("When the status last changed."),
        "reason": _string("A CamelCase word for the last transition."),
        "message": _string("A human-readable account of the last transition."),
    },
    required=("type", "status"),
)
_define(
    CORE + "PodIP",
    "One IP address of a pod.",
    {"ip": _string("The address.", default="")},
    required=("ip",),
)
_define(
    CORE + "HostIP",
    "One IP address of a pod's node.",
    {"ip": _string("The address.", default="")},
    required=("ip",),
)
_define(
    CORE + "ContainerStateWaiting",
    "A container that has not started (yet).",
    {
        "reason": _string("Why it is waiting, e.g. `ContainerCreating` or `CrashLoopBackOff`."),
        "message": _string("More about why it is waiting."),
    },
)
_define(
    CORE + "ContainerStateRunning",
    "A running container.",
    {"startedAt": _time("When it last (re)started.")},
)
_define(
    CORE + "ContainerStateTerminated",
    "A container that has exited.",
    {
        "exitCode": _int("The process's exit status."),
        "signal": _int("The signal that ended it, if any."),
        "reason": _string("Why it ended, e.g. `Completed` or `Error`."),
        "message": _string("More about why it ended."),
        "startedAt": _time("When it started."),
        "finishedAt": _time("When it ended."),
        "containerID": _string("The id of the container that ended."),
    },
    required=("exitCode",),
)
_define(
    CORE + "ContainerState",
    "What a container is doing; exactly one member is set.",
    {
        "waiting": _ref(CORE + "ContainerStateWaiting", "Details of a waiting container."),
        "running": _ref(CORE + "ContainerStateRunning", "Details of a running container."),
        "terminated": _ref(CORE + "ContainerStateTerminated", "Details of an exited container."),
    },
)
_define(
    CORE + "ContainerStatus",
    "The state of one container of a pod.",
    {
        "name": _string("The container's name.", default=""),
        "state": _ref(CORE + "ContainerState", "What it is doing now.", default={}),
        "lastState": _ref(CORE + "ContainerState", "How its previous run ended.", default={}),
        "ready": _bool("Whether it passes its readiness probe.", default=False),
        "restartCount": _int("How many times it was restarted.", default=0),
        "image": _string("The image it runs.", default=""),
        "imageID": _string("The id of the image it runs.", default=""),
        "containerID": _string("The container's id, as `<runtime>://<id>`."),
        "started": _bool("Whether it has passed its startup probe."),
        "allocatedResources": _quantity_map("The resources allocated to it."),
        "resources": _ref(CORE + "ResourceRequirements", "The resources it is configured with."),
        "volumeMounts": _open_list("The state of its volume mounts."),
        "user": _open("The identity its process runs as."),
        "allocatedResourcesStatus": _open_list("The health of its allocated resources."),
        "stopSignal": _string("The signal that will stop it."),
    },
    required=("name", "ready", "restartCount", "image", "imageID"),
)
_define(
    CORE + "PodStatus",
    "The observed state of a pod.",
    {
        "observedGeneration": _int("The metadata.generation this status reflects.", bits=64),
        "phase": _string(
            "Where the pod is in its life: `Pending`, `Running`, `Succeeded`, `Failed` or"
            " `Unknown`.",
            enum=("Failed", "Pending", "Running", "Succeeded", "Unknown"),
        ),
        "conditions": _list(
            _item(CORE + "PodCondition"),
            "The pod's current conditions; `Ready` decides whether it receives service traffic.",
            list_type="map",
            map_keys=("type",),
            merge_key="type",
            strategy="merge",
        ),
        "message": _string("A human-readable note on why the pod is in its state."),
        "reason": _string("A CamelCase word for why the pod is in its state, e.g. `Evicted`."),
        "nominatedNodeName": _string("The node the pod is expected to run on after preemption."),
        "hostIP": _string("The IP address of the pod's node."),
        "hostIPs": _list(
            _item(CORE + "HostIP"),
            "The IP addresses of the pod's node.",
            merge_key="ip",
            strategy="merge",
        ),
        "podIP": _string("The pod's IP address; empty until one is assigned."),
        "podIPs": _list(
            _item(CORE + "PodIP"),
            "The pod's IP addresses, at most one per family; the first equals podIP.",
            list_type="map",
            map_keys=("ip",),
            merge_key="ip",
            strategy="merge",
        ),
        "startTime": _time("When the node accepted the pod."),
        "initContainerStatuses": _list(
            _item(CORE + "ContainerStatus"), "The state of each init container."
        ),
        "containerStatuses": _list(_item(CORE + "ContainerStatus"), "The state of each container."),
        "qosClass": _string(
            "The quality of service class from the resource settings.",
            enum=("BestEffort", "Burstable", "Guaranteed"),
        ),
        "ephemeralContainerStatuses": _list(
            _item(CORE + "ContainerStatus"), "The state of each ephemeral container."
        ),
        "resize": _string("The state of an in-place resource resize."),
        "resourceClaimStatuses": _open_list(
            "The state of the pod's resource claims.",
            list_type="map",
            map_keys=("name",),
            merge_key="name",
            strategy="merge,retainKeys",
        ),
    },
)
_define(
    CORE + "Pod",
    "A pod is one or more containers that run together on one node and share one IP address."
    " Services send their traffic to the ready pods their selector matches. kubesvc's node"
    " agent runs each container's command as a local process.",
    {
        **_type_meta(),
        "metadata": _metadata(),
        "spec": _ref(CORE + "PodSpec", "What the pod runs and how.", default={}),
        "status": _ref(
            CORE + "PodStatus", "The pod's observed state, kept by the node. Read-only.", default={}
        ),
    },
)
_list_kind(CORE + "PodList", CORE + "Pod", "pods")


# -------------------------------------------------------- discovery/v1

_define(
    DISC + "EndpointConditions",
    "The state of an endpoint.",
    {
        "ready": _bool(
            "Whether the endpoint should receive traffic: it is serving and not terminating."
            " Unknown (unset) counts as ready."
        ),
        "serving": _bool(
            "Whether the endpoint passes its readiness checks, even while it is terminating."
        ),
        "terminating": _bool("Whether the endpoint is shutting down."),
    },
)
_define(
    DISC + "ForZone",
    "A zone an endpoint should serve.",
    {"name": _string("The zone's name.", default="")},
    required=("name",),
)
_define(
    DISC + "ForNode",
    "A node an endpoint should serve.",
    {"name": _string("The node's name.", default="")},
    required=("name",),
)
_define(
    DISC + "EndpointHints",
    "Hints to proxies about which clients an endpoint should serve.",
    {
        "forZones": _list(_item(DISC + "ForZone"), "Zones whose clients should use this endpoint."),
        "forNodes": _list(_item(DISC + "ForNode"), "Nodes whose clients should use this endpoint."),
    },
)
_define(
    DISC + "Endpoint",
    "One endpoint of a slice: usually one pod.",
    {
        "addresses": _strings(
            "The endpoint's addresses, all of the slice's addressType. Proxies use the first;"
            " at least one is required.",
            list_type="set",
        ),
        "conditions": _ref(DISC + "EndpointConditions", "The endpoint's state.", default={}),
        "hostname": _string("The endpoint's hostname, published in DNS for headless services."),
        "targetRef": _ref(CORE + "ObjectReference", "The object (usually a pod) behind it."),
        "deprecatedTopology": _string_map("Deprecated topology labels; use nodeName and zone."),
        "nodeName": _string("The node hosting the endpoint."),
        "zone": _string("The zone the endpoint is in."),
        "hints": _ref(DISC + "EndpointHints", "Hints for topology-aware routing."),
    },
    required=("addresses",),
)
_define(
    DISC + "EndpointPort",
    "A port every endpoint of a slice serves.",
    {
        "name": _string(
            "The port's name; must match the name of the service port it serves (empty for an"
            " unnamed one)."
        ),
        "protocol": _string("TCP (the default), UDP or SCTP.", enum=("SCTP", "TCP", "UDP")),
        "port": _int("The port number; unset means all ports."),
        "appProtocol": _string("The application protocol spoken on this port."),
    },
    x_kubernetes_map_type="atomic",
)
_define(
    DISC + "EndpointSlice",
    "A slice of the endpoints behind a service: up to 100 endpoints of one address type and"
    " the ports they serve. The `kubernetes.io/service-name` label names the service."
    " Kept up to date for services with a selector.",
    {
        **_type_meta(),
        "metadata": _metadata(),
        "addressType": _string(
            "The kind of addresses in the slice: `IPv4`, `IPv6` or `FQDN`. Cannot change.",
            enum=("FQDN", "IPv4", "IPv6"),
        ),
        "endpoints": _list(_item(DISC + "Endpoint"), "The endpoints, at most 1000."),
        "ports": _list(
            _item(DISC + "EndpointPort"),
            "The ports each endpoint serves; empty means none are defined, and at most 100.",
        ),
    },
    required=("addressType", "endpoints"),
)
_list_kind(DISC + "EndpointSliceList", DISC + "EndpointSlice", "endpoint slices")


# ----------------------------------------------------- kinds and tagging

_PACKAGE_BY_GROUP = {"": CORE, "discovery.k8s.io": DISC}


def schema_name(kind: str, group: str = "") -> str:
    """The components.schemas name of a kind, e.g. `io.k8s.api.core.v1.Service`."""
    return _PACKAGE_BY_GROUP[group] + kind


def _tag_kinds() -> None:
    for r in RESOURCES:
        for kind in (r.kind, r.list_kind):
            SCHEMAS[schema_name(kind, r.group)]["x-kubernetes-group-version-kind"] = [
                {"group": r.group, "kind": kind, "version": r.version}
            ]
    SCHEMAS[META + "DeleteOptions"]["x-kubernetes-group-version-kind"] = [
        {"group": gv.rpartition("/")[0], "kind": "DeleteOptions", "version": gv.rpartition("/")[2]}
        for gv in group_versions()
    ]


_tag_kinds()


# ---------------------------------------------------------------- paths

_QUERY_PARAMS: dict[str, Schema] = {
    "pretty": _string("If 'true', the output is pretty printed."),
    "dryRun": _string(
        "When `All`, the request is checked and answered but nothing is persisted. No other"
        " value is accepted."
    ),
    "fieldManager": _string(
        "The name of the actor making the change, recorded in managedFields; at most 128"
        " printable characters."
    ),
    "fieldValidation": _string(
        "What to do with fields the schema does not know, and duplicate fields: `Ignore` drops"
        " them silently, `Warn` (the default) drops them and says so in a `Warning` header,"
        " `Strict` fails the request with 400 Bad Request."
    ),
    "force": _string(
        "For apply requests only: take ownership of fields other managers hold instead of"
        " failing with a conflict."
    ),
    "gracePeriodSeconds": _int("Seconds to give the object before it is removed.", bits=64),
    "orphanDependents": _bool("Deprecated, use propagationPolicy."),
    "propagationPolicy": _string("`Orphan`, `Background` or `Foreground` deletion of dependents."),
    "labelSelector": _string("Only return objects whose labels match this selector."),
    "fieldSelector": _string("Only return objects whose fields match this selector."),
    "limit": _int("Return at most this many objects, and a continue token for the rest."),
    "continue": _string("The continue token of the previous page."),
    "resourceVersion": _string("Read at, or watch from, this version."),
    "resourceVersionMatch": _string("How resourceVersion applies to a list."),
    "timeoutSeconds": _int("End the list or watch after this many seconds."),
    "watch": _bool("Stream changes instead of listing."),
    "allowWatchBookmarks": _bool("Let the watch send BOOKMARK events."),
    "sendInitialEvents": _bool("Start a watch with the current objects as ADDED events."),
}
_LIST_PARAMS = (
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
)
_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
_DELETE_PARAMS = ("dryRun", "gracePeriodSeconds", "orphanDependents", "propagationPolicy")
PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def _query(*names: str) -> list[Schema]:
    params = []
    for name in names:
        schema = {k: v for k, v in _QUERY_PARAMS[name].items() if k != "description"}
        params.append(
            {
                "name": name,
                "in": "query",
                "description": _QUERY_PARAMS[name]["description"],
                "schema": schema,
            }
        )
    return params


def _path_param(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "description": description,
        "required": True,
        "schema": {"type": "string", "uniqueItems": True},
    }


def _json_content(schema_ref: str) -> dict[str, Schema]:
    return {"application/json": {"schema": {"$ref": REF_PREFIX + schema_ref}}}


def _respond(schema_ref: str, *codes: str) -> dict[str, Schema]:
    text = {"200": "OK", "201": "Created", "202": "Accepted"}
    return {
        code: {"description": text[code], "content": _json_content(schema_ref)} for code in codes
    }


def _operation_prefix(r: Resource) -> str:
    """`CoreV1`, `DiscoveryV1`: the middle of Kubernetes' operation ids."""
    group = r.group.split(".")[0] if r.group else "core"
    return group[:1].upper() + group[1:] + r.version[:1].upper() + r.version[1:]


def _tag(r: Resource) -> list[str]:
    return [f"{r.group.split('.')[0] if r.group else 'core'}_{r.version}"]


def _operations(r: Resource, subresource: str = "") -> tuple[dict[str, Schema], dict[str, Schema]]:
    """(collection path item, object path item) operations of one resource or subresource."""
    prefix = _operation_prefix(r)
    scope = "Namespaced" if r.namespaced else ""
    suffix = subresource[:1].upper() + subresource[1:]
    kind_ref = schema_name(r.kind, r.group)
    gvk = {"group": r.group, "kind": r.kind, "version": r.version}

    def op(action: str, verb: str, description: str, **rest: Any) -> Schema:
        operation = {
            "operationId": f"{verb}{prefix}{scope}{r.kind}{suffix}",
            "description": description,
            "tags": _tag(r),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        }
        operation.update(rest)
        return operation

    what = (
        f"the {subresource} of the specified {r.kind}" if subresource else f"the specified {r.kind}"
    )
    item = {
        "get": op("get", "read", f"read {what}", responses=_respond(kind_ref, "200")),
        "put": op(
            "put",
            "replace",
            f"replace {what}",
            parameters=_query(*_WRITE_PARAMS),
            requestBody={
                "content": {"*/*": {"schema": {"$ref": REF_PREFIX + kind_ref}}},
                "required": True,
            },
            responses=_respond(kind_ref, "200", "201"),
        ),
        # kubectl looks for `fieldValidation` here to decide on server-side validation, and
        # for the strategic merge patch type to decide how `apply` computes its patch.
        "patch": op(
            "patch",
            "patch",
            f"partially update {what}",
            parameters=_query(*_WRITE_PARAMS, "force"),
            requestBody={
                "content": {
                    t: {"schema": {"$ref": REF_PREFIX + META + "Patch"}} for t in PATCH_TYPES
                },
                "required": True,
            },
            responses=_respond(kind_ref, "200", "201"),
        ),
    }
    if subresource:
        return {}, item
    item["delete"] = op(
        "delete",
        "delete",
        f"delete {what}",
        parameters=_query(*_DELETE_PARAMS),
        requestBody={"content": {"*/*": {"schema": {"$ref": REF_PREFIX + META + "DeleteOptions"}}}},
        responses={
            **_respond(kind_ref, "200"),
            "202": {"description": "Accepted", "content": _json_content(kind_ref)},
        },
    )
    list_ref = schema_name(r.list_kind, r.group)
    collection = {
        "get": op(
            "list",
            "list",
            f"list or watch objects of kind {r.kind}",
            parameters=_query(*_LIST_PARAMS),
            responses=_respond(list_ref, "200"),
        ),
        "post": op(
            "post",
            "create",
            f"create a {r.kind}",
            parameters=_query(*_WRITE_PARAMS),
            requestBody={
                "content": {"*/*": {"schema": {"$ref": REF_PREFIX + kind_ref}}},
                "required": True,
            },
            responses=_respond(kind_ref, "200", "201", "202"),
        ),
        "delete": op(
            "deletecollection",
            "delete",
            f"delete a collection of {r.kind}",
            operationId=f"delete{prefix}Collection{scope}{r.kind}",  # Kubernetes' spelling
            parameters=_query(*_DELETE_PARAMS, *_LIST_PARAMS),
            requestBody={
                "content": {"*/*": {"schema": {"$ref": REF_PREFIX + META + "DeleteOptions"}}}
            },
            responses=_respond(META + "Status", "200"),
        ),
    }
    return collection, item


def _paths(group_version: str) -> dict[str, Schema]:
    base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    pretty = _query("pretty")
    paths: dict[str, Schema] = {}
    for r in resources_of(group_version):
        ns_param = [_path_param("namespace", "The object's namespace.")] if r.namespaced else []
        name_param = [_path_param("name", f"The name of the {r.kind}.")]
        collection_path = (
            f"{base}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{base}/{r.plural}"
        )
        collection, item = _operations(r)
        paths[collection_path] = {**collection, "parameters": ns_param + pretty}
        paths[f"{collection_path}/{{name}}"] = {
            **item,
            "parameters": name_param + ns_param + pretty,
        }
        for sub in r.subresources:
            _, sub_item = _operations(r, sub)
            paths[f"{collection_path}/{{name}}/{sub}"] = {
                **sub_item,
                "parameters": name_param + ns_param + pretty,
            }
        if r.namespaced:
            prefix = _operation_prefix(r)
            paths[f"{base}/{r.plural}"] = {
                "get": {
                    "operationId": f"list{prefix}{r.kind}ForAllNamespaces",
                    "description": f"list or watch objects of kind {r.kind} in every namespace",
                    "tags": _tag(r),
                    "x-kubernetes-action": "list",
                    "x-kubernetes-group-version-kind": {
                        "group": r.group,
                        "kind": r.kind,
                        "version": r.version,
                    },
                    "parameters": _query(*_LIST_PARAMS),
                    "responses": _respond(schema_name(r.list_kind, r.group), "200"),
                },
                "parameters": pretty,
            }
    return paths


# ------------------------------------------------------------ documents

_REF = re.compile(r'"\$ref":\s*"#/components/schemas/([^"]+)"')


def _closure(roots: list[str]) -> dict[str, Schema]:
    """The named schemas and every schema they reference, transitively."""
    todo = list(roots)
    out: dict[str, Schema] = {}
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out[name] = SCHEMAS[name]
        todo.extend(_REF.findall(json.dumps(out[name])))
    return out


def _normalise(group_version: str) -> str:
    gv = group_version.strip("/")
    gv = gv.removeprefix("openapi/v3/").removeprefix("api/").removeprefix("apis/")
    if gv not in group_versions():
        raise errors.StatusError(404, "the server could not find the requested resource")
    return gv


@functools.cache
def _document(group_version: str) -> bytes:
    paths = _paths(group_version)
    roots = [META + "Status", META + "DeleteOptions", META + "Patch"]
    for r in resources_of(group_version):
        roots += [schema_name(r.kind, r.group), schema_name(r.list_kind, r.group)]
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-kubesvc"},
        "paths": paths,
        "components": {"schemas": _closure(roots)},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def openapi_v3_document(group_version: str) -> bytes:
    """The OpenAPI v3 document of one group/version (`v1`, `discovery.k8s.io/v1`).

    Also accepts the path forms `api/v1` and `apis/discovery.k8s.io/v1`. Send it as
    `application/json` with `ETag: "<document_hash>"`; 404 StatusError for an
    unknown group/version.
    """
    return _document(_normalise(group_version))


def document_hash(group_version: str) -> str:
    """The content hash of `openapi_v3_document(group_version)`: its `?hash=` and ETag.

    Answer 304 when `If-None-Match` carries it; a request whose `?hash=` matches
    may be cached forever (`Cache-Control: public, immutable`).
    """
    return hashlib.sha256(openapi_v3_document(group_version)).hexdigest().upper()


def openapi_v3_root() -> dict[str, Any]:
    """`GET /openapi/v3`: each group/version document's URL, with its hash."""
    paths: dict[str, Any] = {}
    for gv in group_versions():
        key = "api/v1" if gv == "v1" else f"apis/{gv}"
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={document_hash(gv)}"}
    return {"paths": paths}


# ---------------------------------------------------- field validation


def known_fields(kind: str) -> Schema:
    """The schema of a served kind (e.g. "Service"), references left in place.

    Resolve `$ref`s against `SCHEMAS`. KeyError for a kind kubesvc does not serve.
    """
    for r in RESOURCES:
        for name in (r.kind, r.list_kind):
            if name == kind:
                return SCHEMAS[schema_name(kind, r.group)]
    raise KeyError(kind)


def _resolve(schema: Schema) -> Schema:
    while True:
        if "allOf" in schema:
            schema = schema["allOf"][0]
        elif "$ref" in schema:
            schema = SCHEMAS[schema["$ref"].removeprefix(REF_PREFIX)]
        else:
            return schema


def _walk(value: Any, schema: Schema, path: str, found: list[str], prune: bool) -> None:
    schema = _resolve(schema)
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        if props is not None:
            for key in list(value):
                sub = f"{path}.{key}" if path else key
                if key in props:
                    _walk(value[key], props[key], sub, found, prune)
                else:
                    found.append(sub)
                    if prune:
                        del value[key]
        elif isinstance(schema.get("additionalProperties"), dict):
            for key, item in value.items():
                _walk(item, schema["additionalProperties"], f"{path}.{key}", found, prune)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _walk(item, schema["items"], f"{path}[{i}]", found, prune)
    # Scalars, int-or-string and quantities have nothing below them; a value of the wrong
    # type is validation's business, not an unknown field.


def unknown_fields(obj: Any, kind: str) -> list[str]:
    """Paths of the fields of `obj` its kind's schema does not know, e.g. `spec.foo`.

    List items show as `spec.ports[0].foo`; map values (labels, selector) are
    never unknown; open objects (`x-kubernetes-preserve-unknown-fields`) are
    not looked into. An unknown kind has no unknown fields. `obj` is not changed.
    """
    try:
        schema = known_fields(kind)
    except KeyError:
        return []
    found: list[str] = []
    _walk(obj, schema, "", found, prune=False)
    return found


def prune_unknown_fields(obj: Any, kind: str) -> list[str]:
    """Like `unknown_fields`, but also deletes those fields from `obj` in place.

    Kubernetes decodes into typed structs, so fields it does not know are
    dropped, never stored; this does the same to a wire-shaped dict.
    """
    try:
        schema = known_fields(kind)
    except KeyError:
        return []
    found: list[str] = []
    _walk(obj, schema, "", found, prune=True)
    return found


def validate_fields(obj: Any, kind: str, directive: str | None) -> list[str]:
    """Apply a `fieldValidation` query value to a decoded request body.

    Drops unknown fields from `obj` in place and returns the `Warning` header
    texts to send (`unknown field "spec.foo"`) for `Warn`, the default;
    returns nothing for `Ignore`; raises a 400 StatusError
    (`strict decoding error: unknown field "spec.foo", ...`) for `Strict`.
    Any other value is a 400 as well.
    """
    mode = directive or "Warn"
    if mode not in ("Ignore", "Warn", "Strict"):
        raise errors.bad_request(
            f'fieldValidation: Unsupported value: "{mode}": supported values:'
            ' "Ignore", "Strict", "Warn"'
        )
    if mode == "Strict":
        found = unknown_fields(obj, kind)
        if found:
            raise errors.bad_request(
                "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in found)
            )
        return []
    found = prune_unknown_fields(obj, kind)
    return [] if mode == "Ignore" else [f'unknown field "{p}"' for p in found]


# ------------------------------------------------------------ OpenAPI v2
# kubectl 1.27 and 1.28 fetch /openapi/v2 before `explain` does anything (and
# then print from v3); a 404 there fails the command. They only take
# gnostic's protobuf encoding (github.com/google/gnostic openapiv2), so the
# v2 document is the same schemas, converted and encoded here: definitions
# only, no paths, which is all kubectl reads from it.

OPENAPI_V2_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_V2_REF_PREFIX = "#/definitions/"
_WIRE_VARINT, _WIRE_LENGTH = 0, 2


def _pb_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _pb_bytes(number: int, payload: bytes) -> bytes:
    return _pb_varint(number << 3 | _WIRE_LENGTH) + _pb_varint(len(payload)) + payload


def _pb_str(number: int, text: str) -> bytes:
    return _pb_bytes(number, text.encode())


def _pb_any(number: int, value: Any) -> bytes:
    # gnostic's Any{2: yaml}; JSON text is valid YAML.
    return _pb_bytes(number, _pb_str(2, json.dumps(value, sort_keys=True)))


def _v2_schema(schema: Schema) -> bytes:
    """One schema as gnostic's openapi_v2.Schema message."""
    parts: list[bytes] = []
    if "allOf" in schema or "$ref" in schema:
        ref = schema["allOf"][0]["$ref"] if "allOf" in schema else schema["$ref"]
        parts.append(_pb_str(1, _V2_REF_PREFIX + ref.removeprefix(REF_PREFIX)))
    kind = schema.get("type")
    fmt = schema.get("format", "")
    if "oneOf" in schema:
        # v2 has no oneOf: int-or-string and quantities travel as formatted strings.
        kind = "string"
    if fmt:
        parts.append(_pb_str(2, fmt))
    if schema.get("description"):
        parts.append(_pb_str(4, schema["description"]))
    for name in schema.get("required", []):
        parts.append(_pb_str(19, name))
    for value in schema.get("enum", []):
        parts.append(_pb_any(20, value))
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        parts.append(_pb_bytes(21, _pb_bytes(1, _v2_schema(extra))))
    if kind:
        parts.append(_pb_bytes(22, _pb_str(1, kind)))
    if isinstance(schema.get("items"), dict):
        parts.append(_pb_bytes(23, _pb_bytes(1, _v2_schema(schema["items"]))))
    props = schema.get("properties")
    if props is not None:
        named = b"".join(
            _pb_bytes(1, _pb_str(1, name) + _pb_bytes(2, _v2_schema(props[name])))
            for name in sorted(props)
        )
        parts.append(_pb_bytes(25, named))
    for key in sorted(schema):
        if key.startswith("x-"):
            parts.append(_pb_bytes(31, _pb_str(1, key) + _pb_any(2, schema[key])))
    return b"".join(parts)


@functools.cache
def openapi_v2_document() -> bytes:
    """`GET /openapi/v2`: every schema as a gnostic-protobuf OpenAPI v2 document.

    Send it with Content-Type `OPENAPI_V2_CONTENT_TYPE` (Go's MIME parser
    rejects the `@` of the Accept value kubectl sends, so not that), and its
    sha256 as ETag. Only kubectl 1.27/1.28 need it, for `explain`.
    """
    definitions = b"".join(
        _pb_bytes(1, _pb_str(1, name) + _pb_bytes(2, _v2_schema(SCHEMAS[name])))
        for name in sorted(SCHEMAS)
    )
    info = _pb_str(1, "Kubernetes") + _pb_str(2, "v1.32.0-kubesvc")
    return _pb_str(1, "2.0") + _pb_bytes(2, info) + _pb_bytes(9, definitions)
