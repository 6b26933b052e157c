"""The identity map (which Unix account runs a job) and the sandbox's refusals (ADR 0005)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpupool.service.executors import AllocationExited, AllocationFailed, Launch, LocalExecutor, log_paths
from gpupool.service.executors.gpus import simulated_machine
from gpupool.service.executors.sandbox import Sandbox, SandboxUnavailable
from gpupool.service.identity import (
    IdentityError,
    IdentityMap,
    account,
    ensure_project_account,
    load_identity_map,
    project_account_name,
)

GPUPOOL = Path(sys.executable).parent / "gpupool"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="switches and creates accounts: needs root")
SITE_USER = "gpupool-test-site"


@pytest.fixture(scope="module")
def site_account() -> Iterator[str]:
    """A site's existing Unix account (created here, as a site's LDAP would hold it)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    try:
        pwd.getpwnam(SITE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", SITE_USER], check=True)
    yield SITE_USER


def test_the_most_specific_entry_names_the_account() -> None:
    ident = IdentityMap(
        {"minjun.kim": "mkim"}, {"academia/snu": "snu", "academia/snu/nlp": "snu-nlp"}, root=False
    )
    assert ident.mapped("minjun.kim", "academia/snu/nlp") == "mkim"  # the user's own wins
    assert ident.mapped("hayoon.choi", "academia/snu/nlp") == "snu-nlp"
    assert ident.mapped("hayoon.choi", "academia/snu/vision") == "snu"  # the organisation's
    assert ident.mapped("x", "industry/naver/ai") is None
    assert ident.run_as("x", "industry/naver/ai") is None  # not root: the service's own user


def test_per_project_accounts_are_stable_and_distinct() -> None:
    a, b = project_account_name("academia/snu/nlp"), project_account_name("academia/snu/vision")
    assert a != b and a == project_account_name("academia/snu/nlp")
    assert a.startswith("gpupool-") and len(a) <= 32


@root_only
def test_root_gives_each_unmapped_project_its_own_unprivileged_account() -> None:
    ident = IdentityMap(root=True)
    name = ident.run_as("minjun.kim", "academia/snu/vision")
    assert name == ensure_project_account("academia/snu/vision")  # created once, then reused
    acct = account(name)
    assert acct.uid != 0 and acct.uid != account(ident.run_as("h", "academia/snu/nlp") or "").uid
    assert pwd.getpwnam(name).pw_shell.endswith(("nologin", "false"))


def test_bad_accounts_files_are_refused_naming_the_entry(tmp_path: Path) -> None:
    f = tmp_path / "accounts.yaml"
    f.write_text("users: {minjun.kim: root}\n")
    with pytest.raises(IdentityError, match=r"users.minjun.kim maps to 'root', which is root"):
        load_identity_map(f, root=True)
    f.write_text("projects: {academia/snu/nlp: no-such-account-xyz}\n")
    with pytest.raises(IdentityError, match="no Unix account 'no-such-account-xyz'"):
        load_identity_map(f, root=True)
    f.write_text("groups: {a: b}\n")
    with pytest.raises(IdentityError, match="expected a mapping with 'users' and/or 'projects'"):
        load_identity_map(f)
    f.write_text("users: [a, b]\n")
    with pytest.raises(IdentityError, match="users must map names to Unix account names"):
        load_identity_map(f)
    with pytest.raises(IdentityError, match="cannot read the accounts file"):
        load_identity_map(tmp_path / "missing.yaml")


def test_a_service_that_is_not_root_refuses_to_map_another_account(tmp_path: Path) -> None:
    f = tmp_path / "accounts.yaml"
    f.write_text("users: {minjun.kim: nobody}\n")
    with pytest.raises(IdentityError, match="the service is not root"):
        load_identity_map(f, root=False)


def test_serve_refuses_a_bad_accounts_file(tmp_path: Path) -> None:
    f = tmp_path / "accounts.yaml"
    f.write_text("users: {minjun.kim: root}\n")
    r = subprocess.run(
        [str(GPUPOOL), "serve", "--data-dir", str(tmp_path / "d"), "--accounts", str(f)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and "which is root" in r.stderr and "Traceback" not in r.stderr


def test_without_bubblewrap_the_executor_refuses_unless_told(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        LocalExecutor(tmp_path / "s", machine=simulated_machine(1), sandbox=Sandbox(bwrap=None))
    # Told: jobs run (the wrapper still switches accounts and records the exit status).
    ex = LocalExecutor(
        tmp_path / "s", machine=simulated_machine(1), sandbox=Sandbox(bwrap=None, unsafe_no_sandbox=True)
    )
    try:
        ex.launch(Launch("u#1", "u", ("sh", "-c", "exit 4"), (), tmp_path / "logs"))
        got = _wait_exits(ex, "u#1")["u#1"]
        assert isinstance(got, AllocationExited) and got.exit_code == 4
    finally:
        ex.close()


def _wait_exits(ex: LocalExecutor, *aids: str) -> dict[str, AllocationExited | AllocationFailed]:
    got: dict[str, AllocationExited | AllocationFailed] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and set(got) != set(aids):
        got.update(
            {e.allocation_id: e for e in ex.poll() if isinstance(e, AllocationExited | AllocationFailed)}
        )
        time.sleep(0.02)
    assert set(got) == set(aids), got
    return got


@root_only
def test_a_mapped_job_runs_as_its_site_account_and_owns_its_logs(tmp_path: Path, site_account: str) -> None:
    acct = account(site_account)
    work = tmp_path / "work"
    work.mkdir()
    os.chown(work, acct.uid, acct.gid)
    with LocalExecutor(tmp_path / "state", machine=simulated_machine(1)) as ex:
        cmd = "id -un; echo out > made.txt; grep ^Cap[EP] /proc/self/status"
        ex.launch(Launch("m#1", "m", ("sh", "-c", cmd), (), tmp_path / "logs", cwd=work, run_as=site_account))
        ex.launch(Launch("r#1", "r", ("true",), (), tmp_path / "logs", run_as="root"))
        ex.launch(Launch("n#1", "n", ("true",), (), tmp_path / "logs", run_as="no-such-account-xyz"))
        ex.launch(Launch("h#1", "h", ("true",), (), tmp_path / "logs", cwd=tmp_path / "state"))
        got = _wait_exits(ex, "m#1", "r#1", "n#1", "h#1")
    assert isinstance(got["m#1"], AllocationExited) and got["m#1"].exit_code == 0
    out = log_paths(tmp_path / "logs", "m#1")[0]
    assert out.read_text().split("\n")[0] == site_account
    assert "CapEff:\t0000000000000000" in out.read_text() and "CapPrm:\t0000000000000000" in out.read_text()
    st = out.stat()
    assert (st.st_mode & 0o777, st.st_uid) == (0o600, acct.uid)
    assert (work / "made.txt").stat().st_uid == acct.uid
    assert (work / "made.txt").stat().st_mode & 0o777 == 0o600  # umask 077
    assert isinstance(got["r#1"], AllocationFailed) and "it is root" in got["r#1"].reason
    assert isinstance(got["n#1"], AllocationFailed) and "no Unix account" in got["n#1"].reason
    assert isinstance(got["h#1"], AllocationFailed) and "inside the service's own files" in got["h#1"].reason


NON_ROOT_SCRIPT = """
import sys, time
from pathlib import Path
from gpupool.service.executors import AllocationStarted, Launch, LocalExecutor, log_paths
from gpupool.service.executors.gpus import simulated_machine
d = Path(sys.argv[1])
ex = LocalExecutor(d / "state", machine=simulated_machine(1), tick_s=0.02)
cmd = "id -u; ls /proc | grep -c '^[0-9]'; ls STATE || echo hidden; exit 3".replace("STATE", str(d / "state"))
ex.launch(Launch("a#1", "a", ("sh", "-c", cmd), (), d / "logs"))
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    done = [e for e in ex.poll() if not isinstance(e, AllocationStarted)]
    if done:
        print("EVENT", done[0].exit_code)
        break
    time.sleep(0.05)
ex.close()
print(log_paths(d / "logs", "a#1")[0].read_text(), end="")
"""


@root_only
def test_a_service_that_is_not_root_runs_jobs_as_itself_in_a_user_namespace() -> None:
    # The executor as ``nobody``: bubblewrap makes an unprivileged user namespace, the job runs
    # as the same uid, sees its own processes only and not the executor's state directory.
    system = Path("/usr/bin/python3")
    probe = subprocess.run(
        [str(system), "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    )
    if not system.exists() or probe.stdout.strip() != str(sys.version_info[:2]):
        pytest.skip("needs a system python3 of this version that 'nobody' can run")
    site = next(p for p in sys.path if p.endswith("site-packages"))
    src = str(Path(__file__).resolve().parents[2] / "src")
    work = Path(tempfile.mkdtemp(prefix="gpupool-nonroot-"))
    try:
        work.chmod(0o777)
        r = subprocess.run(
            ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
             str(system), "-c", NON_ROOT_SCRIPT, str(work)],
            capture_output=True, text=True, timeout=60, cwd=work,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{src}:{site}"},
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = r.stdout.split()
    assert lines[:2] == ["EVENT", "3"], (r.stdout, r.stderr)  # the job's own status
    uid, nprocs = int(lines[2]), int(lines[3])
    assert uid == 65534 and nprocs < 10 and lines[-1] == "hidden", r.stdout
