"""A real API server process for the tests of this folder, and clients that talk to it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

KUBESVC = str(Path(sys.executable).parent / "kubesvc")
KUBECTL_DIR = "/usr/lib/google-cloud-sdk/bin"


@dataclass
class Cluster:
    data_dir: Path
    kubeconfig: Path
    url: str
    token: str
    ca_file: Path
    cache_dir: Path
    process: subprocess.Popen[str]

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        token: str | None = "admin",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """One HTTPS request; returns (status, decoded JSON or text, headers)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        if token == "admin":
            req.add_header("Authorization", f"Bearer {self.token}")
        elif token:
            req.add_header("Authorization", f"Bearer {token}")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=30) as resp:
                status, payload, hdrs = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as err:
            status, payload, hdrs = err.code, err.read(), dict(err.headers)
        try:
            return status, json.loads(payload), hdrs
        except ValueError:
            return status, payload.decode(errors="replace"), hdrs

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        version: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        exe = (
            f"{KUBECTL_DIR}/kubectl.{version}" if version else shutil.which("kubectl") or "kubectl"
        )
        cmd = [exe, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir), *args]
        result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    def viewer_token(self) -> str:
        for line in (self.data_dir / "tokens.csv").read_text().splitlines():
            token, user = line.split(",")[:2]
            if user == "viewer":
                return token
        raise AssertionError("no viewer token")


def start_cluster(
    data_dir: Path, command: str = "apiserver", *extra: str, log_name: str = "apiserver.log"
) -> Cluster:
    """Run `kubesvc <command>` on a fresh port and wait until its API answers /readyz.

    The log is appended to, so a restart on the same data dir keeps the earlier run's.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / log_name
    kubeconfig = data_dir / "kubeconfig"
    kubeconfig.unlink(missing_ok=True)  # a restart must not read the last run's address
    with log_path.open("a") as log:
        process = subprocess.Popen(
            [KUBESVC, command, "--data-dir", str(data_dir), "--api-port", "0", *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"kubesvc {command} exited: {log_path.read_text()}")
        if kubeconfig.exists():
            config = yaml.safe_load(kubeconfig.read_text())
            cluster = Cluster(
                data_dir,
                kubeconfig,
                config["clusters"][0]["cluster"]["server"],
                config["users"][0]["user"]["token"],
                data_dir / "ca.crt",
                data_dir / "kubectl-cache",
                process,
            )
            try:
                status, _, _ = cluster.request("GET", "/readyz", token=None)
                if status == 200:
                    return cluster
            except OSError:
                pass
        time.sleep(0.05)
    stop_cluster(process)
    raise AssertionError(f"kubesvc {command} did not become ready in 30 s")


def stop_cluster(process: subprocess.Popen[str], grace_s: float = 10) -> None:
    """SIGTERM a kubesvc process, SIGKILL it if it is still there after `grace_s`."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield running
    stop_cluster(running.process)
    assert running.process.returncode == 0, (running.data_dir / "apiserver.log").read_text()
