"""Jobs run as their mapped Unix accounts on a real Slurm, and attack each other from inside.

Two throwaway accounts (``useradd``, removed afterwards) stand for two tenants. Each gets a
job through ``SlurmExecutor`` with ``Launch.run_as`` set; then:

- ``sacct`` records each job under its account, and ``squeue``/``scancel`` still reach them;
- the layout the service made is checked by mode and owner;
- tenant A's job, while B's runs, tries to read B's output, list and read B's working
  directory, signal B's process, and read the service's files (a 0600 file in the data
  directory, the data directory's listing); its own output says what it saw, and the test
  asserts every attempt was refused (and that A could do the same to its own files, so the
  refusals are not an artefact of a broken job).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpupool.service.executors.base import AllocationExited, AllocationFailed, Launch
from gpupool.service.executors.local import log_paths
from gpupool.service.executors.slurm import SlurmExecutor
from gpupool.service.executors.slurm_client import SlurmOptions
from gpupool.service.identity import project_account_name
from tests.slurm.conftest import SlurmCluster, SlurmSite, wait_for
from tests.slurm.test_executor import collect, ended, final, nodes_of, started

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
PREFIX = "gpupool-runas:"

#: tenant A's job: each probe prints one line ``<probe>=<ALLOWED|DENIED> <what it saw>``
ATTACK = r"""
probe() {
  name=$1; shift
  if out=$("$@" 2>&1); then verdict=ALLOWED; else verdict=DENIED; fi
  echo "$name=$verdict $(echo "$out" | head -c 200 | tr '\n' ' ')"
}
B_OUT=$1 B_WORK=$2 SECRET=$3 DATA=$4 B_USER=$5
echo "whoami=$(id -un)"
echo mine > own.txt
probe own_file cat own.txt
probe own_out test -w "$GPUPOOL_OWN_OUT"
probe b_output cat "$B_OUT"
probe b_workdir_list ls -a "$B_WORK"
probe b_workdir_file cat "$B_WORK/b-private.txt"
probe service_secret cat "$SECRET"
probe data_dir_list ls -a "$DATA"
pid=""
for i in $(seq 100); do
  for p in /proc/[0-9]*; do [ "$(stat -c %U "$p" 2>/dev/null)" = "$B_USER" ] && pid=${p#/proc/} && break; done
  [ -n "$pid" ] && break; sleep 0.1
done
echo "b_pid=$pid"
probe b_signal kill -TERM "$pid"
probe b_signal0 kill -0 "$pid"
"""

#: tenant B's job: output and a work-dir file A must not read, then a process A must not kill
VICTIM = "echo b-secret-output; echo b-private > b-private.txt; exec sleep 60"


def _useradd(name: str) -> None:
    subprocess.run(
        ["useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def tenants() -> Iterator[tuple[str, str]]:
    """Two fresh Unix accounts with their own groups; removed (and their jobs cancelled) after."""
    if shutil.which("useradd") is None:
        pytest.skip("useradd (Debian's passwd) is needed to make tenant accounts")
    tag = secrets.token_hex(3)
    names = (f"gpt{tag}a", f"gpt{tag}b")
    made: list[str] = []
    try:
        for n in names:
            _useradd(n)
            made.append(n)
        yield names
    finally:
        for n in made:
            uid = pwd.getpwnam(n).pw_uid
            with contextlib.suppress(TimeoutError):  # their jobs were cancelled: let them go
                wait_for(lambda uid=uid: not _processes_of(uid), 20, f"the processes of {n} to end")
            subprocess.run(["userdel", n], capture_output=True, check=False)


def _processes_of(uid: int) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError):
                if p.stat().st_uid == uid:
                    pids.append(int(p.name))
    return pids


def _launch(data: Path, aid: str, argv: list[str], node: str, user: str, **kw: object) -> Launch:
    job = aid.split(".")[0]
    return Launch(
        allocation_id=aid,
        job_id=job,
        argv=tuple(argv),
        placement=((node, (0,)),),
        log_dir=data / "logs" / job,
        run_as=user,
        **kw,  # type: ignore[arg-type]
    )


def _read_when(path: Path, needle: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if needle in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} never appeared in {path}")


def _probes(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, rest = line.partition("=")
        if sep:
            out[key] = rest
    return out


def test_jobs_run_as_their_accounts_and_cannot_reach_each_other_or_the_service(
    slurm_site: SlurmSite, alpha: SlurmCluster, site_dir: Path, tenants: tuple[str, str]
) -> None:
    if slurm_site.accounting is None:
        pytest.skip("no MariaDB/slurmdbd here: sacct, which this test reads, needs them")
    user_a, user_b = tenants
    data = site_dir / "data"
    data.mkdir(mode=0o711)
    secret = data / "admin-token"
    secret.write_text("the-admin-token\n")
    os.chmod(secret, 0o600)
    opts = SlurmOptions.parse(
        {
            "slurm_conf": str(alpha.conf),
            "mem": "1G",
            "poll_interval_s": "0.2",
            "command_timeout_s": "20",
            "comment_prefix": PREFIX,
            "accounting": "true",
        }
    )
    ex = SlurmExecutor("alpha", nodes_of(alpha), opts, tick_s=0.02)
    tag = secrets.token_hex(2)
    aid_a, aid_b = f"ja{tag}.1", f"jb{tag}.1"
    try:
        lb = _launch(data, aid_b, ["bash", "-c", VICTIM], "a1", user_b)
        ex.launch(lb)
        collect(ex, started(aid_b))
        b_out = log_paths(lb.log_dir, aid_b)[0]
        b_work = lb.log_dir / "work"
        try:
            wait_for(lambda: (b_work / "b-private.txt").exists(), 30, "B's work-dir file")
        except TimeoutError:
            raise AssertionError(
                f"{alpha.run('squeue', '-t', 'all', '-o', '%i|%u|%T|%r|%k')} {ex.poll()} "
                f"{log_paths(lb.log_dir, aid_b)[1].read_text()}"
            ) from None
        assert _read_when(b_out, "b-secret-output")

        # the layout the service made for B, by owner and mode
        pw_b = pwd.getpwnam(user_b)
        st_log, st_out, st_work = lb.log_dir.stat(), b_out.stat(), b_work.stat()
        assert (st_log.st_uid, st_log.st_gid, stat.S_IMODE(st_log.st_mode)) == (0, pw_b.pw_gid, 0o710)
        assert (st_out.st_uid, stat.S_IMODE(st_out.st_mode)) == (pw_b.pw_uid, 0o600)
        assert (st_work.st_uid, stat.S_IMODE(st_work.st_mode)) == (pw_b.pw_uid, 0o700)
        assert (b_work / "b-private.txt").stat().st_uid == pw_b.pw_uid  # written as B

        la = _launch(
            data,
            aid_a,
            ["bash", "-c", ATTACK, "attack", str(b_out), str(b_work), str(secret), str(data), user_b],
            "a2",
            user_a,
            env={"GPUPOOL_OWN_OUT": str(log_paths(data / "logs" / aid_a.split(".")[0], aid_a)[0])},
        )
        ex.launch(la)
        e_a = final(collect(ex, ended(aid_a), timeout=60), aid_a)
        a_out, a_err = log_paths(la.log_dir, aid_a)
        seen = _probes(a_out.read_text())
        assert isinstance(e_a, AllocationExited), (e_a, a_out.read_text(), a_err.read_text())

        # A ran as A, and could use its own files: the refusals below are about B and the service
        assert seen["whoami"] == user_a
        assert seen["own_file"].startswith("ALLOWED mine"), seen
        assert seen["own_out"].startswith("ALLOWED"), seen
        assert seen["b_pid"], seen  # A did find B's process (a real target for the signal)
        for probe in (
            "b_output",
            "b_workdir_list",
            "b_workdir_file",
            "service_secret",
            "data_dir_list",
            "b_signal",
            "b_signal0",
        ):
            assert seen[probe].startswith("DENIED"), (probe, seen[probe])
        assert "b-secret-output" not in a_out.read_text()
        assert "the-admin-token" not in a_out.read_text()
        assert "b-private" not in a_out.read_text().replace("b-private.txt", "")

        # B survived A's signal; gpupool can still cancel it (scancel of another user's job)
        assert aid_b in ex.allocations()
        ex.terminate(aid_b, 1.0)
        e_b = final(collect(ex, ended(aid_b), timeout=60), aid_b)
        assert isinstance(e_b, AllocationExited) and e_b.cause == "terminated"

        # Slurm's accounting names the mapped account of each job
        ids = {aid: ex.slurm_job_id(aid) for aid in (aid_a, aid_b)}
        ids = {aid: i for aid, i in ids.items() if i is not None}
        if len(ids) < 2:  # finished allocations leave the executor's table: ask squeue
            rows = alpha.run("squeue", "-t", "all", "-h", "-o", "%i|%k").split()
            ids = {c.removeprefix(PREFIX): int(i) for i, c in (r.split("|") for r in rows)} | ids

        def accounted() -> dict[int, str]:
            out = alpha.run(
                "sacct", "-X", "-n", "-P", "-o", "JobIDRaw,User", "-j", f"{ids[aid_a]},{ids[aid_b]}"
            )
            return {int(i): u for i, u in (ln.split("|") for ln in out.split())}

        # Seen here: on a slurmdbd started seconds ago a job's start record can arrive after
        # its end, and until it does sacct shows a bare record (uid 0); it settles by itself.
        want = {ids[aid_a]: user_a, ids[aid_b]: user_b}
        try:
            wait_for(lambda: accounted() == want, 60, "sacct to name both jobs' accounts")
        except TimeoutError:
            raise AssertionError(f"sacct says {accounted()}, not {want}") from None
        squeued = alpha.run("squeue", "-t", "all", "-h", "-o", "%i|%u", "-j", f"{ids[aid_a]},{ids[aid_b]}")
        assert dict(r.split("|") for r in squeued.split()) == {
            str(ids[aid_a]): user_a,
            str(ids[aid_b]): user_b,
        }
    finally:
        ex.close()
        for u in tenants:
            alpha.run("scancel", f"--user={u}", check=False)


def test_a_job_cannot_run_as_root_an_unknown_account_or_an_unmapped_projects_account(
    alpha: SlurmCluster, site_dir: Path
) -> None:
    opts = SlurmOptions.parse({"slurm_conf": str(alpha.conf), "comment_prefix": PREFIX, "mem": "1G"})
    ex = SlurmExecutor("alpha", nodes_of(alpha), opts, tick_s=0.02)
    data = site_dir / "data"
    tag = secrets.token_hex(2)
    # The account a root service gives a job its identity map does not name: by default the
    # compute nodes are not assumed to know it (ADR 0005), whether or not this host does.
    unmapped = project_account_name(f"academia/snu/{tag}")
    aids = (f"jr{tag}.1", f"jn{tag}.1", f"ju{tag}.1")
    try:
        ex.launch(_launch(data, aids[0], ["true"], "a1", "root"))
        ex.launch(_launch(data, aids[1], ["true"], "a1", f"nobody-{tag}-here"))
        ex.launch(_launch(data, aids[2], ["true"], "a1", unmapped))
        evs = collect(ex, lambda evs: all(ended(a)(evs) for a in aids))
        root, unknown, project = (final(evs, a) for a in aids)
        assert isinstance(root, AllocationFailed) and "uid 0" in root.reason
        assert isinstance(unknown, AllocationFailed) and "no Unix account" in unknown.reason
        assert isinstance(project, AllocationFailed)
        assert "no Unix account is mapped" in project.reason and unmapped in project.reason
        assert "project_accounts: true" in project.reason
        rows = alpha.run("squeue", "-t", "all", "-h", "-o", "%k").split()
        assert not [r for r in rows if tag in r]  # nothing reached Slurm
    finally:
        ex.close()


def test_a_log_directory_the_account_cannot_reach_is_refused_by_name(
    alpha: SlurmCluster, site_dir: Path, tenants: tuple[str, str]
) -> None:
    opts = SlurmOptions.parse({"slurm_conf": str(alpha.conf), "comment_prefix": PREFIX, "mem": "1G"})
    ex = SlurmExecutor("alpha", nodes_of(alpha), opts, tick_s=0.02)
    data = site_dir / "closed"
    data.mkdir(mode=0o700)  # a data directory only the service may enter
    aid = f"jc{secrets.token_hex(2)}.1"
    try:
        ex.launch(_launch(data, aid, ["true"], "a1", tenants[0]))
        e = final(collect(ex, ended(aid)), aid)
        assert isinstance(e, AllocationFailed)
        assert f"{data} is mode 0700" in e.reason and tenants[0] in e.reason
    finally:
        ex.close()
