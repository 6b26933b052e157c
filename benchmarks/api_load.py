"""API load benchmark: job submissions per second and latency of ``POST /v1/jobs`` on SQLite.

Steps:

1. start the service in a subprocess (this file with ``--serve``: ``create_app`` over a
   ``Runtime`` on a fresh SQLite database, the demo fleet, the ``none`` executor so that no
   process is spawned per job, served by uvicorn), pinned to ``--server-cpus`` CPUs; with
   ``--scheduler process`` (the default, as ``gpupool serve``) the loop runs in the scheduler
   process of ADR 0006, with ``inline`` as a thread of the API process;
2. bootstrap: read the admin token the benchmark's server wrote, mint a token for a project member;
3. load: ``--clients`` client processes, each with ``--concurrency`` asyncio keep-alive
   connections (a minimal HTTP/1.1 client: see ``_Connection`` for why not httpx), submit 1-GPU
   jobs (each with its own ``Idempotency-Key``) for ``--seconds`` seconds; the first second
   is warm-up and not counted;
4. if Slurm is installed (``sbatch``, ``slurmctld``, ``slurmd``, ``munged``: ``.ci/run``
   installs them) and this runs as root, start a private Slurm as the test suite does
   (``tests/slurm/conftest.py``: its own munge key, slurmctld and three slurmd on free
   ports, under a temporary directory), time ``--sbatch-jobs`` ``sbatch --wrap true``
   submissions at the same concurrency, stop it, and report gpupool's rate over Slurm's.
   With ``SLURM_CONF`` already set, that Slurm is used instead.

Prints ONE JSON object on stdout: submissions_per_s, p50_ms, p99_ms, errors and the set-up.
The goal is >= 1,000 submissions/s with p99 <= 100 ms with the server on 2 cores. Not a test:
numbers depend on the machine (and here the clients share it with the server).

    .venv/bin/python benchmarks/api_load.py                 # 20 s
    .venv/bin/python benchmarks/api_load.py --seconds 3     # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

MEMBER = "minjun.kim"  # a member of the project below, in the demo and korea-2025 tenants
#: per fleet: the project the clients submit to and the model their jobs ask for
FLEETS = {"demo": ("vision", "H100"), "korea-2025": ("vision-lab", "B200")}


def serve(
    data_dir: Path, port: int, log_file: Path | None = None, fleet: str = "demo", scheduler: str = "process"
) -> None:
    """The server side (``--serve``): the service's own app factory under uvicorn."""
    import logging

    if log_file is not None:  # the loop's line per cycle (its duration, events, decisions)
        logging.basicConfig(
            filename=log_file, level=logging.INFO, format="%(relativeCreated)d %(name)s %(message)s"
        )

    from gpupool.service.api import server
    from gpupool.service.api.app import create_app
    from gpupool.service.runtime import Runtime, tune_gc_for_serving
    from gpupool.service.settings import ServiceSettings

    # as ``gpupool serve`` does: the runtime started first, then the GC tuned, then uvicorn
    # The rate limiter runs (its cost is measured) but far above the load: one token from a
    # few clients at 1,000+/s is this benchmark, not abuse (the default is 500/s per token).
    settings = ServiceSettings(
        data_dir=data_dir,
        fleet=fleet,
        executor="none",
        port=port,
        rate_limit_token_per_s=1e6,
        rate_limit_token_burst=1_000_000,
        rate_limit_address_per_s=1e6,
        rate_limit_address_burst=1_000_000,
    )
    # ``process``: as ``gpupool serve``, the loop in a scheduler process under the leader lease
    runtime = Runtime(settings, scheduler="process" if scheduler == "process" else "inline")
    runtime.start()
    # The service stores its admin token only as a hash: hand the load generator a token of its own.
    token = runtime.new_admin_token or runtime.mint_admin_token("benchmark")
    fd = os.open(data_dir / "bench-admin-token", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    tune_gc_for_serving()
    try:
        # served as ``gpupool serve`` serves (its connection limits included)
        server.run(create_app(runtime, manage_runtime=False), settings, log_level="warning", access_log=False)
    finally:
        runtime.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(
    data_dir: Path,
    cpus: list[int],
    log_file: Path | None = None,
    fleet: str = "demo",
    scheduler: str = "process",
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    cmd = [sys.executable, __file__, "--serve", str(data_dir), "--port", str(port), "--fleet", fleet,
           "--scheduler", scheduler]  # fmt: skip
    if log_file is not None:
        cmd += ["--server-log", str(log_file)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(proc.pid, cpus)  # the "server on N cores" part of the goal
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not answer /v1/health within 60 s")


def _member_token(url: str, data_dir: Path) -> str:
    admin = (data_dir / "bench-admin-token").read_text().strip()
    r = httpx.post(f"{url}/v1/tokens", json={"user": MEMBER}, headers={"Authorization": f"Bearer {admin}"})
    r.raise_for_status()
    return str(r.json()["token"])


class _Connection:
    """A minimal HTTP/1.1 keep-alive client connection for the load.

    Why not httpx here: on a small machine the clients share the CPUs with the server, and
    httpx's per-request cost is several times the server's (a bare FastAPI app measured
    ~450 requests/s through httpx and ~2,300/s through this on the same 2 cores), so the
    benchmark would measure the client. Set-up and checks still use httpx.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def _submission(host: str, token: str, body: bytes) -> bytes:
    return (
        f"POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Idempotency-Key: {uuid.uuid4().hex}\r\n\r\n"
    ).encode() + body


async def _load(
    url: str, token: str, concurrency: int, seconds: float, warmup: float, fleet: str, gpus: int
) -> dict[str, Any]:
    project, model = FLEETS[fleet]
    body = json.dumps(
        {"project": project, "gpus": gpus, "models": [model], "command": ["true"], "walltime_s": 3600}
    ).encode()
    parsed = httpx.URL(url)
    host, port = parsed.host, parsed.port or 80
    latencies: list[float] = []
    errors: dict[str, int] = {}
    start = time.perf_counter()
    count_from, stop_at = start + warmup, start + warmup + seconds

    async def worker() -> None:
        conn = await _Connection.open(host, port)
        try:
            while (t0 := time.perf_counter()) < stop_at:
                try:
                    status, _ = await conn.request(_submission(host, token, body))
                    key = "" if status == 201 else str(status)
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    key = type(e).__name__
                    conn.close()
                    conn = await _Connection.open(host, port)
                t1 = time.perf_counter()
                if t0 >= count_from:
                    if key:
                        errors[key] = errors.get(key, 0) + 1
                    else:
                        latencies.append(t1 - t0)
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"latencies": latencies, "errors": errors}


def _client_process(
    url: str, token: str, concurrency: int, seconds: float, warmup: float, fleet: str, gpus: int, out: Any
) -> None:
    out.put(asyncio.run(_load(url, token, concurrency, seconds, warmup, fleet, gpus)))


def _cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far (Linux), for CPU per request."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def _sbatch(jobs: int, concurrency: int) -> dict[str, Any]:
    exe = shutil.which("sbatch")
    if jobs <= 0:
        return {"available": False, "note": "--sbatch-jobs 0: not compared"}
    if exe is None:
        return {"available": False, "note": "sbatch is not on PATH: no local Slurm to compare with"}
    if os.environ.get("SLURM_CONF"):
        got = _time_sbatch(exe, jobs, concurrency, dict(os.environ))
        return {"available": True, "slurm": f"SLURM_CONF={os.environ['SLURM_CONF']}", **got}
    # A private Slurm, started and stopped as the test suite does it.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.slurm.conftest import SLURM_PROGRAMS, Munge, SlurmCluster, _stop_pid, missing

    lacking = missing(SLURM_PROGRAMS)
    if lacking or os.geteuid() != 0:
        why = f"missing {', '.join(lacking)}" if lacking else "slurmd must run as root"
        return {"available": False, "note": f"no local Slurm to compare with ({why})"}
    with tempfile.TemporaryDirectory(prefix="gpupool-load-slurm-") as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)
        munge = Munge(base)
        cluster = SlurmCluster("bench", base / "bench", munge, "s", "h100")
        t0 = time.perf_counter()
        try:
            munge.start()
            cluster.start()
            started_s = time.perf_counter() - t0
            version = cluster.run("sbatch", "--version", check=False).strip() or "Slurm"
            got = _time_sbatch(exe, jobs, concurrency, cluster.env)
        finally:
            cluster.run("scancel", "--user=root", check=False)
            _stop_pid(*cluster.pid_files())
            munge.stop()
    return {
        "available": True,
        "slurm": f"{version}: a private slurmctld + 3 slurmd on this machine, started in {started_s:.1f} s",
        **got,
    }


def _time_sbatch(exe: str, jobs: int, concurrency: int, env: dict[str, str]) -> dict[str, Any]:
    def one(_: int) -> tuple[float, bool]:
        t0 = time.perf_counter()
        r = subprocess.run(
            [exe, "--wrap", "true", "--output", "/dev/null"], capture_output=True, timeout=60, env=env
        )
        return time.perf_counter() - t0, r.returncode == 0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        got = list(pool.map(one, range(jobs)))
    wall = time.perf_counter() - t0
    ok = sorted(t for t, good in got if good)
    return {
        "jobs": jobs,
        "submissions_per_s": round(len(ok) / wall, 1),
        "p50_ms": round(statistics.median(ok) * 1000, 2) if ok else None,
        "errors": sum(1 for _, good in got if not good),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=20.0, help="measured load time (default 20)")
    ap.add_argument("--clients", type=int, default=2, help="client processes (default 2)")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight per client (default 8)")
    ap.add_argument("--server-cpus", type=int, default=2, help="CPUs the server is pinned to (0: no pinning)")
    ap.add_argument(
        "--sbatch-jobs", type=int, default=500, help="sbatch submissions to time, if sbatch exists"
    )
    ap.add_argument(
        "--fleet", choices=sorted(FLEETS), default="demo", help="the service's fleet preset (default demo)"
    )
    ap.add_argument(
        "--gpus", type=int, default=1, help="accelerators per job (default 1; larger gangs pile up pending)"
    )
    ap.add_argument("--server-log", type=Path, help="write the server's log (a line per cycle) to this file")
    ap.add_argument(
        "--scheduler",
        choices=["process", "inline"],
        default="process",
        help="the loop in a scheduler process as gpupool serve runs it (default), or a thread of the API",
    )
    args = ap.parse_args()
    if args.serve is not None:
        serve(args.serve, args.port, args.server_log, args.fleet, args.scheduler)
        return

    # Other work on the machine skews the numbers: report the load average the run started at.
    load_before = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpus = available[: args.server_cpus] if args.server_cpus else []
    warmup = 1.0
    with tempfile.TemporaryDirectory(prefix="gpupool-load-") as tmp:
        data_dir = Path(tmp)
        server, url = _start_server(data_dir, server_cpus, args.server_log, args.fleet, args.scheduler)
        try:
            token = _member_token(url, data_dir)
            queue: Any = mp.get_context("spawn").Queue()
            procs = [
                mp.get_context("spawn").Process(
                    target=_client_process,
                    args=(url, token, args.concurrency, args.seconds, warmup, args.fleet, args.gpus, queue),
                )
                for _ in range(args.clients)
            ]
            for p in procs:
                p.start()
            # CPU the server spends per submission: unlike the rate, it hardly depends on what
            # else the machine runs (the rate does: the clients and other work share the CPUs).
            time.sleep(warmup)
            cpu0 = _cpu_s(server.pid)
            results = [queue.get(timeout=args.seconds + 120) for _ in procs]
            cpu1 = _cpu_s(server.pid)
            for p in procs:
                p.join()
            jobs = httpx.get(
                f"{url}/v1/jobs", params={"limit": 1}, headers={"Authorization": f"Bearer {token}"}
            ).json()
        finally:
            server.terminate()
            server.wait(timeout=30)
    latencies = sorted(x for r in results for x in r["latencies"])
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    rate = len(latencies) / args.seconds
    sbatch = _sbatch(args.sbatch_jobs, args.clients * args.concurrency)
    out = {
        "benchmark": "api_load",
        "endpoint": "POST /v1/jobs",
        "database": "sqlite",
        "fleet": args.fleet,
        "scheduler": args.scheduler,
        "gpus_per_job": args.gpus,
        "submissions": len(latencies),
        "seconds": args.seconds,
        "submissions_per_s": round(rate, 1),
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
        "errors": sum(errors.values()),
        "server_cpu_ms_per_submission": (
            round((cpu1 - cpu0) * 1000 / len(latencies), 3)
            if cpu0 is not None and cpu1 is not None and latencies
            else None
        ),
        "errors_by_kind": errors,
        "goal": {
            "submissions_per_s": 1000,
            "p99_ms": 100,
            "met": rate >= 1000 and _percentile(latencies, 0.99) <= 0.1,
        },
        "clients": args.clients,
        "concurrency_per_client": args.concurrency,
        "server_cpus": server_cpus or "all",
        "machine_cpus": os.cpu_count(),
        "load_average_at_start": load_before,
        "clients_share_the_server_cpus": bool(server_cpus) and len(available) <= len(server_cpus),
        "newest_job_listed": bool(jobs.get("items")),
        "python": platform.python_version(),
        "sbatch": sbatch,
    }
    if sbatch.get("available") and sbatch.get("submissions_per_s"):
        out["ratio_vs_sbatch"] = round(rate / sbatch["submissions_per_s"], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
