"""Running one probe check (I/O): an HTTP GET, a TCP connect, or a command.

The thresholds that turn results into readiness are pure and live in
`readiness.py`; this module only answers "did this one check pass, and if
not, why", within the probe's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import aiohttp

from kubesvc.node.readiness import Check, ExecCheck, HTTPCheck, TCPCheck

MAX_OUTPUT = 10 * 1024  # the kubelet keeps 10 KiB of a probe's output for its message


async def run_check(
    check: Check,
    timeout_s: float,
    *,
    session: aiohttp.ClientSession,
    env: dict[str, str],
    prefix: list[str],
    workdir: str,
) -> tuple[bool, str]:
    """(passed, message); the message says why a check failed, as the kubelet words it."""
    if isinstance(check, HTTPCheck):
        return await _http(check, timeout_s, session)
    if isinstance(check, TCPCheck):
        return await _tcp(check, timeout_s)
    return await _exec(check, timeout_s, env, prefix, workdir)


async def _http(
    check: HTTPCheck, timeout_s: float, session: aiohttp.ClientSession
) -> tuple[bool, str]:
    headers = {"User-Agent": "kube-probe/kubesvc", "Accept": "*/*"}
    headers.update(dict(check.headers))
    try:
        async with session.get(
            check.url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s), ssl=False
        ) as response:
            await response.content.read(MAX_OUTPUT)
            if 200 <= response.status < 400:
                return True, ""
            return False, f"HTTP probe failed with statuscode: {response.status}"
    except TimeoutError:
        return False, f'Get "{check.url}": context deadline exceeded'
    except (aiohttp.ClientError, OSError) as err:
        return False, f'Get "{check.url}": {err}'


async def _tcp(check: TCPCheck, timeout_s: float) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(check.host, check.port)
    except TimeoutError:
        return False, f"dial tcp {check.host}:{check.port}: i/o timeout"
    except OSError as err:
        return False, f"dial tcp {check.host}:{check.port}: {err.strerror or err}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True, ""


async def _exec(
    check: ExecCheck, timeout_s: float, env: dict[str, str], prefix: list[str], workdir: str
) -> tuple[bool, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *prefix,
            *check.command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=None if prefix else workdir,
            start_new_session=True,  # so a timeout can end everything it started
        )
    except OSError as err:
        return False, f"cannot run {check.command[0]!r}: {err.strerror or err}"
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        return False, f"command {list(check.command)!r} timed out"
    if proc.returncode == 0:
        return True, ""
    text = out[:MAX_OUTPUT].decode(errors="replace").strip()
    return False, text or f"command exited with {proc.returncode}"
