"""The HTTP edge of the API server (aiohttp): routing, authentication, encoding, watch streams.

Everything below the edge raises `StatusError`; the error middleware turns it
into a Kubernetes `Status` response, once. Request bodies are read with a
size cap so an oversized body is refused without being held in memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import yaml
from aiohttp import web

from kubesvc.api import errors, selectors, tables
from kubesvc.api.errors import StatusError
from kubesvc.apiserver import discovery, openapi, reviews
from kubesvc.apiserver.auth import Authenticator, User
from kubesvc.apiserver.resources import BY_PLURAL, Resource, group_versions
from kubesvc.apiserver.rest import (
    PATCH_APPLY,
    PATCH_TYPES,
    ListOptions,
    Preconditions,
    Rest,
    WriteOptions,
)
from kubesvc.storage import errors as store_errors

log = logging.getLogger("kubesvc.apiserver")

MAX_BODY_BYTES = 3 * 1024 * 1024
DEFAULT_MAX_WATCHES = 1000
JSON = "application/json"
PROTOBUF = "application/vnd.kubernetes.protobuf"
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
PUBLIC_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})
# Where a pod's node serves its logs (set by the node agent; see kubesvc/node/logs.py).
POD_LOG_ANNOTATION = "node.kubesvc.io/logs"
POD_LOG_PARAMS = ("follow", "previous", "tailLines", "limitBytes")
UNSUPPORTED_LOG_PARAMS = ("timestamps", "sinceSeconds", "sinceTime")
_USER_KEY = web.RequestKey("user", User)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _content_type(request: web.Request, default: str = JSON) -> str:
    """The request's media type, without parameters, lower case."""
    return (request.headers.get("Content-Type") or default).split(";")[0].strip().lower()


def _json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type=JSON,
        headers=headers,
    )


def _status_response(err: StatusError) -> web.Response:
    headers = {"Retry-After": str(err.retry_after_s)} if err.retry_after_s is not None else None
    return _json_response(err.status(), err.code, headers)


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_target(group_version: str, parts: list[str]) -> Target:
    """Resolve the path after `/api/v1` or `/apis/<group>/<version>` to a resource target."""

    def resource(plural: str) -> Resource:
        found = BY_PLURAL.get((group_version, plural))
        if found is None:
            raise errors.StatusError(
                404, f"the server could not find the requested resource ({plural})", "NotFound"
            )
        return found

    if not parts:
        raise errors.StatusError(
            404, "the server could not find the requested resource", "NotFound"
        )
    if parts[0] == "namespaces" and len(parts) >= 3 and (group_version, parts[2]) in BY_PLURAL:
        # /namespaces/<ns>/<plural>[/<name>[/<subresource>]]
        res = resource(parts[2])
        if not res.namespaced or len(parts) > 5:
            raise errors.StatusError(
                404, "the server could not find the requested resource", "NotFound"
            )
        name = parts[3] if len(parts) > 3 else None
        sub = parts[4] if len(parts) > 4 else None
        return Target(res, parts[1], name, sub)
    res = resource(parts[0])
    if len(parts) > 3:
        raise errors.StatusError(
            404, "the server could not find the requested resource", "NotFound"
        )
    name = parts[1] if len(parts) > 1 else None
    sub = parts[2] if len(parts) > 2 else None
    if res.namespaced and name is not None:
        raise errors.StatusError(
            404, "the server could not find the requested resource", "NotFound"
        )
    return Target(res, None, name, sub)


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "t", "yes")


def _query(request: web.Request) -> dict[str, str]:
    """Query parameters, the last value winning (aiohttp's MultiDict keeps all)."""
    return {k: v for k, v in request.query.items()}


def _wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return any("as=Table" in part for part in accept.split(","))


class APIServer:
    """The Kubernetes-compatible API over a `Rest` core."""

    def __init__(
        self,
        rest: Rest,
        authenticator: Authenticator | None,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_watches: int = DEFAULT_MAX_WATCHES,
        watch_bookmark_s: float = 5.0,
    ) -> None:
        self.rest = rest
        self.authenticator = authenticator
        self.max_body_bytes = max_body_bytes
        self.max_watches = max_watches
        self.watch_bookmark_s = watch_bookmark_s
        self.open_watches = 0
        self.ready = False
        self.ready_checks: list[Callable[[], bool]] = []

    # ---------------------------------------------------------------- the app

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._errors, self._authenticate], client_max_size=self.max_body_bytes
        )
        app.router.add_get("/version", self._version)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/livez", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/api", self._api)
        app.router.add_get("/apis", self._apis)
        app.router.add_get("/openapi/v2", self._openapi_v2)
        app.router.add_get("/openapi/v3", self._openapi_root)
        app.router.add_get("/openapi/v3/{path:.+}", self._openapi_doc)
        app.router.add_route("*", "/api/v1", self._group_version_root)
        app.router.add_route("*", "/api/v1/{rest:.+}", self._resource)
        # `kubectl auth can-i` and `kubectl auth whoami` (before the resources' routes).
        app.router.add_post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", self._access_review
        )
        app.router.add_post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews", self._self_subject_review
        )
        app.router.add_route("*", "/apis/{group}/{version}", self._group_version_root)
        app.router.add_route("*", "/apis/{group}/{version}/{rest:.+}", self._resource)
        app.router.add_get("/apis/{group}", self._group)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except StatusError as err:
            return _status_response(err)
        except web.HTTPRequestEntityTooLarge:
            return _status_response(
                errors.too_large(f"the request body is larger than {self.max_body_bytes} bytes")
            )
        except web.HTTPException as exc:
            if exc.status == 404:
                return _status_response(
                    errors.StatusError(
                        404, "the server could not find the requested resource", "NotFound"
                    )
                )
            if exc.status == 405:
                return _status_response(errors.method_not_allowed(request.method, request.path))
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except (
            store_errors.Unavailable,
            store_errors.Indeterminate,
            store_errors.StoreClosed,
        ) as err:
            # The storage, not the request, is at fault: 503/504, which clients retry.
            log.warning("%s %s: %s", request.method, request.path, err)
            return _status_response(store_errors.to_status_error(err, "", ""))
        except Exception as exc:  # the last line of defence: a Status, never a stack trace
            log.exception("internal error serving %s %s", request.method, request.path)
            return _status_response(errors.internal_error(exc))

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS or self.authenticator is None:
            return await handler(request)
        user = self.authenticator.user_for(request.headers.get("Authorization"))
        if user is None:
            raise errors.unauthorized()
        request[_USER_KEY] = user
        return await handler(request)

    def _authorise(self, request: web.Request, verb: str, target: Target | None) -> None:
        user: User | None = request.get(_USER_KEY)
        if user is None or user.may(verb):
            return
        plural = target.resource.plural if target else ""
        scope = f' in the namespace "{target.namespace}"' if target and target.namespace else ""
        why = f'User "{user.name}" cannot {verb} resource "{plural}" in API group "{target.resource.group if target else ""}"{scope}'
        raise errors.forbidden(plural, target.name or "" if target else "", why)

    # ------------------------------------------------------- fixed endpoints

    def _caller(self, request: web.Request) -> User:
        # Without an authenticator (tests of the bare API) the caller may do anything.
        return request.get(_USER_KEY) or User("admin", "0", ("system:masters",))

    async def _access_review(self, request: web.Request) -> web.Response:
        body = await self._decode_body(request)
        return _json_response(reviews.access_review(self._caller(request), body), 201)

    async def _self_subject_review(self, request: web.Request) -> web.Response:
        await self._read_body(request)
        return _json_response(reviews.self_subject_review(self._caller(request)), 201)

    async def _version(self, request: web.Request) -> web.Response:
        return _json_response(discovery.version_info())

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.ready and all(check() for check in self.ready_checks):
            return web.Response(text="ok")
        return web.Response(text="not ready", status=503)

    def _discovery_response(
        self, request: web.Request, for_core: bool, legacy: Callable[[], Any]
    ) -> web.Response:
        mode = discovery.negotiate_discovery(request.headers.get("Accept", ""))
        if mode == "legacy":
            return _json_response(legacy())
        body, content_type = discovery.aggregated_discovery(for_core, mode)
        return web.Response(
            body=json.dumps(body).encode(),
            content_type=None,
            headers={"Content-Type": content_type},
        )

    async def _api(self, request: web.Request) -> web.Response:
        return self._discovery_response(request, True, discovery.api_versions)

    async def _apis(self, request: web.Request) -> web.Response:
        return self._discovery_response(request, False, discovery.api_group_list)

    async def _group(self, request: web.Request) -> web.Response:
        group = request.match_info["group"]
        for gv in group_versions():
            if gv.startswith(group + "/"):
                return _json_response(discovery.api_group(group))
        raise errors.StatusError(
            404, "the server could not find the requested resource", "NotFound"
        )

    async def _group_version_root(self, request: web.Request) -> web.Response:
        gv = self._group_version(request)
        if request.method != "GET":
            raise errors.method_not_allowed(request.method, request.path)
        if gv not in group_versions():
            raise errors.StatusError(
                404, "the server could not find the requested resource", "NotFound"
            )
        return _json_response(discovery.api_resource_list(gv))

    async def _openapi_v2(self, request: web.Request) -> web.Response:
        # kubectl 1.27/1.28 read v2 (protobuf only) before `explain`; newer ones use v3.
        return web.Response(
            body=openapi.openapi_v2_document(),
            headers={"Content-Type": openapi.OPENAPI_V2_CONTENT_TYPE},
        )

    async def _openapi_root(self, request: web.Request) -> web.Response:
        return _json_response(openapi.openapi_v3_root())

    async def _openapi_doc(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        gv = path.removeprefix("api/").removeprefix("apis/")
        if gv not in group_versions():
            raise errors.StatusError(
                404, f"the server could not find the requested resource ({path})", "NotFound"
            )
        body = openapi.openapi_v3_document(gv)
        etag = f'"{openapi.document_hash(gv)}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(
            body=body,
            content_type=JSON,
            headers={"ETag": etag, "Cache-Control": "public, immutable"},
        )

    # -------------------------------------------------------------- resources

    @staticmethod
    def _group_version(request: web.Request) -> str:
        if request.path.startswith("/api/"):
            return "v1"
        return f"{request.match_info['group']}/{request.match_info['version']}"

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        gv = self._group_version(request)
        if gv not in group_versions():
            raise errors.StatusError(
                404, "the server could not find the requested resource", "NotFound"
            )
        target = parse_target(gv, [p for p in request.match_info["rest"].split("/") if p])
        query = _query(request)
        method = request.method
        if (
            target.resource.kind == "Pod"
            and target.name
            and target.subresource in ("binding", "log")
        ):
            return await self._pod_subresource(request, target, query)
        if target.subresource not in (None, "status") or (
            target.subresource == "status" and "status" not in target.resource.subresources
        ):
            raise errors.StatusError(
                404,
                f"the server could not find the requested resource ({target.subresource})",
                "NotFound",
            )
        if target.name is None:
            if method == "GET":
                watching = _flag(query.get("watch"))
                self._authorise(request, "watch" if watching else "list", target)
                if watching:
                    return await self._watch(request, target, query)
                return await self._list(request, target, query)
            if method == "POST":
                self._authorise(request, "create", target)
                return await self._create(request, target, query)
            if method == "DELETE":
                self._authorise(request, "deletecollection", target)
                opts = self._list_options(target, query)
                listed = await self.rest.delete_collection(
                    target.resource, target.namespace, opts, self._dry_run(query)
                )
                return _json_response(listed)
            raise errors.method_not_allowed(method, request.path)
        if method == "GET":
            self._authorise(request, "get", target)
            obj = await self.rest.get(target.resource, target.namespace, target.name)
            return self._object_response(request, target, obj, query)
        if method == "PUT":
            self._authorise(request, "update", target)
            body = await self._decode_body(request)
            opts = self._write_options(query)
            obj, created = await self.rest.update(
                target.resource,
                target.namespace,
                target.name,
                body,
                opts,
                target.subresource,
            )
            return _json_response(obj, 201 if created else 200, _warning_headers(opts))
        if method == "PATCH":
            self._authorise(request, "patch", target)
            return await self._patch(request, target, query)
        if method == "DELETE":
            self._authorise(request, "delete", target)
            return await self._delete(request, target, query)
        raise errors.method_not_allowed(method, request.path)

    def _object_response(
        self, request: web.Request, target: Target, obj: dict[str, Any], query: dict[str, str]
    ) -> web.Response:
        if _wants_table(request):
            return _json_response(
                tables.table(
                    target.resource.kind,
                    [obj],
                    _now(),
                    include_object=query.get("includeObject", "Metadata"),
                )
            )
        return _json_response(obj)

    @staticmethod
    def _dry_run(query: dict[str, str]) -> bool:
        value = query.get("dryRun")
        if value is None:
            return False
        if value != "All":
            raise errors.bad_request(f'Invalid dryRun value: {value!r}: only "All" is supported')
        return True

    def _write_options(self, query: dict[str, str], *, force: bool = False) -> WriteOptions:
        manager = query.get("fieldManager", "")
        if len(manager) > 128:
            raise errors.bad_request("fieldManager: Too long: must have at most 128 bytes")
        return WriteOptions(self._dry_run(query), manager, force, query.get("fieldValidation"))

    def _list_options(self, target: Target, query: dict[str, str]) -> ListOptions:
        label = query.get("labelSelector")
        field = query.get("fieldSelector")
        limit_text = query.get("limit", "0")
        try:
            limit = int(limit_text)
        except ValueError:
            raise errors.bad_request(f"limit: invalid value {limit_text!r}") from None
        return ListOptions(
            selectors.parse_label_selector(label) if label else None,
            selectors.parse_field_selector(field, selectors.selectable_fields(target.resource.kind))
            if field
            else None,
            max(limit, 0),
            query.get("continue", ""),
        )

    async def _list(
        self, request: web.Request, target: Target, query: dict[str, str]
    ) -> web.Response:
        listed = await self.rest.list(
            target.resource, target.namespace, self._list_options(target, query)
        )
        if _wants_table(request):
            table = tables.table(
                target.resource.kind,
                listed["items"],
                _now(),
                include_object=query.get("includeObject", "Metadata"),
            )
            table["metadata"] = listed["metadata"]
            return _json_response(table)
        return _json_response(listed)

    async def _watch(
        self, request: web.Request, target: Target, query: dict[str, str]
    ) -> web.StreamResponse:
        opts = self._list_options(target, query)
        timeout_text = query.get("timeoutSeconds")
        try:
            # Without a timeout Kubernetes ends a watch after a random 30-60 minutes, spreading relists.
            timeout_s = float(timeout_text) if timeout_text else random.uniform(1800, 3600)
        except ValueError:
            raise errors.bad_request(f"timeoutSeconds: invalid value {timeout_text!r}") from None
        bookmarks = _flag(query.get("allowWatchBookmarks"))
        if self.open_watches >= self.max_watches:
            raise errors.too_many_requests(f"too many open watches (limit {self.max_watches})")
        # Take the slot before the first await, so concurrent requests cannot all pass the check.
        self.open_watches += 1
        try:
            return await self._stream_watch(request, target, query, opts, timeout_s, bookmarks)
        finally:
            self.open_watches -= 1

    async def _stream_watch(
        self,
        request: web.Request,
        target: Target,
        query: dict[str, str],
        opts: ListOptions,
        timeout_s: float,
        bookmarks: bool,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": JSON, "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()

        async def send(kind: str, obj: dict[str, Any]) -> None:
            line = json.dumps({"type": kind, "object": obj}, separators=(",", ":"))
            await response.write(line.encode() + b"\n")

        try:
            events = await self.rest.watch(
                target.resource,
                target.namespace,
                opts,
                query.get("resourceVersion"),
                bookmarks,
                self.watch_bookmark_s,
            )
        except StatusError as err:
            if err.code != 410:
                raise
            # Kubernetes answers a too-old version with 200 and the Status as the one event.
            await response.prepare(request)
            await send("ERROR", err.status())
            await response.write_eof()
            return response
        as_table = _wants_table(request)
        include = query.get("includeObject", "Metadata")
        try:
            await response.prepare(request)
            try:
                async with asyncio.timeout(timeout_s):
                    first = True
                    async for kind, obj in events:
                        if as_table and kind != "BOOKMARK":
                            obj = tables.table(
                                target.resource.kind, [obj], _now(), include_object=include
                            )
                            if not first:
                                obj["columnDefinitions"] = []
                            first = False
                        await send(kind, obj)
            except TimeoutError:
                pass
            except StatusError as err:
                await send("ERROR", err.status())
            await response.write_eof()
        finally:
            await events.aclose()
        return response

    async def _read_body(self, request: web.Request) -> bytes:
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            raise errors.too_large(
                f"the request body of {length} bytes is larger than {self.max_body_bytes} bytes"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self.max_body_bytes:
                raise errors.too_large(
                    f"the request body is larger than {self.max_body_bytes} bytes"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def _decode_body(self, request: web.Request, *, patch_type: str | None = None) -> Any:
        raw = await self._read_body(request)
        content_type = _content_type(request)
        if content_type == PROTOBUF:
            from kubesvc.apiserver import protobuf

            return protobuf.decode(raw)
        if not raw.strip():
            raise errors.bad_request("the request body is empty")
        if patch_type == PATCH_APPLY or content_type in YAML_TYPES:
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                where = (
                    f" at line {mark.line + 1}, column {mark.column + 1}"
                    if mark is not None
                    else ""
                )
                problem = getattr(err, "problem", None) or err
                raise errors.bad_request(
                    f"the request body is not valid YAML{where}: {problem}"
                ) from None
        if patch_type is not None or content_type in (JSON, "*/*", ""):
            try:
                return json.loads(raw)
            except (ValueError, UnicodeDecodeError) as err:
                raise errors.bad_request(f"the request body is not valid JSON: {err}") from None
        raise errors.unsupported_media_type(content_type)

    async def _create(
        self, request: web.Request, target: Target, query: dict[str, str]
    ) -> web.Response:
        body = await self._decode_body(request)
        opts = self._write_options(query)
        obj = await self.rest.create(target.resource, target.namespace, body, opts)
        return _json_response(obj, 201, _warning_headers(opts))

    async def _patch(
        self, request: web.Request, target: Target, query: dict[str, str]
    ) -> web.Response:
        content_type = _content_type(request, "")
        if content_type not in PATCH_TYPES:
            raise errors.unsupported_media_type(content_type)
        body = await self._decode_body(request, patch_type=content_type)
        opts = self._write_options(query, force=_flag(query.get("force")))
        obj, created = await self.rest.patch(
            target.resource,
            target.namespace,
            target.name or "",
            content_type,
            body,
            opts,
            target.subresource,
        )
        return _json_response(obj, 201 if created else 200, _warning_headers(opts))

    async def _delete(
        self, request: web.Request, target: Target, query: dict[str, str]
    ) -> web.Response:
        raw = await self._read_body(request)
        options: dict[str, Any] = {}
        content_type = _content_type(request)
        if raw and content_type == PROTOBUF:
            from kubesvc.apiserver import protobuf

            options = protobuf.decode(raw, "DeleteOptions")
        elif raw.strip():
            try:
                options = json.loads(raw)
            except ValueError as err:
                raise errors.bad_request(
                    f"the DeleteOptions body is not valid JSON: {err}"
                ) from None
            if not isinstance(options, dict):
                raise errors.bad_request("the DeleteOptions body must be an object")
        pre = options.get("preconditions") if isinstance(options.get("preconditions"), dict) else {}
        dry_run = self._dry_run(query) or options.get("dryRun") == ["All"]
        grace = options.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
        try:
            grace_s = int(grace) if grace is not None else None
        except (TypeError, ValueError):
            raise errors.bad_request(f"gracePeriodSeconds: not an integer: {grace!r}") from None
        obj = await self.rest.delete(
            target.resource,
            target.namespace,
            target.name or "",
            Preconditions(pre.get("uid"), pre.get("resourceVersion")),
            dry_run,
            grace_s,
        )
        return _json_response(obj)

    async def _pod_subresource(
        self, request: web.Request, target: Target, query: dict[str, str]
    ) -> web.StreamResponse:
        """`pods/binding` (POST: assign a node) and `pods/log` (GET: from the pod's node)."""
        if target.subresource == "binding":
            if request.method != "POST":
                raise errors.method_not_allowed(request.method, request.path)
            self._authorise(request, "create", target)
            body = await self._decode_body(request)
            status = await self.rest.bind(target.namespace or "", target.name or "", body)
            return _json_response(status, 201)
        if request.method != "GET":
            raise errors.method_not_allowed(request.method, request.path)
        self._authorise(request, "get", target)
        pod = await self.rest.get(target.resource, target.namespace, target.name or "")
        return await _proxy_pod_log(request, pod, query)


async def _proxy_pod_log(
    request: web.Request, pod: dict[str, Any], query: dict[str, str]
) -> web.StreamResponse:
    """Stream a container's log from the node serving it (the kubelet's role in Kubernetes).

    The node is found in the pod's `node.kubesvc.io/logs` annotation, which its
    agent writes; only the caller's log options are passed on.
    """
    unsupported = [k for k in UNSUPPORTED_LOG_PARAMS if query.get(k) not in (None, "", "false")]
    if unsupported:
        # Processes write their log files themselves, with no time per line to filter or show:
        # say so rather than hand back the whole log as if the option had applied.
        raise errors.bad_request(
            f"{', '.join(unsupported)}: not supported by kubesvc's node agent, which does not "
            "record when each log line was written"
        )
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    name, annotations = meta.get("name", ""), meta.get("annotations") or {}
    containers = [c.get("name") for c in spec.get("containers") or [] if isinstance(c, dict)]
    container = query.get("container") or annotations.get("kubectl.kubernetes.io/default-container")
    if not container and len(containers) == 1:
        container = containers[0]
    inits = [c.get("name") for c in spec.get("initContainers") or [] if isinstance(c, dict)]
    if not container:
        also = f" or one of the init containers: [{' '.join(map(str, inits))}]" if inits else ""
        raise errors.bad_request(
            f"a container name must be specified for pod {name}, "
            f"choose one of: [{' '.join(map(str, containers))}]{also}"
        )
    if container not in containers and container not in inits:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    base = annotations.get(POD_LOG_ANNOTATION)
    if not spec.get("nodeName") or not isinstance(base, str) or not base.startswith("http://"):
        raise errors.bad_request(
            f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
        )
    url = (
        f"{base}/containerLogs/{quote(meta.get('namespace', ''))}/{quote(name)}/{quote(container)}"
    )
    params = {k: query[k] for k in POD_LOG_PARAMS if k in query}
    params["uid"] = str(meta.get("uid", ""))
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            upstream = await session.get(url, params=params)
        except (aiohttp.ClientError, OSError) as err:
            raise errors.internal_error(f"Get {url.split('/containerLogs')[0]}/…: {err}") from None
        async with upstream:
            if upstream.status != 200:
                text = (await upstream.text(errors="replace"))[:1000].strip()
                code = upstream.status if upstream.status in (400, 404) else 500
                reason = {400: "BadRequest", 404: "NotFound"}.get(code, "InternalError")
                raise errors.StatusError(code, text or f"node answered {upstream.status}", reason)
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except (aiohttp.ClientError, ConnectionResetError):
                pass  # the node or the client went away mid-stream: end what was sent
            await response.write_eof()
            return response


def _warning_headers(opts: WriteOptions) -> dict[str, str] | None:
    if not opts.warnings:
        return None
    # warn-code 299 ("miscellaneous persistent warning"), as Kubernetes sends them.
    texts = [json.dumps(w) for w in dict.fromkeys(opts.warnings)]
    return {"Warning": ", ".join(f"299 - {t}" for t in texts)}


def _now() -> datetime:
    return datetime.now(UTC)
