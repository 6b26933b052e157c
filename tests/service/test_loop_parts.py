"""The loop's three parts each alone, on a real SQLite store (ADR 0012).

Intake reads and writes nothing; the journal writes a cycle in one transaction (or nothing);
dispatch sends the outbox and marks it. Also the typed stored job (old rows still load), the
job status enum (database, API, CLI) and the allocation index.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from gpupool.cli.main import app
from gpupool.core.decisions import Start, Stop
from gpupool.core.events import JobCancelled, JobFinished, JobSubmitted, NodeDown, NodeDrained
from gpupool.service import store
from gpupool.service.allocation_index import AllocationIndex, Running
from gpupool.service.api.app import create_app
from gpupool.service.db import EventLogRow, InboxRow, JobRow, OutboxRow, TenantRow, UsageRow, UserRow
from gpupool.service.dispatch import Dispatcher
from gpupool.service.executor_set import ExecutorSet
from gpupool.service.executors.base import AllocationExited, AllocationStarted, Launch, NodeChanged
from gpupool.service.intake import Finish, Intake
from gpupool.service.job_spec import StoredJobSpec
from gpupool.service.job_status import JobStatus
from gpupool.service.journal import Journal
from gpupool.service.launch_order import LaunchOrders, from_outbox, payload
from gpupool.service.leader import LeaseLost
from gpupool.service.rebuild import Rebuilt, rebuild
from gpupool.service.runtime import Runtime
from tests.service.conftest import make_service
from tests.service.fakes import RecordingExecutor


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    """A migrated, seeded SQLite database (the demo fleet and tenants); its loop never cycles."""
    runtime, _, _ = make_service(tmp_path, f"sqlite:///{tmp_path / 'gpupool.db'}")
    runtime.start()
    yield runtime
    runtime.stop()


def _submit(rt: Runtime, user: str, project: str, gpus: int = 8) -> int:
    with rt.factory() as s:
        tenant = s.scalars(select(TenantRow).where(TenantRow.path.like(f"%/{project}"))).one()
        uid = s.scalars(select(UserRow.id).where(UserRow.name == user)).one()
    spec = StoredJobSpec(command=("true",), gpus=gpus, project=tenant.path, models=("H100",), walltime_s=600)
    new = store.NewJob(tenant.id, uid, None, "", spec, "normal", False, "queued", "")
    seq = store.accept_submission(rt.engine, new, rt.clock())
    assert seq is not None
    return seq


def _state(rt: Runtime) -> Rebuilt:
    with rt.factory() as s:
        return rebuild(s, rt.fleet, rt.config, rt.clock())


def _count(s: Session, table: type) -> int:
    return int(s.scalar(select(func.count()).select_from(table)) or 0)


def _parts(rt: Runtime, tmp_path: Path, ex: RecordingExecutor) -> tuple[Intake, Journal, Dispatcher]:
    executors = ExecutorSet({"*": ex})
    orders = LaunchOrders(tmp_path / "logs")
    journal = Journal(rt.factory, orders)
    with rt.factory() as s:
        journal.reset(s)
    return (
        Intake(rt.reader, rt.fleet, executors),
        journal,
        Dispatcher(rt.factory, executors, orders, rt.clock),
    )


# -- intake ---------------------------------------------------------------------------------


def test_intake_turns_the_inbox_into_core_events_and_writes_nothing(rt: Runtime, tmp_path: Path) -> None:
    state = _state(rt)  # before the submissions: a rebuild would restore them as pending
    first = _submit(rt, "minjun.kim", "vision")
    second = _submit(rt, "hayoon.choi", "nlp", gpus=4)
    store.accept_cancel(rt.factory, second, rt.clock())
    node = rt.fleet.nodes[0].name
    store.accept_node_change(rt.factory, node, "drained", "test", "admin", rt.clock())
    intake, _, _ = _parts(rt, tmp_path, RecordingExecutor())
    got = intake.take(state, rt.clock(), [])
    assert [type(e) for e in got.events] == [JobSubmitted, JobSubmitted, JobCancelled, NodeDrained]
    sub = got.events[0]
    assert isinstance(sub, JobSubmitted)
    assert (sub.spec.id, sub.spec.gpus, sub.spec.models, sub.spec.walltime_ms) == (
        store.job_id(first),
        8,
        ("H100",),
        600_000,
    )
    assert sub.spec.project.endswith("/vision") and sub.spec.user == "minjun.kim"
    assert got.cancelled_pending == [second] and len(got.inbox_ids) == 4
    assert state.known == {store.job_id(first), store.job_id(second)}
    with rt.factory() as s:
        assert _count(s, InboxRow) == 4  # read, not consumed: the journal deletes them
        assert _count(s, EventLogRow) == 0


def test_intake_puts_finishes_before_node_changes_and_drops_stale_exits(rt: Runtime, tmp_path: Path) -> None:
    intake, _, _ = _parts(rt, tmp_path, RecordingExecutor())
    state = _state(rt)
    state.running.add(Running(7, "j7.3", "j7#1", "kisti"))
    node = rt.fleet.nodes[0].name
    now = rt.clock()
    got = intake.take(
        state,
        now,
        [
            NodeChanged(node, now, "down"),
            AllocationStarted("j7.3", now),
            AllocationExited("j7.3", now, 3),
            AllocationExited("j9.1", now, 0),  # not running: stopped by the loop itself
            NodeChanged("no-such-node", now, "down"),
        ],
    )
    assert got.events == [JobFinished("j7", "j7#1", "failed"), NodeDown(node)]
    assert got.finishes == {"j7.3": Finish(JobStatus.FAILED, 3, "exited with status 3")}
    assert got.engine_times == {}  # a local engine does not bill
    assert [r["type"] for r in got.log_rows] == [
        "NodeChanged",
        "AllocationStarted",
        "AllocationExited",
        "AllocationExited",
        "NodeChanged",
    ]


# -- journal --------------------------------------------------------------------------------


def test_the_journal_writes_rows_usage_outbox_log_and_consumes_the_inbox(rt: Runtime, tmp_path: Path) -> None:
    state = _state(rt)
    seqs = [_submit(rt, "minjun.kim", "vision"), _submit(rt, "hayoon.choi", "nlp")]
    intake, journal, _ = _parts(rt, tmp_path, RecordingExecutor())
    now = rt.clock()
    got = intake.take(state, now, [])
    decisions = state.scheduler.handle(got.events, now)
    starts = [d for d in decisions if isinstance(d, Start)]
    assert len(starts) == 2
    assert journal.record(state, now, got, decisions) is True  # wrote launches to the outbox
    with rt.factory() as s:
        rows = list(s.scalars(select(JobRow).order_by(JobRow.seq)))
        assert [r.state for r in rows] == [JobStatus.RUNNING, JobStatus.RUNNING]
        assert all(isinstance(r.state, JobStatus) for r in rows)
        assert [r.allocation_id for r in rows] == [f"j{q}.1" for q in seqs]
        assert [(u.allocation_id, u.end_ms) for u in s.scalars(select(UsageRow))] == [
            (f"j{q}.1", None) for q in seqs
        ]
        orders = LaunchOrders(tmp_path / "logs")
        outbox = list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))
        assert [o.kind for o in outbox] == ["launch", "launch"]
        by_row = {r.allocation_id: r for r in rows}
        for o in outbox:  # the launch read back from the outbox is the row's launch
            assert from_outbox(o) == orders.of_row(by_row[o.allocation_id])
        assert _count(s, InboxRow) == 0
        cycles = {c for (c,) in s.execute(select(EventLogRow.cycle))}
        assert cycles == {1} and _count(s, EventLogRow) == 1 + len(got.events) + len(decisions)
        # the rebuild's restore point heads the first cycle after it (ADR 0017), once
        kinds = list(s.scalars(select(EventLogRow.kind).order_by(EventLogRow.id)))
        assert kinds[0] == "restore" and kinds.count("restore") == 1
    assert state.take_marker(now) == []
    # the core's allocation ids map to the service's in one lookup
    for d in starts:
        assert state.running.service_id(d.allocation_id) == f"{d.job_id}.1"


def test_a_stop_closes_the_allocation_the_core_names(rt: Runtime, tmp_path: Path) -> None:
    state = _state(rt)
    seq = _submit(rt, "minjun.kim", "vision")
    intake, journal, _ = _parts(rt, tmp_path, RecordingExecutor())
    now = rt.clock()
    got = intake.take(state, now, [])
    journal.record(state, now, got, state.scheduler.handle(got.events, now))
    store.accept_cancel(rt.factory, seq, now + 5_000)
    got = intake.take(state, now + 5_000, [])
    decisions = state.scheduler.handle(got.events, now + 5_000)
    assert [type(d) for d in decisions] == [Stop]
    journal.record(state, now + 5_000, got, decisions)
    with rt.factory() as s:
        row = s.get(JobRow, seq)
        assert row is not None and row.state == JobStatus.CANCELLED and row.run_ms == 5_000
        assert row.attained == 8 * 5_000.0
        (usage,) = s.scalars(select(UsageRow))
        assert (usage.allocation_id, usage.end_ms) == (f"j{seq}.1", now + 5_000)
        kinds = [(o.kind, o.allocation_id) for o in s.scalars(select(OutboxRow).order_by(OutboxRow.id))]
        assert kinds == [("launch", f"j{seq}.1"), ("terminate", f"j{seq}.1")]
    assert len(state.running) == 0


class _FailsAfterTheRows(Journal):
    """A journal whose transaction fails after it wrote the log, the rows, usage and outbox."""

    def _apply(self, *args: Any, **kw: Any) -> bool:
        super()._apply(*args, **kw)
        raise OSError("disk full")


def _lost(s: Session) -> None:
    raise LeaseLost("another process leads")


@pytest.mark.parametrize("failure", ["fence", "mid-transaction"])
def test_a_journal_whose_transaction_fails_writes_nothing(rt: Runtime, tmp_path: Path, failure: str) -> None:
    state = _state(rt)
    _submit(rt, "minjun.kim", "vision")
    orders = LaunchOrders(tmp_path / "logs")
    if failure == "fence":
        journal, error = Journal(rt.factory, orders, fence=_lost), LeaseLost
    else:
        journal, error = _FailsAfterTheRows(rt.factory, orders), OSError
    intake = Intake(rt.reader, rt.fleet, ExecutorSet({"*": RecordingExecutor()}))
    now = rt.clock()
    got = intake.take(state, now, [])
    decisions = state.scheduler.handle(got.events, now)
    with pytest.raises(error):
        journal.record(state, now, got, decisions)
    with rt.factory() as s:
        assert [r.state for r in s.scalars(select(JobRow))] == [JobStatus.PENDING]
        counts = (_count(s, EventLogRow), _count(s, OutboxRow), _count(s, UsageRow), _count(s, InboxRow))
        assert counts == (0, 0, 0, 1)


# -- dispatch -------------------------------------------------------------------------------


def _launch(aid: str) -> Launch:
    return Launch(aid, aid.split(".")[0], ("true",), (("kisti-h100-0", (0, 1)),), Path("/tmp/l"), {"A": "b"})


def _outbox(rt: Runtime, rows: list[tuple[str, str]]) -> None:
    with rt.factory.begin() as s:
        for kind, aid in rows:
            body = payload(_launch(aid)) if kind == "launch" else {"grace_s": 1.0}
            s.add(
                OutboxRow(
                    kind=kind, allocation_id=aid, job_seq=1, cluster="kisti", payload=body, created_ms=1
                )
            )


def test_dispatch_sends_the_outbox_once_and_skips_launches_already_stopped(
    rt: Runtime, tmp_path: Path
) -> None:
    _outbox(rt, [("launch", "j1.1"), ("launch", "j2.1"), ("terminate", "j2.1")])
    ex = RecordingExecutor()
    _, _, dispatcher = _parts(rt, tmp_path, ex)
    assert dispatcher.send() == 3
    assert ex.launches == [_launch("j1.1")]  # j2.1 was stopped before it ever ran
    with rt.factory() as s:
        assert all(o.dispatched_ms == rt.clock() for o in s.scalars(select(OutboxRow)))
    assert dispatcher.send() == 0 and not dispatcher.dirty
    dispatcher.dirty = True
    assert dispatcher.send() == 0 and ex.launches == [_launch("j1.1")]  # nothing is sent twice


class _Broken(RecordingExecutor):
    def launch(self, launch: Launch) -> None:
        raise OSError("the engine is away")


def test_dispatch_leaves_what_an_executor_refused_for_the_next_cycle(rt: Runtime, tmp_path: Path) -> None:
    _outbox(rt, [("launch", "j1.1")])
    _, _, dispatcher = _parts(rt, tmp_path, _Broken())
    assert dispatcher.send() == 0 and dispatcher.dirty
    with rt.factory() as s:
        assert [o.dispatched_ms for o in s.scalars(select(OutboxRow))] == [None]


# -- the allocation index, the stored job, the status ------------------------------------------


def test_the_allocation_index_maps_both_ids() -> None:
    idx = AllocationIndex()
    idx.add(Running(7, "j7.3", "j7#1", "kisti"))
    idx.add(Running(8, "j8.1", "j8#1", "kisti"))
    assert idx.service_id("j7#1") == "j7.3" and "j7.3" in idx and len(idx) == 2
    assert idx.pop("j7.3") == Running(7, "j7.3", "j7#1", "kisti")
    assert idx.service_id("j7#1") == "" and idx.pop("j7.3") is None and list(idx) == ["j8.1"]


def test_a_stored_spec_reads_old_rows_and_keeps_what_it_does_not_know() -> None:
    old = StoredJobSpec.from_json({"gpus": 2, "command": ["python", "x.py"]})
    assert (old.walltime_s, old.kind, old.workload_class, old.topology, old.env, old.cwd) == (
        0,
        "training",
        "default",
        "any",
        {},
        None,
    )
    assert (old.image, old.dependency, old.array) == (None, "", "")  # rows from before ADR 0013/0019
    assert (old.mig, old.mig_count, old.gpu_fraction, old.gpu_memory_gib) == (None, 1, None, None)
    shared = StoredJobSpec.from_json({**old.to_json(), "gpus": 1, "gpu_fraction": 0.25, "gpu_memory_gib": 10})
    assert (shared.gpu_fraction, shared.gpu_memory_gib, shared.extra) == (0.25, 10.0, {})
    typed = StoredJobSpec.from_json(
        {**old.to_json(), "image": "busybox:1", "dependency": "afterok:j1", "array": "0-3"}
    )
    assert (typed.image, typed.dependency, typed.array, typed.extra) == ("busybox:1", "afterok:j1", "0-3", {})
    newer = {**old.to_json(), "fraction": 0.5}
    back = StoredJobSpec.from_json(newer)
    assert back.extra == {"fraction": 0.5} and back.to_json() == newer
    assert old.same_request(StoredJobSpec.from_json({**old.to_json(), "budget_note": "over"}))


def test_an_old_row_loads_runs_and_reads_through_the_api(tmp_path: Path) -> None:
    """A row written before the typed spec (keys missing) is started and shown like any other."""
    runtime, _, executor = make_service(tmp_path, f"sqlite:///{tmp_path / 'gpupool.db'}")
    runtime.start()
    try:
        with runtime.factory() as s:
            pid = s.scalars(select(TenantRow.id).where(TenantRow.path.like("%/vision"))).one()
            uid = s.scalars(select(UserRow.id).where(UserRow.name == "minjun.kim")).one()
        with runtime.engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO jobs (seq, project_id, user_id, name, spec, state, priority_class,"
                    " over_budget, submit_ms, attempt, reason, detail, run_ms, attained, preemptions)"
                    " VALUES (1, :p, :u, 'old', :spec, 'pending', 'normal', 0, 1, 0, 'queued', '', 0, 0, 0)"
                ),
                {"p": pid, "u": uid, "spec": '{"gpus": 8, "command": ["true"], "walltime_s": 60}'},
            )
            c.execute(text("INSERT INTO inbox (kind, job_seq, created_ms) VALUES ('submit', 1, 1)"))
        assert runtime.loop.cycle().starts == 1
        assert executor.launches[0].walltime_s == 60.0 and executor.launches[0].env == {}
        from gpupool.service.api.jobs import job_out

        with runtime.factory() as s:
            row = s.get(JobRow, 1)
            assert row is not None
            out = job_out(row, "academia/snu/vision", "minjun.kim")
        assert (out.state, out.gpus, out.models, out.workload_class) == (JobStatus.RUNNING, 8, [], "default")
    finally:
        runtime.stop()


def test_one_status_enum_for_the_openapi_document_and_the_cli(rt: Runtime) -> None:
    schemas = create_app(rt).openapi()["components"]["schemas"]
    assert schemas["JobStatus"]["enum"] == [s.value for s in JobStatus]
    assert schemas["JobOut"]["properties"]["state"] == {"$ref": "#/components/schemas/JobStatus"}
    bad = CliRunner().invoke(app, ["queue", "--state", "finished"])
    assert bad.exit_code == 2 and "finished" in bad.output
