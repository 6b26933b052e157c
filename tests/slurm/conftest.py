"""Real Slurm for the tests: munge, MariaDB + slurmdbd, and two slurmctld with several slurmd each.

``slurm_site`` (session scope) starts, all under one temporary directory, with a private munge
key and socket and random free ports:

- one ``munged`` (both clusters and slurmdbd trust the same private key);
- MariaDB in a temporary data directory and one ``slurmdbd`` for both clusters (``sacct``);
  without the MariaDB packages accounting is off and the tests that need it say so;
- cluster ``alpha``: slurmctld + 3 slurmd (``a1``..``a3``) with 4 fake ``h100`` GPUs each, and
  cluster ``beta``: slurmctld + 3 slurmd (``b1``..``b3``) with 4 fake ``h200`` GPUs each. The
  GPUs are character devices made with ``mknod`` (Slurm 22.05 drops file-less GPU GRES).

Everything runs as root (slurmd must, to run jobs); elsewhere, or without the Debian packages
(``.ci/run`` installs them), the Slurm tests are skipped with a message saying which.
Facts used here were found by hand first: multiple-slurmd per host, ``config_overrides`` for
fake CPUs/memory, ``AccountingStoragePass=<munge socket>`` for a non-default socket.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
SLURM_PROGRAMS = (
    "slurmctld",
    "slurmd",
    "sbatch",
    "squeue",
    "sinfo",
    "scancel",
    "scontrol",
    "munged",
    "munge",
)
ACCOUNTING_PROGRAMS = ("slurmdbd", "sacct", "mariadbd", "mariadb-install-db", "mariadb-admin", "mariadb")
GPUS_PER_NODE = 4


def which(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in SBIN:
        p = Path(d) / name
        if p.exists():
            return str(p)
    return None


def missing(names: tuple[str, ...]) -> list[str]:
    return [n for n in names if which(n) is None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = env.get("PATH", "") + ":" + ":".join(SBIN)
    return env


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_pid(*paths: Path, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Signal the daemons named by pid files all at once, then wait (SIGKILL after ``timeout``)."""
    pids = [p for p in (_pid(path) for path in paths) if p is not None and _alive(p)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class Munge:
    base: Path

    @property
    def socket(self) -> Path:
        return self.base / "munge" / "munge.socket"

    def start(self) -> None:
        (self.base / "key").mkdir(parents=True, mode=0o700)
        (self.base / "munge").mkdir(parents=True)
        os.chmod(self.base / "munge", 0o755)
        key = self.base / "key" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        subprocess.run(
            [
                which("munged") or "munged",
                "--force",
                f"--key-file={key}",
                f"--socket={self.socket}",
                f"--pid-file={self.base / 'munge' / 'munged.pid'}",
                f"--seed-file={self.base / 'munge' / 'munged.seed'}",
                f"--log-file={self.base / 'munge' / 'munged.log'}",
            ],
            check=True,
            env=_env(),
        )

        def ok() -> bool:
            m = subprocess.run([which("munge") or "munge", "-S", str(self.socket), "-n"], capture_output=True)
            return m.returncode == 0

        wait_for(ok, 15, "munged")

    def stop(self) -> None:
        _stop_pid(self.base / "munge" / "munged.pid")


@dataclass
class Accounting:
    """MariaDB + one slurmdbd, shared by the clusters (as a real site's would be)."""

    base: Path
    munge: Munge
    db_port: int = field(default_factory=free_port)
    dbd_port: int = field(default_factory=free_port)
    mariadb: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        d = self.base
        for sub in ("etc", "log", "run", "mysql"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                which("mariadb-install-db") or "mariadb-install-db",
                "--no-defaults",
                f"--datadir={d / 'mysql'}",
                "--user=root",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            env=_env(),
        )
        self.mariadb = subprocess.Popen(
            [
                which("mariadbd") or "mariadbd",
                "--no-defaults",
                f"--datadir={d / 'mysql'}",
                "--user=root",
                f"--socket={d / 'run' / 'mysqld.sock'}",
                f"--port={self.db_port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={d / 'run' / 'mariadbd.pid'}",
                f"--log-error={d / 'log' / 'mariadbd.log'}",
                "--innodb-buffer-pool-size=64M",
                "--skip-log-bin",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sock = str(d / "run" / "mysqld.sock")

        def ping() -> bool:
            admin = which("mariadb-admin") or "mariadb-admin"
            return subprocess.run([admin, f"--socket={sock}", "ping"], capture_output=True).returncode == 0

        wait_for(ping, 30, "MariaDB")
        sql = (
            "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'pw'; "
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
        )
        subprocess.run([which("mariadb") or "mariadb", f"--socket={sock}", "-e", sql], check=True)
        conf = d / "etc" / "slurmdbd.conf"
        conf.write_text(
            f"""AuthType=auth/munge
AuthInfo=socket={self.munge.socket}
DbdHost=localhost
DbdPort={self.dbd_port}
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.db_port}
StorageUser=slurm
StoragePass=pw
PidFile={d / "run" / "slurmdbd.pid"}
LogFile={d / "log" / "slurmdbd.log"}
"""
        )
        os.chmod(conf, 0o600)
        # slurmdbd reads the slurmdbd.conf beside SLURM_CONF (the file need not exist).
        subprocess.run(
            [which("slurmdbd") or "slurmdbd"],
            check=True,
            env={**_env(), "SLURM_CONF": str(d / "etc" / "slurm.conf")},
        )

        def listening() -> bool:
            with socket.create_connection(("127.0.0.1", self.dbd_port), timeout=1):
                return True

        wait_for(listening, 30, "slurmdbd")

    def conf_lines(self, models: list[str]) -> str:
        tres = ",".join(["gres/gpu", *(f"gres/gpu:{m}" for m in models)])
        return "\n".join(
            [
                "AccountingStorageType=accounting_storage/slurmdbd",
                "AccountingStorageHost=127.0.0.1",
                f"AccountingStoragePort={self.dbd_port}",
                # with a non-default munge socket, slurmctld -> slurmdbd needs it here
                f"AccountingStoragePass={self.munge.socket}",
                f"AccountingStorageTRES={tres}",
                "AccountingStoreFlags=job_comment",
                "JobAcctGatherType=jobacct_gather/none",
            ]
        )

    def stop(self) -> None:
        _stop_pid(self.base / "run" / "slurmdbd.pid")
        if self.mariadb is not None:
            self.mariadb.terminate()
            try:
                self.mariadb.wait(20)
            except subprocess.TimeoutExpired:
                self.mariadb.kill()
                self.mariadb.wait()


@dataclass
class SlurmCluster:
    """One slurmctld and its slurmd, all on this host."""

    name: str
    base: Path
    munge: Munge
    prefix: str  # node names: <prefix>1 ...
    gres_type: str  # h100, h200
    nodes: int = 3
    accounting: Accounting | None = None
    ctld_port: int = field(default_factory=free_port)
    node_ports: dict[str, int] = field(default_factory=dict)

    @property
    def node_names(self) -> list[str]:
        return [f"{self.prefix}{i}" for i in range(1, self.nodes + 1)]

    @property
    def conf(self) -> Path:
        return self.base / "etc" / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {**_env(), "SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> str:
        done = subprocess.run(
            [which(argv[0]) or argv[0], *argv[1:]],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
            cwd=self.base,  # sbatch without --output writes slurm-<id>.out here, not in the checkout
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def write_conf(self) -> None:
        b = self.base
        for sub in ("etc", "log", "run", "state", "spool", "dev"):
            (b / sub).mkdir(parents=True, exist_ok=True)
        for g in range(GPUS_PER_NODE):
            dev = b / "dev" / f"nvidia{g}"
            if not dev.exists():
                try:
                    os.mknod(dev, 0o666 | 0o020000, os.makedev(195, g))  # a character device
                except PermissionError:
                    dev.touch()  # counts, though slurmd logs that it is no device
        for n in self.node_names:
            self.node_ports.setdefault(n, free_port())
            (b / "spool" / n).mkdir(exist_ok=True)
        acct = (
            self.accounting.conf_lines(["h100", "h200"])
            if self.accounting
            else "AccountingStorageType=accounting_storage/none"
        )
        node_lines = "\n".join(
            f"NodeName={n} NodeHostname=localhost NodeAddr=127.0.0.1 Port={p} CPUs=64 RealMemory=512000 "
            f"Gres=gpu:{self.gres_type}:{GPUS_PER_NODE}"
            for n, p in self.node_ports.items()
        )
        self.conf.write_text(
            f"""ClusterName={self.name}
SlurmctldHost=localhost
SlurmUser=root
SlurmctldPort={self.ctld_port}
AuthType=auth/munge
AuthInfo=socket={self.munge.socket}
CredType=cred/munge
StateSaveLocation={b / "state"}
SlurmdSpoolDir={b / "spool"}/%n
SlurmctldPidFile={b / "run"}/slurmctld.pid
SlurmdPidFile={b / "run"}/slurmd-%n.pid
SlurmctldLogFile={b / "log"}/slurmctld.log
SlurmdLogFile={b / "log"}/slurmd-%n.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
SchedulerParameters=batch_sched_delay=0,bf_interval=1,sched_interval=2
SlurmdTimeout=30
MinJobAge=600
KillWait=2
InactiveLimit=0
{acct}
{node_lines}
PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
        )
        devices = f"{b / 'dev'}/nvidia[0-{GPUS_PER_NODE - 1}]"
        (b / "etc" / "gres.conf").write_text(
            "AutoDetect=off\n"
            + "".join(
                f"NodeName={n} Name=gpu Type={self.gres_type} File={devices}\n" for n in self.node_names
            )
        )

    def start(self) -> None:
        self.write_conf()
        self.start_controller()
        for n in self.node_names:
            subprocess.run([which("slurmd") or "slurmd", "-N", n], check=True, env=self.env)
        self.wait_nodes_idle()

    def start_controller(self, *, reregister: bool = False) -> None:
        subprocess.run([which("slurmctld") or "slurmctld"], check=True, env=self.env)
        wait_for(lambda: "UP" in self.run("scontrol", "ping", check=False), 30, f"slurmctld of {self.name}")
        if reregister:
            # A restarted slurmctld waits for the next ping (SlurmdTimeout/3) to hear from its
            # slurmd; reconfigure makes them register now, so tests do not wait tens of seconds.
            self.run("scontrol", "reconfigure", check=False)

    def stop_controller(self, sig: int = signal.SIGTERM) -> None:
        _stop_pid(self.base / "run" / "slurmctld.pid", sig=sig)

    def wait_nodes_idle(self, timeout: float = 60) -> None:
        def idle() -> bool:
            states = self.run("sinfo", "-h", "-N", "-o", "%N %T", check=False).split()
            return len(states) == 2 * self.nodes and all(
                s in ("idle", "mixed", "allocated") for s in states[1::2]
            )

        wait_for(idle, timeout, f"the nodes of {self.name}")

    def set_node(self, node: str, state: str, reason: str = "test") -> None:
        args = ["scontrol", "update", f"nodename={node}", f"state={state}"]
        if state.lower() in ("down", "drain"):
            args.append(f"reason={reason}")
        self.run(*args)

    def cancel_everyones(self) -> None:
        """scancel every job Slurm lists, whoever's: jobs run as root, as the tenants' accounts
        of test_run_as.py and as gpupool's per-project accounts of the service tests."""
        ids = self.run("squeue", "-h", "-t", "PENDING,RUNNING,SUSPENDED", "-o", "%A", check=False).split()
        if ids:
            self.run("scancel", *ids, check=False)

    def cancel_all(self) -> None:
        self.cancel_everyones()
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: not self.run("squeue", "-h", check=False).strip(), 20, "jobs to end")

    def pid_files(self) -> list[Path]:
        return [self.base / "run" / f"slurmd-{n}.pid" for n in self.node_names] + [
            self.base / "run" / "slurmctld.pid"
        ]


@dataclass
class SlurmSite:
    munge: Munge
    clusters: dict[str, SlurmCluster]
    accounting: Accounting | None
    base: Path


@pytest.fixture(scope="session")
def slurm_site() -> Iterator[SlurmSite]:
    lacking = missing(SLURM_PROGRAMS)
    if lacking:
        pytest.skip(
            "real Slurm is not installed here (missing: " + ", ".join(lacking) + "); "
            "apt-get install slurm-wlm slurmctld slurmd slurm-client munge (as .ci/run does)"
        )
    if os.geteuid() != 0:
        pytest.skip("the Slurm tests start slurmd, which must run as root")
    # Outside pytest's temporary root, which is 0700: jobs that run as other accounts
    # (tests/slurm/test_run_as.py) must reach slurmd's spool (their batch script) and munge.
    base = Path(tempfile.mkdtemp(prefix="gpupool-slurm-", dir="/tmp"))
    os.chmod(base, 0o755)
    munge = Munge(base)
    started: list[object] = []
    accounting: Accounting | None = None
    clusters: dict[str, SlurmCluster] = {}
    try:
        munge.start()
        started.append(munge)
        if not missing(ACCOUNTING_PROGRAMS):
            accounting = Accounting(base / "dbd", munge)
            accounting.start()
        for name, prefix, gres in (("alpha", "a", "h100"), ("beta", "b", "h200")):
            c = SlurmCluster(name, base / name, munge, prefix, gres, accounting=accounting)
            clusters[name] = c
            c.start()
        yield SlurmSite(munge, clusters, accounting, base)
    finally:
        t0 = time.monotonic()
        for c in clusters.values():
            c.cancel_everyones()
        # every daemon at once: one by one, shutting down two clusters took 20 s
        pids = [p for c in clusters.values() for p in c.pid_files()]
        if accounting is not None:
            pids.append(accounting.base / "run" / "slurmdbd.pid")
        _stop_pid(*pids)
        if accounting is not None:
            accounting.stop()
        munge.stop()
        shutil.rmtree(base, ignore_errors=True)
        print(f"slurm site stopped in {time.monotonic() - t0:.1f} s")


@pytest.fixture
def site_dir() -> Iterator[Path]:
    """A service root the jobs' accounts can pass through (pytest's own temp root is 0700:
    a Slurm job running as another account could not reach its log directory below it)."""
    d = Path(tempfile.mkdtemp(prefix="gpupool-site-", dir="/tmp"))
    os.chmod(d, 0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def alpha(slurm_site: SlurmSite) -> Iterator[SlurmCluster]:
    """Cluster alpha, left as found: controller up, nodes idle, no jobs."""
    c = slurm_site.clusters["alpha"]
    yield c
    if "UP" not in c.run("scontrol", "ping", check=False):
        c.start_controller(reregister=True)
    c.cancel_all()
    for n in c.node_names:
        c.run("scontrol", "update", f"nodename={n}", "state=resume", check=False)
    c.wait_nodes_idle()
