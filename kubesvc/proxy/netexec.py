"""The one place where the kernel modes run commands: iptables-restore, nft, conntrack, ipvsadm.

Backends get an `Executor` injected, so that unit tests run them on a fake
that records what would have been run, and root tests run them inside a
network namespace of their own (`NetExec(netns="kst-…")`), never against
the host's rules.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("kubesvc.proxy")


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class ExecError(RuntimeError):
    """A command the proxy needed failed; the message carries its stderr."""

    def __init__(self, result: Result) -> None:
        self.result = result
        text = result.stderr.strip() or result.stdout.strip()
        super().__init__(f"{' '.join(result.argv[:3])} exited {result.returncode}: {text[:2000]}")


class Executor(Protocol):
    def run(self, argv: Sequence[str], stdin: str | None = None, check: bool = True) -> Result:
        """Run `argv` (with `stdin` as input); ExecError when it fails and `check`."""
        ...


class NetExec:
    """Runs commands for real, in the network namespace `netns` when given (`ip netns exec`)."""

    def __init__(self, netns: str | None = None, timeout_s: float = 120.0) -> None:
        self.netns = netns
        self.timeout_s = timeout_s

    def run(self, argv: Sequence[str], stdin: str | None = None, check: bool = True) -> Result:
        full = ["ip", "netns", "exec", self.netns, *argv] if self.netns else list(argv)
        proc = subprocess.run(
            full,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=self.timeout_s,
            check=False,
        )
        result = Result(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
        if check and not result.ok:
            raise ExecError(result)
        return result


@dataclass
class FakeExec:
    """Records commands instead of running them; `responder` may script answers (tests)."""

    calls: list[tuple[tuple[str, ...], str | None]] = field(default_factory=list)
    responder: Callable[[tuple[str, ...], str | None], Result | None] | None = None

    def run(self, argv: Sequence[str], stdin: str | None = None, check: bool = True) -> Result:
        args = tuple(argv)
        self.calls.append((args, stdin))
        result = self.responder(args, stdin) if self.responder else None
        if result is None:
            result = Result(args, 0)
        if check and not result.ok:
            raise ExecError(result)
        return result

    def commands(self, name: str) -> list[tuple[tuple[str, ...], str | None]]:
        return [c for c in self.calls if c[0] and c[0][0] == name]


def have_binaries(*names: str) -> list[str]:
    """The names in `names` that are not on PATH."""
    return [n for n in names if shutil.which(n) is None]


def is_root() -> bool:
    return os.geteuid() == 0
