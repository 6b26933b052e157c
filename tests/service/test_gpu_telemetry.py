"""GPU telemetry sampled in the scheduler process reaches an API process through the database.

A real local executor runs a job on a machine whose NVML is the recording sampler of the
executor tests (no GPU here); the publisher writes its samples while it runs and once more
after it ended; an API-side runtime (``scheduler="process"``) reads them back.
"""

from __future__ import annotations

import time
from pathlib import Path

from gpupool.service.executors.gpus import GpuDevice, LocalMachine
from gpupool.service.executors.local import LocalExecutor
from gpupool.service.gpu_telemetry import KEEP_MS, TelemetryPublisher
from gpupool.service.runtime import Runtime
from gpupool.service.settings import ServiceSettings
from tests.executors.test_local import NODE, RecordingSampler, exited, launch, wait_for


def test_the_leaders_gpu_samples_are_read_by_an_api_process(tmp_path: Path, database_url: str) -> None:
    settings = ServiceSettings(data_dir=tmp_path, database_url=database_url)
    seeding = Runtime(settings, run_loop=False)
    seeding.start()  # migrate and seed
    seeding.stop()
    leader_side = Runtime(settings, run_loop=False)
    api_side = Runtime(settings, scheduler="process")
    devs = tuple(GpuDevice(i, f"GPU-{i}", "NVIDIA H100 80GB HBM3", "H100", 81559) for i in range(2))
    ex = LocalExecutor(
        tmp_path / "state",
        machine=LocalMachine(nodes=((NODE, devs),)),
        sampler=RecordingSampler(),
        tick_s=0.02,
        telemetry_interval_s=0.05,
    )
    publisher = TelemetryPublisher(leader_side.factory)
    try:
        ex.launch(launch(tmp_path, "tel#1", "import time; time.sleep(0.6)", ids=(1,)))
        deadline = time.monotonic() + 5
        while publisher.publish([ex], 1_000) == 0:  # running: samples appear
            assert time.monotonic() < deadline, "nothing published while the job ran"
            time.sleep(0.05)
        assert {s.device for s in api_side.telemetry("tel#1")} == {"GPU-1"}
        wait_for(ex, exited("tel#1"))
        publisher.publish([ex], 2_000)  # the last samples of the ended allocation
        final = ex.telemetry("tel#1")
        got = api_side.telemetry("tel#1")
        assert [(s.at_ms, s.device, s.utilization_pct, s.memory_used_mib) for s in got] == [
            (s.at_ms, s.device, s.utilization_pct, s.memory_used_mib) for s in final
        ]
        assert publisher.publish([ex], 3_000) == 0  # nothing new: nothing written
        assert api_side.telemetry("unknown#1") == []
        publisher.publish([ex], 3_000 + KEEP_MS + 1)  # a day later the row is pruned
        assert api_side.telemetry("tel#1") == []
    finally:
        ex.close()
        leader_side.stop()
        api_side.stop()
