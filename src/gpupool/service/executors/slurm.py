"""The Slurm executor: a gpupool allocation as a Slurm batch job pinned to the chosen nodes.

This module owns ``SlurmExecutor``, the ``Executor`` for a cluster whose fleet entry says
``backend: slurm``. gpupool decides; Slurm only enacts. For each ``Launch`` it submits one
batch job (``slurm_client.BatchRequest``):

- ``--nodelist`` / ``--nodes`` = the placement's nodes, ``--gres=gpu:<type>:<n>`` per node
  (a heterogeneous job when nodes get different counts), ``--time`` = the walltime,
  ``--job-name=gpupool-<job>``, ``--comment=gpupool:<allocation>``, ``--no-requeue`` (gpupool
  requeues on a new placement itself), stdout/stderr into the same files as the local executor;
- the script exports the job's environment and ``GPUPOOL_*`` and ``exec``-s its argv on the
  first node (multi-node jobs use ``srun`` or ``GPUPOOL_PLACEMENT`` to reach the others).
  Slurm picks the GPU indices on each node; gpupool's accelerator ids count, they do not pin.
- with ``Launch.run_as``, the job runs as that Unix account (root submits with
  ``sbatch --uid/--gid``; ``job_account`` lays out its log and work directories). Without it,
  the job runs as the service's own user: tenants are then not isolated from each other.

One worker thread (``worker.ExecutorWorker``) does all talking to Slurm, so no protocol method ever waits on a
controller: ``launch`` and ``terminate`` queue work, ``poll`` drains events. The worker
submits (retrying a controller that cannot be reached, under the worker's back-off rule, for
``submit_retry_s``),
cancels (``scancel --full --signal=TERM``, then ``SIGKILL`` and ``scancel`` after the grace),
and every ``poll_interval_s`` reads ``squeue -t all --json`` and ``sinfo --json``:

- job states become ``AllocationStarted`` / ``AllocationExited`` (exit code and signal from
  the wait status; ``TIMEOUT`` -> walltime, cancelled by us -> terminated) / ``AllocationFailed``
  (cancelled outside gpupool, ``BOOT_FAIL``, ``OUT_OF_MEMORY``, a pending reason Slurm never
  clears, a submission Slurm refuses: bad GRES, unknown node);
- nodes Slurm marks DOWN or DRAIN become ``NodeChanged`` (the core requeues a down node's
  work); a job that ended ``NODE_FAIL`` is reported as its node going down, never as a failure.

Slurm is the record: the comment names the allocation, so a new executor adopts what an
earlier one submitted (``allocations`` after the first scan), re-reports exits it finds, and a
launch of an allocation that already has a Slurm job is an adoption, never a second job. A job
that vanishes from Slurm (slurmctld lost its state) is resubmitted if it never started, and
reported failed if it had (it may have run partly; running it again is the user's call).
With ``accounting``, a new executor also reads sacct once for jobs that ended while it was
down and left squeue: relaunching one reports its recorded end instead of running it again.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shlex
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gpupool.service import identity
from gpupool.service.container_image import parse_image
from gpupool.service.executors.base import (
    AllocationExited,
    AllocationFailed,
    AllocationStarted,
    ExecutorEvent,
    Launch,
    NodeChanged,
    NodeState,
)
from gpupool.service.executors.job_account import WORK_DIR, JobAccount, prepare_job_dirs
from gpupool.service.executors.local import log_paths
from gpupool.service.executors.slurm_client import (
    BatchComponent,
    BatchRequest,
    SlurmClient,
    SlurmError,
    SlurmJob,
    SlurmNode,
    SlurmOptions,
    client_for,
)
from gpupool.service.executors.worker import DEFAULT_BACKOFF, Backoff, BackoffRule, ExecutorWorker

__all__ = ["SlurmExecutor", "batch_request", "node_state"]

log = logging.getLogger("gpupool.executors.slurm")

PENDING_STATES = frozenset(
    {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
)
ACTIVE_STATES = frozenset(
    {"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESIZING"}
)
#: Pending reasons Slurm itself will never clear: the job is cancelled and reported failed.
HOPELESS_REASONS = frozenset(
    {
        "BadConstraints",
        "DependencyNeverSatisfied",
        "InvalidAccount",
        "InvalidQOS",
        "PartitionTimeLimit",
        "PartitionNodeLimit",
        "AccountNotAllowed",
        "QOSNotAllowed",
    }
)


def node_state(node: SlurmNode) -> NodeState | None:
    """gpupool's view of a Slurm node, ``None`` when Slurm itself does not know yet.

    ``unknown`` and a bare NOT_RESPONDING are what every node looks like for a few seconds
    after slurmctld restarts: reporting them would requeue healthy work.
    """
    if node.state == "down":
        return "down"
    if "DRAIN" in node.flags or node.state in ("drained", "draining", "fail") or "FAIL" in node.flags:
        return "drained"
    if node.state in ("unknown", "future") or "NOT_RESPONDING" in node.flags:
        return None
    return "up"


def slurm_container(launch: Launch, options: SlurmOptions) -> list[str] | str:
    """The prefix that runs the job in its image on this cluster, or why it cannot (ADR 0013).

    With pyxis, one task on the first node under ``srun --container-image`` (the job's
    environment is exported into the container by pyxis; ``--container-workdir`` keeps its
    working directory); without container support, or for an image file pyxis cannot import,
    a reason that fails the job.
    """
    if launch.image is None:
        return []
    ref = parse_image(launch.image)
    if options.containers != "pyxis":
        return (
            f"the job names image {launch.image!r}, but this Slurm cluster declares no container "
            "support (set the cluster's option containers: pyxis where pyxis/enroot is installed)"
        )
    if ref.local:
        return f"pyxis cannot run the image file {ref.path!r}: give a registry reference"
    out = ["srun", "--nodes=1", "--ntasks=1", f"--container-image={ref.pyxis()}"]
    if launch.cwd is not None:
        out += [f"--container-mounts={launch.cwd}", f"--container-workdir={launch.cwd}"]
    return out


def batch_request(
    launch: Launch,
    node_models: Mapping[str, str],
    options: SlurmOptions,
    account: JobAccount | None = None,
) -> BatchRequest | str:
    """The batch job for ``launch``, or why it cannot be one (a node outside the cluster).

    ``account``: the resolved ``launch.run_as``; the job runs as it (``--uid/--gid``), with its
    home and name in the environment and, without a ``cwd``, its private work directory.
    """
    if not launch.argv:
        return "empty command line"
    if not launch.placement:
        return "an empty placement (a Slurm job needs a node)"
    groups: dict[tuple[int, str], list[str]] = {}
    for node, ids in launch.placement:
        model = node_models.get(node)
        if model is None:
            return f"node {node!r} is not a node of this Slurm cluster"
        groups.setdefault((len(ids), options.gres_type(model)), []).append(node)
    comps = tuple(BatchComponent(tuple(nodes), gpus, typ) for (gpus, typ), nodes in groups.items())
    out, err = log_paths(launch.log_dir, launch.allocation_id)
    env = dict(launch.env)
    env["GPUPOOL_JOB_ID"] = launch.job_id
    env["GPUPOOL_ALLOCATION_ID"] = launch.allocation_id
    env["GPUPOOL_GPUS"] = str(sum(len(ids) for _, ids in launch.placement))
    env["GPUPOOL_PLACEMENT"] = ";".join(f"{n}:{','.join(map(str, ids))}" for n, ids in launch.placement)
    lines = ["#!/bin/bash", "# gpupool allocation " + launch.allocation_id.replace("\n", " ")]
    if account is not None:
        # sbatch exports its own (root's) HOME and USER: the job's are its account's.
        env.update(HOME=account.home, USER=account.name, LOGNAME=account.name)
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    lines.append('export GPUPOOL_NODE="${SLURMD_NODENAME:-$(hostname)}"')
    container = slurm_container(launch, options)
    if isinstance(container, str):
        return container
    lines.append("exec " + shlex.join([*container, *launch.argv]))
    return BatchRequest(
        name=f"gpupool-{launch.job_id}",
        comment=options.comment_prefix + launch.allocation_id,
        script="\n".join(lines) + "\n",
        components=comps,
        stdout=str(out),
        stderr=str(err),
        chdir=str(launch.cwd or (launch.log_dir / WORK_DIR if account else launch.log_dir)),
        time_s=math.ceil(launch.walltime_s) if launch.walltime_s > 0 else 0,
        uid=account.uid if account else None,
        gid=account.gid if account else None,
    )


@dataclass(slots=True)
class _Alloc:
    """One allocation as the worker tracks it."""

    aid: str
    launch: Launch | None  # None: adopted from Slurm after a restart
    phase: str  # "queued" (not yet in Slurm), "submitted" (in Slurm), "done"
    queued_at: float = 0.0  # monotonic: first submission try
    slurm_id: int | None = None
    submitted_at: float = 0.0  # monotonic
    unsure_since: float | None = None  # a submission whose outcome is unknown (timed out)
    started: bool = False
    terminate: bool = False
    grace_s: float = 0.0
    kill_at: float | None = None
    missing: int = 0
    hopeless_since: float | None = None
    tries: int = 0
    #: False for a job adopted already ended (e.g. after a restart): its NODE_FAIL is old
    #: news, which must not take down a node that has been back for minutes
    seen_live: bool = True


class SlurmExecutor:
    """Runs allocations as Slurm jobs on one cluster; see the module docstring.

    ``nodes`` maps the cluster's node names (as in the fleet file, which must be Slurm's
    NodeNames) to their gpupool model. ``client`` replaces the transport (tests); by default
    the options pick the CLI or slurmrestd. The first scan happens in the constructor, so
    ``allocations`` is right for reconcile as soon as the executor exists.
    """

    backend = "slurm"

    def __init__(
        self,
        cluster: str,
        nodes: Mapping[str, str],
        options: SlurmOptions | Mapping[str, str] | None = None,
        *,
        client: SlurmClient | None = None,
        clock: Callable[[], float] = time.time,
        tick_s: float = 0.05,
        start: bool = True,
        backoff: BackoffRule = DEFAULT_BACKOFF,
    ) -> None:
        self.cluster = cluster
        self.nodes = dict(nodes)
        if isinstance(options, SlurmOptions):
            self.options = options
        else:
            self.options = SlurmOptions.parse(options or {})
        self.client: SlurmClient = client if client is not None else client_for(self.options)
        self._clock = clock
        self._lock = threading.Lock()
        self._allocs: dict[str, _Alloc] = {}
        self._seen: set[str] = set()
        self._finished: set[str] = set()  # final event handed out; still listed by squeue
        self._events: list[ExecutorEvent] = []
        self._submits: deque[str] = deque()
        self._cancels: deque[str] = deque()
        self._reported: dict[str, NodeState] = {}
        self._synced = False
        self._last_ok_scan = -math.inf  # monotonic start of the last scan that worked
        self._next_scan = 0.0
        self._retry_at = 0.0
        #: Submissions the controller did not answer wait under the worker's one back-off rule.
        self._submit_backoff = Backoff(backoff)
        self._scan_error: str = ""
        self._warned_root = False
        # Reconcile (a scan: adopt what Slurm runs for us) happens in start, so allocations()
        # is right as soon as the executor exists; and again after a failed worker round.
        self._worker = ExecutorWorker(
            f"gpupool-slurm-{cluster}", round=self.step, reconcile=self._reconcile, tick_s=tick_s,
            backoff=Backoff(backoff), log=log,
        )  # fmt: skip
        self._worker.start(thread=False)
        #: gpupool jobs sacct says ended, that squeue no longer lists: the restart's record
        self._history: dict[str, SlurmJob] = self._ended_in_accounting()
        if start:
            self._worker.start()

    # -- the protocol -------------------------------------------------------------------

    def launch(self, launch: Launch) -> None:
        """Queue a submission (a no-op for an allocation id seen before, or found in Slurm).

        An allocation whose Slurm job ended while the service was down, and is known only to
        accounting now, is not run again: its end is reported as sacct recorded it.
        """
        aid = launch.allocation_id
        with self._lock:
            if aid in self._seen:
                return
            self._seen.add(aid)
            ended = self._history.pop(aid, None)
            if ended is None:
                self._allocs[aid] = _Alloc(aid, launch, "queued", queued_at=time.monotonic())
                self._submits.append(aid)
                self._worker.wake()
                return
        a = _Alloc(aid, launch, "done", slurm_id=ended.job_id, started=True, seen_live=False)
        event = self._final(a, ended, {})
        if event is None:  # NODE_FAIL long ago: no node to report now, and it did not finish
            at = ended.end_s * 1000 if ended.end_s else self._now_ms()
            event = AllocationFailed(aid, at, f"Slurm job {ended.job_id} lost its node (NODE_FAIL)")
        log.info(
            "slurm %s: allocation %s ended while gpupool was down (Slurm job %d, %s in sacct)",
            self.cluster,
            aid,
            ended.job_id,
            ended.state,
        )
        self._emit(event)

    def terminate(self, allocation_id: str, grace_s: float) -> None:
        """Cancel the allocation's Slurm job: TERM now, KILL after ``grace_s``; never blocks."""
        with self._lock:
            a = self._allocs.get(allocation_id)
            if a is None or a.phase == "done":
                return
            if a.phase == "queued" and a.unsure_since is None:
                # Never reached Slurm: nothing to cancel, nothing will be reported.
                a.phase = "done"
                del self._allocs[allocation_id]
                return
            if a.terminate:
                if a.kill_at is not None:
                    a.kill_at = min(a.kill_at, time.monotonic() + max(0.0, grace_s))
                return
            a.terminate, a.grace_s = True, max(0.0, grace_s)
            self._cancels.append(allocation_id)
            self._worker.wake()

    def poll(self) -> list[ExecutorEvent]:
        with self._lock:
            events, self._events = self._events, []
        return events

    def allocations(self) -> set[str]:
        with self._lock:
            return {aid for aid, a in self._allocs.items() if a.phase != "done"}

    # -- beyond the protocol --------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """Whether a scan has worked since the start (before that, nothing is submitted)."""
        return self._synced

    def slurm_job_id(self, allocation_id: str) -> int | None:
        with self._lock:
            a = self._allocs.get(allocation_id)
            return a.slurm_id if a is not None else None

    def close(self) -> None:
        """Stop the worker. Slurm jobs keep running; a new executor adopts them."""
        self._worker.stop(timeout_s=self.options.command_timeout_s * 3)
        closer = getattr(self.client, "close", None)
        if callable(closer):
            closer()

    def __enter__(self) -> SlurmExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def step(self) -> None:
        """One round of the worker (tests drive an executor built with ``start=False``)."""
        now = time.monotonic()
        if now >= self._next_scan:
            self._next_scan = now + self.options.poll_interval_s
            self._scan()
        self._work_submits(now)
        self._work_cancels(now)
        self._escalate(now)

    # -- the worker ---------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Read Slurm's state now (the next round scans whatever the poll interval says)."""
        self._next_scan = time.monotonic() + self.options.poll_interval_s
        self._scan()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _emit(self, event: ExecutorEvent) -> None:
        with self._lock:
            self._events.append(event)

    def _fail(self, a: _Alloc, reason: str) -> None:
        log.warning("slurm %s: allocation %s failed: %s", self.cluster, a.aid, reason)
        with self._lock:
            a.phase = "done"
            self._allocs.pop(a.aid, None)
            self._finished.add(a.aid)  # a Slurm job still listed for it is not adopted again
            self._events.append(AllocationFailed(a.aid, self._now_ms(), reason))

    def _work_submits(self, now: float) -> None:
        if not self._synced or now < self._retry_at:
            return  # dedupe needs one good look at Slurm first
        while True:
            with self._lock:
                if not self._submits:
                    return
                aid = self._submits[0]
                a = self._allocs.get(aid)
                if a is None or a.phase != "queued":
                    self._submits.popleft()
                    continue
                if a.unsure_since is not None and self._last_ok_scan <= a.unsure_since:
                    return  # an unanswered sbatch may have created it: look before trying again
                if a.terminate:
                    # Terminated before it reached Slurm (a scan since says so): drop it.
                    self._submits.popleft()
                    a.phase = "done"
                    del self._allocs[aid]
                    continue
                # Until sbatch answers, the job may or may not exist: terminate must wait.
                a.unsure_since = time.monotonic()
            assert a.launch is not None
            unmapped = self._unmapped(a.launch)
            if unmapped:
                with self._lock:
                    self._submits.popleft()
                self._fail(a, unmapped)
                continue
            account = JobAccount.lookup(a.launch.run_as) if a.launch.run_as is not None else None
            if isinstance(account, str):
                with self._lock:
                    self._submits.popleft()
                self._fail(a, f"cannot run on Slurm cluster {self.cluster}: {account}")
                continue
            req = batch_request(a.launch, self.nodes, self.options, account)
            if isinstance(req, str):
                with self._lock:
                    self._submits.popleft()
                self._fail(a, f"cannot submit to Slurm cluster {self.cluster}: {req}")
                continue
            why = self._prepare(a.launch, account)
            if why:
                with self._lock:
                    self._submits.popleft()
                self._fail(a, why)
                continue
            a.tries += 1
            try:
                job_id = self.client.submit(req)
            except SlurmError as e:
                if (
                    e.transient
                    and time.monotonic() - a.queued_at < self.options.submit_retry_s
                    and not a.terminate
                ):
                    a.unsure_since = time.monotonic()
                    delay = self._submit_backoff.failed()
                    self._retry_at = time.monotonic() + delay
                    log.warning(
                        "slurm %s: submitting %s failed (try %d, again in %.1f s): %s",
                        self.cluster,
                        aid,
                        a.tries,
                        delay,
                        e,
                    )
                    return
                with self._lock:
                    self._submits.popleft()
                self._fail(a, f"Slurm refused the job: {e}")
                continue
            self._submit_backoff.succeeded()
            with self._lock:
                self._submits.popleft()
                if a.phase == "queued":
                    a.phase, a.slurm_id, a.submitted_at, a.unsure_since = "submitted", job_id, now, None
            log.info("slurm %s: allocation %s is Slurm job %d", self.cluster, aid, job_id)

    def _unmapped(self, launch: Launch) -> str | None:
        """Why a job whose account is gpupool's own per-project one may not run here, if so.

        Those accounts are made with ``useradd`` on the service's host when the identity map
        names no account for a job. A compute node that does not know the uid cannot start the
        job (slurmd looks it up), and slurmdbd has no association for it: unless the site says
        it provisions them (``project_accounts``), the job is refused before anything reaches
        Slurm, naming what to map.
        """
        name = launch.run_as
        if name is None or not identity.is_gpupool_account(name) or self.options.project_accounts:
            return None
        return (
            f"cannot run on Slurm cluster {self.cluster}: no Unix account is mapped for this job "
            f"(its project's own account {name!r} exists only on the service's host); map the "
            "job's user or project to a site account in the accounts file (--accounts), or set "
            "the cluster's option project_accounts: true if the site provisions gpupool's "
            "per-project accounts on its nodes"
        )

    def _prepare(self, launch: Launch, account: JobAccount | None) -> str | None:
        """Make the job's log (and, for a mapped account, work) directory; why not, if not."""
        if account is None:
            if os.geteuid() == 0 and not self._warned_root:
                # No identity map: the job is the service's user, here root. Said once.
                self._warned_root = True
                log.warning(
                    "slurm %s: jobs without a mapped account run as root (the service's user); "
                    "map gpupool users to Unix accounts to run them as their owners",
                    self.cluster,
                )
            try:
                launch.log_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                return f"cannot create the log directory {launch.log_dir}: {e.strerror or e}"
            return None
        try:
            prepare_job_dirs(launch.log_dir, log_paths(launch.log_dir, launch.allocation_id), account)
        except OSError as e:
            return f"cannot prepare the job's directories for {account.name!r}: {e}"
        return None

    def _work_cancels(self, now: float) -> None:
        while True:
            with self._lock:
                if not self._cancels:
                    return
                aid = self._cancels[0]
                a = self._allocs.get(aid)
                if a is None or a.phase == "done":
                    self._cancels.popleft()
                    continue
                if a.slurm_id is None:
                    return  # its submission is still unsure: cancel once a scan finds it
                job_id, started, grace = a.slurm_id, a.started, a.grace_s
            try:
                if started and grace > 0:
                    self.client.cancel(job_id, "TERM")
                    a.kill_at = time.monotonic() + grace
                else:
                    self.client.cancel(job_id)
            except SlurmError as e:
                log.warning(
                    "slurm %s: cancelling job %d (%s) failed, will retry: %s", self.cluster, job_id, aid, e
                )
                return
            log.info(
                "slurm %s: cancelled job %d (%s)%s",
                self.cluster,
                job_id,
                aid,
                " with TERM" if started else "",
            )
            with self._lock:
                self._cancels.popleft()

    def _escalate(self, now: float) -> None:
        with self._lock:
            due = [a for a in self._allocs.values() if a.kill_at is not None and now >= a.kill_at]
        for a in due:
            assert a.slurm_id is not None
            try:
                self.client.cancel(a.slurm_id, "KILL")
                self.client.cancel(a.slurm_id)
            except SlurmError as e:
                log.warning("slurm %s: killing job %d failed, will retry: %s", self.cluster, a.slurm_id, e)
                continue
            a.kill_at = None

    # -- scanning -----------------------------------------------------------------------

    def _scan(self) -> None:
        started = time.monotonic()
        try:
            jobs = self.client.jobs()
            nodes = self.client.nodes()
        except SlurmError as e:
            if str(e) != self._scan_error:  # say it once per kind of trouble, not every second
                log.warning("slurm %s: cannot read the controller's state: %s", self.cluster, e)
            self._scan_error = str(e)
            return
        if self._scan_error:
            log.info("slurm %s: the controller answers again", self.cluster)
            self._scan_error = ""
        states = {n.name: s for n in nodes if n.name in self.nodes and (s := node_state(n)) is not None}
        ours = self._ours(jobs)
        vanished: list[_Alloc] = []
        with self._lock:
            for aid, job in ours.items():
                a = self._allocs.get(aid)
                if a is None:
                    if aid in self._finished:
                        continue
                    a = _Alloc(aid, None, "submitted", slurm_id=job.job_id, submitted_at=started)
                    a.seen_live = job.state in ACTIVE_STATES | PENDING_STATES
                    self._allocs[aid] = a
                    self._seen.add(aid)
                    log.info("slurm %s: adopted job %d (%s, %s)", self.cluster, job.job_id, aid, job.state)
                elif a.phase == "queued":
                    # An sbatch that timed out did create it, or a relaunch found it: adopt.
                    a.phase, a.slurm_id, a.submitted_at, a.unsure_since = (
                        "submitted",
                        job.job_id,
                        started,
                        None,
                    )
                elif a.slurm_id is None:
                    a.slurm_id = job.job_id
                a.missing = 0
            for a in self._allocs.values():
                if a.phase == "submitted" and a.aid not in ours and a.submitted_at < started:
                    a.missing += 1
                    if a.missing >= 2:
                        vanished.append(a)
            self._finished &= set(ours)
        for aid, job in ours.items():
            a2 = self._allocs.get(aid)
            if a2 is not None and a2.phase == "submitted":
                self._apply(a2, job, states)
        if vanished:
            self._vanished(vanished, states)
        # Nodes last: a job that completed just before its node went down is reported
        # finished before the node's news, or the core would requeue it and run it twice.
        self._report_nodes(states, {n.name: n.reason for n in nodes})
        self._last_ok_scan = started
        self._synced = True

    def _ours(self, jobs: list[SlurmJob]) -> dict[str, SlurmJob]:
        """gpupool's jobs by allocation id; of two with one id the live (then newest) one."""
        prefix = self.options.comment_prefix
        out: dict[str, SlurmJob] = {}
        for j in sorted(jobs, key=lambda j: j.job_id):
            if not j.comment.startswith(prefix):
                continue  # someone else's job on this cluster: never touched
            aid = j.comment[len(prefix) :]
            old = out.get(aid)
            if old is None or old.state not in ACTIVE_STATES | PENDING_STATES:
                out[aid] = j
        return out

    def _ended_in_accounting(self) -> dict[str, SlurmJob]:
        """gpupool's jobs that ended within the lookback and that squeue no longer lists.

        After a restart longer than ``MinJobAge``, squeue has forgotten jobs that ended while
        the service was down; the database still calls them running, and reconcile would run
        them again. Read once at start; a failure is logged (relaunch then decides).
        """
        o = self.options
        if not o.accounting or o.accounting_lookback_s <= 0:
            return {}
        try:
            jobs = self.client.ended_since(self._clock() - o.accounting_lookback_s)
        except SlurmError as e:
            log.warning("slurm %s: cannot read accounting for jobs ended while down: %s", self.cluster, e)
            return {}
        with self._lock:
            known = set(self._seen)
        out: dict[str, SlurmJob] = {}
        for j in sorted(jobs, key=lambda j: j.job_id):
            if not j.comment.startswith(o.comment_prefix) or j.state in ACTIVE_STATES | PENDING_STATES:
                continue
            aid = j.comment[len(o.comment_prefix) :]
            if aid not in known:
                out[aid] = j  # the newest Slurm job of an allocation wins
        return out

    def _report_nodes(self, states: Mapping[str, NodeState], reasons: Mapping[str, str]) -> None:
        at = self._now_ms()
        for name, st in sorted(states.items()):
            if self._reported.get(name, "up") != st:
                self._reported[name] = st
                reason = reasons.get(name, "")
                log.warning(
                    "slurm %s: node %s is %s in Slurm (%s)", self.cluster, name, st, reason or "no reason"
                )
                self._emit(NodeChanged(name, at, st, f"Slurm: {reason}" if reason else "Slurm"))

    def _apply(self, a: _Alloc, job: SlurmJob, states: Mapping[str, NodeState]) -> None:
        """Turn one job's Slurm state into events."""
        now = time.monotonic()
        if job.state in PENDING_STATES:
            if job.reason in HOPELESS_REASONS:
                a.hopeless_since = a.hopeless_since or now
                if now - a.hopeless_since >= self.options.hopeless_after_s:
                    with contextlib.suppress(SlurmError):
                        self.client.cancel(job.job_id)
                    self._fail(a, f"Slurm cannot run job {job.job_id}: {job.reason}")
            else:
                a.hopeless_since = None
            return
        if job.start_s and not a.started:
            a.started = True
            self._emit(AllocationStarted(a.aid, job.start_s * 1000))
        if job.state in ACTIVE_STATES:
            return
        event = self._final(a, job, states)
        with self._lock:
            a.phase = "done"
            self._allocs.pop(a.aid, None)
            self._finished.add(a.aid)
            if event is not None:
                self._events.append(event)

    def _final(self, a: _Alloc, job: SlurmJob, states: Mapping[str, NodeState]) -> ExecutorEvent | None:
        at = job.end_s * 1000 if job.end_s else self._now_ms()
        st = job.state
        if st == "NODE_FAIL":
            # The node died under it: that is the node's news, and the core requeues its work.
            for node in job.nodes if a.seen_live else ():
                if node in self.nodes and self._reported.get(node, "up") != "down":
                    self._emit(NodeChanged(node, at, "down", f"Slurm: job {job.job_id} ended NODE_FAIL"))
                    now_state = states.get(node, "up")
                    self._reported[node] = "down"
                    if now_state != "down":  # it is back already: say so after the requeue
                        self._reported[node] = now_state
                        self._emit(NodeChanged(node, at, now_state, "Slurm"))
            log.warning(
                "slurm %s: job %d (%s) lost its node: requeued by gpupool", self.cluster, job.job_id, a.aid
            )
            return None
        if a.terminate:  # we asked it to stop: however it ended, it was terminated
            return AllocationExited(a.aid, at, job.exit_code, job.signal, "terminated")
        if st == "COMPLETED":
            return AllocationExited(a.aid, at, job.exit_code, job.signal)
        if st == "FAILED":
            return AllocationExited(a.aid, at, job.exit_code, job.signal)
        if st in ("TIMEOUT", "DEADLINE"):
            return AllocationExited(a.aid, at, job.exit_code, job.signal, "walltime")
        if st == "CANCELLED":
            return AllocationFailed(a.aid, at, f"Slurm job {job.job_id} was cancelled outside gpupool")
        if st == "OUT_OF_MEMORY":
            return AllocationFailed(a.aid, at, f"Slurm job {job.job_id} ran out of memory")
        return AllocationFailed(a.aid, at, f"Slurm job {job.job_id} ended {st} {job.reason}".strip())

    def _vanished(self, gone: list[_Alloc], states: Mapping[str, NodeState]) -> None:
        """Jobs Slurm no longer lists: accounting knows how they ended, else judge by start."""
        found: dict[int, SlurmJob] = {}
        if self.options.accounting:
            try:
                found = {j.job_id: j for j in self.client.accounting(a.slurm_id for a in gone if a.slurm_id)}
            except SlurmError as e:
                log.warning("slurm %s: sacct failed: %s", self.cluster, e)
                return  # ask again next scan rather than guess
        for a in gone:
            job = found.get(a.slurm_id or -1)
            if job is not None and job.state not in PENDING_STATES | ACTIVE_STATES:
                self._apply(a, job, states)
                continue
            if not a.started and a.launch is not None:
                # It never ran, so running it now cannot run it twice.
                log.warning(
                    "slurm %s: job %s (%s) vanished before it started: submitting again",
                    self.cluster,
                    a.slurm_id,
                    a.aid,
                )
                with self._lock:
                    a.phase, a.slurm_id, a.missing, a.queued_at = "queued", None, 0, time.monotonic()
                    self._submits.append(a.aid)
                continue
            self._fail(a, f"Slurm no longer knows job {a.slurm_id} (slurmctld lost it after it started)")
