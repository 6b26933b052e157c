"""MIG: the profiles of a partitionable accelerator, their valid placements, and layouts.

This module owns ``MigProfile`` (one GPU-instance profile such as ``1g.10gb`` of an H100),
``MigGeometry`` (a model's profiles over its compute and memory slices) and ``MigLayout``
(the instances carved out of one accelerator, each at a start slice), with the rules that
make a layout valid. It reads no file: ``gpupool.fleetfile.catalogue`` builds geometries
from the catalogue's ``mig:`` sections.

The rules are NVIDIA's (MIG user guide, "Supported MIG Profiles",
https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html): a GPU
has 8 memory slices and 7 compute slices; a profile ``<c>g.<m>gb`` takes ``c`` compute
slices and a fixed run of memory slices, and may start only at the slices its placement
table lists (what ``nvidia-smi mig -lgipp`` prints, e.g. ``3g.40gb`` at ``{0,4}:4``). Two
instances of one GPU never share a memory slice, and their compute slices add up to at
most 7. A layout that breaks either rule cannot be created on the hardware, so the core
never plans one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction


class MigError(ValueError):
    """A profile, geometry or layout that the hardware does not allow; the message says why."""


@dataclass(frozen=True, slots=True)
class MigProfile:
    """One GPU-instance profile: ``compute`` slices, ``span`` memory slices from a start in
    ``starts``, ``memory_gib`` of memory."""

    name: str
    compute: int
    span: int
    memory_gib: float
    starts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MigInstance:
    """One instance of a layout: a profile at a start memory slice."""

    profile: str
    start: int


class MigGeometry:
    """The MIG profiles of one accelerator model and its slice counts."""

    __slots__ = ("compute_slices", "memory_slices", "profiles")

    def __init__(
        self, profiles: Iterable[MigProfile], compute_slices: int = 7, memory_slices: int = 8
    ) -> None:
        if compute_slices < 1 or memory_slices < 1:
            raise MigError("compute_slices and memory_slices must be >= 1")
        by_name: dict[str, MigProfile] = {}
        for p in profiles:
            if p.name in by_name:
                raise MigError(f"profile {p.name!r} is listed twice")
            if not 1 <= p.compute <= compute_slices:
                raise MigError(f"profile {p.name!r}: compute must be 1..{compute_slices}, got {p.compute}")
            if not 1 <= p.span <= memory_slices:
                raise MigError(f"profile {p.name!r}: memory_slices must be 1..{memory_slices}, got {p.span}")
            if not p.starts:
                raise MigError(f"profile {p.name!r}: no placement")
            for s in p.starts:
                if s < 0 or s + p.span > memory_slices:
                    raise MigError(
                        f"profile {p.name!r}: placement {s} runs past the {memory_slices} memory slices"
                    )
            by_name[p.name] = p
        if not by_name:
            raise MigError("a MIG geometry needs at least one profile")
        self.profiles: Mapping[str, MigProfile] = by_name
        self.compute_slices = compute_slices
        self.memory_slices = memory_slices

    def profile(self, name: str) -> MigProfile:
        try:
            return self.profiles[name]
        except KeyError:
            raise MigError(f"unknown MIG profile {name!r} (known: {', '.join(self.profiles)})") from None

    def fraction(self, name: str) -> Fraction:
        """The share of the accelerator one instance is charged: its compute slices over all
        (a ``1g.10gb`` of an H100 is 1/7 of an H100-hour)."""
        return Fraction(self.profile(name).compute, self.compute_slices)

    def mask(self, inst: MigInstance) -> int:
        """The memory slices an instance covers, as a bitmask."""
        p = self.profile(inst.profile)
        return ((1 << p.span) - 1) << inst.start

    def free_starts(self, name: str, used_mask: int, used_compute: int) -> list[int]:
        """Valid starts of profile ``name`` on a GPU whose instances cover ``used_mask`` and
        take ``used_compute`` compute slices, in the placement table's order."""
        p = self.profile(name)
        if used_compute + p.compute > self.compute_slices:
            return []
        span = (1 << p.span) - 1
        return [s for s in p.starts if not (span << s) & used_mask]

    def check(self, layout: Sequence[MigInstance]) -> None:
        """MigError unless ``layout`` can be created on one GPU."""
        used, compute = 0, 0
        for inst in layout:
            p = self.profile(inst.profile)
            if inst.start not in p.starts:
                raise MigError(
                    f"{inst.profile} cannot start at memory slice {inst.start} "
                    f"(valid: {', '.join(map(str, p.starts))})"
                )
            m = self.mask(inst)
            if m & used:
                raise MigError(f"{inst.profile}@{inst.start} overlaps another instance")
            used |= m
            compute += p.compute
        if compute > self.compute_slices:
            raise MigError(f"the layout takes {compute} compute slices, more than {self.compute_slices}")

    def layout(self, profiles: Sequence[str]) -> tuple[MigInstance, ...]:
        """Place ``profiles`` (an operator's list, ``name`` or ``name@start``) on one GPU.

        An explicit start is kept; the others are placed largest first, each at the last
        valid start (NVIDIA's own tools fill from the top so that the aligned low starts of
        the large profiles stay free). MigError when they do not fit.
        """
        fixed: list[MigInstance] = []
        loose: list[str] = []
        for text in profiles:
            name, _, start = text.partition("@")
            self.profile(name)
            if start:
                try:
                    fixed.append(MigInstance(name, int(start)))
                except ValueError:
                    raise MigError(f"{text!r}: the start after '@' must be an integer") from None
            else:
                loose.append(name)
        self.check(fixed)
        used = sum(self.mask(i) for i in fixed)
        compute = sum(self.profiles[i.profile].compute for i in fixed)
        out = list(fixed)
        for name in sorted(loose, key=lambda n: (-self.profiles[n].span, -self.profiles[n].compute, n)):
            starts = self.free_starts(name, used, compute)
            if not starts:
                raise MigError(f"{', '.join(profiles)}: no valid place left for {name} on one GPU")
            inst = MigInstance(name, starts[-1])
            out.append(inst)
            used |= self.mask(inst)
            compute += self.profiles[name].compute
        return tuple(sorted(out, key=lambda i: i.start))


def parse_mig_request(text: str) -> tuple[int, str]:
    """``"2x1g.10gb"`` or ``"1g.10gb"`` -> (count, profile). ValueError names what is wrong."""
    t = text.strip()
    count, sep, name = t.partition("x")
    if sep and count.isdigit():
        n = int(count)
        if n < 1:
            raise ValueError(f"MIG count must be >= 1 in {text!r}")
        return n, name.strip()
    if not t:
        raise ValueError("a MIG request names a profile, e.g. 1g.10gb or 2x1g.10gb")
    return 1, t
