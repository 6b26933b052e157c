"""The live loop stays in three small parts and a thin driver (ADR 0012).

``service/loop.py`` drives ``intake`` (reads only), ``journal`` (one transaction) and
``dispatch`` (outbox to executors); each stays small enough to read at once, the parts reach
each other only through the driver (the journal reads the intake's ``Inputs`` type), and a job
is read through ``StoredJobSpec``, never by ``spec[...]`` lookups.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import gpupool
from tests.architecture.test_layers import graph

SERVICE = Path(gpupool.__file__).parent / "service"
PARTS = ["loop", "intake", "journal", "dispatch"]
#: the most lines a part of the loop may have
MAX_LINES = 350


@pytest.mark.parametrize("part", PARTS)
def test_each_part_of_the_loop_is_small(part: str) -> None:
    lines = len((SERVICE / f"{part}.py").read_text(encoding="utf-8").splitlines())
    assert lines < MAX_LINES, f"service/{part}.py has {lines} lines: split it by noun"


#: what each part may import of the others
MAY_IMPORT = {
    "intake": set(),
    "journal": {"intake"},
    "dispatch": set(),
    "loop": {"intake", "journal", "dispatch"},
}


@pytest.mark.parametrize("part", PARTS)
def test_the_parts_reach_each_other_only_through_the_driver(part: str) -> None:
    mine = f"gpupool.service.{part}"
    others = {f"gpupool.service.{p}": p for p in PARTS if p != part}
    used = {others[t] for _, t in graph()[mine] if t in others}
    assert used <= MAY_IMPORT[part], f"{mine} imports {sorted(used - MAY_IMPORT[part])}"


#: a read of the stored JSON by key in Python (SQL's ``JobRow.spec["gpus"]`` is a column expression)
UNTYPED = re.compile(r"(?<!JobRow)\.spec\[|\bspec\[\"|\bspec\.get\(")


@pytest.mark.parametrize(
    "module", ["loop", "intake", "journal", "dispatch", "launch_order", "rebuild", "job_request", "api/jobs"]
)
def test_a_job_is_read_through_its_typed_spec(module: str) -> None:
    text = (SERVICE / f"{module}.py").read_text(encoding="utf-8")
    found = [line.strip() for line in text.splitlines() if UNTYPED.search(line)]
    assert not found, f"untyped spec reads in service/{module}.py: {found}"
