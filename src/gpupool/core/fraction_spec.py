"""What a job spec asks of a fraction of an accelerator, and which models can give it.

This module owns the rules of a spec's fraction fields (``JobSpec.mig``, ``mig_count``,
``gpu_fraction``, ``gpu_memory_gib``): which combinations are valid (``problem``: the field
and what is wrong, raised by ``JobSpec.validate`` as a ``JobError``), whether a model can
hold the fraction at all (``model_allows``, read by the candidate pools), and the
signature those fields add to the candidate memo.

A fractional job runs on one node: ``gpus`` is 1 and there are no task groups. MIG and
sharing do not mix in one job (a GPU is either partitioned or shared). ``gpu_memory_gib``
with ``gpu_fraction`` asks both; alone, it asks that much memory of a shared GPU.
"""

from __future__ import annotations

from typing import Protocol

from gpupool.core.accelerator import AcceleratorModel


class FractionAsk(Protocol):
    """The fields of a ``JobSpec`` this module reads (a protocol: no import of the job module)."""

    @property
    def gpus(self) -> int: ...
    @property
    def groups(self) -> tuple[object, ...]: ...
    @property
    def mig(self) -> str: ...
    @property
    def mig_count(self) -> int: ...
    @property
    def gpu_fraction(self) -> float: ...
    @property
    def gpu_memory_gib(self) -> float: ...


def is_fractional(spec: FractionAsk) -> bool:
    return bool(spec.mig) or spec.gpu_fraction > 0 or spec.gpu_memory_gib > 0


def problem(spec: FractionAsk) -> tuple[str, str] | None:
    """(field, what is wrong) unless the fraction fields make sense together."""
    if not is_fractional(spec):
        return ("mig_count", "is read only with mig") if spec.mig_count else None
    if spec.mig and (spec.gpu_fraction or spec.gpu_memory_gib):
        return "mig", "cannot be combined with gpu_fraction or gpu_memory (a GPU is partitioned or shared)"
    if spec.mig and spec.mig_count < 1:
        return "mig_count", f"must be >= 1, got {spec.mig_count}"
    if not 0 <= spec.gpu_fraction <= 1:
        return "gpu_fraction", f"must be in (0, 1], got {spec.gpu_fraction}"
    if spec.gpu_memory_gib < 0:
        return "gpu_memory", f"must be > 0, got {spec.gpu_memory_gib}"
    if spec.gpus != 1 or spec.groups:
        return "gpus", "a job asking a fraction (mig, gpu_fraction, gpu_memory) has gpus = 1"
    return None


def model_allows(spec: FractionAsk, model: AcceleratorModel) -> str:
    """Why ``model`` cannot hold the spec's fraction ("" when it can, or nothing is asked)."""
    if spec.mig:
        if model.mig is None or spec.mig not in model.mig.profiles:
            return f"{model.name} has no MIG profile {spec.mig}"
        return ""
    if spec.gpu_fraction > 0 or spec.gpu_memory_gib > 0:
        if not model.sharing:
            return f"{model.name} is never shared"
        if spec.gpu_memory_gib > model.memory_gib:
            return f"{model.name} has {model.memory_gib} GiB < {spec.gpu_memory_gib:g} GiB"
    return ""


def signature(spec: FractionAsk) -> tuple[str, int, float, float]:
    """What the fraction fields add to the candidate memo's key."""
    return (spec.mig, spec.mig_count, spec.gpu_fraction, spec.gpu_memory_gib)
