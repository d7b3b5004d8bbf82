"""etcd over TLS with client certificates: the store, and `kubesvc apiserver --etcd-*` flags."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from kubesvc.storage.errors import StorageError
from kubesvc.storage.etcd import EtcdStore, TLSFiles
from tests.apiserver.conftest import Cluster, start_cluster, stop_cluster
from tests.etcd_cluster import EtcdCluster, TLSMaterial
from tests.storage.test_conformance import take


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(1, tls=True).start()
    yield cluster
    cluster.stop()


def material(etcd: EtcdCluster) -> TLSMaterial:
    assert etcd.tls_material is not None
    return etcd.tls_material


async def test_the_store_speaks_tls_with_a_client_certificate(etcd: EtcdCluster) -> None:
    tls = material(etcd)
    files = TLSFiles(tls.ca, tls.client_cert, tls.client_key)
    store = await EtcdStore.open(etcd.url("/tls"), tls=files)
    try:
        watch = await store.watch("/things/")
        created = await store.create("/things/a", {"v": 1})
        assert await store.get("/things/a") == created
        (event,) = await take(watch, 1)
        assert event.object == created
        await watch.close()
    finally:
        await store.close()

    # Without a client certificate the member refuses us.
    with pytest.raises(StorageError):
        await EtcdStore.open(etcd.url("/tls"), tls=TLSFiles(tls.ca), timeout=0.5)


def readyz_becomes(server: Cluster, status: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while server.request("GET", "/readyz", token=None)[0] != status:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_apiserver_flags_for_etcd_over_tls(
    etcd: EtcdCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tls = material(etcd)
    server = start_cluster(
        tmp_path_factory.mktemp("apiserver-tls"),
        "apiserver",
        "--storage",
        etcd.url("/tls-apiserver"),
        "--etcd-cafile",
        str(tls.ca),
        "--etcd-certfile",
        str(tls.client_cert),
        "--etcd-keyfile",
        str(tls.client_key),
    )
    try:
        body = {"metadata": {"name": "over-tls"}, "spec": {"ports": [{"port": 80}]}}
        status, created, _ = server.request("POST", "/api/v1/namespaces/default/services", body)
        assert status == 201, created
        status, got, _ = server.request("GET", "/api/v1/namespaces/default/services/over-tls")
        assert (status, got["spec"]["clusterIP"]) == (200, created["spec"]["clusterIP"])

        # /readyz follows etcd: not ready while no member is there, ready again after.
        etcd.kill(0)
        assert readyz_becomes(server, 503)
        # Requests meanwhile say the storage is unavailable (503, which clients retry), not 500.
        status, answer, _ = server.request("GET", "/api/v1/namespaces/default/services/over-tls")
        assert (status, answer["reason"]) == (503, "ServiceUnavailable"), answer
        body = {"metadata": {"name": "while-down"}, "spec": {"ports": [{"port": 80}]}}
        status, answer, _ = server.request("POST", "/api/v1/namespaces/default/services", body)
        assert (status, answer["reason"]) == (503, "ServiceUnavailable"), answer
        etcd.restart(0)
        assert readyz_becomes(server, 200)
    finally:
        stop_cluster(server.process)
    assert server.process.returncode == 0, (server.data_dir / "apiserver.log").read_text()
