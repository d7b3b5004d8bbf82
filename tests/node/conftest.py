"""Helpers for the node agent's end-to-end tests: manifests, waiting, and leaving nothing behind.

Every process a test's pods start runs under a shim whose command line holds
the test's data dir, so `kill_leftovers` can find (by PID) anything a failed
test left running, and end it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.apiserver.conftest import KUBESVC, Cluster
from tests.waiting import eventually  # noqa: F401  (re-exported for the node tests)

PYTHON = sys.executable

# Pod ranges of their own per test process, so that runs in parallel (and the proxy's tests,
# which use 127.244.0.0/16) never hand two pods the same loopback address.
_BLOCK = os.getpid() % 250
HOST_POD_CIDR = f"127.245.{_BLOCK}.0/25"
NODE_POD_CIDR = f"127.245.{_BLOCK}.128/29"  # five pod addresses: released ones come back soon


def pod(
    name: str,
    command: list[str],
    *,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A one-container pod running `command`."""
    container: dict[str, Any] = {"name": "main", "command": command}
    for key in ("readinessProbe", "ports", "env", "workingDir", "args"):
        if key in spec:
            container[key] = spec.pop(key)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {"containers": [container], **spec},
    }


def service(name: str, port: int, *, selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"port": port, "protocol": "TCP"}]}
    if selector:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def create(cluster: Cluster, obj: dict[str, Any], namespace: str) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", "-", stdin=json.dumps(obj))


def get(cluster: Cluster, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    """The object, or None when it does not exist."""
    result = cluster.kubectl(
        "get", kind, name, "-n", namespace, "-o", "json", "--ignore-not-found", check=True
    )
    return json.loads(result.stdout) if result.stdout.strip() else None


def pod_status(cluster: Cluster, name: str, namespace: str) -> dict[str, Any]:
    obj = get(cluster, "pod", name, namespace)
    return (obj or {}).get("status") or {}


def container_status(cluster: Cluster, name: str, namespace: str) -> dict[str, Any]:
    statuses = pod_status(cluster, name, namespace).get("containerStatuses") or [{}]
    return statuses[0]


def shim_pid(cluster: Cluster, name: str, namespace: str) -> int:
    """The PID of the pod's container's shim (its containerID is `process://PID`)."""
    cid = container_status(cluster, name, namespace).get("containerID", "")
    assert cid.startswith("process://"), cid
    return int(cid.removeprefix("process://"))


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def env_dump_command(path: Path) -> list[str]:
    """Write the exact environment the process was started with to `path`, then keep running.

    /proc/self/environ is the environment as given to exec, before Python itself
    adds anything (such as LC_CTYPE for locale coercion).
    """
    code = (
        "import os, sys\n"
        f"p = {str(path)!r}\n"
        "open(p + '.tmp', 'wb').write(open('/proc/self/environ', 'rb').read())\n"
        "os.replace(p + '.tmp', p)\n"
        "os.execvp('sleep', ['sleep', '300'])\n"
    )
    return [PYTHON, "-c", code]


def read_env(path: Path) -> dict[str, str]:
    entries = [e for e in path.read_bytes().split(b"\0") if e]
    return dict(e.decode().split("=", 1) for e in entries)


def kubesvc_env(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubesvc env`, finding the cluster through $KUBECONFIG as a user would."""
    return subprocess.run(
        [KUBESVC, "env", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    )


def cmdline(pid: int) -> bytes:
    """A process's command line (NUL-separated); empty once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def kill_leftovers(marker: str) -> list[int]:
    """End every process whose command line holds `marker`, with its process group; their PIDs.

    Shims and pause processes lead their own process groups, and the pod's
    processes are in them, so the group signal ends those too.
    """
    killed = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        if marker.encode() in cmdline(int(entry)):
            pid = int(entry)
            try:
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed
