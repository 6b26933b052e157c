"""The Unix account a job runs as, and the directories the service prepares for it.

This module owns ``JobAccount`` (a ``Launch.run_as`` name resolved through NSS: uid, primary
gid, groups, home) and ``prepare_job_dirs``, which lays out a job's files so that the job's
account writes them, other tenants read none of them, and the job cannot turn them against
the service:

- the job's log directory (``<log_dir>``) stays owned by the service, group = the account's
  primary group, mode 0710: the job reaches its files but cannot create, rename or replace
  entries there, so it cannot swap its output file for a symlink to a service secret that the
  service's ``/logs`` endpoint (which reads as the service) would then return;
- the output files ``<allocation>.out`` / ``.err`` are created by the service, owned by the
  account, mode 0600: the job (Slurm's slurmstepd, already running as the account) writes
  them; other tenants cannot read them;
- the working directory ``<log_dir>/work`` is owned by the account, mode 0700.

Every directory above the log directory must be searchable (``x``) by the account, or the job
could not open its output; that is checked here and refused with the directory's name rather
than left to fail on the compute node. Nothing here runs a job.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WORK_DIR", "JobAccount", "prepare_job_dirs"]

#: the job's private working directory, inside its log directory
WORK_DIR = "work"


@dataclass(frozen=True, slots=True)
class JobAccount:
    """A Unix account as NSS knows it on the submitting host."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]
    home: str

    @classmethod
    def lookup(cls, name: str) -> JobAccount | str:
        """The account called ``name``, or why a job cannot run as it."""
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            return f"no Unix account {name!r} on the submitting host (the identity map names it)"
        if pw.pw_uid == 0:
            # A mapping to root would hand a tenant the whole machine: never honoured.
            return f"refusing to run a job as {name!r}: it is uid 0 (root)"
        me = os.geteuid()
        if me != 0 and pw.pw_uid != me:
            return (
                f"the service runs as uid {me}, not root: it cannot submit a job as {name!r} "
                f"(uid {pw.pw_uid})"
            )
        try:
            groups = frozenset(os.getgrouplist(name, pw.pw_gid))
        except OSError:
            groups = frozenset({pw.pw_gid})
        return cls(name, pw.pw_uid, pw.pw_gid, groups, pw.pw_dir)

    def can_search(self, st: os.stat_result) -> bool:
        """Whether the account may pass through a directory with this status (``x``)."""
        if st.st_uid == self.uid:
            return bool(st.st_mode & stat.S_IXUSR)
        if st.st_gid in self.groups:
            return bool(st.st_mode & stat.S_IXGRP)
        return bool(st.st_mode & stat.S_IXOTH)


def _unreachable(path: Path, account: JobAccount) -> str | None:
    """The first directory above ``path`` that ``account`` cannot search, as an error."""
    for parent in reversed(path.parents):
        st = parent.stat()
        if not account.can_search(st):
            return (
                f"the account {account.name!r} cannot reach {path}: {parent} is mode "
                f"{stat.S_IMODE(st.st_mode):04o} owned by uid {st.st_uid} (every directory above the "
                "log directory must be searchable, e.g. 0711, by the accounts jobs run as)"
            )
    return None


def _own_dir(path: Path, uid: int, gid: int, mode: int) -> None:
    """Make ``path`` a real directory (never a symlink) owned ``uid:gid`` with ``mode``."""
    path.mkdir(mode=mode, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(f"{path} is not a directory")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def prepare_job_dirs(log_dir: Path, outputs: tuple[Path, ...], account: JobAccount) -> Path:
    """Lay out ``log_dir`` for a job of ``account`` (see the module docstring); its work dir.

    Raises ``OSError`` with the reason when the layout cannot be made safe.
    """
    log_dir.parent.mkdir(parents=True, exist_ok=True)
    why = _unreachable(log_dir, account)
    if why:
        raise OSError(why)
    _own_dir(log_dir, os.geteuid(), account.gid, 0o710)
    for path in outputs:
        # O_NOFOLLOW: the log directory is the service's, but a file left from an earlier
        # layout must not redirect this chown.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.fchown(fd, account.uid, account.gid)
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
    work = log_dir / WORK_DIR
    _own_dir(work, account.uid, account.gid, 0o700)
    return work
