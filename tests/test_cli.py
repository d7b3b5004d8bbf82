"""The `kubesvc` command as a user runs it: the installed console script, in a subprocess."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SEED_SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: my-service
spec:
  selector:
    app: MyApp
  ports:
    - name: http
      protocol: TCP
      port: 80
      targetPort: 9376
    - name: https
      protocol: TCP
      port: 443
      targetPort: 9377
"""

SEED_ENDPOINTS = """\
apiVersion: v1
kind: Endpoints
metadata:
  name: my-service
subsets:
  - addresses:
      - ip: 192.0.2.42
    ports:
      - port: 9376
"""


def kubesvc(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("kubesvc", path=str(Path(sys.executable).parent)) or "kubesvc"
    return subprocess.run([exe, *args], input=stdin, capture_output=True, text=True, timeout=60)


def listed_commands() -> list[str]:
    out = kubesvc("--help").stdout
    section = out.split("positional arguments:")[1].split("options:")[0]
    return re.findall(r"^    (\w[\w-]*)\s", section, re.MULTILINE)


def test_help_lists_only_commands_that_run() -> None:
    commands = listed_commands()
    assert "validate" in commands and "version" in commands
    for command in commands:
        result = kubesvc(command, "--help")
        assert result.returncode == 0, (command, result.stderr)


def test_version() -> None:
    result = kubesvc("version")
    assert result.returncode == 0
    assert re.fullmatch(r"kubesvc \d+\.\d+\.\d+\n", result.stdout)


def test_validate_accepts_the_seed_manifests(tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SEED_SERVICE + "---\n" + SEED_ENDPOINTS)
    result = kubesvc("validate", "-f", str(manifest))
    assert result.returncode == 0, result.stderr
    assert 'Service "my-service" is valid' in result.stdout
    assert 'Endpoints "my-service" is valid' in result.stdout


def test_validate_prints_the_defaulted_object() -> None:
    result = kubesvc("validate", "-f", "-", "-o", "json", stdin=SEED_SERVICE)
    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout)["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert [p["targetPort"] for p in spec["ports"]] == [9376, 9377]


def test_validate_reports_each_bad_field_like_kubectl(tmp_path: Path) -> None:
    bad = SEED_SERVICE.replace("name: https", "name: -web").replace(
        "name: http\n", "name: 123_abc\n"
    )
    result = kubesvc("validate", "-f", "-", stdin=bad)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == 'The Service "my-service" is invalid (-):'
    assert lines[1].startswith('* spec.ports[0].name: Invalid value: "123_abc"')
    assert lines[2].startswith('* spec.ports[1].name: Invalid value: "-web"')


def test_validate_rejects_loopback_endpoints() -> None:
    result = kubesvc("validate", "-f", "-", stdin=SEED_ENDPOINTS.replace("192.0.2.42", "127.0.0.1"))
    assert result.returncode == 1
    assert "subsets[0].addresses[0].ip" in result.stderr and "loopback" in result.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (
            ["validate", "-f", "/no/such/file.yaml"],
            None,
            "kubesvc: cannot read /no/such/file.yaml: No such file or directory",
        ),
        (
            ["validate", "-f", "-"],
            "kind: [unclosed",
            "kubesvc: cannot parse - (line 1): expected ',' or ']', but got '<stream end>'",
        ),
    ],
)
def test_bad_input_is_one_readable_line(args: list[str], stdin: str | None, expected: str) -> None:
    result = kubesvc(*args, stdin=stdin)
    assert result.returncode == 2
    assert result.stderr.strip() == expected


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        ("", "no user in group system:masters (the kubeconfig needs one)"),
        ("a,b\n", "line 1: expected token,user,uid[,groups]"),
    ],
)
def test_a_bad_tokens_file_is_one_readable_line(tmp_path: Path, tokens: str, expected: str) -> None:
    (tmp_path / "tokens.csv").write_text(tokens)
    result = kubesvc("apiserver", "--data-dir", str(tmp_path), "--api-port", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == f"kubesvc: tokens file {tmp_path / 'tokens.csv'}: {expected}"


def test_a_data_dir_that_cannot_be_made_is_one_readable_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")  # a file where a directory should go
    result = kubesvc("apiserver", "--data-dir", str(tmp_path / "file" / "data"), "--api-port", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"kubesvc: cannot use the data dir {tmp_path / 'file' / 'data'}: Not a directory"
    )


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--cluster-domain", "bad..zone"], "kubesvc: --cluster-domain 'bad..zone': a lowercase"),
        (["--upstream", "300.1.1.1"], "kubesvc: --upstream '300.1.1.1': '300.1.1.1' is not an IP"),
        (["--node-ip", "abc"], "kubesvc: --node-ip 'abc': not an IP address"),
        (["--cluster-dns", "nope"], "kubesvc: --cluster-dns 'nope': not an IP address"),
        (["--log-port", "99999"], "kubesvc: --log-port 99999: must be a port number"),
        (["--load-balancer-cidr", "10.0.0.1/8"], "kubesvc: --load-balancer-cidr '10.0.0.1/8'"),
    ],
)
def test_bad_flags_of_up_are_one_readable_line(
    tmp_path: Path, flags: list[str], expected: str
) -> None:
    result = kubesvc("up", "--data-dir", str(tmp_path), "--api-port", "0", *flags)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(expected), result.stderr
