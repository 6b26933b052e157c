#!/usr/bin/env bash
# On a machine with NVIDIA GPUs: check NVML discovery, the local fleet, and real jobs pinned by
# CUDA_VISIBLE_DEVICES, with NVML telemetry. Two phases:
#   1. the LocalExecutor alone: a job on the last GPU, and a job killed at its walltime;
#   2. the live service (API + loop on SQLite) over this machine's one-node fleet: a job
#      submitted over HTTP, scheduled by the core, run by the LocalExecutor, its log read back.
# Prints what it saw and exits non-zero if a job did not see exactly the GPU it was placed on.
# Under 3 minutes. Where PyTorch is installed, the first job also multiplies bf16 matrices on
# its GPU for 6 s and the check asks that NVML telemetry saw the GPU busy.
#
# It needs no CUDA toolkit and no torch: the job itself asks NVML which device its
# CUDA_VISIBLE_DEVICES names. Set GPU_CHECK_PYTHON to use a Python that already has gpupool
# installed (the device machines cannot reach a package index); otherwise it uses .venv, and
# creates it with `pip install -e .` when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== nvidia-smi -L"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi -L || true
else
  echo "nvidia-smi: not on PATH"
fi

PY="${GPU_CHECK_PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ ! -x .venv/bin/python ]]; then
    echo "== setting up .venv (pip install -e .)"
    python3 -m venv .venv
    timeout 120 .venv/bin/python -m pip install -q --disable-pip-version-check -e . \
      || { echo "pip install failed (no package index?); set GPU_CHECK_PYTHON"; exit 2; }
  fi
  PY=.venv/bin/python
fi
if ! "$PY" -c "import gpupool.service.executors, pynvml" 2>/dev/null; then
  echo "== installing gpupool into $PY"
  timeout 120 "$PY" -m pip install -q --disable-pip-version-check -e . \
    || { echo "pip install failed (no package index?); set GPU_CHECK_PYTHON"; exit 2; }
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# MIG (issue 14): list the MIG instances NVML reports and pin one job to one of them by its
# MIG-<uuid>; it only reads the GPUs (never changes their MIG mode). Without MIG it says so.
echo "== MIG instances (NVML)"
timeout 60 "$PY" - <<'PY'
import json
import os
import subprocess
import sys

import pynvml

from gpupool.service.executors.fraction_devices import cuda_visible_devices, mig_devices

pynvml.nvmlInit()
try:
    found = mig_devices(pynvml)
finally:
    pynvml.nvmlShutdown()
if not found:
    print("MIG is not enabled on any GPU of this machine: MIG step skipped (nothing to check)")
    sys.exit(0)
for d in found:
    print(f"  {d.profile or '?'}: {d.uuid} (on {d.parent_uuid})")
env = {**os.environ, "CUDA_VISIBLE_DEVICES": cuda_visible_devices(found[:1])}
code = ("import os; print(os.environ['CUDA_VISIBLE_DEVICES']); "
        "import importlib.util as u; t = u.find_spec('torch'); "
        "print('torch devices:', __import__('torch').cuda.device_count() if t else 'no torch')")
out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=50)
print(out.stdout.strip())
# the job sees exactly that instance: its UUID, and one CUDA device where torch can count
seen = out.stdout.split()[:1] == [found[0].uuid] and (
    "no torch" in out.stdout or "torch devices: 1" in out.stdout
)
print(json.dumps({"mig_ok": seen, "pinned_to": found[0].uuid}))
sys.exit(0 if seen else 1)
PY
echo "== LocalExecutor on the NVML-discovered machine (work dir $WORK)"
timeout 150 "$PY" - "$WORK" <<'PY'
import json
import os
import sys
import time
from pathlib import Path

from gpupool.service.executors import AllocationExited, AllocationFailed, Launch, LocalExecutor, discover_machine

work = Path(sys.argv[1])
machine = discover_machine()
if not machine.nodes:
    print(json.dumps({"gpus": 0, "error": "NVML found no GPU (driver missing or no device)"}))
    sys.exit(1)
fleet = machine.fleet()
print("fleet:", json.dumps(fleet.summary()["models"]), "nodes:", [n.name for n in fleet.nodes])
node, devices = machine.nodes[0]
for d in devices:
    print(f"  id {d.index}: {d.name} -> catalogue {d.model}, {d.memory_mib} MiB, {d.visible_id}")

# Place the job on the LAST accelerator, so "the job saw device 0" cannot pass by accident.
target = devices[-1]
job = r"""
import os, time, pynvml
cvd = os.environ["CUDA_VISIBLE_DEVICES"]
pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByUUID(cvd)
name = pynvml.nvmlDeviceGetName(h)
mem = pynvml.nvmlDeviceGetMemoryInfo(h)
print("CUDA_VISIBLE_DEVICES=" + cvd)
print("GPUPOOL_ALLOCATION_ID=" + os.environ["GPUPOOL_ALLOCATION_ID"])
print("device:", name if isinstance(name, str) else name.decode(), "memory used MiB:", mem.used >> 20)
print("utilisation %:", pynvml.nvmlDeviceGetUtilizationRates(h).gpu, flush=True)
try:
    import torch
except ImportError:
    time.sleep(3)
else:
    # Real work on the placed GPU (torch numbers it cuda:0 under CUDA_VISIBLE_DEVICES), so
    # the executor's NVML telemetry has something to see.
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    t_end, n = time.monotonic() + 6, 0
    while time.monotonic() < t_end:
        for _ in range(20):
            b = a @ a
        torch.cuda.synchronize()
        n += 20
    print("torch:", torch.__version__, "on", torch.cuda.get_device_name(0),
          f"{n * 2 * 8192**3 / 6 / 1e12:.0f} TFLOP/s bf16 over 6 s", flush=True)
"""
try:
    import torch  # noqa: F401
    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False
# Jobs run sandboxed (ADR 0005); a device machine without bubblewrap (no package index) runs
# them unconfined, saying so, since this checks GPUs, not isolation.
from gpupool.service.executors.sandbox import Sandbox
sandbox = Sandbox.create(unsafe_no_sandbox=True)
print("sandbox:", "bubblewrap" if sandbox.enabled else "none (bwrap missing): jobs run unconfined")
ex = LocalExecutor(work / "state", machine=machine, telemetry_interval_s=1.0, walltime_grace_s=2, sandbox=sandbox)
t0 = time.monotonic()
ex.launch(Launch("check#1", "check", (sys.executable, "-c", job), ((node, (len(devices) - 1,)),), work / "logs"))
# A second job that overruns its walltime, to see SIGTERM/SIGKILL on this machine too.
ex.launch(Launch("walltime#1", "walltime", (sys.executable, "-c", "import time; time.sleep(60)"),
                 ((node, (0,)),), work / "logs", walltime_s=1.0))
events = []
while time.monotonic() - t0 < 60 and len([e for e in events if isinstance(e, AllocationExited | AllocationFailed)]) < 2:
    events += ex.poll()
    time.sleep(0.1)
samples = ex.telemetry("check#1")
ex.close()
out = (work / "logs" / "check#1.out").read_text()
err = (work / "logs" / "check#1.err").read_text()
print("job stdout:\n" + out + ("job stderr:\n" + err if err else ""))
print("events:", [repr(e) for e in events])
print("telemetry:", [(s.device, s.utilization_pct, s.memory_used_mib) for s in samples])
exit_ = {e.allocation_id: e for e in events if isinstance(e, AllocationExited)}
ok = (
    f"CUDA_VISIBLE_DEVICES={target.visible_id}" in out
    and "check#1" in exit_ and exit_["check#1"].exit_code == 0
    and "walltime#1" in exit_ and exit_["walltime#1"].cause == "walltime"
    and len(samples) >= 1 and all(s.device == target.visible_id for s in samples)
    # With torch the job kept the GPU busy: some sample must show it.
    and (not HAVE_TORCH or max(s.utilization_pct for s in samples) > 0)
)
print(json.dumps({"gpus": len(devices), "model": target.model, "pinned_to": target.visible_id,
                  "job_exit": getattr(exit_.get("check#1"), "exit_code", None),
                  "walltime_cause": getattr(exit_.get("walltime#1"), "cause", None),
                  "telemetry_samples": len(samples), "torch_job": HAVE_TORCH,
                  "max_utilization_pct": max((s.utilization_pct for s in samples), default=None),
                  "max_memory_used_mib": max((s.memory_used_mib for s in samples), default=None), "ok": ok, "seconds": round(time.monotonic() - t0, 1)}))
sys.exit(0 if ok else 1)
PY

echo "== the live service over this machine's fleet (submit over HTTP, scheduled, pinned)"
timeout 120 "$PY" - "$WORK" <<'PY'
import json
import socket
import sys
import threading
import time
from pathlib import Path

import uvicorn

from gpupool.client import GpupoolClient
from gpupool.fleetfile import load_tenants
from gpupool.service.api.app import create_app
from gpupool.service.executors import LocalExecutor, discover_machine
from gpupool.service.runtime import Runtime
from gpupool.service.settings import ServiceSettings

work = Path(sys.argv[1]) / "service"
work.mkdir()
machine = discover_machine()
fleet = machine.fleet()
tenants = work / "tenants.yaml"
tenants.write_text("name: local\nsectors:\n  lab:\n    organisations:\n      here:\n"
                   "        projects:\n          check: {members: [gpu.checker]}\n")
from gpupool.service.executors.sandbox import Sandbox
executor = LocalExecutor(work / "executor", machine=machine, telemetry_interval_s=1.0,
                         sandbox=Sandbox.create([work], unsafe_no_sandbox=True))
settings = ServiceSettings(data_dir=work, simulated_gpus=False, cycle_interval_ms=100)
runtime = Runtime(settings, fleet=fleet, tenancy=load_tenants(str(tenants), fleet), executors={"*": executor})
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning"))
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
while not server.started:
    assert thread.is_alive(), "the service did not start"
    time.sleep(0.05)
url = f"http://127.0.0.1:{port}"
admin = runtime.new_admin_token or runtime.mint_admin_token("gpu-check")
with GpupoolClient(url, admin) as c:
    token = c._json("POST", "/v1/tokens", json={"user": "gpu.checker"})["token"]
job_code = ("import os, pynvml; pynvml.nvmlInit(); cvd = os.environ['CUDA_VISIBLE_DEVICES']; "
            "h = pynvml.nvmlDeviceGetHandleByUUID(cvd); n = pynvml.nvmlDeviceGetName(h); "
            "print(cvd, n if isinstance(n, str) else n.decode())")
ok = False
with GpupoolClient(url, token) as c:
    job = c.submit({"project": "check", "gpus": 1, "command": [sys.executable, "-c", job_code],
                    "walltime_s": 120}).job
    deadline = time.monotonic() + 60
    while job["state"] not in ("completed", "failed", "cancelled", "rejected") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = c.job(job["id"])
    log = c.logs(job["id"]) if job["attempt"] else ""
    print("job:", json.dumps({k: job[k] for k in ("id", "state", "cluster", "model", "placement", "exit_code", "reason")}))
    print("job log:", log.strip())
    if job["state"] == "completed" and job["placement"]:
        place = job["placement"][0]
        devices = machine.devices(place["node"]) or ()
        want = devices[place["accelerators"][0]].visible_id
        ok = log.split()[:1] == [want]
        print(json.dumps({"service_ok": ok, "placed_on": place, "expected_device": want}))
server.should_exit = True
thread.join(timeout=30)
sys.exit(0 if ok else 1)
PY
