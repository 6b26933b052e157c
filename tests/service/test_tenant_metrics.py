"""``/metrics`` per sector and project: pending, running, accelerators held, GPU-hours and waits,
read from the text a Prometheus server scrapes, on SQLite and PostgreSQL (the ``service``
fixture: a settable clock, an executor that finishes jobs when told). Demo tenants: minjun.kim
is in academia/snu/vision (guaranteed 8 H100, at most 16 of any model), hayoon.choi in
academia/snu/nlp.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import Service

HOUR = 3_600_000
VISION = {"sector": "academia", "project": "academia/snu/vision"}


def scrape(service: Service) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = service.call("GET", "/metrics")
    assert r.status_code == 200, r.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(r.text)
        for s in fam.samples
    }


def value(got: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return got[(name, tuple(sorted(labels.items())))]


def test_series_per_sector_and_project(service: Service) -> None:
    first = service.submit("minjun.kim", project="vision", gpus=8, models=["H100"])
    assert first.status_code == 201, first.text
    assert service.cycle().starts == 1
    (launch,) = service.executor.launches
    # vision holds 8 of its 16: a 16-wide job of vision waits (it could start on its own)
    second = service.submit("minjun.kim", project="vision", gpus=16, models=["H100"])
    assert second.status_code == 201, second.text
    service.cycle()
    service.clock.advance(HOUR)
    service.cycle()

    got = scrape(service)
    assert value(got, "gpupool_project_jobs_running", **VISION) == 1
    assert value(got, "gpupool_project_jobs_pending", **VISION) == 1
    assert value(got, "gpupool_project_accelerators_held", **VISION) == 8
    assert abs(value(got, "gpupool_project_gpu_hours_total", **VISION) - 8.0) < 1e-6  # 8 GPUs x 1 h
    assert value(got, "gpupool_project_oldest_pending_seconds", **VISION) == 3600
    nlp = {"sector": "academia", "project": "academia/snu/nlp"}
    assert value(got, "gpupool_project_jobs_pending", **nlp) == 0  # every project has its series
    assert value(got, "gpupool_sector_accelerators_held", sector="academia") == 8
    assert abs(value(got, "gpupool_sector_gpu_hours_total", sector="academia") - 8.0) < 1e-6
    assert value(got, "gpupool_sector_gpu_hours_total", sector="startups") == 0
    # the first job started in the cycle after its submission: no wait
    assert value(got, "gpupool_sector_wait_seconds_count", sector="academia") == 1
    assert value(got, "gpupool_sector_wait_seconds_bucket", sector="academia", le="1.0") == 1

    # Cardinality: one series per project of the tenancy and metric; no job, user or command.
    projects = {dict(labels)["project"] for (name, labels) in got if name == "gpupool_project_jobs_pending"}
    assert projects == {
        "academia/snu/vision", "academia/snu/nlp", "academia/kaist/llm", "public-research/kisti/climate",
        "startups/upstage/solar", "startups/furiosaai/serving", "startups/rebellions/serving",
    }  # fmt: skip
    label_names = {k for (name, labels) in got if name.startswith(("gpupool_project_", "gpupool_sector_"))
                   for k, _ in labels}  # fmt: skip
    assert label_names <= {"sector", "project", "le"}, label_names

    # The first job ends; the waiting one starts after an hour's wait, and is counted so.
    service.executor.finish(launch.allocation_id, 0)
    service.cycle()
    service.clock.advance(10_000)  # past the count interval
    service.cycle()
    got = scrape(service)
    assert value(got, "gpupool_project_jobs_running", **VISION) == 1
    assert value(got, "gpupool_project_jobs_pending", **VISION) == 0
    assert value(got, "gpupool_project_oldest_pending_seconds", **VISION) == 0
    assert value(got, "gpupool_project_accelerators_held", **VISION) == 16
    assert value(got, "gpupool_sector_wait_seconds_count", sector="academia") == 2
    assert value(got, "gpupool_sector_wait_seconds_sum", sector="academia") == 3600
    # 8 GPU-hours, then 16 GPUs for 10 s
    assert abs(value(got, "gpupool_project_gpu_hours_total", **VISION) - (8.0 + 16 * 10 / 3600)) < 1e-6
