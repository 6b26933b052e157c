"""``gpupool demo``: the whole platform on embedded defaults, in one command.

This module owns the demo. It starts the live service on an embedded SQLite database with the
``demo`` fleet (two sites, GPUs and NPUs, simulated accelerators so no GPU is needed) and its
sample tenants, gives a sample researcher a token, submits a few jobs as that researcher, and
prints the URL, the tokens and what to try next; then it serves until interrupted (or for
``--serve-for`` seconds). ``--twin`` runs the digital twin instead: three policies on a
synthetic workload, with a report.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from gpupool.service.executors.sandbox import job_python

#: The researcher the demo acts as: a member of academia/snu/vision in the demo tenants.
DEMO_USER = "minjun.kim"
#: The Python the demo's jobs run: jobs run as unprivileged accounts (ADR 0005).
PY = job_python()
DEMO_JOBS: list[dict[str, Any]] = [
    {"project": "academia/snu/vision", "name": "resnet-sweep", "gpus": 2, "models": ["H100"],
     "walltime_s": 600, "command": [PY, "-c", "import time; print('training'); time.sleep(30)"]},
    {"project": "academia/snu/vision", "name": "vit-pretrain", "gpus": 16, "topology": "block",
     "walltime_s": 3600, "command": [PY, "-c", "import time; time.sleep(120)"]},
    {"project": "academia/snu/vision", "name": "eval", "gpus": 1, "walltime_s": 300,
     "command": [PY, "-c", "print('eval done')"]},
    # refused at submission (422, "over-limit"): vision may hold at most 16 of any model
    {"project": "academia/snu/vision", "name": "all-h100", "gpus": 24, "models": ["H100"], "walltime_s": 600,
     "command": [PY, "-c", "pass"]},
]  # fmt: skip


def run_service_demo(data_dir: Path, host: str, port: int, serve_for: float | None, console: Console) -> None:
    """Start the service, seed a researcher and jobs, print how to use it, then serve."""
    import uvicorn

    from gpupool.service.api.app import create_app
    from gpupool.service.runtime import Runtime
    from gpupool.service.settings import ServiceSettings

    settings = ServiceSettings(fleet="demo", data_dir=data_dir, host=host, port=port, cycle_interval_ms=500)
    runtime = Runtime(settings)
    runtime.start()
    # The first admin token is shown once and stored only as a hash: on an existing database the
    # demo mints itself a new one (it runs on the server's machine, with its data directory).
    admin = runtime.new_admin_token or runtime.mint_admin_token("demo")
    app = create_app(runtime, manage_runtime=False)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    url = f"http://{host}:{port}"
    try:
        _wait_ready(url, server)
        member = _seed(url, admin, console)
        console.print(
            f"\n[bold]gpupool[/] is serving the demo fleet at [link={url}]{url}[/]  (API docs: {url}/docs)"
        )
        console.print(f"database: {settings.url}")
        console.print(f"pool admin token: {admin}", highlight=False, soft_wrap=True)
        console.print(
            f"researcher {DEMO_USER} (academia/snu/vision) token: {member}", highlight=False, soft_wrap=True
        )
        console.print(
            "\nTry, in another shell:\n"
            f"  export GPUPOOL_URL={url} GPUPOOL_TOKEN={member}\n"
            "  .venv/bin/gpupool queue\n"
            "  .venv/bin/gpupool submit --project academia/snu/vision --gpus 2 --model H100 --walltime 1h -- "
            "python -c 'print(42)'\n"
            "  .venv/bin/gpupool explain <job id>; .venv/bin/gpupool logs <job id>; .venv/bin/gpupool usage\n"
            "Press Ctrl-C to stop.",
            highlight=False,
            soft_wrap=True,
        )
        deadline = None if serve_for is None else time.monotonic() + serve_for
        while thread.is_alive() and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        runtime.stop()


def _wait_ready(url: str, server: Any) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.started:
            try:
                if httpx.get(f"{url}/v1/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"the service did not become ready at {url} within 30 s")


def _seed(url: str, admin: str, console: Console) -> str:
    """A token for the demo researcher and, on a fresh database, the sample jobs."""
    auth = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=url, timeout=10) as c:
        r = c.post("/v1/tokens", json={"name": "demo", "user": DEMO_USER}, headers=auth)
        r.raise_for_status()
        member: str = r.json()["token"]
        mine = {"Authorization": f"Bearer {member}"}
        if not c.get("/v1/jobs", headers=mine, params={"limit": 1}).json().get("items"):
            for i, job in enumerate(DEMO_JOBS):
                r = c.post("/v1/jobs", json=job, headers={**mine, "Idempotency-Key": f"demo-{i}"})
                detail = r.json().get("detail", "") if r.status_code >= 400 else ""
                console.print(f"submitted {job['name']!r}: HTTP {r.status_code} {detail}", highlight=False)
    return member
