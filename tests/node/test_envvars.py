"""The environment a pod's process gets: Service variables in the seed's format, $(VAR), fieldRef."""

from __future__ import annotations

from typing import Any

import pytest

from kubesvc.node import envvars

SEED_SEVEN = [
    ("REDIS_MASTER_SERVICE_HOST", "10.0.0.11"),
    ("REDIS_MASTER_SERVICE_PORT", "6379"),
    ("REDIS_MASTER_PORT", "tcp://10.0.0.11:6379"),
    ("REDIS_MASTER_PORT_6379_TCP", "tcp://10.0.0.11:6379"),
    ("REDIS_MASTER_PORT_6379_TCP_PROTO", "tcp"),
    ("REDIS_MASTER_PORT_6379_TCP_PORT", "6379"),
    ("REDIS_MASTER_PORT_6379_TCP_ADDR", "10.0.0.11"),
]


def service(
    name: str, ip: str | None, ports: list[dict[str, Any]], namespace: str = "default"
) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": ports}
    if ip is not None:
        spec["clusterIP"] = ip
    return {"kind": "Service", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


REDIS = service("redis-master", "10.0.0.11", [{"port": 6379, "protocol": "TCP"}])


def test_the_seed_example_gives_exactly_its_seven_lines() -> None:
    assert envvars.service_env(REDIS) == SEED_SEVEN
    assert envvars.render(envvars.services_env([REDIS], "default")) == "".join(
        f"{k}={v}\n" for k, v in SEED_SEVEN
    )


SERVICE_ROWS: list[tuple[str, dict[str, Any], bool, list[tuple[str, str]]]] = [
    (
        "named ports add SERVICE_PORT_NAME; the first port is the default",
        service(
            "web",
            "127.96.0.5",
            [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns-udp", "port": 53, "protocol": "UDP"},
            ],
        ),
        True,
        [
            ("WEB_SERVICE_HOST", "127.96.0.5"),
            ("WEB_SERVICE_PORT", "80"),
            ("WEB_SERVICE_PORT_HTTP", "80"),
            ("WEB_SERVICE_PORT_DNS_UDP", "53"),
            ("WEB_PORT", "tcp://127.96.0.5:80"),
            ("WEB_PORT_80_TCP", "tcp://127.96.0.5:80"),
            ("WEB_PORT_80_TCP_PROTO", "tcp"),
            ("WEB_PORT_80_TCP_PORT", "80"),
            ("WEB_PORT_80_TCP_ADDR", "127.96.0.5"),
            ("WEB_PORT_53_UDP", "udp://127.96.0.5:53"),
            ("WEB_PORT_53_UDP_PROTO", "udp"),
            ("WEB_PORT_53_UDP_PORT", "53"),
            ("WEB_PORT_53_UDP_ADDR", "127.96.0.5"),
        ],
    ),
    (
        "enableServiceLinks false drops the Docker-links set",
        service("api", "127.96.0.6", [{"name": "https", "port": 443}]),
        False,
        [
            ("API_SERVICE_HOST", "127.96.0.6"),
            ("API_SERVICE_PORT", "443"),
            ("API_SERVICE_PORT_HTTPS", "443"),
        ],
    ),
    (
        "IPv6 hosts are bracketed in the URLs only",
        service("v6", "fd00::5", [{"port": 80}]),
        True,
        [
            ("V6_SERVICE_HOST", "fd00::5"),
            ("V6_SERVICE_PORT", "80"),
            ("V6_PORT", "tcp://[fd00::5]:80"),
            ("V6_PORT_80_TCP", "tcp://[fd00::5]:80"),
            ("V6_PORT_80_TCP_PROTO", "tcp"),
            ("V6_PORT_80_TCP_PORT", "80"),
            ("V6_PORT_80_TCP_ADDR", "fd00::5"),
        ],
    ),
    ("a headless Service has no variables", service("h", "None", [{"port": 80}]), True, []),
    ("an ExternalName Service has no variables", service("x", None, []), True, []),
    (
        "dots become underscores too (the seed's rule)",
        service("a.b-c", "127.96.0.7", [{"port": 1}]),
        False,
        [("A_B_C_SERVICE_HOST", "127.96.0.7"), ("A_B_C_SERVICE_PORT", "1")],
    ),
]


@pytest.mark.parametrize(
    ("case", "svc", "links", "expected"), SERVICE_ROWS, ids=[r[0] for r in SERVICE_ROWS]
)
def test_service_variables(
    case: str, svc: dict[str, Any], links: bool, expected: list[tuple[str, str]]
) -> None:
    assert envvars.service_env(svc, links=links) == expected


def test_only_the_pods_namespace_counts_and_services_come_by_name() -> None:
    services = [
        service("zeta", "127.96.0.9", [{"port": 9}]),
        service("other", "127.96.0.8", [{"port": 8}], namespace="elsewhere"),
        service("alpha", "127.96.0.7", [{"port": 7}]),
    ]
    names = [k for k, _ in envvars.services_env(services, "default", links=False)]
    assert names == [
        "ALPHA_SERVICE_HOST",
        "ALPHA_SERVICE_PORT",
        "ZETA_SERVICE_HOST",
        "ZETA_SERVICE_PORT",
    ]


EXPAND_ROWS = [
    ("$(A)", "1"),
    ("x$(A)y$(B)z", "x1y2z"),
    ("$(MISSING)", "$(MISSING)"),
    ("$$(A)", "$(A)"),
    ("$$", "$"),
    ("$A", "$A"),
    ("$(A", "$(A"),
    ("cost: 5$", "cost: 5$"),
    ("$()", "$()"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), EXPAND_ROWS)
def test_dollar_paren_expansion(text: str, expected: str) -> None:
    assert envvars.expand(text, {"A": "1", "B": "2"}.get) == expected


POD = {
    "metadata": {
        "name": "web-0",
        "namespace": "shop",
        "uid": "u-1",
        "labels": {"app": "web"},
        "annotations": {"team": "a"},
    },
    "spec": {"nodeName": "node-1", "serviceAccountName": "default"},
    "status": {"podIP": "127.244.0.9", "podIPs": [{"ip": "127.244.0.9"}], "hostIP": "127.0.0.1"},
}

FIELD_ROWS = [
    ("metadata.name", "web-0"),
    ("metadata.namespace", "shop"),
    ("metadata.uid", "u-1"),
    ("metadata.labels['app']", "web"),
    ("metadata.annotations['team']", "a"),
    ("metadata.labels['none']", ""),
    ("metadata.labels", 'app="web"'),
    ("spec.nodeName", "node-1"),
    ("spec.serviceAccountName", "default"),
    ("status.podIP", "127.244.0.9"),
    ("status.podIPs", "127.244.0.9"),
    ("status.hostIP", "127.0.0.1"),
]


@pytest.mark.parametrize(("path", "expected"), FIELD_ROWS)
def test_field_refs(path: str, expected: str) -> None:
    assert envvars.field_value(POD, path) == expected


def test_a_container_env_layers_node_services_pod_and_its_own() -> None:
    container = {
        "env": [
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "URL", "value": "http://$(REDIS_MASTER_SERVICE_HOST):$(PORT)"},
            {"name": "PORT", "value": "6379"},
            {"name": "URL2", "value": "$(IP):$(PORT)"},
            {"name": "PATH", "value": "/opt/bin:$(PATH)"},
            {"name": "EMPTY"},
            {"name": "SKIPPED", "valueFrom": {"secretKeyRef": {"name": "s", "optional": True}}},
        ]
    }
    env = envvars.container_env(
        POD,
        container,
        pod_ip="127.244.0.9",
        service_vars=SEED_SEVEN,
        node_environ={"PATH": "/usr/bin", "HOME": "/root", "LC_ALL": "C.UTF-8", "SECRET": "x"},
    )
    assert env == {
        "PATH": "/opt/bin:/usr/bin",
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        **dict(SEED_SEVEN),
        "POD_IP": "127.244.0.9",
        "POD_NAME": "web-0",
        "POD_NAMESPACE": "shop",
        "IP": "127.244.0.9",
        "ME": "web-0",
        "NS": "shop",
        # PORT is defined after URL: the reference stays as written, as in Kubernetes.
        "URL": "http://10.0.0.11:$(PORT)",
        "PORT": "6379",
        "URL2": "127.244.0.9:6379",
        "EMPTY": "",
    }


@pytest.mark.parametrize(
    "source",
    [
        {"secretKeyRef": {"name": "s", "key": "k"}},
        {"configMapKeyRef": {"name": "c", "key": "k"}},
        {"resourceFieldRef": {"resource": "limits.cpu"}},
        {"fieldRef": {"fieldPath": "spec.bogus"}},
    ],
)
def test_unsupported_sources_are_an_error_not_a_crash(source: dict[str, Any]) -> None:
    with pytest.raises(envvars.EnvError):
        envvars.container_env(
            POD,
            {"env": [{"name": "X", "valueFrom": source}]},
            pod_ip="127.244.0.9",
            service_vars=[],
            node_environ={},
        )


def test_command_and_args_are_expanded() -> None:
    container = {"command": ["sh", "-c"], "args": ["echo $(POD_IP) $$HOME $(NOPE)"]}
    assert envvars.command_line(container, {"POD_IP": "127.244.0.2"}) == [
        "sh",
        "-c",
        "echo 127.244.0.2 $HOME $(NOPE)",
    ]
