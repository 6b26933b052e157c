"""What-if studies from the dashboard: the digital twin run in the background, bounded.

This module owns ``WhatIfRuns``: a folder of runs (``<data_dir>/whatif/<id>/``), each one
``gpupool.sim`` run of a scenario (a fleet preset, tenants preset, a shipped or generated
workload) under up to ``MAX_POLICIES`` policies, written with ``sim.report.write_report``
(``metrics.json``, ``jobs.csv``, ``report.html``) so that the dashboard shows exactly the
figures the CLI's report shows.

A run is a child process (``python -m gpupool.service.whatif RUN_DIR``), not a thread: the
simulation is pure Python and would hold the interpreter lock the API and the live loop need,
and a process can be killed at its time limit. Runs wait in a queue (at most ``max_queued``)
for one of ``workers`` background slots (ADR 0017: no job cap, a national day at 80 % is
about 320,000 jobs and two minutes); a run past ``max_wall_s`` of simulation is killed;
``max_jobs`` (none by default) refuses larger workloads. Names are chosen from presets only
(never paths): a what-if request cannot make the service read a file of the caller's choosing.

A study of ``source`` ``live`` starts from the live state: the service writes the twin's
snapshot into the run's folder (``snapshot/``) when it queues the run, and the child runs
``gpupool.service.live_whatif`` on it (baseline and change through the sweep's runner).

The folder is the state: ``request.json`` (written by the service), ``progress.json`` (by the
child, as it goes), ``result.json`` (by the child, last: the run is done), ``error.txt`` (the
run failed). A run without a live process and without either of the last two was
interrupted (the service stopped).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from gpupool.fleetfile import fleet_presets
from gpupool.fleetfile.tenants_file import tenant_presets
from gpupool.sim.named_workloads import ITP_CLUSTERS

WORKLOADS = ("synthetic", "philly-helios", *(f"itp-{c}" for c in ITP_CLUSTERS))
MAX_POLICIES = 4
MAX_HOURS = 72.0
MAX_LOAD = 3.0
#: no cap on a study's jobs (0): runs are queued for background workers instead
DEFAULT_MAX_JOBS = 0
DEFAULT_MAX_WALL_S = 1800.0
DEFAULT_WORKERS = 1
DEFAULT_MAX_QUEUED = 8
DEFAULT_KEEP = 30
RUN_ID = re.compile(r"^w[0-9a-f]{16}$")
#: the headline metrics the dashboard compares (the rest stay in metrics.json)
HEADLINE_KEYS = (
    "jobs",
    "finished",
    "unschedulable",
    "unfinished",
    "avg_jct_s",
    "p50_jct_s",
    "p99_jct_s",
    "avg_queue_s",
    "p99_queue_s",
    "makespan_s",
    "utilization",
    "jain_fairness",
    "preemptions",
    "gpu_hours",
    "lost_gpu_hours",
    "cycle_ms_p99",
    "wall_s",
)


class WhatIfBusy(Exception):
    """The queue of runs is full."""


def fleets() -> list[str]:
    return fleet_presets()


def tenants() -> list[str]:
    return tenant_presets()


@dataclass(frozen=True, slots=True)
class Figure:
    alt: str
    caption: str
    #: a ``data:image/png;base64,...`` URI, or "" when the report had nothing to draw
    src: str
    empty: str = ""


class _Figures(HTMLParser):
    """The ``<figure>`` elements of a ``write_report`` page: image, alt text and caption."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[Figure] = []
        self._in_fig = False
        self._where = ""
        self._alt = self._src = ""
        self._caption: list[str] = []
        self._empty: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "figure":
            self._in_fig, self._alt, self._src = True, "", ""
            self._caption, self._empty = [], []
        elif self._in_fig and tag == "img":
            self._alt, self._src = a.get("alt") or "", a.get("src") or ""
        elif self._in_fig and tag == "figcaption":
            self._where = "caption"
        elif self._in_fig and tag == "div" and "empty" in (a.get("class") or ""):
            self._where = "empty"

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure" and self._in_fig:
            src = self._src if self._src.startswith("data:image/png;base64,") else ""
            self.found.append(
                Figure(self._alt, "".join(self._caption).strip(), src, "".join(self._empty).strip())
            )
            self._in_fig = False
        elif tag in ("figcaption", "div"):
            self._where = ""

    def handle_data(self, data: str) -> None:
        if self._where == "caption":
            self._caption.append(data)
        elif self._where == "empty":
            self._empty.append(data)


def report_figures(html_text: str) -> list[Figure]:
    p = _Figures()
    p.feed(html_text)
    p.close()
    return p.found


def _write_json(path: Path, doc: Mapping[str, Any]) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, allow_nan=False), encoding="utf-8")
    os.replace(tmp, path)


def _write_error(folder: Path, text: str) -> None:
    """Write ``error.txt`` atomically: its presence says the run is over, so a reader that
    saw it half-written reported an empty error (a flaky test showed it)."""
    tmp = folder / "error.txt.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, folder / "error.txt")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _exit_text(code: int) -> str:
    return "cancelled" if code < 0 else f"the simulation process exited with status {code}"


class WhatIfRuns:
    """The what-if runs of one service, kept as folders under ``root``."""

    def __init__(
        self,
        root: Path,
        *,
        max_jobs: int = DEFAULT_MAX_JOBS,
        max_wall_s: float = DEFAULT_MAX_WALL_S,
        keep: int = DEFAULT_KEEP,
        workers: int = DEFAULT_WORKERS,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        self.root = root
        self.max_jobs = max_jobs
        self.max_wall_s = max_wall_s
        self.keep = keep
        self.workers = workers
        self.max_queued = max_queued
        self._lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._figures: dict[str, list[Figure]] = {}
        #: run ids waiting for a worker, oldest first
        self._queue: list[str] = []

    # -- starting and stopping ------------------------------------------------------------

    def start(
        self,
        spec: Mapping[str, Any],
        owner: str,
        now_ms: int,
        prepare: Callable[[Path], None] | None = None,
    ) -> str:
        """Queue a run of ``spec`` (already validated); its id. ``prepare`` writes what the run
        reads into its folder first (a live study's snapshot). ``WhatIfBusy`` if the queue is full."""
        with self._lock:
            if len(self._queue) >= self.max_queued:
                raise WhatIfBusy(f"{len(self._queue)} what-if runs are waiting already: try again later")
            self._prune()
            run_id = "w" + secrets.token_hex(8)
            folder = self.root / run_id
            # The service's own: 0700, as the data directory may be searchable (0711) for
            # Slurm jobs, which must not read other users' runs by name.
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.root, 0o700)
            folder.mkdir()
        if prepare is not None:
            prepare(folder)
        with self._lock:
            _write_json(
                folder / "request.json",
                {"id": run_id, "spec": dict(spec), "owner": owner, "created_ms": now_ms},
            )
            self._queue.append(run_id)
        self._pump()
        return run_id

    def _running(self) -> int:
        return sum(1 for rid, p in self._procs.items() if p.poll() is None and not self._has_verdict(rid))

    def _pump(self) -> None:
        """Start queued runs while a worker slot is free."""
        started: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        with self._lock:
            while self._queue and self._running() < self.workers:
                run_id = self._queue.pop(0)
                folder = self.root / run_id
                log = open(folder / "child.log", "wb")  # noqa: SIM115 - handed to the child, closed below
                try:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "gpupool.service.whatif", str(folder),
                         "--max-jobs", str(self.max_jobs)],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        # No terminal signals from the service's console: the service ends it.
                        start_new_session=True,
                    )  # fmt: skip
                finally:
                    log.close()
                self._procs[run_id] = proc
                started.append((run_id, proc, folder))
        for run_id, proc, folder in started:
            threading.Thread(
                target=self._watch, args=(run_id, proc, folder), name=f"gpupool-whatif-{run_id}", daemon=True
            ).start()

    def _has_verdict(self, run_id: str) -> bool:
        f = self.root / run_id
        return (f / "result.json").exists() or (f / "error.txt").exists()

    def _watch(self, run_id: str, proc: subprocess.Popen[bytes], folder: Path) -> None:
        try:
            self._wait_child(run_id, proc, folder)
        finally:
            self._pump()  # a worker slot is free: the next queued run starts

    def _wait_child(self, run_id: str, proc: subprocess.Popen[bytes], folder: Path) -> None:
        try:
            code = proc.wait(timeout=self.max_wall_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            _write_error(
                folder, f"stopped: the run took longer than {self.max_wall_s:g} s (the what-if time limit)"
            )
            return
        if code != 0 and not (folder / "error.txt").exists() and not (folder / "result.json").exists():
            tail = ""
            with contextlib.suppress(OSError):
                tail = (folder / "child.log").read_text(encoding="utf-8", errors="replace")[-2000:]
            why = _exit_text(code)
            _write_error(folder, f"{why}\n{tail}".strip())

    def cancel(self, run_id: str) -> bool:
        with self._lock:
            if run_id in self._queue:
                self._queue.remove(run_id)
                _write_error(self.root / run_id, "cancelled before it started")
                return True
            proc = self._procs.get(run_id)
        if proc is None or proc.poll() is not None:
            return False
        proc.terminate()
        return True

    def close(self) -> None:
        """Stop every run still going (the service is stopping); queued ones read as interrupted."""
        with self._lock:
            self._queue.clear()
            procs = list(self._procs.values())
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def _prune(self) -> None:
        """Keep the newest ``keep - 1`` finished runs (the new one makes ``keep``)."""
        runs = sorted(
            (f for f in self._folders() if f.name not in self._queue), key=lambda f: f.stat().st_mtime
        )
        for old in runs[: max(0, len(runs) - (self.keep - 1))]:
            for p in sorted(old.rglob("*"), reverse=True):
                p.unlink() if p.is_file() else p.rmdir()
            old.rmdir()
            self._figures.pop(old.name, None)
            self._procs.pop(old.name, None)

    # -- reading --------------------------------------------------------------------------

    def _folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if p.is_dir() and RUN_ID.match(p.name)]

    def folder(self, run_id: str) -> Path | None:
        if not RUN_ID.match(run_id):
            return None
        f = self.root / run_id
        return f if (f / "request.json").is_file() else None

    def status(self, run_id: str) -> dict[str, Any] | None:
        f = self.folder(run_id)
        if f is None:
            return None
        req = _read_json(f / "request.json") or {}
        result = _read_json(f / "result.json")
        progress = _read_json(f / "progress.json")
        error = None
        if (f / "error.txt").is_file():
            error = (f / "error.txt").read_text(encoding="utf-8", errors="replace")
        with self._lock:
            proc = self._procs.get(run_id)
            queued = run_id in self._queue
            position = self._queue.index(run_id) + 1 if queued else None
        code = proc.poll() if proc is not None else None
        if result is not None:
            state = "done"
        elif queued and error is None:
            state = "queued"
        elif error is not None:
            state = "failed"
        elif proc is not None and code is None:
            state = "running"
        elif code is not None:
            # Exited without a verdict: the watcher is about to write one; say it already.
            state, error = "failed", _exit_text(code)
        else:
            state, error = "failed", "interrupted: the service stopped during the run"
        return {
            "id": run_id,
            "state": state,
            "spec": req.get("spec", {}),
            "owner": req.get("owner", ""),
            "created_ms": req.get("created_ms", 0),
            "progress": progress,
            "error": error,
            "result": result,
            "queue_position": position,
        }

    def runs(self) -> list[dict[str, Any]]:
        out = [s for f in self._folders() if (s := self.status(f.name)) is not None]
        out.sort(key=lambda s: (-int(s["created_ms"]), s["id"]))
        return out

    def figures(self, run_id: str) -> list[Figure] | None:
        f = self.folder(run_id)
        if f is None or not (f / "result.json").is_file():
            return None
        if not (f / "report.html").is_file():
            return []  # a live study compares two runs in its result; it draws no report
        cached = self._figures.get(run_id)
        if cached is None:
            cached = report_figures((f / "report.html").read_text(encoding="utf-8"))
            self._figures[run_id] = cached
        return cached

    def report(self, run_id: str) -> Path | None:
        f = self.folder(run_id)
        if f is None or not (f / "result.json").is_file() or not (f / "report.html").is_file():
            return None
        return f / "report.html"


# ---------------------------------------------------------------------------------- the child


def _run(folder: Path, max_jobs: int) -> int:
    """Simulate ``folder``'s request and write its report; the process's exit status."""
    from gpupool.sim.report import write_report
    from gpupool.sim.scenario import build_scenario, run_policies
    from gpupool.sim.sweep import run_tasks

    req = _read_json(folder / "request.json")
    if req is None:
        _write_error(folder, "request.json is missing or unreadable")
        return 2
    spec = req["spec"]
    if spec.get("source") == "live":
        return _run_live(folder, spec)
    policies: Sequence[str] = spec["policies"]
    started = time.monotonic()
    _write_json(folder / "progress.json", {"stage": "loading the workload", "done": 0, "total": 0})
    try:
        scenario = build_scenario(
            spec["fleet"],
            spec.get("tenants") or None,
            spec["workload"],
            seed=int(spec["seed"]),
            load=float(spec["load"]),
            hours=float(spec["hours"]),
        )
    except (ValueError, FileNotFoundError) as e:
        _write_error(folder, f"the scenario could not be built: {e}")
        return 1
    n = len(scenario.jobs)
    if n == 0:
        _write_error(folder, "the workload has no jobs")
        return 1
    if 0 < max_jobs < n:
        _write_error(
            folder,
            f"the workload has {n:,} jobs; what-if runs from the dashboard take at most {max_jobs:,} jobs "
            "(use a shorter or lighter workload, or `gpupool compare` for large studies)",
        )
        return 1
    last = [0.0]

    def progress(policy: str, done: int, total: int) -> None:
        t = time.monotonic()
        if t - last[0] < 0.2 and done < total:
            return  # a few writes a second are plenty for a progress bar
        last[0] = t
        _write_json(
            folder / "progress.json",
            {
                "stage": f"simulating {policy}",
                "policy": policy,
                "policy_index": list(policies).index(policy),
                "policies": len(policies),
                "done": done,
                "total": total,
            },
        )

    # One task per policy on the sweep's runner (``gpupool.sim.sweep.run_tasks``): here one
    # after the other with a progress bar, or on Ray when ``GPUPOOL_WHATIF_RAY`` says so.
    serial = RAY_ADDRESS is None

    def one(policy: str) -> dict[str, Any]:
        return {"result": run_policies(scenario, [policy], progress=progress if serial else None)[0]}

    address = None if RAY_ADDRESS in (None, "local") else RAY_ADDRESS
    results = [row["result"] for row in run_tasks(one, list(policies), serial=serial, address=address)]
    _write_json(folder / "progress.json", {"stage": "drawing the report", "done": n, "total": n})
    context = dict(scenario.context)
    context["policies"] = ", ".join(policies)
    context["started by"] = f"{req.get('owner', '')} from the dashboard"
    write_report(folder, results, title=str(spec.get("title") or "what-if"), context=context)
    metrics = _read_json(folder / "metrics.json") or {}
    headline = {
        name: {k: m.get(k) for k in HEADLINE_KEYS} | {"sectors": m.get("sectors", [])}
        for name, m in metrics.items()
    }
    _write_json(
        folder / "result.json",
        {
            "policies": list(metrics),
            "metrics": headline,
            "context": context,
            "jobs": n,
            "wall_s": round(time.monotonic() - started, 3),
            "cpu_s": round(time.process_time(), 3),
        },
    )
    return 0


def _run_live(folder: Path, spec: Mapping[str, Any]) -> int:
    """A live study: the snapshot in ``snapshot/`` plus the changes; baseline and change."""
    from gpupool.service.live_whatif import ChangeError, Changes, run

    started = time.monotonic()
    changes = spec.get("changes") or {}
    try:
        ch = Changes({k: list(changes.get(k) or []) for k in ITEM_FIELDS}).build(
            scale_load=float(changes.get("scale_load", 1.0)),
            hours=float(spec["hours"]),
            seed=int(spec["seed"]),
        )
    except ChangeError as e:
        _write_error(folder, f"the change cannot apply: {e}")
        return 1
    names = ("baseline", "change")

    def progress(done: int, total: int) -> None:
        stage = f"simulating the {names[min(done, 1)]}" if done < total else "comparing"
        _write_json(folder / "progress.json", {"stage": stage, "done": done, "total": total, "policies": 1})

    _write_json(folder / "progress.json", {"stage": "building the workload", "done": 0, "total": 2})
    try:
        address = None if RAY_ADDRESS in (None, "local") else RAY_ADDRESS
        serial = RAY_ADDRESS is None
        result = run(
            folder / "snapshot", ch, work=folder / "work", progress=progress, serial=serial, address=address
        )
    except (ChangeError, ValueError, FileNotFoundError) as e:
        _write_error(folder, f"the study could not be built: {e}")
        return 1
    result |= {
        "kind": "live",
        "wall_s": round(time.monotonic() - started, 3),
        "jobs": result["change"]["jobs"],
    }
    _write_json(folder / "result.json", result)
    return 0


#: the list fields of a live study's changes (``gpupool.service.live_whatif.SYNTAX``)
ITEM_FIELDS = ("add_nodes", "remove_nodes", "move_nodes", "guarantees", "weights", "awards")
#: where the live studies' two simulations run: None (one after the other in the run's
#: process), "local" (a local Ray) or a Ray cluster's address (``GPUPOOL_WHATIF_RAY``)
RAY_ADDRESS = os.environ.get("GPUPOOL_WHATIF_RAY") or None


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gpupool.service.whatif", description=__doc__)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--max-jobs", type=int, default=DEFAULT_MAX_JOBS)
    args = ap.parse_args(argv)
    try:
        return _run(args.folder, args.max_jobs)
    except Exception as e:  # the service shows this text to the user: say what broke
        _write_error(args.folder, f"the simulation failed: {type(e).__name__}: {e}")
        raise


if __name__ == "__main__":
    sys.exit(main())
