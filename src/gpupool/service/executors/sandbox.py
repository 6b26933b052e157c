"""The sandbox a local job runs in: bubblewrap's command line and the account it drops to.

This module owns ``Sandbox`` (ADR 0005): how the local executor confines one job. Each job
gets, from bubblewrap (Debian package ``bubblewrap``):

- its own PID namespace (``/proc`` shows only its own processes: no other job's or the
  service's environment, no pid to signal) and its own IPC namespace;
- the host's file system read-only (read-write for a mapped site account, whose own Unix
  permissions then rule, as under Slurm), a private ``/tmp``, ``/var/tmp`` and ``/dev/shm``, a
  minimal ``/dev`` plus the accelerators' device files when present (``/dev/nvidia*``, ...);
- its working directory bound read-write (it is checked to lie outside the hidden paths);
- the service's hidden paths (its data directory: database, executor state, every job's logs;
  the SQLite file's folder) covered by empty tmpfs, so no path trick reaches them: a symlink
  or ``..`` resolves inside the sandbox, where they are empty;
- no capabilities: the wrapper (``job_init.py``) keeps only CAP_SETUID/CAP_SETGID to switch to
  the job's account and loses them with the switch; ``no_new_privs`` is set by bubblewrap, so
  no setuid program gives them back.

Where the service is not root, bubblewrap uses an unprivileged user namespace and the job runs
as the service's user in the sandbox. No ``--die-with-parent``: jobs must outlive a restart of
the service (the executor adopts them); the process group is the handle instead, and SIGKILL of
the group kills the sandbox's PID 1 and with it, by the kernel, every process in the job's PID
namespace (even one that left the group).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from gpupool.service.identity import Account

__all__ = ["DEVICE_GLOBS", "Sandbox", "SandboxUnavailable", "is_within"]

#: Accelerator device files passed into every sandbox when they exist on this machine:
#: NVIDIA, AMD (kfd, dri), Huawei Ascend (davinci, devmm_svm, hisi_hdc), Intel Gaudi (accel).
DEVICE_GLOBS: tuple[str, ...] = (
    "/dev/nvidia*", "/dev/nvidia-caps", "/dev/kfd", "/dev/dri", "/dev/davinci*",
    "/dev/devmm_svm", "/dev/hisi_hdc", "/dev/accel",
)  # fmt: skip

JOB_INIT = Path(__file__).with_name("job_init.py")
#: Folders each job gets empty and private (a tmpfs of its own, 1777 like the host's).
SCRATCH: tuple[str, ...] = ("/tmp", "/var/tmp", "/dev/shm")
#: The PATH a job gets unless its submitter gives one.
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


@cache
def _job_init_source() -> str:
    return JOB_INIT.read_text(encoding="utf-8")


def job_python() -> str:
    """A Python a job's account can run: ``python3`` on the jobs' default PATH, else this one.

    Jobs run as unprivileged accounts, which may not reach the service's own interpreter (a
    virtual environment under ``/root``, say): the demo and the tests give jobs this one.
    """
    return shutil.which("python3", path=DEFAULT_PATH) or sys.executable


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or does not work here, and running unsandboxed was not allowed."""


def is_within(path: Path, root: Path) -> bool:
    """True if ``path`` is ``root`` or below it (both resolved)."""
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Sandbox:
    """How to confine a job. ``hidden``: paths no job may see (resolved at construction).

    ``unsafe_no_sandbox``: run jobs without bubblewrap (only as the service's own user, with
    the same environment rules) where it is missing; refused otherwise (``check``).
    """

    hidden: tuple[Path, ...] = ()
    bwrap: str | None = None
    unsafe_no_sandbox: bool = False
    #: the interpreter of the wrapper (standard library only): one every account reaches,
    #: not the service's own, which may live where the sandbox hides (a venv under /tmp)
    python: str = field(default_factory=lambda: job_python())

    @staticmethod
    def create(hidden: Iterable[Path] = (), *, unsafe_no_sandbox: bool = False) -> Sandbox:
        return Sandbox(
            hidden=tuple(Path(os.path.realpath(p)) for p in hidden),
            bwrap=shutil.which("bwrap"),
            unsafe_no_sandbox=unsafe_no_sandbox,
        )

    @property
    def enabled(self) -> bool:
        return self.bwrap is not None

    def check(self) -> None:
        """Raise ``SandboxUnavailable`` unless jobs can be confined (or that was waived)."""
        if self.bwrap is None and not self.unsafe_no_sandbox:
            raise SandboxUnavailable(
                "bubblewrap (bwrap) is not installed: the local executor will not run jobs unconfined "
                "(apt-get install bubblewrap; or --unsafe-no-sandbox to run them as the service's user)"
            )

    def problem_with_cwd(self, cwd: Path) -> str:
        """Why a job may not work in ``cwd`` (empty if it may): it must not reach a hidden path."""
        real = Path(os.path.realpath(cwd))
        if not real.is_dir():
            return f"the working directory {cwd} does not exist"
        for h in self.hidden:
            if is_within(real, h):
                return f"the working directory {cwd} is inside the service's own files ({h})"
        return ""

    def command(
        self,
        job_argv: Sequence[str],
        *,
        status_fd: int,
        env_fd: int,
        account: Account | None,
        writable_root: bool,
        cwd: Path | None,
    ) -> list[str]:
        """bubblewrap's argv running ``job_argv`` through ``job_init.py`` (see the module docstring).

        Without bubblewrap (``unsafe_no_sandbox``) only the wrapper runs: the account switch, the
        environment and the recorded exit status still hold; the namespaces and hiding do not.
        """
        root = os.geteuid() == 0
        real_cwd = Path(os.path.realpath(cwd)) if cwd is not None else None
        init = [
            self.python,
            "-I",
            "-S",
            # its source, not its path: the package may live under a folder the sandbox covers
            # (a checkout under /tmp, where every job gets an empty tmpfs of its own)
            "-c",
            _job_init_source(),
            "--status-fd",
            str(status_fd),
            "--env-fd",
            str(env_fd),
        ]
        if account is not None and root:
            init += ["--uid", str(account.uid), "--gid", str(account.gid),
                     "--groups", ",".join(map(str, account.groups or (account.gid,)))]  # fmt: skip
        init += ["--cwd", str(real_cwd) if real_cwd is not None else "/tmp", "--", *job_argv]
        if self.bwrap is None:
            self.check()
            return init
        args = [self.bwrap, "--unshare-pid", "--unshare-ipc"]
        if not root:
            args += ["--unshare-user"]  # an unprivileged user namespace: the job stays this uid
        args += ["--bind" if writable_root else "--ro-bind", "/", "/"]
        args += ["--dev", "/dev"]
        for dev in sorted({d for g in DEVICE_GLOBS for d in glob.glob(g)}):
            args += ["--dev-bind", dev, dev]
        # Private scratch space, writable by the job's account like the host's (sticky, 1777).
        args += ["--proc", "/proc"]
        for scratch in SCRATCH:
            args += ["--perms", "1777", "--tmpfs", scratch]
        if real_cwd is not None:
            # Under a private tmpfs the cwd's parents are made anew; bubblewrap would make them
            # 0700 root, which the job's account cannot cross. They hold nothing but the path.
            for top in map(Path, SCRATCH):
                if is_within(real_cwd, top) and real_cwd != top:
                    for parent in reversed(real_cwd.relative_to(top).parents[:-1]):
                        args += ["--perms", "0755", "--dir", str(top / parent)]
            args += ["--bind", str(real_cwd), str(real_cwd)]
        # Last, so that they cover whatever the binds above brought back (a cwd above them).
        for h in self.hidden:
            if any(h != o and is_within(h, o) for o in self.hidden):
                continue  # covered by a hidden folder above it (mounting it would show its name)
            in_scratch = any(is_within(h, Path(d)) for d in SCRATCH)
            bound = real_cwd is not None and is_within(h, real_cwd)
            # Under a fresh scratch tmpfs a hidden path is absent already, unless the bound cwd
            # brought it back (mounting it anyway would show its name).
            if (in_scratch and bound) or (not in_scratch and h.exists()):
                args += ["--tmpfs", str(h)]
        args += ["--cap-drop", "ALL"]
        if root:
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        return [*args, "--", *init]
