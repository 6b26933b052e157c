"""Metrics of heterogeneous runs: finish-time fairness rho and effective / NPU-absorbed GPU-hours."""

from __future__ import annotations

import pytest

from gpupool.core.accelerator import AcceleratorModel, Catalogue
from gpupool.core.fleet import FleetBuilder
from gpupool.core.scheduler import SchedulerConfig
from gpupool.core.throughput import ThroughputTable
from gpupool.sim.metrics import compute_metrics, finish_time_fairness
from gpupool.sim.records import JobRecord, PoolSample, RunResult
from gpupool.sim.simulator import SimConfig, simulate
from gpupool.sim.workload import WorkloadJob

from .builders import tenants

H = 3_600_000


def rec(jid: str, submit: int, end: int, duration: int, gpus: int = 1, **kw: object) -> JobRecord:
    return JobRecord(
        jid,
        "t",
        gpus,
        submit,
        duration,
        state="finished",
        first_start_ms=submit,
        end_ms=end,
        **kw,  # type: ignore[arg-type]
    )


def run(jobs: list[JobRecord], samples: list[PoolSample], total: int = 4) -> RunResult:
    return RunResult("p", jobs, samples, total)


def test_rho_is_one_for_a_job_alone_at_full_speed() -> None:
    r = run([rec("a", 0, H, H)], [PoolSample(0, 1, 4, 0, 1), PoolSample(H, 0, 4, 0, 0)])
    assert finish_time_fairness(r).tolist() == pytest.approx([1.0])
    m = compute_metrics(r)
    assert m["ftf_rho_mean"] == pytest.approx(1.0) and m["ftf_rho_max"] == pytest.approx(1.0)


def test_rho_counts_the_share_a_job_would_get_among_the_jobs_it_contended_with() -> None:
    # 8 one-GPU jobs on 4 GPUs the whole time: a 1/8 share is half a GPU, so the isolated
    # JCT of a 1-h job is 2 h; job a took 3 h (rho 1.5), job b 1 h (rho 0.5)
    samples = [PoolSample(0, 4, 4, 4, 4), PoolSample(3 * H, 4, 4, 4, 4)]
    r = run([rec("a", 0, 3 * H, H), rec("b", 0, H, H)], samples)
    assert finish_time_fairness(r).tolist() == pytest.approx([1.5, 0.5])
    m = compute_metrics(r)
    assert m["ftf_rho_mean"] == pytest.approx(1.0) and m["ftf_rho_max"] == pytest.approx(1.5)


def test_rho_averages_contention_over_the_jobs_lifetime_and_scales_with_its_width() -> None:
    # 2 jobs in the system for the first hour, 8 for the second: mean N = 5; a 2-GPU job on
    # 4 GPUs: 1/5 share = 0.8 GPU, so its isolated JCT is 2.5 x its 1-h duration
    samples = [PoolSample(0, 4, 4, 0, 2), PoolSample(H, 4, 4, 6, 2), PoolSample(2 * H, 0, 4, 0, 0)]
    r = run([rec("w", 0, 2 * H, H, gpus=2)], samples)
    assert finish_time_fairness(r).tolist() == pytest.approx([2 / 2.5])


def test_unfinished_and_durationless_jobs_have_no_rho() -> None:
    jobs = [rec("a", 0, H, 0), JobRecord("b", "t", 1, 0, H)]
    m = compute_metrics(run(jobs, [PoolSample(0, 1, 4, 1, 1)]))
    assert m["ftf_rho_mean"] is None and m["ftf_rho_max"] is None


def test_effective_gpu_hours_roll_up_per_tenant_and_sector() -> None:
    jobs = [rec("a", 0, H, H, gpus=2, gpu_ms=2 * H, effective_gpu_ms=1.0 * H)]
    r = RunResult("p", jobs, [PoolSample(0, 2, 4, 0, 1)], 4, sector_of={"t": "academia"})
    m = compute_metrics(r)
    assert m["gpu_hours"] == pytest.approx(2.0) and m["effective_gpu_hours"] == pytest.approx(1.0)
    assert m["tenants"][0]["effective_gpu_hours"] == pytest.approx(1.0)
    assert m["sectors"][0]["effective_gpu_hours"] == pytest.approx(1.0)


def test_the_twin_counts_effective_and_npu_absorbed_gpu_hours() -> None:
    cat = Catalogue(
        [
            AcceleratorModel("H100", "NVIDIA", 80, "cuda", {"default": 1.0, "inference-llm": 1.0}),
            AcceleratorModel("RNGD", "FuriosaAI", 48, "furiosa", {"default": 0.05, "inference-llm": 0.5}),
        ]
    )
    b = FleetBuilder("f", cat)
    b.add_site("s")
    c = b.add_cluster("c", "s")
    blk = b.add_block(c, "b")
    b.add_nodes(b.add_rack(blk, "g"), 1, "H100", 1, ["g0"])
    b.add_nodes(b.add_rack(blk, "n"), 1, "RNGD", 1, ["n0"])
    f = b.build()
    jobs = [
        WorkloadJob("train", 0, H, 1, "p", stacks=("cuda",)),
        WorkloadJob("train2", 0, H, 1, "p", stacks=("cuda",)),
        WorkloadJob(
            "svc", 1, H, 1, "p", stacks=("cuda", "furiosa"), kind="inference", workload_class="inference-llm"
        ),
    ]
    table = ThroughputTable.from_catalogue(cat)
    cfg = SimConfig(SchedulerConfig(policy="fifo", throughputs=table), reference_model="H100")
    m = compute_metrics(simulate(f, tenants("p"), jobs, cfg))
    # svc found train2 waiting for the H100 and ran on the RNGD at half speed: 2 h there
    assert m["npu_absorbed_gpu_hours"] == pytest.approx(2.0, rel=1e-3)
    # effective: 1 + 1 h of training on the H100, 2 h x 0.5 of inference on the RNGD
    assert m["effective_gpu_hours"] == pytest.approx(3.0, rel=1e-3)
    assert m["gpu_hours"] == pytest.approx(4.0, rel=1e-3)
