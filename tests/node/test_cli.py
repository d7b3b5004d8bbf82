"""`kubesvc node` and `kubesvc env` as a user runs them: bad flags are one readable line, exit 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.apiserver.conftest import KUBESVC


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBESVC, *args], capture_output=True, text=True, timeout=30, env=env or dict(os.environ)
    )


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig for an API that is not there (port 9 on loopback: discard, never served)."""
    path = tmp_path / "kubeconfig"
    config = {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "ns1"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--pod-cidr", "198.18.0.0/24"], "--pod-network host needs a loopback --pod-cidr"),
        (["--pod-cidr", "nope"], "--pod-cidr 'nope': not a CIDR"),
        (["--node-name", "Bad_Name"], "--node-name 'Bad_Name': "),
        (["--restart-backoff", "5", "--restart-backoff-max", "1"], "--restart-backoff must be"),
    ],
)
def test_bad_node_flags(kubeconfig: Path, tmp_path: Path, flags: list[str], message: str) -> None:
    result = run("node", "--kubeconfig", str(kubeconfig), "--data-dir", str(tmp_path), *flags)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"kubesvc: {message}"), lines


def test_up_checks_its_node_flags_before_starting(tmp_path: Path) -> None:
    result = run("up", "--data-dir", str(tmp_path), "--node-name", "Bad_Name")
    assert result.returncode == 2 and "--node-name" in result.stderr
    assert not (tmp_path / "kubeconfig").exists()


def test_env_finds_the_cluster_like_kubectl(kubeconfig: Path, tmp_path: Path) -> None:
    missing = run("env", "--kubeconfig", str(tmp_path / "none"))
    assert missing.returncode == 2 and "cannot read kubeconfig" in missing.stderr
    # Through $KUBECONFIG; the API is not there, which is one line too.
    down = run("env", env={**os.environ, "KUBECONFIG": str(kubeconfig)})
    assert down.returncode == 2
    assert down.stderr.startswith("kubesvc: cannot reach the API server at https://127.0.0.1:9")
    assert len(down.stderr.splitlines()) == 1
