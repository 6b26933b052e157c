"""Round leases: whether a round of a round-based policy may stop a running job.

Gavel's mechanism (``gpupool.core.heterogeneity``) re-plans every accelerator at each round
boundary; a running job the plan leaves out, or puts on another model, has its lease ended
and stops. In the twin that costs a restart; on a live pool it stops a real process, which
throws away what it computed since its last checkpoint and pays its restart again. This
module owns the rule that a round stops a running job only when the stop is worth its cost:

* the **cost** of stopping ``j`` now (``stop_cost``): the configured restart overhead plus
  the work lost since its last checkpoint (its declared interval; with none, everything
  since it started: a job is not assumed to save its state when told to stop);
* a **move** (the plan puts ``j`` on another accelerator model, ``judge_move``) gains the
  time its remaining expected run shortens there, from the throughput table:
  ``R / speed_here - R / speed_there`` for ``R`` its remaining reference work (negative
  on a slower model);
* a **hand-over** (the plan gives ``j``'s accelerators to jobs the policy ranks ahead, be
  ``j`` left out or moved, ``judge_share``) moves no throughput: it hands one round of
  service from ``j`` to a waiting job, which gains that round;
* ``judge_stop``: a round stops ``j`` only when the better of the two gains exceeds the
  cost; otherwise ``j`` keeps its accelerators and the waiting job gets its share when they
  free up. So a job without checkpoints is never time-shared away after its first round
  (it is not killed over and over), a move to an equally fast model that nobody else needs
  never happens, and a stop whose accelerators the plan leaves free gains nothing.

Every verdict carries the figures and says them in words, for the ``Preempt`` of a job
that is stopped and the ``Explain`` of a job that waits because another kept its lease.

Part of the pure core: figures in, verdicts out; no clock, no state.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gpupool.core.job_state import JobState


class LeaseChange(StrEnum):
    """What a round's plan would do with a running job's accelerators."""

    #: it runs on another accelerator model
    MOVE = "move"
    #: it is left out this round: jobs the policy ranks ahead get its accelerators
    SHARE = "share"


@dataclass(frozen=True, slots=True)
class StopCost:
    """What stopping a running job now costs, in milliseconds of its run time."""

    restart_ms: int
    lost_ms: int

    @property
    def total_ms(self) -> int:
        return self.restart_ms + self.lost_ms

    def words(self) -> str:
        parts = f"restart {_dur(self.restart_ms)} + {_dur(self.lost_ms)} since its checkpoint"
        return f"{_dur(self.total_ms)} ({parts})"


@dataclass(frozen=True, slots=True)
class LeaseVerdict:
    """Whether a round may stop a running job, with the figures that decided it."""

    job_id: str
    change: LeaseChange
    stop: bool
    gain_ms: float
    cost: StopCost

    def words(self) -> str:
        """The verdict in a sentence (the detail of a ``Preempt`` or an ``Explain``)."""
        gain = _dur(int(self.gain_ms))
        if self.change is LeaseChange.MOVE:
            what = f"moving {self.job_id} gains {gain} of its remaining run"
            if self.gain_ms <= 0:
                what = f"moving {self.job_id} gains nothing"
        elif self.gain_ms > 0:
            what = f"stopping {self.job_id} hands a waiting job {gain} (one round)"
        else:
            what = f"stopping {self.job_id} gains nothing (no other job takes its accelerators)"
        op = ">" if self.stop else "<="
        return f"{what} {op} its cost {self.cost.words()}"


def stop_cost(j: JobState, now: int, restart_overhead_ms: int, saves_on_stop: bool = False) -> StopCost:
    """The cost of stopping running ``j`` at ``now``: restart overhead + work since its checkpoint
    (none when ``saves_on_stop``: the job checkpoints when its lease ends)."""
    if saves_on_stop:
        return StopCost(restart_overhead_ms, 0)
    ran = max(0, now - j.start_ms)
    ci = j.spec.checkpoint_interval_ms
    lost = ran % ci if ci > 0 else ran
    return StopCost(restart_overhead_ms, lost)


def judge_move(
    j: JobState, cost: StopCost, remaining_work: float, speed_here: float, speed_there: float
) -> LeaseVerdict:
    """May a round move ``j`` from a model where it runs at ``speed_here`` to one at ``speed_there``?

    Speeds are reference work per wall millisecond (the throughput table); ``remaining_work``
    is its expected remaining reference work. The lost work is redone on the new model, at
    its speed there, so the cost counts it stretched or shrunk accordingly.
    """
    if speed_here <= 0 or speed_there <= 0:
        # a model it cannot run on is no move the plan makes; keep it where it runs
        return LeaseVerdict(j.spec.id, LeaseChange.MOVE, False, 0.0, cost)
    gain = remaining_work / speed_here - remaining_work / speed_there
    redo = StopCost(cost.restart_ms, round(cost.lost_ms * speed_here / speed_there))
    return LeaseVerdict(j.spec.id, LeaseChange.MOVE, gain > redo.total_ms, gain, redo)


def judge_share(j: JobState, cost: StopCost, round_ms: int) -> LeaseVerdict:
    """May a round leave running ``j`` out so that a job ranked ahead gets one round of service?"""
    return LeaseVerdict(j.spec.id, LeaseChange.SHARE, round_ms > cost.total_ms, float(round_ms), cost)


def judge_stop(
    j: JobState,
    cost: StopCost,
    remaining_work: float,
    speed_here: float,
    speed_there: float | None,
    handed_ms: int,
) -> LeaseVerdict:
    """May a round stop running ``j``: its own gain if it moves (``speed_there``; None: it is
    left out), or the round it hands to others (``handed_ms``; 0: nobody takes its place)?"""
    share = judge_share(j, cost, handed_ms)
    if speed_there is None:
        return share
    move = judge_move(j, cost, remaining_work, speed_here, speed_there)
    if move.stop or share.stop:
        return move if move.stop else share
    return share if share.gain_ms > max(move.gain_ms, 0.0) else move


def _dur(ms: int) -> str:
    """A duration in words: ``45 s``, ``12 min``, ``3 h 5 min``."""
    s = max(0, ms) // 1000
    if s < 120:
        return f"{s} s"
    m = s // 60
    if m < 120:
        return f"{m} min"
    return f"{m // 60} h {m % 60} min"
