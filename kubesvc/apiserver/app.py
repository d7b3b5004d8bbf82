"""Starting and stopping an API server: data dir, store, certificates, tokens, kubeconfig, HTTPS."""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from aiohttp import web

from kubesvc.allocator.ranges import (
    DEFAULT_NODE_PORT_RANGE,
    DEFAULT_POD_CIDR,
    DEFAULT_SERVICE_CIDR,
    Network,
    PortRange,
    ServiceCIDR,
    parse_pod_cidr,
    parse_port_range,
    parse_service_cidr,
)
from kubesvc.allocator.repair import RepairLoop
from kubesvc.allocator.service import ServiceAllocator
from kubesvc.api import formats, validation
from kubesvc.api.errors import StatusError
from kubesvc.apiserver.auth import (
    Authenticator,
    TokenFileError,
    ensure_tokens_file,
    parse_tokens,
)
from kubesvc.apiserver.certs import ensure_certificates
from kubesvc.apiserver.resources import BY_KIND
from kubesvc.apiserver.rest import Preconditions, Rest, WriteOptions
from kubesvc.apiserver.server import APIServer
from kubesvc.storage.etcd import EtcdStore, TLSFiles
from kubesvc.storage.interface import Store
from kubesvc.storage.sqlite import SqliteStore

log = logging.getLogger("kubesvc.apiserver")

SERVICES = BY_KIND["Service"]
ENDPOINTS = BY_KIND["Endpoints"]
DEFAULT_REPAIR_INTERVAL_S = 60.0


@dataclass
class APIServerConfig:
    """How to run one API server. The ranges are parsed values (see `kubesvc.allocator.ranges`)."""

    data_dir: Path
    bind_address: str = "127.0.0.1"
    port: int = 6443  # 0: pick a free port
    tokens_file: Path | None = None
    max_watches: int = 1000
    watch_bookmark_s: float = 5.0  # idle time before a watch with bookmarks gets one
    extra_cert_names: tuple[str, ...] = ()
    service_cidr: ServiceCIDR = field(
        default_factory=lambda: parse_service_cidr(DEFAULT_SERVICE_CIDR)
    )
    node_port_range: PortRange = field(
        default_factory=lambda: parse_port_range(DEFAULT_NODE_PORT_RANGE)
    )
    pod_cidr: Network = field(default_factory=lambda: parse_pod_cidr(DEFAULT_POD_CIDR))
    repair_interval: float = DEFAULT_REPAIR_INTERVAL_S
    # The `kubernetes` Service in `default`. `kubesvc up` / `kubesvc apiserver`
    # always make it; it is off for in-process servers by default because tests
    # that embed one watch `default` and count on it being empty.
    kubernetes_service: bool = False
    # "sqlite" (data_dir/kubesvc.db, this server alone) or
    # "etcd://host:port[,host:port...][/prefix]" (shared by every API server on it).
    storage: str = "sqlite"
    etcd_tls: TLSFiles | None = None


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
    allocator: ServiceAllocator
    repair: RepairLoop
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
        await self.repair.close()
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


def validation_context(pod_cidr: Network) -> validation.Context:
    """Validation's cluster facts: host-mode pods live in a loopback `--pod-cidr`."""
    return validation.Context(pod_loopback_cidrs=(pod_cidr,) if pod_cidr.is_loopback else ())


async def ensure_kubernetes_service(
    rest: Rest, cidr: ServiceCIDR, address: str, port: int, pod_cidr: Network
) -> None:
    """The `kubernetes` Service in `default`: 443 → the API's port, on the range's first address.

    As in Kubernetes it has no selector; its Endpoints are written here, by
    hand, pointing at the API server — when that address is a valid endpoint.
    In host mode the API listens on 127.0.0.1, a loopback address that
    endpoint validation refuses (only the pod range is exempt), so there is no
    Endpoints then: clients inside the cluster reach the API by the kubeconfig's
    address instead of through the Service.
    """
    spec_ports = [{"name": "https", "protocol": "TCP", "port": 443, "targetPort": port}]
    try:
        current = await rest.get(SERVICES, "default", "kubernetes")
    except StatusError as err:
        if err.code != 404:
            raise
        service = {
            "metadata": {
                "name": "kubernetes",
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {"type": "ClusterIP", "clusterIP": cidr.first, "ports": spec_ports},
        }
        try:
            await rest.create(SERVICES, "default", service, WriteOptions())
        except StatusError as err:
            if err.code == 409:  # another API server made it first
                pass
            elif err.code == 422:
                # The first address is held (the range changed under existing Services).
                log.warning("kubernetes Service: %s; allocating another address", err.message)
                del service["spec"]["clusterIP"]
                await rest.create(SERVICES, "default", service, WriteOptions())
            else:
                raise
    else:
        if current["spec"].get("ports") != spec_ports:
            # The API port changed since the last run (--api-port 0 picks a new one).
            await rest.patch(
                SERVICES,
                "default",
                "kubernetes",
                "application/merge-patch+json",
                {"spec": {"ports": spec_ports}},
                WriteOptions(),
            )
        ip = current["spec"].get("clusterIP", "")
        if cidr.offset_of(ip) is None:
            log.warning(
                "kubernetes Service: its ClusterIP %s is outside --service-cidr %s", ip, cidr
            )
    if formats.endpoint_ip(address, (pod_cidr,) if pod_cidr.is_loopback else ()):
        log.info(
            "kubernetes Service: no Endpoints: the API address %s is not a valid endpoint "
            "address (loopback or unspecified)",
            address,
        )
        try:  # one written by an earlier run on another address would now be wrong
            await rest.delete(ENDPOINTS, "default", "kubernetes", Preconditions())
        except StatusError as err:
            if err.code != 404:
                raise
        return
    endpoints = {
        "metadata": {"name": "kubernetes", "namespace": "default"},
        "subsets": [
            {
                "addresses": [{"ip": address}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }
        ],
    }
    await rest.update(ENDPOINTS, "default", "kubernetes", endpoints, WriteOptions())


async def open_store(config: APIServerConfig) -> Store:
    """The store `config.storage` names: the embedded SQLite file, or an etcd cluster."""
    if config.storage == "sqlite":
        return await SqliteStore.open(config.data_dir / "kubesvc.db")
    if config.storage.startswith("etcd://"):
        return await EtcdStore.open(config.storage, tls=config.etcd_tls)
    raise ValueError(f"unknown storage {config.storage!r}: expected sqlite or etcd://…")


class DataDirError(Exception):
    """The data dir (certificates, tokens, database) cannot be made or read."""


async def start_apiserver(config: APIServerConfig, store: Store | None = None) -> RunningAPIServer:
    """Open storage (unless given), serve HTTPS, write the kubeconfig.

    Ready once the initial namespaces exist, a first repair pass has reconciled
    the allocations, and the `kubernetes` Service is in place.
    """
    data_dir = config.data_dir
    tokens_file = config.tokens_file or data_dir / "tokens.csv"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        certs = ensure_certificates(data_dir, config.extra_cert_names)
        admin_token = ensure_tokens_file(tokens_file)
        users = parse_tokens(tokens_file.read_text())
    except TokenFileError as err:
        raise DataDirError(f"tokens file {tokens_file}: {err}") from err
    except OSError as err:
        what = f" ({err.filename})" if err.filename and Path(err.filename) != data_dir else ""
        raise DataDirError(
            f"cannot use the data dir {data_dir}{what}: {err.strerror or err}"
        ) from err
    own_store = store is None
    if store is None:
        store = await open_store(config)
    try:
        allocator = ServiceAllocator(store, config.service_cidr, config.node_port_range)
        context = validation_context(config.pod_cidr)
        rest = Rest(store, context=lambda: context, allocator=allocator)
        await rest.ensure_initial_namespaces()
        # Kubernetes repairs before serving, so no request allocates from a stale view.
        repair = RepairLoop(store, allocator, config.repair_interval)
        await repair.run_once()
        api = APIServer(
            rest,
            Authenticator(users),
            max_watches=config.max_watches,
            watch_bookmark_s=config.watch_bookmark_s,
        )
        if isinstance(store, EtcdStore):
            # Not ready while no etcd member will follow our changes for us.
            etcd_store = store
            api.ready_checks.append(lambda: etcd_store.connected)
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(certs.cert, certs.key)
        # Cancel a handler when its client goes away, so idle watches end with their connection.
        runner = web.AppRunner(
            api.app(), handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, config.bind_address, config.port, ssl_context=ssl_context)
        await site.start()
        port = int(runner.addresses[0][1])
        if config.kubernetes_service:
            try:
                await ensure_kubernetes_service(
                    rest, config.service_cidr, config.bind_address, port, config.pod_cidr
                )
            except BaseException:
                await runner.cleanup()
                raise
    except BaseException:
        if own_store:
            await store.close()
        raise
    running = RunningAPIServer(
        config,
        store,
        api,
        runner,
        port,
        data_dir / "kubeconfig",
        admin_token,
        certs.ca_cert,
        allocator,
        repair,
    )
    write_kubeconfig(running.kubeconfig, running.url, certs.ca_cert.read_bytes(), admin_token)
    repair.start()
    api.ready = True
    return running


async def serve_forever(stop: asyncio.Event, running: RunningAPIServer) -> None:
    try:
        await stop.wait()
    finally:
        await running.close()
