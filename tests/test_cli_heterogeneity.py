"""The national comparison through the CLI: agnostic and heterogeneity-aware policies side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpupool.cli.main import app

runner = CliRunner()
POLICIES = ["fairshare+easy", "gavel-las", "gavel-fifo", "tiresias"]


@pytest.mark.slow
def test_compare_on_korea_2025_shows_agnostic_and_aware_policies_in_one_report(tmp_path: Path) -> None:
    # a small version: 1 % of the national fleet's capacity offered for an hour
    args = ["compare", "--fleet", "korea-2025", "--workload", "synthetic", "--hours", "1", "--load", "0.01",
            "--policies", ",".join(POLICIES), "--json", "--out", str(tmp_path)]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert list(got) == POLICIES
    for m in got.values():
        assert m["finished"] == m["jobs"] > 0
        assert m["effective_gpu_hours"] > 0 and m["npu_absorbed_gpu_hours"] >= 0
        assert m["ftf_rho_mean"] is not None
        assert all("effective_gpu_hours" in t for t in m["tenants"])
    # the same work was done: effective GPU-hours agree where preemption loses nothing
    # (round-based leases end at a checkpoint); Tiresias redoes what it lost since one
    eff = [got[p]["effective_gpu_hours"] for p in ("fairshare+easy", "gavel-las", "gavel-fifo")]
    assert max(eff) - min(eff) < 1e-5 * max(eff)
    assert got["tiresias"]["effective_gpu_hours"] >= min(eff)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "gavel-las" in html and "Effective GPU-hours" in html and "NPUs" in html


def test_unknown_policy_names_the_new_ones() -> None:
    r = runner.invoke(app, ["compare", "--fleet", "demo", "--policies", "gavel-nope"])
    assert r.exit_code == 2
    assert "gavel-las" in r.output and "tiresias" in r.output


def test_effective_usage_is_a_cli_option_and_a_bad_value_is_named() -> None:
    r = runner.invoke(app, ["simulate", "--fleet", "demo", "--hours", "2", "--usage", "effective", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["effective_gpu_hours"] > 0
    r = runner.invoke(app, ["simulate", "--fleet", "demo", "--usage", "tokens"])
    assert r.exit_code == 2 and "--usage" in r.output
