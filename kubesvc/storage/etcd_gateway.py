"""A small client of etcd's v3 JSON gateway: unary calls with fail-over, and watch streams.

etcd serves its gRPC API also as JSON over HTTP/1.1 (grpc-gateway) on the same
client port: ``POST /v3/kv/range``, ``/v3/kv/txn``, ``/v3/kv/compaction``,
``/v3/watch`` (a streaming response of newline-separated JSON messages). Keys
and values are base64, 64-bit integers are decimal strings, fields at their
zero value are left out. Debian's etcd 3.4 serves both ``/v3/`` and the older
``/v3beta/``; 3.5 and later only ``/v3/``, so ``/v3/`` is what we use. This
saves a gRPC/protobuf dependency; the price is one HTTP connection per watch
(the gateway cannot multiplex watches on one HTTP/1.1 stream), which the store
keeps small by feeding all its watchers from one etcd watch.

Fail-over: requests go to one member at a time; a member that cannot be reached
is left for the next one. What may be retried depends on whether the request
could have been applied:

- not delivered (connection refused, DNS, TLS handshake) or refused by etcd
  before proposing it (no leader, too many requests): always retried;
- delivered, then the connection broke or etcd timed out waiting for the
  proposal to commit: retried only for requests that write nothing; for a write
  the outcome is unknown, and `Indeterminate` says so (a blind retry of a create
  could report "already exists" for our own write, or apply an update twice).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from kubesvc.storage.errors import Indeterminate, StorageError, StoreClosed, Unavailable

log = logging.getLogger("kubesvc.storage.etcd")

DEFAULT_PORT = 2379
API = "/v3"

# gRPC status codes etcd answers with (in the gateway's JSON error "code").
UNKNOWN = 2
DEADLINE_EXCEEDED = 4
RESOURCE_EXHAUSTED = 8
OUT_OF_RANGE = 11
UNAVAILABLE = 14

# Messages of errors that etcd returns before proposing a request to raft, so a
# write that got one was not applied and can be sent again.
_NOT_PROPOSED = (
    "etcdserver: no leader",
    "etcdserver: too many requests",
    "raft proposal dropped",
)
COMPACTED = "required revision has been compacted"
FUTURE_REVISION = "required revision is a future revision"


class EtcdError(StorageError):
    """etcd answered with an error; `code` is its gRPC status code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(f"etcd: {message}")
        self.etcd_message = message
        self.code = code

    @property
    def compacted(self) -> bool:
        return COMPACTED in self.etcd_message

    @property
    def future_revision(self) -> bool:
        return FUTURE_REVISION in self.etcd_message

    @property
    def not_proposed(self) -> bool:
        return any(m in self.etcd_message for m in _NOT_PROPOSED)

    @property
    def transient(self) -> bool:
        """Worth retrying a read for: the cluster is electing, overloaded or restarting."""
        if "database space exceeded" in self.etcd_message:
            return False
        return self.code in (UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """Client TLS for etcd: the CA that signed the members' certificates, and our own pair."""

    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)
        if self.certfile is not None:
            ctx.load_cert_chain(str(self.certfile), str(self.keyfile) if self.keyfile else None)
        return ctx


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def range_end(prefix: bytes) -> bytes:
    """etcd's range end for "every key starting with `prefix`" (the prefix with its last byte + 1)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"  # etcd: from the key to the end of the keyspace


def _parse_host_port(text: str) -> tuple[str, int]:
    """``host:port``, ``host``, ``[v6]:port`` → (host, port)."""
    text = text.strip()
    if not text:
        raise ValueError("empty etcd endpoint")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"bad etcd endpoint {text!r}")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad etcd endpoint {text!r}")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise ValueError(f"bad etcd endpoint {text!r}: write an IPv6 address as [addr]:port")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"bad etcd endpoint {text!r}: no host")
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"bad etcd endpoint {text!r}: port is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"bad etcd endpoint {text!r}: port out of range")
    return host, port


def parse_etcd_url(url: str) -> tuple[list[str], str | None]:
    """``etcd://host:port[,host:port...][/prefix]`` → (["host:port", ...], "/prefix" or None)."""
    scheme = "etcd://"
    if not url.startswith(scheme):
        raise ValueError(f"{url!r}: expected etcd://host:port[,host:port...][/prefix]")
    rest = url[len(scheme) :]
    hosts, slash, path = rest.partition("/")
    endpoints = []
    for part in hosts.split(","):
        host, port = _parse_host_port(part)
        endpoints.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    prefix = "/" + path.strip("/") if slash and path.strip("/") else None
    return endpoints, prefix


class GatewayClient:
    """Calls to a set of etcd members over the JSON gateway, one member at a time."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        tls: TLSFiles | None = None,
        timeout: float = 10.0,
    ) -> None:
        """`endpoints` are ``host:port``; `timeout` bounds one call including its retries."""
        if not endpoints:
            raise ValueError("no etcd endpoints")
        scheme = "https" if tls is not None else "http"
        self.endpoints = [f"{scheme}://{e}" for e in endpoints]
        self._ssl: ssl.SSLContext | bool = tls.context() if tls is not None else False
        self.timeout = timeout
        self._current = 0
        self._session: aiohttp.ClientSession | None = None
        self._watch_session: aiohttp.ClientSession | None = None
        self.closed = False

    def _sessions(self) -> tuple[aiohttp.ClientSession, aiohttp.ClientSession]:
        if self.closed:
            raise StoreClosed()
        if self._session is None or self._watch_session is None:
            # Watches hold their connection for their lifetime: they get their own
            # unlimited pool so that they never starve unary calls of connections.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=64),
                json_serialize=_dumps,
            )
            self._watch_session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=0),
                json_serialize=_dumps,
            )
        return self._session, self._watch_session

    @property
    def current(self) -> int:
        """Index of the member calls go to now."""
        return self._current

    def fail_over(self, index: int) -> None:
        """The member at `index` failed us: the next call goes to the next member."""
        if self._current == index:
            self._current = (index + 1) % len(self.endpoints)

    async def close(self) -> None:
        self.closed = True
        for session in (self._session, self._watch_session):
            if session is not None:
                await session.close()

    async def call(self, method: str, body: dict[str, Any], *, writes: bool) -> dict[str, Any]:
        """POST `body` to ``/v3/<method>`` and return the decoded answer.

        Retries on other members until `timeout` as the module docstring says;
        raises EtcdError for etcd's own refusals, Unavailable when no member
        answered, Indeterminate for a write whose outcome is unknown.
        """
        session, _ = self._sessions()
        deadline = time.monotonic() + self.timeout
        pause = 0.02
        tried = 0
        last: Exception | None = None
        while True:
            index = self._current
            url = f"{self.endpoints[index]}{API}/{method}"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Unavailable(
                    f"etcd: no member answered {method} within {self.timeout:g} s: {last}"
                ) from last
            try:
                async with session.post(
                    url,
                    json=body,
                    timeout=aiohttp.ClientTimeout(total=remaining, sock_connect=min(remaining, 2)),
                ) as resp:
                    payload = await resp.read()
                    status = resp.status
                answer = _decode(payload, status)
                if status == 200 and isinstance(answer, dict) and "error" not in answer:
                    return answer
                err = _error_of(answer, status)
                if err.not_proposed or (not writes and err.transient):
                    last = err
                    self.fail_over(index)
                elif err.transient:
                    raise Indeterminate(f"{err}; the write may or may not have been applied")
                else:
                    raise err
            except aiohttp.ClientConnectorError as err:
                # Raised while connecting, before any byte of the request was
                # sent: safe to send elsewhere, even a write.
                last = err
                self.fail_over(index)
            except RuntimeError as err:  # aiohttp: "Session is closed"
                if self.closed:
                    raise StoreClosed() from err
                raise
            except (aiohttp.ClientError, TimeoutError, OSError) as err:
                if self.closed:
                    raise StoreClosed() from err
                self.fail_over(index)
                if writes:
                    # The request may have been read and proposed before the
                    # connection broke (the member died, or we timed out).
                    raise Indeterminate(
                        f"etcd: {method} to {url}: {err or type(err).__name__}; "
                        "the write may or may not have been applied"
                    ) from err
                last = err
            if self.closed:
                raise StoreClosed()
            tried += 1
            if tried % len(self.endpoints) == 0:
                # Every member failed once: wait a little before the next round.
                await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                pause = min(pause * 2, 0.5)

    async def probe(self, index: int, timeout: float) -> bool:
        """Whether member `index` answers a linearizable read within `timeout` (it is in quorum)."""
        session, _ = self._sessions()
        url = f"{self.endpoints[index]}{API}/kv/range"
        try:
            async with session.post(
                url,
                json={"key": b64(b"\x00"), "limit": 1},
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                await resp.read()
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError, RuntimeError):
            return False

    async def watch(
        self, create_request: dict[str, Any], index: int
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Open one watch on member `index` and yield its responses (the "result" objects).

        Ends when the member ends the stream; raises EtcdError for an error
        message in the stream, Unavailable when the connection fails (the member
        is then left for the next). Close the generator to end the watch.
        """
        _, session = self._sessions()
        url = f"{self.endpoints[index]}{API}/watch"
        try:
            async with session.post(
                url,
                json={"create_request": create_request},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=2, sock_read=None),
            ) as resp:
                if resp.status != 200:
                    raise _error_of(_decode(await resp.read(), resp.status), resp.status)
                buffer = bytearray()
                async for chunk in resp.content.iter_any():
                    scan = len(buffer)
                    buffer += chunk
                    while (newline := buffer.find(b"\n", scan)) >= 0:
                        line = bytes(buffer[:newline])
                        del buffer[: newline + 1]
                        scan = 0
                        if not line.strip():
                            continue
                        message = json.loads(line)
                        if "error" in message:
                            raise _error_of(message["error"], resp.status)
                        yield message.get("result") or {}
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as err:
            if self.closed:
                raise StoreClosed() from err
            self.fail_over(index)
            raise Unavailable(f"etcd watch on {url}: {err or type(err).__name__}") from err


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _decode(payload: bytes, status: int) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        text = payload[:200].decode(errors="replace")
        return {"error": f"HTTP {status}: {text}", "code": UNKNOWN}


def _error_of(answer: Any, status: int) -> EtcdError:
    if not isinstance(answer, dict):
        return EtcdError(f"HTTP {status}: unexpected answer", UNKNOWN)
    message = answer.get("message") or answer.get("error") or f"HTTP {status}"
    if isinstance(message, dict):  # a stream error: {"grpc_code":…, "message":…}
        answer, message = message, message.get("message") or str(message)
    code = answer.get("code", answer.get("grpc_code", UNKNOWN))
    try:
        code = int(code)
    except (TypeError, ValueError):
        code = UNKNOWN
    return EtcdError(str(message), code)
