"""Pure: what a readiness probe checks, and when its results make a container ready.

`probe_action` turns a probe spec into a concrete check (named ports
resolved against the container's ports, the host defaulting to the pod IP);
`ReadinessState` applies the thresholds: `successThreshold` successes in a
row make a container ready, `failureThreshold` failures in a row make it
unready. A container with a readiness probe starts unready, as in Kubernetes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

HANDLERS = ("exec", "httpGet", "tcpSocket")


class ProbeError(Exception):
    """The probe cannot be run as written (a port name the container lacks, a gRPC probe…)."""


@dataclass(frozen=True)
class ProbeTiming:
    initial_delay_s: float = 0.0
    period_s: float = 10.0
    timeout_s: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def from_spec(cls, probe: Obj) -> ProbeTiming:
        """The timing of a probe spec; missing or nonsense values take Kubernetes' defaults."""

        def number(key: str, default: float, minimum: float) -> float:
            value = probe.get(key)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            return float(value) if ok and value >= minimum else default

        return cls(
            initial_delay_s=number("initialDelaySeconds", 0, 0),
            period_s=number("periodSeconds", 10, 1),
            timeout_s=number("timeoutSeconds", 1, 1),
            success_threshold=int(number("successThreshold", 1, 1)),
            failure_threshold=int(number("failureThreshold", 3, 1)),
        )


@dataclass(frozen=True)
class HTTPCheck:
    scheme: str
    host: str
    port: int
    path: str
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.path if self.path.startswith("/") else "/" + self.path
        return f"{self.scheme.lower()}://{host}:{self.port}{path}"


@dataclass(frozen=True)
class TCPCheck:
    host: str
    port: int


@dataclass(frozen=True)
class ExecCheck:
    command: tuple[str, ...]


Check = HTTPCheck | TCPCheck | ExecCheck


def resolve_port(value: Any, container: Obj) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(value, bool):
        raise ProbeError(f"invalid port {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        for port in container.get("ports") or []:
            if isinstance(port, dict) and port.get("name") == value:
                return int(port["containerPort"])
        raise ProbeError(f"the container has no port named {value!r}")
    raise ProbeError(f"invalid port {value!r}")


def probe_action(probe: Obj, container: Obj, pod_ip: str) -> Check:
    """The check a probe spec describes, for a container whose pod has `pod_ip`."""
    if isinstance(probe.get("httpGet"), dict):
        http = probe["httpGet"]
        headers = tuple(
            (str(h.get("name")), str(h.get("value", "")))
            for h in http.get("httpHeaders") or []
            if isinstance(h, dict) and h.get("name")
        )
        return HTTPCheck(
            scheme=str(http.get("scheme") or "HTTP"),
            host=str(http.get("host") or pod_ip),
            port=resolve_port(http.get("port"), container),
            path=str(http.get("path") or "/"),
            headers=headers,
        )
    if isinstance(probe.get("tcpSocket"), dict):
        tcp = probe["tcpSocket"]
        return TCPCheck(str(tcp.get("host") or pod_ip), resolve_port(tcp.get("port"), container))
    if isinstance(probe.get("exec"), dict):
        command = probe["exec"].get("command") or []
        if not command:
            raise ProbeError("exec probe without a command")
        return ExecCheck(tuple(str(a) for a in command))
    if probe.get("grpc") is not None:
        raise ProbeError(
            "gRPC probes are not supported by kubesvc (use exec, httpGet or tcpSocket)"
        )
    raise ProbeError("the probe names no handler (exec, httpGet or tcpSocket)")


@dataclass
class ReadinessState:
    """Consecutive results against the thresholds; `observe` says whether readiness changed."""

    timing: ProbeTiming
    ready: bool = False
    successes: int = 0
    failures: int = 0
    last_message: str = field(default="")

    def observe(self, ok: bool, message: str = "") -> bool:
        before = self.ready
        self.last_message = message
        if ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= self.timing.success_threshold:
                self.ready = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= self.timing.failure_threshold:
                self.ready = False
        return self.ready != before
