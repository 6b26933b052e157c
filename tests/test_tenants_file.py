"""Tenant files: the presets, checks against a fleet, and errors that name their place."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupool.core.fleet import Fleet
from gpupool.fleetfile import (
    FleetFileError,
    default_tenants_for,
    fleet_presets,
    load_fleet,
    load_tenants,
    tenant_presets,
)
from gpupool.sim.scenario import build_scenario
from gpupool.sim.workload import TraceError

PHILLY_VCS = (
    "6214e9 11cb48 6c71a0 b436b2 103959 ee9e8c 0e4a51 ed69ec 7f04ca 2869ce e13805 23dbec 51b7ef 925e2b 795a4c"
)
# nodes per VC in the philly fleet (HeliosArtifact philly_vc.csv, see tests/test_fleet_file.py)
PHILLY_VC_NODES = {
    "6214e9": 64, "7f04ca": 32, "11cb48": 16, "b436b2": 64, "ee9e8c": 64, "e13805": 16,
    "6c71a0": 32, "2869ce": 16, "ed69ec": 8, "103959": 8, "0e4a51": 32,
}  # fmt: skip


@pytest.fixture(scope="module")
def demo_fleet() -> Fleet:
    return load_fleet("demo")


@pytest.fixture(scope="module")
def korea_fleet() -> Fleet:
    return load_fleet("korea-2025")


# --- presets -----------------------------------------------------------------------------------


def test_every_fleet_preset_has_tenants_that_fit_it() -> None:
    assert set(tenant_presets()) >= {"demo", "korea-2025", "philly", "gavel"}
    for fleet in fleet_presets():
        t = load_tenants(default_tenants_for(fleet), load_fleet(fleet))
        assert t.projects


def test_default_tenants_for() -> None:
    assert default_tenants_for("gavel-108") == "gavel"
    assert default_tenants_for("korea-2025") == "korea-2025"
    with pytest.raises(FleetFileError, match="no default tenants"):
        default_tenants_for("mars-2030")


def test_korea_2025(korea_fleet: Fleet) -> None:
    t = load_tenants("korea-2025", korea_fleet)
    sectors = {t.nodes[i].path for i in t.children[-1]}
    assert sectors == {"academia", "public-research", "startups", "industry", "sovereign-ai"}
    name = {n.path: n.name for n in t.nodes}
    assert name["academia/snu"] == "서울대학교"
    assert name["academia/yonsei"] == "연세대학교"
    assert name["academia/korea-univ"] == "고려대학교"
    assert "KAIST" in name["academia/kaist"] and "POSTECH" in name["academia/postech"]
    for org in ("etri", "kisti", "kist", "nia"):
        assert f"public-research/{org}" in t.by_path
    for org in ("upstage", "twelve-labs", "rebellions", "furiosaai", "liner"):
        assert f"startups/{org}" in t.by_path
    for org in ("samsung", "sk-telecom", "hyundai-motor", "lg-ai-research", "naver-cloud"):
        assert f"industry/{org}" in t.by_path
    teams = {t.nodes[i].path.split("/")[1] for i in t.children[t.by_path["sovereign-ai"]]}
    assert teams == {"lg-ai-research", "skt", "naver-cloud", "upstage", "nc-ai"}
    assert all(t.nodes[p].members for p in t.projects)
    # the public sectors' guarantees come out of the government share
    gov = {c.index for c in korea_fleet.clusters if c.name.startswith("gov-")}
    gov_b200 = sum(g for (c, m), g in korea_fleet.gpus_by_pool.items() if c in gov and m == "B200")
    public_sectors = ("academia", "public-research", "startups", "sovereign-ai")
    public = sum(t.nodes[t.by_path[s]].guaranteed.get("B200", 0) for s in public_sectors)
    assert 0.5 * gov_b200 <= public <= gov_b200


def test_philly(demo_fleet: Fleet) -> None:
    fleet = load_fleet("philly")
    t = load_tenants("philly", fleet)
    assert [t.nodes[i].path for i in t.children[-1]] == ["philly"]
    vcs = {t.nodes[p].path.rsplit("/", 1)[-1]: t.nodes[p] for p in t.projects}
    assert set(vcs) == set(PHILLY_VCS.split())
    for vc, node in vcs.items():
        assert t.resolve(vc) == node.index
        if vc in PHILLY_VC_NODES:
            assert node.clusters == (vc,)
            assert node.weight == PHILLY_VC_NODES[vc]
        else:
            assert node.clusters == ()
            assert node.weight == 1


def test_demo_and_gavel(demo_fleet: Fleet) -> None:
    t = load_tenants("demo", demo_fleet)
    assert len(t.projects) >= 4
    assert any(t.nodes[p].borrow_limit for p in t.projects)
    assert sum(sum(t.nodes[p].guaranteed.values()) for p in t.projects) <= demo_fleet.total_gpus
    g = load_tenants("gavel", load_fleet("gavel-108"))
    assert len(g.projects) == 1 and g.resolve("gavel") == g.projects[0]


def test_loading_without_a_fleet_skips_capacity_checks() -> None:
    t = load_tenants("korea-2025")
    assert t.name == "korea-2025"


# --- files -------------------------------------------------------------------------------------

BASE = """\
name: test
sectors:
  academia:
    name: 학계
    weight: 2
    guaranteed: {H100: 16}
    organisations:
      snu:
        name: 서울대학교
        projects:
          vision:
            name: 컴퓨터비전 연구실
            guaranteed: {H100: 8}
            borrow_limit: 8
            budget_gpu_hours: 1000
            over_budget: reject
            clusters: [kisti]
            members: [민준, seoyeon]
          nlp: {guaranteed: {H100: 8, "*": 4}}
  startups:
    organisations:
      upstage:
        projects:
          solar: {guaranteed: {B200: 8}}
"""


def _write(tmp_path: Path, text: str, name: str = "t.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_a_tenants_file(tmp_path: Path, demo_fleet: Fleet) -> None:
    t = load_tenants(str(_write(tmp_path, BASE)), demo_fleet)
    v = t.nodes[t.by_path["academia/snu/vision"]]
    assert v.name == "컴퓨터비전 연구실" and v.kind == "project" and v.sector == "academia"
    assert v.borrow_limit == {"*": 8}
    assert v.budget_gpu_hours == 1000 and v.over_budget == "reject"
    assert v.members == ("민준", "seoyeon")
    assert t.nodes[t.by_path["academia"]].weight == 2
    assert t.nodes[t.by_path["academia/snu"]].name == "서울대학교"
    assert t.resolve("solar") == t.by_path["startups/upstage/solar"]


def test_korean_names_round_trip_through_toml(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        '[sectors.academia]\nname = "학계"\n[sectors.academia.organisations.snu]\nname = "서울대학교"\n'
        '[sectors.academia.organisations.snu.projects.vision]\nname = "컴퓨터비전"\nmembers = ["김민준"]\n',
        "t.toml",
    )
    t = load_tenants(str(p))
    assert [n.name for n in t.nodes] == ["학계", "서울대학교", "컴퓨터비전"]
    assert t.nodes[2].members == ("김민준",)


SNU = "sectors.academia.organisations.snu"
VISION = f"{SNU}.projects.vision"


@pytest.mark.parametrize(
    ("old", "new", "location", "what", "line"),
    [
        (
            "guaranteed: {H100: 8}\n            borrow",
            "guaranteed: {H100: 9}\n            borrow",
            "sectors.academia.guaranteed.H100",
            "guarantee 17 H100 (academia/snu/vision 9, academia/snu/nlp 8)",
            6,
        ),
        (
            "guaranteed: {H100: 16}",
            "guaranteed: {H100: 32}",
            "sectors.academia.guaranteed.H100",
            "add up to 32, above the fleet's capacity of 24",
            6,
        ),
        (
            "solar: {guaranteed: {B200: 8}}",
            "solar: {guaranteed: {B200: 9}}",
            "sectors.startups.organisations.upstage.projects.solar.guaranteed.B200",
            "capacity of 8",
            24,
        ),
        (
            "solar: {guaranteed: {B200: 8}}",
            "solar: {guaranteed: {A100: 8}}",
            "sectors.startups.organisations.upstage.projects.solar.guaranteed.A100",
            "has no A100",
            24,
        ),
        (
            "solar: {guaranteed: {B200: 8}}",
            "solar: {guaranteed: {H1OO: 8}}",
            "sectors.startups.organisations.upstage.projects.solar.guaranteed.H1OO",
            "unknown accelerator model",
            24,
        ),
        ("clusters: [kisti]", "clusters: [kisty]", f"{VISION}.clusters[0]", "unknown cluster 'kisty'", 17),
        (
            "clusters: [kisti]",
            "clusters: [sejong]",
            f"{VISION}.guaranteed.H100",
            "its clusters (sejong) hold only 0",
            13,
        ),
        (
            "members: [민준, seoyeon]",
            "members: [민준, 민준]",
            f"{VISION}.members",
            "'민준' is listed twice",
            18,
        ),
        ("members: [민준", "memebers: [민준", f"{VISION}.memebers", "did you mean 'members'", 18),
        ("weight: 2", "weight: 0", "sectors.academia.weight", "greater than 0", 5),
        ("weight: 2", "weight: heavy", "sectors.academia.weight", "valid number", 5),
        (
            "over_budget: reject",
            "over_budget: kill",
            f"{VISION}.over_budget",
            "'preemptible' or 'reject'",
            16,
        ),
        (
            "guaranteed: {H100: 8}\n            borrow",
            "guaranteed: {H100: -8}\n            borrow",
            f"{VISION}.guaranteed.H100",
            "greater than or equal to 0",
            13,
        ),
        (
            "budget_gpu_hours: 1000",
            "budget_gpu_hours: -1",
            f"{VISION}.budget_gpu_hours",
            "greater than or equal",
            15,
        ),
        (
            "      upstage:\n        projects:\n          solar: {guaranteed: {B200: 8}}\n",
            "      upstage: {}\n",
            "sectors.startups.organisations.upstage.projects",
            "required but missing",
            22,
        ),
        ("  startups:\n", "  startups:\n    name: a\n    name: b\n", "", "written twice", 22),
        (
            "      snu:\n",
            "      sn/u:\n",
            "sectors.academia.organisations.sn/u",
            "must be non-empty and contain no '/'",
            8,
        ),
    ],
)
def test_errors_name_the_place(
    tmp_path: Path, demo_fleet: Fleet, old: str, new: str, location: str, what: str, line: int
) -> None:
    assert old in BASE, old
    p = _write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(FleetFileError) as err:
        load_tenants(str(p), demo_fleet)
    e = err.value
    assert e.location == location
    assert what in e.message
    assert e.line == line


def test_a_project_inherits_its_sectors_cluster_affinity(tmp_path: Path, korea_fleet: Fleet) -> None:
    t = load_tenants("korea-2025", korea_fleet)
    gov = t.nodes[t.by_path["academia"]].clusters
    assert "gov-naicc" in gov and "samsung-ai-factory" not in gov
    assert t.nodes[t.by_path["academia/snu/vision-lab"]].clusters == gov  # states none itself
    assert t.nodes[t.by_path["public-research/etri/npu-serving"]].clusters == ("gov-nhn-npu",)  # narrows
    assert t.nodes[t.by_path["industry/lg-ai-research/exaone-serving"]].clusters == ()  # anywhere


def test_a_project_may_not_leave_its_sectors_clusters(tmp_path: Path, demo_fleet: Fleet) -> None:
    text = BASE.replace("    weight: 2\n", "    weight: 2\n    clusters: [kisti]\n").replace(
        "clusters: [kisti]\n            members", "clusters: [sejong]\n            members"
    )
    with pytest.raises(FleetFileError) as err:
        load_tenants(str(_write(tmp_path, text)), demo_fleet)
    assert err.value.location == f"{VISION}.clusters[0]"
    assert "cluster 'sejong' is outside its parent's clusters (kisti)" in err.value.message
    assert err.value.line == 18


def test_children_above_parent_without_a_fleet(tmp_path: Path) -> None:
    # the check looks through a level (snu) that states no guarantee of its own
    p = _write(tmp_path, BASE.replace("nlp: {guaranteed: {H100: 8,", "nlp: {guaranteed: {H100: 9,"))
    with pytest.raises(FleetFileError) as err:
        load_tenants(str(p))
    assert err.value.location == "sectors.academia.guaranteed.H100"
    assert "17 H100" in err.value.message


def test_unknown_preset() -> None:
    with pytest.raises(FleetFileError, match="did you mean 'philly'"):
        load_tenants("phily")


# --- priority classes (ADR 0007) ----------------------------------------------------------------


def test_priority_classes_are_granted_down_the_tree(tmp_path: Path, demo_fleet: Fleet) -> None:
    text = BASE.replace(
        "    weight: 2\n", "    weight: 2\n    allowed_classes: [normal, low, preemptible, high]\n"
    )
    text = text.replace(
        "            over_budget: reject\n",
        "            over_budget: reject\n            allowed_classes: [normal]\n",
    )
    t = load_tenants(str(_write(tmp_path, text)), demo_fleet)
    assert t.allowed_classes(t.by_path["academia/snu/nlp"]) == {"normal", "low", "preemptible", "high"}
    assert t.allowed_classes(t.by_path["academia/snu/vision"]) == {"normal"}  # narrows
    assert t.allowed_classes(t.by_path["startups/upstage/solar"]) == {"normal", "low", "preemptible"}
    korea = load_tenants("korea-2025", load_fleet("korea-2025"))
    assert "reserved" in korea.allowed_classes(korea.by_path["sovereign-ai"])
    assert "reserved" not in korea.allowed_classes(korea.by_path["academia"])


def test_a_tenant_may_not_widen_its_parents_classes(tmp_path: Path, demo_fleet: Fleet) -> None:
    text = BASE.replace(
        "            over_budget: reject\n",
        "            over_budget: reject\n            allowed_classes: [normal, reserved]\n",
    )
    with pytest.raises(FleetFileError) as err:
        load_tenants(str(_write(tmp_path, text)), demo_fleet)
    assert err.value.location == f"{VISION}.allowed_classes[1]"
    assert "class 'reserved' is not allowed to its parent" in err.value.message
    assert err.value.line == 17
    bad = BASE.replace("    weight: 2\n", "    weight: 2\n    allowed_classes: [urgent]\n")
    with pytest.raises(FleetFileError) as err:
        load_tenants(str(_write(tmp_path, bad)), demo_fleet)
    assert err.value.location == "sectors.academia.allowed_classes[0]"


def test_a_trace_row_with_a_class_its_project_lacks_is_refused(tmp_path: Path) -> None:
    tenants = _write(tmp_path, BASE)
    trace = tmp_path / "jobs.csv"
    trace.write_text(
        "submit_s,duration_s,gpus,tenant,priority_class\n"
        "0,60,1,academia/snu/vision,normal\n"
        "5,60,1,academia/snu/vision,high\n",
        encoding="utf-8",
    )
    with pytest.raises(TraceError) as err:
        build_scenario("demo", str(tenants), str(trace))
    e = err.value
    assert (e.path, e.line, e.field) == (str(trace), 3, "priority_class")
    assert "'high' is not allowed in project 'academia/snu/vision'" in e.message
    granted = BASE.replace("    weight: 2\n", "    weight: 2\n    allowed_classes: [normal, high]\n")
    scenario = build_scenario("demo", str(_write(tmp_path, granted, "g.yaml")), str(trace))
    assert [j.priority_class for j in scenario.jobs] == ["normal", "high"]
