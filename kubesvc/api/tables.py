"""Server-side printing: objects as a `meta.k8s.io/v1` Table, with kubectl's familiar columns.

kubectl asks for lists with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`
and prints whatever columns the server sends, hiding those of priority 1
unless `-o wide`. The column choice and cell formats here follow Kubernetes'
own printers (pkg/printers/internalversion), so `kubectl get` looks the same
against kubesvc as against a cluster. As in Kubernetes, the server always
renders the wide cells; kubectl drops them.

Each row carries the object, as `PartialObjectMetadata` by default: kubectl
needs its metadata for the NAMESPACE column of `-A` and for `--show-labels`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from kubesvc.api import errors

TABLE_API_VERSION = "meta.k8s.io/v1"
INCLUDE_OBJECT = ("None", "Metadata", "Object")
NONE = "<none>"
UNKNOWN = "<unknown>"
# kubectl lists at most this many endpoints or ports in one cell, then "+ N more...".
MAX_LISTED = 3

Obj = dict[str, Any]
Column = dict[str, Any]


def _column(name: str, description: str, *, fmt: str = "", priority: int = 0) -> Column:
    return {
        "name": name,
        "type": "string",
        "format": fmt,
        "description": description,
        "priority": priority,
    }


NAME_COLUMN = _column(
    "Name", "The object's name, unique among its kind in its namespace.", fmt="name"
)
AGE_COLUMN = _column("Age", "How long ago the object was created (metadata.creationTimestamp).")


# ------------------------------------------------------------ formatting


def human_duration(seconds: float) -> str:
    """A duration the way kubectl prints ages: `5s`, `3m2s`, `15m`, `2d3h`, `3y`.

    Precision shrinks as durations grow, as Kubernetes' `duration.HumanDuration`
    does; up to a second in the future still reads `0s` (clock skew).
    """
    whole = int(seconds)  # truncates toward zero, like Go's int(d.Seconds())
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (`Time` or `MicroTime`) as an aware datetime; None if unusable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _as_datetime(now: datetime | float | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if isinstance(now, int | float):
        return datetime.fromtimestamp(now, UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def since(timestamp: Any, now: datetime | float | None = None) -> str:
    """The age of an RFC 3339 timestamp at `now`; `<unknown>` when it is missing."""
    when = parse_time(timestamp)
    if when is None:
        return UNKNOWN
    return human_duration((_as_datetime(now) - when).total_seconds())


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[Obj]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _meta(obj: Obj) -> Obj:
    return _dict(obj.get("metadata"))


def _name(obj: Obj) -> str:
    return _str(_meta(obj).get("name"))


def _age(obj: Obj, now: datetime) -> str:
    return since(_meta(obj).get("creationTimestamp"), now)


def format_labels(labels: Any) -> str:
    """`a=1,b=2` in key order, or `<none>`, like kubectl's label printing."""
    if not isinstance(labels, dict) or not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _more(items: list[str], more: bool, count: int, empty: str) -> str:
    text = ",".join(items)
    if more:
        return f"{text} + {count - MAX_LISTED} more..."
    return text or empty


# -------------------------------------------------------------- services


def service_ports(ports: Any) -> str:
    """`80/TCP,443:30443/TCP`: port, node port when there is one, protocol."""
    pieces = []
    for port in _dicts(ports):
        protocol = _str(port.get("protocol")) or "TCP"
        number = port.get("port")
        node_port = _int(port.get("nodePort"))
        if node_port > 0:
            pieces.append(f"{number}:{node_port}/{protocol}")
        else:
            pieces.append(f"{number}/{protocol}")
    return ",".join(pieces)


def _load_balancer_addresses(status: Obj) -> list[str]:
    found = set()
    for ingress in _dicts(_dict(status.get("loadBalancer")).get("ingress")):
        address = _str(ingress.get("ip")) or _str(ingress.get("hostname"))
        if address:
            found.add(address)
    return sorted(found)


def service_external_ip(service: Obj) -> str:
    """The EXTERNAL-IP cell: external IPs, load balancer addresses or the external name."""
    spec = _dict(service.get("spec"))
    kind = _str(spec.get("type")) or "ClusterIP"
    external = [ip for ip in spec.get("externalIPs") or [] if isinstance(ip, str)]
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else NONE
    if kind == "LoadBalancer":
        addresses = _load_balancer_addresses(_dict(service.get("status"))) + external
        # A load balancer not provisioned yet shows as pending, as on a cloud.
        return ",".join(addresses) if addresses else "<pending>"
    if kind == "ExternalName":
        return _str(spec.get("externalName"))
    return UNKNOWN


def _service_cells(obj: Obj, now: datetime) -> list[Any]:
    spec = _dict(obj.get("spec"))
    cluster_ips = [ip for ip in spec.get("clusterIPs") or [] if isinstance(ip, str)]
    # clusterIPs may not be filled in yet on an object straight from a client; use clusterIP.
    cluster_ip = cluster_ips[0] if cluster_ips else _str(spec.get("clusterIP")) or NONE
    return [
        _name(obj),
        _str(spec.get("type")),
        cluster_ip,
        service_external_ip(obj),
        service_ports(spec.get("ports")) or NONE,
        _age(obj, now),
        format_labels(spec.get("selector")),
    ]


SERVICE_COLUMNS = [
    NAME_COLUMN,
    _column("Type", "How the service is exposed: ClusterIP, NodePort, LoadBalancer, ExternalName."),
    _column("Cluster-IP", "The service's virtual IP inside the cluster; None when headless."),
    _column("External-IP", "Addresses outside the cluster the service is reachable at."),
    _column("Port(s)", "The service's ports, as port[:nodePort]/protocol."),
    AGE_COLUMN,
    _column("Selector", "The labels of the pods behind the service.", priority=1),
]


# ------------------------------------------------------------------ pods


def _terminated_finished_at(status: Obj) -> datetime | None:
    terminated = _dict(_dict(status.get("lastState")).get("terminated"))
    return parse_time(terminated.get("finishedAt")) if terminated else None


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _condition_true(pod_status: Obj, kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True"
        for c in _dicts(pod_status.get("conditions"))
    )


def pod_summary(pod: Obj, now: datetime | float | None = None) -> tuple[str, str, str]:
    """(READY, STATUS, RESTARTS) of a pod, worked out as kubectl's pod printer does."""
    at = _as_datetime(now)
    spec = _dict(pod.get("spec"))
    status = _dict(pod.get("status"))
    phase = _str(status.get("phase"))
    reason = _str(status.get("reason")) or phase
    for cond in _dicts(status.get("conditions")):
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {_str(c.get("name")): c for c in _dicts(spec.get("initContainers"))}
    # Sidecars (init containers that restart Always) count among the pod's containers.
    sidecars = {name for name, c in init_specs.items() if c.get("restartPolicy") == "Always"}
    total = len(_dicts(spec.get("containers"))) + len(sidecars)
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    init_statuses = _dicts(status.get("initContainerStatuses"))
    initializing = False
    for i, container in enumerate(init_statuses):
        count = _int(container.get("restartCount"))
        restarts += count
        finished = _terminated_finished_at(container)
        last_restart = _later(last_restart, finished)
        is_sidecar = _str(container.get("name")) in sidecars
        if is_sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        state = _dict(container.get("state"))
        terminated = _dict(state.get("terminated")) if "terminated" in state else None
        waiting = _dict(state.get("waiting")) if "waiting" in state else None
        if terminated is not None and _int(terminated.get("exitCode")) == 0:
            continue
        if is_sidecar and container.get("started") is True:
            if container.get("ready") is True:
                ready += 1
            continue
        if terminated is not None:
            why = _str(terminated.get("reason"))
            if why:
                reason = "Init:" + why
            elif _int(terminated.get("signal")):
                reason = f"Init:Signal:{_int(terminated.get('signal'))}"
            else:
                reason = f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
        elif waiting is not None and _str(waiting.get("reason")) not in ("", "PodInitializing"):
            reason = "Init:" + _str(waiting.get("reason"))
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        running = False
        # Walk backwards so the first container's state has the last word, as kubectl does.
        for container in reversed(_dicts(status.get("containerStatuses"))):
            restarts += _int(container.get("restartCount"))
            last_restart = _later(last_restart, _terminated_finished_at(container))
            state = _dict(container.get("state"))
            waiting = _dict(state.get("waiting"))
            terminated = _dict(state.get("terminated")) if "terminated" in state else None
            if _str(waiting.get("reason")):
                reason = _str(waiting.get("reason"))
            elif terminated is not None and _str(terminated.get("reason")):
                reason = _str(terminated.get("reason"))
            elif terminated is not None:
                signal = _int(terminated.get("signal"))
                exit_code = _int(terminated.get("exitCode"))
                reason = f"Signal:{signal}" if signal else f"ExitCode:{exit_code}"
            elif container.get("ready") is True and "running" in state:
                running = True
                ready += 1
        if reason == "Completed" and running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"

    if _meta(pod).get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration((at - last_restart).total_seconds())} ago)"
    return f"{ready}/{total}", reason, restarts_text


def _pod_cells(obj: Obj, now: datetime) -> list[Any]:
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    ready, reason, restarts = pod_summary(obj, now)
    pod_ips = _dicts(status.get("podIPs"))
    pod_ip = _str(pod_ips[0].get("ip")) if pod_ips else _str(status.get("podIP"))
    gates = _dicts(spec.get("readinessGates"))
    gates_text = NONE
    if gates:
        conditions = {
            c.get("type"): c.get("status") for c in reversed(_dicts(status.get("conditions")))
        }
        met = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
        gates_text = f"{met}/{len(gates)}"
    return [
        _name(obj),
        ready,
        reason,
        restarts,
        _age(obj, now),
        pod_ip or NONE,
        _str(spec.get("nodeName")) or NONE,
        _str(status.get("nominatedNodeName")) or NONE,
        gates_text,
    ]


def _pod_conditions(obj: Obj) -> list[Obj] | None:
    # Kubernetes marks finished pods' rows Completed; clients may use it to hide them.
    phase = _dict(obj.get("status")).get("phase")
    if phase == "Succeeded":
        return [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Succeeded",
                "message": "The pod has completed successfully.",
            }
        ]
    if phase == "Failed":
        return [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Failed",
                "message": "The pod failed.",
            }
        ]
    return None


POD_COLUMNS = [
    NAME_COLUMN,
    _column("Ready", "Ready containers out of all containers of the pod."),
    _column("Status", "The pod's overall state, from its phase and its containers' states."),
    _column("Restarts", "How often the pod's containers restarted, and when last."),
    AGE_COLUMN,
    _column("IP", "The pod's IP address.", priority=1),
    _column("Node", "The node the pod runs on.", priority=1),
    _column("Nominated Node", "The node the pod is expected to move to.", priority=1),
    _column("Readiness Gates", "Readiness gates met out of all gates.", priority=1),
]


# -------------------------------------------------------------- endpoints


def endpoints_summary(endpoints: Obj) -> str:
    """`10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...`: the ready ip:port pairs."""
    listed: list[str] = []
    more = False
    count = 0
    subsets = _dicts(endpoints.get("subsets"))
    for subset in subsets:
        addresses = [_str(a.get("ip")) for a in _dicts(subset.get("addresses"))]
        ports = _dicts(subset.get("ports"))
        if not ports:
            # A headless service may publish addresses without ports.
            count += len(addresses)
            for ip in addresses:
                if len(listed) == MAX_LISTED:
                    more = True
                    break
                listed.append(ip)
            continue
        for port in ports:
            count += len(addresses)
            for ip in addresses:
                if len(listed) == MAX_LISTED:
                    more = True
                    break
                host = f"[{ip}]" if ":" in ip else ip
                listed.append(f"{host}:{port.get('port')}")
    return _more(listed, more, count, NONE)


def _endpoints_cells(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), endpoints_summary(obj), _age(obj, now)]


ENDPOINTS_COLUMNS = [
    NAME_COLUMN,
    _column("Endpoints", "The ready endpoints, as ip:port."),
    AGE_COLUMN,
]


def slice_ports(ports: Any) -> str:
    """The PORTS cell of an EndpointSlice: port numbers (or names), at most three listed."""
    listed: list[str] = []
    count = 0
    for port in _dicts(ports):
        if len(listed) < MAX_LISTED:
            number = port.get("port")
            if isinstance(number, int):
                listed.append(str(number))
            elif isinstance(port.get("name"), str):
                listed.append(port["name"])
            else:
                listed.append("*")
        count += 1
    return _more(listed, count > MAX_LISTED, count, "<unset>")


def slice_endpoints(endpoints: Any) -> str:
    """The ENDPOINTS cell of an EndpointSlice: addresses, at most three listed."""
    listed: list[str] = []
    count = 0
    for endpoint in _dicts(endpoints):
        for address in endpoint.get("addresses") or []:
            if len(listed) < MAX_LISTED:
                listed.append(str(address))
            count += 1
    return _more(listed, count > MAX_LISTED, count, "<unset>")


def _slice_cells(obj: Obj, now: datetime) -> list[Any]:
    return [
        _name(obj),
        _str(obj.get("addressType")),
        slice_ports(obj.get("ports")),
        slice_endpoints(obj.get("endpoints")),
        _age(obj, now),
    ]


SLICE_COLUMNS = [
    NAME_COLUMN,
    _column("AddressType", "The kind of addresses in the slice: IPv4, IPv6 or FQDN."),
    _column("Ports", "The ports every endpoint serves."),
    _column("Endpoints", "The endpoints' addresses."),
    AGE_COLUMN,
]


# ----------------------------------------------------- namespaces, events


def _namespace_cells(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), _str(_dict(obj.get("status")).get("phase")), _age(obj, now)]


NAMESPACE_COLUMNS = [
    NAME_COLUMN,
    _column("Status", "The namespace's phase: Active or Terminating."),
    AGE_COLUMN,
]


def _event_cells(obj: Obj, now: datetime) -> list[Any]:
    first = since(obj.get("firstTimestamp"), now)
    if parse_time(obj.get("firstTimestamp")) is None:
        first = since(obj.get("eventTime"), now)
    last = since(obj.get("lastTimestamp"), now)
    if parse_time(obj.get("lastTimestamp")) is None:
        last = first
    count = _int(obj.get("count"))
    series = _dict(obj.get("series"))
    if series:
        last = since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        # Events written through the newer API carry no count: they happened once.
        count = 1
    involved = _dict(obj.get("involvedObject"))
    target = _str(involved.get("kind")).lower()
    if _str(involved.get("name")):
        target = f"{target}/{involved['name']}"
    source = _dict(obj.get("source"))
    component = _str(source.get("component")) or _str(obj.get("reportingComponent"))
    instance = _str(source.get("host")) or _str(obj.get("reportingInstance"))
    return [
        last,
        _str(obj.get("type")),
        _str(obj.get("reason")),
        target,
        _str(involved.get("fieldPath")),
        f"{component}, {instance}" if instance else component,
        _str(obj.get("message")).strip(),
        first,
        count,
        _name(obj),
    ]


EVENT_COLUMNS = [
    _column("Last Seen", "How long ago the event last happened."),
    _column("Type", "Normal or Warning."),
    _column("Reason", "A short word for what happened."),
    _column("Object", "The object the event is about, as kind/name."),
    _column("Subobject", "The part of the object, e.g. one container.", priority=1),
    _column("Source", "The component that reported the event.", priority=1),
    _column("Message", "What happened, in words."),
    _column("First Seen", "How long ago the event first happened.", priority=1),
    _column("Count", "How many times the event happened.", priority=1),
    {**NAME_COLUMN, "priority": 1},
]


def node_status(node: Obj) -> str:
    """`Ready`, `NotReady` or `Unknown` (no heartbeat lately), as kubectl shows it."""
    status = "Unknown"
    for cond in _dicts(_dict(node.get("status")).get("conditions")):
        if cond.get("type") == "Ready":
            status = {"True": "Ready", "False": "NotReady"}.get(
                _str(cond.get("status")), "NotReady"
            )
    if _dict(node.get("spec")).get("unschedulable") is True:
        status += ",SchedulingDisabled"
    return status


def node_roles(node: Obj) -> str:
    prefix = "node-role.kubernetes.io/"
    labels = _dict(_meta(node).get("labels"))
    roles = sorted(k.removeprefix(prefix) for k in labels if k.startswith(prefix))
    return ",".join(r for r in roles if r) or NONE


def _node_address(node: Obj, kind: str) -> str:
    for address in _dicts(_dict(node.get("status")).get("addresses")):
        if address.get("type") == kind:
            return _str(address.get("address")) or NONE
    return NONE


def _node_cells(obj: Obj, now: datetime) -> list[Any]:
    info = _dict(_dict(obj.get("status")).get("nodeInfo"))
    return [
        _name(obj),
        node_status(obj),
        node_roles(obj),
        _age(obj, now),
        _str(info.get("kubeletVersion")),
        _node_address(obj, "InternalIP"),
        _node_address(obj, "ExternalIP"),
        _str(info.get("osImage")) or UNKNOWN,
        _str(info.get("kernelVersion")) or UNKNOWN,
        _str(info.get("containerRuntimeVersion")) or UNKNOWN,
    ]


NODE_COLUMNS = [
    NAME_COLUMN,
    _column("Status", "Ready, NotReady, or Unknown when the node stopped posting its status."),
    _column("Roles", "The node's roles (node-role.kubernetes.io/ labels)."),
    AGE_COLUMN,
    _column("Version", "The node agent's version (status.nodeInfo.kubeletVersion)."),
    _column("Internal-IP", "The node's InternalIP address.", priority=1),
    _column("External-IP", "The node's ExternalIP address.", priority=1),
    _column("OS-Image", "The node's operating system.", priority=1),
    _column("Kernel-Version", "The node's kernel.", priority=1),
    _column("Container-Runtime", "What runs the pods.", priority=1),
]


def _generic_cells(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), _age(obj, now)]


GENERIC_COLUMNS = [NAME_COLUMN, AGE_COLUMN]

Printer = tuple[list[Column], Callable[[Obj, datetime], list[Any]]]
PRINTERS: dict[str, Printer] = {
    "Service": (SERVICE_COLUMNS, _service_cells),
    "Pod": (POD_COLUMNS, _pod_cells),
    "Endpoints": (ENDPOINTS_COLUMNS, _endpoints_cells),
    "EndpointSlice": (SLICE_COLUMNS, _slice_cells),
    "Namespace": (NAMESPACE_COLUMNS, _namespace_cells),
    "Node": (NODE_COLUMNS, _node_cells),
    "Event": (EVENT_COLUMNS, _event_cells),
}


# ------------------------------------------------------------------ table


def _row_object(obj: Obj, include_object: str) -> Obj | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return copy.deepcopy(obj)
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": TABLE_API_VERSION,
        "metadata": copy.deepcopy(_meta(obj)),
    }


def table(
    kind: str,
    objects: Iterable[Obj],
    now: datetime | float | None = None,
    *,
    include_object: str | None = "Metadata",
    no_headers: bool = False,
) -> dict[str, Any]:
    """Objects of one kind as a `meta.k8s.io/v1` Table.

    `now` (an aware datetime or a Unix time; the current time when None) is the
    moment ages are measured from. `include_object` is the `includeObject`
    query value: `Metadata` (the default) puts PartialObjectMetadata in each
    row, `Object` the whole object, `None` nothing (`"object": null`); any other
    value is a 400 StatusError. `no_headers` leaves `columnDefinitions` empty,
    as Kubernetes does for all but the first event of a watch. Kinds without a
    printer get NAME and AGE. The caller fills `metadata` (resourceVersion,
    continue) from the list it printed.
    """
    include = include_object or "Metadata"
    if include not in INCLUDE_OBJECT:
        raise errors.bad_request(
            f'includeObject: Unsupported value: "{include}": supported values:'
            ' "None", "Metadata", "Object"'
        )
    columns, cells = PRINTERS.get(kind, (GENERIC_COLUMNS, _generic_cells))
    at = _as_datetime(now)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": cells(obj, at), "object": _row_object(obj, include)}
        if kind == "Pod":
            conditions = _pod_conditions(obj)
            if conditions:
                row["conditions"] = conditions
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": {},
        "columnDefinitions": [] if no_headers else copy.deepcopy(columns),
        "rows": rows,
    }


def wants_table(accept_header: str | None) -> bool:
    """Whether an Accept header asks for a Table (`application/json;as=Table;g=meta.k8s.io;v=v1`).

    Only the v1 Table is produced; a header naming `v1beta1` alone does not qualify.
    """
    for part in (accept_header or "").split(","):
        params = {}
        for piece in part.split(";")[1:]:
            key, _, value = piece.strip().partition("=")
            params[key.strip()] = value.strip()
        if (
            params.get("as") == "Table"
            and params.get("g", "meta.k8s.io") == "meta.k8s.io"
            and params.get("v", "v1") == "v1"
        ):
            return True
    return False
