"""Small fleets, tenancies and jobs built in code, for scenario tests of the core."""

from __future__ import annotations

from gpupool.core.accelerator import AcceleratorModel, Catalogue
from gpupool.core.fleet import Fleet, FleetBuilder
from gpupool.core.job import JobSpec
from gpupool.core.tenancy import Tenancy, TenancyBuilder

CATALOGUE = Catalogue(
    [
        AcceleratorModel("H100", "NVIDIA", 80, "cuda", {"default": 1.0}),
        AcceleratorModel("H200", "NVIDIA", 141, "cuda", {"default": 1.1}),
        AcceleratorModel("GB200", "NVIDIA", 186, "cuda", {"default": 2.0}),
        AcceleratorModel("ATOM", "Rebellions", 16, "rbln", {"default": 0.3}),
    ]
)


def fleet(
    racks: int = 2,
    nodes_per_rack: int = 4,
    gpus: int = 8,
    model: str = "H100",
    blocks: int = 1,
    nvlink: bool = False,
    clusters: int = 1,
) -> Fleet:
    """``clusters`` clusters of ``blocks`` blocks of ``racks`` racks of identical nodes."""
    b = FleetBuilder("test", CATALOGUE)
    b.add_site("site")
    for c in range(clusters):
        ci = b.add_cluster(f"c{c}", "site")
        for k in range(blocks):
            bi = b.add_block(ci, f"b{k}")
            for r in range(racks):
                ri = b.add_rack(bi, f"b{k}r{r}", nvlink=nvlink)
                names = [f"c{c}b{k}r{r}n{i}" for i in range(nodes_per_rack)]
                b.add_nodes(ri, nodes_per_rack, model, gpus, names)
    return b.build()


def tenants(*projects: str, **kw: dict[str, object]) -> Tenancy:
    """One sector with the given projects; keyword args give per-project settings."""
    b = TenancyBuilder("test")
    s = b.add(-1, "sector")
    for p in projects:
        b.add(s, p, **kw.get(p, {}))  # type: ignore[arg-type]
    return b.build()


def job(id: str, gpus: int, project: str = "p", submit: int = 0, **kw: object) -> JobSpec:
    return JobSpec(id=id, project=project, gpus=gpus, submit_ms=submit, **kw)  # type: ignore[arg-type]
