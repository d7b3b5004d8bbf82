"""`kubesvc up` / `kubesvc apiserver` range flags: a bad value is one readable line, exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kubesvc import cli
from tests.apiserver.conftest import KUBESVC


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--service-cidr", "10.0.0.0/33"],
            "kubesvc: --service-cidr '10.0.0.0/33': not a CIDR",
        ),
        (
            ["--service-cidr", "127.96.0.1/12"],
            "kubesvc: --service-cidr 127.96.0.1/12: has host bits set; did you mean 127.96.0.0/12?",
        ),
        (
            ["--service-cidr", "fd00::/108"],
            "kubesvc: --service-cidr fd00::/108: IPv6 service ranges are not supported yet",
        ),
        (
            ["--service-node-port-range", "32767-30000"],
            "kubesvc: --service-node-port-range 32767-30000: the last port is below the first",
        ),
        (["--pod-cidr", "nope"], "kubesvc: --pod-cidr 'nope': not a CIDR"),
        (
            ["--service-cidr", "127.0.0.0/8"],
            "kubesvc: --service-cidr 127.0.0.0/8 overlaps --pod-cidr 127.244.0.0/16",
        ),
        (["--repair-interval", "0"], "kubesvc: --repair-interval 0.0: must be more than 0"),
    ],
)
def test_bad_range_flags(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["apiserver", "--data-dir", str(tmp_path), *flags]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), lines
    assert not (tmp_path / "kubeconfig").exists()  # nothing started


@pytest.mark.parametrize("command", ["up", "apiserver"])
def test_the_installed_command_checks_before_starting(command: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [KUBESVC, command, "--data-dir", str(tmp_path), "--service-cidr", "10.0.0.0/33"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "kubesvc: --service-cidr '10.0.0.0/33': not a CIDR "
        "('10.0.0.0/33' does not appear to be an IPv4 or IPv6 network)\n"
    )
    assert not tmp_path.joinpath("kubeconfig").exists()
