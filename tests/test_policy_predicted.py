"""``predicted``: short-predicted jobs first, learned from finished jobs only, never from hints."""

from __future__ import annotations

import heapq

from gpupool.core.decisions import Decision, Preempt, Start
from gpupool.core.events import Event, JobCancelled, JobFinished, JobSubmitted
from gpupool.core.job import JobSpec
from gpupool.core.policies.predicted import Predicted
from gpupool.core.policy import with_policy_defaults
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from tests.builders import fleet, job, tenants

SHORT_S, LONG_S = 100, 10_000


def drive(
    specs: list[JobSpec], truth: dict[str, int], cancel: dict[str, int] | None = None
) -> tuple[Scheduler, list[tuple[int, Decision]]]:
    """Submit ``specs`` at their submit times on one 8-GPU node; each job runs ``truth`` ms."""
    s = Scheduler(
        fleet(racks=1, nodes_per_rack=1),
        tenants("p"),
        with_policy_defaults(SchedulerConfig(policy="predicted")),
    )
    events: list[tuple[int, int, Event]] = []
    n = 0
    for spec in specs:
        events.append((spec.submit_ms, n := n + 1, JobSubmitted(spec)))
    for jid, at in (cancel or {}).items():
        events.append((at, n := n + 1, JobCancelled(jid)))
    heapq.heapify(events)
    log: list[tuple[int, Decision]] = []
    while events:
        now = events[0][0]
        batch = []
        while events and events[0][0] == now:
            batch.append(heapq.heappop(events)[2])
        for d in s.handle(batch, now):
            log.append((now, d))
            if isinstance(d, Start):
                heapq.heappush(
                    events, (now + truth[d.job_id], n := n + 1, JobFinished(d.job_id, d.allocation_id))
                )
            assert not isinstance(d, Preempt), "nothing here runs past the quantum"
    return s, log


def history_and_probe(hint_short: int, hint_long: int) -> tuple[list[JobSpec], dict[str, int]]:
    """Four finished jobs each of ann (short) and bob (long), then bob's and ann's probes queued
    behind a blocker; hints as given (the true run times are ``truth``)."""
    specs: list[JobSpec] = []
    truth: dict[str, int] = {}
    t = 0
    for i in range(4):
        for user, run_s, hint in (("ann", SHORT_S, hint_short), ("bob", LONG_S, hint_long)):
            jid = f"{user}{i}"
            specs.append(job(jid, 8, user=user, submit=t, duration_hint_ms=hint))
            truth[jid] = run_s * 1_000
            t += 1
    late = 200_000_000  # after every history job ended
    specs.append(job("blocker", 8, user="carol", submit=late))
    truth["blocker"] = 60_000
    specs.append(job("bob-late", 8, user="bob", submit=late + 1, duration_hint_ms=hint_long))
    specs.append(job("ann-late", 8, user="ann", submit=late + 2, duration_hint_ms=hint_short))
    truth["bob-late"], truth["ann-late"] = LONG_S * 1_000, SHORT_S * 1_000
    return specs, truth


def starts(log: list[tuple[int, Decision]]) -> list[str]:
    return [d.job_id for _, d in log if isinstance(d, Start)]


def test_the_job_predicted_short_from_its_users_history_starts_first() -> None:
    specs, truth = history_and_probe(hint_short=SHORT_S * 1_000, hint_long=LONG_S * 1_000)
    s, log = drive(specs, truth)
    order = starts(log)
    assert order[-3:] == ["blocker", "ann-late", "bob-late"]
    assert isinstance(s.policy, Predicted) and s.policy.predictor.observed == len(specs)


def test_before_any_finish_the_order_is_submission_order() -> None:
    # the same probes with no history: nothing to tell ann from bob, so bob (first) goes first
    specs, truth = history_and_probe(hint_short=1, hint_long=1)
    probes = [j for j in specs if j.id in ("blocker", "bob-late", "ann-late")]
    _, log = drive(probes, truth)
    assert starts(log) == ["blocker", "bob-late", "ann-late"]


def test_duration_hints_are_never_read() -> None:
    # hints that lie the other way round (ann's jobs said long, bob's short) change nothing
    specs, truth = history_and_probe(hint_short=SHORT_S * 1_000, hint_long=LONG_S * 1_000)
    lying, _ = history_and_probe(hint_short=LONG_S * 1_000, hint_long=1)
    _, honest_log = drive(specs, truth)
    _, lying_log = drive(lying, truth)
    assert honest_log == lying_log


def test_cancelled_jobs_teach_nothing() -> None:
    # ann's four history jobs are cancelled while pending: only bob's four finishes are learnt,
    # so ann's probe has no history of its own and bob's long one goes first (submit order)
    specs, truth = history_and_probe(hint_short=1, hint_long=1)
    cancel = {f"ann{i}": 2 * i + 1 for i in range(1, 4)}
    kept = [j for j in specs if j.id != "ann0"]
    s, log = drive(kept, truth, cancel)
    assert isinstance(s.policy, Predicted)
    assert s.policy.predictor.observed == len(kept) - len(cancel)
    assert starts(log)[-3:] == ["blocker", "bob-late", "ann-late"]


def test_each_scheduler_learns_alone() -> None:
    specs, truth = history_and_probe(hint_short=1, hint_long=1)
    a, _ = drive(specs, truth)
    b, _ = drive(specs[:3], truth)
    assert isinstance(a.policy, Predicted) and isinstance(b.policy, Predicted)
    assert a.policy is not b.policy
    assert (a.policy.predictor.observed, b.policy.predictor.observed) == (len(specs), 3)
