"""The node agent: runs the pods bound to this node as local processes.

It is a client of the API like the controllers: one informer on Pods, one
worker task per pod (keyed by UID), one task per container and one per
probe. The agent registers its Node and posts a heartbeat
(`registration.py`); in a one-node cluster it binds unscheduled pods to itself
(`pods/binding`, see `placement.py`), otherwise the scheduler places them.

A pod's life here:
1. its record is made on disk, it gets an IP (and, in namespace mode, its
   sandbox), and its Service variables are taken — once, when it starts;
2. its init containers run one at a time, in order, each until it exits 0
   (a failure is retried with back-off, or under restartPolicy Never fails
   the pod); the record then says so, and no init container runs again;
3. each container's command runs under a shim (see `shim.py`), output to its
   log file, restarted by its restart policy with back-off;
4. probes, as the kubelet runs them (never on init containers): the startup
   probe first (nothing else runs, and the container is not ready, until it
   succeeds), then readiness probes set the containers' and the pod's Ready
   condition, which the Endpoints controller turns into ready or not-ready
   addresses, and a failed liveness (or startup) probe kills the container
   for its restart policy to judge;
5. a DELETE sets `deletionTimestamp`: the containers (or the init container
   running) get SIGTERM, then SIGKILL after the grace period, the sandbox
   goes, and only then does the agent remove the pod for good (a delete with
   `gracePeriodSeconds: 0`).

What is on disk is enough for a restarted agent to adopt the processes it
started (PID and start time, checked against /proc) instead of starting them
twice, and to end those whose pod was deleted meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import shutil
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from kubesvc.api import nodes
from kubesvc.api.errors import StatusError
from kubesvc.api.meta import rfc3339
from kubesvc.client.http import APIUnavailable, Client, path_for, resource_for
from kubesvc.client.informer import Informer
from kubesvc.client.kubeconfig import ClusterAccess
from kubesvc.node import envvars, ipam, placement
from kubesvc.node.events import EventRecorder
from kubesvc.node.logs import LOG_ANNOTATION, LogNotFound, LogServer, LogSource
from kubesvc.node.network import (
    HostNetwork,
    NamespaceNetwork,
    Network,
    NetworkError,
    PodNetwork,
    Sandbox,
    network_problem,
)
from kubesvc.node.probes import run_check
from kubesvc.node.process import (
    ProcessRef,
    Started,
    alive,
    find_shim,
    read_json,
    signal_group,
    spawn_shim,
    stop_group,
    write_json,
)
from kubesvc.node.readiness import (
    READINESS,
    SPEC_KEYS,
    STARTUP,
    ContainerProbes,
    ProbeError,
    kill_grace_s,
    probe_action,
)
from kubesvc.node.registration import NodeIdentity, NodeRegistration
from kubesvc.node.restart import Backoff, init_policy, plan_restart
from kubesvc.node.state import ContainerRecord, PodRecord, load_records
from kubesvc.node.status import ContainerView, init_succeeded, initial_state, pod_status

log = logging.getLogger("kubesvc.node")

__all__ = ["NodeAgent", "NodeConfig", "network_problem"]

Obj = dict[str, Any]

# The informer lists everything again this often: a missed event cannot leave a pod unattended.
RESYNC_S = 60.0
# A pod that vanished from the API without a graceful delete (forced, or its namespace
# deleted) still gets SIGTERM first, for at most this long (the kubelet's minimum grace).
VANISHED_GRACE_S = 2.0
# `kubesvc up` stops its pods when it stops; it waits at most this long for them.
SHUTDOWN_GRACE_S = 10.0
STATUS_COALESCE_S = 0.02
SETUP_RETRY_MAX_S = 30.0


def _parse_time(text: Any) -> float | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


@dataclass
class NodeConfig:
    """How one node agent runs. `data_dir` is the node's own directory (pods, logs)."""

    node_name: str
    data_dir: Path
    pod_cidr: Network
    pod_network: str = "host"  # or "netns" (root)
    node_ip: str = "127.0.0.1"  # the pods' hostIP; the log server listens here
    log_port: int = 0
    cluster_dns: str | None = None  # namespace mode: the nameserver (default: the bridge address)
    cluster_domain: str = "cluster.local"
    bridge: str = "kubesvc0"
    backoff: Backoff = field(default_factory=Backoff)
    # kubesvc node leaves its pods running when it stops (as the kubelet does), and adopts
    # them when it starts again; kubesvc up stops them, as the whole cluster is going away.
    stop_pods_on_exit: bool = False
    workdir: str = field(default_factory=os.getcwd)  # for containers without workingDir
    # The Node object: registered at start, its status posted every heartbeat_s; other
    # nodes count as ready while their heartbeat is younger than node_grace_s.
    register: bool = True
    heartbeat_s: float = nodes.DEFAULT_HEARTBEAT_S
    node_grace_s: float = nodes.DEFAULT_GRACE_S
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


def _pod_key(pod: Obj) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


class ContainerWorker:
    """One container of a pod: start, wait, restart with back-off, probe it (and kill it).

    An init container (`init=True`) runs the same way, but until it exits 0:
    it is not probed, it is ready once it has succeeded, and a success ends it.
    """

    def __init__(self, pod: PodWorker, spec: Obj, *, init: bool = False) -> None:
        self.pod = pod
        self.spec = spec
        self.init = init
        self.name = str(spec.get("name", ""))
        self.view = ContainerView(self.name, str(spec.get("image") or ""), initial_state(pod.pod))
        self.started: Started | None = None
        self.started_at = 0.0  # wall clock, for the back-off's "ran long enough"
        self.env: dict[str, str] = {}
        self.task: asyncio.Task[None] | None = None
        self.probe_tasks: list[asyncio.Task[None]] = []
        # A failed liveness or startup probe: the kill under way, and which probe asked for it.
        self.kill_task: asyncio.Task[None] | None = None
        self.killed_by = ""
        self.stopping = False

    @property
    def record(self) -> ContainerRecord:
        assert self.pod.record is not None
        return self.pod.record.container(self.name)

    def attempt_dir(self, attempt: int) -> Path:
        assert self.pod.record is not None
        return self.pod.record.attempt_dir(self.name, attempt)

    def running(self) -> bool:
        return self.started is not None and alive(self.started.ref)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"container:{self.pod.key}/{self.name}")

    def restore(self) -> None:
        """Show how the last attempt ended, without running anything (an init container done)."""
        attempt = self.record.attempt
        if attempt >= 0:
            self._show_ended(attempt)

    # ------------------------------------------------------------ lifecycle

    async def _run(self) -> None:
        ended = self._adopt()
        if ended is not None and not await self._after_exit(ended):
            return
        while not self.stopping:
            if self.started is None and not self._start():
                return  # cannot start as written: the waiting reason says why
            assert self.started is not None
            await self.started.wait()
            terminated = self._ended()
            if self.stopping:
                return
            if not await self._after_exit(terminated):
                return

    def _adopt(self) -> Obj | None:
        """Pick up what an earlier agent left: a live process, or how the last attempt ended.

        Returns the `terminated` state of an attempt that ended while no agent
        watched, for the restart rules to judge; None otherwise.
        """
        attempt = self.record.attempt
        if attempt < 0:
            return None
        ref = find_shim(self.attempt_dir(attempt))
        if ref is None:
            if self.record.interrupted:
                # Stopped by `kubesvc up` going down, not ended on its own: start it again.
                self.view.restart_count = attempt
                self.view.last_state = {"terminated": self._termination(attempt)}
                return None
            return self._show_ended(attempt)
        shim = read_json(self.attempt_dir(attempt) / "shim.json") or {}
        started_at = str(shim.get("startedAt") or rfc3339())
        self.started = Started(ref)
        self.started_at = _parse_time(started_at) or time.time()
        self.view.restart_count = attempt
        self.view.state = {"running": {"startedAt": started_at}}
        self.view.container_id = f"process://{ref.pid}"
        try:
            self.env = self._environment()
        except envvars.EnvError:
            self.env = {}  # it started with a valid env; only exec probes would miss it
        # Keep what the API last saw, so adoption neither flaps the Endpoints nor puts a
        # started container through its startup probe again.
        self._begin_probing(ready=self._reported("ready"), started=self._reported("started"))
        return None

    def _show_ended(self, attempt: int) -> Obj:
        """Show `attempt` (the last) as ended, as the shim recorded it; its `terminated` state."""
        terminated = self._termination(attempt)
        self.view.restart_count = attempt
        self.view.state = {"terminated": terminated}
        # The kubelet's rule: an init container is ready once it has succeeded.
        self.view.ready = self.init and terminated["exitCode"] == 0
        return terminated

    def _reported(self, key: str) -> bool:
        """Whether the pod's status in the API says `key: true` for this container."""
        return any(
            s.get("name") == self.name and s.get(key) is True
            for s in (self.pod.pod.get("status") or {}).get("containerStatuses") or []
        )

    def _environment(self) -> dict[str, str]:
        """The process's environment (see `envvars`); EnvError when an entry cannot be resolved."""
        record = self.pod.record
        assert record is not None and record.sandbox is not None
        return envvars.container_env(
            self.pod.pod_with_ip(),
            self.spec,
            pod_ip=record.sandbox.ip,
            service_vars=record.service_env or [],
            node_environ=self.pod.agent.config.environ,
        )

    def _waiting(self, reason: str, message: str) -> None:
        self.view.state = {"waiting": {"reason": reason, "message": message}}
        self.view.ready = False
        self.pod.dirty()
        if reason == "CrashLoopBackOff":
            meta = self.pod.pod.get("metadata") or {}
            self._event(
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {self.name} in pod "
                f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})",
            )
        else:  # the container cannot be created as specified
            self._event("Warning", "Failed", f"Error: {message}")

    def _event(self, event_type: str, reason: str, message: str) -> None:
        """An Event about this container, as the kubelet writes them (`kubectl describe pod`)."""
        self.pod.agent.record_event(
            self.pod.pod, event_type, reason, message, self.name, init=self.init
        )

    def _start(self) -> bool:
        """Start the next attempt; False when the container cannot run as specified."""
        if not self.spec.get("command"):
            image = self.spec.get("image")
            self._waiting(
                "CreateContainerError",
                f"kubesvc runs containers as local processes and image {image!r} cannot be run: "
                "give the container a command",
            )
            return False
        try:
            env = self._environment()
        except envvars.EnvError as err:
            self._waiting("CreateContainerConfigError", str(err))
            return False
        record = self.pod.record
        assert record is not None and record.sandbox is not None
        attempt = self.record.attempt + 1
        argv = envvars.command_line(self.spec, env)
        workdir = str(self.spec.get("workingDir") or self.pod.agent.config.workdir)
        attempt_dir = self.attempt_dir(attempt)
        self.record.attempt = attempt
        self.record.interrupted = False
        record.save()  # before the spawn: a restarted agent looks in this attempt's dir
        try:
            self.started = spawn_shim(
                argv,
                env=env,
                workdir=workdir,
                attempt_dir=attempt_dir,
                log_path=record.log_path(self.name, attempt),
                prefix=self.pod.agent.network.prefix(record.sandbox),
            )
        except OSError as err:
            # Even the shim did not start: an attempt that failed at once, under the same rules.
            attempt_dir.mkdir(parents=True, exist_ok=True)
            write_json(
                attempt_dir / "exit.json",
                {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": str(err),
                    "finishedAt": rfc3339(),
                },
            )
            self.started = Started(ProcessRef(-1, -1))
        self.env = env
        self.started_at = time.time()
        self.view.restart_count = attempt
        self.view.state = {"running": {"startedAt": rfc3339()}}
        pid = self.started.ref.pid
        self.view.container_id = f"process://{pid}" if pid > 0 else ""
        self._begin_probing(ready=False, started=False)
        self.pod.dirty()
        if pid > 0:
            self._event("Normal", "Started", f"Started container {self.name}")
        return True

    def _termination(self, attempt: int) -> Obj:
        """The `terminated` state of an attempt, from the shim's exit.json."""
        info = read_json(self.attempt_dir(attempt) / "exit.json")
        if info is None:
            # The shim itself was killed (SIGKILL to the group): no one wrote the code.
            info = {"exitCode": 137, "signal": 9, "finishedAt": rfc3339()}
        code = int(info.get("exitCode", 137))
        out: Obj = {
            "exitCode": code,
            "reason": info.get("reason") or ("Completed" if code == 0 else "Error"),
            "startedAt": info.get("startedAt")
            or self.view.state.get("running", {}).get("startedAt"),
            "finishedAt": info.get("finishedAt") or rfc3339(),
        }
        if info.get("signal"):
            out["signal"] = info["signal"]
        if info.get("message"):
            out["message"] = info["message"]
        if self.view.container_id:
            out["containerID"] = self.view.container_id
        return out

    def _ended(self) -> Obj:
        self._stop_probing()
        self._cancel_kill()  # the process it was ending has ended
        terminated = self._show_ended(self.record.attempt)
        self.started = None
        self.view.started = False  # the kubelet's rule: only a running container has started
        self.pod.dirty()
        return terminated

    async def _after_exit(self, terminated: Obj) -> bool:
        """Apply the restart policy; True to start the next attempt (after any back-off)."""
        policy = str((self.pod.pod.get("spec") or {}).get("restartPolicy") or "Always")
        if self.init:
            policy = init_policy(policy)
        if self.started_at > 0:
            ran_for_s = time.time() - self.started_at
        else:
            # It ended while no agent watched: the shim's own timestamps say how long it ran.
            began, ended = (_parse_time(terminated.get(k)) for k in ("startedAt", "finishedAt"))
            ran_for_s = ended - began if began is not None and ended is not None else 0.0
        plan = plan_restart(
            policy,
            int(terminated["exitCode"]),
            streak=self.record.streak,
            ran_for_s=max(0.0, ran_for_s),
            backoff=self.pod.agent.config.backoff,
            probe_failed=bool(self.killed_by),
        )
        if not plan.restart:
            return False
        self.record.streak = plan.streak
        assert self.pod.record is not None
        self.pod.record.save()
        self.view.last_state = {"terminated": terminated}
        if plan.delay_s > 0:
            meta = self.pod.pod.get("metadata") or {}
            self._waiting(
                "CrashLoopBackOff",
                f"back-off {plan.delay_s:g}s restarting failed container={self.name} "
                f"pod={meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})",
            )
            await asyncio.sleep(plan.delay_s)
        return True

    async def terminate(self, grace_s: float) -> None:
        """Stop for good: SIGTERM, SIGKILL after `grace_s`, and record how it ended."""
        self.stopping = True
        self._stop_probing()
        self._cancel_kill()  # a probe's kill gives way to the pod's own stop, and its grace
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.view.ready = False
        if self.started is not None:
            started = self.started
            if alive(started.ref):
                self._event("Normal", "Killing", f"Stopping container {self.name}")
            await stop_group(started, grace_s)
            if not alive(started.ref) and self.record.attempt >= 0:
                self._ended()

    async def detach(self) -> None:
        """Stop watching without touching the process (the agent stops; the pod keeps running)."""
        self.stopping = True
        self._stop_probing()
        # A kill under way is dropped too: the next agent probes again and decides afresh.
        self._cancel_kill()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    # --------------------------------------------------------------- probes

    def _begin_probing(self, *, ready: bool, started: bool) -> None:
        """The probes of the attempt just started (or adopted), each in a task of its own."""
        self.killed_by = ""
        if self.init:
            # Never probed (the API refuses probes on init containers); running is started,
            # and ready only comes with success.
            self.view.started, self.view.ready = True, False
            return
        probes = ContainerProbes.from_spec(self.spec, ready=ready, started=started)
        # Set once the startup probe has passed (or at once, without one): the others wait.
        probes_started = asyncio.Event()
        if probes.started:
            probes_started.set()
        self.view.started = probes.started
        self.view.ready = probes.ready
        for kind in probes.states:
            self.probe_tasks.append(
                asyncio.create_task(
                    self._probe_loop(kind, probes, probes_started),
                    name=f"{kind}-probe:{self.pod.key}/{self.name}",
                )
            )

    def _stop_probing(self) -> None:
        for task in self.probe_tasks:
            task.cancel()
        self.probe_tasks = []

    def _cancel_kill(self) -> None:
        if self.kill_task is not None:
            self.kill_task.cancel()
            self.kill_task = None

    async def _probe_loop(
        self, kind: str, probes: ContainerProbes, probes_started: asyncio.Event
    ) -> None:
        state = probes.states[kind]
        record = self.pod.record
        assert record is not None and record.sandbox is not None
        try:
            check = probe_action(self.spec[SPEC_KEYS[kind]], self.spec, record.sandbox.ip)
        except ProbeError as err:
            # The kubelet throws away the results of a probe it cannot run rather than
            # counting them as failures: such a liveness probe never kills, such a
            # readiness probe never makes the container ready.
            text = f"{kind.capitalize()} probe errored: {err}"
            log.warning("pod %s container %s: %s", self.pod.key, self.name, text)
            self._event("Warning", "Unhealthy", text)
            return
        timing = state.timing
        # initialDelaySeconds counts from the container's start, for every kind of probe.
        await asyncio.sleep(max(0.0, self.started_at + timing.initial_delay_s - time.time()))
        if kind != STARTUP:
            await probes_started.wait()
        agent = self.pod.agent
        workdir = str(self.spec.get("workingDir") or agent.config.workdir)
        while probes.active(kind):
            ok, message = await run_check(
                check,
                timing.timeout_s,
                session=agent.http,
                env=self.env,
                prefix=agent.network.prefix(record.sandbox, workdir),
                workdir=workdir,
            )
            self._observe(kind, probes, probes_started, ok, message)
            if not probes.active(kind):
                return  # startup passed, or the container is condemned
            await asyncio.sleep(timing.period_s)

    def _observe(
        self,
        kind: str,
        probes: ContainerProbes,
        probes_started: asyncio.Event,
        ok: bool,
        message: str,
    ) -> None:
        """Count one result (see `ContainerProbes`) and act on what it changes."""
        outcome = probes.observe(kind, ok, message)
        if not ok and kind != READINESS:
            # The kubelet's words, in the log and in `kubectl describe pod`.
            text = f"{kind.capitalize()} probe failed: {message}"
            log.warning("pod %s container %s: %s", self.pod.key, self.name, text)
            self._event("Warning", "Unhealthy", text)
        if probes.started:
            probes_started.set()  # liveness and readiness may begin
        if outcome.changed:
            self.view.started = probes.started
            self.view.ready = probes.ready and self.running()
            if kind == STARTUP:
                what = "started (startup probe passed)"
            else:
                what = "ready" if probes.ready else "not ready"
            suffix = f" ({message})" if message and kind == READINESS else ""
            log.info("pod %s container %s: %s%s", self.pod.key, self.name, what, suffix)
            self.pod.dirty()
        if outcome.kill:
            self._kill(kind)

    def _kill(self, kind: str) -> None:
        """End the container for failing its `kind` probe; `_run` then applies the restart policy."""
        started = self.started
        if started is None or self.kill_task is not None:
            return
        self.killed_by = kind
        pod_spec = self.pod.pod.get("spec") or {}
        restart = str(pod_spec.get("restartPolicy") or "Always") != "Never"
        text = f"Container {self.name} failed {kind} probe"
        if restart:
            text += ", will be restarted"
        log.warning("pod %s: %s", self.pod.key, text)
        self._event("Normal", "Killing", text)
        # A condemned container is not ready (ContainerProbes says so): out of the
        # Endpoints now, not only once its grace period is over.
        self.view.ready = False
        self.pod.dirty()
        grace_s = kill_grace_s(self.spec[SPEC_KEYS[kind]], pod_spec)
        self.kill_task = asyncio.create_task(
            stop_group(started, grace_s), name=f"kill:{self.pod.key}/{self.name}"
        )


def _ready(status: Obj | None) -> str | None:
    """The status of a pod status's Ready condition."""
    for cond in (status or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond.get("status")
    return None


class PodWorker:
    """One pod on this node, from its start to its removal."""

    def __init__(self, agent: NodeAgent, pod: Obj, record: PodRecord | None) -> None:
        self.agent = agent
        self.pod = pod
        self.record = record
        meta = pod.get("metadata") or {}
        self.uid = str(meta.get("uid", ""))
        self.key = "/".join(_pod_key(pod))
        self.init_containers: dict[str, ContainerWorker] = {}
        self.containers: dict[str, ContainerWorker] = {}
        self.gone = False
        self._changed = asyncio.Event()
        self._dirty = asyncio.Event()
        self._last_status: Obj | None = None
        self.task: asyncio.Task[None] | None = None
        self._status_task: asyncio.Task[None] | None = None
        # Runs the init containers in turn, then starts the containers.
        self._containers_task: asyncio.Task[None] | None = None
        self._setup_error = ""
        # While stopping: when SIGKILL is due, and the timer a shorter grace period set.
        self._kill_deadline: float | None = None
        self._kill_timer: asyncio.TimerHandle | None = None

    # ---------------------------------------------------------- from events

    def update(self, pod: Obj) -> None:
        self.pod = pod
        grace = (pod.get("metadata") or {}).get("deletionGracePeriodSeconds")
        if isinstance(grace, int):
            self._hurry(float(grace))  # a second DELETE may shorten the grace period
        if self._last_status is not None and _ready(pod.get("status")) != _ready(self._last_status):
            # Someone else wrote our pod's readiness (the node lifecycle marks the pods of
            # a node it thought gone NotReady): write what this agent sees again.
            self._last_status = None
            self._dirty.set()
        self._changed.set()

    def vanished(self) -> None:
        self.gone = True
        self._hurry(VANISHED_GRACE_S)  # force-deleted while stopping: do not wait it out
        self._changed.set()

    def _hurry(self, grace_s: float) -> None:
        """While stopping: SIGKILL in `grace_s` if that is sooner than the stop's own deadline.

        The kubelet does the same when a second DELETE shortens the grace period.
        """
        if self._kill_deadline is None:
            return  # not stopping (yet): `_stop_pod` reads the grace when it starts
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(grace_s, 0.0)
        if deadline >= self._kill_deadline:
            return
        self._kill_deadline = deadline
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        self._kill_timer = loop.call_at(deadline, self._kill_now)
        log.info("pod %s: grace period shortened to %gs", self.key, grace_s)

    def _kill_now(self) -> None:
        # The containers' own stops see their processes end and go on from there.
        for worker in self.all_containers():
            if worker.started is not None:
                signal_group(worker.started.ref, signal.SIGKILL)

    def dirty(self) -> None:
        self._dirty.set()

    def all_containers(self) -> list[ContainerWorker]:
        """The init containers' workers, then the containers'."""
        return [*self.init_containers.values(), *self.containers.values()]

    @property
    def terminating(self) -> bool:
        return self.gone or bool((self.pod.get("metadata") or {}).get("deletionTimestamp"))

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pod:{self.key}")

    def pod_with_ip(self) -> Obj:
        """The pod as its processes should see it: with its IP and host IP in the status."""
        pod = copy.copy(self.pod)
        status = dict(pod.get("status") or {})
        if self.record is not None and self.record.sandbox is not None:
            status["podIP"] = self.record.sandbox.ip
            status["podIPs"] = [{"ip": self.record.sandbox.ip}]
        status["hostIP"] = self.agent.config.node_ip
        status["hostIPs"] = [{"ip": self.agent.config.node_ip}]
        pod["status"] = status
        return pod

    # ------------------------------------------------------------- the work

    async def _run(self) -> None:
        try:
            if not self.terminating:
                await self._start_pod()
            while not self.terminating:
                await self._changed.wait()
                self._changed.clear()
            await self._stop_pod()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Should not happen; the next resync starts a new worker, which adopts from disk.
            log.exception("pod %s: worker failed", self.key)
        finally:
            for task in (self._containers_task, self._status_task):
                if task is not None:
                    task.cancel()
            if self.agent.workers.get(self.uid) is self:
                del self.agent.workers[self.uid]

    async def _start_pod(self) -> None:
        """Record, address, sandbox, Service variables, containers — retried until it works."""
        delay = 0.5
        while not self.terminating:
            try:
                await self._prepare()
                break
            except (NetworkError, APIUnavailable, StatusError, OSError) as err:
                message = str(getattr(err, "message", None) or err)
                log.warning("pod %s: cannot start yet: %s", self.key, message)
                self._setup_error = message
                await self._write_pending(message)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._changed.wait()
                self._changed.clear()
                delay = min(delay * 2, SETUP_RETRY_MAX_S)
        if self.terminating or self.record is None:
            return
        spec = self.pod.get("spec") or {}
        for key, workers in (
            ("initContainers", self.init_containers),
            ("containers", self.containers),
        ):
            for container in spec.get(key) or []:
                if isinstance(container, dict) and container.get("name"):
                    worker = ContainerWorker(self, container, init=key == "initContainers")
                    workers[worker.name] = worker
        self._status_task = asyncio.create_task(self._status_loop(), name=f"status:{self.key}")
        self._containers_task = asyncio.create_task(
            self._run_containers(), name=f"containers:{self.key}"
        )
        self.dirty()

    def _initialized(self) -> bool:
        """Whether the init containers are behind this pod (the kubelet's rule: so is any
        pod whose containers have run — a record older than init containers here)."""
        record = self.record
        assert record is not None
        return record.initialized or any(
            (crec := record.containers.get(name)) is not None and crec.attempt >= 0
            for name in self.containers
        )

    async def _run_containers(self) -> None:
        """The init containers one at a time, in order, each until it succeeds; then the rest."""
        record = self.record
        assert record is not None
        if self._initialized():
            for worker in self.init_containers.values():
                worker.restore()
        else:
            for worker in self.init_containers.values():
                worker.start()
                assert worker.task is not None
                # Waited for, not awaited: cancelling this task must not cancel the
                # container's, which the pod's stop ends with its grace period.
                await asyncio.wait({worker.task})
                if not init_succeeded(worker.view):
                    # Failed under restartPolicy Never (the pod is Failed), or it cannot
                    # start at all (its waiting reason says why): no container ever starts.
                    log.info("pod %s: init container %s did not succeed", self.key, worker.name)
                    self.dirty()
                    return
            record.initialized = True
            record.save()
        for worker in self.containers.values():
            worker.start()
        self.dirty()

    async def _prepare(self) -> None:
        agent = self.agent
        namespace, name = _pod_key(self.pod)
        if self.record is None:
            self.record = PodRecord(
                uid=self.uid,
                namespace=namespace,
                name=name,
                directory=agent.pods_dir / PodRecord.dir_name(namespace, name, self.uid),
                start_time=rfc3339(),
            )
        record = self.record
        if record.sandbox is None or not agent.network.intact(record.sandbox):
            ip = record.sandbox.ip if record.sandbox else agent.allocate_ip()
            if record.sandbox is not None:
                # The sandbox died under live containers (namespace mode): start them afresh.
                await self._kill_containers_left_in(record)
                await agent.network.teardown(record.sandbox)
            record.sandbox = Sandbox(ip)  # the address is held from here on
            record.save()
            record.sandbox = await agent.network.setup(record.directory, self.uid, ip, namespace)
            record.save()
        if record.service_env is None:
            # The seed's rule: only Services that exist when the pod starts are in its env.
            listed = await agent.client.list("Service", namespace)
            services = [dict(s, kind="Service") for s in listed.get("items", [])]
            record.service_env = envvars.services_env(
                services, namespace, links=envvars.service_links_enabled(self.pod)
            )
            record.save()
        annotations = (self.pod.get("metadata") or {}).get("annotations") or {}
        if annotations.get(LOG_ANNOTATION) != agent.logs.url:
            await agent.client.patch(
                "Pod",
                name,
                {"metadata": {"annotations": {LOG_ANNOTATION: agent.logs.url}}},
                namespace,
            )
        self._setup_error = ""

    async def _kill_containers_left_in(self, record: PodRecord) -> None:
        for name, crec in record.containers.items():
            ref = find_shim(record.attempt_dir(name, crec.attempt)) if crec.attempt >= 0 else None
            if ref is not None:
                await stop_group(Started(ref), 0)

    async def _stop_pod(self) -> None:
        """SIGTERM, the grace period, SIGKILL; the sandbox; the record; then the API object."""
        meta = self.pod.get("metadata") or {}
        spec = self.pod.get("spec") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        grace_s = float(grace)
        if self.gone:
            grace_s = min(grace_s, VANISHED_GRACE_S)
        self._kill_deadline = asyncio.get_running_loop().time() + grace_s
        log.info("pod %s: stopping (grace %gs)", self.key, grace_s)
        if self.record is None:
            # Never started here (a finished pod whose record is gone): nothing runs.
            pass
        else:
            # No init container after this one, and no container after them.
            await self._cancel_containers_task()
            for worker in self.containers.values():
                worker.view.ready = False
            if not self.gone:
                # Not ready at once: out of the Endpoints before the processes hear of it.
                with contextlib.suppress(StatusError, APIUnavailable):
                    await self._push_status()
            await asyncio.gather(*(w.terminate(grace_s) for w in self.all_containers()))
            await self._kill_containers_left_in(self.record)  # attempts no worker held
            if self.record.sandbox is not None:
                with contextlib.suppress(NetworkError):
                    await self.agent.network.teardown(self.record.sandbox)
            shutil.rmtree(self.record.directory, ignore_errors=True)
            self.record = None
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        if self._status_task is not None:
            self._status_task.cancel()
        if not self.gone:
            await self.agent.finish_deletion(self.pod)

    async def _cancel_containers_task(self) -> None:
        if self._containers_task is not None:
            self._containers_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._containers_task

    async def shutdown(self) -> None:
        """The agent is stopping: stop or leave the processes, as configured; keep the record."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self._status_task is not None:
            self._status_task.cancel()
        await self._cancel_containers_task()
        if not self.agent.config.stop_pods_on_exit or self.record is None:
            await asyncio.gather(*(w.detach() for w in self.all_containers()))
            return
        grace = (self.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        grace_s = min(float(grace), SHUTDOWN_GRACE_S)
        record = self.record
        for worker in self.all_containers():
            record.container(worker.name).interrupted = worker.running()
        await asyncio.gather(*(w.terminate(grace_s) for w in self.all_containers()))
        if record.sandbox is not None:
            with contextlib.suppress(NetworkError):
                await self.agent.network.teardown(record.sandbox)
            record.sandbox = Sandbox(record.sandbox.ip)  # the pod keeps its address
        record.save()

    # ------------------------------------------------------------- status

    def _views(self, key: str, workers: dict[str, ContainerWorker]) -> list[ContainerView]:
        """The views of the spec's `key` list (containers or initContainers), in its order."""
        views = []
        for spec in (self.pod.get("spec") or {}).get(key) or []:
            worker = workers.get(str(spec.get("name")))
            if worker is not None:
                view = worker.view
                if self.terminating and not worker.init:
                    view.ready = False  # an init container's ready only says it succeeded
                views.append(view)
            else:
                name, image = str(spec.get("name")), str(spec.get("image") or "")
                views.append(ContainerView(name, image, initial_state(self.pod)))
        return views

    def _status(self) -> Obj:
        record = self.record
        return pod_status(
            self.pod,
            self._views("containers", self.containers),
            init_views=self._views("initContainers", self.init_containers),
            pod_ip=record.sandbox.ip if record and record.sandbox else None,
            host_ip=self.agent.config.node_ip,
            start_time=record.start_time if record else rfc3339(),
            now=rfc3339(),
            previous_status=self._last_status,
        )

    async def _push_status(self) -> None:
        status = self._status()
        if status == self._last_status:
            return
        namespace, name = _pod_key(self.pod)
        try:
            await self.agent.client.patch(
                "Pod", name, {"status": status}, namespace, subresource="status"
            )
            self._last_status = status
        except StatusError as err:
            if err.code != 404:  # 404: deleted meanwhile; the informer will say so
                raise

    async def _write_pending(self, message: str) -> None:
        """Tell the API why the pod has not started (best effort)."""
        namespace, name = _pod_key(self.pod)
        status = {
            "phase": "Pending",
            "hostIP": self.agent.config.node_ip,
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "PodSetupFailed",
                    "message": message,
                },
            ],
        }
        with contextlib.suppress(StatusError, APIUnavailable):
            await self.agent.client.patch(
                "Pod", name, {"status": status}, namespace, subresource="status"
            )

    async def _status_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(STATUS_COALESCE_S)  # one write for a burst of changes
            self._dirty.clear()
            try:
                await self._push_status()
            except (StatusError, APIUnavailable) as err:
                log.info("pod %s: status not written (%s); retrying", self.key, err)
                await asyncio.sleep(1.0)
                self._dirty.set()

    # ------------------------------------------------------------------ logs

    def log_source(self, container: str, previous: bool) -> LogSource:
        """Where the log of `container` (its last attempt, or the one before) is."""
        _, name = _pod_key(self.pod)
        worker = self.containers.get(container) or self.init_containers.get(container)
        if worker is None or self.record is None:
            if self.all_containers():
                raise LogNotFound(f"container {container} is not valid for pod {name}")
            reason = self._setup_error or "ContainerCreating"
            raise LogNotFound(
                f'container "{container}" in pod "{name}" is waiting to start: {reason}'
            )
        crec = worker.record
        attempt = crec.attempt - (1 if previous else 0)
        if attempt < 0:
            if previous:
                raise LogNotFound(
                    f'previous terminated container "{container}" in pod "{name}" not found'
                )
            reason = worker.view.state.get("waiting", {}).get("reason", "ContainerCreating")
            raise LogNotFound(
                f'container "{container}" in pod "{name}" is waiting to start: {reason}'
            )
        current = crec.attempt

        def running() -> bool:
            # Only the attempt running now can still write; an older one is complete.
            return attempt == crec.attempt == current and worker.running()

        return LogSource(self.record.log_path(container, attempt), running)


class NodeAgent:
    """Runs the pods of one node; `start`, then `stop`."""

    def __init__(self, access: ClusterAccess, config: NodeConfig) -> None:
        self.access = access
        self.config = config
        self.client = Client(access, user_agent=f"kubesvc-node/{config.node_name}")
        self.pods = Informer(self.client, "Pod", resync_s=RESYNC_S)
        self.nodes = Informer(self.client, "Node", resync_s=RESYNC_S)
        self.registration = NodeRegistration(
            self.client,
            NodeIdentity(
                config.node_name,
                config.node_ip,
                config.pod_cidr,
                config.pod_network,
            ),
            config.heartbeat_s,
        )
        self.network: PodNetwork
        if config.pod_network == "netns":
            self.network = NamespaceNetwork(
                config.pod_cidr,
                node_name=config.node_name,
                bridge=config.bridge,
                dns=config.cluster_dns,
                domain=config.cluster_domain,
            )
        else:
            self.network = HostNetwork()
        self.logs = LogServer(self._locate_log, config.node_ip, config.log_port)
        self.workers: dict[str, PodWorker] = {}
        self.pods_dir = config.data_dir / "pods"
        self._binding: set[str] = set()
        self._finished: set[str] = set()  # removed for good; the informer may not know yet
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_ip: str | None = None
        self._orphan_ips: set[str] = set()  # still bound by processes being ended
        self._http: aiohttp.ClientSession | None = None
        self.events = EventRecorder(self.client, config.node_name)
        self.synced = False

    @property
    def http(self) -> aiohttp.ClientSession:
        """The probes' HTTP client: no keep-alive, as the kubelet's probes, so each is a new connection."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, ssl=False)
            )
        return self._http

    # ------------------------------------------------------------ start/stop

    async def start(self, *, sync_timeout_s: float = 30.0) -> None:
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        await self.network.prepare()
        await self.logs.start()
        records = load_records(self.pods_dir)
        self.pods.start()
        self.nodes.start()
        await self.pods.wait_synced(sync_timeout_s)
        await self.nodes.wait_synced(sync_timeout_s)
        by_uid = {
            (p.get("metadata") or {}).get("uid"): p
            for p in self.pods.list()
            if placement.is_mine(p, self.config.node_name)
        }
        for record in records:
            pod = by_uid.get(record.uid)
            if pod is None:
                if record.sandbox is not None:
                    self._orphan_ips.add(record.sandbox.ip)
                # Deleted while no agent ran (or never ours): its processes must not linger.
                self._spawn(self._remove_orphan(record))
                continue
            worker = PodWorker(self, pod, record)
            self.workers[record.uid] = worker
            worker.start()
        # Replays the cache as ADDED: pods without a record start here.
        self.pods.add_handler(self._on_pod)
        if self.config.register:
            # Ready only now that the agent runs what is bound to it.
            self.registration.ident.log_port = self.logs.port
            await self.registration.start()
        self.synced = True
        log.info(
            "node %s: %s network, pods from %s, logs on %s; %d pod(s) adopted",
            self.config.node_name,
            self.network.mode,
            self.config.pod_cidr,
            self.logs.url.rsplit("/", 1)[0],
            len(self.workers),
        )

    async def stop(self) -> None:
        self.synced = False
        await self.registration.stop()
        await self.pods.stop()
        await self.nodes.stop()
        await asyncio.gather(*(w.shutdown() for w in list(self.workers.values())))
        if self._tasks:
            # Orphans being ended get their time; a bind in flight does not matter.
            await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_GRACE_S)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.logs.close()
        await self.network.close(remove=self.config.stop_pods_on_exit)
        if self._http is not None:
            await self._http.close()
        with contextlib.suppress(Exception):
            await self.client.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def record_event(
        self,
        pod: Obj,
        event_type: str,
        reason: str,
        message: str,
        container: str = "",
        *,
        init: bool = False,
    ) -> None:
        """Write an Event about `pod` (one of its containers) in the background."""
        kind = "initContainers" if init else "containers"
        field_path = f"spec.{kind}{{{container}}}" if container else ""
        self._spawn(self.events.record(pod, event_type, reason, message, field_path=field_path))

    # ---------------------------------------------------------------- events

    def _on_pod(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        if kind == "DELETED":
            uid = ((old or {}).get("metadata") or {}).get("uid")
            self._finished.discard(uid)
            worker = self.workers.get(uid)
            if worker is not None:
                worker.vanished()
            return
        assert new is not None
        uid = (new.get("metadata") or {}).get("uid")
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(new)
        elif placement.is_mine(new, self.config.node_name):
            if uid in self._finished:
                return
            terminal = (new.get("status") or {}).get("phase") in placement.TERMINAL_PHASES
            if terminal and not (new.get("metadata") or {}).get("deletionTimestamp"):
                return  # finished before this agent knew it, and nothing left to run
            worker = PodWorker(self, new, None)
            self.workers[uid] = worker
            worker.start()
        elif (
            placement.should_bind(new, self.config.node_name)
            and uid not in self._binding
            and placement.sole_ready_node(
                self.config.node_name, self.nodes.list(), time.time(), self.config.node_grace_s
            )
        ):
            self._binding.add(uid)
            self._spawn(self._bind(new))

    async def _bind(self, pod: Obj) -> None:
        namespace, name = _pod_key(pod)
        uid = (pod.get("metadata") or {}).get("uid")
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.config.node_name},
        }
        path = path_for(resource_for("Pod"), namespace, name, "binding")
        try:
            for attempt in range(5):
                try:
                    await self.client.request("POST", path, body=binding)
                    log.info("pod %s/%s: bound to %s", namespace, name, self.config.node_name)
                    return
                except APIUnavailable:
                    await asyncio.sleep(0.2 * 2**attempt)
                except StatusError as err:
                    # 409: another node was faster; 404: deleted meanwhile.
                    if err.code not in (404, 409):
                        log.warning("pod %s/%s: cannot bind: %s", namespace, name, err.message)
                    return
        finally:
            self._binding.discard(uid)

    async def finish_deletion(self, pod: Obj) -> None:
        """Remove a gracefully deleted pod for good, now that its processes are gone."""
        namespace, name = _pod_key(pod)
        uid = (pod.get("metadata") or {}).get("uid")
        self._finished.add(uid)
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": uid},
        }
        path = path_for(resource_for("Pod"), namespace, name)
        for attempt in range(10):
            try:
                await self.client.request("DELETE", path, body=body)
                log.info("pod %s/%s: stopped and removed", namespace, name)
                return
            except StatusError as err:
                if err.code == 404:
                    return  # gone already
                if err.code == 409 and not await self._still_there(path, uid):
                    return  # a new pod of that name took its place
                log.warning("pod %s/%s: cannot remove: %s", namespace, name, err.message)
            except APIUnavailable:
                pass
            await asyncio.sleep(0.2 * 2 ** min(attempt, 5))
        # Let a later event of this pod start a worker that tries again.
        self._finished.discard(uid)
        log.warning("pod %s/%s: stopped, but the API did not take its removal", namespace, name)

    async def _still_there(self, path: str, uid: str | None) -> bool:
        try:
            pod = await self.client.request("GET", path)
        except StatusError as err:
            return err.code != 404
        except APIUnavailable:
            return True
        return (pod.get("metadata") or {}).get("uid") == uid

    async def _remove_orphan(self, record: PodRecord) -> None:
        log.info(
            "node: pod %s/%s (%s) is gone from the API; ending what is left of it",
            record.namespace,
            record.name,
            record.uid,
        )
        for name, crec in record.containers.items():
            if crec.attempt >= 0:
                ref = find_shim(record.attempt_dir(name, crec.attempt))
                if ref is not None:
                    await stop_group(Started(ref), VANISHED_GRACE_S)
        if record.sandbox is not None:
            with contextlib.suppress(NetworkError):
                await self.network.teardown(record.sandbox)
        shutil.rmtree(record.directory, ignore_errors=True)
        if record.sandbox is not None:
            self._orphan_ips.discard(record.sandbox.ip)

    # ------------------------------------------------------------------- IPs

    def allocate_ip(self) -> str:
        """A pod IP no pod of this node holds, nor any pod the API knows of (another node)."""
        used = set(self._orphan_ips)
        for worker in self.workers.values():
            if worker.record is not None and worker.record.sandbox is not None:
                used.add(worker.record.sandbox.ip)
        for pod in self.pods.list():
            status = pod.get("status") or {}
            if status.get("podIP"):
                used.add(status["podIP"])
        ip = ipam.next_free(self.config.pod_cidr, used, self._last_ip)
        if ip is None:
            raise NetworkError(f"no free address left in the pod range {self.config.pod_cidr}")
        self._last_ip = ip
        return ip

    # ------------------------------------------------------------------ logs

    def _locate_log(
        self, namespace: str, name: str, container: str, previous: bool, uid: str | None
    ) -> LogSource:
        for worker in self.workers.values():
            if _pod_key(worker.pod) == (namespace, name) and (uid is None or worker.uid == uid):
                return worker.log_source(container, previous)
        raise LogNotFound(f'pods "{name}" not found', 404)
