"""Fixtures of the etcd multi-server tests: the session's shared etcd clusters end with it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.etcd_cluster import stop_shared_clusters


@pytest.fixture(scope="session", autouse=True)
def _etcd_clusters() -> Iterator[None]:
    """End the session's shared etcd clusters (started on first use) after the last test."""
    yield
    stop_shared_clusters()
