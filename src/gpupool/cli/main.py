"""The ``gpupool`` command: simulate, compare, demo, and the fleet/tenant inspectors.

This module owns the command-line surface of the digital twin. It parses options, builds a
scenario (``gpupool.sim.scenario``), runs it with a progress bar on stderr, and prints Rich
tables or one JSON object on stdout. Bad input ends in one red line naming the problem and
exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gpupool.cli.admin_cmd import admin_app
from gpupool.cli.client_cmd import register as register_client_commands
from gpupool.cli.fleet_cmd import fleet_app, tenants_app
from gpupool.cli.placers_cmd import compare_placers_cmd
from gpupool.cli.programme_cmd import register as register_programme_commands
from gpupool.cli.report_cmd import register as register_report_commands
from gpupool.cli.reservation_cmd import reservation_app
from gpupool.cli.serve_cmd import serve
from gpupool.cli.slurm_cmd import import_slurm
from gpupool.cli.sweep_cmd import sweep
from gpupool.cli.twin_cmd import twin_app, whatif
from gpupool.core.accelerator import CatalogueError
from gpupool.core.fleet import FleetError
from gpupool.core.policy import POLICIES
from gpupool.core.tenancy import TenancyError
from gpupool.fleetfile import FleetFileError
from gpupool.sim.failures import FailureLogError
from gpupool.sim.named_workloads import NAMED_WORKLOADS
from gpupool.sim.stall import SimulationStuck
from gpupool.sim.workload import TraceError
from gpupool.translation import _

if TYPE_CHECKING:
    from gpupool.sim.records import RunResult
    from gpupool.sim.scenario import Scenario
    from gpupool.sim.simulator import SimConfig

app = typer.Typer(
    help="gpupool: share a national GPU pool fairly and fast. This build carries the scheduling "
    "core and its digital twin (simulate, compare, demo).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# A Slurm cluster's inventory as a fleet file (gpupool.cli.slurm_cmd).
fleet_app.command("import-slurm")(import_slurm)
app.add_typer(fleet_app, name="fleet")
app.add_typer(tenants_app, name="tenants")
# The live service's client commands (login, submit, queue, show, cancel, explain, logs, usage).
register_client_commands(app)
# The national programme: calls, applications, reviews and awards (ADR 0010).
register_programme_commands(app)
# Reports: usage over time and the public report of a period (gpupool.cli.report_cmd).
register_report_commands(app)
# The live service itself (gpupool.service).
app.command("serve")(serve)
# Sweeps of many simulations on Ray (gpupool.cli.sweep_cmd).
app.command("sweep")(sweep)
# The twin of the live pool: snapshot, replay (gpupool.cli.twin_cmd, ADR 0017).
app.add_typer(twin_app, name="twin")
app.command("whatif")(whatif)
app.command("compare-placers")(compare_placers_cmd)
# Local recovery of a pool-admin token on the server's machine (gpupool.cli.admin_cmd).
app.add_typer(admin_app, name="admin")
# Advance reservations: workshops and maintenance windows (gpupool.cli.reservation_cmd, ADR 0020).
app.add_typer(reservation_app, name="reservation")

out_console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")
BAD_INPUT = (
    FleetFileError,
    FleetError,
    TenancyError,
    CatalogueError,
    TraceError,
    FailureLogError,
    FileNotFoundError,
    ValueError,
)
#: Bad rows named one per line on stderr with --skip-bad-rows; the rest are counted.
SHOWN_SKIPPED = 5

HEADLINE = [
    ("jobs", "jobs", "{:,.0f}"),
    ("finished", "finished", "{:,.0f}"),
    ("avg_jct_s", "avg JCT (h)", "h"),
    ("p50_jct_s", "p50 JCT (h)", "h"),
    ("p99_jct_s", "p99 JCT (h)", "h"),
    ("avg_queue_s", "avg queue (h)", "h"),
    ("makespan_s", "makespan (h)", "h"),
    ("utilization", "utilisation (arrivals + drain)", "{:.1%}"),
    ("utilization_arrivals", "utilisation while jobs arrive", "{:.1%}"),
    ("utilization_drain", "utilisation in the drain after", "{:.1%}"),
    ("drain_hours", "drain after the last arrival (h)", "{:,.1f}"),
    ("jain_fairness", "Jain fairness", "{:.3f}"),
    ("preemptions", "preemptions", "{:,.0f}"),
    ("node_failures", "node failures", "{:,.0f}"),
    ("failure_lost_gpu_hours", "GPU-hours lost to failures", "{:,.1f}"),
    ("gpu_hours", "GPU-hours", "{:,.1f}"),
    ("effective_gpu_hours", "effective GPU-hours", "{:,.1f}"),
    ("npu_absorbed_gpu_hours", "CUDA demand on NPUs (h)", "{:,.1f}"),
    ("ftf_rho_mean", "FTF ρ mean", "{:.2f}"),
    ("ftf_rho_max", "FTF ρ max", "{:.2f}"),
    ("wall_s", "wall (s)", "{:.2f}"),
    ("jobs_per_wall_s", "jobs / wall s", "{:,.0f}"),
]


def _fail(message: str) -> NoReturn:
    label = _("error:")
    err_console.print(f"[bold red]{label}[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _guard(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except BAD_INPUT as e:
        _fail(str(e))


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as prog:
        tasks: dict[str, Any] = {}

        def update(policy: str, done: int, total: int) -> None:
            if policy not in tasks:
                tasks[policy] = prog.add_task(f"simulating {policy}", total=total)
            prog.update(tasks[policy], completed=done)

        yield update


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if spec == "h":
        return f"{value / 3600:,.2f}"
    return spec.format(value)


def _table(metrics: list[dict[str, Any]], title: str) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("metric")
    for m in metrics:
        t.add_column(str(m["policy"]), justify="right")
    for key, label, spec in HEADLINE:
        t.add_row(label, *(_fmt(m.get(key), spec) for m in metrics))
    return t


def _run(
    fleet: str,
    tenants: str | None,
    workload: str,
    policies: list[str],
    seed: int,
    load: float,
    hours: float,
    fmt: str,
    out: Path | None,
    as_json: bool,
    validate: bool,
    backfill_depth: int,
    min_runtime_s: float,
    half_life_h: float,
    title: str,
    usage: str = "raw",
    skip_bad_rows: bool = False,
    failures: FailureOptions | None = None,
    estimates: bool = False,
    starvation_h: float = 24.0,
    catalogue: Path | None = None,
) -> tuple[Scenario, list[RunResult], list[dict[str, Any]]]:
    # The simulator, its LP solver and Matplotlib are imported here, not at the top: the
    # client commands (``gpupool queue``) should start in a fraction of a second.
    from gpupool.core.scheduler import SchedulerConfig
    from gpupool.sim.metrics import compute_metrics
    from gpupool.sim.report import write_report
    from gpupool.sim.scenario import build_scenario, parse_policy, run_policies
    from gpupool.sim.simulator import SimConfig

    if usage not in ("raw", "effective"):
        _fail(_("unknown --usage {usage} (expected raw or effective)", usage=repr(usage)))
    for p in policies:
        name, backfill = parse_policy(p)
        if name not in POLICIES:
            _fail(_("unknown policy {name} (known: {known})", name=repr(name), known=", ".join(POLICIES)))
        if backfill not in ("none", "easy"):
            _fail(
                _(
                    "unknown backfill {backfill} in {policy} (expected none or easy)",
                    backfill=repr(backfill),
                    policy=repr(p),
                )
            )
    scenario = _guard(
        lambda: build_scenario(
            fleet,
            tenants,
            workload,
            seed=seed,
            load=load,
            hours=hours,
            fmt=fmt,
            skip_bad_rows=skip_bad_rows,
            catalogue=catalogue,
        )
    )
    _warn_skipped(scenario)
    if not scenario.jobs:
        _fail(_("workload {workload} has no jobs", workload=repr(workload)))
    base = SchedulerConfig(
        backfill_depth=backfill_depth,
        min_runtime_ms=int(min_runtime_s * 1000),
        decay_half_life_ms=int(half_life_h * 3_600_000),
        usage=usage,
        starvation_ms=max(1, int(starvation_h * 3_600_000)),
    )
    sim = SimConfig(validate=validate, estimates=estimates)
    if failures is not None:
        sim = _guard(lambda: failures.apply(sim, scenario, seed))
    with _progress(sys.stderr.isatty() or not as_json) as cb:
        try:
            results = run_policies(scenario, policies, base=base, sim=sim, progress=cb)
        except SimulationStuck as e:
            _fail(str(e))
    metrics = [compute_metrics(r) for r in results]
    if out is not None:
        ctx = dict(scenario.context)
        ctx["command"] = shlex.join(["gpupool", *sys.argv[1:]])
        path = write_report(out, results, title=title, context=ctx)
        if not as_json:
            err_console.print(_("report: [link=file://{url}]{path}[/]", url=path.resolve(), path=path))
    return scenario, results, metrics


class FailureOptions:
    """The failure options of ``simulate``/``compare``: drawn from rates, from a log, or both."""

    def __init__(
        self, mode: str, scale: float, mttr_h: float, log: Path | None, reservations: Path | None = None
    ) -> None:
        if mode not in ("none", "mtbf"):
            _fail(_("unknown --failures {mode} (expected none or mtbf)", mode=repr(mode)))
        self.mode, self.scale, self.mttr_h, self.log = mode, scale, mttr_h, log
        self.reservations = reservations  # --reservations: maintenance windows, workshops (ADR 0020)

    @property
    def active(self) -> bool:
        return self.mode != "none" or self.log is not None

    def apply(self, sim: SimConfig, scenario: Scenario, seed: int) -> SimConfig:
        from dataclasses import replace

        from gpupool.sim.failures import FailureRates, read_failure_log

        if self.mode == "mtbf":
            sim = replace(sim, failures=FailureRates(mttr_h=self.mttr_h, scale=self.scale), failure_seed=seed)
        if self.log is not None:
            sim = replace(sim, node_events=tuple(read_failure_log(self.log, scenario.fleet)))
        if sim.failures is not None or sim.node_events:
            scenario.context["failures"] = self.describe()
        if self.reservations is not None:
            from gpupool.sim.reservations_file import load_reservations

            held = load_reservations(self.reservations, scenario.fleet, scenario.tenancy)
            sim = replace(sim, reservations=held)
        return sim

    def describe(self) -> str:
        parts = []
        if self.mode == "mtbf":
            parts.append(
                f"node failures drawn at {self.scale:g}x the Llama 3 rate (1 per 50,677 GPU-hours), "
                f"mean repair {self.mttr_h:g} h"
            )
        if self.log is not None:
            parts.append(f"node events from {self.log}")
        return "; ".join(parts)


def _warn_skipped(scenario: Scenario) -> None:
    """One yellow line per skipped row (the first few), then how many in all."""
    skipped = scenario.skipped
    if not skipped:
        return
    for e in skipped[:SHOWN_SKIPPED]:
        err_console.print(f"[bold yellow]skipped:[/] {e}", highlight=False, soft_wrap=True)
    more = f" ({len(skipped) - SHOWN_SKIPPED:,} not shown)" if len(skipped) > SHOWN_SKIPPED else ""
    err_console.print(
        f"[bold yellow]skipped {len(skipped):,} bad trace rows[/]{more}; `skipped_rows` in the metrics",
        highlight=False,
    )


FleetOpt = Annotated[
    str, typer.Option("--fleet", "-f", help="Fleet file or preset (demo, korea-2025, philly, gavel-108).")
]
CatalogueOpt = Annotated[
    Path | None,
    typer.Option(
        "--catalogue",
        help="A site's catalogue file (YAML/TOML) over the shipped one: its models are added or "
        "replace those of the same name (throughputs, MIG profiles, sharing rules).",
    ),
]
TenantsOpt = Annotated[
    str | None, typer.Option("--tenants", "-t", help="Tenants file or preset (default: the fleet's own).")
]
WorkloadOpt = Annotated[
    str, typer.Option("--workload", "-w", help=f"Trace file or one of: {', '.join(NAMED_WORKLOADS)}.")
]
SeedOpt = Annotated[int, typer.Option(help="Seed for generated workloads.")]
LoadOpt = Annotated[float, typer.Option(help="Offered load of a synthetic workload (fraction of the fleet).")]
HoursOpt = Annotated[float, typer.Option(help="Length of a synthetic workload in hours.")]
FormatOpt = Annotated[str, typer.Option("--format", help="Trace format (auto, philly, itp-raw, gavel, ...).")]
OutOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Write metrics.json, jobs.csv, report.html here.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")]
ValidateOpt = Annotated[
    bool, typer.Option("--validate", help="Check every invariant after every cycle (slow).")
]
DepthOpt = Annotated[int, typer.Option(help="Jobs examined per cycle after the first that cannot start.")]
MinRunOpt = Annotated[
    float, typer.Option("--min-runtime", help="Seconds a job runs before it may be preempted.")
]
HalfLifeOpt = Annotated[float, typer.Option("--half-life", help="Fair-share usage decay half-life, hours.")]
StarvationOpt = Annotated[
    float,
    typer.Option(
        "--starvation-hours",
        min=0.001,
        help="The starvation bound: a job that waited this long is served before the policy's order.",
    ),
]
UsageOpt = Annotated[
    str,
    typer.Option(
        help="What budgets and fair share count: raw GPU-hours or effective ones (scaled by throughput)."
    ),
]
FailuresOpt = Annotated[
    str,
    typer.Option(
        "--failures",
        help="Node failures: none, or mtbf (drawn per node from the published rate of Meta's "
        "Llama 3 run, 419 interruptions in 54 days on 16,384 H100: 1 per 50,677 GPU-hours).",
    ),
]
FailureScaleOpt = Annotated[
    float, typer.Option("--failure-scale", help="Multiply the published failure rate by this.")
]
MttrOpt = Annotated[float, typer.Option("--mttr", help="Mean time to repair a failed node, hours.")]
FailureLogOpt = Annotated[
    Path | None,
    typer.Option(
        "--failure-log",
        help="CSV time_s,node,event (down, drain, up; seconds after the first submission): "
        "failures, drains and maintenance windows.",
    ),
]
SkipOpt = Annotated[
    bool,
    typer.Option(
        "--skip-bad-rows",
        help="Leave out trace rows the scheduler would refuse (unknown priority class, model, ...) "
        "and count them as skipped_rows, instead of stopping at the first.",
    ),
]


@app.command()
def simulate(
    fleet: FleetOpt = "demo",
    tenants: TenantsOpt = None,
    workload: WorkloadOpt = "synthetic",
    policy: Annotated[
        str, typer.Option("--policy", "-p", help=f"One of {', '.join(POLICIES)}.")
    ] = "fairshare",
    backfill: Annotated[str, typer.Option(help="none or easy.")] = "none",
    seed: SeedOpt = 0,
    load: LoadOpt = 0.8,
    hours: HoursOpt = 24.0,
    fmt: FormatOpt = "auto",
    out: OutOpt = None,
    as_json: JsonOpt = False,
    validate: ValidateOpt = False,
    backfill_depth: DepthOpt = 1000,
    min_runtime: MinRunOpt = 0.0,
    half_life: HalfLifeOpt = 168.0,
    usage: UsageOpt = "raw",
    skip_bad_rows: SkipOpt = False,
    failures: FailuresOpt = "none",
    failure_scale: FailureScaleOpt = 1.0,
    mttr: MttrOpt = 24.0,
    failure_log: FailureLogOpt = None,
    reservations: Annotated[
        Path | None,
        typer.Option(
            help="CSV id,start_s,end_s,cluster,model,count,nodes,tenants: advance reservations "
            "(maintenance when tenants is empty; seconds after the first submission)."
        ),
    ] = None,
    estimates: Annotated[
        bool,
        typer.Option(
            "--estimates",
            help="Record every job's estimated start at submission and report how far it was "
            "from the start that happened (estimate_error_median/_p90, relative to the wait, "
            "over jobs that waited > 10 min). Costs one estimate per instant with submissions.",
        ),
    ] = False,
    starvation_hours: StarvationOpt = 24.0,
    catalogue: CatalogueOpt = None,
) -> None:
    """Simulate one policy on a fleet, tenants and workload; print its metrics."""
    name = policy if "+" in policy or backfill == "none" else f"{policy}+{backfill}"
    *_results, metrics = _run(
        fleet, tenants, workload, [name], seed, load, hours, fmt, out, as_json, validate,
        backfill_depth, min_runtime, half_life, f"gpupool simulation: {name} on {fleet}", usage,
        skip_bad_rows, FailureOptions(failures, failure_scale, mttr, failure_log, reservations), estimates,
        starvation_hours, catalogue,
    )  # fmt: skip
    if as_json:
        out_console.print_json(json.dumps(metrics[0]))
    else:
        out_console.print(_table(metrics, f"{name} on {fleet} / {workload}"))


@app.command()
def compare(
    fleet: FleetOpt = "demo",
    tenants: TenantsOpt = None,
    workload: WorkloadOpt = "synthetic",
    policies: Annotated[
        str,
        typer.Option(
            help="Comma-separated policies, each optionally with +easy (e.g. fifo,fairshare+easy,las)."
        ),
    ] = "fifo,fairshare+easy,las",
    seed: SeedOpt = 0,
    load: LoadOpt = 0.8,
    hours: HoursOpt = 24.0,
    fmt: FormatOpt = "auto",
    out: OutOpt = None,
    as_json: JsonOpt = False,
    validate: ValidateOpt = False,
    backfill_depth: DepthOpt = 1000,
    min_runtime: MinRunOpt = 0.0,
    half_life: HalfLifeOpt = 168.0,
    usage: UsageOpt = "raw",
    skip_bad_rows: SkipOpt = False,
    failures: FailuresOpt = "none",
    failure_scale: FailureScaleOpt = 1.0,
    mttr: MttrOpt = 24.0,
    failure_log: FailureLogOpt = None,
    starvation_hours: StarvationOpt = 24.0,
    catalogue: CatalogueOpt = None,
) -> None:
    """Simulate several policies on the same scenario, side by side."""
    names = [p.strip() for p in policies.split(",") if p.strip()]
    if not names:
        _fail(_("--policies is empty"))
    if len(set(names)) != len(names):
        _fail(_("--policies names a policy twice: {policies}", policies=policies))
    *_results, metrics = _run(
        fleet, tenants, workload, names, seed, load, hours, fmt, out, as_json, validate,
        backfill_depth, min_runtime, half_life, f"gpupool comparison on {fleet}", usage,
        skip_bad_rows, FailureOptions(failures, failure_scale, mttr, failure_log),
        starvation_h=starvation_hours, catalogue=catalogue,
    )  # fmt: skip
    if as_json:
        out_console.print_json(json.dumps({m["policy"]: m for m in metrics}))
    else:
        out_console.print(_table(metrics, f"{', '.join(names)} on {fleet} / {workload}"))


@app.command()
def demo(
    twin: Annotated[
        bool, typer.Option("--twin", help="Run the digital twin (three policies, a report) instead.")
    ] = False,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Database, tokens and job logs.")] = Path(
        "gpupool-demo"
    ),
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8080,
    serve_for: Annotated[
        float | None,
        typer.Option("--serve-for", help="Stop after this many seconds (default: until Ctrl-C)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="--twin: where to write the report.")] = Path(
        "out/demo"
    ),
    hours: HoursOpt = 24.0,
    seed: SeedOpt = 0,
) -> None:
    """Start the platform on embedded defaults (SQLite, demo fleet, sample tenants and jobs).

    Prints the URL and tokens, then serves until Ctrl-C. With --twin, simulate the demo fleet
    under three policies instead and write a report.
    """
    if not twin:
        from gpupool.cli.demo_cmd import run_service_demo

        _guard(lambda: run_service_demo(data_dir, host, port, serve_for, out_console))
        return
    names = ["fifo", "fairshare+easy", "las"]
    *_results, metrics = _run(
        "demo", None, "synthetic", names, seed, 1.2, hours, "auto", out, False, False,
        1000, 0.0, 168.0, "gpupool demo: the digital twin on the demo fleet",
    )  # fmt: skip
    out_console.print(
        _table(metrics, "demo fleet, synthetic Philly-calibrated workload at 120% offered load")
    )
    out_console.print(_("Open {path} in a browser to see the figures.", path=(out / "report.html").resolve()))


def main() -> None:  # pragma: no cover - console entry point
    app()
