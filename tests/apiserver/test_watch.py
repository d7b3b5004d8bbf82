"""Watch over HTTPS, as client-go and kubectl use it.

Each test starts its own in-process API server (port 0, a fresh data dir, its
own SQLite store) so resourceVersions are predictable and a server's watch cap
or history window can be set per test. Clients are aiohttp sessions over TLS
with the cluster CA, one connection per watch.

"Nothing else arrived" is checked with a sentinel: after the expected events a
new object is created, and the very next event must be that object's ADDED.
That proves there was no extra (duplicate or unexpected) event in between,
without waiting for a timeout.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kubesvc.api.resources import BY_KIND
from kubesvc.apiserver.app import APIServerConfig, RunningAPIServer, start_apiserver
from kubesvc.storage.interface import Create, ListResult
from kubesvc.storage.sqlite import SqliteStore

SVC = "/api/v1/namespaces/default/services"
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io"
MERGE_PATCH = "application/merge-patch+json"
EVENT_WAIT_S = 5.0

Event = dict[str, Any]


def service(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A minimal ClusterIP Service body."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def summary(events: list[Event]) -> list[tuple[str, str]]:
    """(type, name) per event, for readable comparisons."""
    return [(e["type"], e["object"]["metadata"]["name"]) for e in events]


@dataclass
class Watch:
    """One open watch stream: one JSON event per line."""

    response: aiohttp.ClientResponse

    async def next(self, timeout_s: float = EVENT_WAIT_S) -> Event | None:
        """The next event, or None once the server has ended the stream."""
        try:
            line = await asyncio.wait_for(self.response.content.readline(), timeout_s)
        except TimeoutError:
            raise AssertionError(f"no watch event within {timeout_s} s") from None
        return json.loads(line) if line else None

    async def take(self, count: int, timeout_s: float = EVENT_WAIT_S) -> list[Event]:
        """The next `count` events; fails if the stream ends or stalls first."""
        events: list[Event] = []
        for _ in range(count):
            event = await self.next(timeout_s)
            assert event is not None, f"the stream ended after {summary(events)}"
            events.append(event)
        return events

    def close(self) -> None:
        """Drop the connection (not back to the pool), as a client that goes away does."""
        self.response.close()


@dataclass
class Server:
    """A running in-process API server and an authenticated HTTPS client for it."""

    running: RunningAPIServer
    store: SqliteStore
    session: aiohttp.ClientSession
    watches: list[Watch] = field(default_factory=list)

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """One request; returns (status, decoded JSON body)."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.session.request(
            method, self.running.url + path, data=data, headers=headers
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def create(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        status, body = await self.call("POST", SVC, service(name, labels))
        assert status == 201, body
        return body

    async def relabel(self, name: str, labels: dict[str, Any]) -> dict[str, Any]:
        status, body = await self.call(
            "PATCH", f"{SVC}/{name}", {"metadata": {"labels": labels}}, content_type=MERGE_PATCH
        )
        assert status == 200, body
        return body

    async def delete(self, name: str) -> dict[str, Any]:
        status, body = await self.call("DELETE", f"{SVC}/{name}")
        assert status == 200, body
        return body

    async def current_rv(self) -> str:
        status, body = await self.call("GET", SVC)
        assert status == 200, body
        return body["metadata"]["resourceVersion"]

    async def open(
        self, query: str = "", *, path: str = SVC, headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        """Send a watch request and return the response once its headers are in."""
        url = f"{self.running.url}{path}?watch=true" + (f"&{query}" if query else "")
        return await self.session.get(
            url, headers=headers, timeout=aiohttp.ClientTimeout(total=None)
        )

    async def watch(
        self, query: str = "", *, path: str = SVC, headers: dict[str, str] | None = None
    ) -> Watch:
        """Open a watch that must be accepted (200)."""
        response = await self.open(query, path=path, headers=headers)
        if response.status != 200:
            body = await response.text()
            response.close()
            raise AssertionError(f"watch refused: {response.status} {body}")
        watch = Watch(response)
        self.watches.append(watch)
        return watch

    async def close(self) -> None:
        for watch in self.watches:
            watch.close()
        await self.session.close()
        await self.running.close()


StartServer = Callable[..., Awaitable[Server]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[StartServer]:
    """A factory of servers: `await start(history=..., max_watches=...)`; all closed after."""
    servers: list[Server] = []

    async def _start(
        *, history: int = 10_000, watch_buffer: int = 1_000, max_watches: int = 1_000
    ) -> Server:
        data_dir = tmp_path / f"server-{len(servers)}"
        data_dir.mkdir()
        store = await SqliteStore.open(
            data_dir / "kubesvc.db", history=history, watch_buffer=watch_buffer
        )
        try:
            running = await start_apiserver(
                APIServerConfig(data_dir, port=0, max_watches=max_watches, watch_bookmark_s=1.0),
                store,
            )
        except BaseException:
            await store.close()
            raise
        ssl_context = ssl.create_default_context(cafile=str(running.ca_file))
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_context),
            headers={"Authorization": f"Bearer {running.admin_token}"},
        )
        server = Server(running, store, session)
        servers.append(server)
        return server

    yield _start
    for server in reversed(servers):
        await server.close()


@pytest.fixture
async def server(start: StartServer) -> Server:
    return await start()


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def expired_event(requested_rv: int | str, oldest_rv: int | str) -> Event:
    """The in-stream 410 exactly as the Kubernetes API server sends it."""
    return {
        "type": "ERROR",
        "object": {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"too old resource version: {requested_rv} ({oldest_rv})",
            "reason": "Expired",
            "code": 410,
        },
    }


# ------------------------------------------------------------------ history


async def test_watch_from_a_compacted_version_gets_an_in_stream_410(start: StartServer) -> None:
    server = await start(history=20)
    first = await server.create("old")
    for n in range(5):
        await server.relabel("old", {"n": str(n)})
    current = int(await server.current_rv())
    await server.store.compact(current)
    requested = first["metadata"]["resourceVersion"]
    response = await server.open(f"resourceVersion={requested}")
    watch = Watch(response)
    server.watches.append(watch)
    # Kubernetes accepts the watch and reports the expiry as its one event.
    assert response.status == 200, await response.text()
    assert await watch.next() == expired_event(requested, current)
    assert await watch.next() is None


async def test_watch_from_the_compaction_point_is_still_served(start: StartServer) -> None:
    server = await start(history=20)
    await server.create("a")
    current = await server.current_rv()
    await server.store.compact(int(current))
    watch = await server.watch(f"resourceVersion={current}")
    await server.create("b")
    assert summary(await watch.take(1)) == [("ADDED", "b")]


async def test_a_watch_that_falls_behind_compacted_history_gets_an_in_stream_410(
    start: StartServer,
) -> None:
    # A watcher whose buffer overflows must re-read what it missed from the kept
    # history; if that was compacted meanwhile, it must say so (410) and stop,
    # never skip events silently.
    server = await start(watch_buffer=4)
    since = await server.current_rv()
    watch = await server.watch(f"resourceVersion={since}")
    status, _ = await server.call("POST", "/api/v1/namespaces", {"metadata": {"name": "other"}})
    assert status == 201
    compacted = int(await server.current_rv())
    await server.store.compact(compacted)
    services = BY_KIND["Service"]
    burst = [
        Create(
            services.key("default", f"burst-{i}"),
            {**service(f"burst-{i}"), "metadata": {"name": f"burst-{i}", "namespace": "default"}},
        )
        for i in range(8)  # one publish of 8 events > the watcher's buffer of 4
    ]
    await server.store.txn(burst)
    assert await watch.next() == expired_event(since, compacted)
    assert await watch.next() is None


# ----------------------------------------------------------- replay, resume


async def test_watch_from_zero_or_no_version_replays_state_then_follows(server: Server) -> None:
    await server.create("b")
    await server.create("a")
    from_zero = await server.watch("resourceVersion=0")
    from_absent = await server.watch()
    for watch in (from_zero, from_absent):
        # Synthetic ADDED events, in key order, for what exists now.
        assert summary(await watch.take(2)) == [("ADDED", "a"), ("ADDED", "b")]
    await server.create("c")
    modified = await server.relabel("a", {"app": "a", "v": "2"})
    await server.delete("b")
    for watch in (from_zero, from_absent):
        events = await watch.take(3)
        assert summary(events) == [("ADDED", "c"), ("MODIFIED", "a"), ("DELETED", "b")]
        assert events[1]["object"] == modified


async def test_watch_resumes_after_any_version_without_gap_or_duplicate(server: Server) -> None:
    start_rv = await server.current_rv()
    changes: list[tuple[str, str, str]] = []  # (type, name, resourceVersion)
    for name in ("a", "b", "c"):
        changes.append(("ADDED", name, (await server.create(name))["metadata"]["resourceVersion"]))
    changes.append(
        ("MODIFIED", "a", (await server.relabel("a", {"v": "2"}))["metadata"]["resourceVersion"])
    )
    changes.append(("DELETED", "b", (await server.delete("b"))["metadata"]["resourceVersion"]))
    changes.append(
        ("MODIFIED", "c", (await server.relabel("c", {"v": "2"}))["metadata"]["resourceVersion"])
    )
    versions = [int(rv) for _, _, rv in changes]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)

    # One watch from every point of the history: each must see exactly the rest.
    starts = [start_rv] + [rv for _, _, rv in changes]
    watches = [await server.watch(f"resourceVersion={rv}") for rv in starts]
    for skipped, watch in enumerate(watches):
        events = await watch.take(len(changes) - skipped)
        seen = [
            (e["type"], e["object"]["metadata"]["name"], e["object"]["metadata"]["resourceVersion"])
            for e in events
        ]
        assert seen == changes[skipped:], f"from resourceVersion {starts[skipped]}"
    await server.create("sentinel")
    for watch in watches:
        assert summary(await watch.take(1)) == [("ADDED", "sentinel")]


# ------------------------------------------------------------------ selectors


async def test_label_selector_watch_turns_leaving_into_deleted_and_joining_into_added(
    server: Server,
) -> None:
    watch = await server.watch("labelSelector=tier%3Dweb")
    await server.create("x", {"tier": "web"})
    await server.create("y", {"tier": "db"})  # never seen
    left = await server.relabel("x", {"tier": "db"})
    await server.relabel("y", {"tier": "web"})
    await server.relabel("y", {"tier": "web", "v": "2"})
    await server.delete("x")  # no longer matches: not seen
    await server.delete("y")
    await server.create("sentinel", {"tier": "web"})
    events = await watch.take(6)
    assert summary(events) == [
        ("ADDED", "x"),
        ("DELETED", "x"),
        ("ADDED", "y"),
        ("MODIFIED", "y"),
        ("DELETED", "y"),
        ("ADDED", "sentinel"),
    ]
    # The DELETED for "stopped matching" carries the change's resourceVersion.
    assert events[1]["object"]["metadata"]["resourceVersion"] == left["metadata"]["resourceVersion"]


async def test_stopped_matching_deleted_carries_the_last_matching_state(server: Server) -> None:
    watch = await server.watch("labelSelector=tier%3Dweb")
    await server.create("x", {"tier": "web"})
    left = await server.relabel("x", {"tier": "db"})
    _, deleted = await watch.take(2)
    assert deleted["type"] == "DELETED"
    assert deleted["object"]["metadata"]["labels"] == {"tier": "web"}
    assert deleted["object"]["metadata"]["resourceVersion"] == left["metadata"]["resourceVersion"]


async def test_field_selector_watch_follows_one_object(server: Server) -> None:
    # What `kubectl get service x --watch` sends.
    watch = await server.watch("fieldSelector=metadata.name%3Dx")
    await server.create("y")
    await server.create("x")
    await server.relabel("y", {"v": "2"})
    await server.relabel("x", {"v": "2"})
    await server.delete("x")
    assert summary(await watch.take(3)) == [("ADDED", "x"), ("MODIFIED", "x"), ("DELETED", "x")]


# ------------------------------------------------------- bookmarks, timeouts


async def test_bookmarks_only_when_allowed_and_resumable(server: Server) -> None:
    # The store sends a BOOKMARK after watch_bookmark_s idle (1 s in these servers)
    # if the version moved.
    since = await server.current_rv()
    with_bookmarks = await server.watch(f"resourceVersion={since}&allowWatchBookmarks=true")
    without = await server.watch(f"resourceVersion={since}")
    # A change outside the watched prefix moves the version without an event.
    status, ns = await server.call("POST", "/api/v1/namespaces", {"metadata": {"name": "other"}})
    assert status == 201
    moved_to = ns["metadata"]["resourceVersion"]
    started = time.monotonic()
    bookmark = await with_bookmarks.next(timeout_s=4.0)
    assert time.monotonic() - started < 7.5
    assert bookmark is not None and bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["kind"] == "Service"
    assert bookmark["object"]["apiVersion"] == "v1"
    assert bookmark["object"]["metadata"]["resourceVersion"] == moved_to
    # Resuming from the bookmark's version misses nothing and repeats nothing.
    resumed = await server.watch(f"resourceVersion={moved_to}")
    await server.create("sentinel")
    for watch in (with_bookmarks, without, resumed):
        assert summary(await watch.take(1)) == [("ADDED", "sentinel")]


async def test_timeout_seconds_ends_the_stream_cleanly(server: Server) -> None:
    await server.create("a")
    started = time.monotonic()
    watch = await server.watch("timeoutSeconds=1")
    assert summary(await watch.take(1)) == [("ADDED", "a")]
    await server.create("b")
    assert summary(await watch.take(1)) == [("ADDED", "b")]
    # A clean end: the chunked body terminates (no payload error), no ERROR event.
    assert await watch.next(timeout_s=4) is None
    assert 0.9 <= time.monotonic() - started < 3
    assert watch.response.status == 200
    await wait_until(lambda: server.running.api.open_watches == 0)


# --------------------------------------------------------------------- tables


async def test_table_watch_sends_one_row_tables(server: Server) -> None:
    await server.create("a")
    watch = await server.watch(headers={"Accept": TABLE_ACCEPT})
    await server.create("b")
    await server.relabel("a", {"app": "a", "v": "2"})
    await server.delete("b")
    events = await watch.take(4)
    expected = [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    for event, (kind, name) in zip(events, expected, strict=True):
        table = event["object"]
        assert event["type"] == kind
        assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
        assert len(table["rows"]) == 1
        row = table["rows"][0]
        assert row["cells"][0] == name
        assert row["object"]["kind"] == "PartialObjectMetadata"
        assert row["object"]["metadata"]["name"] == name
    # Column headers come with the first event (kubectl prints them once).
    columns = events[0]["object"]["columnDefinitions"]
    assert columns and columns[0]["name"] == "Name"


# ------------------------------------------------------------------ the cap


async def test_watch_cap_refuses_with_429_and_admits_again_after_a_close(
    start: StartServer,
) -> None:
    server = await start(max_watches=2)
    first = await server.watch()
    await server.watch()
    refused = await server.open()
    body = await refused.json(content_type=None)
    refused.close()
    assert refused.status == 429
    assert refused.headers.get("Retry-After") == "1"
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert (body["code"], body["reason"]) == (429, "TooManyRequests")
    # Lists and gets are not watches: they still work.
    assert (await server.call("GET", SVC))[0] == 200

    first.close()
    deadline = time.monotonic() + 5
    while True:
        response = await server.open()
        if response.status == 200:
            server.watches.append(Watch(response))
            break
        response.close()
        assert response.status == 429
        assert time.monotonic() < deadline, "the closed watch's slot was never freed"
        await asyncio.sleep(0.02)
    again = await server.open()
    again.close()
    assert again.status == 429


async def test_watch_cap_holds_for_concurrent_requests(start: StartServer) -> None:
    server = await start(max_watches=2)
    store = server.store
    gate = asyncio.Event()
    waiting = 0
    real_list = store.list

    async def slow_list(prefix: str) -> ListResult:
        nonlocal waiting
        waiting += 1
        await gate.wait()
        return await real_list(prefix)

    store.list = slow_list  # type: ignore[method-assign]
    requests = [asyncio.create_task(server.open("resourceVersion=0")) for _ in range(3)]
    # Every request is either refused already or waiting in the store's list.
    await wait_until(lambda: waiting + sum(t.done() for t in requests) == 3)
    gate.set()
    responses = await asyncio.gather(*requests)
    for response in responses:
        server.watches.append(Watch(response))
    assert sorted(r.status for r in responses) == [200, 200, 429]


async def test_a_client_that_disconnects_frees_its_watch_slot(start: StartServer) -> None:
    server = await start(max_watches=1)
    watch = await server.watch()
    assert server.running.api.open_watches == 1
    watch.close()  # idle watch: the handler is parked waiting for the store
    await wait_until(lambda: server.running.api.open_watches == 0)
    replacement = await server.watch()
    await server.create("a")
    assert summary(await replacement.take(1)) == [("ADDED", "a")]
