"""``gpupool fleet import-slurm``: slurm.conf (+ gres.conf) -> a fleet file that loads."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from gpupool.cli.main import app
from gpupool.fleetfile import load_fleet

runner = CliRunner(env={"COLUMNS": "200"})

SLURM_CONF = """\
ClusterName=kisti
SlurmctldHost=ctl   # the controller
NodeName=DEFAULT CPUs=64 RealMemory=512000
NodeName=gpu[01-03] Gres=gpu:h100:8 \\
   Feature=ib
NodeName=big01 Gres=gpu:8
NodeName=x[1-2] Gres=gpu:h100_80g:4(S:0-1)
NodeName=login01 CPUs=8
PartitionName=gpu Nodes=gpu[01-03],big01 Default=YES MaxTime=INFINITE State=UP
PartitionName=all Nodes=ALL
"""


def write(tmp_path: Path) -> Path:
    conf = tmp_path / "slurm.conf"
    conf.write_text(SLURM_CONF)
    (tmp_path / "gres.conf").write_text("NodeName=big01 Name=gpu Type=h200 File=/dev/nvidia[0-7]\n")
    return conf


def test_nodes_gpu_types_and_partitions_become_a_fleet_that_loads(tmp_path: Path) -> None:
    conf = write(tmp_path)
    r = runner.invoke(app, ["fleet", "import-slurm", "--slurm-conf", str(conf), "--model", "h100_80g=H100"])
    assert r.exit_code == 0, r.output
    doc = yaml.safe_load(r.stdout)
    cluster = doc["sites"][0]["clusters"][0]
    assert cluster["backend"] == "slurm"
    assert cluster["options"] == {"slurm_conf": str(conf.resolve()), "partition": "gpu"}
    (tmp_path / "fleet.yaml").write_text(r.stdout)
    fleet = load_fleet(str(tmp_path / "fleet.yaml"))
    assert {n.name: (n.model, n.gpus) for n in fleet.nodes} == {
        "gpu01": ("H100", 8),
        "gpu02": ("H100", 8),
        "gpu03": ("H100", 8),
        "big01": ("H200", 8),  # its type from gres.conf
        "x1": ("H100", 4),
        "x2": ("H100", 4),
    }  # login01 has no GPU: left out
    assert fleet.clusters[0].backend_options["slurm_conf"] == str(conf.resolve())


def test_an_unknown_gpu_type_or_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    conf = write(tmp_path)
    r = runner.invoke(app, ["fleet", "import-slurm", "--slurm-conf", str(conf)])
    assert r.exit_code == 2 and "h100_80g" in r.output and "--model h100_80g=MODEL" in r.output
    r = runner.invoke(app, ["fleet", "import-slurm", "--slurm-conf", str(tmp_path / "none.conf")])
    assert r.exit_code == 2 and "cannot read" in r.output
    r = runner.invoke(app, ["fleet", "import-slurm", "--slurm-conf", str(conf), "--model", "h100_80g"])
    assert r.exit_code == 2 and "TYPE=MODEL" in r.output
