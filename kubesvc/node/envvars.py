"""Pure: the environment a pod's process starts with.

Layers, each on top of the one before (a later layer wins a name):

1. From the node: `PATH`, `HOME` and the locale. A process has no image to
   bring its own, so without these it could not find `python` or print UTF-8.
2. The Service variables of the pod's namespace, in the seed's format
   (`REDIS_MASTER_SERVICE_HOST=…`, the Docker-links set `REDIS_MASTER_PORT…`).
3. `POD_IP`, `POD_NAME`, `POD_NAMESPACE`: what a process needs to bind to its
   own address and know who it is.
4. The container's own `env`: literal values and `valueFrom.fieldRef`, with
   `$(VAR)` references expanded as Kubernetes does.

Nothing here does I/O, so every rule is a table test.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Obj = dict[str, Any]

# What a process inherits from the node. The locale is LANG, LANGUAGE and every LC_*.
INHERITED_NAMES = ("PATH", "HOME", "LANG", "LANGUAGE")
INHERITED_PREFIXES = ("LC_",)

# `metadata.labels['app']`: one label or annotation by key.
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['([^']*)'\]$")


class EnvError(Exception):
    """The container's env cannot be built (an unsupported or missing source); the message says which."""


def env_name(name: str) -> str:
    """`redis-master` → `REDIS_MASTER`: upper case, `-` and `.` to `_` (the seed's rule)."""
    return name.upper().replace("-", "_").replace(".", "_")


def _host_port(ip: str, port: int) -> str:
    # IPv6 hosts are bracketed in URLs, as Go's net.JoinHostPort does.
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def has_cluster_ip(service: Obj) -> bool:
    """A Service with a virtual IP: not headless ("None"), not ExternalName (no IP at all)."""
    ip = (service.get("spec") or {}).get("clusterIP")
    return isinstance(ip, str) and ip not in ("", "None")


def service_env(service: Obj, *, links: bool = True) -> list[tuple[str, str]]:
    """The variables one Service gives a pod, in the seed's order.

    `{SVC}_SERVICE_HOST`, `{SVC}_SERVICE_PORT` (the first port), one
    `{SVC}_SERVICE_PORT_{NAME}` per named port, then — unless `links` is off
    (`enableServiceLinks: false`) — the Docker-links set: `{SVC}_PORT` (the
    first port) and per port `{SVC}_PORT_{port}_{PROTO}` with `_PROTO`,
    `_PORT` and `_ADDR`. A Service without a ClusterIP gives nothing.
    """
    if not has_cluster_ip(service):
        return []
    spec = service.get("spec") or {}
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict) and p.get("port")]
    if not ports:
        return []
    ip = spec["clusterIP"]
    prefix = env_name(str((service.get("metadata") or {}).get("name", "")))
    out = [
        (f"{prefix}_SERVICE_HOST", ip),
        (f"{prefix}_SERVICE_PORT", str(ports[0]["port"])),
    ]
    for port in ports:
        if port.get("name"):
            out.append((f"{prefix}_SERVICE_PORT_{env_name(port['name'])}", str(port["port"])))
    if not links:
        return out
    for i, port in enumerate(ports):
        proto = str(port.get("protocol") or "TCP")
        url = f"{proto.lower()}://{_host_port(ip, port['port'])}"
        if i == 0:
            out.append((f"{prefix}_PORT", url))
        base = f"{prefix}_PORT_{port['port']}_{proto.upper()}"
        out += [
            (base, url),
            (f"{base}_PROTO", proto.lower()),
            (f"{base}_PORT", str(port["port"])),
            (f"{base}_ADDR", ip),
        ]
    return out


def services_env(
    services: Iterable[Obj], namespace: str, *, links: bool = True
) -> list[tuple[str, str]]:
    """The Service variables of a pod in `namespace`: every Service there with a ClusterIP, by name."""
    chosen = [
        s
        for s in services
        if (s.get("metadata") or {}).get("namespace") == namespace and has_cluster_ip(s)
    ]
    chosen.sort(key=lambda s: str(s["metadata"].get("name", "")))
    out: list[tuple[str, str]] = []
    for service in chosen:
        out += service_env(service, links=links)
    return out


def service_links_enabled(pod: Obj) -> bool:
    """`spec.enableServiceLinks`, true unless the pod says false."""
    return (pod.get("spec") or {}).get("enableServiceLinks") is not False


def inherited_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The node's `PATH`, `HOME` and locale, the part of its environment a pod process keeps."""
    return {
        k: v
        for k, v in environ.items()
        if k in INHERITED_NAMES or any(k.startswith(p) for p in INHERITED_PREFIXES)
    }


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`.

    An undefined `$(NAME)`, an unclosed `$(` and a `$` before anything else
    stay as written, so a shell snippet in `args` keeps its meaning.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end == -1:
                    out.append(text[i:])
                    break
                value = lookup(text[i + 2 : end])
                out.append(value if value is not None else text[i : end + 1])
                i = end + 1
                continue
        out.append(char)
        i += 1
    return "".join(out)


def _joined_ips(entries: Any) -> str:
    return ",".join(
        e["ip"] for e in entries or [] if isinstance(e, dict) and isinstance(e.get("ip"), str)
    )


def field_value(pod: Obj, field_path: str) -> str:
    """The value of a downward-API `fieldRef` (`metadata.name`, `status.podIP`, `metadata.labels['app']`…)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    simple: dict[str, Any] = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
    }
    if field_path in simple:
        return str(simple[field_path] or "")
    if field_path == "status.podIPs":
        return _joined_ips(status.get("podIPs")) or str(status.get("podIP") or "")
    if field_path == "status.hostIPs":
        return _joined_ips(status.get("hostIPs")) or str(status.get("hostIP") or "")
    match = _SUBSCRIPT.match(field_path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if field_path in ("metadata.labels", "metadata.annotations"):
        # The downward API's volume format, one `key="value"` a line.
        items = meta.get(field_path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    raise EnvError(f"unsupported fieldRef fieldPath {field_path!r}")


def _source_value(pod: Obj, name: str, source: Obj) -> str | None:
    """A `valueFrom` value; None when an optional source is absent (the variable is left out)."""
    if isinstance(source.get("fieldRef"), dict):
        return field_value(pod, str(source["fieldRef"].get("fieldPath", "")))
    for key, what in (("secretKeyRef", "Secrets"), ("configMapKeyRef", "ConfigMaps")):
        ref = source.get(key)
        if isinstance(ref, dict):
            if ref.get("optional") is True:
                return None
            raise EnvError(
                f"env {name}: kubesvc has no {what}; {key} {ref.get('name')}/{ref.get('key')} "
                "cannot be read (mark it optional: true to start without it)"
            )
    if isinstance(source.get("resourceFieldRef"), dict):
        raise EnvError(f"env {name}: resourceFieldRef is not supported (processes have no limits)")
    raise EnvError(f"env {name}: valueFrom names no source kubesvc supports")


def pod_env(pod: Obj, pod_ip: str) -> dict[str, str]:
    """The three variables every kubesvc pod process gets."""
    meta = pod.get("metadata") or {}
    return {
        "POD_IP": pod_ip,
        "POD_NAME": str(meta.get("name", "")),
        "POD_NAMESPACE": str(meta.get("namespace", "")),
    }


def container_env(
    pod: Obj,
    container: Obj,
    *,
    pod_ip: str,
    service_vars: Iterable[tuple[str, str]],
    node_environ: Mapping[str, str],
) -> dict[str, str]:
    """The whole environment of one container's process, layered as the module says.

    `pod` should carry the status the process will see (its `podIP`), so that
    `fieldRef: status.podIP` and `$POD_IP` agree. Raises EnvError when an
    entry cannot be resolved.
    """
    env = inherited_env(node_environ)
    env.update(service_vars)
    env.update(pod_env(pod, pod_ip))
    for entry in container.get("env") or []:
        if not isinstance(entry, dict) or not entry.get("name"):
            continue
        name = str(entry["name"])
        source = entry.get("valueFrom")
        if isinstance(source, dict) and source:
            value = _source_value(pod, name, source)
            if value is None:
                continue
        else:
            # References see everything defined so far, as in Kubernetes (earlier entries win).
            value = expand(str(entry.get("value") or ""), env.get)
        env[name] = value
    return env


def command_line(container: Obj, env: Mapping[str, str]) -> list[str]:
    """`command` + `args` with `$(VAR)` expanded from the container's environment."""
    argv = [str(a) for a in (container.get("command") or [])]
    argv += [str(a) for a in (container.get("args") or [])]
    return [expand(a, env.get) for a in argv]


def render(pairs: Iterable[tuple[str, str]]) -> str:
    """`NAME=VALUE` lines, as `kubesvc env` prints them."""
    return "".join(f"{k}={v}\n" for k, v in pairs)
