"""Fractions through the API: the job fields, 422s naming the field, and the live placement.

A job asking MIG slices or a share of a GPU is stored with its fields and placed only on a
model that can give them (the demo fleet's nodes allow no cut, so here each holds one whole
GPU of such a model; packing on nodes that allow cuts: ``tests/test_fraction_scheduling.py``
and ``tests/service/test_local_machine.py``).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from gpupool.service.db import JobRow
from tests.service.conftest import Service

GOOD = {"project": "vision", "command": ["python", "serve.py"], "gpus": 1}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mig": "1g.10gb", "gpu_fraction": 0.5}, "mig"),
        ({"mig": "9g.1gb"}, "mig"),
        ({"mig": "1g.5gb"}, "mig"),  # an A100 40GB profile: no such GPU in the demo fleet
        ({"mig": "1g.10gb", "models": ["H200"]}, "mig"),  # H200's smallest slice is 1g.18gb
        ({"mig": "1g.10gb", "mig_count": 8}, "mig_count"),
        ({"gpu_fraction": 0.25, "gpus": 2}, "gpus"),
        ({"gpu_fraction": 1.5}, "gpu_fraction"),
        ({"gpu_fraction": 0}, "gpu_fraction"),
        ({"gpu_memory_gib": 500}, "gpu_memory_gib"),
        ({"gpu_fraction": 0.5, "models": ["ATOM"]}, "gpu_fraction"),  # NPUs are never shared
    ],
)
def test_bad_fraction_is_422_naming_the_field(
    sqlite_service: Service, change: dict[str, Any], field: str
) -> None:
    sqlite_service.token("minjun.kim")
    r = sqlite_service.submit("minjun.kim", **{**GOOD, **change})
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]], r.json()


def test_mig_and_shared_jobs_run_on_a_model_that_offers_them(service: Service) -> None:
    r = service.submit("minjun.kim", **GOOD, mig="1g.10gb", mig_count=2)
    assert r.status_code == 201, r.text
    mig_job = r.json()["id"]
    r = service.submit("minjun.kim", **GOOD, gpu_fraction=0.25, gpu_memory_gib=100)
    assert r.status_code == 201, r.text
    big_job = r.json()["id"]
    service.cycle()
    got = service.call("GET", f"/v1/jobs/{mig_job}", "minjun.kim").json()
    assert got["state"] == "running" and got["model"] == "H100"  # only H100 offers 1g.10gb here
    got = service.call("GET", f"/v1/jobs/{big_job}", "minjun.kim").json()
    # 100 GiB of one shared GPU: H200 (141 GB), B200 or GB200, never an 80 GB H100
    assert got["state"] == "running" and got["model"] in ("H200", "B200", "GB200")
    # the fields are stored with the job and given back
    with service.runtime.factory() as s:
        specs = [r.spec for r in s.scalars(select(JobRow).order_by(JobRow.seq))]
    assert [(x["mig"], x["mig_count"], x["gpu_fraction"], x["gpu_memory_gib"]) for x in specs] == [
        ("1g.10gb", 2, None, None),
        (None, 1, 0.25, 100.0),
    ]
