"""Valid objects of each kind, and a way to change one field of a copy, for table tests."""

from __future__ import annotations

import copy
import re
from typing import Any

_DELETE = object()
DELETE: Any = _DELETE  # as a value in `with_field`: remove the field


def service(**spec: Any) -> dict[str, Any]:
    """The seed's my-service (selector app=MyApp, TCP 80 → 9376), with `spec` overrides."""
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "my-service", "namespace": "default"},
        "spec": {
            "selector": {"app": "MyApp"},
            "ports": [{"protocol": "TCP", "port": 80, "targetPort": 9376}],
        },
    }
    obj["spec"].update(spec)
    return obj


def pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "MyApp"}},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "command": ["python3", "-m", "http.server", "9376"],
                    "ports": [{"name": "http", "containerPort": 9376}],
                    "env": [{"name": "GREETING", "value": "hello"}],
                    "readinessProbe": {"httpGet": {"port": "http", "path": "/"}},
                }
            ]
        },
    }


def endpoints() -> dict[str, Any]:
    """The seed's hand-written Endpoints for a selector-less Service."""
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "my-service", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "192.0.2.42"}], "ports": [{"port": 9376}]}],
    }


def endpoint_slice() -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "my-service-abc12",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "my-service"},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.0.2.42"], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": 9376, "protocol": "TCP"}],
    }


def namespace() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "my-ns"}}


KINDS = {
    "Service": service,
    "Pod": pod,
    "Endpoints": endpoints,
    "EndpointSlice": endpoint_slice,
    "Namespace": namespace,
}

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def with_field(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `obj` with the field at `path` (`spec.ports[0].name`) set or deleted."""
    out = copy.deepcopy(obj)
    steps: list[str | int] = [name if name else int(index) for name, index in _STEP.findall(path)]
    node: Any = out
    for step in steps[:-1]:
        if isinstance(step, str) and step not in node:
            node[step] = {}
        node = node[step]
    last = steps[-1]
    if value is _DELETE:
        del node[last]
    elif isinstance(last, int) and last == len(node):
        node.append(value)
    else:
        node[last] = value
    return out
