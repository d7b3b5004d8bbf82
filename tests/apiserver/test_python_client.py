"""The official Python `kubernetes` client against kubesvc, unchanged."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client, config, watch

from tests.apiserver.conftest import Cluster


@pytest.fixture(scope="module")
def core(cluster: Cluster) -> client.CoreV1Api:
    api_client = config.new_client_from_config(str(cluster.kubeconfig))
    api = client.CoreV1Api(api_client)
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="pyclient")))
    return api


def _service(name: str) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1ServiceSpec(
            selector={"app": name},
            ports=[client.V1ServicePort(name="http", port=80, target_port=8080)],
        ),
    )


def test_create_list_patch_delete(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_service("pyclient", _service("py-web"))
    assert created.spec.ports[0].target_port == 8080 and created.spec.ports[0].protocol == "TCP"
    names = [s.metadata.name for s in core.list_namespaced_service("pyclient").items]
    assert "py-web" in names
    patched = core.patch_namespaced_service(
        "py-web", "pyclient", {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}
    )
    assert patched.spec.ports[0].target_port == 9090 and patched.spec.ports[0].name == "http"
    core.delete_namespaced_service("py-web", "pyclient")
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_service("py-web", "pyclient")
    assert err.value.status == 404


def test_invalid_create_raises_422(core: client.CoreV1Api) -> None:
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_service("pyclient", _service("Bad_Name"))
    assert err.value.status == 422


def test_watch_stream(core: client.CoreV1Api) -> None:
    rv = core.list_namespaced_service("pyclient").metadata.resource_version
    timer = threading.Timer(
        0.3, lambda: core.create_namespaced_service("pyclient", _service("py-watched"))
    )
    timer.start()
    seen = []
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_service, "pyclient", resource_version=rv, timeout_seconds=10
    ):
        seen.append((event["type"], event["object"].metadata.name))
        stream.stop()
    timer.join()
    assert seen == [("ADDED", "py-watched")]
