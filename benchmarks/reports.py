"""How long the usage report and the public report take over many finished jobs.

Seeds a fresh SQLite database (the demo fleet and tenants, the ``none`` executor, no loop) with
``--jobs`` finished jobs spread over the 90 days before a fixed instant, one usage interval
each (random project, user, model, 1 to 8 accelerators, 1 minute to 2 days), then times
``GET /v1/reports/usage`` (by project per day, by sector per week, by user per day, over the
90 days) and ``GET /v1/reports/public`` for the quarter, in process, as the pool admin.
Prints one JSON object: seconds per request and the rows each returned.

    .venv/bin/python benchmarks/reports.py --jobs 20000
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

DAY_MS = 86_400_000
#: the instant the clock is fixed at: 2027-01-01 00:00 UTC, so the last 90 days are 2026-Q4
NOW_MS = 1_798_761_600_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from gpupool.service.api.app import create_app
    from gpupool.service.db import JobRow, TenantRow, UsageRow, UserRow
    from gpupool.service.runtime import Runtime
    from gpupool.service.settings import ServiceSettings

    data = Path(tempfile.mkdtemp(prefix="gpupool-bench-reports-"))
    runtime = Runtime(
        ServiceSettings(data_dir=data, fleet="demo", executor="none"), clock=lambda: NOW_MS, run_loop=False
    )
    runtime.start()  # the database, tenants and users; the app below does not manage it
    token = runtime.new_admin_token or ""
    rnd = random.Random(args.seed)
    with runtime.factory() as s:
        projects = list(s.scalars(select(TenantRow.id).where(TenantRow.kind == "project")))
        users = list(s.scalars(select(UserRow.id)))
        for i in range(args.jobs):
            submit = NOW_MS - rnd.randint(0, 90 * DAY_MS)
            start = submit + rnd.randint(0, 3_600_000)
            end = min(NOW_MS, start + rnd.randint(60_000, 2 * DAY_MS))
            pid = rnd.choice(projects)
            job = JobRow(project_id=pid, user_id=rnd.choice(users), spec={"gpus": 1}, state="completed",
                         priority_class="normal", submit_ms=submit, start_ms=start, end_ms=end)  # fmt: skip
            s.add(job)
            s.flush()
            model = rnd.choice(["H100", "H200", "B200", "RNGD", "ATOM"])
            s.add(UsageRow(job_seq=job.seq, allocation_id=f"bench-{i}", project_id=pid, model=model,
                           workload_class="train-cnn", gpus=rnd.choice([1, 2, 4, 8]), start_ms=start,
                           end_ms=end))  # fmt: skip
        s.commit()
    out: dict[str, Any] = {"jobs": args.jobs}
    with TestClient(create_app(runtime, manage_runtime=False)) as http:
        auth = {"Authorization": f"Bearer {token}"}
        since = str(NOW_MS - 90 * DAY_MS)
        for by, every in (("project", "day"), ("sector", "week"), ("user", "day")):
            t0 = time.perf_counter()
            r = http.get("/v1/reports/usage", headers=auth,
                         params={"by": by, "every": every, "from": since, "to": str(NOW_MS)})  # fmt: skip
            r.raise_for_status()
            out[f"usage_{by}_{every}_s"] = round(time.perf_counter() - t0, 3)
            out[f"usage_{by}_{every}_rows"] = len(r.json()["rows"])
        t0 = time.perf_counter()
        r = http.get("/v1/reports/public", headers=auth, params={"period": "2026-Q4"})
        r.raise_for_status()
        out["public_quarter_s"] = round(time.perf_counter() - t0, 3)
        out["public_gpu_hours"] = r.json()["pool"]["gpu_hours"]
    runtime.stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
