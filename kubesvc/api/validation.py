"""Validation of Namespace, Pod, Service, Endpoints and EndpointSlice, on create and update.

Every rule answers with `FieldError`s at Kubernetes field paths; nothing here
raises on bad input. Validation runs after defaulting, as in Kubernetes.
Rules that depend on the cluster's state (a ClusterIP inside the range and
free) belong to allocation; the few facts validation needs from outside come
in a `Context`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubesvc.api import formats, shape
from kubesvc.api.field import (
    Path,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
    too_many,
    type_invalid,
)
from kubesvc.api.meta import (
    IMMUTABLE,
    validate_labels,
    validate_object_meta,
    validate_object_meta_update,
)
from kubesvc.api.shape import Errors

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
SESSION_AFFINITIES = ["ClientIP", "None"]
TRAFFIC_POLICIES = ["Cluster", "Local"]
IP_FAMILIES = ["IPv4", "IPv6"]
IP_FAMILY_POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"]
ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]
RESTART_POLICIES = ["Always", "Never", "OnFailure"]
DNS_POLICIES = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]
NAMESPACE_PHASES = ["Active", "Terminating"]
NODE_ADDRESS_TYPES = ["ExternalIP", "Hostname", "InternalIP"]
CONDITION_STATUSES = ["False", "True", "Unknown"]
POD_FIELD_REFS = [
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
]
MAX_CLIENT_IP_TIMEOUT_S = 86400
MAX_SLICE_ENDPOINTS = 1000
MAX_SLICE_ADDRESSES = 100
MAX_SLICE_PORTS = 100


def _no_owner(_ip: str) -> str | None:
    return None


@dataclass(frozen=True)
class Context:
    """What validation needs to know about the cluster.

    `pod_loopback_cidrs`: loopback ranges that host-mode pods use, accepted
    as endpoint addresses. `cluster_ip_owner(ip)` names the Service
    (`ns/name`) holding a ClusterIP, so Endpoints cannot point at one (a rule
    the seed states and Kubernetes only documents).
    """

    pod_loopback_cidrs: tuple[Network, ...] = ()
    cluster_ip_owner: Callable[[str], str | None] = field(default=_no_owner)


DEFAULT_CONTEXT = Context()


# ---------------------------------------------------------------- shared parts


def _one_of(
    value: Any, path: Path, supported: list[str], errs: Errors, *, needed: bool = True
) -> str | None:
    text = shape.string(value, path, errs)
    if text is None:
        if needed and value is None:
            errs.append(required(path))
        return None
    if text not in supported:
        errs.append(not_supported(path, text, supported))
        return None
    return text


def _names(check: Callable[[str], list[str]], value: str, path: Path, errs: Errors) -> bool:
    messages = check(value)
    errs.extend(invalid(path, value, msg) for msg in messages)
    return not messages


def _port(value: Any, path: Path, errs: Errors, *, allow_zero: bool = False) -> int | None:
    number = shape.integer(value, path, errs)
    if number is None and value is None and not allow_zero:
        number = 0
    if number is None:
        return None
    if allow_zero and number == 0:
        return 0
    if formats.port_number(number):
        errs.append(invalid(path, number, formats.PORT_RANGE_MSG))
        return None
    return number


def _int_or_name(value: Any, path: Path, errs: Errors) -> None:
    """A port given by number or by IANA service name (targetPort, probe ports)."""
    if isinstance(value, str):
        if value.isdigit():
            _port(int(value), path, errs)
        else:
            _names(formats.iana_svc_name, value, path, errs)
    elif value is None:
        errs.append(required(path))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _port(value, path, errs)
    else:
        errs.append(type_invalid(path, value, "must be an integer or a string"))


def _app_protocol(value: Any, path: Path, errs: Errors) -> None:
    text = shape.string(value, path, errs)
    if text:
        _names(formats.qualified_name, text, path, errs)


def _ip(value: Any, path: Path, errs: Errors) -> str | None:
    text = shape.string(value, path, errs)
    if text is None:
        return None
    return text if _names(formats.ip_address, text, path, errs) else None


def _endpoint_ip(ip: str, path: Path, ctx: Context, errs: Errors) -> None:
    for msg in formats.endpoint_ip(ip, ctx.pod_loopback_cidrs):
        errs.append(invalid(path, ip, msg))
    if formats.parse_ip(ip) is not None:
        owner = ctx.cluster_ip_owner(ip)
        if owner:
            errs.append(invalid(path, ip, f"may not be the ClusterIP of Service {owner}"))


def _target_ref(value: Any, path: Path, errs: Errors) -> None:
    ref = shape.mapping(value, path, errs)
    for key in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"):
        shape.string(ref.get(key), path.child(key), errs)


def _nonnegative(value: Any, path: Path, errs: Errors, minimum: int = 0) -> None:
    number = shape.integer(value, path, errs)
    if number is not None and number < minimum:
        errs.append(invalid(path, number, f"must be greater than or equal to {minimum}"))


# ------------------------------------------------------------------- Namespace


def validate_namespace(obj: dict[str, Any], ctx: Context = DEFAULT_CONTEXT) -> Errors:
    errs: Errors = []
    validate_object_meta(obj, namespaced=False, name_check=formats.dns1123_label, errs=errs)
    spec = shape.mapping(obj.get("spec"), Path("spec"), errs)
    fin_path = Path("spec").child("finalizers")
    for i, fin in enumerate(shape.sequence(spec.get("finalizers"), fin_path, errs)):
        text = shape.string(fin, fin_path.index(i), errs)
        if text is not None:
            _names(formats.qualified_name, text, fin_path.index(i), errs)
    status = shape.mapping(obj.get("status"), Path("status"), errs)
    _one_of(
        status.get("phase"), Path("status").child("phase"), NAMESPACE_PHASES, errs, needed=False
    )
    return errs


def validate_namespace_update(
    new: dict[str, Any], old: dict[str, Any], ctx: Context = DEFAULT_CONTEXT
) -> Errors:
    errs = validate_namespace(new, ctx)
    validate_object_meta_update(new, old, errs)
    return errs


# ------------------------------------------------------------------------ Node


def _conditions(value: Any, path: Path, errs: Errors) -> None:
    seen: set[str] = set()
    for i, item in enumerate(shape.sequence(value, path, errs)):
        cpath = path.index(i)
        cond = shape.mapping(item, cpath, errs)
        kind = shape.string(cond.get("type"), cpath.child("type"), errs)
        if cond.get("type") is None or kind == "":
            errs.append(required(cpath.child("type")))
        elif kind is not None and kind in seen:
            errs.append(duplicate(cpath.child("type"), kind))
        elif kind is not None:
            seen.add(kind)
        _one_of(cond.get("status"), cpath.child("status"), CONDITION_STATUSES, errs)
        for key in (
            "reason",
            "message",
            "lastHeartbeatTime",
            "lastTransitionTime",
            "lastProbeTime",
        ):
            shape.string(cond.get(key), cpath.child(key), errs)


def _pod_cidr(value: Any, path: Path, errs: Errors) -> None:
    text = shape.string(value, path, errs)
    if not text:
        return
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        errs.append(invalid(path, text, "must be a valid CIDR value, (e.g. 10.9.8.0/24)"))


def validate_node(obj: dict[str, Any], ctx: Context = DEFAULT_CONTEXT) -> Errors:
    """A Node: its name, pod ranges, addresses (typed) and conditions (one of each type)."""
    errs: Errors = []
    validate_object_meta(obj, namespaced=False, name_check=formats.dns1123_subdomain, errs=errs)
    spec = shape.mapping(obj.get("spec"), Path("spec"), errs)
    _pod_cidr(spec.get("podCIDR"), Path("spec").child("podCIDR"), errs)
    cidrs = Path("spec").child("podCIDRs")
    for i, cidr in enumerate(shape.sequence(spec.get("podCIDRs"), cidrs, errs)):
        _pod_cidr(cidr, cidrs.index(i), errs)
    shape.boolean(spec.get("unschedulable"), Path("spec").child("unschedulable"), errs)
    status = shape.mapping(obj.get("status"), Path("status"), errs)
    apath = Path("status").child("addresses")
    for i, item in enumerate(shape.sequence(status.get("addresses"), apath, errs)):
        address = shape.mapping(item, apath.index(i), errs)
        _one_of(address.get("type"), apath.index(i).child("type"), NODE_ADDRESS_TYPES, errs)
        text = shape.string(address.get("address"), apath.index(i).child("address"), errs)
        if not text:
            errs.append(required(apath.index(i).child("address")))
    _conditions(status.get("conditions"), Path("status").child("conditions"), errs)
    for key in ("capacity", "allocatable"):
        shape.mapping(status.get(key), Path("status").child(key), errs)
    return errs


def validate_node_update(
    new: dict[str, Any], old: dict[str, Any], ctx: Context = DEFAULT_CONTEXT
) -> Errors:
    errs = validate_node(new, ctx)
    validate_object_meta_update(new, old, errs)
    old_cidr = (old.get("spec") or {}).get("podCIDR")
    new_spec = new.get("spec") if isinstance(new.get("spec"), dict) else {}
    if old_cidr and new_spec.get("podCIDR") != old_cidr:
        errs.append(invalid(Path("spec").child("podCIDR"), new_spec.get("podCIDR"), IMMUTABLE))
    return errs


# ------------------------------------------------------------------------- Pod


def _probe(value: Any, path: Path, errs: Errors, kind: str = "readinessProbe") -> None:
    probe = shape.mapping(value, path, errs)
    if not probe:
        return
    handlers = [h for h in ("exec", "httpGet", "tcpSocket", "grpc") if probe.get(h) is not None]
    if not handlers:
        errs.append(required(path, "must specify a handler type"))
    elif len(handlers) > 1:
        errs.append(forbidden(path.child(handlers[1]), "may not specify more than 1 handler type"))
    if probe.get("grpc") is not None:
        # kubesvc's node agent checks with exec, httpGet and tcpSocket only.
        errs.append(
            forbidden(path.child("grpc"), "gRPC probes are not supported by kubesvc's node agent")
        )
    exec_ = shape.mapping(probe.get("exec"), path.child("exec"), errs)
    if "exec" in probe:
        command = shape.sequence(exec_.get("command"), path.child("exec", "command"), errs)
        if not command:
            errs.append(required(path.child("exec", "command")))
        for i, arg in enumerate(command):
            shape.string(arg, path.child("exec", "command").index(i), errs)
    http = shape.mapping(probe.get("httpGet"), path.child("httpGet"), errs)
    if "httpGet" in probe:
        _int_or_name(http.get("port"), path.child("httpGet", "port"), errs)
        shape.string(http.get("path"), path.child("httpGet", "path"), errs)
        shape.string(http.get("host"), path.child("httpGet", "host"), errs)
        _one_of(
            http.get("scheme"),
            path.child("httpGet", "scheme"),
            ["HTTP", "HTTPS"],
            errs,
            needed=False,
        )
    tcp = shape.mapping(probe.get("tcpSocket"), path.child("tcpSocket"), errs)
    if "tcpSocket" in probe:
        _int_or_name(tcp.get("port"), path.child("tcpSocket", "port"), errs)
    _nonnegative(probe.get("initialDelaySeconds"), path.child("initialDelaySeconds"), errs)
    for key in ("timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        _nonnegative(probe.get(key), path.child(key), errs, minimum=1)
    success = probe.get("successThreshold")
    if kind != "readinessProbe" and isinstance(success, int) and success > 1:
        # A liveness or startup probe succeeds once (Kubernetes' rule and wording).
        errs.append(invalid(path.child("successThreshold"), success, "must be 1"))
    grace = probe.get("terminationGracePeriodSeconds")
    if grace is not None:
        if kind == "readinessProbe":
            errs.append(
                invalid(
                    path.child("terminationGracePeriodSeconds"),
                    grace,
                    "must not be set for readinessProbes",
                )
            )
        else:
            _nonnegative(grace, path.child("terminationGracePeriodSeconds"), errs, minimum=1)


def _env(value: Any, path: Path, errs: Errors) -> None:
    for i, var in enumerate(shape.sequence(value, path, errs)):
        var_path = path.index(i)
        var = shape.mapping(var, var_path, errs)
        name = shape.string(var.get("name"), var_path.child("name"), errs)
        if not name:
            errs.append(required(var_path.child("name")))
        else:
            _names(formats.env_var_name, name, var_path.child("name"), errs)
        shape.string(var.get("value"), var_path.child("value"), errs)
        source = shape.mapping(var.get("valueFrom"), var_path.child("valueFrom"), errs)
        if source and var.get("value"):
            errs.append(
                invalid(
                    var_path.child("valueFrom"),
                    "",
                    "may not be specified when `value` is not empty",
                )
            )
        if "fieldRef" in source:
            ref_path = var_path.child("valueFrom", "fieldRef")
            ref = shape.mapping(source.get("fieldRef"), ref_path, errs)
            _one_of(ref.get("fieldPath"), ref_path.child("fieldPath"), POD_FIELD_REFS, errs)


def _container(container: dict[str, Any], path: Path, errs: Errors) -> None:
    port_names: set[str] = set()  # unique per container, as in Kubernetes
    command = shape.sequence(container.get("command"), path.child("command"), errs)
    for i, arg in enumerate(command):
        shape.string(arg, path.child("command").index(i), errs)
    for i, arg in enumerate(shape.sequence(container.get("args"), path.child("args"), errs)):
        shape.string(arg, path.child("args").index(i), errs)
    image = shape.string(container.get("image"), path.child("image"), errs)
    # kubesvc runs containers as local processes: a command can stand in for an image.
    if not image and not command:
        errs.append(required(path.child("image"), "an image, or a command to run, is required"))
    shape.string(container.get("workingDir"), path.child("workingDir"), errs)
    for i, port in enumerate(shape.sequence(container.get("ports"), path.child("ports"), errs)):
        port_path = path.child("ports").index(i)
        port = shape.mapping(port, port_path, errs)
        if port.get("containerPort") is None:
            errs.append(required(port_path.child("containerPort")))
        else:
            _port(port.get("containerPort"), port_path.child("containerPort"), errs)
        _port(port.get("hostPort"), port_path.child("hostPort"), errs, allow_zero=True)
        name = shape.string(port.get("name"), port_path.child("name"), errs)
        if name and _names(formats.iana_svc_name, name, port_path.child("name"), errs):
            if name in port_names:
                errs.append(duplicate(port_path.child("name"), name))
            port_names.add(name)
        _one_of(port.get("protocol"), port_path.child("protocol"), PROTOCOLS, errs)
        shape.string(port.get("hostIP"), port_path.child("hostIP"), errs)
    _env(container.get("env"), path.child("env"), errs)
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        _probe(container.get(probe), path.child(probe), errs, probe)


def _init_container(container: dict[str, Any], path: Path, errs: Errors) -> None:
    """What an init container may not have: kubesvc runs only the classic kind, to completion."""
    policy = container.get("restartPolicy")
    if policy == "Always":
        # A sidecar: Kubernetes runs it beside the containers; kubesvc has no such mode.
        errs.append(
            forbidden(
                path.child("restartPolicy"),
                "kubesvc does not run sidecar containers (init containers with restartPolicy "
                "Always): an init container runs to completion before the containers start",
            )
        )
    elif policy is not None:
        errs.append(not_supported(path.child("restartPolicy"), policy, ["Always"]))
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if container.get(probe) is not None:
            # Kubernetes' rule and words (probes are for sidecars only).
            errs.append(
                forbidden(
                    path.child(probe),
                    "may not be set for init containers without restartPolicy=Always",
                )
            )


def validate_pod(obj: dict[str, Any], ctx: Context = DEFAULT_CONTEXT) -> Errors:
    errs: Errors = []
    validate_object_meta(obj, namespaced=True, name_check=formats.dns1123_subdomain, errs=errs)
    spec_path = Path("spec")
    spec = shape.mapping(obj.get("spec"), spec_path, errs)
    container_names: set[str] = set()
    containers = shape.sequence(spec.get("containers"), spec_path.child("containers"), errs)
    if not containers:
        errs.append(required(spec_path.child("containers")))
    for key, items in (("initContainers", spec.get("initContainers")), ("containers", containers)):
        for i, container in enumerate(shape.sequence(items, spec_path.child(key), errs)):
            path = spec_path.child(key).index(i)
            container = shape.mapping(container, path, errs)
            name = shape.string(container.get("name"), path.child("name"), errs)
            if not name:
                errs.append(required(path.child("name")))
            elif _names(formats.dns1123_label, name, path.child("name"), errs):
                if name in container_names:
                    errs.append(duplicate(path.child("name"), name))
                container_names.add(name)
            _container(container, path, errs)
            if key == "initContainers":
                _init_container(container, path, errs)
    _one_of(spec.get("restartPolicy"), spec_path.child("restartPolicy"), RESTART_POLICIES, errs)
    _one_of(spec.get("dnsPolicy"), spec_path.child("dnsPolicy"), DNS_POLICIES, errs, needed=False)
    node = shape.string(spec.get("nodeName"), spec_path.child("nodeName"), errs)
    if node:
        _names(formats.dns1123_subdomain, node, spec_path.child("nodeName"), errs)
    for key in ("hostname", "subdomain"):
        text = shape.string(spec.get(key), spec_path.child(key), errs)
        if text:
            _names(formats.dns1123_label, text, spec_path.child(key), errs)
    shape.boolean(spec.get("enableServiceLinks"), spec_path.child("enableServiceLinks"), errs)
    shape.boolean(spec.get("hostNetwork"), spec_path.child("hostNetwork"), errs)
    _nonnegative(
        spec.get("terminationGracePeriodSeconds"),
        spec_path.child("terminationGracePeriodSeconds"),
        errs,
    )
    _nonnegative(
        spec.get("activeDeadlineSeconds"), spec_path.child("activeDeadlineSeconds"), errs, minimum=1
    )
    shape.mapping(spec.get("nodeSelector"), spec_path.child("nodeSelector"), errs)
    shape.mapping(obj.get("status"), Path("status"), errs)
    return errs


# Fields of a pod's spec an update may change (all else is fixed once created).
_POD_MUTABLE = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def _pod_spec_without_mutables(spec: Any) -> Any:
    if not isinstance(spec, dict):
        return spec
    out = {k: v for k, v in spec.items() if k not in ("activeDeadlineSeconds", "tolerations")}
    for key in ("containers", "initContainers"):
        if isinstance(out.get(key), list):
            out[key] = [
                {k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c
                for c in out[key]
            ]
    return out


def validate_pod_update(
    new: dict[str, Any], old: dict[str, Any], ctx: Context = DEFAULT_CONTEXT
) -> Errors:
    errs = validate_pod(new, ctx)
    validate_object_meta_update(new, old, errs)
    new_spec = _pod_spec_without_mutables(new.get("spec"))
    old_spec = _pod_spec_without_mutables(old.get("spec"))
    # Binding an unscheduled pod to a node (what the pods/binding subresource does
    # in Kubernetes) is allowed as a plain update here.
    if isinstance(new_spec, dict) and isinstance(old_spec, dict) and not old_spec.get("nodeName"):
        new_spec = {k: v for k, v in new_spec.items() if k != "nodeName"}
        old_spec = {k: v for k, v in old_spec.items() if k != "nodeName"}
    if new_spec != old_spec:
        errs.append(
            forbidden(Path("spec"), f"pod updates may not change fields other than {_POD_MUTABLE}")
        )
    return errs


# --------------------------------------------------------------------- Service


def _service_ports(
    spec: dict[str, Any], svc_type: str | None, headless: bool, errs: Errors
) -> None:
    ports_path = Path("spec").child("ports")
    ports = shape.sequence(spec.get("ports"), ports_path, errs)
    if not ports and not headless and svc_type != "ExternalName":
        errs.append(required(ports_path))
    names: set[str] = set()
    seen_ports: set[tuple[str, int]] = set()
    seen_node_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        path = ports_path.index(i)
        port = shape.mapping(port, path, errs)
        name = shape.string(port.get("name"), path.child("name"), errs)
        if not name:
            if len(ports) > 1:
                errs.append(required(path.child("name")))
        elif _names(formats.dns1123_label, name, path.child("name"), errs):
            if name in names:
                errs.append(duplicate(path.child("name"), name))
            names.add(name)
        number = _port(port.get("port"), path.child("port"), errs)
        protocol = _one_of(port.get("protocol"), path.child("protocol"), PROTOCOLS, errs)
        _int_or_name(port.get("targetPort"), path.child("targetPort"), errs)
        _app_protocol(port.get("appProtocol"), path.child("appProtocol"), errs)
        if number is not None and protocol is not None:
            if (protocol, number) in seen_ports:
                errs.append(duplicate(path, {"port": number, "protocol": protocol}))
            seen_ports.add((protocol, number))
        node_port = shape.integer(port.get("nodePort"), path.child("nodePort"), errs)
        if node_port:
            if svc_type in ("ClusterIP", "ExternalName"):
                errs.append(
                    forbidden(
                        path.child("nodePort"), f"may not be used when `type` is '{svc_type}'"
                    )
                )
            elif _port(node_port, path.child("nodePort"), errs) is not None and protocol:
                if (protocol, node_port) in seen_node_ports:
                    errs.append(duplicate(path.child("nodePort"), node_port))
                seen_node_ports.add((protocol, node_port))


def _cluster_ips(spec: dict[str, Any], svc_type: str | None, errs: Errors) -> bool:
    """Checks clusterIP/clusterIPs; returns whether the Service is headless."""
    spec_path = Path("spec")
    cluster_ip = shape.string(spec.get("clusterIP"), spec_path.child("clusterIP"), errs) or ""
    ips_path = spec_path.child("clusterIPs")
    cluster_ips = [
        shape.string(ip, ips_path.index(i), errs) or ""
        for i, ip in enumerate(shape.sequence(spec.get("clusterIPs"), ips_path, errs))
    ]
    if svc_type == "ExternalName":
        if cluster_ip:
            errs.append(
                forbidden(spec_path.child("clusterIP"), "may not be set for ExternalName services")
            )
        if any(cluster_ips):
            errs.append(forbidden(ips_path, "may not be set for ExternalName services"))
        return False
    if cluster_ips and cluster_ip and cluster_ips[0] != cluster_ip:
        errs.append(invalid(ips_path.index(0), cluster_ips[0], "must be equal to spec.clusterIP"))
    if len(cluster_ips) > 2:
        errs.append(invalid(ips_path, cluster_ips, "may only hold up to 2 values"))
    headless = cluster_ip == "None" or (bool(cluster_ips) and cluster_ips[0] == "None")
    if headless:
        if len(cluster_ips) > 1:
            errs.append(
                invalid(
                    ips_path,
                    cluster_ips,
                    "must not have more than one value when the first is 'None'",
                )
            )
        if svc_type in ("NodePort", "LoadBalancer"):
            errs.append(
                invalid(
                    spec_path.child("clusterIP"),
                    "None",
                    f"may not be set to 'None' for {svc_type} services",
                )
            )
        return True
    candidates = [(spec_path.child("clusterIP"), cluster_ip)] if cluster_ip else []
    candidates += [
        (ips_path.index(i), ip) for i, ip in enumerate(cluster_ips) if i > 0 or not cluster_ip
    ]
    families: list[int] = []
    for path, ip in candidates:
        if not ip:
            continue
        if ip == "None":
            errs.append(invalid(path, ip, "only the first value may be 'None'"))
        elif _names(formats.ip_address, ip, path, errs):
            families.append(ipaddress.ip_address(ip).version)
    if len(families) == 2 and families[0] == families[1]:
        errs.append(
            invalid(ips_path, cluster_ips, "may specify no more than one IP for each IP family")
        )
    return False


def _ip_families(spec: dict[str, Any], svc_type: str | None, errs: Errors) -> None:
    spec_path = Path("spec")
    fam_path = spec_path.child("ipFamilies")
    families = shape.sequence(spec.get("ipFamilies"), fam_path, errs)
    policy = spec.get("ipFamilyPolicy")
    if svc_type == "ExternalName":
        if families:
            errs.append(forbidden(fam_path, "may not be set for ExternalName services"))
        if policy is not None:
            errs.append(
                forbidden(
                    spec_path.child("ipFamilyPolicy"), "may not be set for ExternalName services"
                )
            )
        return
    seen: set[str] = set()
    for i, family in enumerate(families):
        fam = _one_of(family, fam_path.index(i), IP_FAMILIES, errs)
        if fam in seen:
            errs.append(duplicate(fam_path.index(i), fam))
        if fam:
            seen.add(fam)
    if len(families) > 2:
        errs.append(
            invalid(fam_path, families, "may specify no more than one IP for each IP family")
        )
    policy = _one_of(
        policy, spec_path.child("ipFamilyPolicy"), IP_FAMILY_POLICIES, errs, needed=False
    )
    if policy == "SingleStack" and len(families) > 1:
        errs.append(
            invalid(
                fam_path,
                families,
                "must contain exactly one value when ipFamilyPolicy is SingleStack",
            )
        )


def validate_service(obj: dict[str, Any], ctx: Context = DEFAULT_CONTEXT) -> Errors:
    errs: Errors = []
    validate_object_meta(obj, namespaced=True, name_check=formats.dns1035_label, errs=errs)
    spec_path = Path("spec")
    spec = shape.mapping(obj.get("spec"), spec_path, errs)
    svc_type = _one_of(spec.get("type"), spec_path.child("type"), SERVICE_TYPES, errs)
    headless = _cluster_ips(spec, svc_type, errs)
    _ip_families(spec, svc_type, errs)
    _service_ports(spec, svc_type, headless, errs)
    errs.extend(validate_labels(spec.get("selector"), spec_path.child("selector")))

    external_name = shape.string(spec.get("externalName"), spec_path.child("externalName"), errs)
    if svc_type == "ExternalName":
        if not external_name:
            errs.append(required(spec_path.child("externalName")))
        else:
            # A trailing dot (fully-qualified form) is accepted, as Kubernetes accepts it.
            _names(
                formats.dns1123_subdomain,
                external_name.removesuffix("."),
                spec_path.child("externalName"),
                errs,
            )

    affinity = _one_of(
        spec.get("sessionAffinity"), spec_path.child("sessionAffinity"), SESSION_AFFINITIES, errs
    )
    config_path = spec_path.child("sessionAffinityConfig")
    config = shape.mapping(spec.get("sessionAffinityConfig"), config_path, errs)
    if affinity == "ClientIP":
        timeout_path = config_path.child("clientIP", "timeoutSeconds")
        client_ip = shape.mapping(config.get("clientIP"), config_path.child("clientIP"), errs)
        timeout = shape.integer(client_ip.get("timeoutSeconds"), timeout_path, errs)
        if timeout is None and client_ip.get("timeoutSeconds") is None:
            errs.append(required(timeout_path))
        elif timeout is not None and not 0 < timeout <= MAX_CLIENT_IP_TIMEOUT_S:
            errs.append(
                invalid(
                    timeout_path,
                    timeout,
                    f"must be greater than 0 and less than {MAX_CLIENT_IP_TIMEOUT_S}",
                )
            )
    elif affinity == "None" and spec.get("sessionAffinityConfig") is not None:
        errs.append(forbidden(config_path, "must not be set when `sessionAffinity` is None"))

    ext_path = spec_path.child("externalIPs")
    for i, ip in enumerate(shape.sequence(spec.get("externalIPs"), ext_path, errs)):
        text = _ip(ip, ext_path.index(i), errs)
        if text is not None:
            for msg in formats.endpoint_ip(text, ctx.pod_loopback_cidrs):
                errs.append(invalid(ext_path.index(i), text, msg))

    if svc_type != "ExternalName":
        _one_of(
            spec.get("internalTrafficPolicy"),
            spec_path.child("internalTrafficPolicy"),
            TRAFFIC_POLICIES,
            errs,
            needed=False,
        )
    etp_path = spec_path.child("externalTrafficPolicy")
    if svc_type in ("NodePort", "LoadBalancer"):
        _one_of(spec.get("externalTrafficPolicy"), etp_path, TRAFFIC_POLICIES, errs, needed=False)
    elif spec.get("externalTrafficPolicy"):
        errs.append(
            invalid(
                etp_path,
                spec.get("externalTrafficPolicy"),
                "may only be set for externally-accessible services",
            )
        )
    hc_path = spec_path.child("healthCheckNodePort")
    health_port = spec.get("healthCheckNodePort")
    if health_port not in (None, 0):
        if not needs_health_check_port(spec):
            errs.append(
                invalid(
                    hc_path,
                    health_port,
                    "may only be set when `type` is 'LoadBalancer' and "
                    "`externalTrafficPolicy` is 'Local'",
                )
            )
        else:
            _port(health_port, hc_path, errs)
    shape.boolean(
        spec.get("publishNotReadyAddresses"), spec_path.child("publishNotReadyAddresses"), errs
    )
    ranges_path = spec_path.child("loadBalancerSourceRanges")
    ranges = shape.sequence(spec.get("loadBalancerSourceRanges"), ranges_path, errs)
    if ranges and svc_type != "LoadBalancer":
        errs.append(forbidden(ranges_path, "may only be used when `type` is 'LoadBalancer'"))
    for i, text in enumerate(ranges):
        cidr = shape.string(text, ranges_path.index(i), errs)
        if cidr is None:
            continue
        try:
            ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError:
            errs.append(
                invalid(
                    ranges_path.index(i),
                    cidr,
                    "must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24 ",
                )
            )
    lb_ip = shape.string(spec.get("loadBalancerIP"), spec_path.child("loadBalancerIP"), errs)
    if lb_ip:
        _names(formats.ip_address, lb_ip, spec_path.child("loadBalancerIP"), errs)
    shape.mapping(obj.get("status"), Path("status"), errs)
    return errs


def needs_health_check_port(spec: Any) -> bool:
    """A LoadBalancer that keeps traffic on the node: its health is told on a node port."""
    return (
        isinstance(spec, Mapping)
        and spec.get("type") == "LoadBalancer"
        and spec.get("externalTrafficPolicy") == "Local"
    )


def validate_service_update(
    new: dict[str, Any], old: dict[str, Any], ctx: Context = DEFAULT_CONTEXT
) -> Errors:
    errs = validate_service(new, ctx)
    validate_object_meta_update(new, old, errs)
    new_spec = new.get("spec") if isinstance(new.get("spec"), dict) else {}
    old_spec = old.get("spec") if isinstance(old.get("spec"), dict) else {}
    # The ClusterIP is fixed for the Service's life, except across a change to or
    # from ExternalName, which releases or allocates one.
    if "ExternalName" not in (new_spec.get("type"), old_spec.get("type")):
        old_ip, new_ip = old_spec.get("clusterIP") or "", new_spec.get("clusterIP") or ""
        if old_ip and new_ip != old_ip:
            errs.append(invalid(Path("spec").child("clusterIP"), new_ip, IMMUTABLE))
        old_fams, new_fams = old_spec.get("ipFamilies"), new_spec.get("ipFamilies")
        if (
            isinstance(old_fams, list)
            and isinstance(new_fams, list)
            and old_fams
            and new_fams
            and old_fams[0] != new_fams[0]
        ):
            errs.append(invalid(Path("spec").child("ipFamilies").index(0), new_fams[0], IMMUTABLE))
    old_hc, new_hc = old_spec.get("healthCheckNodePort"), new_spec.get("healthCheckNodePort")
    if (
        needs_health_check_port(old_spec)
        and needs_health_check_port(new_spec)
        and old_hc
        and new_hc != old_hc
    ):
        errs.append(invalid(Path("spec").child("healthCheckNodePort"), new_hc, IMMUTABLE))
    return errs


# ------------------------------------------------------------------- Endpoints


def _endpoint_ports(
    ports: list[Any], path: Path, errs: Errors, *, name_required: bool, port_required: bool
) -> None:
    names: set[str] = set()
    for i, port in enumerate(ports):
        port_path = path.index(i)
        port = shape.mapping(port, port_path, errs)
        name = shape.string(port.get("name"), port_path.child("name"), errs)
        if not name:
            if name_required:
                errs.append(required(port_path.child("name")))
        elif _names(formats.dns1123_label, name, port_path.child("name"), errs):
            if name in names:
                errs.append(duplicate(port_path.child("name"), name))
            names.add(name)
        if port_required or port.get("port") is not None:
            _port(port.get("port"), port_path.child("port"), errs)
        _one_of(port.get("protocol"), port_path.child("protocol"), PROTOCOLS, errs)
        _app_protocol(port.get("appProtocol"), port_path.child("appProtocol"), errs)


def _endpoint_address(value: Any, path: Path, ctx: Context, errs: Errors) -> None:
    address = shape.mapping(value, path, errs)
    ip = shape.string(address.get("ip"), path.child("ip"), errs)
    if not ip:
        errs.append(required(path.child("ip")))
    else:
        _endpoint_ip(ip, path.child("ip"), ctx, errs)
    hostname = shape.string(address.get("hostname"), path.child("hostname"), errs)
    if hostname:
        _names(formats.dns1123_label, hostname, path.child("hostname"), errs)
    node = shape.string(address.get("nodeName"), path.child("nodeName"), errs)
    if node:
        _names(formats.dns1123_subdomain, node, path.child("nodeName"), errs)
    if address.get("targetRef") is not None:
        _target_ref(address.get("targetRef"), path.child("targetRef"), errs)


def validate_endpoints(obj: dict[str, Any], ctx: Context = DEFAULT_CONTEXT) -> Errors:
    errs: Errors = []
    validate_object_meta(obj, namespaced=True, name_check=formats.dns1123_subdomain, errs=errs)
    subsets_path = Path("subsets")
    for i, subset in enumerate(shape.sequence(obj.get("subsets"), subsets_path, errs)):
        path = subsets_path.index(i)
        subset = shape.mapping(subset, path, errs)
        ready = shape.sequence(subset.get("addresses"), path.child("addresses"), errs)
        not_ready = shape.sequence(
            subset.get("notReadyAddresses"), path.child("notReadyAddresses"), errs
        )
        if not ready and not not_ready:
            errs.append(required(path, "must specify `addresses` or `notReadyAddresses`"))
        for key, addresses in (("addresses", ready), ("notReadyAddresses", not_ready)):
            for j, address in enumerate(addresses):
                _endpoint_address(address, path.child(key).index(j), ctx, errs)
        ports = shape.sequence(subset.get("ports"), path.child("ports"), errs)
        _endpoint_ports(
            ports, path.child("ports"), errs, name_required=len(ports) > 1, port_required=True
        )
    return errs


def validate_endpoints_update(
    new: dict[str, Any], old: dict[str, Any], ctx: Context = DEFAULT_CONTEXT
) -> Errors:
    errs = validate_endpoints(new, ctx)
    validate_object_meta_update(new, old, errs)
    return errs


# --------------------------------------------------------------- EndpointSlice


def _slice_address(
    address: str, address_type: str | None, path: Path, ctx: Context, errs: Errors
) -> None:
    if address_type == "FQDN":
        _names(formats.dns1123_subdomain, address, path, errs)
        return
    ip = formats.parse_ip(address)
    if ip is None:
        errs.append(invalid(path, address, formats.ip_address(address)[0]))
    elif address_type in ("IPv4", "IPv6") and ip.version != int(address_type[-1]):
        errs.append(invalid(path, address, f"must be an {address_type} address"))
    else:
        _endpoint_ip(address, path, ctx, errs)


def validate_endpoint_slice(obj: dict[str, Any], ctx: Context = DEFAULT_CONTEXT) -> Errors:
    errs: Errors = []
    validate_object_meta(obj, namespaced=True, name_check=formats.dns1123_subdomain, errs=errs)
    address_type = _one_of(obj.get("addressType"), Path("addressType"), ADDRESS_TYPES, errs)
    endpoints_path = Path("endpoints")
    endpoints = shape.sequence(obj.get("endpoints"), endpoints_path, errs)
    if len(endpoints) > MAX_SLICE_ENDPOINTS:
        errs.append(too_many(endpoints_path, len(endpoints), MAX_SLICE_ENDPOINTS))
    for i, endpoint in enumerate(endpoints):
        path = endpoints_path.index(i)
        endpoint = shape.mapping(endpoint, path, errs)
        addresses = shape.sequence(endpoint.get("addresses"), path.child("addresses"), errs)
        if not addresses:
            errs.append(required(path.child("addresses"), "must contain at least 1 address"))
        elif len(addresses) > MAX_SLICE_ADDRESSES:
            errs.append(too_many(path.child("addresses"), len(addresses), MAX_SLICE_ADDRESSES))
        for j, address in enumerate(addresses):
            text = shape.string(address, path.child("addresses").index(j), errs)
            if text is not None:
                _slice_address(text, address_type, path.child("addresses").index(j), ctx, errs)
        conditions = shape.mapping(endpoint.get("conditions"), path.child("conditions"), errs)
        for key in ("ready", "serving", "terminating"):
            shape.boolean(conditions.get(key), path.child("conditions", key), errs)
        hostname = shape.string(endpoint.get("hostname"), path.child("hostname"), errs)
        if hostname:
            _names(formats.dns1123_label, hostname, path.child("hostname"), errs)
        node = shape.string(endpoint.get("nodeName"), path.child("nodeName"), errs)
        if node:
            _names(formats.dns1123_subdomain, node, path.child("nodeName"), errs)
        zone = shape.string(endpoint.get("zone"), path.child("zone"), errs)
        if zone:
            _names(formats.label_value, zone, path.child("zone"), errs)
        if endpoint.get("targetRef") is not None:
            _target_ref(endpoint.get("targetRef"), path.child("targetRef"), errs)
    ports = shape.sequence(obj.get("ports"), Path("ports"), errs)
    if len(ports) > MAX_SLICE_PORTS:
        errs.append(too_many(Path("ports"), len(ports), MAX_SLICE_PORTS))
    _endpoint_ports(ports, Path("ports"), errs, name_required=False, port_required=False)
    return errs


def validate_endpoint_slice_update(
    new: dict[str, Any], old: dict[str, Any], ctx: Context = DEFAULT_CONTEXT
) -> Errors:
    errs = validate_endpoint_slice(new, ctx)
    validate_object_meta_update(new, old, errs)
    if new.get("addressType") != old.get("addressType"):
        errs.append(invalid(Path("addressType"), new.get("addressType"), IMMUTABLE))
    return errs


# -------------------------------------------------------------------- dispatch

Validator = Callable[[dict[str, Any], Context], Errors]
UpdateValidator = Callable[[dict[str, Any], dict[str, Any], Context], Errors]

VALIDATORS: dict[str, tuple[Validator, UpdateValidator]] = {
    "Namespace": (validate_namespace, validate_namespace_update),
    "Node": (validate_node, validate_node_update),
    "Pod": (validate_pod, validate_pod_update),
    "Service": (validate_service, validate_service_update),
    "Endpoints": (validate_endpoints, validate_endpoints_update),
    "EndpointSlice": (validate_endpoint_slice, validate_endpoint_slice_update),
}


def validate(obj: Any, ctx: Context = DEFAULT_CONTEXT) -> Errors:
    """Field errors for creating `obj`; its `kind` picks the rules."""
    if not isinstance(obj, dict):
        return [type_invalid("", obj, "must be an object")]
    rules = VALIDATORS.get(shape.kind_of(obj) or "")
    if rules is None:
        return [not_supported("kind", obj.get("kind"), sorted(VALIDATORS))]
    return rules[0](obj, ctx)


def validate_update(new: Any, old: dict[str, Any], ctx: Context = DEFAULT_CONTEXT) -> Errors:
    """Field errors for replacing `old` by `new`, including immutable fields."""
    if not isinstance(new, dict):
        return [type_invalid("", new, "must be an object")]
    rules = VALIDATORS.get(shape.kind_of(old) or "")
    if rules is None:
        return [not_supported("kind", old.get("kind"), sorted(VALIDATORS))]
    return rules[1](new, old, ctx)
