"""What a test needs from the machine: without it, skip on a user's machine, fail under CI=true.

CI runs as root with every tool the Makefile installs, so there a missing
piece is a defect to report, not a reason to skip.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skip with `reason`, or fail with it when CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, but this test {reason}")
    pytest.skip(reason)


def require_tools(*binaries: str) -> None:
    """The commands must be on PATH (the Makefile's setup installs them as root)."""
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        unavailable(f"needs {', '.join(missing)} (installed by `make setup` as root)")


def require_root_tools(*binaries: str, what: str = "network namespaces") -> None:
    """Root (for `what`) and the commands."""
    if os.geteuid() != 0:
        unavailable(f"needs root ({what})")
    require_tools(*binaries)
