"""Failover benchmark: SIGKILL the leader of two ``gpupool serve``; how soon the standby schedules.

Steps:

1. start a private PostgreSQL (as the test suite does: ``tests/service/conftest.py``), or use
   SQLite with ``--database sqlite``, and two ``gpupool serve`` on it sharing one data
   directory (the local executor, simulated GPUs; jobs sleep ``--job-seconds``);
2. submit a steady load of 1- and 2-GPU jobs round-robin over both servers, all along;
3. ``--kills`` times: SIGKILL the server whose scheduler leads, wait for the other's scheduler
   to take the lease and complete its first cycle (the lease row's ``last_cycle_ms`` under
   the new epoch), then start the killed server again as the new standby;
4. stop the load and check, as ``tests/service/test_failover.py`` does: every 2xx submission
   present once, no accelerator held by two jobs at any instant (the event log replayed), no
   allocation launched twice.

The failover time of one kill is from the SIGKILL to the new leader's first cycle (the core
rebuilt from the database, the executors reconciled). Prints ONE JSON object on stdout.

    .venv/bin/python benchmarks/failover.py                      # PostgreSQL, 5 kills
    .venv/bin/python benchmarks/failover.py --database sqlite --kills 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.service.conftest import postgres_server  # noqa: E402 - after the path above
from tests.service.pool_servers import (  # noqa: E402
    Burst,
    ServeProcess,
    check_event_log,
    jobs_by_key,
    kill_jobs,
    lease_epoch,
    marker_command,
    mint_tokens,
    starts_per_allocation,
    wait_for_new_leader,
)


@contextlib.contextmanager
def database(kind: str, data: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{data / 'gpupool.db'}"
        return
    with postgres_server() as pg:
        yield pg.new_database()


def run(kind: str, kills: int, job_s: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="gpupool-failover-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        markers = data / "markers"
        markers.touch()
        with database(kind, data) as url:
            servers = [ServeProcess(data, url, "a"), ServeProcess(data, url, "b")]
            burst: Burst | None = None
            try:
                servers[0].start()
                servers[1].start()
                servers[1].wait_standing_by()
                tokens = mint_tokens(servers[0])
                command = marker_command(markers, job_s)
                burst = Burst(servers, tokens, command, per_thread=100_000, pause_s=0.1)
                burst.start(threads_per_user=1)
                times: list[float] = []
                for k in range(kills):
                    time.sleep(2.0)  # the load runs under this leader for a while
                    leader = next(s for s in servers if s.role() == "leader")
                    standby = next(s for s in servers if s is not leader)
                    epoch = lease_epoch(url)
                    killed_ms = int(time.time() * 1000)
                    leader.kill(signal.SIGKILL)
                    _, first_cycle_ms = wait_for_new_leader(url, epoch, timeout_s=60)
                    times.append(round((first_cycle_ms - killed_ms) / 1000, 3))
                    print(f"kill {k + 1}: the standby scheduled after {times[-1]:.2f} s", file=sys.stderr)
                    leader.start()  # back as the new standby
                    leader.wait_standing_by()
                    assert standby.role() == "leader"
                burst.stop()
                time.sleep(1.0)
                by_key = jobs_by_key(url)
                lost = [k for k in burst.acked if len(by_key.get(k, [])) == 0]
                duplicated = [k for k, seqs in by_key.items() if len(seqs) > 1]
                problems = check_event_log(url)
                twice, _ = starts_per_allocation(markers)
                if twice:
                    print(f"launched twice: {sorted(twice.items())[:10]}", file=sys.stderr)
                    keep = Path(tempfile.mkdtemp(prefix="gpupool-failover-kept-"))
                    for f in data.glob("*.log"):
                        (keep / f.name).write_bytes(f.read_bytes())
                    (keep / "markers").write_bytes(markers.read_bytes())
                    print(f"server logs and markers kept in {keep}", file=sys.stderr)
                return {
                    "database": kind,
                    "kills": kills,
                    "job_seconds": job_s,
                    "failover_s": times,
                    "failover_max_s": max(times),
                    "failover_mean_s": round(statistics.fmean(times), 3),
                    "submissions_acked": len(burst.acked),
                    "submissions_unanswered": burst.errors,
                    "lost": len(lost),
                    "duplicated": len(duplicated),
                    "double_booked": len(problems),
                    "launched_twice": len(twice),
                    "problems": problems[:5],
                }
            finally:
                if burst is not None:
                    burst.stop()
                for s in servers:
                    if s.alive():
                        s.kill(signal.SIGTERM)
                kill_jobs(starts_per_allocation(markers)[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument(
        "--job-seconds",
        type=float,
        default=10.0,
        help="how long each job runs (the local executor cannot tell a job that began and ended "
        "while no scheduler ran from one never started: very short jobs may be launched twice)",
    )
    args = ap.parse_args()
    print(json.dumps(run(args.database, args.kills, args.job_seconds)))


if __name__ == "__main__":
    main()
