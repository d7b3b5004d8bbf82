"""`--storage` and `--etcd-*` flags: a bad value is one readable line, before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli import kubesvc


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ["--storage", "mysql://db"],
            "kubesvc: --storage: 'mysql://db': expected etcd://host:port[,host:port...][/prefix]; "
            "or sqlite",
        ),
        (
            ["--storage", "etcd://a:b"],
            "kubesvc: --storage: bad etcd endpoint 'a:b': port is not a number; or sqlite",
        ),
        (["--etcd-cafile", "/etc/hostname"], "kubesvc: --etcd-cafile needs --storage etcd://…"),
        (
            ["--storage", "etcd://127.0.0.1:2379", "--etcd-certfile", "/etc/hostname"],
            "kubesvc: --etcd-certfile and --etcd-keyfile go together",
        ),
        (
            ["--storage", "etcd://127.0.0.1:2379", "--etcd-cafile", "/no/such/ca.crt"],
            "kubesvc: --etcd-cafile /no/such/ca.crt: no such file",
        ),
    ],
)
def test_bad_storage_flags_are_one_line(flags: list[str], expected: str, tmp_path: Path) -> None:
    for command in ("apiserver", "up"):
        result = kubesvc(command, "--data-dir", str(tmp_path), "--api-port", "0", *flags)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == expected
    assert list(tmp_path.iterdir()) == [], "nothing may start on bad flags"
