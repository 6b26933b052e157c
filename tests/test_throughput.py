"""The throughput table: validation with precise errors, lookups, effective GPU-time, Gavel's table."""

from __future__ import annotations

import math

import pytest

from gpupool.core.throughput import ThroughputError, ThroughputTable
from gpupool.fleetfile import load_catalogue
from gpupool.sim.runtime import RuntimeModel
from gpupool.sim.throughputs import gavel_throughput_table, gavel_throughputs

from .builders import CATALOGUE

MODELS = ["V100", "P100", "K80"]


def table(**rows: dict[str, float]) -> ThroughputTable:
    return ThroughputTable(
        {"default": {"V100": 1.0, "P100": 0.5, "K80": 0.25}, **rows}, models=MODELS, reference="V100"
    )


def test_missing_pair_is_rejected_naming_class_and_model() -> None:
    with pytest.raises(ThroughputError, match=r"class 'resnet' has no throughput for model 'K80'"):
        table(resnet={"V100": 3.0, "P100": 1.0})


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, True, "3"])
def test_zero_negative_or_non_numeric_throughput_is_rejected(bad: object) -> None:
    with pytest.raises(
        ThroughputError, match=r"class 'resnet' on 'P100': throughput must be a finite number > 0"
    ):
        table(resnet={"V100": 3.0, "P100": bad, "K80": 1.0})  # type: ignore[dict-item]


def test_unknown_model_in_a_row_and_in_a_lookup_are_rejected() -> None:
    with pytest.raises(ThroughputError, match=r"class 'resnet': unknown accelerator model 'A100'"):
        table(resnet={"V100": 3.0, "P100": 1.0, "K80": 1.0, "A100": 9.0})
    with pytest.raises(ThroughputError, match=r"unknown accelerator model 'H100'"):
        table().speed("default", "H100")


def test_table_needs_a_default_row_a_known_reference_and_distinct_models() -> None:
    with pytest.raises(ThroughputError, match="no 'default' row"):
        ThroughputTable({"x": {"V100": 1.0}}, models=["V100"], reference="V100")
    with pytest.raises(ThroughputError, match="reference model 'H100' is not one of its models"):
        ThroughputTable({"default": {"V100": 1.0}}, models=["V100"], reference="H100")
    with pytest.raises(ThroughputError, match="'V100' is listed twice"):
        ThroughputTable({"default": {"V100": 1.0}}, models=["V100", "V100"], reference="V100")
    with pytest.raises(ThroughputError, match="gang size must be >= 1"):
        table(**{}).__class__(
            {"default": {"V100": 1.0}, ("x", 0): {"V100": 1.0}}, models=["V100"], reference="V100"
        )


def test_fleet_models_missing_from_the_table_are_named() -> None:
    with pytest.raises(ThroughputError, match="no column for accelerator model 'H100' of the fleet"):
        table().require_models(["V100", "H100"])


def test_speed_is_relative_to_the_reference_and_falls_back_by_size_then_class() -> None:
    t = ThroughputTable(
        {
            "default": {"V100": 2.0, "P100": 1.0, "K80": 0.5},
            "lm": {"V100": 10.0, "P100": 9.0, "K80": 3.0},
            ("lm", 4): {"V100": 40.0, "P100": 10.0, "K80": 4.0},
        },
        models=MODELS,
        reference="V100",
    )
    assert t.speed("lm", "P100") == pytest.approx(0.9)
    assert t.speed("lm", "P100", gpus=4) == pytest.approx(0.25)  # the 4-GPU row
    assert t.speed("lm", "P100", gpus=2) == pytest.approx(0.9)  # no 2-GPU row: any size
    assert t.speed("unknown", "K80") == pytest.approx(0.25)  # default row
    assert t.speeds("lm", MODELS) == pytest.approx([1.0, 0.9, 0.3])
    assert t.effective_gpu_ms(3_600_000, "lm", "K80") == pytest.approx(1_080_000)
    assert t.has_class("lm") and not t.has_class("cnn")


def test_catalogue_table_uses_each_models_class_figures_and_h100_as_reference() -> None:
    t = ThroughputTable.from_catalogue(load_catalogue())
    assert t.reference == "H100"
    assert t.speed("inference-llm", "RNGD") == pytest.approx(0.371)
    assert t.speed("train-llm", "B200") == pytest.approx(2.1)
    assert ThroughputTable.from_catalogue(CATALOGUE).speed("default", "GB200") == pytest.approx(2.0)


def test_gavel_table_has_every_job_type_and_drops_only_its_zero_rows() -> None:
    raw = gavel_throughputs()
    assert len(raw) == 83
    zeros = [k for k, v in raw.items() if any(x <= 0 for x in v.values())]
    assert sorted(zeros) == [("ResNet-50 (batch size 128)", sf) for sf in (2, 4, 8)]
    t = gavel_throughput_table()
    assert t.reference == "V100" and len(t.classes()) == 27  # 26 job types + default
    # ResNet-50 (batch size 64) on a P100: 2.619 / 4.395 steps/s (the catalogue's comment)
    assert t.speed("ResNet-50 (batch size 64)", "P100") == pytest.approx(0.5959, abs=1e-3)
    # the recommendation models run faster on a K80 than on a V100
    assert t.speed("Recommendation (batch size 512)", "K80") > 1.0
    # a zero row falls back to the job type's 1-GPU ratio
    assert t.speed("ResNet-50 (batch size 128)", "K80", 4) == t.speed("ResNet-50 (batch size 128)", "K80", 1)


def test_runtime_model_stretches_gavel_durations_by_the_job_types_throughput() -> None:
    rt = RuntimeModel(load_catalogue(), "V100", throughputs=gavel_throughput_table())
    # an hour of V100 work of LM (batch size 10) on 8 P100s: 0.208 of a V100's speed at that size
    raw = gavel_throughputs()[("LM (batch size 10)", 8)]
    expect = 3_600_000 * raw["V100"] / raw["P100"]
    assert rt.wall_ms(3_600_000, "P100", "LM (batch size 10)", 8) == pytest.approx(expect, abs=1)
    assert rt.speed("V100", "A3C") == 1.0
