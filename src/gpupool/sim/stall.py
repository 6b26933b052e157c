"""A stalled simulation: when the twin can tell that it will never progress, and the error it raises.

This module owns ``SimulationStuck`` and ``StallWatch``, the two rules the simulator checks
after every cycle instead of ticking forever:

* **dead end**: jobs are pending, nothing runs, no submission is ahead and no node is out
  (down or drained). Capacity changes only when a node comes back, so a job that cannot
  start on an idle fleet with every node up never will. A policy
  without rounds has no event left at all; one with rounds gets ``DEAD_END_ROUNDS`` rounds
  to start something (a round-based allocation starts jobs on its next round);
* **livelock**: after the last submission, no job has ended for longer than the stall
  bound, e.g. a preemptive policy that preempts every attempt before its first checkpoint,
  so no job keeps any work. The bound is twice the longest attempt any job of the workload
  could need uninterrupted (its work on the slowest accelerator of the fleet, plus the
  largest restart overhead), and at least ``MIN_STALL_MS``: a policy that lets attempts
  run ends at least one job within it.

Both raise ``SimulationStuck`` naming the policy, the simulated time and the stuck jobs.
Imported by the CLI without the simulator (the error must be catchable cheaply).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

#: Rounds a round-based policy gets to start a pending job on an idle fleet.
DEAD_END_ROUNDS: Final = 3
#: The livelock bound is never shorter than a day of simulated time.
MIN_STALL_MS: Final = 86_400_000
#: How many stuck jobs the error's message names (all are in ``SimulationStuck.jobs``).
NAMED_JOBS: Final = 5


def _days(ms: int) -> str:
    return f"{ms / 86_400_000:,.1f} d"


class SimulationStuck(RuntimeError):
    """The simulation can never finish: names the policy, why, when and the stuck jobs.

    ``jobs``: (job id, its scheduler's reason) of every job still pending or running.
    """

    def __init__(self, policy: str, why: str, now_ms: int, jobs: Sequence[tuple[str, str]]) -> None:
        self.policy = policy
        self.why = why
        self.now_ms = now_ms
        self.jobs = list(jobs)
        named = "; ".join(f"{i} ({r})" if r else i for i, r in self.jobs[:NAMED_JOBS])
        more = f" and {len(self.jobs) - NAMED_JOBS:,} more" if len(self.jobs) > NAMED_JOBS else ""
        super().__init__(
            f"simulation stuck under policy {policy!r} at {_days(now_ms)} of simulated time: {why}; "
            f"{len(self.jobs):,} jobs can never end: {named}{more}"
        )


class StallWatch:
    """Checks the two stall rules after each cycle; ``check`` returns why it is stuck, or ''."""

    def __init__(self, last_submit_ms: int, stall_ms: int, round_ms: int) -> None:
        self.last_submit_ms = last_submit_ms
        self.stall_ms = stall_ms
        self.round_ms = round_ms
        self.last_end_ms = last_submit_ms
        self._idle_cycles = 0

    def ended(self, now: int) -> None:
        """A job ended (finished, cancelled or rejected) at ``now``."""
        self.last_end_ms = max(self.last_end_ms, now)

    def check(self, now: int, submits_left: int, pending: int, running: int, nodes_out: int = 0) -> str:
        """Why the run is stuck, or ''. ``nodes_out``: nodes down or drained now; one may come
        back, so pending work on an idle fleet is no dead end while any is out (the livelock
        bound still holds: failures must not hide a policy that never lets jobs finish)."""
        if pending and not running and not submits_left and not nodes_out:
            self._idle_cycles += 1
            if self.round_ms <= 0 or self._idle_cycles > DEAD_END_ROUNDS:
                return (
                    "jobs are pending, nothing runs and no event is ahead "
                    "(they cannot start on the idle fleet)"
                )
        else:
            self._idle_cycles = 0
        if (pending or running) and not submits_left:
            since = max(self.last_end_ms, self.last_submit_ms)
            if now - since > self.stall_ms:
                return (
                    f"no job has ended for {_days(now - since)} since the last "
                    f"{'submission' if since == self.last_submit_ms else 'job ended'} "
                    f"(bound {_days(self.stall_ms)}: twice the longest uninterrupted attempt); "
                    "the policy preempts jobs before they keep any work, or never lets them run"
                )
        return ""
