"""Finding and reading a kubeconfig the way kubectl does: `--kubeconfig`, `$KUBECONFIG`, `~/.kube/config`."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class KubeconfigError(Exception):
    """The kubeconfig is missing or unusable; the message says which and why."""


@dataclass(frozen=True)
class ClusterAccess:
    """Where the API is and how to authenticate to it."""

    server: str
    namespace: str = "default"
    token: str | None = None
    ca_pem: bytes | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    insecure: bool = False

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.server.startswith("https://"):
            return None
        if self.insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_pem:
            ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        else:
            ctx = ssl.create_default_context()
        if self.client_cert_pem and self.client_key_pem:
            # ssl only loads certificates from files; keep them private and short-lived.
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = Path(tmp) / "client.crt", Path(tmp) / "client.key"
                cert.write_bytes(self.client_cert_pem)
                key.write_bytes(self.client_key_pem)
                ctx.load_cert_chain(cert, key)
        return ctx


def kubeconfig_path(explicit: str | None = None) -> Path:
    """The kubeconfig kubectl would use (the first file of `$KUBECONFIG` when it lists several)."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("KUBECONFIG")
    if env:
        for part in env.split(os.pathsep):
            if part:
                return Path(part).expanduser()
    return Path.home() / ".kube" / "config"


def _named(items: Any, name: str, what: str, path: Path) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(what)
            return body if isinstance(body, dict) else {}
    raise KubeconfigError(f"{path}: no {what} named {name!r}")


def _data(section: dict[str, Any], key: str, base: Path) -> bytes | None:
    """`<key>-data` (base64) or the file `<key>` (relative to the kubeconfig)."""
    if section.get(f"{key}-data"):
        return base64.b64decode(section[f"{key}-data"])
    if section.get(key):
        file = Path(section[key])
        return (file if file.is_absolute() else base / file).read_bytes()
    return None


def load_kubeconfig(explicit: str | None = None, context: str | None = None) -> ClusterAccess:
    """Read the kubeconfig and resolve its current (or the named) context."""
    path = kubeconfig_path(explicit)
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as err:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {err.strerror or err}") from err
    except yaml.YAMLError as err:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML") from err
    if not isinstance(config, dict):
        raise KubeconfigError(f"kubeconfig {path} is empty or not a mapping")
    name = context or config.get("current-context")
    if not name:
        raise KubeconfigError(f"{path}: no current-context set")
    ctx = _named(config.get("contexts"), name, "context", path)
    cluster = _named(config.get("clusters"), ctx.get("cluster", ""), "cluster", path)
    user = _named(config.get("users"), ctx.get("user", ""), "user", path) if ctx.get("user") else {}
    server = cluster.get("server")
    if not server:
        raise KubeconfigError(f"{path}: cluster {ctx.get('cluster')!r} has no server")
    base = path.parent
    try:
        token = user.get("token")
        if not token and user.get("tokenFile"):
            token = Path(user["tokenFile"]).read_text().strip()
        return ClusterAccess(
            server=server.rstrip("/"),
            namespace=ctx.get("namespace") or "default",
            token=token,
            ca_pem=_data(cluster, "certificate-authority", base),
            client_cert_pem=_data(user, "client-certificate", base),
            client_key_pem=_data(user, "client-key", base),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
        )
    except OSError as err:
        raise KubeconfigError(f"{path}: {err.filename}: {err.strerror}") from err
