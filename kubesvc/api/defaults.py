"""Defaulting: the values the API server writes into an object the user left out.

Defaulting runs before validation and never raises: where a field has the
wrong type it is left alone for validation to report. Defaults that need
the server's state (clusterIP, nodePort, uid, timestamps) are set by the
API server's strategies, not here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubesvc.api.shape import child, dicts, kind_of

DEFAULT_CLIENT_IP_TIMEOUT_S = 10800
PROBE_DEFAULTS = {
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}


def _port_protocols(ports: Any) -> None:
    for port in dicts(ports):
        port.setdefault("protocol", "TCP")


def default_namespace(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("finalizers", ["kubernetes"])
    status = obj.setdefault("status", {})
    if isinstance(status, dict):
        status.setdefault("phase", "Active")


def _default_probe(probe: dict[str, Any] | None) -> None:
    if probe is None:
        return
    for key, value in PROBE_DEFAULTS.items():
        probe.setdefault(key, value)
    http = child(probe, "httpGet")
    if http is not None:
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")


def _image_pull_policy(image: Any) -> str:
    # Kubernetes pulls `:latest` and untagged images every time.
    if not isinstance(image, str) or "@" in image:
        return "IfNotPresent"
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def default_pod(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("securityContext", {})
    for key in ("containers", "initContainers"):
        for container in dicts(spec.get(key)):
            _port_protocols(container.get("ports"))
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            if "image" in container:
                container.setdefault("imagePullPolicy", _image_pull_policy(container["image"]))
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                _default_probe(child(container, probe))
    status = obj.setdefault("status", {})
    if isinstance(status, dict):
        status.setdefault("phase", "Pending")


def default_service(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("type", "ClusterIP")
    svc_type = spec["type"]
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        config = spec.setdefault("sessionAffinityConfig", {})
        client_ip = config.setdefault("clientIP", {}) if isinstance(config, dict) else None
        if isinstance(client_ip, dict):
            client_ip.setdefault("timeoutSeconds", DEFAULT_CLIENT_IP_TIMEOUT_S)
    for port in dicts(spec.get("ports")):
        port.setdefault("protocol", "TCP")
        if port.get("targetPort") in (None, 0, "") and "port" in port:
            port["targetPort"] = port["port"]
    if svc_type == "ExternalName":
        return
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if svc_type in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if svc_type == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    cluster_ip = spec.get("clusterIP")
    if isinstance(cluster_ip, str) and cluster_ip and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [cluster_ip]
    if "ipFamilies" not in spec:
        ips = spec.get("clusterIPs")
        first = ips[0] if isinstance(ips, list) and ips and isinstance(ips[0], str) else ""
        spec["ipFamilies"] = ["IPv6" if ":" in first else "IPv4"]
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    status = obj.setdefault("status", {})
    if isinstance(status, dict):
        status.setdefault("loadBalancer", {})


def default_endpoints(obj: dict[str, Any]) -> None:
    for subset in dicts(obj.get("subsets")):
        _port_protocols(subset.get("ports"))


def default_endpoint_slice(obj: dict[str, Any]) -> None:
    for port in dicts(obj.get("ports")):
        port.setdefault("protocol", "TCP")
        port.setdefault("name", "")


DEFAULTERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "Namespace": default_namespace,
    "Pod": default_pod,
    "Service": default_service,
    "Endpoints": default_endpoints,
    "EndpointSlice": default_endpoint_slice,
}


def apply_defaults(obj: dict[str, Any]) -> dict[str, Any]:
    """Fill in the defaults of `obj`'s kind, in place; returns `obj` for chaining."""
    defaulter = DEFAULTERS.get(kind_of(obj) or "")
    if defaulter is not None:
        defaulter(obj)
    return obj
