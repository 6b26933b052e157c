"""Talking to one Slurm controller: submit, list jobs and nodes, cancel, look up accounting.

This module owns the wire side of the Slurm executor, so that ``slurm.py`` deals only in
allocations and events:

- ``SlurmOptions``: a cluster's ``options:`` from the fleet file, checked (unknown keys refused);
- ``BatchRequest``: one gpupool allocation as a Slurm batch job (pinned nodes, GRES per node;
  a placement with unequal accelerators per node becomes a heterogeneous job, one component
  per distinct count, since ``--gres`` is per node);
- ``SlurmJob`` / ``SlurmNode``: what the controller says, normalised from the OpenAPI
  v0.0.38 documents that both ``squeue --json`` / ``sinfo --json`` (Slurm 22.05) and
  slurmrestd return, so one parser serves both transports;
- ``SlurmCli`` (``sbatch --parsable`` with ``SLURM_CONF`` exported, ``squeue``/``sinfo --json``,
  ``scancel``, ``sacct -P``) and ``SlurmRest`` (slurmrestd with a JWT read from a file on every
  request, so a rotated token is picked up);
- ``SlurmError``: every failure, with ``transient`` telling a controller that cannot be reached
  now (retry later) from a request Slurm refuses (bad GRES, unknown node: fail the job).

Nothing here keeps state between calls or runs threads; every call is bounded by a timeout.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gpupool.fleetfile.hostlist import expand_hostlist

__all__ = [
    "BatchRequest",
    "SlurmCli",
    "SlurmClient",
    "SlurmError",
    "SlurmJob",
    "SlurmNode",
    "SlurmOptions",
    "SlurmRest",
    "client_for",
    "parse_jobs",
    "parse_nodes",
]

#: What a job inherits from the server's environment when it is submitted (the server's own
#: environment holds its database URL and tokens, which a job must not see).
SUBMIT_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "LD_LIBRARY_PATH")

#: slurmrestd API versions without ``required_nodes`` for submissions (Slurm 22.05 and older)
OLD_REST_APIS = frozenset({"v0.0.36", "v0.0.37", "v0.0.38"})

#: stderr of a Slurm command that means "try again later", not "your request is wrong".
_TRANSIENT = re.compile(
    r"unable to contact slurm controller|socket timed out|temporarily unable|connection refused|"
    r"zero bytes were transmitted|communication connection failure|backup controller|"
    r"slurm_load_jobs|slurm_load_node|unspecified error|timed out|could not establish|"
    r"connection reset|broken pipe",
    re.IGNORECASE,
)


class SlurmError(RuntimeError):
    """A Slurm call that did not work. ``transient``: the controller may work later."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class SlurmOptions(BaseModel):
    """A Slurm cluster's ``options:`` in the fleet file (all optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the cluster's slurm.conf; exported as ``SLURM_CONF`` to every command
    slurm_conf: str = ""
    #: where sbatch, squeue, sinfo, scancel and sacct are (empty: ``PATH``)
    bin_dir: str = ""
    partition: str = ""
    account: str = ""
    qos: str = ""
    #: ``--mem`` per node (``1G``); empty leaves the cluster's default (often the whole node)
    mem: str = ""
    cpus_per_gpu: int = Field(default=0, ge=0)
    #: the GRES name and the type per gpupool model: ``H100=h100,H200=h200``; a model not
    #: named uses its name in lower case
    gres_name: str = "gpu"
    gres_types: str = ""
    #: more sbatch arguments, shell-quoted (``--reservation=x --constraint=y``)
    sbatch_args: str = ""
    #: slurmrestd instead of the CLI: base URL, a file holding the JWT, the user it names
    rest_url: str = ""
    jwt_token_file: str = ""
    rest_user: str = ""
    rest_api: str = "v0.0.39"
    #: whether ``sacct`` (slurmdbd) answers for jobs that left squeue
    accounting: bool = False
    #: how far back a starting executor asks ``sacct`` for gpupool jobs that ended while the
    #: service was down (and left squeue after ``MinJobAge``); 0: not at all
    accounting_lookback_s: float = Field(default=7 * 86_400.0, ge=0)
    #: the executor's pace and patience
    poll_interval_s: float = Field(default=1.0, gt=0)
    command_timeout_s: float = Field(default=30.0, gt=0)
    submit_retry_s: float = Field(default=600.0, ge=0)
    #: a pending job stuck on a reason Slurm will never clear is cancelled after this long
    hopeless_after_s: float = Field(default=30.0, ge=0)
    #: the comment that marks a Slurm job as gpupool's: ``<prefix><allocation id>``
    comment_prefix: str = Field(default="gpupool:", min_length=1)
    #: whether this cluster's nodes know gpupool's per-project accounts (``gpupool-<hash>``,
    #: which a root service gives a job no identity-map entry names): the site provisions them
    #: with the same names and uids on every node (shared NSS, e.g. LDAP), or the nodes are
    #: this host. Off (the default): such a job is refused, naming the missing mapping, rather
    #: than submitted for a uid the compute nodes and slurmdbd do not know.
    project_accounts: bool = False
    #: the site's container support: ``pyxis`` (NVIDIA's SPANK plugin with enroot: jobs that
    #: name an image run under ``srun --container-image``); empty: none, and such jobs are
    #: refused with that reason (ADR 0013)
    containers: Literal["", "pyxis"] = ""

    @model_validator(mode="after")
    def _rest_can_pin(self) -> SlurmOptions:
        # Found against a real slurmrestd 22.05: v0.0.36-v0.0.38 answer 'Disabled key:
        # "required_nodes"', so a job cannot be pinned to the nodes gpupool chose.
        if self.rest_url and self.rest_api in OLD_REST_APIS:
            raise ValueError(
                f"rest_api {self.rest_api} (Slurm 22.05 and older) cannot pin a job to nodes "
                "('required_nodes' is a disabled key there): leave rest_url empty to submit "
                "through the CLI, or use rest_api v0.0.39 or later"
            )
        return self

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> SlurmOptions:
        """From the fleet file's strings (``"true"``, ``"30"``); a clear ``ValueError`` if wrong."""
        try:
            return cls.model_validate(dict(options))
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            raise ValueError(f"slurm options: {problems}") from None

    def gres_type(self, model: str) -> str:
        for pair in filter(None, (p.strip() for p in self.gres_types.split(","))):
            name, _, typ = pair.partition("=")
            if name.strip() == model:
                return typ.strip()
        return model.lower()


@dataclass(frozen=True, slots=True)
class BatchComponent:
    """Nodes that each get ``gpus`` accelerators of GRES type ``gres_type``."""

    nodes: tuple[str, ...]
    gpus: int
    gres_type: str


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One allocation as a Slurm batch job (see ``components`` for heterogeneous jobs)."""

    name: str
    comment: str
    script: str
    components: tuple[BatchComponent, ...]
    stdout: str
    stderr: str
    chdir: str
    time_s: int = 0  # 0: the partition's limit
    #: run as this Unix uid and gid (``sbatch --uid/--gid``, the submitter being root);
    #: ``None``: as the submitting user
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True, slots=True)
class SlurmJob:
    """A Slurm job as squeue (or sacct) reports it; heterogeneous components folded into one."""

    job_id: int
    comment: str
    name: str
    state: str  # PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, ...
    reason: str
    exit_status: int  # the wait status: exit code << 8 | signal
    nodes: tuple[str, ...]
    start_s: int
    end_s: int

    @property
    def exit_code(self) -> int | None:
        return None if self.signal else (self.exit_status >> 8) & 0xFF

    @property
    def signal(self) -> int | None:
        return (self.exit_status & 0x7F) or None


@dataclass(frozen=True, slots=True)
class SlurmNode:
    name: str
    state: str  # the base state in lower case: idle, mixed, allocated, down, unknown, ...
    flags: tuple[str, ...] = ()
    reason: str = ""
    gres: str = ""
    partitions: tuple[str, ...] = field(default=())


class SlurmClient(Protocol):
    """What the executor needs from a controller; every method raises only ``SlurmError``."""

    def submit(self, request: BatchRequest) -> int: ...
    def jobs(self) -> list[SlurmJob]: ...
    def nodes(self) -> list[SlurmNode]: ...
    def cancel(self, job_id: int, signal: str | None = None) -> None: ...
    def accounting(self, job_ids: Iterable[int]) -> list[SlurmJob]: ...
    def ended_since(self, since_s: float) -> list[SlurmJob]: ...


# -- parsing the OpenAPI v0.0.38 documents ---------------------------------------------------

# ``expand_hostlist`` (imported above) lives in gpupool.fleetfile.hostlist, below the service.


def _errors(doc: Mapping[str, Any], what: str) -> None:
    errs = doc.get("errors") or []
    if errs:
        first = errs[0] if isinstance(errs[0], dict) else {"error": str(errs[0])}
        text = first.get("description") or first.get("error") or str(first)
        raise SlurmError(f"{what}: {text} ({first.get('source', 'slurm')})", transient=True)


def _int(value: Any) -> int:
    # v0.0.38 writes plain integers; later versions wrap them as {"set", "number"}.
    if isinstance(value, dict):
        value = value.get("number", 0) if value.get("set", True) else 0
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def parse_jobs(doc: Mapping[str, Any]) -> list[SlurmJob]:
    """Jobs from a ``squeue --json`` / ``GET /slurm/v0.0.38/jobs`` document."""
    _errors(doc, "listing jobs")
    raw = doc.get("jobs")
    if not isinstance(raw, list):
        raise SlurmError("listing jobs: the answer has no job list", transient=True)
    groups: dict[int, list[Mapping[str, Any]]] = {}
    for j in raw:
        if not isinstance(j, dict) or "job_id" not in j:
            raise SlurmError("listing jobs: a job entry without job_id", transient=True)
        het = _int(j.get("het_job_id"))
        groups.setdefault(het or _int(j["job_id"]), []).append(j)
    out = []
    for leader_id, parts in groups.items():
        parts.sort(key=lambda p: _int(p.get("het_job_offset")))
        lead = parts[0]
        state = lead.get("job_state")
        state = state[0] if isinstance(state, list) and state else state
        nodes: list[str] = []
        for p in parts:
            nodes.extend(expand_hostlist(str(p.get("nodes") or "")))
        out.append(
            SlurmJob(
                job_id=leader_id,
                comment=str(lead.get("comment") or ""),
                name=str(lead.get("name") or ""),
                state=str(state or "UNKNOWN").upper(),
                reason=str(lead.get("state_reason") or ""),
                exit_status=max((_int(p.get("exit_code")) for p in parts), default=0),
                nodes=tuple(nodes),
                start_s=_int(lead.get("start_time")),
                end_s=_int(lead.get("end_time")),
            )
        )
    return out


def parse_nodes(doc: Mapping[str, Any]) -> list[SlurmNode]:
    """Nodes from a ``sinfo --json`` / ``GET /slurm/v0.0.38/nodes`` document."""
    _errors(doc, "listing nodes")
    raw = doc.get("nodes")
    if not isinstance(raw, list):
        raise SlurmError("listing nodes: the answer has no node list", transient=True)
    out = []
    for n in raw:
        if not isinstance(n, dict) or "name" not in n:
            raise SlurmError("listing nodes: a node entry without name", transient=True)
        state = n.get("state")
        base = state[0] if isinstance(state, list) and state else state
        flags = n.get("state_flags") or []
        if isinstance(state, list):  # later versions: ["IDLE", "DRAIN"]
            flags = [*flags, *state[1:]]
        out.append(
            SlurmNode(
                name=str(n["name"]),
                state=str(base or "unknown").lower(),
                flags=tuple(str(f).upper() for f in flags),
                reason=str(n.get("reason") or ""),
                gres=str(n.get("gres") or ""),
                partitions=tuple(str(p) for p in n.get("partitions") or ()),
            )
        )
    return out


def _sacct_time(text: str) -> int:
    """sacct's ``Start``/``End`` (local ``YYYY-MM-DDTHH:MM:SS``) in epoch seconds; 0 if none."""
    try:
        return int(time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S")))
    except ValueError:  # Unknown, None, empty
        return 0


def _sacct_status(exit_code: str) -> int:
    """sacct's ``ExitCode`` ``code:signal`` as a wait status."""
    code, _, sig = exit_code.partition(":")
    try:
        return ((int(code) & 0xFF) << 8) | (int(sig or 0) & 0x7F)
    except ValueError:
        return 0


# -- the CLI transport -----------------------------------------------------------------------


def _duration(seconds: int) -> str:
    """Slurm's ``--time``: ``D-HH:MM:SS`` (Slurm rounds up to whole minutes)."""
    d, rest = divmod(max(1, seconds), 86_400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{d}-{h:02d}:{m:02d}:{s:02d}"


class SlurmCli:
    """The Slurm commands of one cluster, with ``SLURM_CONF`` exported and a timeout on each."""

    def __init__(self, options: SlurmOptions) -> None:
        self.options = options
        env = {k: v for k, v in os.environ.items() if k in SUBMIT_ENV}
        if options.slurm_conf:
            # Without a readable SLURM_CONF a client retries for a minute before failing.
            env["SLURM_CONF"] = options.slurm_conf
        self._env = env

    def _bin(self, name: str) -> str:
        return str(Path(self.options.bin_dir) / name) if self.options.bin_dir else name

    def _run(self, argv: Sequence[str], what: str, stdin: str | None = None) -> str:
        try:
            done = subprocess.run(
                [self._bin(argv[0]), *argv[1:]],
                input=stdin,
                capture_output=True,
                text=True,
                env=self._env,
                timeout=self.options.command_timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SlurmError(
                f"{what}: {argv[0]} did not answer in {self.options.command_timeout_s:g} s", transient=True
            ) from None
        except OSError as e:  # no such program: a broken installation, not a bad job
            raise SlurmError(f"{what}: cannot run {argv[0]}: {e.strerror or e}", transient=True) from None
        if done.returncode != 0:
            msg = " ".join((done.stderr or done.stdout).split()) or f"exit status {done.returncode}"
            raise SlurmError(f"{what}: {msg}", transient=bool(_TRANSIENT.search(msg)))
        return done.stdout

    def sbatch_argv(self, req: BatchRequest) -> list[str]:
        """The sbatch command line for ``req`` (the script goes to standard input)."""
        o = self.options
        argv = ["sbatch", "--parsable", "--no-requeue", f"--chdir={req.chdir}"]
        argv += [f"--output={req.stdout}", f"--error={req.stderr}"]
        for k, comp in enumerate(req.components):
            if k:
                argv.append(":")
            # gpupool requeues itself (on a new placement); Slurm must not restart the job on
            # the node it was pinned to.
            argv += [f"--job-name={req.name}", f"--comment={req.comment}", "--no-requeue"]
            if req.uid is not None:
                # Root submits, Slurm runs the job as the mapped account: slurmctld records that
                # user (squeue, sacct, limits), and slurmstepd drops to it before it opens the
                # output files or runs the script. Every component names it (heterogeneous jobs).
                argv += [f"--uid={req.uid}", f"--gid={req.gid if req.gid is not None else req.uid}"]
            argv += [f"--nodelist={','.join(comp.nodes)}", f"--nodes={len(comp.nodes)}"]
            argv.append("--ntasks-per-node=1")
            if comp.gpus:
                argv.append(f"--gres={o.gres_name}:{comp.gres_type}:{comp.gpus}")
                if o.cpus_per_gpu:
                    argv.append(f"--cpus-per-gpu={o.cpus_per_gpu}")
            if req.time_s:
                argv.append(f"--time={_duration(req.time_s)}")
            for flag, value in (("partition", o.partition), ("account", o.account), ("qos", o.qos)):
                if value:
                    argv.append(f"--{flag}={value}")
            if o.mem:
                argv.append(f"--mem={o.mem}")
            argv += shlex.split(o.sbatch_args)
        return argv

    def submit(self, request: BatchRequest) -> int:
        out = self._run(self.sbatch_argv(request), "sbatch", stdin=request.script).strip()
        # --parsable prints "<id>" or "<id>;<cluster>"
        head = out.splitlines()[-1].split(";")[0].strip() if out else ""
        if not head.isdigit():
            raise SlurmError(f"sbatch: cannot read a job id from {out[:200]!r}", transient=True)
        return int(head)

    def _json(self, argv: Sequence[str], what: str) -> dict[str, Any]:
        import json

        text = self._run(argv, what)
        try:
            doc = json.loads(text)
        except ValueError:
            raise SlurmError(f"{what}: {argv[0]} printed no JSON ({text[:120]!r})", transient=True) from None
        if not isinstance(doc, dict):
            raise SlurmError(f"{what}: {argv[0]} printed no JSON object", transient=True)
        return doc

    def jobs(self) -> list[SlurmJob]:
        # -t all: finished jobs stay listed for MinJobAge (300 s by default), which is how an
        # exit that happened while nobody polled is still seen.
        return parse_jobs(self._json(["squeue", "-t", "all", "--json"], "squeue"))

    def nodes(self) -> list[SlurmNode]:
        return parse_nodes(self._json(["sinfo", "--json"], "sinfo"))

    def cancel(self, job_id: int, signal: str | None = None) -> None:
        argv = ["scancel", str(job_id)]
        if signal:
            # --full: the batch shell and everything it started, not only job steps.
            argv[1:1] = ["--full", f"--signal={signal}"]
        try:
            self._run(argv, "scancel")
        except SlurmError as e:
            if "invalid job id" in str(e).lower() or "already completing" in str(e).lower():
                return  # gone already: what cancel wanted
            raise

    def accounting(self, job_ids: Iterable[int]) -> list[SlurmJob]:
        ids = sorted(set(job_ids))
        if not ids or not self.options.accounting:
            return []
        return self._sacct(["-j", ",".join(map(str, ids))])

    def ended_since(self, since_s: float) -> list[SlurmJob]:
        if not self.options.accounting:
            return []
        start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since_s))
        # --allusers: jobs that ran as mapped accounts are gpupool's too
        return self._sacct(["--allusers", f"--starttime={start}", "--endtime=now"])

    def _sacct(self, select: list[str]) -> list[SlurmJob]:
        fmt = "JobIDRaw,JobName,State,ExitCode,Start,End,NodeList,Comment"
        out = self._run(["sacct", "-X", "-n", "-P", "--delimiter=|", "-o", fmt, *select], "sacct")
        jobs = []
        for line in out.splitlines():
            cols = line.split("|")
            if len(cols) < 8 or not cols[0].split("+")[0].isdigit():
                continue
            jobs.append(
                SlurmJob(
                    job_id=int(cols[0].split("+")[0]),
                    comment=cols[7],
                    name=cols[1],
                    state=cols[2].split()[0].upper() if cols[2] else "UNKNOWN",
                    reason="",
                    exit_status=_sacct_status(cols[3]),
                    nodes=expand_hostlist(cols[6]) if cols[6] not in ("", "None assigned") else (),
                    start_s=_sacct_time(cols[4]),
                    end_s=_sacct_time(cols[5]),
                )
            )
        return jobs


# -- the REST transport ------------------------------------------------------------------------


class SlurmRest:
    """slurmrestd with a JWT (``X-SLURM-USER-NAME`` / ``X-SLURM-USER-TOKEN``).

    The token file is read on every request, so an operator (or ``scontrol token`` in a cron
    job) can rotate it without a restart. 401/403 is a refused token: not retried, since a
    token does not heal by itself.
    """

    def __init__(self, options: SlurmOptions, transport: httpx.BaseTransport | None = None) -> None:
        self.options = options
        self._http = httpx.Client(
            base_url=options.rest_url.rstrip("/"),
            timeout=options.command_timeout_s,
            transport=transport,
        )

    def _headers(self) -> dict[str, str]:
        try:
            token = Path(self.options.jwt_token_file).read_text().strip()
        except OSError as e:
            raise SlurmError(
                f"cannot read the JWT file {self.options.jwt_token_file}: {e}", transient=False
            ) from None
        user = self.options.rest_user or os.environ.get("USER", "root")
        return {"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token}

    def _call(self, method: str, path: str, what: str, body: Any = None) -> dict[str, Any]:
        try:
            r = self._http.request(method, path, headers=self._headers(), json=body)
        except httpx.HTTPError as e:
            raise SlurmError(f"{what}: slurmrestd unreachable: {e}", transient=True) from None
        if r.status_code in (401, 403):
            raise SlurmError(
                f"{what}: slurmrestd refused the token (HTTP {r.status_code}: expired or wrong JWT)",
                transient=False,
            )
        try:
            doc = r.json()
        except ValueError:
            raise SlurmError(
                f"{what}: slurmrestd answered HTTP {r.status_code} without JSON",
                transient=r.status_code >= 500,
            ) from None
        if not isinstance(doc, dict):
            raise SlurmError(f"{what}: slurmrestd answered no JSON object", transient=True)
        if r.status_code >= 400 or doc.get("errors"):
            errs = doc.get("errors") or [{}]
            first = errs[0] if isinstance(errs[0], dict) else {}
            msg = first.get("error") or first.get("description") or f"HTTP {r.status_code}"
            transient = r.status_code >= 500 or bool(_TRANSIENT.search(str(msg)))
            if r.status_code < 400 and what != "submit":
                transient = True
            raise SlurmError(f"{what}: {msg}", transient=transient)
        return doc

    def _job_body(self, req: BatchRequest, comp: BatchComponent, env: Mapping[str, str]) -> dict[str, Any]:
        o = self.options
        job: dict[str, Any] = {
            "name": req.name,
            "comment": req.comment,
            "requeue": False,
            "nodes": [len(comp.nodes), len(comp.nodes)],
            "required_nodes": list(comp.nodes),
            "tasks_per_node": 1,
            "current_working_directory": req.chdir,
            "standard_output": req.stdout,
            "standard_error": req.stderr,
            "environment": dict(env),
        }
        if comp.gpus:
            job["gres"] = f"{o.gres_name}:{comp.gres_type}:{comp.gpus}"
        if req.time_s:
            job["time_limit"] = max(1, -(-req.time_s // 60))  # minutes, rounded up
        for key, value in (("partition", o.partition), ("account", o.account), ("qos", o.qos)):
            if value:
                job[key] = value
        if o.mem:
            job["memory_per_node"] = _megabytes(o.mem)
        return job

    def submit(self, request: BatchRequest) -> int:
        if request.uid is not None:
            # slurmrestd runs a job as the user its token names; one service token cannot
            # submit for a mapped account (that needs a JWT per user).
            raise SlurmError(
                "submit: slurmrestd cannot run a job as a mapped Unix account with one service "
                "token; leave rest_url empty (the CLI submits as root with --uid/--gid)",
                transient=False,
            )
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TZ")}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        jobs = [self._job_body(request, c, env) for c in request.components]
        body: dict[str, Any] = {"script": request.script}
        if len(jobs) == 1:
            body["job"] = jobs[0]
        else:
            body["jobs"] = jobs
        doc = self._call("POST", f"/slurm/{self.options.rest_api}/job/submit", "submit", body)
        job_id = doc.get("job_id")
        if not isinstance(job_id, int):
            raise SlurmError("submit: slurmrestd answered without a job_id", transient=True)
        return job_id

    def jobs(self) -> list[SlurmJob]:
        return parse_jobs(self._call("GET", f"/slurm/{self.options.rest_api}/jobs", "jobs"))

    def nodes(self) -> list[SlurmNode]:
        return parse_nodes(self._call("GET", f"/slurm/{self.options.rest_api}/nodes", "nodes"))

    def cancel(self, job_id: int, signal: str | None = None) -> None:
        path = f"/slurm/{self.options.rest_api}/job/{job_id}"
        if signal:
            path += f"?signal={signal.removeprefix('SIG')}"
        try:
            self._call("DELETE", path, "cancel")
        except SlurmError as e:
            if "invalid job id" in str(e).lower() or "already" in str(e).lower():
                return
            raise

    def accounting(self, job_ids: Iterable[int]) -> list[SlurmJob]:
        return []  # slurmdb over REST is left out: the CLI's sacct covers it

    def ended_since(self, since_s: float) -> list[SlurmJob]:
        return []

    def close(self) -> None:
        self._http.close()


def _megabytes(mem: str) -> int:
    m = re.fullmatch(r"(\d+)([KMGT]?)B?", mem.strip().upper())
    if not m:
        raise SlurmError(f"mem {mem!r} is not a size like 1024M or 4G", transient=False)
    scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[m.group(2)]
    return max(1, int(int(m.group(1)) * scale))


def client_for(options: SlurmOptions) -> SlurmClient:
    """slurmrestd when ``rest_url`` is set, else the CLI."""
    return SlurmRest(options) if options.rest_url else SlurmCli(options)
