"""Fractions of accelerators: MIG profiles and placements, shared-GPU limits, placers.

Scenarios over ``gpupool.core.mig``, ``gpupool.core.gpu_share`` and
``gpupool.core.fraction_placement`` on fleets built from the shipped catalogue, and a
Hypothesis property that no placer ever oversubscribes a GPU's slices or memory.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gpupool.cli.main import app
from gpupool.core.fleet import Fleet, FleetBuilder, FleetError
from gpupool.core.fraction_placement import CellMode, FractionRequest, FractionState, Placer
from gpupool.core.gpu_share import UNIT, ShareError, ShareRequest
from gpupool.core.mig import MigError, MigInstance, parse_mig_request
from gpupool.core.node_fractions import MigMode, NodeFractions
from gpupool.fleetfile import FleetFileError, extend_catalogue, load_fleet
from gpupool.fleetfile.catalogue import load_catalogue
from gpupool.sim.fraction_twin import SMALL_JOBS, compare_placers, fraction_fleet, tasks_for

CAT = load_catalogue()


def _fleet(rules: list[NodeFractions], model: str = "H100", gpus: int = 8) -> Fleet:
    b = FleetBuilder("t", CAT)
    b.add_site("s")
    c = b.add_cluster("c", "s")
    rack = b.add_rack(b.add_block(c, "b"), "r")
    names = [f"n{i}" for i in range(len(rules))]
    b.add_nodes(rack, len(rules), model, gpus, names)
    for nm, rule in zip(names, rules, strict=True):
        b.set_fractions([nm], rule)
    return b.build()


# -- MIG profiles and valid placements ----------------------------------------------------


def test_h100_profiles_follow_nvidia_placements() -> None:
    geo = CAT["H100"].mig
    assert geo is not None
    assert list(geo.profiles) == ["1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]
    assert geo.profile("3g.40gb").starts == (0, 4)
    geo.check([MigInstance("4g.40gb", 0), MigInstance("3g.40gb", 4)])
    geo.check([MigInstance("3g.40gb", 0), MigInstance("3g.40gb", 4)])
    geo.check([MigInstance("1g.10gb", s) for s in range(7)])
    with pytest.raises(MigError, match="cannot start at memory slice 2"):
        geo.check([MigInstance("3g.40gb", 2)])
    with pytest.raises(MigError, match="overlaps"):
        geo.check([MigInstance("2g.20gb", 0), MigInstance("1g.10gb", 1)])
    with pytest.raises(MigError, match="cannot start at memory slice 7"):
        geo.check([MigInstance("1g.10gb", 7)])
    assert geo.fraction("1g.10gb") == Fraction(1, 7)


def test_every_mig_model_of_the_catalogue() -> None:
    want = {
        "H100": "1g.10gb 1g.20gb 2g.20gb 3g.40gb 4g.40gb 7g.80gb",
        "A100": "1g.10gb 1g.20gb 2g.20gb 3g.40gb 4g.40gb 7g.80gb",
        "A100-40GB": "1g.5gb 1g.10gb 2g.10gb 3g.20gb 4g.20gb 7g.40gb",
        "H200": "1g.18gb 1g.35gb 2g.35gb 3g.71gb 4g.71gb 7g.141gb",
        "B200": "1g.23gb 1g.45gb 2g.45gb 3g.90gb 4g.90gb 7g.180gb",
    }
    for model, names in want.items():
        geo = CAT[model].mig
        assert geo is not None and " ".join(geo.profiles) == names, model
        biggest = geo.profile(names.split()[-1])
        assert biggest.memory_gib == CAT[model].memory_gib
    assert CAT["ATOM"].mig is None and not CAT["ATOM"].sharing


def test_operator_layout_is_placed_on_valid_starts() -> None:
    geo = CAT["H100"].mig
    assert geo is not None
    layout = geo.layout(["1g.10gb", "3g.40gb", "2g.20gb", "1g.10gb"])
    geo.check(layout)
    assert {(i.profile, i.start) for i in layout} == {
        ("3g.40gb", 4),
        ("2g.20gb", 2),
        ("1g.10gb", 1),
        ("1g.10gb", 0),
    }
    with pytest.raises(MigError, match=r"no valid place left for 1g\.10gb"):
        geo.layout(["7g.80gb", "1g.10gb"])
    with pytest.raises(MigError, match="unknown MIG profile"):
        geo.layout(["1g.5gb"])


def test_parse_mig_request() -> None:
    assert parse_mig_request("1g.10gb") == (1, "1g.10gb")
    assert parse_mig_request("3x2g.20gb") == (3, "2g.20gb")
    with pytest.raises(ValueError, match="count must be >= 1"):
        parse_mig_request("0x1g.10gb")


def test_fixed_layout_instances_are_used_as_created() -> None:
    geo = CAT["H100"].mig
    assert geo is not None
    rule = NodeFractions(mig=MigMode.FIXED, layout=geo.layout(["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"]))
    st_ = FractionState(_fleet([rule], gpus=2))
    # two GPUs x one 3g.40gb each: a third does not fit, and no 4g exists in the layout
    assert st_.place("a", FractionRequest.mig("3g.40gb"), Placer.BEST_FIT) is not None
    assert st_.place("b", FractionRequest.mig("3g.40gb"), Placer.BEST_FIT) is not None
    assert st_.place("c", FractionRequest.mig("3g.40gb"), Placer.BEST_FIT) is None
    assert st_.place("d", FractionRequest.mig("4g.40gb"), Placer.BEST_FIT) is None
    # partitioned GPUs never serve whole-GPU jobs, even when no instance is held
    assert st_.place("e", FractionRequest.whole(1), Placer.BEST_FIT) is None
    grant = st_.place("f", FractionRequest.mig("1g.10gb", 4), Placer.FRAG_AWARE)
    assert grant is not None and len(grant.pieces) == 4 and grant.charged == pytest.approx(4 / 7)
    assert st_.place("g", FractionRequest.mig("1g.10gb"), Placer.FRAG_AWARE) is None
    st_.validate()


def test_dynamic_mig_counts_compute_and_memory_slices() -> None:
    st_ = FractionState(_fleet([NodeFractions(mig=MigMode.DYNAMIC)], gpus=1))
    assert st_.place("a", FractionRequest.mig("4g.40gb"), Placer.BEST_FIT) is not None
    assert st_.place("b", FractionRequest.mig("3g.40gb"), Placer.BEST_FIT) is not None
    # 7 compute slices taken: nothing more, however small
    assert st_.place("c", FractionRequest.mig("1g.10gb"), Placer.BEST_FIT) is None
    st_.release("a")
    # the 4g's slices 0-3 are free again: a 1g.20gb (2 memory slices) and two 1g.10gb fit
    for job, prof in (("d", "1g.20gb"), ("e", "1g.10gb"), ("f", "1g.10gb")):
        assert st_.place(job, FractionRequest.mig(prof), Placer.PACKING) is not None, job
    assert st_.place("g", FractionRequest.mig("1g.10gb"), Placer.PACKING) is None
    st_.validate()
    for job in ("b", "d", "e", "f"):
        st_.release(job)
    assert st_.cells[0][0].mode is CellMode.IDLE  # the last instance gone: whole again


def test_mig_is_refused_where_the_operator_or_the_model_forbids_it() -> None:
    st_ = FractionState(_fleet([NodeFractions(shared=True)]))
    assert st_.place("a", FractionRequest.mig("1g.10gb"), Placer.BEST_FIT) is None
    with pytest.raises(FleetError, match="no MIG profiles"):
        _fleet([NodeFractions(mig=MigMode.DYNAMIC)], model="ATOM")
    with pytest.raises(FleetError, match="does not let model 'ATOM' be shared"):
        _fleet([NodeFractions(shared=True)], model="ATOM")


# -- shared GPUs ---------------------------------------------------------------------------


def test_shared_memory_is_never_oversubscribed() -> None:
    st_ = FractionState(_fleet([NodeFractions(shared=True)], gpus=1))
    assert st_.place("a", FractionRequest.shared(memory_gib=30), Placer.PACKING) is not None
    assert st_.place("b", FractionRequest.shared(memory_gib=30), Placer.PACKING) is not None
    # 20 GiB of compute share left (0.25 each taken) but only 20 GiB of memory: 30 GiB fails
    assert st_.place("c", FractionRequest.shared(memory_gib=30), Placer.PACKING) is None
    assert st_.place("d", FractionRequest.shared(memory_gib=20), Placer.PACKING) is not None
    cell = st_.cells[0][0]
    assert cell.share is not None and cell.share.memory_used == 80 * 1024
    # a fraction alone is given its share of memory: 0.1 of 80 GiB no longer fits
    assert st_.place("e", FractionRequest.shared(0.1), Placer.PACKING) is None
    st_.validate()


def test_share_requests_resolve_and_are_charged_by_the_larger_part() -> None:
    need = ShareRequest(0.25, 40).need(80)
    assert need.compute == UNIT // 4 and need.memory_mib == 40 * 1024 and need.charged == 0.5
    assert ShareRequest(0.25).need(80).memory_mib == 20 * 1024
    with pytest.raises(ShareError, match="gpu_memory: 100 GiB is more than the card's 80 GiB"):
        ShareRequest(gpu_memory_gib=100).need(80)
    with pytest.raises(ShareError, match="gpu_fraction"):
        ShareRequest(1.5).need(80)
    with pytest.raises(ShareError, match="give gpu_fraction and/or gpu_memory"):
        ShareRequest().need(80)


# -- gangs next to fractions ---------------------------------------------------------------


@pytest.mark.parametrize("placer", list(Placer))
def test_gang_never_lands_on_a_partly_used_gpu(placer: Placer) -> None:
    rule = NodeFractions(shared=True, mig=MigMode.DYNAMIC)
    st_ = FractionState(_fleet([rule, rule]), workload=SMALL_JOBS)
    assert st_.place("frac", FractionRequest.shared(0.25), placer) is not None
    assert st_.place("slice", FractionRequest.mig("1g.10gb"), placer) is not None
    # 16 GPUs, two partly used: a 7-wide gang fits beside them whatever the placer did
    gang = st_.place("gang", FractionRequest.whole(7), placer)
    assert gang is not None
    used = {(p.node, p.gpu) for g in ("frac", "slice") for p in st_.grants[g].pieces}
    assert not used & {(p.node, p.gpu) for p in gang.pieces}
    assert st_.place("gang2", FractionRequest.whole(8), placer) is None
    st_.validate()


def test_packing_placers_keep_a_whole_node_for_the_gang() -> None:
    rule = NodeFractions(shared=True, mig=MigMode.DYNAMIC)
    for placer in (Placer.FRAG_AWARE, Placer.PACKING, Placer.BEST_FIT):
        st_ = FractionState(_fleet([rule, rule]), workload=SMALL_JOBS)
        for i in range(6):
            assert st_.place(f"f{i}", FractionRequest.shared(0.25), placer) is not None
        assert st_.place("gang", FractionRequest.whole(8), placer) is not None, placer
    # worst fit spreads the shares over both nodes: the 8-wide gang no longer fits
    st_ = FractionState(_fleet([rule, rule]), workload=SMALL_JOBS)
    for i in range(6):
        st_.place(f"f{i}", FractionRequest.shared(0.25), Placer.WORST_FIT)
    assert st_.place("gang", FractionRequest.whole(8), Placer.WORST_FIT) is None


def test_preempting_fractions_gives_the_gpus_back_whole() -> None:
    rule = NodeFractions(shared=True, mig=MigMode.DYNAMIC)
    st_ = FractionState(_fleet([rule], gpus=2), workload=SMALL_JOBS)
    for i in range(3):
        assert st_.place(f"s{i}", FractionRequest.shared(0.3), Placer.FRAG_AWARE) is not None
    assert st_.place("m", FractionRequest.mig("2g.20gb"), Placer.FRAG_AWARE) is not None
    assert st_.place("gang", FractionRequest.whole(2), Placer.FRAG_AWARE) is None
    assert st_.stranded() > 0
    # the victims are evicted (their grants released): both GPUs idle, the gang fits
    for victim in ("s0", "s1", "s2", "m"):
        st_.release(victim)
    assert st_.stranded() == 0
    assert st_.place("gang", FractionRequest.whole(2), Placer.FRAG_AWARE) is not None
    st_.validate()


# -- the twin's comparison -----------------------------------------------------------------


def test_fragmentation_aware_placer_beats_best_fit_on_allocation() -> None:
    fleet = fraction_fleet(CAT, nodes=8)
    results = {r.placer: r for r in compare_placers(fleet, tasks_for(fleet, seed=3))}
    fa, bf, wf = results["frag-aware"], results["best-fit"], results["worst-fit"]
    assert fa.allocation_rate["100%"] >= bf.allocation_rate["100%"]
    assert fa.allocated_at_first_failure > wf.allocated_at_first_failure
    assert fa.stranded_gpus <= wf.stranded_gpus


# -- the property: no GPU is ever oversubscribed ------------------------------------------

_REQS = st.one_of(
    st.builds(FractionRequest.whole, st.integers(1, 4)),
    st.builds(
        FractionRequest.mig,
        st.sampled_from(["1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb"]),
        st.integers(1, 3),
    ),
    st.builds(FractionRequest.shared, st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9])).filter(
        lambda r: r.share.gpu_fraction > 0
    ),
    st.builds(FractionRequest.shared, st.just(0.0), st.sampled_from([5.0, 20.0, 45.0, 80.0])),
    st.builds(FractionRequest.shared, st.sampled_from([0.1, 0.5]), st.sampled_from([10.0, 70.0])),
)
_OPS = st.lists(st.tuples(st.booleans(), _REQS, st.integers(0, 50)), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS, placer=st.sampled_from(list(Placer)))
def test_no_gpu_is_ever_oversubscribed(ops: list[tuple[bool, FractionRequest, int]], placer: Placer) -> None:
    geo = CAT["H100"].mig
    assert geo is not None
    fixed = NodeFractions(mig=MigMode.FIXED, layout=geo.layout(["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"]))
    rules = [NodeFractions(shared=True, mig=MigMode.DYNAMIC), NodeFractions(shared=True), fixed]
    state = FractionState(_fleet(rules, gpus=4), workload=SMALL_JOBS)
    n = 0
    for place, req, pick in ops:
        if place or not state.grants:
            state.place(f"j{n}", req, placer)
            n += 1
        else:
            state.release(sorted(state.grants)[pick % len(state.grants)])
        state.validate()
        # independently of validate(): add up what the grants hold, GPU by GPU
        compute: dict[tuple[int, int], int] = {}
        memory: dict[tuple[int, int], int] = {}
        slices: dict[tuple[int, int], int] = {}
        whole: dict[tuple[int, int], int] = {}
        for g in state.grants.values():
            for p in g.pieces:
                key = (p.node, p.gpu)
                if p.share is not None:
                    compute[key] = compute.get(key, 0) + p.share.compute
                    memory[key] = memory.get(key, 0) + p.share.memory_mib
                elif p.instance is not None:
                    m = geo.mask(p.instance)
                    assert not slices.get(key, 0) & m, "two instances on one memory slice"
                    slices[key] = slices.get(key, 0) | m
                else:
                    whole[key] = whole.get(key, 0) + 1
        for key, c in compute.items():
            assert c <= UNIT and memory[key] <= 80 * 1024
            assert key not in slices and key not in whole
        for key, k in whole.items():
            assert k == 1 and key not in slices


# -- a site's catalogue, the fleet file, the command line ----------------------------------

_SITE = """\
models:
  T4:
    vendor: NVIDIA
    memory_gib: 16
    stack: cuda
    sharing: [time-slicing]
    throughput:
      default: {value: 0.12, source: "site measurement", estimate: true}
      train-cnn: {value: 0.15, source: "site measurement"}
      train-transformer: {value: 0.1, source: "site measurement"}
      train-llm: {value: 0.08, source: "site measurement"}
      inference-llm: {value: 0.1, source: "site measurement"}
"""


def test_a_site_catalogue_extends_the_shipped_one(tmp_path: Path) -> None:
    f = tmp_path / "site.yaml"
    f.write_text(_SITE, encoding="utf-8")
    cat = extend_catalogue(f)
    assert "T4" in cat and "H100" in cat and cat["T4"].sharing == {"time-slicing"}
    assert cat.reference == "H100" and cat["T4"].mig is None
    # a model of the same name is replaced
    f.write_text(_SITE.replace("T4:", "H200:"), encoding="utf-8")
    assert extend_catalogue(f)["H200"].memory_gib == 16


@pytest.mark.parametrize(
    ("change", "line", "where", "what"),
    [
        ("sharing: [time-slicing]", 6, "models.T4.sharing[0]", "unknown sharing mode 'gpu-magic'"),
        ("      inference-llm", 7, "models.T4.throughput", "no figure for class(es) inference-llm"),
        ("stack: cuda", 5, "models.T4.stack", "unknown software stack 'opencl'"),
    ],
)
def test_a_bad_site_catalogue_names_line_and_field(
    tmp_path: Path, change: str, line: int, where: str, what: str
) -> None:
    text = {
        "sharing: [time-slicing]": _SITE.replace("[time-slicing]", "[gpu-magic]"),
        "      inference-llm": "\n".join(x for x in _SITE.splitlines() if "inference-llm" not in x) + "\n",
        "stack: cuda": _SITE.replace("stack: cuda", "stack: opencl"),
    }[change]
    f = tmp_path / "site.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(FleetFileError) as e:
        extend_catalogue(f)
    assert e.value.location == where and what in e.value.message
    assert e.value.line == line


def test_a_bad_mig_profile_names_line_and_field(tmp_path: Path) -> None:
    text = _SITE + (
        "    mig:\n"
        '      source: "site"\n'
        "      profiles:\n"
        "        1g.4gb: {compute: 1, memory_slices: 1, memory_gib: 4, placements: [0, 7]}\n"
        "        2g.8gb: {compute: 2, memory_slices: 2, memory_gib: 8, placements: [0, 2]}\n"
        "        3g.9gb: {compute: 3, memory_slices: 4, memory_gib: 9, placements: [6]}\n"
    )
    f = tmp_path / "site.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(FleetFileError) as e:
        extend_catalogue(f)
    assert e.value.location == "models.T4.mig.profiles['3g.9gb']"
    assert "runs past the 8 memory slices" in e.value.message and e.value.line == 18


_FLEET = """\
name: fr
sites:
  - name: s
    clusters:
      - name: c
        blocks:
          - name: b
            racks:
              - name: r
                nodes:
                  - {count: 2, model: H100, gpus: 8, fractions: {shared: true, mig: dynamic}}
                  - {count: 1, model: A100, gpus: 8, fractions: {mig: fixed, mig_layout: [LAYOUT]}}
"""


def test_fleet_file_fractions(tmp_path: Path) -> None:
    f = tmp_path / "fr.yaml"
    f.write_text(_FLEET.replace("LAYOUT", "3g.40gb, 2g.20gb, 1g.10gb@6"), encoding="utf-8")
    fleet = load_fleet(str(f))
    rules = [fleet.fractions.get(n.index) for n in fleet.nodes]
    assert rules[0] == NodeFractions(shared=True, mig=MigMode.DYNAMIC)
    assert rules[2] is not None and rules[2].mig is MigMode.FIXED
    # 1g.10gb pinned at 6 rules out 3g.40gb@4: it takes 0, and 2g.20gb the last start left, 4
    assert {(i.profile, i.start) for i in rules[2].layout} == {("3g.40gb", 0), ("2g.20gb", 4), ("1g.10gb", 6)}
    f.write_text(_FLEET.replace("LAYOUT", "4g.40gb, 4g.40gb"), encoding="utf-8")
    with pytest.raises(FleetFileError) as e:
        load_fleet(str(f))
    assert e.value.line == 12 and e.value.location.endswith("fractions.mig_layout")
    assert "no valid place left for 4g.40gb" in e.value.message
    f.write_text(_FLEET.replace("model: A100", "model: ATOM").replace("LAYOUT", "1g.10gb"), encoding="utf-8")
    with pytest.raises(FleetFileError, match="ATOM' has no MIG profiles"):
        load_fleet(str(f))


def test_cli_catalogue_option_and_compare_placers(tmp_path: Path) -> None:
    runner = CliRunner()
    site = tmp_path / "site.yaml"
    site.write_text(_SITE, encoding="utf-8")
    fleet = tmp_path / "t4.yaml"
    fleet.write_text(
        _FLEET.replace("model: H100", "model: T4")
        .replace("shared: true, mig: dynamic", "shared: true")
        .replace("LAYOUT", "3g.40gb"),
        encoding="utf-8",
    )
    r = runner.invoke(app, ["fleet", "show", str(fleet), "--json"])
    assert r.exit_code == 2 and "unknown accelerator model 'T4'" in r.output
    r = runner.invoke(app, ["fleet", "show", str(fleet), "--json", "--catalogue", str(site)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["models"]["T4"] == 16
    bad = tmp_path / "bad.yaml"
    bad.write_text(_SITE.replace("memory_gib: 16", "memory_gib: -1"), encoding="utf-8")
    r = runner.invoke(app, ["simulate", "--hours", "1", "--catalogue", str(bad)])
    assert r.exit_code == 2 and "bad.yaml:4" in r.output and "models.T4.memory_gib" in r.output
    r = runner.invoke(app, ["compare-placers", "--nodes", "4", "--seeds", "1", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert set(got["placers"]) == {p.value for p in Placer} and got["gpus"] == 32
    r = runner.invoke(app, ["compare-placers", "--mix", "odd"])
    assert r.exit_code == 2 and "unknown --mix" in r.output


def test_native_trace_carries_fractions(tmp_path: Path) -> None:
    from gpupool.sim.trace import read_trace, write_native
    from gpupool.sim.vetting import vet_workload
    from gpupool.sim.workload import TraceError, WorkloadJob

    jobs = [
        WorkloadJob("a", 0, 60_000, 1, "t", mig="1g.10gb", mig_count=2),
        WorkloadJob("b", 1_000, 60_000, 1, "t", gpu_fraction=0.25, gpu_memory_gib=20.5),
        WorkloadJob("c", 2_000, 60_000, 8, "t"),
    ]
    for suffix in (".csv", ".jsonl"):
        f = tmp_path / f"w{suffix}"
        write_native(jobs, f)
        back = read_trace(f)
        assert [(j.mig, j.mig_count, j.gpu_fraction, j.gpu_memory_gib) for j in back] == [
            ("1g.10gb", 2, 0.0, 0.0),
            ("", 0, 0.25, 20.5),
            ("", 0, 0.0, 0.0),
        ], suffix
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "submit_s,duration_s,gpus,tenant,mig,gpu_fraction\n0,60,1,t,1g.10gb,0.5\n", encoding="utf-8"
    )
    with pytest.raises(TraceError) as e:
        vet_workload(read_trace(bad), CAT, str(bad))
    assert e.value.line == 2 and e.value.field == "mig"
    bad.write_text("submit_s,duration_s,gpus,tenant,mig\n0,60,1,t,1g.6gb\n", encoding="utf-8")
    with pytest.raises(TraceError, match=r"no accelerator model of the catalogue has MIG profile '1g\.6gb'"):
        vet_workload(read_trace(bad), CAT, str(bad))


def test_service_catalogue_setting(tmp_path: Path) -> None:
    from gpupool.service.runtime import load_scenario
    from gpupool.service.settings import ServiceSettings

    site = tmp_path / "site.yaml"
    site.write_text(_SITE, encoding="utf-8")
    fleet = tmp_path / "t4.yaml"
    fleet.write_text(
        _FLEET.replace("model: H100", "model: T4")
        .replace("shared: true, mig: dynamic", "shared: true")
        .replace("LAYOUT", "3g.40gb"),
        encoding="utf-8",
    )
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(
        "name: t\nsectors:\n  s:\n    organisations:\n      o:\n        projects:\n"
        "          p: {guaranteed: {T4: 8}, members: [ann]}\n",
        encoding="utf-8",
    )
    got, _ = load_scenario(
        ServiceSettings(fleet=str(fleet), tenants=str(tenants), catalogue=str(site), data_dir=str(tmp_path))
    )
    assert got.gpus_by_model()["T4"] == 16 and got.fractions[0] == NodeFractions(shared=True)
    with pytest.raises(FleetFileError, match="unknown accelerator model 'T4'"):
        load_scenario(ServiceSettings(fleet=str(fleet), tenants=str(tenants), data_dir=str(tmp_path)))
