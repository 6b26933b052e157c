"""A national what-if through the API: korea-2025, 24 simulated hours at 80 % load, from POST to result.

Starts ``gpupool serve`` (demo fleet, a fresh data directory), queues ``POST /v1/whatif``
with the korea-2025 preset (synthetic, 80 %, 24 h, fairshare+easy, no job cap), polls
``GET /v1/whatif/{id}`` as the dashboard does, and prints ONE JSON object: the wall seconds
from the POST to the result, the run's own wall and CPU seconds (``result.json``), the job
count and the headline metrics. ``--hours``/``--load``/``--fleet`` shrink it for a smoke run.

    .venv/bin/python benchmarks/whatif_national.py            # minutes; ~1 GiB in the run's process
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fleet", default="korea-2025")
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--load", type=float, default=0.8)
    ap.add_argument("--policy", default="fairshare+easy")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="gpupool-whatif-bench-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(data / "serve.log", "wb")  # noqa: SIM115 - the child's output
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUPOOL_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from gpupool.cli.main import app; app()", "serve", "--data-dir", str(data),
         "--port", str(port), "--fleet", "demo", "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/v1/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("gpupool serve did not start:\n" + (data / "serve.log").read_text())
            time.sleep(0.2)
        printed = re.search(r"shown once[^\n]*\n(gpt_\S+)", (data / "serve.log").read_text())
        assert printed, "serve printed no admin token"
        token = printed.group(1)
        c = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        body = {"fleet": args.fleet, "workload": "synthetic", "load": args.load, "hours": args.hours,
                "seed": 0, "policies": [args.policy]}  # fmt: skip
        t0 = time.monotonic()
        r = c.post("/v1/whatif", json=body)
        r.raise_for_status()
        run_id = r.json()["id"]
        polls = 0
        while True:
            run = c.get(f"/v1/whatif/{run_id}").json()
            polls += 1
            if run["state"] in ("done", "failed"):
                break
            if time.monotonic() - t0 > args.timeout:
                raise SystemExit(f"still {run['state']} after {args.timeout} s: {run['progress']}")
            time.sleep(1)
        wall = time.monotonic() - t0
        if run["state"] != "done":
            raise SystemExit(f"the run failed: {run['error']}")
        res = run["result"]
        m = res["metrics"][args.policy]
        out = {"request": body, "api_wall_s": round(wall, 1), "run_wall_s": res["wall_s"]}
        out |= {"run_cpu_s": res.get("cpu_s"), "jobs": res["jobs"], "polls": polls}
        out |= {k: m[k] for k in ("utilization", "jain_fairness", "avg_queue_s")}
        print(json.dumps(out | {"loadavg": os.getloadavg()}))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
