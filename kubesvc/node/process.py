"""Processes of pods: starting a container's shim, finding it again, signalling it, waiting for it.

A process is named by its PID *and* its start time in /proc (clock ticks
since boot): a PID alone may have been reused by an unrelated process after
a reboot or a long agent outage, the pair may not. This is what lets a
restarted agent adopt the processes it started before, and never signal a
stranger.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHIM = Path(__file__).with_name("shim.py")
# How often a process is checked for having ended: soon at first (a stop is being waited
# for, or a command that fails at once), then every POLL_S for a long-running one.
FIRST_POLL_S = 0.005
POLL_S = 0.1


@dataclass(frozen=True)
class ProcessRef:
    pid: int
    start_ticks: int

    def to_json(self) -> dict[str, int]:
        return {"pid": self.pid, "startTicks": self.start_ticks}

    @classmethod
    def from_json(cls, data: Any) -> ProcessRef | None:
        if isinstance(data, dict) and isinstance(data.get("pid"), int):
            ticks = data.get("startTicks")
            if isinstance(ticks, int):
                return cls(data["pid"], ticks)
        return None


def start_ticks(pid: int) -> int | None:
    """The process's start time (field 22 of /proc/PID/stat); None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(ref: ProcessRef) -> bool:
    return start_ticks(ref.pid) == ref.start_ticks


def signal_group(ref: ProcessRef, sig: int) -> bool:
    """Send `sig` to the process group the shim leads; False when it is gone already."""
    if not alive(ref):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(ref.pid, sig)
        return True
    return False


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a reader (or a restarted agent) sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


@dataclass
class Started:
    """A shim this agent started (a child it must reap) or adopted (found alive after a restart)."""

    ref: ProcessRef
    popen: subprocess.Popen[bytes] | None = None

    async def wait(self) -> None:
        """Until the process has ended (reaped, if it is our child)."""
        delay = FIRST_POLL_S
        while True:
            if self.popen is not None:
                if self.popen.poll() is not None:
                    return
            elif not alive(self.ref):
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_S)


def spawn_shim(
    argv: list[str],
    *,
    env: dict[str, str],
    workdir: str,
    attempt_dir: Path,
    log_path: Path,
    prefix: list[str] | None = None,
) -> Started:
    """Start `argv` under a shim in a session of its own, output appended to `log_path`.

    `prefix` enters the pod's sandbox first (`nsenter …` in namespace mode). The
    shim's PID and start time are recorded in `agent.json` at once, so an agent
    that dies right after this call still finds the process when it restarts.
    Raises OSError when even the shim cannot be started.
    """
    attempt_dir.mkdir(parents=True, exist_ok=True)
    command = [
        *(prefix or []),
        sys.executable,
        "-I",
        "-S",
        str(SHIM),
        "--dir",
        str(attempt_dir),
        "--workdir",
        workdir,
        "--",
        *argv,
    ]
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            cwd=attempt_dir,
            start_new_session=True,  # its own process group, and it outlives this agent
            close_fds=True,
        )
    ticks = start_ticks(popen.pid)
    if ticks is None:  # already gone: keep a reference that matches nothing alive
        ticks = -1
    started = Started(ProcessRef(popen.pid, ticks), popen)
    write_json(attempt_dir / "agent.json", started.ref.to_json())
    return started


def find_shim(attempt_dir: Path) -> ProcessRef | None:
    """The live shim of an attempt, from what the shim or the agent recorded."""
    for name in ("shim.json", "agent.json"):
        ref = ProcessRef.from_json(read_json(attempt_dir / name))
        if ref is not None and alive(ref):
            return ref
    return None


async def stop_group(started: Started, grace_s: float) -> None:
    """SIGTERM the process group, wait up to `grace_s`, then SIGKILL and wait for the end."""
    signal_group(started.ref, signal.SIGTERM)
    try:
        async with asyncio.timeout(max(grace_s, 0.0)):
            await started.wait()
        return
    except TimeoutError:
        pass
    signal_group(started.ref, signal.SIGKILL)
    # SIGKILL cannot be refused; the bound only guards against a process stuck in the kernel.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            await started.wait()
