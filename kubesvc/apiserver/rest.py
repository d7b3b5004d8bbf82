"""The REST verbs over the store: get, list, create, update, patch, delete, watch.

No HTTP here: handlers decode the request, call these, and encode the result.
Every failure is a `StatusError`; storage errors are translated once, here,
where the resource and name are known.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubesvc.allocator.records import endpoint_addresses
from kubesvc.allocator.service import ServiceAllocator
from kubesvc.api import errors, selectors, validation
from kubesvc.api.errors import StatusError
from kubesvc.api.field import not_supported, required
from kubesvc.api.meta import rfc3339
from kubesvc.apiserver import openapi
from kubesvc.apiserver.resources import BY_KIND, RESOURCES, Resource
from kubesvc.apiserver.strategy import Strategy, strategy_for
from kubesvc.storage import errors as store_errors
from kubesvc.storage.interface import EventType, Store, resource_version_of, same_content

Obj = dict[str, Any]

NAMESPACES = BY_KIND["Namespace"]
SERVICES = BY_KIND["Service"]
PODS = BY_KIND["Pod"]
# An unconditional delete of an object that keeps changing under it gives up after this many reads.
DELETE_ATTEMPTS = 20
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

PATCH_MERGE = "application/merge-patch+json"
PATCH_JSON = "application/json-patch+json"
PATCH_STRATEGIC = "application/strategic-merge-patch+json"
PATCH_APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (PATCH_MERGE, PATCH_JSON, PATCH_STRATEGIC, PATCH_APPLY)


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_manager: str = ""
    force: bool = False
    field_validation: str | None = None  # Strict, Warn (default) or Ignore
    warnings: list[str] = field(default_factory=list)  # filled in: for the Warning header

    def check_fields(self, obj: Obj, kind: str) -> None:
        """Apply `fieldValidation` to a body: unknown fields are errors, warnings or dropped."""
        self.warnings.extend(openapi.validate_fields(obj, kind, self.field_validation))


@dataclass(frozen=True)
class ListOptions:
    label_selector: selectors.LabelSelector | None = None
    field_selector: selectors.FieldSelector | None = None
    limit: int = 0
    continue_token: str = ""


@dataclass
class Preconditions:
    uid: str | None = None
    resource_version: str | None = None


@dataclass
class Rest:
    """The verbs over `store`.

    `context` gives validation its cluster facts (the pod range); with an
    `allocator`, Services get ClusterIPs and node ports in the same transaction
    as their writes, and Endpoints may not point at a Service's ClusterIP.
    Without one (tests of the bare verbs), Services are stored as given.
    """

    store: Store
    context: Callable[[], validation.Context] = field(default=lambda: validation.DEFAULT_CONTEXT)
    allocator: ServiceAllocator | None = None

    # ------------------------------------------------------------------ helpers

    @asynccontextmanager
    async def _translated(self, resource: Resource, name: str) -> AsyncIterator[None]:
        try:
            yield
        except store_errors.StorageError as err:
            raise store_errors.to_status_error(
                err, resource.plural, name, resource.group or None
            ) from err

    async def ensure_namespace(self, resource: Resource, namespace: str | None) -> None:
        if not resource.namespaced:
            return
        if not namespace:
            raise errors.bad_request("a namespace is required for this resource")
        try:
            ns = await self.store.get(NAMESPACES.key(None, namespace))
        except store_errors.KeyNotFound:
            raise errors.not_found("namespaces", namespace) from None
        if ns.get("status", {}).get("phase") == "Terminating":
            raise errors.forbidden(
                resource.plural,
                "",
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )

    @staticmethod
    def _check_body(resource: Resource, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request(f"the body of the request must be a {resource.kind} object")
        kind = body.get("kind")
        if kind not in (None, "", resource.kind):
            raise errors.bad_request(
                f"the kind of the object ({kind}) does not match the kind of the request ({resource.kind})"
            )
        api_version = body.get("apiVersion")
        if api_version not in (None, "", resource.api_version):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({resource.api_version})"
            )
        return body

    def _invalid(self, resource: Resource, obj: Obj, errs: list[Any]) -> StatusError:
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        name = meta.get("name") if isinstance(meta.get("name"), str) else ""
        return errors.invalid(resource.kind, name, errs, resource.group or None)

    def _allocates(self, resource: Resource) -> ServiceAllocator | None:
        return self.allocator if resource is SERVICES else None

    async def _context_for(self, obj: Obj) -> validation.Context:
        """Validation's context for `obj`: for endpoints, who holds each address as a ClusterIP.

        Validation is synchronous; the owners are read from the allocation
        records first, so the check costs one point read per distinct address.
        """
        ctx = self.context()
        if self.allocator is None or obj.get("kind") not in ("Endpoints", "EndpointSlice"):
            return ctx
        owners = await self.allocator.ip_owners(endpoint_addresses(obj))
        if not owners:
            return ctx
        return dataclasses.replace(ctx, cluster_ip_owner=owners.get)

    # -------------------------------------------------------------------- reads

    async def get(self, resource: Resource, namespace: str | None, name: str) -> Obj:
        async with self._translated(resource, name):
            return await self.store.get(resource.key(namespace, name))

    async def list(self, resource: Resource, namespace: str | None, opts: ListOptions) -> Obj:
        async with self._translated(resource, ""):
            result = await self.store.list(resource.key_prefix(namespace))
        items = [obj for obj in result.items if self.matches(resource, obj, opts)]
        meta: Obj = {"resourceVersion": str(result.resource_version)}
        if opts.continue_token:
            start = _decode_continue(opts.continue_token)
            items = [o for o in items if _sort_key(o) > start]
        if opts.limit and len(items) > opts.limit:
            items = items[: opts.limit]
            meta["continue"] = _encode_continue(_sort_key(items[-1]))
        return {
            "kind": resource.list_kind,
            "apiVersion": resource.api_version,
            "metadata": meta,
            "items": items,
        }

    @staticmethod
    def matches(resource: Resource, obj: Obj, opts: ListOptions) -> bool:
        if opts.label_selector is not None:
            labels = obj.get("metadata", {}).get("labels") or {}
            if not opts.label_selector.matches(labels):
                return False
        return opts.field_selector is None or opts.field_selector.matches(
            selectors.object_fields(resource.kind, obj)
        )

    async def watch(
        self,
        resource: Resource,
        namespace: str | None,
        opts: ListOptions,
        resource_version: str | None,
        bookmarks: bool,
        bookmark_interval_s: float = 5.0,
    ) -> AsyncIterator[tuple[str, Obj]]:
        """Watch events as (type, object); the first events replay state when rv is absent or 0."""
        prefix = resource.key_prefix(namespace)
        initial: list[Obj] = []
        if not resource_version or resource_version == "0":
            async with self._translated(resource, ""):
                listed = await self.store.list(prefix)
            initial = [o for o in listed.items if self.matches(resource, o, opts)]
            start = listed.resource_version
        else:
            try:
                start = int(resource_version)
            except ValueError:
                raise errors.bad_request(
                    f"invalid resource version: {resource_version!r}"
                ) from None
        async with self._translated(resource, ""):
            stream = await self.store.watch(
                prefix, start, bookmark_interval=bookmark_interval_s if bookmarks else None
            )
        return self._events(resource, opts, initial, stream, bookmarks)

    async def _events(
        self,
        resource: Resource,
        opts: ListOptions,
        initial: list[Obj],
        stream: Any,
        bookmarks: bool,
    ) -> AsyncIterator[tuple[str, Obj]]:
        try:
            for obj in initial:
                yield "ADDED", obj
            async for event in stream:
                if event.type == EventType.BOOKMARK:
                    if bookmarks:
                        yield (
                            "BOOKMARK",
                            {
                                "kind": resource.kind,
                                "apiVersion": resource.api_version,
                                "metadata": event.object["metadata"],
                            },
                        )
                    continue
                now = self.matches(resource, event.object, opts)
                before = event.prev_object is not None and self.matches(
                    resource, event.prev_object, opts
                )
                if event.type == EventType.ADDED:
                    if now:
                        yield "ADDED", event.object
                elif event.type == EventType.DELETED:
                    if before or now:
                        yield "DELETED", event.object
                elif now and before:
                    yield "MODIFIED", event.object
                elif now:
                    yield "ADDED", event.object
                elif before:
                    # It stopped matching the selector: to this watcher it is gone, and
                    # (as Kubernetes does) it gets the last state it was shown, at this version.
                    assert event.prev_object is not None
                    last = copy.deepcopy(event.prev_object)
                    last["metadata"]["resourceVersion"] = str(event.resource_version)
                    yield "DELETED", last
        except store_errors.Expired as err:
            raise errors.expired(err.requested_rv, err.oldest_rv) from err
        finally:
            await stream.close()

    # ------------------------------------------------------------------- writes

    async def create(
        self, resource: Resource, namespace: str | None, body: Any, opts: WriteOptions
    ) -> Obj:
        obj = copy.deepcopy(self._check_body(resource, body))
        meta = obj.get("metadata")
        if isinstance(meta, dict) and resource.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
        strategy = strategy_for(resource)
        opts.check_fields(obj, resource.kind)
        await self.ensure_namespace(resource, namespace)
        strategy.prepare_for_create(obj, namespace)
        strategy.default(obj)
        errs = strategy.validate(obj, await self._context_for(obj))
        if errs:
            raise self._invalid(resource, obj, errs)
        self._track(None, obj, opts, "Update")
        name = obj["metadata"]["name"]
        key = resource.key(namespace, name)
        allocator = self._allocates(resource)
        if opts.dry_run:
            try:
                await self.store.get(key)
            except store_errors.KeyNotFound:
                # A dry run shows the values a create would pick, and holds none.
                return await allocator.create(key, obj, dry_run=True) if allocator else obj
            raise errors.already_exists(resource.plural, name, resource.group or None)
        async with self._translated(resource, name):
            if allocator is not None:
                return await allocator.create(key, obj)
            return await self.store.create(key, obj)

    async def update(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        body: Any,
        opts: WriteOptions,
        subresource: str | None = None,
    ) -> tuple[Obj, bool]:
        """Replace the object; returns (object, created)."""
        body = self._check_body(resource, body)
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        strategy = strategy_for(resource)
        body = copy.deepcopy(body)
        opts.check_fields(body, resource.kind)
        key = resource.key(namespace, name)
        try:
            await self.store.get(key)
        except store_errors.KeyNotFound:
            if strategy.allow_create_on_update and subresource is None:
                created = copy.deepcopy(body)
                created.setdefault("metadata", {})["name"] = name
                return await self.create(resource, namespace, created, opts), True
            raise errors.not_found(resource.plural, name, resource.group or None) from None
        wanted_rv = meta.get("resourceVersion") or None

        async def change(current: Obj) -> Obj:
            return await self._updated(
                strategy, current, copy.deepcopy(body), wanted_rv, opts, subresource
            )

        return await self._write(resource, key, name, change, opts), False

    async def _updated(
        self,
        strategy: Strategy,
        current: Obj,
        new: Obj,
        wanted_rv: str | None,
        opts: WriteOptions,
        subresource: str | None,
    ) -> Obj:
        resource = strategy.resource
        name = current["metadata"]["name"]
        if wanted_rv is not None and str(wanted_rv) != current["metadata"]["resourceVersion"]:
            raise errors.stale_update(resource.plural, name, resource.group or None)
        new.setdefault("metadata", {})
        if isinstance(new["metadata"], dict):
            new["metadata"].setdefault("name", name)
        new = strategy.prepare_for_update(new, current, subresource)
        strategy.default(new)
        errs = strategy.validate_update(new, current, await self._context_for(new))
        if errs:
            raise self._invalid(resource, new, errs)
        self._track(current, new, opts, "Update")
        if isinstance(new.get("metadata"), dict):
            new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return new

    async def _write(
        self,
        resource: Resource,
        key: str,
        name: str,
        change: Callable[[Obj], Awaitable[Obj]],
        opts: WriteOptions,
    ) -> Obj:
        """Read, change, write with the read's version; retry on a lost race; no write if unchanged."""
        allocator = self._allocates(resource)

        async def guarded(current: Obj) -> Obj:
            new = await change(current)
            # A write that changes nothing but managedFields timestamps is no write at all.
            if _same_ignoring_managed_times(new, current):
                return current
            return new

        async with self._translated(resource, name):
            if allocator is not None:
                # The Service write and its allocation changes are one transaction.
                return await allocator.update(key, guarded, dry_run=opts.dry_run)
            if opts.dry_run:
                return await change(await self.store.get(key))
            return await self.store.guaranteed_update(key, guarded)

    async def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch_type: str,
        patch_body: Any,
        opts: WriteOptions,
        subresource: str | None = None,
    ) -> tuple[Obj, bool]:
        """Apply a patch of one of the four types; returns (object, created)."""
        from kubesvc.api import apply, patch

        strategy = strategy_for(resource)
        key = resource.key(namespace, name)
        if patch_type == PATCH_APPLY:
            if not opts.field_manager:
                raise errors.bad_request(
                    "PATCH requests with apply content type must specify the fieldManager parameter"
                )
            self._check_body(resource, patch_body)
            try:
                await self.store.get(key)
            except store_errors.KeyNotFound:
                if subresource is not None:
                    raise errors.not_found(resource.plural, name, resource.group or None) from None
                obj = apply.server_side_apply(
                    None, copy.deepcopy(patch_body), opts.field_manager, opts.force, rfc3339()
                )
                obj.setdefault("metadata", {})["name"] = name
                return await self._create_applied(resource, namespace, obj, opts), True

        async def change(current: Obj) -> Obj:
            wanted_rv = None
            if patch_type == PATCH_JSON:
                new = patch.json_patch(current, patch_body)
            elif patch_type == PATCH_MERGE:
                new = patch.merge_patch(current, patch_body)
            elif patch_type == PATCH_STRATEGIC:
                new = patch.strategic_merge_patch(current, patch_body, resource.kind)
            else:
                new = apply.server_side_apply(
                    current,
                    copy.deepcopy(patch_body),
                    opts.field_manager,
                    opts.force,
                    rfc3339(),
                )
            if not isinstance(new, dict):
                raise errors.bad_request("the patch did not produce an object")
            opts.check_fields(new, resource.kind)
            if isinstance(patch_body, dict) and isinstance(patch_body.get("metadata"), dict):
                wanted_rv = patch_body["metadata"].get("resourceVersion")
            new_meta = new.get("metadata")
            if isinstance(new_meta, dict):
                # The patch result keeps the stored version unless the patch named one (a precondition).
                new_meta["resourceVersion"] = current["metadata"]["resourceVersion"]
            applied_opts = (
                opts if patch_type != PATCH_APPLY else WriteOptions(opts.dry_run, "", opts.force)
            )
            return await self._updated(strategy, current, new, wanted_rv, applied_opts, subresource)

        return await self._write(resource, key, name, change, opts), False

    async def _create_applied(
        self, resource: Resource, namespace: str | None, obj: Obj, opts: WriteOptions
    ) -> Obj:
        managed = obj.get("metadata", {}).get("managedFields")
        created = await self.create(
            resource, namespace, obj, WriteOptions(opts.dry_run, "", opts.force)
        )
        if managed is not None and not opts.dry_run:
            # create() tracked nothing (no manager); keep the apply's ownership record.
            async def keep(current: Obj) -> Obj:
                current["metadata"]["managedFields"] = managed
                return current

            async with self._translated(resource, created["metadata"]["name"]):
                return await self.store.guaranteed_update(
                    resource.key(namespace, created["metadata"]["name"]), keep
                )
        return created

    @staticmethod
    def _track(old: Obj | None, new: Obj, opts: WriteOptions, operation: str) -> None:
        if not opts.field_manager:
            return
        from kubesvc.api import apply

        tracked = apply.track_update(old, new, opts.field_manager, operation, rfc3339())
        new["metadata"] = tracked["metadata"]

    async def delete(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        preconditions: Preconditions,
        dry_run: bool = False,
        grace_period_s: int | None = None,
    ) -> Obj:
        """Delete the object (a pod on a node: mark it, see `_delete_gracefully`).

        Without a resourceVersion precondition the delete is of whatever the
        object is now: if it changes between our read and the write (a node
        agent's status update, say), it is read again and the decision made
        again, as the Kubernetes API server does; only the caller's own
        preconditions give 409.
        """
        key = resource.key(namespace, name)
        expected = None
        if preconditions.resource_version:
            try:
                expected = int(preconditions.resource_version)
            except ValueError:
                raise errors.bad_request(
                    f"invalid resourceVersion precondition: {preconditions.resource_version!r}"
                ) from None
        for _ in range(DELETE_ATTEMPTS):
            async with self._translated(resource, name):
                current = await self.store.get(key)
            if preconditions.uid and preconditions.uid != current["metadata"].get("uid"):
                raise errors.conflict(
                    resource.plural,
                    name,
                    f"Precondition failed: UID in precondition: {preconditions.uid}, "
                    f"UID in object meta: {current['metadata'].get('uid')}",
                    resource.group or None,
                )
            if dry_run:
                return current
            try:
                return await self._delete_current(
                    resource, key, name, current, expected, grace_period_s
                )
            except store_errors.Conflict as err:
                if expected is not None or err.key != key:
                    raise store_errors.to_status_error(
                        err, resource.plural, name, resource.group or None
                    ) from err
        raise errors.conflict(
            resource.plural, name, "the object keeps changing; try again", resource.group or None
        )

    async def _delete_current(
        self,
        resource: Resource,
        key: str,
        name: str,
        current: Obj,
        expected: int | None,
        grace_period_s: int | None,
    ) -> Obj:
        """One attempt at `delete`; store.Conflict when `current` is no longer current."""
        if resource is PODS and expected in (None, resource_version_of(current)):
            marked = await self._delete_gracefully(key, name, current, grace_period_s)
            if marked is not None:
                return marked
        if resource is NAMESPACES:
            await self._empty_namespace(name)
        rv = expected if expected is not None else resource_version_of(current)
        allocator = self._allocates(resource)
        try:
            if allocator is not None:
                # The Service and its allocation records go in one transaction.
                return await allocator.delete(key, current, rv)
            return await self.store.delete(key, expected_rv=rv)
        except store_errors.Conflict:
            raise
        except store_errors.StorageError as err:
            raise store_errors.to_status_error(
                err, resource.plural, name, resource.group or None
            ) from err

    async def _delete_gracefully(
        self, key: str, name: str, current: Obj, grace_period_s: int | None
    ) -> Obj | None:
        """Graceful deletion of a pod bound to a node; None when it goes at once.

        As in Kubernetes, the pod is only marked (`deletionTimestamp`,
        `deletionGracePeriodSeconds`): its node agent stops its processes
        within the grace period and then deletes it with `gracePeriodSeconds: 0`.
        Unbound and finished pods, and a grace period of 0, delete at once. A
        second delete may shorten the grace period, never lengthen it.
        """
        spec = current.get("spec") if isinstance(current.get("spec"), dict) else {}
        phase = (current.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return None
        grace = grace_period_s
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds")
            grace = grace if isinstance(grace, int) and grace >= 0 else 30
        if grace <= 0:
            return None
        meta = current["metadata"]
        marked_grace = meta.get("deletionGracePeriodSeconds")
        if (
            meta.get("deletionTimestamp")
            and isinstance(marked_grace, int)
            and marked_grace <= grace
        ):
            return current

        def mark(obj: Obj) -> Obj:
            when = datetime.now(UTC) + timedelta(seconds=grace)
            obj["metadata"]["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
            obj["metadata"]["deletionGracePeriodSeconds"] = grace
            return obj

        async with self._translated(PODS, name):
            return await self.store.guaranteed_update(key, mark)

    async def bind(self, namespace: str, name: str, binding: Any) -> Obj:
        """`pods/binding`: set an unscheduled pod's node (what a scheduler, or a node agent, does)."""
        if not isinstance(binding, dict) or not isinstance(binding.get("target"), dict):
            raise errors.bad_request("the body of the request must be a Binding with a target")
        target = binding["target"]
        node = target.get("name")
        if not isinstance(node, str) or not node:
            raise errors.invalid("Binding", name, [required("target.name")])
        if target.get("kind") not in (None, "", "Node"):
            raise errors.invalid(
                "Binding",
                name,
                [not_supported("target.kind", target.get("kind"), ["Node"])],
            )
        uid = (
            (binding.get("metadata") or {}).get("uid")
            if isinstance(binding.get("metadata"), dict)
            else None
        )

        async def assign(current: Obj) -> Obj:
            meta = current["metadata"]
            if uid and uid != meta.get("uid"):
                raise errors.conflict(
                    "pods",
                    name,
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta.get('uid')}",
                )
            if meta.get("deletionTimestamp"):
                raise errors.conflict(
                    "pods", name, f"pod {name} is being deleted, cannot be assigned to a host"
                )
            bound = (current.get("spec") or {}).get("nodeName")
            if bound:
                raise errors.conflict(
                    "pods", name, f'pod {name} is already assigned to node "{bound}"'
                )
            current.setdefault("spec", {})["nodeName"] = node
            return current

        async with self._translated(PODS, name):
            await self.store.guaranteed_update(PODS.key(namespace, name), assign)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }

    async def _empty_namespace(self, namespace: str) -> None:
        """Delete everything in a namespace, as the namespace controller does before the namespace goes."""
        for resource in RESOURCES:
            if not resource.namespaced:
                continue
            listed = await self.store.list(resource.key_prefix(namespace))
            allocator = self._allocates(resource)
            for obj in listed.items:
                key = resource.key(namespace, obj["metadata"]["name"])
                with suppress(store_errors.KeyNotFound):
                    if allocator is not None:
                        await allocator.delete(key, obj, None)  # releases its values too
                    else:
                        await self.store.delete(key)

    async def delete_collection(
        self, resource: Resource, namespace: str | None, opts: ListOptions, dry_run: bool
    ) -> Obj:
        listed = await self.list(
            resource, namespace, ListOptions(opts.label_selector, opts.field_selector)
        )
        deleted = []
        for obj in listed["items"]:
            try:
                deleted.append(
                    await self.delete(
                        resource, namespace, obj["metadata"]["name"], Preconditions(), dry_run
                    )
                )
            except StatusError as err:
                if err.code != 404:
                    raise
        listed["items"] = deleted
        return listed

    async def ensure_initial_namespaces(self) -> None:
        for name in INITIAL_NAMESPACES:
            try:
                await self.create(NAMESPACES, None, {"metadata": {"name": name}}, WriteOptions())
            except StatusError as err:
                if err.code != 409:
                    raise


def _managed_without_times(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    entries = meta.get("managedFields")
    if isinstance(entries, list):
        entries = [
            {k: v for k, v in e.items() if k != "time"} if isinstance(e, dict) else e
            for e in entries
        ]
    return {**obj, "metadata": {**meta, "managedFields": entries}}


def _same_ignoring_managed_times(a: Obj, b: Obj) -> bool:
    return same_content(_managed_without_times(a), _managed_without_times(b))


def _sort_key(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _encode_continue(last: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"start": last}).encode()).decode()


def _decode_continue(token: str) -> str:
    try:
        start = json.loads(base64.urlsafe_b64decode(token.encode()))["start"]
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion"
        ) from None
    if not isinstance(start, str):
        raise errors.bad_request("continue key is not valid")
    return start
