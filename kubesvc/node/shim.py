"""The keeper of one container process (what containerd-shim is to a container).

Run as a script with the standard library only (`python -I -S shim.py`), so
it starts in milliseconds and does not depend on the agent's packages:

    shim.py --dir ATTEMPT_DIR [--workdir DIR] -- COMMAND [ARG...]

It starts COMMAND in DIR, waits for it, and writes what happened into
ATTEMPT_DIR, so the agent learns a container's exit code even when the agent
itself was not running at the time (a restarted agent reads it):

- `shim.json`: the shim's PID and its /proc start time (to tell it from a
  later process with the same PID), the child's PID, the start time.
- `exit.json`: the exit code (128 + signal for a signal, as Kubernetes
  reports it), the signal, the finish time; or exit code 128 with reason
  `StartError` when COMMAND could not be started at all.

The agent starts the shim in a session of its own, so signals go to the
shim's process group: the shim itself ignores SIGTERM/SIGINT/SIGHUP (the
child gets them from the group signal), and once the child has ended the
shim kills what is left of the group — like a container whose cgroup goes
away, a pod's process leaves nothing running behind it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _start_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        stat = f.read()
    # The command name may hold spaces and parentheses: fields follow the last ")".
    return int(stat.rsplit(")", 1)[1].split()[19])


def _write(directory: str, name: str, data: dict[str, object]) -> None:
    tmp = os.path.join(directory, f".{name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(directory, name))


def _ignore(signum: int, frame: object) -> None:
    """A handler, not SIG_IGN: handlers are reset by exec, so the child keeps the defaults."""


def _others_in_group() -> bool:
    me, group = os.getpid(), os.getpgrp()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def main(argv: list[str]) -> int:
    directory, workdir = "", None
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] == "--dir":
            directory, i = argv[i + 1], i + 2
        elif argv[i] == "--workdir":
            workdir, i = argv[i + 1], i + 2
        else:
            print(f"shim: unknown argument {argv[i]!r}", file=sys.stderr)
            return 2
    command = argv[i + 1 :]
    if not directory or not command:
        print("usage: shim.py --dir DIR [--workdir DIR] -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _ignore)
    started = _now()
    try:
        child = subprocess.Popen(command, cwd=workdir, stdin=subprocess.DEVNULL)
    except OSError as err:
        message = f"cannot start {command[0]!r}: {err.strerror or err}"
        if workdir and not os.path.isdir(workdir):
            message = f"workingDir {workdir!r} does not exist"
        print(f"kubesvc: {message}", file=sys.stderr, flush=True)
        _write(
            directory,
            "exit.json",
            {"exitCode": 128, "reason": "StartError", "message": message, "finishedAt": _now()},
        )
        return 128
    _write(
        directory,
        "shim.json",
        {
            "pid": os.getpid(),
            "startTicks": _start_ticks(os.getpid()),
            "childPid": child.pid,
            "startedAt": started,
        },
    )
    code = child.wait()
    result: dict[str, object] = {"startedAt": started, "finishedAt": _now()}
    if code < 0:
        result |= {"exitCode": 128 - code, "signal": -code}
    else:
        result["exitCode"] = code
    _write(directory, "exit.json", result)
    sys.stdout.flush()
    if _others_in_group():
        os.killpg(os.getpgrp(), signal.SIGKILL)  # takes the shim too; exit.json is written
    return int(result["exitCode"])  # type: ignore[call-overload]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
