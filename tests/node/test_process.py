"""The shim and process handling: exit codes, start errors, signals, no process left behind."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from kubesvc.node.process import (
    ProcessRef,
    Started,
    alive,
    find_shim,
    read_json,
    spawn_shim,
    start_ticks,
    stop_group,
)

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def spawn(tmp_path: Path, argv: list[str], workdir: str | None = None) -> Started:
    return spawn_shim(
        argv,
        env=ENV,
        workdir=workdir or str(tmp_path),
        attempt_dir=tmp_path / "0",
        log_path=tmp_path / "out.log",
    )


async def ended(started: Started, timeout_s: float = 10) -> None:
    await asyncio.wait_for(started.wait(), timeout_s)


async def test_exit_code_output_and_records(tmp_path: Path) -> None:
    started = spawn(tmp_path, ["sh", "-c", "echo out; echo err >&2; pwd; exit 3"])
    await ended(started)
    exit_info = read_json(tmp_path / "0" / "exit.json")
    assert exit_info is not None and exit_info["exitCode"] == 3
    shim = read_json(tmp_path / "0" / "shim.json")
    assert shim is not None and shim["pid"] == started.ref.pid
    assert shim["startTicks"] == started.ref.start_ticks
    assert (tmp_path / "out.log").read_text() == f"out\nerr\n{tmp_path}\n"
    assert not alive(started.ref) and find_shim(tmp_path / "0") is None


async def test_a_command_that_cannot_start(tmp_path: Path) -> None:
    started = spawn(tmp_path, ["/no/such/program"])
    await ended(started)
    info = read_json(tmp_path / "0" / "exit.json")
    assert info is not None
    assert (info["exitCode"], info["reason"]) == (128, "StartError")
    assert "/no/such/program" in info["message"]
    assert "cannot start" in (tmp_path / "out.log").read_text()


async def test_a_missing_working_dir(tmp_path: Path) -> None:
    started = spawn(tmp_path, ["true"], workdir=str(tmp_path / "missing"))
    await ended(started)
    info = read_json(tmp_path / "0" / "exit.json")
    assert info is not None and info["reason"] == "StartError"
    assert "does not exist" in info["message"]


async def test_sigterm_reaches_the_process_and_is_reported(tmp_path: Path) -> None:
    started = spawn(tmp_path, ["sleep", "30"])
    await asyncio.sleep(0.2)
    assert find_shim(tmp_path / "0") == started.ref  # what a restarted agent would adopt
    begun = time.monotonic()
    await stop_group(started, grace_s=5)
    assert time.monotonic() - begun < 2
    info = read_json(tmp_path / "0" / "exit.json")
    assert info is not None and (info["exitCode"], info["signal"]) == (143, 15)


async def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(
    tmp_path: Path,
) -> None:
    started = spawn(tmp_path, ["sh", "-c", "trap '' TERM; echo armed; sleep 30"])
    for _ in range(100):  # until the trap is set
        if (tmp_path / "out.log").exists() and "armed" in (tmp_path / "out.log").read_text():
            break
        await asyncio.sleep(0.02)
    begun = time.monotonic()
    await stop_group(started, grace_s=0.5)
    assert 0.5 <= time.monotonic() - begun < 3
    assert not alive(started.ref)
    # SIGKILL took the shim too: no exit.json, the agent reports 137.
    assert read_json(tmp_path / "0" / "exit.json") is None


async def test_nothing_of_the_group_outlives_the_command(tmp_path: Path) -> None:
    started = spawn(tmp_path, ["sh", "-c", "sleep 30 & echo $! > child.pid; exit 0"])
    await ended(started)
    child = int((tmp_path / "child.pid").read_text())
    for _ in range(50):
        if start_ticks(child) is None:
            break
        await asyncio.sleep(0.02)
    assert start_ticks(child) is None
    info = read_json(tmp_path / "0" / "exit.json")
    assert info is not None and info["exitCode"] == 0


def test_a_pid_with_another_start_time_is_not_alive() -> None:
    me = os.getpid()
    ticks = start_ticks(me)
    assert ticks is not None
    assert alive(ProcessRef(me, ticks))
    assert not alive(ProcessRef(me, ticks + 1))  # the same PID, reused by another process
