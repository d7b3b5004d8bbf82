"""An asyncio client of the Kubernetes API (any compatible server, kubesvc's or a real one).

Errors come back as the server's `Status`, raised as `StatusError`, so code
built on the client handles a 404 or a 409 the same way the server names it.
Connection failures raise `APIUnavailable`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp

from kubesvc.api.errors import StatusError
from kubesvc.api.resources import BY_KIND, Resource
from kubesvc.client.kubeconfig import ClusterAccess

Obj = dict[str, Any]


class APIUnavailable(Exception):
    """The API server could not be reached (or the connection broke)."""


def _status_error(code: int, body: bytes) -> StatusError:
    try:
        status = json.loads(body)
    except ValueError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        details = status.get("details") or {}
        return StatusError(
            int(status.get("code") or code),
            str(status.get("message", "")),
            status.get("reason"),
            kind=details.get("kind"),
            name=details.get("name"),
            group=details.get("group"),
            causes=details.get("causes"),
            retry_after_s=details.get("retryAfterSeconds"),
        )
    return StatusError(code, body.decode(errors="replace")[:500] or f"HTTP {code}")


def resource_for(kind: str) -> Resource:
    try:
        return BY_KIND[kind]
    except KeyError:
        raise ValueError(f"unknown kind {kind!r}") from None


def path_for(
    resource: Resource,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The REST path of a collection, an object, or an object's subresource."""
    base = "/api/v1" if not resource.group else f"/apis/{resource.group_version}"
    if resource.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{resource.plural}"
    if name:
        base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
    return base


class Client:
    """Typed-by-kind REST calls and watch streams over one keep-alive HTTP session."""

    def __init__(
        self, access: ClusterAccess, *, user_agent: str = "kubesvc", timeout_s: float = 30.0
    ) -> None:
        self.access = access
        self._user_agent = user_agent
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"User-Agent": self._user_agent, "Accept": "application/json"}
            if self.access.token:
                headers["Authorization"] = f"Bearer {self.access.token}"
            connector = aiohttp.TCPConnector(ssl=self.access.ssl_context() or False, limit=64)
            self._session = aiohttp.ClientSession(
                base_url=self.access.server, headers=headers, connector=connector
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        """One call; the decoded JSON answer, or StatusError / APIUnavailable."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else None
        url = path + ("?" + urlencode(params) if params else "")
        try:
            async with self._session_now().request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            ) as response:
                payload = await response.read()
                if response.status >= 400:
                    raise _status_error(response.status, payload)
                return json.loads(payload) if payload else {}
        except (TimeoutError, aiohttp.ClientConnectionError) as err:
            raise APIUnavailable(
                f"{method} {self.access.server}{path}: {err or type(err).__name__}"
            ) from err

    # -------------------------------------------------------------- verbs

    async def get(self, kind: str, name: str, namespace: str | None = None) -> Obj:
        return await self.request("GET", path_for(resource_for(kind), namespace, name))

    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> Obj:
        params = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        return await self.request("GET", path_for(resource_for(kind), namespace), params=params)

    async def create(
        self, obj: Obj, namespace: str | None = None, *, field_manager: str = ""
    ) -> Obj:
        resource = resource_for(obj["kind"])
        ns = namespace or obj.get("metadata", {}).get("namespace")
        params = {"fieldManager": field_manager} if field_manager else None
        return await self.request("POST", path_for(resource, ns), body=obj, params=params)

    async def update(
        self, obj: Obj, *, subresource: str | None = None, field_manager: str = ""
    ) -> Obj:
        resource = resource_for(obj["kind"])
        meta = obj["metadata"]
        params = {"fieldManager": field_manager} if field_manager else None
        return await self.request(
            "PUT",
            path_for(resource, meta.get("namespace"), meta["name"], subresource),
            body=obj,
            params=params,
        )

    async def patch(
        self,
        kind: str,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "application/merge-patch+json",
        subresource: str | None = None,
        field_manager: str = "",
        force: bool = False,
    ) -> Obj:
        params = {}
        if field_manager:
            params["fieldManager"] = field_manager
        if force:
            params["force"] = "true"
        return await self.request(
            "PATCH",
            path_for(resource_for(kind), namespace, name, subresource),
            body=patch,
            params=params,
            content_type=patch_type,
        )

    async def delete(
        self,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
    ) -> Obj:
        body = None
        if resource_version is not None:
            body = {
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "preconditions": {"resourceVersion": resource_version},
            }
        return await self.request(
            "DELETE", path_for(resource_for(kind), namespace, name), body=body
        )

    async def watch(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        resource_version: str,
        label_selector: str = "",
        timeout_s: int = 300,
        bookmarks: bool = True,
    ) -> AsyncIterator[tuple[str, Obj]]:
        """Watch events as (type, object) from `resource_version`; ends when the server ends it.

        An in-stream ERROR (410 Expired) is raised as StatusError.
        """
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_s),
            "allowWatchBookmarks": "true" if bookmarks else "false",
        }
        if label_selector:
            params["labelSelector"] = label_selector
        path = path_for(resource_for(kind), namespace) + "?" + urlencode(params)
        try:
            async with self._session_now().get(
                path, timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout_s)
            ) as response:
                if response.status >= 400:
                    raise _status_error(response.status, await response.read())
                async for line in response.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise _status_error(
                            int(status.get("code") or 500), json.dumps(status).encode()
                        )
                    yield event["type"], event["object"]
        except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as err:
            raise APIUnavailable(f"watch {path}: {err or type(err).__name__}") from err
