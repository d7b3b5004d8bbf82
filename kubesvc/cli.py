"""The `kubesvc` command.

Only commands that exist and work are registered. Long-running commands
share one runner: start the parts, wait for SIGINT/SIGTERM, stop them in
reverse order.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kubesvc.allocator import ranges
from kubesvc.api import defaults, validation

if TYPE_CHECKING:
    from kubesvc.apiserver.app import APIServerConfig, RunningAPIServer
    from kubesvc.client.kubeconfig import ClusterAccess
    from kubesvc.controllers.loadbalancer import Pool
    from kubesvc.controllers.manager import ControllerManager
    from kubesvc.dns.server import DNSConfig, DNSServer
    from kubesvc.node.agent import NodeAgent, NodeConfig
    from kubesvc.proxy.server import ProxyConfig, ProxyServer


class CLIError(Exception):
    """A failure to report to the user as one readable line."""


def _version() -> str:
    try:
        return version("kubesvc")
    except PackageNotFoundError:
        return "unknown"


def _read_documents(path: str) -> Iterator[tuple[str, Any]]:
    """Objects in a manifest file (`-` = stdin): YAML or JSON, several documents, `List`s flattened."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise CLIError(f"cannot read {path}: {err.strerror or err}") from err
    try:
        docs = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise CLIError(f"cannot parse {path}{where}: {problem}") from err
    for i, doc in enumerate(docs):
        label = f"{path} document {i + 1}" if len(docs) > 1 else path
        if (
            isinstance(doc, dict)
            and doc.get("kind") == "List"
            and isinstance(doc.get("items"), list)
        ):
            for j, item in enumerate(doc["items"]):
                yield f"{label} item {j + 1}", item
        else:
            yield label, doc


def _describe(obj: Any) -> str:
    if not isinstance(obj, dict):
        return "object"
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return f'{obj.get("kind", "object")} "{meta.get("name") or meta.get("generateName") or ""}"'


def cmd_validate(args: argparse.Namespace) -> int:
    """Default and validate manifests offline, as the API server would on create."""
    failed = 0
    shown: list[Any] = []
    for path in args.filename:
        for label, obj in _read_documents(path):
            if isinstance(obj, dict) and obj.get("kind") in validation.VALIDATORS:
                meta = obj.setdefault("metadata", {})
                if isinstance(meta, dict) and obj["kind"] != "Namespace":
                    meta.setdefault("namespace", args.namespace)
            defaults.apply_defaults(obj)
            errors = validation.validate(obj)
            if errors:
                failed += 1
                print(f"The {_describe(obj)} is invalid ({label}):", file=sys.stderr)
                for err in errors:
                    print(f"* {err}", file=sys.stderr)
            else:
                shown.append(obj)
                if not args.output:
                    print(f"{_describe(obj)} is valid ({label})")
    if args.output == "json":
        print(
            json.dumps(
                shown[0]
                if len(shown) == 1
                else {"kind": "List", "apiVersion": "v1", "items": shown},
                indent=2,
            )
        )
    elif args.output == "yaml":
        print(yaml.safe_dump_all(shown, sort_keys=False), end="")
    return 1 if failed else 0


def _default_data_dir() -> str:
    return str(Path.home() / ".local" / "share" / "kubesvc")


def _apiserver_config(args: argparse.Namespace) -> APIServerConfig:
    """The API server's config from the flags; a bad range is one CLIError line."""
    from kubesvc.apiserver.app import APIServerConfig

    try:
        service_cidr = ranges.parse_service_cidr(args.service_cidr)
        node_ports = ranges.parse_port_range(args.service_node_port_range)
        pod_cidr = ranges.parse_pod_cidr(args.pod_cidr)
    except ValueError as err:
        raise CLIError(str(err)) from None
    if service_cidr.network.overlaps(pod_cidr):
        raise CLIError(
            f"--service-cidr {service_cidr} overlaps --pod-cidr {pod_cidr}: "
            "ClusterIPs and pod addresses must not mix"
        )
    if not args.repair_interval > 0:
        raise CLIError(f"--repair-interval {args.repair_interval}: must be more than 0 seconds")
    storage, etcd_tls = _storage_flags(args)
    return APIServerConfig(
        data_dir=Path(args.data_dir).expanduser().resolve(),
        bind_address=args.bind_address,
        port=args.api_port,
        service_cidr=service_cidr,
        node_port_range=node_ports,
        pod_cidr=pod_cidr,
        repair_interval=args.repair_interval,
        kubernetes_service=True,
        # Clients on other machines reach the API at its bind address: the certificate names it.
        extra_cert_names=()
        if args.bind_address in ("0.0.0.0", "::", "127.0.0.1")
        else (args.bind_address,),
        storage=storage,
        etcd_tls=etcd_tls,
    )


def _storage_flags(args: argparse.Namespace) -> tuple[str, Any]:
    """--storage and the --etcd-* TLS files, checked; (storage, TLSFiles or None)."""
    from kubesvc.storage.etcd_gateway import TLSFiles, parse_etcd_url

    storage = args.storage
    tls_files = {
        flag: getattr(args, flag.replace("-", "_"))
        for flag in ("etcd-cafile", "etcd-certfile", "etcd-keyfile")
    }
    given = {flag: Path(value).expanduser() for flag, value in tls_files.items() if value}
    if storage == "sqlite":
        if given:
            raise CLIError(f"--{next(iter(given))} needs --storage etcd://…")
        return storage, None
    try:
        parse_etcd_url(storage)
    except ValueError as err:
        raise CLIError(f"--storage: {err}; or sqlite") from None
    if ("etcd-certfile" in given) != ("etcd-keyfile" in given):
        raise CLIError("--etcd-certfile and --etcd-keyfile go together")
    for flag, path in given.items():
        if not path.is_file():
            raise CLIError(f"--{flag} {path}: no such file")
    if not given:
        return storage, None
    return storage, TLSFiles(
        given.get("etcd-cafile"), given.get("etcd-certfile"), given.get("etcd-keyfile")
    )


def _dump_tasks() -> None:
    """SIGUSR1: where every task waits, on stderr (what a stuck process is doing)."""
    tasks = asyncio.all_tasks()
    print(f"--- {len(tasks)} asyncio tasks (SIGUSR1)", file=sys.stderr)
    for task in tasks:
        task.print_stack(limit=8, file=sys.stderr)
    sys.stderr.flush()


def _run_async(main: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run `main(stop)` on uvloop (when present) until SIGINT/SIGTERM sets `stop`."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # uvloop is optional: the stdlib loop works, slower
        pass

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
        await main(stop)

    asyncio.run(runner())
    return 0


async def _start_apiserver(args: argparse.Namespace) -> RunningAPIServer:
    from kubesvc.apiserver.app import DataDirError, start_apiserver
    from kubesvc.storage.errors import StorageError

    try:
        return await start_apiserver(_apiserver_config(args))
    except DataDirError as err:
        raise CLIError(str(err)) from err
    except StorageError as err:
        raise CLIError(f"cannot open storage {args.storage}: {err}") from err
    except OSError as err:
        raise CLIError(
            f"cannot serve on {args.bind_address}:{args.api_port}: {err.strerror or err}"
        ) from err


async def _start_controllers(
    access: ClusterAccess, node_grace_s: float, load_balancer_pool: Pool | None = None
) -> ControllerManager:
    from kubesvc.controllers.manager import ControllerManager

    manager = ControllerManager(
        access, node_grace_s=node_grace_s, load_balancer_pool=load_balancer_pool
    )
    try:
        await manager.start()
    except BaseException:
        await manager.stop()
        raise
    return manager


def cmd_up(args: argparse.Namespace) -> int:
    """Run every part of kubesvc in this process, in the foreground."""
    _apiserver_config(args)  # bad flags fail here, before anything starts
    dns_config = _dns_config(args)
    load_balancer_pool = _load_balancer_pool(args)
    # The whole cluster goes when `up` stops, so its pods are stopped too.
    node_config = _node_config(args, stop_pods_on_exit=True)
    proxy_config = _proxy_config(args)

    async def main(stop: asyncio.Event) -> None:
        from kubesvc.client.kubeconfig import load_kubeconfig

        api = await _start_apiserver(args)
        api.api.ready = False  # /readyz says ready only once every part has synced
        closers: list[Callable[[], Awaitable[None]]] = []
        try:
            # The other parts are clients of the API, as they would be in their own processes.
            access = load_kubeconfig(str(api.kubeconfig))
            controllers = await _start_controllers(
                access, args.node_monitor_grace_period, load_balancer_pool
            )
            closers.append(controllers.stop)
            node = await _start_node(access, node_config)
            closers.append(node.stop)
            api.api.ready_checks.append(lambda: node.synced)
            dns = await _start_dns(dns_config, access)
            closers.append(dns.close)
            proxy = await _start_proxy(proxy_config, access)
            closers.append(proxy.close)
            await dns.wait_synced()
            await proxy.wait_synced()
            api.api.ready_checks += [lambda: controllers.synced, lambda: dns.synced, proxy.healthy]
            api.api.ready = True
            print(
                f"kubesvc is up (stop with Ctrl-C)\n"
                f"  API server:   {api.url}\n"
                f"  controllers:  endpoints, endpointslices, mirroring, scheduler"
                f"{f', load balancers from {load_balancer_pool}' if load_balancer_pool else ''}\n"
                f"  node:         {node_config.node_name} ({_describe_node(node_config)})\n"
                f"  DNS:          {dns_config.address}:{dns.port} (udp, tcp), zone {dns_config.cluster_domain}\n"
                f"  proxy:        {_describe_proxy(proxy)}\n"
                f"  kubeconfig:   {api.kubeconfig}\n"
                f"  try:          kubectl --kubeconfig {api.kubeconfig} get services -A\n"
                f"                dig -p {dns.port} @{dns_config.address} kubernetes.default.svc.{dns_config.cluster_domain}",
                flush=True,
            )
            await stop.wait()
        finally:
            for close in reversed(closers):
                await close()
            await api.close()
        print("kubesvc stopped", flush=True)

    return _run_async(main)


def cmd_apiserver(args: argparse.Namespace) -> int:
    """Run the API server alone."""
    _apiserver_config(args)

    async def main(stop: asyncio.Event) -> None:
        api = await _start_apiserver(args)
        print(f"kubesvc API server on {api.url}; kubeconfig: {api.kubeconfig}", flush=True)
        try:
            await stop.wait()
        finally:
            await api.close()

    return _run_async(main)


def _cluster_access(args: argparse.Namespace) -> ClusterAccess:
    """The cluster from --kubeconfig or $KUBECONFIG, as kubectl finds it; one line if unusable."""
    from kubesvc.client.kubeconfig import KubeconfigError, load_kubeconfig

    try:
        return load_kubeconfig(args.kubeconfig)
    except KubeconfigError as err:
        raise CLIError(str(err)) from None


def cmd_controllers(args: argparse.Namespace) -> int:
    """Run the Endpoints, EndpointSlice and mirroring controllers and the scheduler."""
    access = _cluster_access(args)
    if not args.node_monitor_grace_period > 0:
        raise CLIError("--node-monitor-grace-period must be more than 0 seconds")
    load_balancer_pool = _load_balancer_pool(args)

    async def main(stop: asyncio.Event) -> None:
        from kubesvc.client.http import APIUnavailable

        try:
            manager = await _start_controllers(
                access, args.node_monitor_grace_period, load_balancer_pool
            )
        except (APIUnavailable, TimeoutError) as err:
            raise CLIError(f"cannot sync with the API server at {access.server}: {err}") from None
        print(f"kubesvc controllers running against {access.server}", flush=True)
        try:
            await stop.wait()
        finally:
            await manager.stop()

    return _run_async(main)


async def _start_dns(config: DNSConfig, access: ClusterAccess, hint: str = "") -> DNSServer:
    """A started DNS server; a port that cannot be bound is one CLIError line."""
    from kubesvc.dns.server import DNSServer

    server = DNSServer(config, access=access)
    try:
        await server.start()
    except OSError as err:
        raise CLIError(
            f"cannot serve DNS on {config.address}:{config.port}: {err.strerror or err}{hint}"
        ) from err
    return server


async def _start_proxy(config: ProxyConfig, access: ClusterAccess, hint: str = "") -> ProxyServer:
    """A started proxy; a listener or port that cannot be had is one CLIError line."""
    from kubesvc.proxy.server import ClusterSource, ProxyServer

    proxy = ProxyServer(config, ClusterSource(access))
    try:
        await proxy.start()
    except OSError as err:
        raise CLIError(f"cannot start the proxy: {err.strerror or err}{hint}") from err
    return proxy


def _cluster_domain(value: str) -> str:
    from kubesvc.api import formats

    domain = value.strip(".").lower()
    bad = formats.dns1123_subdomain(domain)
    if bad:
        raise CLIError(f"--cluster-domain {value!r}: {bad[0]}")
    return domain


def _dns_config(args: argparse.Namespace) -> DNSConfig:
    from kubesvc.dns.server import DNSConfig
    from kubesvc.dns.upstream import parse_upstreams

    if not 0 <= args.dns_port <= 65535:
        raise CLIError(f"--dns-port {args.dns_port}: must be a port number (0 picks a free one)")
    if args.dns_ttl < 0:
        raise CLIError(f"--dns-ttl {args.dns_ttl}: must not be negative")
    domain = _cluster_domain(args.cluster_domain)
    try:
        parse_upstreams(args.upstream or ())
    except ValueError as err:
        raise CLIError(f"--{err}") from None  # "--upstream VALUE: why"
    return DNSConfig(
        address=args.dns_address,
        port=args.dns_port,
        cluster_domain=domain,
        ttl_s=args.dns_ttl,
        upstreams=tuple(args.upstream or ()),
        pod_records=args.pod_records,
        metrics_port=args.dns_metrics_port,
    )


def _add_dns_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pod-records",
        choices=("disabled", "insecure"),
        default="disabled",
        help="<a-b-c-d>.<ns>.pod.<zone> names: disabled (default, as CoreDNS) or insecure "
        "(answer the address the name spells, as kubeadm's CoreDNS does)",
    )
    parser.add_argument(
        "--dns-port",
        type=int,
        default=5353,
        help="DNS port, UDP and TCP (default: %(default)s; 0 picks a free one)",
    )
    parser.add_argument(
        "--dns-address", default="127.0.0.1", help="address DNS listens on (default: %(default)s)"
    )
    parser.add_argument(
        "--cluster-domain",
        default="cluster.local",
        help="the cluster's DNS zone (default: %(default)s)",
    )
    parser.add_argument(
        "--dns-ttl",
        type=int,
        default=5,
        help="TTL of cluster records in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--upstream",
        action="append",
        metavar="SERVER",
        help="forward names outside the zone here (1.1.1.1, 127.0.0.1:5300, or /etc/resolv.conf); "
        "repeatable. Without it they are REFUSED: never an open resolver",
    )
    parser.add_argument(
        "--dns-metrics-port",
        type=int,
        default=0,
        help="Prometheus /metrics and /readyz port for DNS (default: off)",
    )


def cmd_dns(args: argparse.Namespace) -> int:
    """Serve cluster DNS from an API server's Services and Endpoints."""
    access = _cluster_access(args)
    config = _dns_config(args)

    async def main(stop: asyncio.Event) -> None:
        server = await _start_dns(config, access)
        print(
            f"kubesvc DNS for {config.cluster_domain} on {config.address}:{server.port} (udp, tcp), API {access.server}",
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            await server.close()

    return _run_async(main)


def _default_node_name() -> str:
    """The host name, made a valid node name (lower case DNS-1123 subdomain)."""
    import re
    import socket

    name = re.sub(r"[^a-z0-9.-]+", "-", socket.gethostname().lower()).strip("-.")
    return name[:253] or "node"


def _node_config(args: argparse.Namespace, *, stop_pods_on_exit: bool) -> NodeConfig:
    """The node agent's config from the flags (`kubesvc node`, or the node part of `up`)."""
    import os

    from kubesvc.api import formats
    from kubesvc.node.agent import NodeConfig, network_problem
    from kubesvc.node.restart import Backoff

    try:
        pod_cidr = ranges.parse_pod_cidr(args.pod_cidr)
    except ValueError as err:
        raise CLIError(str(err)) from None
    node_name = args.node_name or _default_node_name()
    bad_name = formats.dns1123_subdomain(node_name)
    if bad_name:
        raise CLIError(f"--node-name {node_name!r}: {bad_name[0]}")
    problem = network_problem(args.pod_network, pod_cidr, os.geteuid() == 0)
    if problem:
        raise CLIError(problem)
    if not 0 <= args.restart_backoff <= args.restart_backoff_max:
        raise CLIError("--restart-backoff must be from 0 to --restart-backoff-max seconds")
    for flag, address in (("--node-ip", args.node_ip), ("--cluster-dns", args.cluster_dns)):
        if address:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise CLIError(f"{flag} {address!r}: not an IP address") from None
    if not 0 <= args.log_port <= 65535:
        raise CLIError(f"--log-port {args.log_port}: must be a port number (0 picks a free one)")
    _check_heartbeat(args)
    return NodeConfig(
        node_name=node_name,
        data_dir=Path(args.data_dir).expanduser().resolve() / "node" / node_name,
        pod_cidr=pod_cidr,
        pod_network=args.pod_network,
        node_ip=args.node_ip,
        log_port=args.log_port,
        cluster_dns=args.cluster_dns or _pods_nameserver(args),
        cluster_domain=_cluster_domain(getattr(args, "cluster_domain", None) or "cluster.local"),
        bridge=args.bridge,
        backoff=Backoff(args.restart_backoff, args.restart_backoff_max),
        stop_pods_on_exit=stop_pods_on_exit,
        heartbeat_s=args.heartbeat_interval,
        node_grace_s=args.node_monitor_grace_period,
    )


def _check_heartbeat(args: argparse.Namespace) -> None:
    if not args.heartbeat_interval > 0:
        raise CLIError(f"--heartbeat-interval {args.heartbeat_interval}: must be more than 0")
    if not args.node_monitor_grace_period > args.heartbeat_interval:
        raise CLIError(
            f"--node-monitor-grace-period {args.node_monitor_grace_period}: must be longer "
            f"than --heartbeat-interval ({args.heartbeat_interval})"
        )


def _pods_nameserver(args: argparse.Namespace) -> str | None:
    """In `up`, the cluster DNS's own address when pods could use it (port 53, not loopback).

    Otherwise None: namespace-mode pods are pointed at the bridge address.
    """
    import ipaddress

    address, port = getattr(args, "dns_address", None), getattr(args, "dns_port", None)
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return None
    if port != 53 or ip.is_loopback or ip.is_unspecified:
        return None
    return str(ip)


def _describe_proxy(proxy: ProxyServer) -> str:
    mode, scheduler = proxy.effective_mode, proxy.config.scheduler
    if mode == "userspace":
        return f"userspace, scheduler {scheduler}: every ClusterIP:port answers here"
    fallback = f" ({proxy.mode_reason})" if mode != proxy.config.mode else ""
    chooser = f"scheduler {scheduler}" if mode == "ipvs" else "a random ready backend"
    return f"{mode} rules, {chooser}{fallback}; `kubesvc proxy --cleanup` removes them"


def _describe_node(config: NodeConfig) -> str:
    network = "host network" if config.pod_network == "host" else f"netns on {config.bridge}"
    return f"{network}, pod IPs from {config.pod_cidr}"


async def _start_node(access: ClusterAccess, config: NodeConfig) -> NodeAgent:
    from kubesvc.node.agent import NodeAgent
    from kubesvc.node.network import NetworkError

    agent = NodeAgent(access, config)
    try:
        await agent.start()
    except NetworkError as err:
        await agent.stop()
        raise CLIError(f"cannot set up the pod network: {err}") from None
    except BaseException:
        await agent.stop()
        raise
    return agent


def cmd_node(args: argparse.Namespace) -> int:
    """Run one machine: the node agent, and this machine's Service proxy and cluster DNS."""
    import dataclasses

    access = _cluster_access(args)
    config = _node_config(args, stop_pods_on_exit=False)
    dns_config = None if args.no_dns else _dns_config(args)
    proxy_config = None
    if not args.no_proxy:
        proxy_config = dataclasses.replace(_proxy_config(args), node_name=config.node_name)

    async def main(stop: asyncio.Event) -> None:
        from kubesvc.client.http import APIUnavailable

        closers: list[Callable[[], Awaitable[None]]] = []
        try:
            try:
                agent = await _start_node(access, config)
            except (APIUnavailable, TimeoutError) as err:
                raise CLIError(
                    f"cannot sync with the API server at {access.server}: {err}"
                ) from None
            except OSError as err:
                raise CLIError(
                    f"cannot serve logs on {config.node_ip}: {err.strerror or err}"
                ) from None
            closers.append(agent.stop)
            parts = [f"  node agent: {_describe_node(config)}; data in {config.data_dir}"]
            if dns_config is not None:
                dns = await _start_dns(dns_config, access, " (--dns-port, or --no-dns)")
                closers.append(dns.close)
                parts.append(f"  DNS:        {dns_config.address}:{dns.port} (udp, tcp)")
            if proxy_config is not None:
                proxy = await _start_proxy(proxy_config, access, " (or --no-proxy)")
                closers.append(proxy.close)
                parts.append(f"  proxy:      {_describe_proxy(proxy)}")
            print(
                f"kubesvc node {config.node_name} running against {access.server}\n"
                + "\n".join(parts),
                flush=True,
            )
            await stop.wait()
        finally:
            for close in reversed(closers):
                await close()

    return _run_async(main)


def cmd_env(args: argparse.Namespace) -> int:
    """Print the Service variables a pod started now in the namespace would get."""
    access = _cluster_access(args)
    namespace = args.namespace or access.namespace

    async def main() -> str:
        from kubesvc.client.http import Client
        from kubesvc.node import envvars

        async with Client(access, user_agent="kubesvc-env") as client:
            listed = await client.list("Service", namespace)
        pairs = envvars.services_env(
            listed.get("items", []), namespace, links=not args.no_service_links
        )
        return envvars.render(pairs)

    from kubesvc.api.errors import StatusError
    from kubesvc.client.http import APIUnavailable

    try:
        print(asyncio.run(main()), end="")
    except StatusError as err:
        raise CLIError(err.message) from None
    except APIUnavailable as err:
        raise CLIError(f"cannot reach the API server at {access.server}: {err}") from None
    return 0


def _add_node_flags(sub: argparse.ArgumentParser, *, standalone: bool) -> None:
    """The node agent's flags, for `kubesvc node` and for the node part of `kubesvc up`."""
    if standalone:
        sub.add_argument(
            "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)"
        )
        sub.add_argument(
            "--data-dir",
            default=_default_data_dir(),
            help="pod records and logs go to DATA_DIR/node/NODE_NAME (default: %(default)s)",
        )
        sub.add_argument(
            "--pod-cidr",
            default=ranges.DEFAULT_POD_CIDR,
            help="pod address range: loopback for host mode (default: %(default)s)",
        )
        sub.add_argument(
            "--no-proxy",
            action="store_true",
            help="do not run this machine's Service proxy (run `kubesvc proxy` yourself)",
        )
        sub.add_argument(
            "--no-dns",
            action="store_true",
            help="do not run this machine's cluster DNS server (run `kubesvc dns` yourself)",
        )
        _add_dns_flags(sub)  # --cluster-domain too: DNS's zone and pods' search list
        _add_proxy_flags(sub, node_name=False)
        _add_grace_flag(sub)
    sub.add_argument("--node-name", help="this node's name (default: the host name)")
    sub.add_argument(
        "--heartbeat-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often the node posts its status (its Node's Ready heartbeat) "
        "(default: %(default)s)",
    )
    sub.add_argument(
        "--pod-network",
        choices=["host", "netns"],
        default="host",
        help="host: pods bind their own loopback address, no root needed (default); "
        "netns: each pod in its own network namespace on a bridge (root)",
    )
    sub.add_argument(
        "--node-ip",
        default="127.0.0.1",
        help="the node's address: pods' hostIP, where the node serves logs (default: %(default)s)",
    )
    sub.add_argument(
        "--log-port",
        type=int,
        default=0,
        help="port the node serves container logs on, for the API server (default: a free one)",
    )
    sub.add_argument(
        "--cluster-dns",
        help="netns mode: nameserver in pods' resolv.conf (default: in `up`, the DNS address if "
        "it serves on port 53 off loopback; else the bridge's address)",
    )
    sub.add_argument(
        "--bridge", default="kubesvc0", help="netns mode: the node bridge (default: %(default)s)"
    )
    sub.add_argument(
        "--restart-backoff",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="first wait before restarting a crashing container, doubling (default: %(default)s)",
    )
    sub.add_argument(
        "--restart-backoff-max",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="longest wait before a restart (default: %(default)s)",
    )


# `up` is one machine on loopback: LoadBalancer addresses from loopback too (no root,
# clear of the default service and pod ranges 127.96.0.0/12 and 127.244.0.0/16).
UP_LOAD_BALANCER_CIDR = "127.240.0.0/24"


def _add_load_balancer_flag(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--load-balancer-cidr",
        default=default,
        metavar="CIDR",
        help="LoadBalancer Services get their address (status.loadBalancer.ingress) from this "
        "range, and the proxies answer on it; empty: they stay <pending>, as on a cluster "
        "without a cloud (default: %(default)r)",
    )


def _load_balancer_pool(args: argparse.Namespace) -> Pool | None:
    from kubesvc.controllers.loadbalancer import parse_pool

    if not args.load_balancer_cidr:
        return None
    try:
        return parse_pool(args.load_balancer_cidr)
    except ValueError as err:
        raise CLIError(str(err)) from None


def _add_grace_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--node-monitor-grace-period",
        type=float,
        default=40.0,
        metavar="SECONDS",
        help="a node whose last heartbeat is older than this is NotReady and gets no new pods "
        "(default: %(default)s)",
    )


def _proxy_config(args: argparse.Namespace) -> ProxyConfig:
    from kubesvc.proxy.server import ProxyConfig

    def port(value: int) -> int | None:
        return None if value < 0 else value

    config = ProxyConfig(
        mode=args.proxy_mode,
        scheduler=args.scheduler,
        min_sync_period_s=args.min_sync_period,
        sync_period_s=args.sync_period,
        healthz_address=args.healthz_bind_address,
        healthz_port=port(args.healthz_port),
        metrics_address=args.metrics_bind_address,
        metrics_port=port(args.metrics_port),
        node_name=args.node_name,
        node_addresses=tuple(args.node_address or ("127.0.0.1",)),
        endpoints_kind=args.endpoints_kind,
        iptables_backend=args.iptables_backend,
    )
    try:
        config.check()
    except ValueError as err:
        raise CLIError(str(err)) from None
    return config


def _add_proxy_flags(parser: argparse.ArgumentParser, *, node_name: bool = True) -> None:
    """The proxy's flags; in `up`, --node-name is the node agent's and the proxy shares it."""
    from kubesvc.proxy.schedulers import SCHEDULERS

    parser.add_argument(
        "--proxy-mode",
        default="userspace",
        choices=["userspace", "iptables", "nftables", "ipvs"],
        help="how Service traffic is carried: userspace (default, no root), or the kernel's "
        "iptables, nftables or IPVS (root; IPVS falls back to iptables where the kernel lacks it)",
    )
    parser.add_argument(
        "--iptables-backend",
        default="auto",
        choices=["auto", "nft", "legacy"],
        help="iptables mode's backend: auto (default; iptables-legacy when installed, far "
        "faster at scale), nft (iptables-nft) or legacy",
    )
    parser.add_argument(
        "--scheduler",
        default="rr",
        choices=sorted(SCHEDULERS),
        help="how a backend is chosen (default: rr, the seed's round-robin); a Service may choose its own with the annotation proxy.kubesvc.io/scheduler",
    )
    parser.add_argument(
        "--min-sync-period",
        type=float,
        default=0.1,
        metavar="SECONDS",
        help="coalesce changes for at least this long (default: %(default)s)",
    )
    parser.add_argument(
        "--sync-period",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="full resync interval (default: %(default)s)",
    )
    parser.add_argument(
        "--healthz-bind-address",
        default="127.0.0.1",
        help="proxy /healthz address (default: %(default)s)",
    )
    parser.add_argument(
        "--healthz-port",
        type=int,
        default=10256,
        help="proxy /healthz port (default: %(default)s; 0 picks one, -1 turns it off)",
    )
    parser.add_argument(
        "--metrics-bind-address",
        default="127.0.0.1",
        help="proxy /metrics address (default: %(default)s)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=10249,
        help="proxy /metrics port (default: %(default)s; 0 picks one, -1 turns it off)",
    )
    if node_name:
        parser.add_argument("--node-name", help="this node's name (default: the host name)")
    parser.add_argument(
        "--node-address",
        action="append",
        metavar="ADDRESS",
        help="where NodePorts listen; repeatable (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--endpoints-kind",
        default="Endpoints",
        choices=["Endpoints", "EndpointSlice"],
        help="which objects list the backends (default: %(default)s)",
    )


def cmd_proxy(args: argparse.Namespace) -> int:
    """Carry Service traffic from ClusterIPs (and NodePorts) to ready backends."""
    if args.cleanup:
        from kubesvc.proxy.server import cleanup

        for removed in cleanup():
            print(f"removed {removed}")
        return 0
    access = _cluster_access(args)
    config = _proxy_config(args)

    async def main(stop: asyncio.Event) -> None:
        proxy = await _start_proxy(config, access)
        print(
            f"kubesvc proxy ({config.mode}, {config.scheduler}) against {access.server}", flush=True
        )
        try:
            await stop.wait()
        finally:
            await proxy.close()

    return _run_async(main)


def cmd_version(args: argparse.Namespace) -> int:
    print(f"kubesvc {_version()}")
    return 0


LOG_LEVELS = ("debug", "info", "warning", "error")


def _env_log_level() -> str:
    level = os.environ.get("KUBESVC_LOG_LEVEL", "").lower()
    return level if level in LOG_LEVELS else "warning"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubesvc", description="Kubernetes Services, without Kubernetes."
    )
    parser.add_argument("--version", action="version", version=f"kubesvc {_version()}")
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=_env_log_level(),
        help="what the parts log to stderr (default: $KUBESVC_LOG_LEVEL, else %(default)s)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    validate = commands.add_parser(
        "validate",
        help="default and validate manifests offline, as the API server does on create",
        description="Apply the API server's defaults to each object in the files and check it "
        "against the API's validation rules. Exits 1 if any object is invalid.",
    )
    validate.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        help="manifest file (YAML or JSON; - for stdin); repeatable",
    )
    validate.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="namespace for objects that name none (default: default)",
    )
    validate.add_argument(
        "-o",
        "--output",
        choices=["json", "yaml"],
        help="print the defaulted objects instead of a summary",
    )
    validate.set_defaults(func=cmd_validate)

    for name, func, help_text in (
        (
            "up",
            cmd_up,
            "run kubesvc in the foreground (API server, controllers, DNS, proxy) and write a kubeconfig",
        ),
        ("apiserver", cmd_apiserver, "run the Kubernetes-compatible API server alone"),
    ):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--data-dir",
            default=_default_data_dir(),
            help="where the database, certificates, tokens and kubeconfig live (default: %(default)s)",
        )
        sub.add_argument(
            "--api-port",
            type=int,
            default=6443,
            help="HTTPS port of the API (default: %(default)s; 0 picks a free one)",
        )
        sub.add_argument(
            "--bind-address",
            default="127.0.0.1",
            help="address the API listens on (default: %(default)s)",
        )
        sub.add_argument(
            "--service-cidr",
            default=ranges.DEFAULT_SERVICE_CIDR,
            help="IPv4 range ClusterIPs come from; the first address is the `kubernetes` "
            "Service's (default: %(default)s, loopback for host mode)",
        )
        sub.add_argument(
            "--service-node-port-range",
            default=ranges.DEFAULT_NODE_PORT_RANGE,
            help="ports NodePort and LoadBalancer Services get (default: %(default)s)",
        )
        sub.add_argument(
            "--pod-cidr",
            default=ranges.DEFAULT_POD_CIDR,
            help="pod address range; if loopback (host mode), endpoints there are accepted "
            "(default: %(default)s)",
        )
        sub.add_argument(
            "--repair-interval",
            type=float,
            default=60.0,
            metavar="SECONDS",
            help="how often allocations are reconciled with Services (default: %(default)s)",
        )
        sub.add_argument(
            "--storage",
            default="sqlite",
            metavar="sqlite|etcd://HOST:PORT[,HOST:PORT...][/PREFIX]",
            help="where objects are kept: sqlite (a file in --data-dir, one API server) or an "
            "etcd cluster that several API servers share (keys under PREFIX, default /kubesvc; "
            "default: %(default)s)",
        )
        for flag, what in (
            ("cafile", "CA certificate that signed the etcd members' certificates"),
            ("certfile", "client certificate for etcd (with --etcd-keyfile)"),
            ("keyfile", "client key for etcd"),
        ):
            sub.add_argument(f"--etcd-{flag}", metavar="FILE", help=f"TLS to etcd: {what}")
        if name == "up":
            _add_dns_flags(sub)
            _add_proxy_flags(sub, node_name=False)
            _add_grace_flag(sub)
            _add_load_balancer_flag(sub, UP_LOAD_BALANCER_CIDR)
        sub.set_defaults(func=func)

    controllers = commands.add_parser(
        "controllers",
        help="run the Endpoints, EndpointSlice and mirroring controllers and the scheduler",
        description="Keep Endpoints and EndpointSlices in step with ready pods, place pods on "
        "Ready nodes (fewest pods first) and mark nodes without a heartbeat NotReady, for the "
        "API server named by the kubeconfig (any Kubernetes-compatible API server). Run it "
        "once per cluster.",
    )
    controllers.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)"
    )
    _add_grace_flag(controllers)
    _add_load_balancer_flag(controllers, "")
    controllers.set_defaults(func=cmd_controllers)

    _add_node_flags(commands.choices["up"], standalone=False)
    node = commands.add_parser(
        "node",
        help="run one machine of the cluster: node agent, Service proxy and cluster DNS",
        description="Register this machine as a Node (with a heartbeat) and run the containers "
        "of the pods placed on it, with pod IPs, Service variables, readiness probes and "
        "restart policies; next to it the Service proxy and the cluster DNS of this machine "
        "(--no-proxy, --no-dns to leave them out), all against the API server named by the "
        "kubeconfig. While no other node is Ready the agent places pods on itself; otherwise "
        "the scheduler of `kubesvc controllers` does. Pods keep running when the agent stops; "
        "a restarted agent adopts them.",
    )
    _add_node_flags(node, standalone=True)
    node.set_defaults(func=cmd_node)

    env = commands.add_parser(
        "env",
        help="print the Service variables a new pod in a namespace would get",
        description="One NAME=VALUE a line: the variables of every Service with a ClusterIP in "
        "the namespace, as the node agent gives them to a pod started now.",
    )
    env.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)"
    )
    env.add_argument(
        "-n", "--namespace", help="the namespace (default: the kubeconfig context's namespace)"
    )
    env.add_argument(
        "--no-service-links",
        action="store_true",
        help="as for a pod with enableServiceLinks: false (no Docker-links variables)",
    )
    env.set_defaults(func=cmd_env)

    dns = commands.add_parser(
        "dns",
        help="serve cluster DNS (A, SRV, PTR, CNAME, headless) from an API server",
        description="Answer the Kubernetes DNS specification's records for the cluster named by "
        "the kubeconfig, from the live watch.",
    )
    dns.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)"
    )
    _add_dns_flags(dns)
    dns.set_defaults(func=cmd_dns)

    proxy = commands.add_parser(
        "proxy",
        help="carry Service traffic from ClusterIPs and NodePorts to ready pods (userspace mode)",
        description="The per-node Service proxy, for the cluster named by the kubeconfig.",
    )
    proxy.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)"
    )
    _add_proxy_flags(proxy)
    proxy.add_argument(
        "--cleanup",
        action="store_true",
        help="remove every iptables, nftables and IPVS rule a kernel mode made, then exit",
    )
    proxy.set_defaults(func=cmd_proxy)

    ver = commands.add_parser("version", help="print kubesvc's version")
    ver.set_defaults(func=cmd_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args))
    except CLIError as err:
        print(f"kubesvc: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
