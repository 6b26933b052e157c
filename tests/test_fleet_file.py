"""Fleet files: the presets, the compact naming notation, and errors that name their place."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from gpupool.core.fleet import Fleet
from gpupool.fleetfile import FleetFileError, fleet_presets, load_fleet
from gpupool.fleetfile.fleet_file import expand_names

# Copied from HeliosArtifact @ bdaae109c21f8038a2331e6a23a582d5ae78ab5b,
# "framework/QSSF Service/data/philly_vc.csv" (MIT): nodes per Philly VC.
PHILLY_VC_NODES = {
    "6214e9": 64, "7f04ca": 32, "11cb48": 16, "b436b2": 64, "ee9e8c": 64, "e13805": 16,
    "6c71a0": 32, "2869ce": 16, "ed69ec": 8, "103959": 8, "0e4a51": 32,
}  # fmt: skip


def _gpus_of_clusters(fleet: Fleet, names: list[str], models: set[str] | None = None) -> int:
    idx = {fleet.cluster_by_name[n] for n in names}
    return sum(g for (c, m), g in fleet.gpus_by_pool.items() if c in idx and (models is None or m in models))


# --- presets -----------------------------------------------------------------------------------


def test_presets_are_listed() -> None:
    assert set(fleet_presets()) >= {"demo", "korea-2025", "philly", "gavel-108"}


def test_demo() -> None:
    f = load_fleet("demo")
    assert f.total_gpus <= 64
    assert len(f.sites) == 2
    stacks = {f.catalogue[n.model].stack for n in f.nodes}
    assert {"cuda", "rbln", "furiosa"} <= stacks
    by_model = f.gpus_by_model()
    assert by_model["H100"] > 0 and ("H200" in by_model or "B200" in by_model)
    assert len(f.blocks) >= 2 and len(f.racks) >= 3
    assert any(r.nvlink for r in f.racks)
    # all NVIDIA HGX nodes carry 8 GPUs
    assert all(n.gpus == 8 for n in f.nodes if n.model in ("H100", "H200", "B200"))


def test_philly_mirrors_the_helios_vcs() -> None:
    f = load_fleet("philly")
    assert [s.name for s in f.sites] == ["philly"]
    assert {c.name for c in f.clusters} == set(PHILLY_VC_NODES)
    assert len(f.nodes) == 352 and f.total_gpus == 2816
    assert f.gpus_by_model() == {"P100": 2816}
    nodes = Counter(f.clusters[n.cluster].name for n in f.nodes)
    assert dict(nodes) == PHILLY_VC_NODES
    for c in f.clusters:
        assert sum(1 for b in f.blocks if b.cluster == c.index) == 1
        assert sum(1 for r in f.racks if r.cluster == c.index) == 1
    assert all(n.gpus == 8 for n in f.nodes)


def test_gavel_108() -> None:
    f = load_fleet("gavel-108")
    assert len(f.clusters) == 1
    assert f.total_gpus == 108
    assert f.gpus_by_model() == {"V100": 36, "P100": 36, "K80": 36}
    assert len(f.nodes) == 27 and all(n.gpus == 4 for n in f.nodes)


def test_korea_2025_totals_and_split() -> None:
    f = load_fleet("korea-2025")
    assert 255_000 <= f.total_gpus <= 265_000
    assert 32_000 <= len(f.nodes) <= 35_000
    names = [c.name for c in f.clusters]
    nvidia = {m for m in f.gpus_by_model() if f.catalogue[m].vendor == "NVIDIA"}
    gov = [n for n in names if n.startswith("gov-")]
    assert _gpus_of_clusters(f, gov, nvidia) == 50_000
    assert _gpus_of_clusters(f, [n for n in names if n.startswith("samsung")]) == 50_000
    assert _gpus_of_clusters(f, [n for n in names if n.startswith("sk-")]) == 50_000
    assert _gpus_of_clusters(f, [n for n in names if n.startswith("hyundai")]) == 50_000
    assert _gpus_of_clusters(f, [n for n in names if n.startswith("naver-")]) == 60_000
    # the government's first 13,136 at NAVER Cloud, NHN Cloud and Kakao
    assert _gpus_of_clusters(f, ["gov-naver-sejong"]) == 3_056
    assert _gpus_of_clusters(f, ["gov-nhn-gwangju"]) == 7_656
    assert _gpus_of_clusters(f, ["gov-kakao-ansan"]) == 2_424
    # domestic NPUs in the government share
    assert f.gpus_by_model()["ATOM"] > 0 and f.gpus_by_model()["RNGD"] > 0


def test_korea_2025_topology() -> None:
    f = load_fleet("korea-2025")
    gpus_in_rack = Counter[int]()
    nodes_in_rack = Counter[int]()
    for n in f.nodes:
        gpus_in_rack[n.rack] += n.gpus
        nodes_in_rack[n.rack] += 1
    nvl = [r for r in f.racks if r.nvlink]
    assert nvl, "GB200 NVL72 racks expected"
    for r in nvl:
        assert gpus_in_rack[r.index] == 72 and nodes_in_rack[r.index] == 18
    # one NVLink domain per NVL72 rack, one per node elsewhere
    assert f.nvlink_domains == len(nvl) + sum(1 for n in f.nodes if not f.racks[n.rack].nvlink)
    racks_in_block = Counter(r.block for r in f.racks)
    full = [c for c in racks_in_block.values() if c >= 8]
    assert len(full) >= 0.9 * len(racks_in_block)
    assert max(racks_in_block.values()) <= 32


def test_korea_2025_file_is_compact() -> None:
    text = (Path(__file__).parents[1] / "src/gpupool/data/fleets/korea-2025.yaml").read_text()
    assert len(text.splitlines()) < 200


# --- the naming notation -----------------------------------------------------------------------


def test_ranges_expand_with_bash_padding() -> None:
    assert expand_names("r{00..03}") == ["r00", "r01", "r02", "r03"]
    assert expand_names("n{8..10}") == ["n8", "n9", "n10"]
    assert expand_names("n{08..10}") == ["n08", "n09", "n10"]
    assert expand_names("n{000..2}") == ["n000", "n001", "n002"]
    assert expand_names("x{3..1}") == ["x3", "x2", "x1"]
    assert expand_names("plain") == ["plain"]


def test_lists_products_and_placeholders() -> None:
    assert expand_names("{a,b}-{0..1}") == ["a-0", "a-1", "b-0", "b-1"]
    assert expand_names("{rack}-n{0..1}", {"rack": "ib0-r3"}) == ["ib0-r3-n0", "ib0-r3-n1"]


@pytest.mark.parametrize(
    ("template", "what"),
    [
        ("r{0..3", "unbalanced"),
        ("r}", "unbalanced"),
        ("{rak}", "did you mean {rack}"),
        ("{a,}", "empty choice"),
    ],
)
def test_bad_templates(template: str, what: str) -> None:
    with pytest.raises(ValueError, match=what.replace("{", r"\{").replace("}", r"\}")):
        expand_names(template, {"rack": "r"})


def _fleet(tmp_path: Path, text: str, name: str = "f.yaml") -> Fleet:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return load_fleet(str(p))


BRIEF_EXAMPLE = """
sites:
  - name: s
    clusters:
      - name: big
        blocks: [{name: "ib{00..39}", racks: [{name: "r{00..15}", nvlink: true,
                  nodes: {count: 18, model: GB200, gpus: 4, name: "{rack}-n{00..17}"}}]}]
"""


def test_compact_notation_expands(tmp_path: Path) -> None:
    f = _fleet(tmp_path, BRIEF_EXAMPLE)
    assert len(f.blocks) == 40 and len(f.racks) == 640 and len(f.nodes) == 11_520
    assert f.total_gpus == 46_080
    assert f.blocks[0].name == "ib00" and f.blocks[-1].name == "ib39"
    assert f.racks[0].name == "ib00-r00" and f.racks[-1].name == "ib39-r15"
    assert f.nodes[0].name == "ib00-r00-n00" and f.nodes[-1].name == "ib39-r15-n17"
    assert f.nvlink_domains == 640
    assert f.name == "f"  # no name in the file: its stem


def test_count_repeat_and_default_names(tmp_path: Path) -> None:
    f = _fleet(
        tmp_path,
        """
name: counted
sites:
  - name: s
    clusters:
      - name: c
        blocks:
          - count: 2
            racks:
              - {repeat: 2, nodes: [{count: 2, model: H100, gpus: 8}, {model: H200, gpus: 8}]}
              - {name: gpu, count: 2, nodes: {count: 1, model: B200, gpus: 8, name: "{cluster}-{rack}-x"}}
          - {name: extra, racks: {nodes: {model: A100, gpus: 4}}}
""",
    )
    assert f.name == "counted"
    assert [b.name for b in f.blocks] == ["b00", "b01", "extra"]
    assert [r.name for r in f.racks if r.block == 0] == ["b00-r00", "b00-r01", "b00-gpu00", "b00-gpu01"]
    names = [n.name for n in f.nodes if n.rack == 0]
    # default node names: cluster-block-rack-nNN, numbered across the rack's node groups
    assert names == ["c-b00-r00-n00", "c-b00-r00-n01", "c-b00-r00-n02"]
    assert f.nodes[3].name == "c-b00-r01-n00"
    assert "c-b00-gpu01-x" in f.node_by_name
    assert "c-extra-r00-n00" in f.node_by_name
    assert f.total_gpus == 2 * (2 * (3 * 8) + 2 * 8) + 4


def test_toml_and_yaml_agree(tmp_path: Path) -> None:
    yaml_fleet = _fleet(tmp_path, BRIEF_EXAMPLE)
    toml_fleet = _fleet(
        tmp_path,
        """
[[sites]]
name = "s"
[[sites.clusters]]
name = "big"
[[sites.clusters.blocks]]
name = "ib{00..39}"
[[sites.clusters.blocks.racks]]
name = "r{00..15}"
nvlink = true
nodes = { count = 18, model = "GB200", gpus = 4, name = "{rack}-n{00..17}" }
""",
        name="f.toml",
    )
    assert [n.name for n in toml_fleet.nodes] == [n.name for n in yaml_fleet.nodes]
    assert toml_fleet.summary() == yaml_fleet.summary()


def test_korean_names_survive(tmp_path: Path) -> None:
    f = _fleet(
        tmp_path,
        """
description: "국가 AI 컴퓨팅 센터"
sites:
  - name: "국가AI컴퓨팅센터"
    region: 전라남도
    clusters:
      - name: 클러스터1
        options: {partition: 학습, exclusive: true, max_nodes: 4}
        blocks: {racks: {nodes: {model: B200, gpus: 8}}}
""",
    )
    assert f.description == "국가 AI 컴퓨팅 센터"
    assert f.sites[0].name == "국가AI컴퓨팅센터" and f.sites[0].region == "전라남도"
    assert f.clusters[0].name == "클러스터1"
    assert dict(f.clusters[0].backend_options) == {"partition": "학습", "exclusive": "true", "max_nodes": "4"}
    assert f.nodes[0].name == "클러스터1-b00-r00-n00"


def test_a_custom_catalogue_is_used(tmp_path: Path) -> None:
    from gpupool.core.accelerator import AcceleratorModel, Catalogue

    cat = Catalogue([AcceleratorModel("MI300X", "AMD", 192, "rocm", {"default": 1.2})])
    rack = "{racks: {nodes: {model: MI300X, gpus: 8}}}"
    path = _write(tmp_path, f"sites: [{{name: s, clusters: [{{name: c, blocks: {rack}}}]}}]")
    f = load_fleet(str(path), catalogue=cat)
    assert f.gpus_by_model() == {"MI300X": 8}
    with pytest.raises(FleetFileError, match="unknown accelerator model 'MI300X'"):
        load_fleet(str(tmp_path / "f.yaml"))


def _write(tmp_path: Path, text: str, name: str = "f.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# --- errors name the place ---------------------------------------------------------------------

BASE = """\
sites:
  - name: a
    clusters:
      - name: c1
        blocks:
          - name: "ib{0..1}"
            racks:
              - name: "r{0..1}"
                nodes: {count: 2, model: H100, gpus: 8}
  - name: b
    clusters:
      - name: c2
        blocks:
          - name: ib0
            racks:
              - name: r0
                nodes: [{count: 1, model: H200, gpus: 8}, {count: 1, model: H200, gpus: 8}]
"""

R2 = "sites[1].clusters[0].blocks[0].racks[0]"


@pytest.mark.parametrize(
    ("old", "new", "location", "what", "line"),
    [
        (
            "model: H100",
            "model: H10O",
            "sites[0].clusters[0].blocks[0].racks[0].nodes.model",
            "did you mean 'H100'",
            9,
        ),
        (
            "{count: 1, model: H200",
            "{count: 1, model: X",
            f"{R2}.nodes[0].model",
            "unknown accelerator model 'X'",
            17,
        ),
        (
            "count: 2, model: H100",
            "count: -2, model: H100",
            "sites[0].clusters[0].blocks[0].racks[0].nodes.count",
            "greater than 0",
            9,
        ),
        (
            "count: 2, model: H100",
            "count: 0, model: H100",
            "sites[0].clusters[0].blocks[0].racks[0].nodes.count",
            "greater than 0",
            9,
        ),
        (
            "gpus: 8}\n  - name: b",
            "gpus: 0}\n  - name: b",
            "sites[0].clusters[0].blocks[0].racks[0].nodes.gpus",
            "greater than 0",
            9,
        ),
        (
            "gpus: 8}\n  - name: b",
            'gpus: "8"}\n  - name: b',
            "sites[0].clusters[0].blocks[0].racks[0].nodes.gpus",
            "valid integer",
            9,
        ),
        (
            '            racks:\n              - name: "r',
            '            rack:\n              - name: "r',
            "sites[0].clusters[0].blocks[0].rack",
            "unknown key 'rack' (did you mean 'racks'?",
            7,
        ),
        (
            "name: c2",
            "name: c2\n        backend: pbs",
            "sites[1].clusters[0].backend",
            "'local', 'slurm' or 'kubernetes'",
            13,
        ),
        (
            "name: c2",
            "name: c1",
            "sites[1].clusters[0].name",
            "cluster 'c1' is defined twice (also at sites[0].clusters[0])",
            12,
        ),
        ("  - name: b\n", "  - name: a\n", "sites[1].name", "site 'a' is defined twice", 10),
        (
            "name: c2\n        blocks:\n",
            "name: c2\n        blocks:\n          - {name: ib0, racks: {nodes: {model: H100, gpus: 8}}}\n",
            "sites[1].clusters[0].blocks[1].name",
            "block 'ib0' is defined twice in cluster 'c2'",
            15,
        ),
        (
            "gpus: 8}\n  - name: b",
            "gpus: 8}\n              - {name: r1, nodes: {model: H100, gpus: 8}}\n  - name: b",
            "sites[0].clusters[0].blocks[0].racks[1].name",
            "rack 'r1' is defined twice in block 'ib0'",
            10,
        ),
        (
            "nodes: {count: 2, model: H100, gpus: 8}",
            'nodes: {count: 2, model: H100, gpus: 8, name: "n{0..1}"}',
            "sites[0].clusters[0].blocks[0].racks[0].nodes.name",
            "node 'n0' is defined twice",
            9,
        ),
        (
            "nodes: [{count: 1, model: H200, gpus: 8}, {count: 1, model: H200, gpus: 8}]",
            "nodes: [{count: 1, model: H200, gpus: 8}, {count: 1, model: B200, gpus: 8}]\n"
            "                nvlink: true",
            f"{R2}.nodes",
            "mixes B200, H200",
            17,
        ),
        (
            'name: "ib{0..1}"',
            'name: "ib{0..1}"\n            count: 3',
            "sites[0].clusters[0].blocks[0].name",
            "gives 2 names but count is 3",
            6,
        ),
        ("name: ib0", 'name: "ib{zero}"', "sites[1].clusters[0].blocks[0].name", "unknown {zero}", 14),
        ("  - name: b\n", "  - name: b\n    name: bb\n", "", "written twice", 11),
        (
            "                nodes: {count: 2, model: H100, gpus: 8}\n",
            "",
            "sites[0].clusters[0].blocks[0].racks[0].nodes",
            "required but missing",
            8,
        ),
    ],
)
def test_errors_name_the_place(
    tmp_path: Path, old: str, new: str, location: str, what: str, line: int
) -> None:
    assert old in BASE, old
    p = _write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(FleetFileError) as err:
        load_fleet(str(p))
    e = err.value
    assert e.location == location
    assert what in e.message
    assert e.path == str(p)
    assert e.line == line
    assert str(e).startswith(f"{p}:{line}: ")


def test_the_base_document_is_good(tmp_path: Path) -> None:
    f = load_fleet(str(_write(tmp_path, BASE)))
    assert f.total_gpus == 2 * 2 * 2 * 8 + 2 * 8


def test_toml_errors_name_the_place_without_a_line(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        '[[sites]]\nname = "a"\n[[sites.clusters]]\nname = "c"\n[[sites.clusters.blocks]]\n'
        '[[sites.clusters.blocks.racks]]\nnodes = { model = "H100", gpus = -8 }\n',
        "f.toml",
    )
    with pytest.raises(FleetFileError) as err:
        load_fleet(str(p))
    assert err.value.location == "sites[0].clusters[0].blocks[0].racks[0].nodes.gpus"
    assert err.value.line is None


@pytest.mark.parametrize(
    ("text", "name", "what"),
    [
        ("sites: [", "f.yaml", "not valid YAML"),
        ("- a\n- b\n", "f.yaml", "must be a mapping"),
        ("sites = [", "f.toml", "not valid TOML"),
        ("sites: []", "f.yaml", "at least 1 item"),
        ("{}", "f.json", "unknown file type"),
    ],
)
def test_unreadable_documents(tmp_path: Path, text: str, name: str, what: str) -> None:
    with pytest.raises(FleetFileError, match=what):
        load_fleet(str(_write(tmp_path, text, name)))


def test_unknown_preset_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FleetFileError, match="did you mean 'korea-2025'"):
        load_fleet("korea2025")
    with pytest.raises(FleetFileError, match="cannot read"):
        load_fleet(str(tmp_path / "nope.yaml"))


def test_runaway_counts_are_refused(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "sites: [{name: s, clusters: [{name: c, blocks: {racks: "
        '{name: "r{0..99999999}", nodes: {model: H100, gpus: 8}}}}]}]',
    )
    with pytest.raises(FleetFileError, match="more than 1,000,000"):
        load_fleet(str(p))
