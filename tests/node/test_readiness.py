"""Readiness thresholds and what a probe checks: pure tables."""

from __future__ import annotations

from typing import Any

import pytest

from kubesvc.node.readiness import (
    ExecCheck,
    HTTPCheck,
    ProbeError,
    ProbeTiming,
    ReadinessState,
    TCPCheck,
    probe_action,
)

# (successThreshold, failureThreshold, results, readiness after each result)
THRESHOLD_ROWS: list[tuple[int, int, str, str]] = [
    (1, 3, "+", "R"),
    (1, 3, "-", "N"),  # starts unready; failures keep it so
    (1, 3, "+--", "RRR"),  # two failures are not three
    (1, 3, "+---", "RRRN"),
    (1, 3, "+--+---", "RRRRRRN"),  # a success in between starts the count again
    (2, 1, "+", "N"),
    (2, 1, "++", "NR"),
    (2, 1, "+-++", "NNNR"),
    (3, 2, "+++-+--", "NNRRRRN"),
    (1, 1, "+-+-", "RNRN"),
]


@pytest.mark.parametrize(("success", "failure", "results", "expected"), THRESHOLD_ROWS)
def test_thresholds(success: int, failure: int, results: str, expected: str) -> None:
    state = ReadinessState(ProbeTiming(success_threshold=success, failure_threshold=failure))
    seen = ""
    for result in results:
        state.observe(result == "+")
        seen += "R" if state.ready else "N"
    assert seen == expected


def test_observe_says_when_readiness_changed() -> None:
    state = ReadinessState(ProbeTiming(failure_threshold=2))
    assert [state.observe(ok) for ok in (True, True, False, False, False)] == [
        True,
        False,
        False,
        True,
        False,
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, ProbeTiming(0, 10, 1, 1, 3)),  # Kubernetes' defaults
        (
            {
                "initialDelaySeconds": 2,
                "periodSeconds": 1,
                "timeoutSeconds": 3,
                "successThreshold": 2,
                "failureThreshold": 1,
            },
            ProbeTiming(2, 1, 3, 2, 1),
        ),
        ({"periodSeconds": 0, "timeoutSeconds": "x", "failureThreshold": True}, ProbeTiming()),
    ],
)
def test_timing(spec: dict[str, Any], expected: ProbeTiming) -> None:
    assert ProbeTiming.from_spec(spec) == expected


CONTAINER = {"ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9000}]}

ACTION_ROWS: list[tuple[dict[str, Any], Any]] = [
    (
        {"httpGet": {"port": "http", "path": "/healthz"}},
        HTTPCheck("HTTP", "127.244.0.5", 8080, "/healthz"),
    ),
    (
        {
            "httpGet": {
                "port": 9000,
                "host": "127.0.0.1",
                "scheme": "HTTPS",
                "path": "ready",
                "httpHeaders": [{"name": "X-Probe", "value": "1"}],
            }
        },
        HTTPCheck("HTTPS", "127.0.0.1", 9000, "ready", (("X-Probe", "1"),)),
    ),
    ({"tcpSocket": {"port": "http"}}, TCPCheck("127.244.0.5", 8080)),
    ({"tcpSocket": {"port": "9000"}}, TCPCheck("127.244.0.5", 9000)),
    ({"exec": {"command": ["cat", "/tmp/ready"]}}, ExecCheck(("cat", "/tmp/ready"))),
]


@pytest.mark.parametrize(("probe", "expected"), ACTION_ROWS)
def test_probe_actions(probe: dict[str, Any], expected: Any) -> None:
    assert probe_action(probe, CONTAINER, "127.244.0.5") == expected


def test_urls() -> None:
    assert HTTPCheck("HTTPS", "fd00::1", 443, "ready").url == "https://[fd00::1]:443/ready"


@pytest.mark.parametrize(
    "probe",
    [
        {"httpGet": {"port": "metrics"}},  # the container has no such port
        {"grpc": {"port": 9000}},
        {"exec": {"command": []}},
        {"periodSeconds": 5},
    ],
)
def test_probes_that_cannot_run_are_an_error_not_a_crash(probe: dict[str, Any]) -> None:
    with pytest.raises(ProbeError):
        probe_action(probe, CONTAINER, "127.244.0.5")
