"""The local executor: allocations as process groups on this machine, pinned to their GPUs.

This module owns ``LocalExecutor``, the ``Executor`` for a one-machine fleet (``gpupool serve``
on a workstation or one GPU server). For each ``Launch`` it

- maps the placement's (node, accelerator ids) to this machine's devices (``gpus.LocalMachine``)
  and sets ``CUDA_VISIBLE_DEVICES`` to their UUIDs (plain numbers in simulated mode), plus
  ``GPUPOOL_JOB_ID``, ``GPUPOOL_ALLOCATION_ID``, ``GPUPOOL_NODE``, ``GPUPOOL_GPUS`` and
  ``GPUPOOL_PLACEMENT`` (``node:0,1;node2:0,1``);
- starts ``argv`` in a new session, so the whole process group (the job and anything it
  forks) can be signalled and is killed when the leader ends;
- confines it in a bubblewrap sandbox (``sandbox.Sandbox``: its own PID namespace, the service's
  files hidden) as the account ``Launch.run_as`` names, never as root (a root executor given no
  account uses ``gpupool-job``), with only the environment its submitter gave plus the
  platform's variables and a minimal PATH/HOME/LANG: nothing of the service's environment;
- writes stdout and stderr to ``<log_dir>/<allocation>.out`` / ``.err`` (0600, owned by the
  job's account);
- enforces the walltime and ``terminate``'s grace period (SIGTERM to the group, SIGKILL after);
- samples GPU utilisation and memory from NVML every few seconds (``telemetry``).

A daemon monitor thread (``worker.ExecutorWorker``) does the waiting, signalling and sampling,
so no method blocks on a job and walltimes hold even when nobody polls; ``poll`` only drains
the events it queued.

Restarts: every live allocation has a state file in ``state_dir`` (pid, process start time,
walltime deadline, and the exit status once known), written before the process is started
and completed once its pid is known. A new executor on the same ``state_dir`` adopts the
processes that still run (``allocations`` names them, walltime still enforced; a record that
never got its pid is matched to the process carrying its ``GPUPOOL_ALLOCATION_ID``) and
re-reports exits that happened before anyone polled them, so reconcile never relaunches a job
that is still running. An adopted process is no longer our child, so its exit status is read
from the ``<allocation>.status`` file the sandbox's wrapper (``job_init.py``) writes when the
job ends: the true status survives a restart, graceful or SIGKILL. Only a job killed with its
wrapper (SIGKILL of the group) has no status file: it is reported as killed by SIGKILL when
this executor killed it, else as ``exit_code=None``. One window stays open: a job that starts
and ends entirely while no executor runs, before its pid was recorded, looks never started and
is launched again by reconcile.

It must not decide anything: placement comes from the core, and what an exit means for the
job is the loop's business.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpupool.service import identity
from gpupool.service.executors.base import (
    AllocationExited,
    AllocationFailed,
    AllocationStarted,
    ExecutorEvent,
    ExitCause,
    Launch,
)
from gpupool.service.executors.gpus import (
    GpuDevice,
    GpuSample,
    GpuSampler,
    LocalMachine,
    NvmlSampler,
    discover_machine,
    simulated_machine,
    visible_devices,
)
from gpupool.service.executors.podman import (
    PLATFORM_ENV,
    PLATFORM_ENV_PREFIXES,
    PODMAN_ENV,
    Podman,
    container_devices,
    container_name,
    stack_of,
)
from gpupool.service.executors.sandbox import DEFAULT_PATH, Sandbox, SandboxUnavailable
from gpupool.service.executors.worker import ExecutorWorker
from gpupool.service.log_files import file_stem, log_paths

__all__ = ["DEFAULT_INHERITED_ENV", "LocalExecutor", "log_paths"]

log = logging.getLogger("gpupool.executors.local")

#: What a job inherits from the server's environment: nothing. The server's environment holds
#: its database URL and tokens, which a job must not see; a job gets what its submitter gave,
#: the platform's variables and a minimal PATH/HOME/LANG. A site that wants some of its own
#: variables in every job names them in ``inherit_env`` (names ending in ``*`` are prefixes).
DEFAULT_INHERITED_ENV: tuple[str, ...] = ()


def _status_file(state_file: Path) -> Path:
    """Where the sandbox's wrapper records the allocation's exit status."""
    return state_file.with_suffix(".status")


def _read_status(state_file: Path) -> tuple[int | None, int | None] | None:
    """(exit code, signal) the wrapper recorded, or ``None`` if it recorded nothing."""
    try:
        doc = json.loads(_status_file(state_file).read_bytes() or b"null")
    except (OSError, ValueError):
        return None
    if isinstance(doc, dict):
        code, sig = doc.get("exit_code"), doc.get("signal")
        if isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255:
            return code, None
        if isinstance(sig, int) and not isinstance(sig, bool) and 0 < sig < 128:
            return None, sig
    return None


def _open_log(path: Path, acct: identity.Account | None) -> int:
    """A job's log, opened for appending: 0600, owned by the job's account (the service is root)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        if acct is not None:
            os.fchown(fd, acct.uid, acct.gid)
    except OSError:
        os.close(fd)
        raise
    return fd


def _missing_program(program: str, path: str, cwd: Path | None) -> str:
    """Why ``program`` cannot be started (empty if it looks startable), checked before launching
    so that a typo is a failed launch with a reason, not a job that exits 127."""
    if "/" in program:
        target = Path(program) if program.startswith("/") or cwd is None else cwd / program
        if (program.startswith("/") or cwd is not None) and not target.exists():
            return f"cannot start {program!r}: No such file or directory"
        return ""
    if shutil.which(program, path=path) is None:
        return f"cannot start {program!r}: not found on PATH {path}"
    return ""


def _adopted_container(doc: object) -> tuple[str, identity.Account | None] | None:
    """The container of an adopted allocation (its state file's record), to remove at its end."""
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        return None
    name = doc.get("account")
    try:
        return doc["name"], identity.account(name) if isinstance(name, str) else None
    except identity.IdentityError:
        return doc["name"], None  # the account is gone: the service's own storage is tried


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, ``None`` if it is gone or a zombie.

    A pid alone may be reused after a restart; pid plus start time names one process.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ")".
    fields = raw[raw.rfind(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _find_session_leader(allocation_id: str) -> int | None:
    """The pid of the session leader whose environment names ``allocation_id``, if one lives.

    Used only after a crash between recording a launch and learning its pid: the job's
    ``GPUPOOL_ALLOCATION_ID`` is the one mark it is sure to carry.
    """
    mark = f"GPUPOOL_ALLOCATION_ID={allocation_id}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rfind(")") + 2 :].split()
            if int(fields[3]) != pid or fields[0] in ("Z", "X"):
                continue  # not a session leader (the job's children share its environment)
            if entry.stat().st_uid != os.geteuid():
                continue  # not started by us: a job (another account) may forge the variable
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                return pid
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
    return None


@dataclass(slots=True)
class _Proc:
    """One running allocation, as the monitor thread tracks it."""

    allocation_id: str
    job_id: str
    pid: int
    popen: subprocess.Popen[bytes] | None  # None: adopted from an earlier executor
    start_ticks: int | None
    deadline: float | None  # time.monotonic() at which the walltime runs out
    devices: tuple[GpuDevice, ...]
    state_file: Path
    cause: ExitCause | None = None  # set once we decided to stop it
    #: a container job's container and account, removed once the job's group ended
    container: tuple[str, identity.Account | None] | None = None
    kill_at: float | None = None  # time.monotonic() at which SIGKILL follows SIGTERM
    next_sample: float = 0.0


@dataclass(slots=True)
class _Telemetry:
    samples: deque[GpuSample] = field(default_factory=deque)


class LocalExecutor:
    """Runs allocations as local process groups; see the module docstring.

    Give either ``machine`` (e.g. ``gpus.discover_machine()``) or ``simulated_gpus``; with
    neither, NVML discovery decides (a machine without GPUs can still run 0-GPU placements).
    ``clock`` gives wall-clock seconds for event timestamps; deadlines use ``time.monotonic``
    so that a clock step does not kill or spare a job.
    """

    backend = "local"

    def __init__(
        self,
        state_dir: Path,
        *,
        machine: LocalMachine | None = None,
        simulated_gpus: int | None = None,
        walltime_grace_s: float = 30.0,
        tick_s: float = 0.05,
        telemetry_interval_s: float = 5.0,
        telemetry_keep: int = 720,
        sampler: GpuSampler | None = None,
        inherit_env: Iterable[str] = DEFAULT_INHERITED_ENV,
        clock: Callable[[], float] = time.time,
        sandbox: Sandbox | None = None,
        container_dir: Path | None = None,
    ) -> None:
        if machine is None:
            machine = simulated_machine(simulated_gpus) if simulated_gpus else discover_machine()
        self.machine = machine
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.state_dir, 0o700)
        # The state directory holds every job's status file: no job may see it.
        self.sandbox = sandbox if sandbox is not None else Sandbox.create()
        if self.state_dir.resolve() not in self.sandbox.hidden:
            self.sandbox = Sandbox(
                hidden=(*self.sandbox.hidden, self.state_dir.resolve()),
                bwrap=self.sandbox.bwrap,
                unsafe_no_sandbox=self.sandbox.unsafe_no_sandbox,
                python=self.sandbox.python,
            )
        self.sandbox.check()
        #: container jobs (``Launch.image``): rootless Podman, storage beside the state directory
        self._podman = Podman.find(container_dir or self.state_dir.parent / "containers")
        self._container_sandbox = Sandbox(
            hidden=(), bwrap=None, unsafe_no_sandbox=True, python=self.sandbox.python
        )
        self.walltime_grace_s = walltime_grace_s
        self.telemetry_interval_s = telemetry_interval_s
        self._telemetry_keep = telemetry_keep
        self._sampler: GpuSampler | None = sampler
        if self._sampler is None and not machine.simulated and machine.gpus:
            self._sampler = NvmlSampler()
        self._inherit = tuple(inherit_env)
        self._clock = clock
        self._lock = threading.Lock()
        self._procs: dict[str, _Proc] = {}
        self._seen: set[str] = set()
        self._events: list[ExecutorEvent] = []
        self._done_files: dict[str, Path] = {}  # state files to remove once their exit is polled
        self._handed_files: list[Path] = []  # ... removed at the next poll (the exit is committed)
        # Telemetry of running allocations and of the most recently finished ones.
        self._telemetry: OrderedDict[str, deque[GpuSample]] = OrderedDict()
        # The monitor: reaps, signals and samples every tick; reconcile adopts what an earlier
        # executor on this state directory left (at start, and again after a failed tick).
        self._worker = ExecutorWorker(
            "gpupool-local-executor", round=self._tick, reconcile=self._adopt, tick_s=tick_s, log=log
        )
        self._worker.start()

    # -- the protocol -------------------------------------------------------------------

    def launch(self, launch: Launch) -> None:
        """Start ``launch`` (a no-op for an allocation id this executor has seen)."""
        aid = launch.allocation_id
        with self._lock:
            if aid in self._seen:
                return
            self._seen.add(aid)
        problem, devices, node = self._resolve(launch)
        if problem:
            self._fail(aid, problem)
            return
        acct, problem = self._account(launch)
        if not problem and launch.cwd is not None:
            problem = self.sandbox.problem_with_cwd(launch.cwd)
        env = self._environment(launch, devices, node, acct)
        if not problem and launch.image is None:
            problem = _missing_program(launch.argv[0], env["PATH"], launch.cwd)
        container: list[str] | None = None
        if not problem and launch.image is not None:
            # A container job: rootless Podman as the job's account (executors/podman.py).
            container, problem = self._container(launch, devices, acct, env)
        if problem:
            self._fail(aid, problem)
            return
        out_path, err_path = log_paths(launch.log_dir, aid)
        state_file = self._state_file(aid)
        deadline_unix = time.time() + launch.walltime_s if launch.walltime_s > 0 else None
        # Record the intent before the process exists: if this executor dies inside Popen, the
        # next one finds the record and looks for the process by its GPUPOOL_ALLOCATION_ID
        # instead of letting reconcile start the job a second time.
        intent = {"allocation_id": aid, "job_id": launch.job_id, "pid": None, "deadline_unix": deadline_unix,
                  "devices": [d.index for d in devices]}  # fmt: skip
        self._write_doc(state_file, intent)
        fds: list[int] = []
        try:
            launch.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            out = _open_log(out_path, acct)
            fds.append(out)
            err = _open_log(err_path, acct)
            fds.append(err)
            # The wrapper writes the job's exit status here; the file lies in the state
            # directory, which the sandbox hides, and the job never inherits the descriptor.
            status_fd = os.open(_status_file(state_file), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            fds.append(status_fd)
            # The environment travels in a memfd: a command line is readable by every local user.
            env_fd = os.memfd_create("gpupool-job-env", 0)
            fds.append(env_fd)
            os.write(env_fd, json.dumps(env).encode())
            os.lseek(env_fd, 0, os.SEEK_SET)
            # A container is its own sandbox: Podman runs outside bubblewrap (see podman.py).
            sandbox = self.sandbox if container is None else self._container_sandbox
            cmd = sandbox.command(
                launch.argv if container is None else container,
                status_fd=status_fd,
                env_fd=env_fd,
                account=acct,
                writable_root=acct is not None and not identity.is_gpupool_account(acct.name),
                cwd=launch.cwd if container is None else self._podman_home(acct),
            )
            popen = subprocess.Popen(
                # SIGTERM ignored across exec: bubblewrap must outlive the SIGTERM the group gets
                # on terminate, or the sandbox would be orphaned; job_init restores it for the job.
                ["/bin/sh", "-c", 'trap "" TERM; exec "$@"', "gpupool-job", *cmd],
                env={"PATH": DEFAULT_PATH, "GPUPOOL_ALLOCATION_ID": aid},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group: signal the job and its children
                close_fds=True,
                pass_fds=(status_fd, env_fd),
            )
        except (OSError, SandboxUnavailable) as e:
            state_file.unlink(missing_ok=True)
            _status_file(state_file).unlink(missing_ok=True)
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self._fail(aid, f"cannot start {launch.argv[0]!r}: {reason}")
            return
        finally:
            for fd in fds:
                os.close(fd)
        now = time.monotonic()
        proc = _Proc(
            allocation_id=aid,
            job_id=launch.job_id,
            pid=popen.pid,
            popen=popen,
            start_ticks=_start_ticks(popen.pid),
            deadline=now + launch.walltime_s if launch.walltime_s > 0 else None,
            devices=devices,
            state_file=state_file,
            container=None if container is None else (container_name(aid), acct),
        )
        self._write_state(proc)
        with self._lock:
            self._procs[aid] = proc
            self._events.append(AllocationStarted(aid, self._now_ms()))
            if devices:
                self._telemetry[aid] = deque(maxlen=self._telemetry_keep)

    def terminate(self, allocation_id: str, grace_s: float) -> None:
        """SIGTERM the allocation's process group now, SIGKILL it after ``grace_s``.

        A no-op for an allocation that is not running. A second call keeps the earlier kill.
        """
        with self._lock:
            proc = self._procs.get(allocation_id)
            if proc is None:
                return
            if proc.cause is None:
                proc.cause = "terminated"
            self._stop_proc(proc, grace_s, time.monotonic())

    def poll(self) -> list[ExecutorEvent]:
        """Events since the last poll, oldest first."""
        with self._lock:
            events, self._events = self._events, []
            done, self._done_files = self._done_files, {}
            handed, self._handed_files = self._handed_files, list(done.values())
        # An exit is recorded in its state file until the poll *after* the one that handed it
        # out: the loop polls again only once the cycle that recorded the exit committed. A
        # crash before that commit (a SIGKILLed leader) re-reports the exit to the next
        # executor instead of leaving a job the database calls running with no trace, which
        # reconcile would launch a second time.
        for path in handed:
            path.unlink(missing_ok=True)
            _status_file(path).unlink(missing_ok=True)
        return events

    def allocations(self) -> set[str]:
        """Allocations whose processes run now (terminating and adopted ones included)."""
        with self._lock:
            return set(self._procs)

    # -- beyond the protocol --------------------------------------------------------------

    def telemetry(self, allocation_id: str) -> list[GpuSample]:
        """GPU samples of an allocation (running or recently finished), oldest first."""
        with self._lock:
            return list(self._telemetry.get(allocation_id, ()))

    def close(self) -> None:
        """Stop the monitor thread. Running jobs keep running; a new executor adopts them."""
        self._worker.stop()
        if self._sampler is not None:
            self._sampler.close()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- launching --------------------------------------------------------------------------

    def _resolve(self, launch: Launch) -> tuple[str, tuple[GpuDevice, ...], str]:
        """(problem, devices, node): the local devices of the placement, or why there are none.

        A real machine is one node, so a placement over several nodes cannot run here. A
        simulated machine standing in for a fleet runs a multi-node gang as one process: it
        sees the first node's accelerators and the whole placement in ``GPUPOOL_PLACEMENT``.
        """
        if not launch.argv:
            return "empty command line", (), ""
        if len(launch.placement) > 1 and not self.machine.simulated:
            nodes = ", ".join(n for n, _ in launch.placement)
            return f"the local executor runs on one machine; placement spans nodes {nodes}", (), ""
        if not launch.placement:
            return "", (), ""
        first: tuple[GpuDevice, ...] = ()
        for k, (node, ids) in enumerate(launch.placement):
            devs = self.machine.devices(node)
            if devs is None:
                known = ", ".join(n for n, _ in self.machine.nodes) or "none (no GPUs found)"
                return f"node {node!r} is not this machine (its nodes: {known})", (), node
            if any(not 0 <= i < len(devs) for i in ids) or len(set(ids)) != len(ids):
                problem = (
                    f"accelerator ids {list(ids)} are not distinct devices 0..{len(devs) - 1} of {node!r}"
                )
                return problem, (), node
            if k == 0:
                first = tuple(devs[i] for i in ids)
        return "", first, launch.placement[0][0]

    def _account(self, launch: Launch) -> tuple[identity.Account | None, str]:
        """(account, problem): who the job runs as. Never root; ``None``: the service's user."""
        root = os.geteuid() == 0
        name = launch.run_as
        if name is None and not root:
            return None, ""
        try:
            if name is None:
                name = identity.ensure_account(
                    identity.FALLBACK_ACCOUNT, "gpupool jobs without a mapped account"
                )
            acct = identity.account(name)
        except identity.IdentityError as e:
            return None, str(e)
        if acct.uid == 0:
            return None, f"refusing to run a job as {name!r}: it is root"
        if not root and acct.uid != os.geteuid():
            return None, f"cannot run a job as {name!r}: the service is not root"
        return (acct if root else None), ""

    def _environment(
        self, launch: Launch, devices: tuple[GpuDevice, ...], node: str, acct: identity.Account | None
    ) -> dict[str, str]:
        exact = {n for n in self._inherit if not n.endswith("*")}
        prefixes = tuple(n[:-1] for n in self._inherit if n.endswith("*"))
        env = {k: v for k, v in os.environ.items() if k in exact or (prefixes and k.startswith(prefixes))}
        # A minimal base; the submitter's own values win over it.
        env.setdefault("PATH", DEFAULT_PATH)
        env.setdefault("LANG", "C.UTF-8")
        home = acct.home if acct is not None and acct.home not in ("", "/nonexistent") else "/tmp"
        env.setdefault("HOME", home)
        if acct is not None:
            env.setdefault("USER", acct.name)
            env.setdefault("LOGNAME", acct.name)
        env.update(launch.env)
        # Set last: the job must not pick its own devices or identity.
        env["CUDA_VISIBLE_DEVICES"] = visible_devices(devices)
        env["GPUPOOL_JOB_ID"] = launch.job_id
        env["GPUPOOL_ALLOCATION_ID"] = launch.allocation_id
        env["GPUPOOL_NODE"] = node
        env["GPUPOOL_GPUS"] = str(sum(len(ids) for _, ids in launch.placement))
        env["GPUPOOL_PLACEMENT"] = ";".join(f"{n}:{','.join(map(str, ids))}" for n, ids in launch.placement)
        return env

    def _podman_home(self, acct: identity.Account | None) -> Path:
        assert self._podman is not None
        return self._podman.home(acct)

    def _container(
        self,
        launch: Launch,
        devices: tuple[GpuDevice, ...],
        acct: identity.Account | None,
        env: dict[str, str],
    ) -> tuple[list[str] | None, str]:
        """(``podman run`` argv, problem); adds Podman's own variables and the NPUs' to ``env``."""
        assert launch.image is not None
        if self._podman is None:
            return None, (
                f"the job names image {launch.image!r}, but Podman is not installed here "
                "(apt-get install podman)"
            )
        try:
            home = self._podman.home(acct)
        except OSError as e:
            return None, f"cannot prepare the container storage for the job's account: {e}"
        by_stack: dict[str, list[int]] = {}
        for d in devices:
            by_stack.setdefault(stack_of(d.model), []).append(d.index)
        device_args: list[str] = []
        for stack, indices in by_stack.items():
            files, variables = container_devices(stack, indices)
            device_args += [] if self.machine.simulated else files  # a simulated GPU has no device
            env.update(variables)
        names = [*launch.env, *(k for k in env if k.startswith(PLATFORM_ENV_PREFIXES) or k in PLATFORM_ENV)]
        names = [n for n in names if n not in PODMAN_ENV]
        env.update(self._podman.environment(home))
        argv = self._podman.run_argv(
            image=launch.image, argv=launch.argv, name=container_name(launch.allocation_id), home=home,
            env_names=names, devices=device_args, cwd=launch.cwd,
        )  # fmt: skip
        return argv, ""

    def _fail(self, allocation_id: str, reason: str) -> None:
        with self._lock:
            self._events.append(AllocationFailed(allocation_id, self._now_ms(), reason))

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- the monitor thread ---------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        due: list[_Proc] = []
        containers: list[tuple[_Proc, tuple[int | None, int | None]]] = []
        with self._lock:
            for proc in list(self._procs.values()):
                ended = self._reap(proc)
                if ended is not None:
                    if proc.container is not None:
                        containers.append((proc, ended))  # its container goes first, outside the lock
                    else:
                        self._finish(proc, *ended)
                    continue
                if proc.deadline is not None and now >= proc.deadline and proc.cause is None:
                    proc.cause = "walltime"
                    self._stop_proc(proc, self.walltime_grace_s, now)
                if proc.kill_at is not None and now >= proc.kill_at:
                    self._signal(proc, signal.SIGKILL)
                    proc.kill_at = None
                if proc.devices and self._sampler is not None and now >= proc.next_sample:
                    proc.next_sample = now + self.telemetry_interval_s
                    due.append(proc)
        for proc, ended in containers:
            # conmon keeps a container whose podman client was killed: it must be gone before
            # the exit is reported and its accelerators are placed again.
            assert proc.container is not None
            if self._podman is not None:
                self._podman.remove(*proc.container)
            with self._lock:
                self._finish(proc, *ended)
        # NVML calls take a while: sample outside the lock so launch/poll never wait on them.
        if due and self._sampler is not None:
            at = self._now_ms()
            taken = [
                (p.allocation_id, s) for p in due for d in p.devices if (s := self._sampler.sample(d, at))
            ]
            with self._lock:
                for aid, s in taken:
                    if aid in self._telemetry:
                        self._telemetry[aid].append(s)

    def _stop_proc(self, proc: _Proc, grace_s: float, now: float) -> None:
        if grace_s <= 0:
            self._signal(proc, signal.SIGKILL)
            proc.kill_at = None
            return
        if proc.kill_at is None or now + grace_s < proc.kill_at:
            if proc.kill_at is None:
                self._signal(proc, signal.SIGTERM)
            proc.kill_at = now + grace_s

    @staticmethod
    def _signal(proc: _Proc, sig: signal.Signals) -> None:
        # The leader's pid is the group id (new session). While the leader is unreaped (we
        # reap only after signalling the group) or any member lives, the id cannot be reused.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def _reap(self, proc: _Proc) -> tuple[int | None, int | None] | None:
        """(exit code, signal) if the leader ended, else ``None``; kills what it leaves behind."""
        if proc.popen is None:
            if proc.start_ticks is not None and _start_ticks(proc.pid) == proc.start_ticks:
                return None
            # Not our child, so its exit was reaped elsewhere; the group id stays reserved only
            # while members live, which is exactly when this kill has something to do.
            self._signal(proc, signal.SIGKILL)
            return self._adopted_status(proc)
        try:
            # WNOWAIT: look without reaping, so the group id stays ours while we kill the rest.
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                return None
        except ChildProcessError:
            pass  # already reaped (by Popen itself): its returncode below is the status
        self._signal(proc, signal.SIGKILL)  # children that outlive the job must not hold its GPUs
        rc = proc.popen.wait()
        recorded = _read_status(proc.state_file)
        if recorded is not None:
            return recorded  # the job's own status (bubblewrap's would fold a signal into 128+n)
        return (rc, None) if rc >= 0 else (None, -rc)

    @staticmethod
    def _adopted_status(proc: _Proc) -> tuple[int | None, int | None]:
        """How an adopted allocation ended: what its wrapper recorded, else what we know."""
        recorded = _read_status(proc.state_file)
        if recorded is not None:
            return recorded
        # No record: the wrapper died with the job, which only SIGKILL of the group does. If
        # we sent it, say so; otherwise (killed from outside) the status is unknown.
        return (
            (None, int(signal.SIGKILL)) if proc.cause is not None and proc.kill_at is None else (None, None)
        )

    def _finish(self, proc: _Proc, exit_code: int | None, sig: int | None) -> None:
        del self._procs[proc.allocation_id]
        event = AllocationExited(proc.allocation_id, self._now_ms(), exit_code, sig, proc.cause or "exited")
        self._events.append(event)
        self._write_state(proc, event)
        self._done_files[proc.allocation_id] = proc.state_file
        # Keep the telemetry of the last few hundred finished allocations, drop older ones.
        if proc.allocation_id in self._telemetry:
            self._telemetry.move_to_end(proc.allocation_id)
        finished = len(self._telemetry) - len(self._procs)
        while finished > 256:
            oldest = next(iter(self._telemetry))
            if oldest in self._procs:
                self._telemetry.move_to_end(oldest)
                continue
            del self._telemetry[oldest]
            finished -= 1

    # -- state files and adoption ---------------------------------------------------------

    def _state_file(self, allocation_id: str) -> Path:
        return self.state_dir / f"{file_stem(allocation_id)}.json"

    def _write_state(self, proc: _Proc, exited: AllocationExited | None = None) -> None:
        remaining = None if proc.deadline is None else proc.deadline - time.monotonic()
        doc: dict[str, Any] = {
            "allocation_id": proc.allocation_id,
            "job_id": proc.job_id,
            "pid": proc.pid,
            "start_ticks": proc.start_ticks,
            "deadline_unix": None if remaining is None else time.time() + remaining,
            "devices": [d.index for d in proc.devices],
        }
        if proc.container is not None:
            name, acct = proc.container
            doc["container"] = {"name": name, "account": None if acct is None else acct.name}
        if exited is not None:
            doc["exit"] = {
                "at_ms": exited.at_ms,
                "exit_code": exited.exit_code,
                "signal": exited.signal,
                "cause": exited.cause,
            }
        self._write_doc(proc.state_file, doc)

    @staticmethod
    def _write_doc(path: Path, doc: dict[str, Any]) -> None:
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, path)  # atomic: a crash leaves the old file or the new one
        except OSError:
            # The job runs (or ran) all the same; only adoption after a restart is lost.
            log.exception("local executor: cannot write %s", path)

    def _adopt(self) -> None:
        """Take over what an earlier executor on this ``state_dir`` left running or unreported.

        Idempotent (the worker calls it again after a failed tick): allocations this executor
        already knows are skipped."""
        all_devices = {d.index: d for _, devs in self.machine.nodes for d in devs}
        for path in sorted(self.state_dir.glob("*.json")):
            try:
                doc = json.loads(path.read_text())
                aid = str(doc["allocation_id"])
                with self._lock:
                    if aid in self._seen:
                        continue
                found = doc["pid"] if doc["pid"] is not None else _find_session_leader(aid)
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not ours or half-written by a crash: nothing to adopt
            if found is None:
                # Only the intent was recorded and no process carries the allocation's id: the
                # executor died before the fork (or the job came and went in the crash window).
                # Forget it, so that reconcile launches it.
                path.unlink(missing_ok=True)
                continue
            pid = int(found)
            if doc["pid"] is None:
                doc["start_ticks"] = _start_ticks(pid)
            self._seen.add(aid)
            ex = doc.get("exit")
            if ex is not None:
                self._events.append(
                    AllocationExited(aid, int(ex["at_ms"]), ex["exit_code"], ex["signal"], ex["cause"])
                )
                self._done_files[aid] = path
                continue
            ticks = doc.get("start_ticks")
            if ticks is None or _start_ticks(pid) != ticks:
                # It ended while no executor watched: its wrapper recorded the status, unless it
                # was killed with it (then the status is lost, the exit is not).
                code, sig = _read_status(path) or (None, None)
                self._events.append(AllocationExited(aid, self._now_ms(), code, sig, "exited"))
                self._done_files[aid] = path
                continue
            deadline_unix = doc.get("deadline_unix")
            self._procs[aid] = _Proc(
                allocation_id=aid,
                job_id=str(doc.get("job_id", "")),
                pid=pid,
                popen=None,
                start_ticks=int(ticks),
                deadline=None
                if deadline_unix is None
                else time.monotonic() + (float(deadline_unix) - time.time()),
                devices=tuple(all_devices[i] for i in doc.get("devices", []) if i in all_devices),
                state_file=path,
                container=_adopted_container(doc.get("container")),
            )
            if doc["pid"] is None:
                self._write_state(self._procs[aid])  # the intent becomes a full record
            self._telemetry[aid] = deque(maxlen=self._telemetry_keep)
