"""The loop's cycle time with and without dashboard readers, on the korea-2025 fleet.

Steps, for each ``--modes`` (default both):

- ``process``: the real ``gpupool serve`` (the loop in its own scheduler process, ADR 0006);
- ``inline``: the loop as a thread of the API process (this file with ``--serve-inline``:
  ``create_app`` over an inline ``Runtime``, as the service ran before ADR 0006);

1. start the server on a fresh SQLite database, the korea-2025 fleet and tenants, the ``none``
   executor (decisions recorded, no process spawned), logging the loop's line per cycle;
2. phase ``quiet``: one client submits 1-GPU jobs at ``--rate`` per second for ``--seconds``;
3. phase ``readers``: the same submissions plus ``--readers`` threads that read the
   dashboard's endpoints (fleet occupancy, queue, tenants, series, burndown) as fast as they
   are answered, for ``--seconds``;
4. the cycle times of each phase come from the loop's own log lines (cycles that did
   something: the submissions make every cycle do something).

Prints ONE JSON object: per mode the cycle p50/p90 (ms) and count of each phase and the ratio
of the p50s (goal: within 1.5x for ``process``). Not a test: the clients share the machine.

    .venv/bin/python benchmarks/cycle_under_load.py
    .venv/bin/python benchmarks/cycle_under_load.py --seconds 5 --modes process
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from gpupool.service import admin_banner

FLEET = "korea-2025"
PROJECT, MODEL, MEMBER = "vision-lab", "B200", "minjun.kim"
READS = [
    "/v1/dashboard/fleet",
    "/v1/dashboard/jobs?limit=100",
    "/v1/dashboard/tenants",
    "/v1/dashboard/series",
    "/v1/dashboard/burndown?project=vision-lab",
]
_CYCLE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*gpupool\.service\.loop.*cycle \d+: .*, ([\d.]+) ms$"
)


def serve_inline(data_dir: Path, port: int, log_file: Path) -> None:
    """``--serve-inline``: the API and the loop thread in one process (before ADR 0006)."""
    import logging

    import uvicorn

    from gpupool.service.api.app import create_app
    from gpupool.service.runtime import Runtime, tune_gc_for_serving
    from gpupool.service.settings import ServiceSettings

    logging.basicConfig(
        filename=log_file, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    runtime = Runtime(ServiceSettings(data_dir=data_dir, fleet=FLEET, executor="none", port=port))
    runtime.start()
    # as ``gpupool serve`` does: the first admin token is printed once (only its hash is stored)
    print(admin_banner.banner(runtime.new_admin_token or ""), flush=True)
    tune_gc_for_serving()
    try:
        uvicorn.run(
            create_app(runtime, manage_runtime=False), host="127.0.0.1", port=port, log_level="warning"
        )
    finally:
        runtime.stop()


def _printed_admin_token(log_file: Path) -> str:
    """The first admin token, as the server printed it once (only its hash is stored)."""
    found = admin_banner.printed_token(log_file.read_text(errors="replace"))
    if found is None:
        raise SystemExit(
            f"the server printed no admin token:\n{log_file.read_text(errors='replace')[-3000:]}"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(mode: str, data: Path, log_file: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "GPUPOOL_EXECUTOR": "none"}
    if mode == "process":
        gpupool = Path(sys.executable).parent / "gpupool"
        cmd = [str(gpupool), "serve", "--fleet", FLEET, "--data-dir", str(data), "--port", str(port),
               "--log-level", "info"]  # fmt: skip
    else:
        cmd = [
            sys.executable,
            __file__,
            "--serve-inline",
            str(data),
            "--port",
            str(port),
            "--log",
            str(log_file),
        ]
    out = open(log_file, "ab")  # noqa: SIM115 - the server's output, closed with the process
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited:\n{log_file.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/v1/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not become ready within 120 s")


def _submit(url: str, token: str, rate: float, stop: threading.Event, counts: dict[str, int]) -> None:
    body = {"project": PROJECT, "gpus": 1, "models": [MODEL], "command": ["true"], "walltime_s": 3600}
    with httpx.Client(timeout=10) as c:
        next_at = time.monotonic()
        while not stop.is_set():
            h = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
            try:
                r = c.post(f"{url}/v1/jobs", json=body, headers=h)
                key = "ok" if r.status_code == 201 else str(r.status_code)
            except httpx.HTTPError as e:
                key = type(e).__name__
            counts[key] = counts.get(key, 0) + 1
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))


def _read(url: str, token: str, stop: threading.Event, counts: dict[str, int], i: int) -> None:
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"}) as c:
        n = i
        while not stop.is_set():
            try:
                r = c.get(url + READS[n % len(READS)])
                key = "ok" if r.status_code == 200 else str(r.status_code)
            except httpx.HTTPError as e:
                key = type(e).__name__
            counts[key] = counts.get(key, 0) + 1
            n += 1


def _cycles(log_file: Path, start: float, end: float) -> list[float]:
    out = []
    for line in log_file.read_text(errors="replace").splitlines():
        m = _CYCLE.match(line)
        if m:
            at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if start <= at < end:
                out.append(float(m.group(2)))
    return out


def _summary(ms: list[float]) -> dict[str, Any]:
    if not ms:
        return {"cycles": 0}
    q = statistics.quantiles(ms, n=10) if len(ms) > 1 else [ms[0]] * 9
    return {"cycles": len(ms), "p50_ms": round(statistics.median(ms), 2), "p90_ms": round(q[8], 2)}


def run_mode(mode: str, seconds: float, rate: float, readers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"gpupool-cycle-{mode}-") as tmp:
        data = Path(tmp) / "data"
        log_file = Path(tmp) / "server.log"
        proc, url = _start(mode, data, log_file)
        try:
            admin = _printed_admin_token(log_file)
            r = httpx.post(
                f"{url}/v1/tokens", json={"user": MEMBER}, headers={"Authorization": f"Bearer {admin}"}
            )
            r.raise_for_status()
            member = str(r.json()["token"])
            stop = threading.Event()
            subs: dict[str, int] = {}
            submitter = threading.Thread(target=_submit, args=(url, member, rate, stop, subs), daemon=True)
            submitter.start()
            time.sleep(2.0)  # warm-up: not counted
            t0 = time.time()
            time.sleep(seconds)
            t1 = time.time()
            reads: dict[str, int] = {}
            rstop = threading.Event()
            threads = [
                threading.Thread(target=_read, args=(url, admin, rstop, reads, i), daemon=True)
                for i in range(readers)
            ]
            for t in threads:
                t.start()
            time.sleep(1.0)  # the readers get going
            t2 = time.time()
            time.sleep(seconds)
            t3 = time.time()
            rstop.set()
            stop.set()
            for t in [*threads, submitter]:
                t.join(timeout=30)
            time.sleep(0.5)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        quiet = _summary(_cycles(log_file, t0, t1))
        loud = _summary(_cycles(log_file, t2, t3))
        ratio = (
            round(loud["p50_ms"] / quiet["p50_ms"], 2) if quiet.get("p50_ms") and loud.get("p50_ms") else None
        )
        return {
            "without_readers": quiet,
            "with_readers": loud,
            "p50_ratio": ratio,
            "reads": reads,
            "reads_per_s": round(reads.get("ok", 0) / (t3 - t1), 1),
            "submissions": subs,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve-inline", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--modes", default="process,inline", help="process, inline or both (default)")
    ap.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    ap.add_argument("--rate", type=float, default=20.0, help="submissions per second")
    ap.add_argument("--readers", type=int, default=20, help="dashboard reader threads")
    args = ap.parse_args()
    if args.serve_inline is not None:
        serve_inline(args.serve_inline, args.port, args.log)
        return
    out: dict[str, Any] = {
        "fleet": FLEET,
        "seconds": args.seconds,
        "rate_per_s": args.rate,
        "readers": args.readers,
        "cpus": os.cpu_count(),
    }
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        out[mode] = run_mode(mode, args.seconds, args.rate, args.readers)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
