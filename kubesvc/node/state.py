"""What the node agent keeps on disk per pod, so a restarted agent finds its pods again.

One directory per pod under `<node dir>/pods/<namespace>_<name>_<uid>/`:

    pod.json                          this record (written atomically)
    resolv.conf, pause.log            namespace mode: the sandbox's
    containers/<name>/<attempt>/      (init containers' too: names are unique in a pod)
        agent.json, shim.json         the shim's PID and start time
        exit.json                     how the attempt ended (written by the shim)
        output.log                    the attempt's stdout and stderr

Attempt N of a container is its Nth restart (`restartCount` = N), so
`kubectl logs --previous` is attempt N-1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubesvc.node.network import Sandbox
from kubesvc.node.process import read_json, write_json

log = logging.getLogger("kubesvc.node")

RECORD = "pod.json"


@dataclass
class ContainerRecord:
    attempt: int = -1  # the latest attempt started; -1: none yet
    streak: int = 0  # restarts in a row (for the back-off)
    # Stopped by the agent itself (`kubesvc up` shutting down), not ended on its own:
    # started again when the agent returns, whatever the restart policy says.
    interrupted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "streak": self.streak, "interrupted": self.interrupted}

    @classmethod
    def from_json(cls, data: Any) -> ContainerRecord:
        data = data if isinstance(data, dict) else {}
        return cls(
            int(data.get("attempt", -1)),
            int(data.get("streak", 0)),
            bool(data.get("interrupted", False)),
        )


@dataclass
class PodRecord:
    uid: str
    namespace: str
    name: str
    directory: Path
    start_time: str = ""
    sandbox: Sandbox | None = None
    # The Service variables, taken once when the pod started (the seed: Services made later
    # are not in the environment), and reused for every restart of its containers.
    service_env: list[tuple[str, str]] | None = None
    containers: dict[str, ContainerRecord] = field(default_factory=dict)
    # Every init container has succeeded: a restarted agent goes straight to the containers
    # and never runs an init container of this pod again (the kubelet's rule).
    initialized: bool = False

    @staticmethod
    def dir_name(namespace: str, name: str, uid: str) -> str:
        return f"{namespace}_{name}_{uid}"

    def container(self, name: str) -> ContainerRecord:
        return self.containers.setdefault(name, ContainerRecord())

    def attempt_dir(self, container: str, attempt: int) -> Path:
        return self.directory / "containers" / container / str(attempt)

    def log_path(self, container: str, attempt: int) -> Path:
        return self.attempt_dir(container, attempt) / "output.log"

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        write_json(
            self.directory / RECORD,
            {
                "uid": self.uid,
                "namespace": self.namespace,
                "name": self.name,
                "startTime": self.start_time,
                "sandbox": self.sandbox.to_json() if self.sandbox else None,
                "serviceEnv": [list(p) for p in self.service_env]
                if self.service_env is not None
                else None,
                "containers": {k: v.to_json() for k, v in self.containers.items()},
                "initialized": self.initialized,
            },
        )

    @classmethod
    def load(cls, directory: Path) -> PodRecord | None:
        data = read_json(directory / RECORD)
        if data is None or not all(isinstance(data.get(k), str) for k in ("uid", "namespace")):
            return None
        env = data.get("serviceEnv")
        return cls(
            uid=data["uid"],
            namespace=data["namespace"],
            name=str(data.get("name", "")),
            directory=directory,
            start_time=str(data.get("startTime", "")),
            sandbox=Sandbox.from_json(data.get("sandbox")),
            service_env=[(str(k), str(v)) for k, v in env] if isinstance(env, list) else None,
            containers={
                str(k): ContainerRecord.from_json(v)
                for k, v in (data.get("containers") or {}).items()
            },
            initialized=bool(data.get("initialized", False)),
        )


def load_records(pods_dir: Path) -> list[PodRecord]:
    """Every pod record under `pods_dir`; directories without a readable record are reported."""
    records = []
    if not pods_dir.is_dir():
        return records
    for entry in sorted(pods_dir.iterdir()):
        if not entry.is_dir():
            continue
        record = PodRecord.load(entry)
        if record is None:
            log.warning("node: %s has no readable pod record; leaving it alone", entry)
            continue
        records.append(record)
    return records
