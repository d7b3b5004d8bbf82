"""Starting and stopping an API server: data dir, store, certificates, tokens, kubeconfig, HTTPS."""

from __future__ import annotations

import asyncio
import base64
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from aiohttp import web

from kubesvc.apiserver.auth import Authenticator, ensure_tokens_file, parse_tokens
from kubesvc.apiserver.certs import ensure_certificates
from kubesvc.apiserver.rest import Rest
from kubesvc.apiserver.server import APIServer
from kubesvc.storage.interface import Store
from kubesvc.storage.sqlite import SqliteStore


@dataclass
class APIServerConfig:
    data_dir: Path
    bind_address: str = "127.0.0.1"
    port: int = 6443  # 0: pick a free port
    tokens_file: Path | None = None
    max_watches: int = 1000
    extra_cert_names: tuple[str, ...] = ()


@dataclass
class RunningAPIServer:
    config: APIServerConfig
    store: Store
    api: APIServer
    runner: web.AppRunner
    port: int
    kubeconfig: Path
    admin_token: str
    ca_file: Path
    _closed: bool = field(default=False)

    @property
    def url(self) -> str:
        host = self.config.bind_address
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"https://{host}:{self.port}"

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.api.ready = False
        await self.runner.cleanup()
        await self.store.close()


def write_kubeconfig(path: Path, server: str, ca_pem: bytes, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kubesvc",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [
            {
                "name": "kubesvc",
                "context": {"cluster": "kubesvc", "user": "admin", "namespace": "default"},
            }
        ],
        "current-context": "kubesvc",
        "preferences": {},
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)


async def start_apiserver(config: APIServerConfig, store: Store | None = None) -> RunningAPIServer:
    """Open storage (unless given), serve HTTPS, write the kubeconfig; ready once namespaces exist."""
    data_dir = config.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    certs = ensure_certificates(data_dir, config.extra_cert_names)
    tokens_file = config.tokens_file or data_dir / "tokens.csv"
    admin_token = ensure_tokens_file(tokens_file)
    users = parse_tokens(tokens_file.read_text())
    own_store = store is None
    if store is None:
        store = await SqliteStore.open(data_dir / "kubesvc.db")
    try:
        rest = Rest(store)
        await rest.ensure_initial_namespaces()
        api = APIServer(rest, Authenticator(users), max_watches=config.max_watches)
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(certs.cert, certs.key)
        # Cancel a handler when its client goes away, so idle watches end with their connection.
        runner = web.AppRunner(api.app(), handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(
            runner, config.bind_address, config.port, ssl_context=ssl_context, shutdown_timeout=1.0
        )
        await site.start()
    except BaseException:
        if own_store:
            await store.close()
        raise
    server = runner.addresses[0]
    port = int(server[1])
    running = RunningAPIServer(
        config, store, api, runner, port, data_dir / "kubeconfig", admin_token, certs.ca_cert
    )
    write_kubeconfig(running.kubeconfig, running.url, certs.ca_cert.read_bytes(), admin_token)
    api.ready = True
    return running


async def serve_forever(stop: asyncio.Event, running: RunningAPIServer) -> None:
    try:
        await stop.wait()
    finally:
        await running.close()
