"""Container images beyond the local executor: references parsed, the Slurm executor's pyxis
line (and its refusal without declared container support), the Kubernetes pod image."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gpupool.service.container_image import (
    check_registries,
    effective_registries,
    narrower_than,
    parse_image,
    registry_allowed,
)
from gpupool.service.executors.base import Launch
from gpupool.service.executors.kubernetes import KubernetesOptions, job_manifests
from gpupool.service.executors.slurm import batch_request
from gpupool.service.executors.slurm_client import BatchRequest, SlurmOptions

JOB = Launch("j1.1", "j1", ("python", "train.py"), (("n1", (0, 1)),), Path("/logs"), cwd=Path("/work/a"))


@pytest.mark.parametrize(
    ("text", "registry", "pyxis"),
    [
        ("ubuntu", "docker.io", "ubuntu"),
        ("library/ubuntu:24.04", "docker.io", "library/ubuntu:24.04"),
        ("nvcr.io/nvidia/pytorch:24.01-py3", "nvcr.io", "nvcr.io#nvidia/pytorch:24.01-py3"),
        ("registry.kisti.re.kr:5000/ai/llm@sha256:" + "0" * 64, "registry.kisti.re.kr:5000",
         "registry.kisti.re.kr:5000#ai/llm@sha256:" + "0" * 64),
        ("localhost/x:1", "localhost", "localhost#x:1"),
    ],
)  # fmt: skip
def test_registry_references_name_their_registry(text: str, registry: str, pyxis: str) -> None:
    ref = parse_image(text)
    assert (ref.registry, ref.local, ref.pyxis()) == (registry, False, pyxis)


def test_image_files_are_local_and_need_an_absolute_path() -> None:
    ref = parse_image("oci-archive:/data/images/torch.tar")
    assert ref.local and ref.transport == "oci-archive" and ref.path == "/data/images/torch.tar"
    assert parse_image("docker-archive:/d/x.tar").registry == "local"
    with pytest.raises(ValueError, match="absolute path"):
        parse_image("oci-archive:images/x.tar")
    with pytest.raises(ValueError, match="absolute path"):
        parse_image("oci-archive:/data/../etc/shadow")


@pytest.mark.parametrize("bad", ["", "Ubuntu", "ubuntu:", "a b", "nvcr.io/", "x@sha256:12", "-x", "x" * 1025])
def test_bad_references_are_refused_saying_what_an_image_is(bad: str) -> None:
    with pytest.raises(ValueError, match="image reference"):
        parse_image(bad)


def test_the_policy_is_inherited_and_only_narrows() -> None:
    @dataclasses.dataclass
    class Row:
        id: int
        parent_id: int | None
        allowed_registries: list[str] | None

    rows = [Row(1, None, None), Row(2, 1, ["nvcr.io", "local"]), Row(3, 2, None), Row(4, 2, ["local"])]
    eff = effective_registries(rows)
    assert eff[1] is None and eff[3] == frozenset({"nvcr.io", "local"}) and eff[4] == frozenset({"local"})
    assert registry_allowed(parse_image("ubuntu"), eff[1])
    assert not registry_allowed(parse_image("ubuntu"), eff[3])
    assert registry_allowed(parse_image("oci-archive:/x.tar"), eff[4])
    assert narrower_than(["docker.io", "local"], eff[2]) == ["docker.io"]
    assert narrower_than(["anything.io"], eff[1]) == []
    assert check_registries(["NVCR.io", "nvcr.io", "local"]) == ["nvcr.io", "local"]
    with pytest.raises(ValueError, match="'https://x' is not a registry host"):
        check_registries(["https://x"])


def test_slurm_runs_an_image_under_pyxis_only_where_the_cluster_declares_it() -> None:
    job = dataclasses.replace(JOB, image="nvcr.io/nvidia/pytorch:24.01-py3")
    refused = batch_request(job, {"n1": "H100"}, SlurmOptions.parse({}))
    assert (
        isinstance(refused, str)
        and "declares no container support" in refused
        and "containers: pyxis" in refused
    )
    req = batch_request(job, {"n1": "H100"}, SlurmOptions.parse({"containers": "pyxis"}))
    assert isinstance(req, BatchRequest)
    assert (
        "exec srun --nodes=1 --ntasks=1 '--container-image=nvcr.io#nvidia/pytorch:24.01-py3' "
        "--container-mounts=/work/a --container-workdir=/work/a python train.py"
    ) in req.script
    plain = batch_request(JOB, {"n1": "H100"}, SlurmOptions.parse({"containers": "pyxis"}))
    assert isinstance(plain, BatchRequest) and "exec python train.py" in plain.script
    archive = dataclasses.replace(JOB, image="oci-archive:/data/x.tar")
    assert "registry reference" in str(
        batch_request(archive, {"n1": "H100"}, SlurmOptions.parse({"containers": "pyxis"}))
    )
    with pytest.raises(ValueError, match="containers"):
        SlurmOptions.parse({"containers": "enroot-magic"})


def test_kubernetes_sets_the_pod_image_of_the_job_else_the_clusters_default() -> None:
    nodes = {"n1": "H100"}
    own = job_manifests(
        dataclasses.replace(JOB, image="nvcr.io/nvidia/pytorch:24.01-py3"), "c", nodes, KubernetesOptions()
    )
    default = job_manifests(JOB, "c", nodes, KubernetesOptions(image="ubuntu:24.04"))
    assert isinstance(own, list) and isinstance(default, list)
    assert own[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "nvcr.io/nvidia/pytorch:24.01-py3"
    assert default[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "ubuntu:24.04"
    refused = job_manifests(
        dataclasses.replace(JOB, image="oci-archive:/x.tar"), "c", nodes, KubernetesOptions()
    )
    assert isinstance(refused, str) and "registry reference" in refused
