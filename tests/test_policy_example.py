"""The README's worked example of writing a policy runs as written.

Its two code blocks (the policy file and its test) are taken from the README's "Writing a
policy" section and run in a fresh interpreter: the policy registers itself there, a
scheduler is made with it, and the example's test passes. A separate process, so the
example never joins this test session's registry.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RUNNER = """
import sys
policy_src, test_src = sys.argv[1], sys.argv[2]
exec(compile(policy_src, "widest.py", "exec"), {"__name__": "gpupool.core.policies.widest"})
scope = {"__name__": "test_policy_widest"}
exec(compile(test_src, "test_policy_widest.py", "exec"), scope)
tests = [f for n, f in scope.items() if n.startswith("test_") and callable(f)]
assert tests, "the example has no test"
for t in tests:
    t()
print("ran", len(tests))
"""


def _blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Writing a policy") :]
    section = section[: section.index("\n## ")]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_policy_example_registers_and_its_test_passes() -> None:
    blocks = _blocks()
    assert len(blocks) == 2
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, *blocks], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ran 1"


def test_the_example_would_fail_if_the_policy_ordered_otherwise() -> None:
    # the example's test can fail: with the key of fifo it starts the small job first
    policy, test = _blocks()
    fifo_like = policy.replace("(-j.gpus, j.spec.submit_ms, j.seq)", "(j.spec.submit_ms, j.seq)")
    assert fifo_like != policy
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, fifo_like, test], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode != 0 and "AssertionError" in proc.stderr
