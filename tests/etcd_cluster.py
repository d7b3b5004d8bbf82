"""etcd clusters for tests: real `etcd` processes on loopback ports, data in a temp dir.

Safety: every member listens on 127.0.0.1 only, on ports the kernel just
handed out as free; processes are ended by their own PID; every wait is
bounded. Startup is quick because heartbeat and election timeout are short; the
disk settings are etcd's defaults (it fsyncs its WAL before acknowledging a
write), so durability tests test what users get.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.needs import unavailable

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def require_etcd() -> None:
    """Skip (fail under CI=true) when the etcd server is not installed."""
    if os.path.exists(ETCD) and os.access(ETCD, os.X_OK):
        return
    unavailable("needs etcd (Debian package etcd-server, installed by `make setup`)")


def free_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 that were free a moment ago (all held at once, so distinct)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class TLSMaterial:
    """A throw-away CA, a serving certificate for 127.0.0.1, and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def make(cls, directory: Path) -> TLSMaterial:
        directory.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)

        def issue(
            subject: str,
            signer: ec.EllipticCurvePrivateKey | None,
            issuer: x509.Certificate | None,
            *,
            ca: bool = False,
            usage: list[x509.ObjectIdentifier] | None = None,
            ips: list[str] | None = None,
        ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
            builder = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(issuer.subject if issuer else name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            )
            if usage:
                builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
            if ips:
                builder = builder.add_extension(
                    x509.SubjectAlternativeName(
                        [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
                    ),
                    critical=False,
                )
            return builder.sign(signer or key, hashes.SHA256()), key

        def write(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
            (directory / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            (directory / f"{stem}.key").write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )

        ca_cert, ca_key = issue("etcd-test-ca", None, None, ca=True)
        server = issue(
            "etcd",
            ca_key,
            ca_cert,
            usage=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            ips=["127.0.0.1"],
        )
        client = issue("kubesvc", ca_key, ca_cert, usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
        write("ca", ca_cert, ca_key)
        write("server", *server)
        write("client", *client)
        return cls(
            directory / "ca.crt",
            directory / "server.crt",
            directory / "server.key",
            directory / "client.crt",
            directory / "client.key",
        )

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class EtcdCluster:
    """`size` etcd members on loopback; `start()`, `kill(i)`, `restart(i)`, `stop()`."""

    size: int = 1
    heartbeat_ms: int = 25
    election_ms: int = 250
    base_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kubesvc-etcd-")))
    members: list[Member] = field(default_factory=list)
    # With TLS, clients must present a certificate the cluster's CA signed.
    tls: bool = False
    tls_material: TLSMaterial | None = None

    def __post_init__(self) -> None:
        if self.tls:
            self.tls_material = TLSMaterial.make(self.base_dir / "tls")
        ports = free_ports(2 * self.size)
        for i in range(self.size):
            self.members.append(
                Member(
                    f"m{i}",
                    ports[2 * i],
                    ports[2 * i + 1],
                    self.base_dir / f"m{i}.etcd",
                    self.base_dir / f"m{i}.log",
                )
            )

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def url(self, prefix: str = "") -> str:
        """The ``etcd://`` URL of every member, with an optional key prefix."""
        return "etcd://" + ",".join(self.endpoints) + prefix

    def _command(self, member: Member) -> list[str]:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        client = f"{self.scheme}://{member.endpoint}"
        tls = self.tls_material
        tls_flags = (
            [
                "--cert-file",
                str(tls.server_cert),
                "--key-file",
                str(tls.server_key),
                "--trusted-ca-file",
                str(tls.ca),
                "--client-cert-auth",
            ]
            if tls
            else []
        )
        return [
            ETCD,
            "--name",
            member.name,
            "--data-dir",
            str(member.data_dir),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            member.peer_url,
            "--initial-advertise-peer-urls",
            member.peer_url,
            "--initial-cluster",
            initial,
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            self.base_dir.name,
            "--heartbeat-interval",
            str(self.heartbeat_ms),
            "--election-timeout",
            str(self.election_ms),
            "--logger",
            "zap",
            "--log-level",
            "warn",
            *tls_flags,
        ]

    @property
    def scheme(self) -> str:
        return "https" if self.tls_material else "http"

    def _open(self, member: Member, path: str, data: bytes | None = None) -> dict[str, object]:
        """One JSON request to a member's client port (with the client certificate under TLS)."""
        request = urllib.request.Request(
            f"{self.scheme}://{member.endpoint}{path}",
            data=data,
            method="POST" if data is not None else "GET",
        )
        context = self.tls_material.client_context() if self.tls_material else None
        with urllib.request.urlopen(request, timeout=1, context=context) as response:
            return json.loads(response.read())

    def _spawn(self, member: Member) -> None:
        # etcd reads ETCD_* variables as flags: start from a clean slate.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
        with member.log_path.open("ab") as log:
            member.process = subprocess.Popen(
                self._command(member),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C of the test run is ours to pass on
            )

    def start(self, timeout: float = 20.0) -> EtcdCluster:
        require_etcd()
        for member in self.members:
            self._spawn(member)
        try:
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)
        return self

    def healthy(self, member: Member) -> bool:
        try:
            return self._open(member, "/health").get("health") == "true"
        except (OSError, ValueError):
            return False

    def wait_healthy(self, timeout: float = 20.0, members: list[Member] | None = None) -> None:
        """Wait until every (running) member reports a healthy cluster (it has a leader)."""
        deadline = time.monotonic() + timeout
        waiting = [m for m in (members or self.members) if m.process is not None]
        while waiting:
            for member in waiting:
                if not member.running:
                    raise AssertionError(f"etcd {member.name} exited:\n{self.log(member)}")
            waiting = [m for m in waiting if not self.healthy(m)]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"etcd did not become healthy in {timeout} s:\n"
                    + "\n".join(self.log(m) for m in waiting)
                )
            time.sleep(0.05)

    def log(self, member: Member) -> str:
        try:
            return f"--- {member.name}\n" + member.log_path.read_text()[-4000:]
        except OSError:
            return f"--- {member.name}: no log"

    def kill(self, index: int) -> None:
        """SIGKILL member `index` by its PID (no clean shutdown: the crash case)."""
        member = self.members[index]
        assert member.process is not None
        if member.process.poll() is None:
            os.kill(member.process.pid, signal.SIGKILL)
        member.process.wait(timeout=10)

    def restart(self, index: int, timeout: float = 20.0) -> None:
        """Start member `index` again on its data dir (after kill)."""
        member = self.members[index]
        assert not member.running
        self._spawn(member)
        self.wait_healthy(timeout, [member])

    def status(self, member: Member) -> dict[str, object] | None:
        """The member's /v3/maintenance/status answer, or None if it does not answer."""
        try:
            return self._open(member, "/v3/maintenance/status", b"{}")
        except (OSError, ValueError):
            return None

    def leader(self) -> int | None:
        """Index of the current leader as the running members see it (None if unknown)."""
        ids: dict[object, int] = {}
        leader = None
        for i, member in enumerate(self.members):
            status = self.status(member) if member.running else None
            if status is not None:
                ids[status["header"]["member_id"]] = i  # type: ignore[index]
                leader = leader or status.get("leader")
        return ids.get(leader)

    def make_leader(self, index: int, timeout: float = 10.0) -> None:
        """Move leadership to member `index` (etcd's MoveLeader), and wait until it holds it."""
        deadline = time.monotonic() + timeout
        while (current := self.leader()) != index:
            if time.monotonic() > deadline:
                raise AssertionError(f"member {index} did not become leader (now {current})")
            target = self.status(self.members[index])
            if current is not None and target is not None:
                move = {"targetID": target["header"]["member_id"]}  # type: ignore[index]
                with contextlib.suppress(OSError, ValueError):
                    self._open(
                        self.members[current],
                        "/v3/maintenance/transfer-leadership",
                        json.dumps(move).encode(),
                    )
            time.sleep(0.05)

    def stop(self, grace: float = 1.0) -> None:
        """End every member and remove the data.

        SIGTERM, then SIGKILL after `grace` seconds: members stopping together
        wait for each other for several seconds, and the data is thrown away.
        """
        for member in self.members:
            process = member.process
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for member in self.members:
            process = member.process
            if process is None:
                continue
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        shutil.rmtree(self.base_dir, ignore_errors=True)


_shared: dict[int, EtcdCluster] = {}


def shared_cluster(size: int) -> EtcdCluster:
    """A `size`-member cluster started on first use and kept for the test session.

    Tests sharing it keep apart by key prefix; `stop_shared_clusters` (a session
    fixture's teardown, and atexit as a fallback) ends it.
    """
    cluster = _shared.get(size)
    if cluster is None or not all(m.running for m in cluster.members):
        if cluster is not None:
            cluster.stop()
        cluster = _shared[size] = EtcdCluster(size).start()
    return cluster


def stop_shared_clusters() -> None:
    while _shared:
        _, cluster = _shared.popitem()
        cluster.stop()
