"""The shipped accelerator catalogue and the catalogue file format."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gpupool.fleetfile import FleetFileError, load_catalogue

CLASSES = ("default", "train-cnn", "train-transformer", "train-llm", "inference-llm")

# Measured rows copied from gpupool shared/throughputs/profile-h100.json and profile-h200.json
# (2026-11-27, single GPU, bf16): the H200 figures in the catalogue must follow from them.
H100 = {"resnet50": 3757.2, "bert": 289258, "gpt2s": 130743, "gpt2l": 31673, "llama1b": 43023,
        "pre1b": 171023, "pre8b": 32976}  # fmt: skip
H200 = {"resnet50": 4233.2, "bert": 311572, "gpt2s": 149322, "gpt2l": 36610, "llama1b": 46883,
        "pre1b": 174349, "pre8b": 33581}  # fmt: skip

# Gavel simulation_throughputs.json, isolated steps/s on one GPU (stanford-futuredata/gavel @ c4fa400, MIT)
GAVEL = {
    "resnet50_bs64": {"v100": 4.395, "p100": 2.619, "k80": 0.619},
    "transformer_bs64": {"v100": 8.618, "p100": 5.092, "k80": 1.752},
}


def _ratio(key: str) -> float:
    return H200[key] / H100[key]


def test_shipped_catalogue_has_the_required_models() -> None:
    cat = load_catalogue()
    for name in (
        "B200",
        "GB200",
        "H200",
        "H100",
        "A100",
        "RTX-PRO-6000",
        "V100",
        "P100",
        "K80",
        "ATOM",
        "RNGD",
    ):
        assert name in cat
    assert cat["ATOM"].stack == "rbln" and cat["ATOM"].vendor == "Rebellions"
    assert cat["RNGD"].stack == "furiosa" and cat["RNGD"].vendor == "FuriosaAI"
    assert cat["RTX-PRO-6000"].memory_gib == 96
    assert cat["A100"].memory_gib == 80


def test_every_figure_has_a_source_and_every_class_a_figure() -> None:
    for m in load_catalogue():
        assert set(CLASSES) <= set(m.throughput), m.name
        for cls, value in m.throughput.items():
            assert value > 0
            assert m.sources.get(cls), f"{m.name} {cls} has no source"


def test_only_the_measured_models_are_free_of_estimates() -> None:
    for m in load_catalogue():
        if m.name in ("H100", "H200"):
            assert not m.estimated
        else:
            assert m.estimated == frozenset(CLASSES), m.name


def test_h100_is_the_reference_and_measured() -> None:
    h100 = load_catalogue()["H100"]
    assert all(v == 1.0 for v in h100.throughput.values())
    assert not h100.estimated


def test_h200_figures_follow_from_the_measurements() -> None:
    h200 = load_catalogue()["H200"]
    assert not h200.estimated  # measured, not estimated
    expect = {
        "train-cnn": _ratio("resnet50"),
        "train-transformer": math.sqrt(_ratio("bert") * _ratio("gpt2s")),
        "train-llm": math.sqrt(_ratio("gpt2l") * _ratio("llama1b")),
        "inference-llm": math.sqrt(_ratio("pre1b") * _ratio("pre8b")),
    }
    for cls, value in expect.items():
        assert h200.throughput[cls] == pytest.approx(value, abs=0.001), cls
    assert "4233.2" in h200.sources["train-cnn"] and "3757.2" in h200.sources["train-cnn"]


def test_old_gpus_keep_gavels_measured_ratios() -> None:
    cat = load_catalogue()
    v100, p100, k80 = cat["V100"], cat["P100"], cat["K80"]
    rn, tr = GAVEL["resnet50_bs64"], GAVEL["transformer_bs64"]
    assert p100.speed("train-cnn") / v100.speed("train-cnn") == pytest.approx(
        rn["p100"] / rn["v100"], rel=0.01
    )
    assert k80.speed("train-cnn") / v100.speed("train-cnn") == pytest.approx(rn["k80"] / rn["v100"], rel=0.01)
    assert p100.speed("train-transformer") / v100.speed("train-transformer") == pytest.approx(
        tr["p100"] / tr["v100"], rel=0.01
    )
    assert k80.speed("train-transformer") / v100.speed("train-transformer") == pytest.approx(
        tr["k80"] / tr["v100"], rel=0.01
    )
    # the anchor to the H100 is an estimate, so every figure of theirs is marked as one
    for m in (v100, p100, k80):
        assert m.estimated == frozenset(CLASSES)


def test_default_is_the_geometric_mean_of_the_classes() -> None:
    for m in load_catalogue():
        four = [m.throughput[c] for c in CLASSES[1:]]
        assert m.throughput["default"] == pytest.approx(math.prod(four) ** 0.25, rel=0.02), m.name


def test_models_are_ordered_sensibly() -> None:
    cat = load_catalogue()
    for cls in CLASSES:
        assert (
            cat["GB200"].speed(cls)
            >= cat["B200"].speed(cls)
            > cat["H200"].speed(cls)
            > cat["H100"].speed(cls)
        )
        assert cat["H100"].speed(cls) > cat["A100"].speed(cls) > cat["V100"].speed(cls)
        assert cat["V100"].speed(cls) > cat["P100"].speed(cls) > cat["K80"].speed(cls)


def test_npus_are_inference_parts() -> None:
    cat = load_catalogue()
    for name in ("ATOM", "RNGD"):
        m = cat[name]
        assert m.speed("inference-llm") > 2 * m.speed("train-llm")
        assert 0 < m.speed("train-cnn") < 0.05
        assert m.estimated == frozenset(CLASSES)


def test_the_shipped_catalogue_is_loaded_once() -> None:
    assert load_catalogue() is load_catalogue()


GOOD = """
reference: X1
classes: [default, train-cnn]
models:
  X1:
    vendor: V
    memory_gib: 10
    stack: cuda
    throughput:
      default: {value: 1.0, source: ref}
      train-cnn: {value: 1.0, source: ref}
  X2:
    vendor: V
    memory_gib: 20
    stack: rocm
    throughput:
      default: {value: 2.0, source: "datasheet", estimate: true}
      train-cnn: {value: 3.0, source: "measured"}
"""


def test_a_custom_catalogue_file(tmp_path: Path) -> None:
    p = tmp_path / "cat.yaml"
    p.write_text(GOOD)
    cat = load_catalogue(p)
    assert cat.names() == ["X1", "X2"]
    assert cat["X2"].estimated == frozenset({"default"})
    assert cat["X2"].sources["train-cnn"] == "measured"


@pytest.mark.parametrize(
    ("old", "new", "where", "what"),
    [
        ("stack: rocm", "stack: cobol", "models.X2.stack", "unknown software stack"),
        ('source: "measured"', 'source: ""', "models.X2.throughput.train-cnn.source", "at least 1 character"),
        ("value: 3.0", "value: -3.0", "models.X2.throughput.train-cnn.value", "greater than 0"),
        ("memory_gib: 20", "memory_gb: 20", "models.X2.memory_gb", "unknown key 'memory_gb'"),
        ("      train-cnn: {value: 3.0", "      train-rnn: {value: 3.0", "models.X2.throughput", "train-cnn"),
        ("reference: X1", "reference: X9", "reference", "X9"),
    ],
)
def test_catalogue_errors_name_the_place(tmp_path: Path, old: str, new: str, where: str, what: str) -> None:
    assert old in GOOD
    p = tmp_path / "cat.yaml"
    p.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(FleetFileError) as err:
        load_catalogue(p)
    assert err.value.location == where
    assert what in err.value.message
    assert err.value.line is not None
