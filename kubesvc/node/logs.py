"""Container logs: reading the log files, and the node's small HTTP server the API server proxies to.

A container's stdout and stderr go straight into a file in the data dir
(the process writes it even while no agent runs). The node serves them at

    GET http://<node ip>:<port>/<token>/containerLogs/<namespace>/<pod>/<container>
        ?follow=true&tailLines=N&limitBytes=N&previous=true

(the kubelet's path), and records `http://<node ip>:<port>/<token>` in each of
its pods' `node.kubesvc.io/logs` annotation, where the API server finds it
to answer `kubectl logs` (`pods/log`). The random token keeps the port
from serving logs to anyone on the machine who has no way to read pods
through the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

LOG_ANNOTATION = "node.kubesvc.io/logs"
FOLLOW_POLL_S = 0.1
CHUNK = 64 * 1024


@dataclass
class LogSource:
    path: Path
    running: Callable[[], bool]  # the process may still write: follow keeps reading


class LogNotFound(Exception):
    """The log asked for does not exist (yet); the message is the API's wording."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


Locate = Callable[[str, str, str, bool, str | None], LogSource]


def tail_lines(data: bytes, lines: int) -> bytes:
    """The last `lines` lines of `data` (a final line without a newline counts as one)."""
    if lines <= 0:
        return b""
    end = len(data) - 1 if data.endswith(b"\n") else len(data)
    pos = end
    for _ in range(lines):
        pos = data.rfind(b"\n", 0, pos)
        if pos == -1:
            return data
    return data[pos + 1 :]


def read_tail(path: Path, lines: int | None) -> tuple[bytes, int]:
    """(the file's last `lines` lines, or all of it; the file size read up to)."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        if lines is None:
            f.seek(0)
            return f.read(size), size
        # Read backwards in chunks until enough newlines are in hand.
        buf = b""
        pos = size
        while pos > 0 and buf.count(b"\n") <= lines:
            step = min(CHUNK, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
        return tail_lines(buf, lines), size


def _int_param(query: dict[str, str], key: str) -> int | None:
    value = query.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{key}: not an integer: {value!r}") from None


class LogServer:
    """The node's log endpoint (plain HTTP on the node IP; a token in the path)."""

    def __init__(self, locate: Locate, host: str, port: int = 0) -> None:
        self.locate = locate
        self.host = host
        self.port = port
        self.token = secrets.token_urlsafe(18)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/{self.token}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(
            "/{token}/containerLogs/{namespace}/{pod}/{container}", self._container_logs
        )
        # Cancel a follow when its client goes away, so no reader outlives its request.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _container_logs(self, request: web.Request) -> web.StreamResponse:
        if not secrets.compare_digest(request.match_info["token"], self.token):
            raise web.HTTPNotFound()
        query = dict(request.query)
        follow = query.get("follow", "").lower() in ("1", "true")
        previous = query.get("previous", "").lower() in ("1", "true")
        tail = _int_param(query, "tailLines")
        limit = _int_param(query, "limitBytes")
        try:
            source = self.locate(
                request.match_info["namespace"],
                request.match_info["pod"],
                request.match_info["container"],
                previous,
                query.get("uid") or None,
            )
        except LogNotFound as err:
            return web.Response(status=err.code, text=str(err))
        try:
            data, offset = read_tail(source.path, tail if tail is not None and tail >= 0 else None)
        except FileNotFoundError:
            data, offset = b"", 0
        if limit is not None and limit > 0:
            data = data[:limit]
        if not follow or (limit is not None and len(data) >= limit):
            return web.Response(body=data, content_type="text/plain", charset="utf-8")
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        sent = len(data)
        if data:
            await response.write(data)
        # Follow: new output as it comes, until the process has ended and all of it is sent.
        while True:
            running = source.running()
            chunk = b""
            with contextlib.suppress(FileNotFoundError), open(source.path, "rb") as f:
                f.seek(offset)
                chunk = f.read(CHUNK)
            if chunk:
                offset += len(chunk)
                if limit is not None and limit > 0:
                    chunk = chunk[: limit - sent]
                await response.write(chunk)
                sent += len(chunk)
                if limit is not None and 0 < limit <= sent:
                    break
                continue
            if not running:
                break
            await asyncio.sleep(FOLLOW_POLL_S)
        await response.write_eof()
        return response
