"""Pure: what a probe checks, and when its results make a container started, ready or dead.

`probe_action` turns a probe spec into a concrete check (named ports
resolved against the container's ports, the host defaulting to the pod IP);
`ReadinessState` applies the thresholds: `successThreshold` successes in a
row make a probe pass, `failureThreshold` failures in a row make it fail. A
container with a readiness probe starts unready, as in Kubernetes.

`ContainerProbes` combines a container's three probes as the kubelet does:
until the startup probe has succeeded the others are not run and the
container is neither started nor ready; a startup or liveness probe that
reaches its failure threshold condemns the container (the agent kills it and
its restart policy decides what follows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

HANDLERS = ("exec", "httpGet", "tcpSocket")

STARTUP, LIVENESS, READINESS = "startup", "liveness", "readiness"
# The order the kubelet runs them in: startup first, as it gates the other two.
PROBE_KINDS = (STARTUP, LIVENESS, READINESS)
SPEC_KEYS = {STARTUP: "startupProbe", LIVENESS: "livenessProbe", READINESS: "readinessProbe"}


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
    def from_spec(cls, probe: Obj, kind: str = READINESS) -> ProbeTiming:
        """The timing of a `kind` probe spec; missing or nonsense values take Kubernetes' defaults."""

        def number(key: str, default: float, minimum: float) -> float:
            value = probe.get(key)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            return float(value) if ok and value >= minimum else default

        success = int(number("successThreshold", 1, 1))
        return cls(
            initial_delay_s=number("initialDelaySeconds", 0, 0),
            period_s=number("periodSeconds", 10, 1),
            timeout_s=number("timeoutSeconds", 1, 1),
            # Kubernetes requires 1 for these two, which this API does not check: one
            # success is enough to count as started, or as alive.
            success_threshold=success if kind == READINESS else 1,
            failure_threshold=int(number("failureThreshold", 3, 1)),
        )


def kill_grace_s(probe: Obj, pod_spec: Obj) -> float:
    """How long a container failed by `probe` gets between SIGTERM and SIGKILL.

    The probe's own `terminationGracePeriodSeconds` when set, else the pod's
    (Kubernetes' default: 30 s).
    """
    for value in (
        probe.get("terminationGracePeriodSeconds"),
        pod_spec.get("terminationGracePeriodSeconds"),
    ):
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return 30.0


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


@dataclass(frozen=True)
class Outcome:
    """What one probe result means for the container."""

    changed: bool = False  # started or ready changed: the status must be written again
    kill: bool = False  # a startup or liveness probe has just failed for good


@dataclass
class ContainerProbes:
    """The probes of one run of a container, combined as the kubelet combines them.

    One instance per attempt: a restarted container starts counting afresh.
    `failed` names the probe that condemned this run; from then on no result counts.
    """

    states: dict[str, ReadinessState] = field(default_factory=dict)
    failed: str = ""

    @classmethod
    def from_spec(
        cls, container: Obj, *, started: bool = False, ready: bool = False
    ) -> ContainerProbes:
        """The probes of `container`; `started`/`ready` carry over what an earlier agent reported."""
        # Liveness starts passing: a container is alive until proven otherwise.
        initial = {STARTUP: started, LIVENESS: True, READINESS: ready}
        states = {}
        for kind in PROBE_KINDS:
            probe = container.get(SPEC_KEYS[kind])
            if isinstance(probe, dict) and probe:
                timing = ProbeTiming.from_spec(probe, kind)
                states[kind] = ReadinessState(timing, ready=initial[kind])
        return cls(states)

    @property
    def started(self) -> bool:
        startup = self.states.get(STARTUP)
        return startup is None or startup.ready

    @property
    def ready(self) -> bool:
        if self.failed or not self.started:
            return False
        readiness = self.states.get(READINESS)
        return readiness is None or readiness.ready

    def active(self, kind: str) -> bool:
        """Whether the `kind` probe is to be checked now."""
        if self.failed or kind not in self.states:
            return False
        # The startup probe runs until it succeeds; the others only after that.
        return not self.started if kind == STARTUP else self.started

    def observe(self, kind: str, ok: bool, message: str = "") -> Outcome:
        if not self.active(kind):
            return Outcome()  # a result that arrived after the probe stopped counting
        before = (self.started, self.ready)
        state = self.states[kind]
        state.observe(ok, message)
        # Startup and liveness failures are counted, not turned into "unready": at the
        # threshold the container is killed (a startup probe never was passing to begin with).
        if kind != READINESS and state.failures >= state.timing.failure_threshold:
            self.failed = kind
            return Outcome(before != (self.started, self.ready), kill=True)
        return Outcome(before != (self.started, self.ready))
