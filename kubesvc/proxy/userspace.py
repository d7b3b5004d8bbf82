"""The userspace proxy mode: a listening socket per service address, bytes copied to a backend.

Render, then apply: `sync(snapshot, delta)` works out every listener the
snapshot wants (ClusterIPs, external and load-balancer IPs, NodePorts on
the node's addresses), closes those it no longer wants (with their
connections: a Service that goes away takes its connections along), opens
the missing ones and hands each service port its usable endpoints. A
listener that cannot be bound is retried at the next sync.

Choices (which backend, retries, affinity) are made by the sans-io
`ServiceBalancer`; this module only moves bytes, driven by readiness
callbacks on non-blocking sockets (one epoll set, see reactor.py):

- TCP: small reads are copied through one shared buffer (recv_into + send);
  a read that fills it marks a bulk stream, which from then on is spliced
  through a pipe (`os.splice`: the data never enters Python, as with
  HAProxy's splicing). A full destination stops reading from the source
  until it drains (backpressure); an EOF is passed on with
  `shutdown(SHUT_WR)` once everything read has been written (half-close).
  asyncio transports are not used on this path: uvloop 0.23 aborts with a
  double free under connection-close load when half-closes go through
  `transport.write_eof()` (reproduced; tests/proxy/test_stress.py keeps that
  load in the suite).
- UDP: a session (a connected socket to one backend) per client address,
  ended after `udp_idle_timeout_s` without traffic; replies are sent from
  the listening socket, so they come from the service address.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from kubesvc.proxy import proxyprotocol
from kubesvc.proxy.balancer import (
    DEFAULT_DIAL_TIMEOUTS_S,
    DEFAULT_FAILURE_HOLD_S,
    DialPlan,
    ServiceBalancer,
)
from kubesvc.proxy.model import ServicePort, ServicePortName, Snapshot, SyncDelta, usable_endpoints
from kubesvc.proxy.reactor import Reactor
from kubesvc.proxy.schedulers import Backend, Request, make_scheduler

log = logging.getLogger("kubesvc.proxy")

_splice = getattr(os, "splice", None)
_SPLICE_FLAGS = (os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK) if _splice is not None else 0
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
_IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
_LINGER_RESET = struct.pack("ii", 1, 0)  # close() sends RST instead of FIN
ACCEPT_BATCH = 64  # connections accepted per readiness callback (fairness between listeners)
DATAGRAM_BATCH = 64
MAX_DATAGRAM = 65535  # room for the largest UDP payload over IPv4 (65,507) and IPv6
COPY_CHUNK = 64 * 1024  # a read this full marks a bulk stream (then: splice)

ListenKey = tuple[str, int, str]  # (address, port, protocol)


@dataclass(frozen=True)
class UserspaceConfig:
    node_name: str | None = None
    node_addresses: tuple[str, ...] = ("127.0.0.1",)  # where NodePorts listen
    scheduler: str = "rr"  # the node's default; a Service's annotation overrides it
    dial_timeouts_s: tuple[float, ...] = DEFAULT_DIAL_TIMEOUTS_S
    failure_hold_s: float = DEFAULT_FAILURE_HOLD_S
    tcp_idle_timeout_s: float = 3600.0
    udp_idle_timeout_s: float = 30.0
    udp_max_sessions: int = 4096  # per listener; the least recently used goes first
    pipe_size: int = 1 << 20  # bytes per splice pipe (the default 64 KiB needs 16× the syscalls)
    pipe_pool: int = 256  # empty pipes kept for reuse
    listen_backlog: int = 4096
    sweep_interval_s: float = 1.0


# ------------------------------------------------------------------ pipes


class PipePool:
    """Non-blocking pipes for splice; empty ones are reused (two syscalls saved per connection)."""

    def __init__(self, size: int, keep: int) -> None:
        self.size = size
        self.keep = keep
        self._free: list[tuple[int, int]] = []
        self.capacity = 65536
        # The copy mode's read buffer, shared by every connection (the loop runs one at a time).
        self.scratch = memoryview(bytearray(COPY_CHUNK))

    def get(self) -> tuple[int, int]:
        if self._free:
            return self._free.pop()
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(w, _F_SETPIPE_SZ, self.size)
            self.capacity = fcntl.fcntl(w, _F_GETPIPE_SZ)
        except OSError:
            pass  # above /proc/sys/fs/pipe-max-size: the default size still works
        return r, w

    def put(self, pipe: tuple[int, int], empty: bool) -> None:
        if empty and len(self._free) < self.keep:
            self._free.append(pipe)
        else:
            os.close(pipe[0])
            os.close(pipe[1])

    def close(self) -> None:
        for r, w in self._free:
            os.close(r)
            os.close(w)
        self._free.clear()


# ------------------------------------------------------------------- TCP


class _Half:
    """One direction of a relay: read `src`, write `dst`.

    Small reads are copied through a shared buffer (recv_into + send: for a
    request or a response, as cheap as splicing and no pipe to hold). A read
    that fills the buffer marks a bulk stream: from then on this direction
    splices through a pipe of its own, so the data never enters Python.
    """

    __slots__ = (
        "buffer",
        "buffered",
        "dfd",
        "done",
        "dst",
        "eof",
        "on_readable",
        "on_writable",
        "peer",
        "pipe",
        "reading",
        "relay",
        "sfd",
        "src",
        "writing",
    )

    def __init__(self, relay: TcpRelay, src: socket.socket, dst: socket.socket) -> None:
        self.relay = relay
        self.src = src
        self.dst = dst
        self.sfd = src.fileno()
        self.dfd = dst.fileno()
        self.pipe: tuple[int, int] | None = None
        self.buffer = b""  # copy mode: bytes read but not yet sent
        self.buffered = 0  # bytes read from src and not yet written to dst (buffer or pipe)
        self.reading = False
        self.writing = False
        self.eof = False
        self.done = False
        self.peer: _Half = self
        # Bound once: the reactor keeps calling the same objects.
        self.on_readable = self._copy_in
        self.on_writable = self._copy_out_ready

    def start(self) -> None:
        self.relay.reactor.add_reader(self.sfd, self.on_readable)
        self.reading = True

    # -- copy mode

    def _copy_in(self) -> None:
        relay = self.relay
        scratch = relay.pool.scratch
        try:
            n = self.src.recv_into(scratch)
        except BlockingIOError:
            return
        except OSError:
            relay.abort()
            return
        relay.last_active = time.monotonic()
        if n == 0:
            self._on_eof()
            return
        try:
            sent = self.dst.send(scratch[:n])
        except BlockingIOError:
            sent = 0
        except OSError:
            relay.abort()
            return
        if sent < n:
            # The scratch buffer is shared: keep the rest in a buffer of this half's own.
            self.buffer = bytes(scratch[sent:n])
            self.buffered = n - sent
            self._after_write()
        elif n == len(scratch) and _splice is not None:
            # A full read: a bulk stream. Splice from now on (zero copy).
            self.on_readable = self._splice_in
            self.on_writable = self._splice_out_ready
            relay.reactor.add_reader(self.sfd, self.on_readable)

    def _copy_out_ready(self) -> None:
        self.relay.last_active = time.monotonic()
        try:
            while self.buffer:
                sent = self.dst.send(self.buffer)
                self.buffer = self.buffer[sent:]
        except BlockingIOError:
            pass
        except OSError:
            self.relay.abort()
            return
        self.buffered = len(self.buffer)
        self._after_write()

    # -- splice mode

    def _splice_in(self) -> None:
        relay = self.relay
        pipe = self.pipe
        if pipe is None:
            pipe = self.pipe = relay.pool.get()
        try:
            n = _splice(self.sfd, pipe[1], relay.pool.capacity, flags=_SPLICE_FLAGS)  # type: ignore[misc]
        except BlockingIOError:
            return
        except OSError:
            relay.abort()
            return
        relay.last_active = time.monotonic()
        if n == 0:
            self._on_eof()
            return
        self.buffered += n
        self._splice_out()

    def _splice_out(self) -> None:
        pipe = self.pipe
        assert pipe is not None
        try:
            while self.buffered:
                self.buffered -= _splice(pipe[0], self.dfd, self.buffered, flags=_SPLICE_FLAGS)  # type: ignore[misc]
        except BlockingIOError:
            pass
        except OSError:
            self.relay.abort()
            return
        self._after_write()

    def _splice_out_ready(self) -> None:
        self.relay.last_active = time.monotonic()
        self._splice_out()

    # -- shared

    def _after_write(self) -> None:
        reactor = self.relay.reactor
        if self.buffered:
            # dst is full: stop reading src until it drains (backpressure).
            if self.reading:
                reactor.remove_reader(self.sfd)
                self.reading = False
            if not self.writing:
                reactor.add_writer(self.dfd, self.on_writable)
                self.writing = True
            return
        if self.writing:
            reactor.remove_writer(self.dfd)
            self.writing = False
        if self.eof:
            self._shutdown()
        elif not self.reading:
            reactor.add_reader(self.sfd, self.on_readable)
            self.reading = True

    def _on_eof(self) -> None:
        self.eof = True
        if self.reading:
            self.relay.reactor.remove_reader(self.sfd)
            self.reading = False
        if not self.buffered:
            self._shutdown()

    def _shutdown(self) -> None:
        # Pass the half-close on: the other side may still answer.
        with contextlib.suppress(OSError):
            self.dst.shutdown(socket.SHUT_WR)
        self.done = True
        if self.peer.done:
            self.relay.close()

    def stop(self) -> None:
        # The relay closes both sockets next; their callbacks are dropped by then.
        self.reading = self.writing = False
        if self.pipe is not None:
            self.relay.pool.put(self.pipe, empty=self.buffered == 0)
            self.pipe = None


class TcpRelay:
    """A client connection joined to a backend connection."""

    __slots__ = (
        "backend",
        "backend_sock",
        "balancer",
        "client",
        "closed",
        "down",
        "last_active",
        "listener",
        "pool",
        "reactor",
        "up",
    )

    def __init__(
        self,
        listener: TcpListener,
        client: socket.socket,
        backend_sock: socket.socket,
        backend: Backend,
        balancer: ServiceBalancer,
    ) -> None:
        self.listener = listener
        self.reactor = listener.reactor
        self.pool = listener.proxier.pipes
        self.client = client
        self.backend_sock = backend_sock
        self.backend = backend
        self.balancer = balancer
        self.closed = False
        self.last_active = time.monotonic()
        self.up = _Half(self, client, backend_sock)
        self.down = _Half(self, backend_sock, client)
        self.up.peer = self.down
        self.down.peer = self.up

    def start(self, header: bytes = b"") -> None:
        if header:
            try:
                # A fresh connection's send buffer is empty: a header this short goes whole.
                if self.backend_sock.send(header) != len(header):
                    raise OSError(errno.EAGAIN, "PROXY header not sent whole")
            except OSError as err:
                log.info("proxy: PROXY header to %s failed: %s", self.backend.key, err)
                self.abort()
                return
        self.up.start()
        self.down.start()

    def abort(self) -> None:
        """Close both sides with a reset, so each peer learns the other is gone."""
        self.close(reset=True)

    def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.up.stop()
        self.down.stop()
        for sock in (self.client, self.backend_sock):
            self.reactor.forget(sock.fileno())
            if reset:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            sock.close()
        self.balancer.released(self.backend)
        self.listener.relay_closed(self)


class _Dial:
    """A client connection waiting for a backend: plays the DialPlan over non-blocking connects."""

    __slots__ = (
        "balancer",
        "client",
        "client_addr",
        "current",
        "fd",
        "listener",
        "plan",
        "sock",
        "timer",
    )

    def __init__(
        self,
        listener: TcpListener,
        client: socket.socket,
        client_addr: tuple[str, int],
        balancer: ServiceBalancer,
    ) -> None:
        self.listener = listener
        self.client = client
        self.client_addr = client_addr
        self.balancer = balancer
        request = Request(client_addr[0], client_addr[1], listener.key[0], listener.key[1])
        self.plan: DialPlan = balancer.plan(request, time.monotonic())
        self.sock: socket.socket | None = None
        self.current: Backend | None = None
        self.fd = -1
        self.timer: asyncio.TimerHandle | None = None

    def attempt(self) -> None:
        listener = self.listener
        while True:
            now = time.monotonic()
            choice = self.plan.next(now)
            if choice is None:
                listener.dial_failed(self)
                return
            backend, timeout_s = choice
            try:
                sock = socket.socket(
                    socket.AF_INET6 if ":" in backend.ip else socket.AF_INET, socket.SOCK_STREAM
                )
            except OSError as err:  # out of fds: nothing else will work either
                log.warning("proxy: cannot open a socket to a backend: %s", err)
                self.listener.dial_failed(self)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex(backend.key)
            if err == 0:
                self._connected(sock, backend)
                return
            if err == errno.EINPROGRESS:
                try:
                    # Over loopback the handshake is done by the time connect() returns:
                    # skip the writer registration and a pass through the loop.
                    sock.getpeername()
                except OSError:
                    pass
                else:
                    self._connected(sock, backend)
                    return
                self.sock, self.current, self.fd = sock, backend, sock.fileno()
                listener.reactor.add_writer(self.fd, self._on_connect)
                self.timer = listener.loop.call_later(timeout_s, self._on_timeout)
                return
            sock.close()
            self._failed(backend, now, timed_out=False, err=err)

    def _failed(self, backend: Backend, now: float, *, timed_out: bool, err: int) -> None:
        self.plan.failed(backend, now, timed_out=timed_out)
        self.listener.port.connect_failures += 1
        log.debug(
            "proxy: %s: connect to %s failed (%s); trying the next backend",
            self.listener.port.name,
            backend.key,
            "timeout" if timed_out else os.strerror(err),
        )

    def _unwatch(self, *, closing: bool = True) -> socket.socket | None:
        sock = self.sock
        if sock is not None:
            if closing:
                self.listener.reactor.forget(self.fd)
            else:  # the socket lives on in a relay: it must leave the epoll set properly
                self.listener.reactor.remove_writer(self.fd)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.sock, self.fd = None, -1
        return sock

    def _on_connect(self) -> None:
        if self.sock is None:
            return
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == 0:
            try:
                self.sock.getpeername()
            except OSError:
                return  # a stale wake-up (the fd number was reused): still connecting
        backend = self.current
        sock = self._unwatch(closing=err != 0)
        if sock is None or backend is None:
            return
        if err == 0:
            self._connected(sock, backend)
            return
        sock.close()
        self._failed(backend, time.monotonic(), timed_out=False, err=err)
        self.attempt()

    def _on_timeout(self) -> None:
        self.timer = None
        backend = self.current
        sock = self._unwatch()
        if sock is None or backend is None:
            return
        sock.close()
        self._failed(backend, time.monotonic(), timed_out=True, err=errno.ETIMEDOUT)
        self.attempt()

    def _connected(self, sock: socket.socket, backend: Backend) -> None:
        self.plan.connected(backend, time.monotonic())
        self.listener.dial_done(self, sock, backend)

    def cancel(self) -> None:
        sock = self._unwatch()
        if sock is not None:
            sock.close()
        _reset_close(self.client)


def _reset_close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    sock.close()


def _bind(key: ListenKey, kind: int, backlog: int) -> socket.socket:
    ip, port, _protocol = key
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET:
            # External IPs may not be on this node (yet); kube-proxy's rules catch them regardless.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IP, _IP_FREEBIND, 1)
        sock.bind((ip, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Listener:
    """A bound socket for one (address, port, protocol) of one service port."""

    def __init__(
        self, proxier: UserspaceProxier, key: ListenKey, port: PortProxy, external: bool
    ) -> None:
        self.proxier = proxier
        self.loop = proxier.loop
        self.reactor = proxier.reactor
        self.key = key
        self.port = port
        self.external = external
        self.sock: socket.socket | None = None

    @property
    def balancer(self) -> ServiceBalancer:
        return self.port.external_balancer if self.external else self.port.cluster_balancer

    def admits(self, source: str) -> bool:
        """loadBalancerSourceRanges, for a load balancer address (read at each new client)."""
        return self.port.info.admits(self.key[0], source)

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def connections(self) -> int:
        raise NotImplementedError

    def sweep(self, now: float) -> None:
        raise NotImplementedError


class TcpListener(Listener):
    def __init__(
        self, proxier: UserspaceProxier, key: ListenKey, port: PortProxy, external: bool
    ) -> None:
        super().__init__(proxier, key, port, external)
        self.relays: set[TcpRelay] = set()
        self.dials: set[_Dial] = set()
        self._paused: asyncio.TimerHandle | None = None

    def open(self) -> None:
        self.sock = _bind(self.key, socket.SOCK_STREAM, self.proxier.config.listen_backlog)
        self.reactor.add_reader(self.sock.fileno(), self._on_accept)

    def _on_accept(self) -> None:
        sock = self.sock
        if sock is None:
            return
        for _ in range(ACCEPT_BATCH):
            try:
                conn, addr = sock.accept()
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                # Out of fds or memory: stop accepting for a moment instead of spinning.
                log.warning("proxy: %s: accept failed: %s; pausing 0.1 s", self.port.name, err)
                self.reactor.remove_reader(sock.fileno())
                self._paused = self.loop.call_later(0.1, self._resume)
                return
            if not self.admits(addr[0]):
                self.port.rejected += 1
                _reset_close(conn)  # outside loadBalancerSourceRanges
                continue
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.port.connections_total += 1
            dial = _Dial(self, conn, addr, self.balancer)
            self.dials.add(dial)
            dial.attempt()

    def _resume(self) -> None:
        self._paused = None
        if self.sock is not None:
            self.reactor.add_reader(self.sock.fileno(), self._on_accept)

    def dial_done(self, dial: _Dial, backend_sock: socket.socket, backend: Backend) -> None:
        self.dials.discard(dial)
        relay = TcpRelay(self, dial.client, backend_sock, backend, dial.balancer)
        self.relays.add(relay)
        header = b""
        version = self.port.info.proxy_protocol
        if version:
            client_ip, client_port = dial.client_addr[:2]
            header = proxyprotocol.encode(
                version,
                proxyprotocol.ProxyHeader(client_ip, client_port, self.key[0], self.key[1]),
            )
        relay.start(header)

    def dial_failed(self, dial: _Dial) -> None:
        self.dials.discard(dial)
        self.port.rejected += 1
        # A reset, the closest a userspace proxy gets to iptables' REJECT.
        _reset_close(dial.client)

    def relay_closed(self, relay: TcpRelay) -> None:
        self.relays.discard(relay)

    def connections(self) -> int:
        return len(self.relays)

    def sweep(self, now: float) -> None:
        idle_s = self.proxier.config.tcp_idle_timeout_s
        for relay in [r for r in self.relays if now - r.last_active > idle_s]:
            relay.close()

    def close(self) -> None:
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
        if self.sock is not None:
            self.reactor.forget(self.sock.fileno())
            self.sock.close()
            self.sock = None
        for dial in list(self.dials):
            dial.cancel()
        self.dials.clear()
        for relay in list(self.relays):
            relay.abort()
        self.relays.clear()


# ------------------------------------------------------------------- UDP


class UdpSession:
    """One client address talking to one backend through a connected socket."""

    __slots__ = (
        "answered",
        "backend",
        "balancer",
        "client",
        "fd",
        "first",
        "last_active",
        "listener",
        "plan",
        "sock",
    )

    def __init__(
        self, listener: UdpListener, client: tuple[str, int], balancer: ServiceBalancer
    ) -> None:
        self.listener = listener
        self.client = client
        self.balancer = balancer
        request = Request(client[0], client[1], listener.key[0], listener.key[1])
        self.plan = balancer.plan(request, time.monotonic())
        self.sock: socket.socket | None = None
        self.backend: Backend | None = None
        self.fd = -1
        self.last_active = time.monotonic()
        # The first datagram is kept until the backend answers, to resend it to the next
        # backend if this one turns out to have no listener (ICMP port unreachable).
        self.first: bytes | None = None
        self.answered = False

    def connect(self) -> bool:
        """Open a socket to the next backend of the plan; False when none is left."""
        while True:
            now = time.monotonic()
            choice = self.plan.next(now)
            if choice is None:
                return False
            backend, _timeout = choice
            sock = socket.socket(
                socket.AF_INET6 if ":" in backend.ip else socket.AF_INET, socket.SOCK_DGRAM
            )
            try:
                sock.setblocking(False)
                sock.connect(backend.key)
            except OSError as err:
                sock.close()
                self.plan.failed(backend, now)
                self.listener.port.connect_failures += 1
                log.debug("proxy: UDP %s: %s", backend.key, err)
                continue
            self.plan.connected(backend, now)
            self.sock, self.backend, self.fd = sock, backend, sock.fileno()
            self.listener.reactor.add_reader(self.fd, self._on_reply)
            return True

    def send(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if not self.answered and self.first is None:
            self.first = data
        sock = self.sock
        if sock is None:
            return
        try:
            sock.send(data)
        except BlockingIOError:
            pass  # a full socket buffer drops the datagram, as the network would
        except ConnectionRefusedError:
            self._refused()
        except OSError as err:
            log.debug("proxy: UDP send to %s failed: %s", self.backend, err)

    def _on_reply(self) -> None:
        listener = self.listener
        for _ in range(DATAGRAM_BATCH):
            sock = self.sock
            if sock is None:
                return
            try:
                data = sock.recv(MAX_DATAGRAM)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                self._refused()
                return
            except OSError:
                listener.end_session(self)
                return
            self.last_active = time.monotonic()
            self.answered = True
            self.first = None
            if listener.sock is not None:
                with contextlib.suppress(OSError):
                    listener.sock.sendto(data, self.client)

    def _refused(self) -> None:
        """The backend's port is closed (ICMP port unreachable): move to the next backend."""
        first = self.first if not self.answered else None
        backend = self.backend
        self._close_socket()
        if backend is not None:
            self.plan.failed(backend, time.monotonic())
            self.listener.port.connect_failures += 1
        if first is not None and self.connect():
            self.send(first)
        else:
            self.listener.end_session(self)

    def _close_socket(self) -> None:
        if self.sock is not None:
            self.listener.reactor.forget(self.fd)
            self.sock.close()
            self.sock, self.fd = None, -1
        if self.backend is not None:
            self.balancer.released(self.backend)
            self.backend = None

    def close(self) -> None:
        self._close_socket()


class UdpListener(Listener):
    def __init__(
        self, proxier: UserspaceProxier, key: ListenKey, port: PortProxy, external: bool
    ) -> None:
        super().__init__(proxier, key, port, external)
        self.sessions: dict[tuple[str, int], UdpSession] = {}

    def open(self) -> None:
        self.sock = _bind(self.key, socket.SOCK_DGRAM, 0)
        self.reactor.add_reader(self.sock.fileno(), self._on_datagram)

    def _on_datagram(self) -> None:
        for _ in range(DATAGRAM_BATCH):
            sock = self.sock
            if sock is None:
                return
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError as err:
                log.debug("proxy: UDP %s: %s", self.key, err)
                return
            client = (addr[0], addr[1])
            session = self.sessions.get(client)
            if session is None and not self.admits(client[0]):
                continue  # outside loadBalancerSourceRanges: dropped
            if session is None:
                session = self._new_session(client)
                if session is None:
                    self.port.rejected += 1
                    continue
            session.send(data)

    def _new_session(self, client: tuple[str, int]) -> UdpSession | None:
        if len(self.sessions) >= self.proxier.config.udp_max_sessions:
            oldest = min(self.sessions.values(), key=lambda s: s.last_active)
            self.end_session(oldest)
        session = UdpSession(self, client, self.balancer)
        if not session.connect():
            return None
        self.port.connections_total += 1
        self.sessions[client] = session
        return session

    def end_session(self, session: UdpSession) -> None:
        session.close()
        if self.sessions.get(session.client) is session:
            del self.sessions[session.client]

    def connections(self) -> int:
        return len(self.sessions)

    def sweep(self, now: float) -> None:
        idle_s = self.proxier.config.udp_idle_timeout_s
        for session in [s for s in self.sessions.values() if now - s.last_active > idle_s]:
            self.end_session(session)

    def close(self) -> None:
        if self.sock is not None:
            self.reactor.forget(self.sock.fileno())
            self.sock.close()
            self.sock = None
        for session in list(self.sessions.values()):
            session.close()
        self.sessions.clear()


# ------------------------------------------------------------ service ports


@dataclass(eq=False)
class PortProxy:
    """Everything the userspace proxy keeps for one service port."""

    info: ServicePort
    cluster_balancer: ServiceBalancer
    external_balancer: ServiceBalancer
    scheduler_name: str
    listeners: dict[ListenKey, Listener] = field(default_factory=dict)
    connections_total: int = 0
    connect_failures: int = 0
    rejected: int = 0  # connections refused for want of a usable backend

    @property
    def name(self) -> ServicePortName:
        return self.info.name

    def active(self) -> int:
        return sum(listener.connections() for listener in self.listeners.values())


class UserspaceProxier:
    """The userspace backend: `sync()` makes the listeners and balancers match a snapshot."""

    def __init__(
        self, config: UserspaceConfig | None = None, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.config = config or UserspaceConfig()
        make_scheduler(self.config.scheduler)  # fail early on an unknown name
        self.loop = loop or asyncio.get_running_loop()
        self.reactor = Reactor(self.loop)
        self.pipes = PipePool(self.config.pipe_size, self.config.pipe_pool)
        self.ports: dict[ServicePortName, PortProxy] = {}
        self.listeners: dict[ListenKey, Listener] = {}
        self.bind_errors: dict[ListenKey, str] = {}
        self._unsupported: set[ServicePortName] = set()  # warned about once
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self._schedule_sweep()

    # ------------------------------------------------------------------ render

    def desired_listeners(
        self, snapshot: Snapshot
    ) -> dict[ListenKey, tuple[ServicePortName, bool]]:
        """(address, port, protocol) → (service port, external?) for everything to listen on."""
        wanted: dict[ListenKey, tuple[ServicePortName, bool]] = {}

        def want(key: ListenKey, name: ServicePortName, external: bool) -> None:
            holder = wanted.get(key)
            if holder is not None and holder[0] != name:
                log.warning(
                    "proxy: %s:%d/%s is wanted by %s and %s; %s keeps it",
                    *key,
                    holder[0],
                    name,
                    holder[0],
                )
                return
            wanted[key] = (name, external)

        for name in sorted(snapshot.services):
            info = snapshot.services[name]
            if info.protocol not in ("TCP", "UDP"):
                # SCTP: the userspace mode carries TCP and UDP only (as kube-proxy's did).
                if name not in self._unsupported:
                    self._unsupported.add(name)
                    log.warning(
                        "proxy: %s is %s: not carried in userspace mode "
                        "(use --proxy-mode iptables or nftables)",
                        name,
                        info.protocol,
                    )
                continue
            for ip in info.cluster_ips:
                want((ip, info.port, info.protocol), name, False)
            for ip in info.external_ips + info.load_balancer_ips:
                want((ip, info.port, info.protocol), name, True)
            if info.node_port:
                for ip in self.config.node_addresses:
                    want((ip, info.node_port, info.protocol), name, True)
        return wanted

    # ------------------------------------------------------------------- apply

    def sync(self, snapshot: Snapshot, delta: SyncDelta) -> None:
        """Make the data path match `snapshot` (the delta is not needed: this diff is cheap)."""
        if self._closed:
            return
        wanted = self.desired_listeners(snapshot)
        # 1. Listeners no longer wanted (or wanted by another port or role) go, with their connections.
        for key, listener in list(self.listeners.items()):
            if wanted.get(key) != (listener.port.name, listener.external):
                listener.close()
                del self.listeners[key]
                listener.port.listeners.pop(key, None)
        # 2. Service ports: gone ones are dropped, the others get their settings and endpoints.
        for name in [n for n in self.ports if n not in snapshot.services]:
            port = self.ports.pop(name)
            for key, listener in port.listeners.items():
                listener.close()
                self.listeners.pop(key, None)
        for name, info in snapshot.services.items():
            if info.protocol not in ("TCP", "UDP"):
                continue
            self._configure(name, info, snapshot)
        # 3. Missing listeners are opened; failures are retried at the next sync.
        self.bind_errors = {}
        for key, (name, external) in wanted.items():
            if key in self.listeners:
                continue
            port = self.ports[name]
            cls = TcpListener if key[2] == "TCP" else UdpListener
            listener = cls(self, key, port, external)
            try:
                listener.open()
            except OSError as err:
                self.bind_errors[key] = err.strerror or str(err)
                log.warning(
                    "proxy: %s: cannot listen on %s:%d/%s: %s", name, *key, self.bind_errors[key]
                )
                continue
            self.listeners[key] = listener
            port.listeners[key] = listener

    def _configure(self, name: ServicePortName, info: ServicePort, snapshot: Snapshot) -> None:
        scheduler_name = info.scheduler or self.config.scheduler
        port = self.ports.get(name)
        if port is None:
            cluster = self._balancer(scheduler_name, info)
            port = PortProxy(info, cluster, cluster, scheduler_name)
            self.ports[name] = port
        port.info = info
        if port.scheduler_name != scheduler_name:
            port.scheduler_name = scheduler_name
            port.cluster_balancer.set_scheduler(make_scheduler(scheduler_name))
            if port.external_balancer is not port.cluster_balancer:
                port.external_balancer.set_scheduler(make_scheduler(scheduler_name))
        endpoints = snapshot.endpoints_of(name)
        node = self.config.node_name
        cluster_eps = usable_endpoints(info, endpoints, node_name=node, external=False)
        external_eps = usable_endpoints(info, endpoints, node_name=node, external=True)
        if cluster_eps == external_eps:
            port.external_balancer = port.cluster_balancer
        elif port.external_balancer is port.cluster_balancer:
            # The traffic policies differ: external traffic gets a balancer of its own.
            port.external_balancer = self._balancer(scheduler_name, info)
        for balancer, eps in (
            (port.cluster_balancer, cluster_eps),
            (port.external_balancer, external_eps),
        ):
            balancer.set_affinity_timeout(info.affinity_timeout_s)
            balancer.set_endpoints(ep.key for ep in eps)

    def _balancer(self, scheduler_name: str, info: ServicePort) -> ServiceBalancer:
        return ServiceBalancer(
            make_scheduler(scheduler_name),
            affinity_timeout_s=info.affinity_timeout_s,
            failure_hold_s=self.config.failure_hold_s,
            dial_timeouts_s=self.config.dial_timeouts_s,
        )

    # ------------------------------------------------------------ housekeeping

    def _schedule_sweep(self) -> None:
        config = self.config
        # Often enough that an idle timeout is kept to within half of itself.
        interval_s = min(
            config.sweep_interval_s, config.tcp_idle_timeout_s / 2, config.udp_idle_timeout_s / 2
        )
        self._sweeper = self.loop.call_later(interval_s, self._sweep)

    def _sweep(self) -> None:
        now = time.monotonic()
        try:
            for listener in list(self.listeners.values()):
                listener.sweep(now)
            for port in self.ports.values():
                port.cluster_balancer.sweep(now)
                if port.external_balancer is not port.cluster_balancer:
                    port.external_balancer.sweep(now)
        finally:
            if not self._closed:
                self._schedule_sweep()

    def iter_ports(self) -> Iterator[PortProxy]:
        return iter(list(self.ports.values()))

    def close(self) -> None:
        """Close every listener and connection."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()
        self.ports.clear()
        self.pipes.close()
        self.reactor.close()
