"""The scheduler packs fractions: MIG slices and shares placed through ``PoolFractions``.

Scenario tests of the live core (``Scheduler``), and a property over every registered policy
that no GPU's slices or memory are ever oversubscribed under mixed fractional and whole
workloads.
"""

from __future__ import annotations

import csv
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gpupool.cli.main import app
from gpupool.core.decisions import Reason, Reserve, Start
from gpupool.core.events import Event, JobFinished, JobSubmitted, NodeDown, NodeUp, Tick
from gpupool.core.fleet import Fleet, FleetBuilder
from gpupool.core.fraction_pool import FractionPlacement
from gpupool.core.gpu_share import UNIT
from gpupool.core.job import JobSpec
from gpupool.core.node_fractions import MigMode, NodeFractions
from gpupool.core.policy import POLICIES
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from gpupool.fleetfile.catalogue import load_catalogue

from .builders import tenants

CAT = load_catalogue()
HOUR = 3_600_000


def _fleet(rule: NodeFractions, nodes: int = 2, gpus: int = 8) -> Fleet:
    b = FleetBuilder("t", CAT)
    b.add_site("s")
    c = b.add_cluster("c", "s")
    rack = b.add_rack(b.add_block(c, "b"), "r")
    names = [f"n{i}" for i in range(nodes)]
    b.add_nodes(rack, nodes, "H100", gpus, names)
    b.set_fractions(names, rule)
    return b.build()


def _job(id: str, project: str = "a", **kw: object) -> JobSpec:
    kw.setdefault("gpus", 1)
    kw.setdefault("submit_ms", 0)
    return JobSpec(id=id, project=project, duration_hint_ms=HOUR, **kw)  # type: ignore[arg-type]


def _starts(out: list[object]) -> dict[str, Start]:
    return {d.job_id: d for d in out if isinstance(d, Start)}


def test_seven_slices_share_one_h100_and_a_gang_still_gets_a_whole_node() -> None:
    s = Scheduler(_fleet(NodeFractions(shared=True, mig=MigMode.DYNAMIC)), tenants("a", "b"))
    events: list[Event] = [JobSubmitted(_job(f"m{i}", mig="1g.10gb", mig_count=1)) for i in range(7)]
    events.append(JobSubmitted(_job("g8", "b", gpus=8)))
    out = s.handle(events, 0)
    s.validate()
    started = _starts(out)
    gpus = {started[f"m{i}"].placement for i in range(7)}
    assert len(gpus) == 1, "all seven slices are on one GPU"
    ((node, ids),) = next(iter(gpus))
    assert len(ids) == 1
    starts = sorted(
        p.instance.start for g in s.state.fractions.grants.values() for p in g.pieces if p.instance
    )
    assert starts == list(range(7)), "seven 1g.10gb instances at the seven valid starts"
    # the 8-GPU gang gets the other node whole
    g8 = started["g8"]
    assert len(g8.placement) == 1 and g8.placement[0][0] != node and len(g8.placement[0][1]) == 8
    # charged 7 x 1/7 of an H100-hour in an hour, not 7 GPU-hours
    a = s.state.resolve("a")
    assert a is not None
    used = s.ledger.used_gpu_ms(a, HOUR)
    assert abs(used - HOUR) < 1e-6 * HOUR, used
    # an eighth slice does not fit the full GPU: it opens a second GPU on the same node
    out = s.handle([JobSubmitted(_job("m7", mig="1g.10gb", mig_count=1))], 2_000)
    s.validate()
    (m7_node, m7_ids) = _starts(out)["m7"].placement[0]
    assert m7_node == node and m7_ids != ids
    # a partly used GPU is not free to a gang: 6 GPUs are idle, yet a 8-GPU gang waits
    out = s.handle([JobSubmitted(_job("g8b", "b", gpus=8))], 1_000)
    s.validate()
    assert "g8b" not in _starts(out) and s.capacity.free[s.fleet.node_by_name[node]] == 6


def test_a_shared_gpu_never_oversubscribes_memory() -> None:
    s = Scheduler(_fleet(NodeFractions(shared=True), nodes=1, gpus=1), tenants("a"))
    jobs = [_job("s0", gpu_memory_gib=30.0), _job("s1", gpu_memory_gib=30.0), _job("f", gpu_fraction=0.1)]
    out = s.handle([JobSubmitted(j) for j in [*jobs, _job("s2", gpu_memory_gib=30.0)]], 0)
    s.validate()
    started = _starts(out)
    # 30 + 30 + 8 (10 % of compute is given 10 % of memory) = 68 GiB of 80: a third 30 GiB waits
    assert sorted(started) == ["f", "s0", "s1"]
    assert s.job("s2").reason is Reason.RESOURCES  # type: ignore[union-attr]
    assert len({d.placement for d in started.values()}) == 1, "all three on the one GPU"
    cell = s.state.fractions.state.cells[0][0]
    assert cell.share is not None and cell.share.memory_used == 68 * 1024
    assert cell.share.memory_used <= cell.share.memory_mib and cell.share.compute_used <= UNIT
    # a finish frees its 30 GiB and the waiting job runs
    out = s.handle([JobFinished("s0", s.job("s0").allocation_id)], 2_000)  # type: ignore[union-attr]
    s.validate()
    assert "s2" in _starts(out)
    # charged by the larger part: 30 / 80 of an H100 per job
    assert s.state.fractions.charged("s1") == 30 / 80


def test_preempting_a_fraction_frees_exactly_its_slice() -> None:
    s = Scheduler(_fleet(NodeFractions(mig=MigMode.DYNAMIC), nodes=1, gpus=1), tenants("a"))
    out = s.handle(
        [
            JobSubmitted(_job("big", mig="3g.40gb", mig_count=1)),
            JobSubmitted(_job("small", mig="2g.20gb", mig_count=1)),
        ],
        0,
    )
    s.validate()
    assert set(_starts(out)) == {"big", "small"}
    cell = s.state.fractions.state.cells[0][0]
    before = dict(cell.held)
    victim = s.job("big")
    assert victim is not None and isinstance(victim.placement, FractionPlacement)
    preempted: list[object] = []
    s._preemption.preempt(victim, 1_000, preempted, Reason.PREEMPTED, "test")
    s.validate()
    after = dict(cell.held)
    # the 3g.40gb instance is gone (dynamic MIG destroys it); the 2g.20gb one is untouched
    assert {k: v for k, v in before.items() if v == "small"} == after
    assert s.capacity.free[0] == 0, "the GPU still holds a slice: not free to whole-GPU jobs"
    # the preempted job goes back to its queue and starts again in the freed slices
    out = s.handle([Tick()], 2_000)
    s.validate()
    assert "big" in _starts(out)
    # both finish: the GPU is whole and free again
    for jid in ("big", "small"):
        s.handle([JobFinished(jid, s.job(jid).allocation_id)], 3_000)  # type: ignore[union-attr]
    s.validate()
    assert s.capacity.free[0] == 1 and not s.state.fractions.owned


def test_a_fraction_where_no_rule_allows_one_holds_a_whole_gpu() -> None:
    s = Scheduler(_fleet(NodeFractions(), nodes=1, gpus=2), tenants("a"))
    out = s.handle(
        [JobSubmitted(_job("m", mig="1g.10gb", mig_count=1)), JobSubmitted(_job("f", gpu_fraction=0.5))], 0
    )
    s.validate()
    assert set(_starts(out)) == {"m", "f"} and s.capacity.free[0] == 0
    assert not s.state.fractions.grants


def test_a_restart_puts_the_shares_back_on_their_gpu() -> None:
    fleet = _fleet(NodeFractions(shared=True), nodes=1, gpus=1)
    s = Scheduler(fleet, tenants("a"))
    out = s.handle([JobSubmitted(_job(f"h{i}", gpu_fraction=0.5)) for i in range(2)], 0)
    started = _starts(out)
    assert set(started) == {"h0", "h1"}
    back = Scheduler(fleet, tenants("a"))
    for jid, d in started.items():
        back.restore_running(s.job(jid).spec, d.placement, 0, attempt=1)  # type: ignore[union-attr]
    back.validate()
    assert back.state.fractions.charged("h0") == 0.5 and back.capacity.free[0] == 0
    # the GPU is full: a third half waits
    out = back.handle([JobSubmitted(_job("h2", gpu_fraction=0.5))], 1_000)
    assert "h2" not in _starts(out)
    back.validate()


def test_under_easy_a_fraction_packs_past_a_reservation_but_opens_no_gpu() -> None:
    s = Scheduler(
        _fleet(NodeFractions(shared=True), nodes=1, gpus=3),
        tenants("a"),
        SchedulerConfig(policy="fifo", backfill="easy"),
    )
    out = s.handle([JobSubmitted(_job("h0", gpu_fraction=0.5)), JobSubmitted(_job("w", gpus=1))], 0)
    assert set(_starts(out)) == {"h0", "w"} and s.capacity.free[0] == 1
    # a gang of 3 waits and reserves the pool
    out = s.handle([JobSubmitted(_job("g", gpus=3))], 1_000)
    assert "g" not in _starts(out) and any(isinstance(d, Reserve) and d.job_id == "g" for d in out)
    # a half packs beside h0 (it takes nothing the reservation counts); another half would
    # have to open the idle GPU the gang is promised: it waits
    halves = [JobSubmitted(_job(f"h{i}", gpu_fraction=0.5)) for i in (1, 2)]
    out = s.handle(halves, 2_000)
    s.validate()
    assert set(_starts(out)) == {"h1"}
    assert s.capacity.free[0] == 1, "the idle GPU stays whole for the reserved gang"


# -- a property over every registered policy ------------------------------------------------

_FRACTIONS = st.sampled_from(
    [
        {"mig": "1g.10gb", "mig_count": 1},
        {"mig": "2g.20gb", "mig_count": 1},
        {"mig": "3g.40gb", "mig_count": 1},
        {"mig": "1g.20gb", "mig_count": 2},
        {"gpu_fraction": 0.25},
        {"gpu_fraction": 0.5},
        {"gpu_memory_gib": 30.0},
        {"gpu_fraction": 0.1, "gpu_memory_gib": 50.0},
    ]
)


@st.composite
def _scripts(draw: st.DrawFn) -> list[tuple[str, object]]:
    steps: list[tuple[str, object]] = []
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(["frac", "frac", "frac", "whole", "finish", "down", "up", "tick"]))
        if kind == "frac":
            steps.append(("submit", dict(draw(_FRACTIONS), gpus=1)))
        elif kind == "whole":
            steps.append(("submit", {"gpus": draw(st.sampled_from([1, 2, 4, 8, 16]))}))
        elif kind == "finish":
            steps.append(("finish", draw(st.integers(0, 100))))
        elif kind in ("down", "up"):
            steps.append((kind, draw(st.sampled_from(["n0", "n1", "n2"]))))
        else:
            steps.append(("tick", None))
    return steps


def _mixed_fleet() -> Fleet:
    b = FleetBuilder("t", CAT)
    b.add_site("s")
    c = b.add_cluster("c", "s")
    rack = b.add_rack(b.add_block(c, "b"), "r")
    b.add_nodes(rack, 3, "H100", 4, ["n0", "n1", "n2"])
    geo = CAT["H100"].mig
    assert geo is not None
    b.set_fractions(["n0"], NodeFractions(shared=True, mig=MigMode.DYNAMIC))
    b.set_fractions(["n1"], NodeFractions(shared=True))
    b.set_fractions(
        ["n2"], NodeFractions(mig=MigMode.FIXED, layout=geo.layout(["3g.40gb", "2g.20gb", "1g.10gb"]))
    )
    return b.build()


def _check_no_oversubscription(s: Scheduler) -> None:
    s.validate()  # capacity, gangs, the fraction layer's cells and grants, the ledger
    fr = s.state.fractions
    geo = CAT["H100"].mig
    assert geo is not None
    compute: dict[tuple[int, int], int] = {}
    memory: dict[tuple[int, int], int] = {}
    slices: dict[tuple[int, int], int] = {}
    for g in fr.grants.values():
        for p in g.pieces:
            key = (p.node, p.gpu)
            if p.share is not None:
                compute[key] = compute.get(key, 0) + p.share.compute
                memory[key] = memory.get(key, 0) + p.share.memory_mib
            else:
                assert p.instance is not None
                m = geo.mask(p.instance)
                assert not slices.get(key, 0) & m, "two instances on one memory slice"
                slices[key] = slices.get(key, 0) | m
    whole = {
        (n, i)
        for j in s.running.values()
        if not isinstance(j.placement, FractionPlacement)
        for n, ids in j.placement
        for i in ids
    }
    for key, c in compute.items():
        assert c <= UNIT and memory[key] <= 80 * 1024, key
        assert key not in slices and key not in whole, key
    for key in slices:
        assert key not in whole, key


@settings(max_examples=40, deadline=None)
@given(_scripts(), st.sampled_from(list(POLICIES)), st.sampled_from(["none", "easy"]))
def test_no_gpu_is_oversubscribed_under_any_policy(
    script: list[tuple[str, object]], policy: str, backfill: str
) -> None:
    s = Scheduler(_mixed_fleet(), tenants("a", "b"), SchedulerConfig(policy=policy, backfill=backfill))
    now = 0
    for i, (kind, arg) in enumerate(script):
        now += 60_000
        events: list[Event] = []
        if kind == "submit":
            assert isinstance(arg, dict)
            events.append(JobSubmitted(_job(f"j{i}", "ab"[i % 2], submit_ms=now, **arg)))
        elif kind == "finish":
            running = sorted(s.running.values(), key=lambda j: j.seq)
            if running:
                j = running[int(arg) % len(running)]  # type: ignore[call-overload]
                events.append(JobFinished(j.spec.id, j.allocation_id))
        elif kind == "down":
            events.append(NodeDown(str(arg)))
        elif kind == "up":
            events.append(NodeUp(str(arg)))
        else:
            events.append(Tick())
        s.handle(events, now)
        _check_no_oversubscription(s)


# -- the twin ------------------------------------------------------------------------------

_ONE_GPU_FLEET = """\
name: one-shared
sites:
  - name: s
    clusters:
      - name: c
        blocks:
          - name: b
            racks:
              - name: r
                nodes:
                  - {count: 1, model: H100, gpus: 1, fractions: {shared: true, mig: dynamic}}
"""
_TENANTS = "name: one\nsectors:\n  lab:\n    organisations:\n      uni:\n        projects:\n          t: {}\n"
_TRACE = (
    "submit_s,duration_s,gpus,tenant,mig,mig_count,gpu_fraction,gpu_memory_gib\n"
    "0,3600,1,t,,,0.25,\n"
    "0,3600,1,t,,,0.25,\n"
    "0,3600,1,t,,,0.5,\n"
    "10,3600,1,t,1g.10gb,1,,\n"
)


def test_the_twin_runs_several_fractions_on_one_gpu(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(_ONE_GPU_FLEET, encoding="utf-8")
    (tmp_path / "tenants.yaml").write_text(_TENANTS, encoding="utf-8")
    (tmp_path / "trace.csv").write_text(_TRACE, encoding="utf-8")
    out = tmp_path / "out"
    args = ["simulate", "-f", str(tmp_path / "fleet.yaml"), "-t", str(tmp_path / "tenants.yaml")]
    args += ["-w", str(tmp_path / "trace.csv"), "--policy", "fifo", "--validate", "-o", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    with (out / "jobs.csv").open(encoding="utf-8") as f:
        rows = {row["id"]: row for row in csv.DictReader(f)}
    # the fleet has one GPU: three shares (0.25 + 0.25 + 0.5) run on it at once
    assert [rows[f"trace-{i}"]["first_start_ms"] for i in range(3)] == ["0", "0", "0"]
    # a MIG slice cannot go on a time-sliced GPU: it waits until the shares leave
    assert rows["trace-3"]["first_start_ms"] == "3600000"
