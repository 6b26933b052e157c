"""CPU time of the same cycles without and with an advance reservation (ADR 0020).

One run, both variants alternated (wall times are noisy on shared cores: ``process_time``):
64 nodes of 8 H100, 20 projects, 3,000 jobs submitted at once under fairshare+EASY, then 200
cycles each ending one job. The reservation holds one node far in the future, so it blocks no
job: the decisions are checked equal and the ratio is the cost of planning around it.

    .venv/bin/python -m benchmarks.advance_reservations
"""

from __future__ import annotations

import time

from tests.builders import fleet, job, tenants

from gpupool.core.advance_reservations import AdvanceReservation
from gpupool.core.decisions import Decision, Start
from gpupool.core.events import JobFinished, JobSubmitted, ReservationCreated
from gpupool.core.scheduler import Scheduler, SchedulerConfig

H = 3_600_000


def run(with_reservation: bool) -> tuple[float, list[Decision]]:
    s = Scheduler(
        fleet(racks=8, nodes_per_rack=8, gpus=8),
        tenants(*[f"p{i}" for i in range(20)]),
        SchedulerConfig(policy="fairshare", backfill="easy"),
    )
    if with_reservation:
        far = AdvanceReservation("m", 10**12, 10**12 + H, nodes=("c0b0r0n0",))
        s.handle([ReservationCreated(far)], 0)
    subs = [
        JobSubmitted(job(f"j{i}", 1 + (i * 7) % 16, project=f"p{i % 20}", walltime_ms=(1 + i % 5) * H))
        for i in range(3000)
    ]
    t0 = time.process_time()
    out = s.handle(subs, 0)
    seen = list(out)
    running: list[tuple[str, str]] = []
    for c in range(1, 200):
        running += [(d.job_id, d.allocation_id) for d in out if isinstance(d, Start)]
        out = s.handle([JobFinished(*running.pop(0))] if running else [], c * 60_000)
        seen += out
    return time.process_time() - t0, seen


def main() -> None:
    for _ in range(3):
        (a, da), (b, db) = run(False), run(True)
        assert da == db, "a reservation that blocks nobody changed a decision"
        print(f"no reservation {a:.3f} s CPU, one reservation {b:.3f} s CPU, ratio {b / a:.2f}")


if __name__ == "__main__":
    main()
