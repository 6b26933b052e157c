"""Which Unix account a job runs as: the site's map of gpupool users and projects to accounts.

This module owns the identity map (ADR 0005). A site lists, in a YAML file (``gpupool serve
--accounts FILE`` or ``GPUPOOL_ACCOUNTS``), which existing Unix account runs the jobs of a
gpupool user or of a project::

    users:                      # gpupool user -> Unix account (wins over projects)
      minjun.kim: mkim
    projects:                   # project path (or an ancestor: organisation, sector) -> account
      academia/snu/vision: snu-vision
      industry/naver: naver-ai

Accounts are looked up through NSS (``pwd``/``grp``: ``/etc/passwd``, LDAP, SSSD), exactly as
Slurm runs a job as the user who submitted it. Rules, and why:

- A user's own mapping wins over her project's; a project's over its organisation's (the most
  specific entry names the tenant that owns the job).
- ``root`` (uid 0) is never a job's account: a job as root could read everything the service
  holds. The file is refused naming the entry.
- With no entry for a job and the service running as root, the job runs as its project's own
  unprivileged account ``gpupool-<hash of the project path>`` (created with ``useradd`` on first
  use: no home, no login shell). Each project gets its own uid, so the kernel keeps one
  tenant's files and processes from another even where no site mapping exists (the demo).
- With no entry and a service that is not root, there is no account to switch to: the job runs
  as the service's user inside its sandbox (see ``executors/sandbox.py``), and a file that maps
  anyone to another account is refused at start.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = [
    "FALLBACK_ACCOUNT",
    "Account",
    "IdentityError",
    "IdentityMap",
    "account",
    "ensure_account",
    "ensure_project_account",
    "is_gpupool_account",
    "load_identity_map",
]

#: Prefix of the per-project accounts created when no mapping names a project.
PROJECT_ACCOUNT_PREFIX = "gpupool-"


class IdentityError(ValueError):
    """The accounts file or an account it names is unusable (the message names the entry)."""


@dataclass(frozen=True, slots=True)
class Account:
    """A Unix account as NSS knows it: what a job's process is given."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups (the primary one included)
    home: str


def account(name: str) -> Account:
    """The account ``name`` from NSS; ``IdentityError`` if it does not exist."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise IdentityError(
            f"no Unix account {name!r} (looked up through NSS: /etc/passwd, LDAP, ...)"
        ) from None
    try:
        groups = tuple(sorted(set(os.getgrouplist(name, pw.pw_gid))))
    except OSError:
        groups = (pw.pw_gid,)
    return Account(name=name, uid=pw.pw_uid, gid=pw.pw_gid, groups=groups, home=pw.pw_dir)


def project_account_name(project: str) -> str:
    """The per-project account's name: stable for a project path, at most 32 characters."""
    return PROJECT_ACCOUNT_PREFIX + hashlib.sha256(project.encode()).hexdigest()[:12]


#: The account of jobs launched with no ``run_as`` by a root executor (never root itself).
FALLBACK_ACCOUNT = PROJECT_ACCOUNT_PREFIX + "job"

_ensure_lock = threading.Lock()


def ensure_project_account(project: str) -> str:
    """The project's own unprivileged account, created with ``useradd`` if it does not exist."""
    return ensure_account(project_account_name(project), f"gpupool jobs of {project}")


def is_gpupool_account(name: str) -> bool:
    """True for the accounts gpupool creates itself (per project, and the fallback)."""
    return name.startswith(PROJECT_ACCOUNT_PREFIX)


def ensure_account(name: str, comment: str) -> str:
    """The unprivileged account ``name``, created with ``useradd`` if it does not exist.

    Only root may create accounts; the account has no home directory and no login shell, and
    its comment (GECOS) says whose jobs it runs, so that ``getent passwd`` tells an admin.
    """
    with _ensure_lock:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
        nologin = next((p for p in ("/usr/sbin/nologin", "/sbin/nologin") if Path(p).exists()), "/bin/false")
        cmd = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
               "--shell", nologin, "--comment", comment[:200], name]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            try:  # another process created it meanwhile
                pwd.getpwnam(name)
            except KeyError:
                raise IdentityError(f"cannot create the account {name!r}: {r.stderr.strip()}") from None
    return name


class IdentityMap:
    """Which account runs a job of (user, project); see the module docstring for the rules."""

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        projects: Mapping[str, str] | None = None,
        *,
        root: bool | None = None,
        source: str = "",
    ) -> None:
        self.users = dict(users or {})
        self.projects = dict(projects or {})
        #: whether the service runs as root (and so may switch accounts and create them)
        self.root = os.geteuid() == 0 if root is None else root
        self.source = source

    @property
    def configured(self) -> bool:
        return bool(self.users or self.projects)

    def mapped(self, user: str, project: str) -> str | None:
        """The account the map names for the job, or ``None``."""
        if user in self.users:
            return self.users[user]
        parts = project.split("/")
        for n in range(len(parts), 0, -1):
            got = self.projects.get("/".join(parts[:n]))
            if got is not None:
                return got
        return None

    def run_as(self, user: str, project: str) -> str | None:
        """The account for ``Launch.run_as``: mapped, else the project's own (root), else ``None``."""
        got = self.mapped(user, project)
        if got is not None:
            return got
        if self.root:
            return ensure_project_account(project)
        return None

    def check(self) -> None:
        """Every mapped account exists, is not root, and can be switched to by this service."""
        where = self.source or "accounts"
        for kind, table in (("users", self.users), ("projects", self.projects)):
            for key, name in table.items():
                acct = account(name)
                if acct.uid == 0:
                    raise IdentityError(f"{where}: {kind}.{key} maps to {name!r}, which is root")
                if not self.root and acct.uid != os.geteuid():
                    raise IdentityError(
                        f"{where}: {kind}.{key} maps to {name!r} but the service is not root and"
                        " cannot run jobs as another account (run it as root, or drop the mapping)"
                    )


def load_identity_map(path: Path | str | None, *, root: bool | None = None) -> IdentityMap:
    """Read and check an accounts file (``None`` or ``""``: no mapping)."""
    if not path:
        return IdentityMap(root=root)
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise IdentityError(f"cannot read the accounts file {p}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise IdentityError(f"{p}: not YAML: {e}") from None
    if not isinstance(doc, dict) or set(doc) - {"users", "projects"}:
        got = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise IdentityError(f"{p}: expected a mapping with 'users' and/or 'projects' (got {got})")
    tables: dict[str, dict[str, str]] = {}
    for kind in ("users", "projects"):
        table = doc.get(kind) or {}
        if not isinstance(table, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in table.items()
        ):
            raise IdentityError(f"{p}: {kind} must map names to Unix account names")
        tables[kind] = table
    ident = IdentityMap(tables["users"], tables["projects"], root=root, source=str(p))
    ident.check()
    return ident
